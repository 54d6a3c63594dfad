"""The `mptcp` command, run as a subprocess like a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from mptcp.lab import Lab


def _mptcp(*args: str, ns: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    cmd = [sys.executable, "-m", "mptcp", *args]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_demo_end_to_end_leaves_no_namespace() -> None:
    res = _mptcp("demo", "--size", "12")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "open_sub -> Subflow(" in out and "backup=True" in out
    assert "cross-check with ss -tin: the same 2 subflow tuples" in out
    assert "matches what was sent" in out and "namespaces removed" in out
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "mptcpdemo" not in left


def test_limits_and_endpoints_json_match_ip(lab: Lab) -> None:
    ns = lab.client_ns
    assert _mptcp("limits", "set", "--subflows", "5", "--add-addr-accepted", "3", ns=ns).returncode == 0
    limits = json.loads(_mptcp("limits", "show", "--json", ns=ns).stdout)
    assert limits == {"subflows": 5, "add_addr_accepted": 3}
    assert "add_addr_accepted 3 subflows 5" in lab.ip(ns, "mptcp", "limits", "show")
    eps = json.loads(_mptcp("endpoint", "show", "--json", ns=ns).stdout)
    assert [e["addr"] for e in eps] == [lab.client_addrs["v4"][1]]  # the lab's endpoint
    assert _mptcp("endpoint", "flush", ns=ns).returncode == 0
    assert lab.ip(ns, "mptcp", "endpoint", "show").strip() == ""


def test_usage_error_exits_2() -> None:
    res = _mptcp("no-such-command")
    assert res.returncode == 2 and "usage" in res.stderr
