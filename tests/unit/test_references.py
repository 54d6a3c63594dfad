"""Comments and docstrings point only at things a reader of the repository can find.

A reference to a document (``something.md``) must name a file of the repository,
and no text may send the reader to a numbered issue of a tracker they cannot see
("issue 6"): state the fact, or point at the README, a header or a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if not (ROOT / "src" / "mptcp" / "__init__.py").exists():  # pragma: no cover - outside the checkout
    pytest.skip("no source tree next to the tests", allow_module_level=True)

SCANNED = ["src", "tests", "benchmarks", "examples", ".ci", ".github", "setup.py",
           "pyproject.toml", "MANIFEST.in"]
SUFFIXES = {".py", ".pyx", ".pxi", ".pxd", ".pyi", ".c", ".h", ".toml", ".in", ".yml", ".md", ""}
DOC = re.compile(r"(?<![\w/.$-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
ISSUE = re.compile(r"\bissue\s+#?\d+", re.IGNORECASE)


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                    and "__pycache__" not in p.parts and "_build" not in p.parts
                    and not (p.suffix == ".c" and (p.with_suffix(".pyx")).exists())]
    return out


def _exists(ref: str, where: Path) -> bool:
    return any((base / ref).exists() for base in (ROOT, where.parent))


def test_no_reference_to_a_missing_document_or_an_issue_number() -> None:
    bad = []
    for path in _files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for m in DOC.finditer(line):
                if not _exists(m.group(1), path):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {m.group(1)} is not in the repository")
            for m in ISSUE.finditer(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)!r} names an issue a reader cannot see")
    assert not bad, "\n".join(bad)


def test_readme_says_the_draft_backend_is_verified_against_a_double() -> None:
    # No draft-API kernel is available: the README must not claim more than the
    # LD_PRELOAD double of tests/draftkernel shows.
    text = (ROOT / "README.md").read_text()
    claim = next(p for p in text.split("\n\n") if "draft-hesmans-mptcp-socket" in p and "work for real" in p)
    assert "test double" in claim and "draft_double.c" in claim, claim
    header = next(line for line in text.splitlines() if line.startswith("| call | returns |"))
    assert "test double" in header, header
