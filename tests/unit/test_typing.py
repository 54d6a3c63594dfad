"""The package type-checks under ``mypy --strict`` and the core's stub matches the core.

Both run mypy in a subprocess (it is slow to import and keeps global state). The
stub is checked against the ``mptcp`` these tests import: the source tree's or an
installed one, whichever is first on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install '.[test]')")

import mptcp  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")
PKG_DIR = Path(mptcp.__file__).resolve().parent


def _run(args: list[str], config_flag: str, tmp_path: Path,
         env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A private cache: a cache written before the stub existed makes mypy see the
    # extension as Any.
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {tmp_path / 'cache'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", *args, config_flag, str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.skipif(not (SRC / "mptcp" / "__init__.py").exists(), reason="no source tree next to the tests")
def test_mypy_strict(tmp_path: Path) -> None:
    res = _run(["mypy", "--strict", str(SRC / "mptcp")], "--config-file", tmp_path, {})
    assert res.returncode == 0, res.stdout + res.stderr


def test_stubtest(tmp_path: Path) -> None:
    if not (PKG_DIR / "_mptcp.pyi").exists():
        pytest.fail(f"{PKG_DIR} has no _mptcp.pyi: the stub is not installed with the package")
    extra: dict[str, str] = {}
    if PKG_DIR.parent == SRC:
        # Testing the source tree (PYTHONPATH=src): both the runtime and the stub come from it.
        extra = {"PYTHONPATH": str(SRC), "MYPYPATH": str(SRC)}
    res = _run(["mypy.stubtest", "mptcp._mptcp", "--allowlist", str(ALLOWLIST)],
               "--mypy-config-file", tmp_path, extra)
    assert res.returncode == 0, res.stdout + res.stderr
