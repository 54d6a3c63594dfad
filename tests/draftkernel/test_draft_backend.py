"""The library's draft backend, tested against the draft-kernel double.

LD_PRELOAD applies only at process start, so the tests live in ``_backend_cases.py``
and run in child pytest processes with the double preloaded and
``MPTCP_BACKEND=draft``: one child for the ordinary tests and one per group in
``_backend_cases.GROUPS`` (tests that drop capabilities, would abort the double if
the library were wrong, or need the double's env vars). Each test function there
is reported here as one test (all its parametrizations must pass).

Also here: forcing ``MPTCP_BACKEND=draft`` *without* the double on this mainline
kernel must raise ``UnsupportedOperationError`` naming the missing draft API.
Loopback only; root is not needed. Without gcc the tests skip, except under
CI=true where they fail.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

import mptcp

from . import _backend_cases as cases
from .build import child_env

CASES_FILE = pathlib.Path(cases.__file__).resolve()
REPO = pathlib.Path(__file__).resolve().parents[2]
PKG_ROOT = str(pathlib.Path(mptcp.__file__).resolve().parents[1])
TIMEOUT = 300

TEST_NAMES = sorted(n for n in vars(cases) if n.startswith("test_") and callable(getattr(cases, n)))
GROUPED = {t: g for g, spec in cases.GROUPS.items() for t in spec["tests"]}  # type: ignore[attr-defined]


def _pythonpath(env: dict[str, str]) -> None:
    # The child must import the same mptcp as this process.
    parts = [PKG_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))


def _run_group(so: pathlib.Path, tmp: pathlib.Path, group: str) -> dict[str, list[tuple[str, str, str]]]:
    """Run one group in a child pytest; {function name: [(case, status, detail)]}."""
    if group == "main":
        selected = [n for n in TEST_NAMES if n not in GROUPED]
        extra: dict[str, str] = {}
    else:
        selected = list(cases.GROUPS[group]["tests"])  # type: ignore[call-overload]
        extra = dict(cases.GROUPS[group]["env"])  # type: ignore[call-overload]
    env = child_env(so, {"MPTCP_BACKEND": "draft", **extra})
    _pythonpath(env)
    junit = tmp / f"junit-{group}.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs",
         f"--junitxml={junit}", str(CASES_FILE), "-k", " or ".join(selected)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    out: dict[str, list[tuple[str, str, str]]] = {n: [] for n in selected}
    if proc.returncode not in (0, 1) or not junit.exists():
        detail = f"child pytest ({group}) exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return {n: [(n, "fail", detail)] for n in selected}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        name = tc.get("name", "")
        base = name.split("[", 1)[0]
        status, detail = "pass", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                status, detail = "fail", (child.get("message") or "") + "\n" + (child.text or "")
                break
            if child.tag == "skipped":
                status, detail = "skip", child.get("message") or ""
        out.setdefault(base, []).append((name, status, detail))
    return out


@pytest.fixture(scope="module")
def results(double_so: pathlib.Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, str]]]:
    tmp = tmp_path_factory.mktemp("draft-backend")
    merged: dict[str, list[tuple[str, str, str]]] = {}
    for group in ["main", *cases.GROUPS]:
        merged.update(_run_group(double_so, tmp, group))
    return merged


@pytest.mark.parametrize("name", TEST_NAMES)
def test_draft_backend(results: dict[str, list[tuple[str, str, str]]], name: str) -> None:
    runs = results.get(name, [])
    assert runs, f"{name} did not run in the child"
    failed = [f"{case}: {detail}" for case, status, detail in runs if status == "fail"]
    assert not failed, "\n\n".join(failed)
    if all(status == "skip" for _, status, _ in runs):
        pytest.skip("; ".join(sorted({d for _, _, d in runs})))


_NO_DOUBLE_SCRIPT = textwrap.dedent(
    """
    import json, socket, mptcp
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    lst.bind(("127.0.0.1", 0)); lst.listen()
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    cli.connect(lst.getsockname()); srv, _ = lst.accept()
    calls = {
        "get_sub_ids": lambda: mptcp.get_sub_ids(cli),
        "get_sub_tuple": lambda: mptcp.get_sub_tuple(cli, 1),
        "open_sub": lambda: mptcp.open_sub(cli),
        "close_sub": lambda: mptcp.close_sub(cli, 1),
        "get_sub_sockopt_int": lambda: mptcp.get_sub_sockopt_int(cli, 1, 6, 1),
        "set_sub_sockopt_int": lambda: mptcp.set_sub_sockopt_int(cli, 1, 6, 1, 1),
    }
    out = {"backend": mptcp.backend()}
    for name, fn in calls.items():
        try:
            fn()
            out[name] = ["no error", ""]
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


def test_forced_draft_without_double_is_unsupported() -> None:
    """On mainline, MPTCP_BACKEND=draft makes every seed call say the API is missing."""
    env = dict(os.environ, MPTCP_BACKEND="draft")
    preload = [p for p in env.get("LD_PRELOAD", "").replace(" ", ":").split(":")
               if p and "draft_double" not in p]
    env["LD_PRELOAD"] = ":".join(preload)
    _pythonpath(env)
    try:
        with open("/proc/sys/net/mptcp/enabled") as f:
            if f.read().strip() != "1":
                pytest.skip("MPTCP is disabled here (net.mptcp.enabled)")
    except OSError:
        pytest.skip("no MPTCP in this kernel")
    proc = subprocess.run([sys.executable, "-c", _NO_DOUBLE_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out.pop("backend") == "draft"
    for call, (cls, msg) in out.items():
        assert cls == "UnsupportedOperationError", (call, cls, msg)
        assert "no draft" in msg and call in msg, (call, msg)
