"""Tests of the draft-kernel test double itself (not of the mptcp library).

LD_PRELOAD only applies at process start, so every check runs in a child Python
process (``_driver.py``) under the double; the parent asserts on its JSON report.
One child runs all ordinary cases; cases that abort, drop capabilities or need
environment variables get their own child.  Only loopback is used, so this runs
as root or not.  Without gcc the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import pytest

from . import _driver
from .conftest import in_ci
from .build import SOURCE, build_double, child_env, find_gcc

DRIVER = pathlib.Path(_driver.__file__).resolve()
TIMEOUT = 120


def run_driver(
    so: pathlib.Path, *cases: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DRIVER), *cases],
        env=child_env(so, extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    assert proc.returncode == 0, f"driver exited {proc.returncode}\n{proc.stderr}"
    result: dict[str, dict[str, str]] = json.loads(proc.stdout)
    return result


def check(result: dict[str, str]) -> None:
    if result["status"] == "skip":
        pytest.skip(result["detail"])
    assert result["status"] == "pass", result["detail"]


@pytest.fixture(scope="module")
def main_results(double_so: pathlib.Path) -> dict[str, dict[str, str]]:
    return report(run_driver(double_so))


@pytest.mark.parametrize("case", _driver.MAIN_CASES)
def test_case(main_results: dict[str, dict[str, str]], case: str) -> None:
    check(main_results[case])


@pytest.mark.parametrize("case", ["abort_plain_tcp", "abort_unconnected_mptcp"])
def test_sub_setsockopt_on_non_mptcp_aborts(double_so: pathlib.Path, case: str) -> None:
    proc = run_driver(double_so, case)
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stdout, proc.stderr)
    assert (
        "draft_double: SUB_SETSOCKOPT on a non-MPTCP socket would lock it forever "
        "in the fork" in proc.stderr
    )


def test_open_sub_tuple_eacces(double_so: pathlib.Path) -> None:
    check(report(run_driver(double_so, "open_eacces"))["open_eacces"])


def test_sleep_env(double_so: pathlib.Path) -> None:
    proc = run_driver(double_so, "sleep", extra={"DRAFT_DOUBLE_SLEEP_MS": "200"})
    check(report(proc)["sleep"])


def test_log_env(double_so: pathlib.Path) -> None:
    proc = run_driver(double_so, "log", extra={"DRAFT_DOUBLE_LOG": "1"})
    check(report(proc)["log"])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("draft_double: ")]
    assert any("66 GET_SUB_IDS, optlen=512) = 0" in ln for ln in lines), proc.stderr
    assert any("68 GET_SUB_TUPLE, optlen=57) = -1 errno=22" in ln for ln in lines), proc.stderr


def test_no_log_by_default(double_so: pathlib.Path) -> None:
    proc = run_driver(double_so, "log")
    report(proc)
    assert "draft_double:" not in proc.stderr, proc.stderr


def test_mainline_answers_enoprotoopt_without_double() -> None:
    """The detection the double exists for: mainline says ENOPROTOOPT, the fork EOPNOTSUPP."""
    if "draft_double" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("this pytest process itself runs under the double")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(OSError) as info:
            s.getsockopt(socket.IPPROTO_TCP, 66, 512)
    assert info.value.errno == errno.ENOPROTOOPT


def test_double_compiles_without_warnings(tmp_path: pathlib.Path) -> None:
    gcc = find_gcc()
    if gcc is None:
        if in_ci():
            pytest.fail("gcc not found (CI=true)")
        pytest.skip("gcc not found")
    proc = subprocess.run(
        [gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
         "-o", str(tmp_path / "d.so"), str(SOURCE), "-ldl", "-lpthread"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_build_is_cached(double_so: pathlib.Path) -> None:
    mtime = double_so.stat().st_mtime_ns
    assert build_double() == double_so
    assert double_so.stat().st_mtime_ns == mtime


def test_child_env_appends_after_existing_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/opt/libasan.so /x/other.so")
    env = child_env("/tmp/draft_double.so", {"DRAFT_DOUBLE_LOG": "1"})
    assert env["LD_PRELOAD"] == "/opt/libasan.so:/x/other.so:/tmp/draft_double.so"
    assert env["DRAFT_DOUBLE_LOG"] == "1"
    assert child_env("/tmp/draft_double.so")["PATH"] == os.environ["PATH"]
    monkeypatch.delenv("LD_PRELOAD")
    assert child_env("/tmp/draft_double.so")["LD_PRELOAD"] == "/tmp/draft_double.so"
