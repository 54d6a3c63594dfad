"""``mptcp endpoint`` and ``mptcp limits`` run as a user runs them (a subprocess in
the lab's client namespace), each compared with ``ip mptcp`` doing the same."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mptcp
from mptcp._lab import Lab

SRC = str(Path(mptcp.__file__).resolve().parents[1])


@pytest.fixture
def clean(pm_lab: Lab) -> Iterator[Lab]:
    pm_lab.ip(pm_lab.client_ns, "mptcp", "endpoint", "flush")
    try:
        yield pm_lab
    finally:
        pm_lab.ip(pm_lab.client_ns, "mptcp", "endpoint", "flush")
        pm_lab.ip(pm_lab.client_ns, "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8")


def run(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(["ip", "netns", "exec", lab.client_ns, sys.executable, "-m", "mptcp",
                           *args], capture_output=True, text=True, timeout=60, env=env)


def ok(lab: Lab, *args: str) -> str:
    res = run(lab, *args)
    assert res.returncode == 0 and res.stderr == "", (args, res.returncode, res.stderr)
    return res.stdout


def ip_show(lab: Lab) -> list[str]:
    out = lab.ip(lab.client_ns, "mptcp", "endpoint", "show")
    return [line.strip() for line in out.splitlines() if line.strip()]


def flush(lab: Lab) -> None:
    lab.ip(lab.client_ns, "mptcp", "endpoint", "flush")


def test_add_forms_do_what_ip_does(clean: Lab) -> None:
    lab = clean
    a = f"10.{lab.net}.2.7"
    c2 = lab.client_addrs["v4"][1]
    forms = [
        # (mptcp endpoint add ..., ip mptcp endpoint add ...)
        ([a], [a]),                                                  # no flags (was exit 2)
        ([a, "--id", "9", "subflow"], [a, "id", "9", "subflow"]),   # option after the address
        (["--id", "9", a, "subflow"], [a, "id", "9", "subflow"]),
        ([a, "id", "9", "dev", "c2", "subflow", "backup"],           # ip's own order
         [a, "id", "9", "dev", "c2", "subflow", "backup"]),
        ([a, "subflow", "--dev=c2", "fullmesh", "--id=12"], [a, "id", "12", "dev", "c2", "subflow",
                                                            "fullmesh"]),
        # a port is announced: the kernel listens on it, so the address must be ours
        ([c2, "port", "8080", "signal", "id", "3"], [c2, "port", "8080", "id", "3", "signal"]),
    ]
    for mine, theirs in forms:
        ok(lab, "endpoint", "add", *mine)
        got = ip_show(lab)
        flush(lab)
        lab.ip(lab.client_ns, "mptcp", "endpoint", "add", *theirs)
        want = ip_show(lab)
        flush(lab)
        assert got == want and len(got) == 1, (mine, got, want)


def test_show_prints_what_ip_prints(clean: Lab) -> None:
    lab = clean
    n = lab.net
    for words in ([f"10.{n}.2.7", "id", "9", "dev", "c2", "subflow", "backup"],
                  [lab.client_addrs["v4"][1], "signal", "port", "8080"],
                  [f"fd00:{n:x}:2::7", "id", "30", "subflow", "fullmesh"],
                  [f"10.{n}.2.9", "signal", "backup"]):
        lab.ip(lab.client_ns, "mptcp", "endpoint", "add", *words)
    shown = ok(lab, "endpoint", "show").splitlines()
    assert shown == ip_show(lab)  # flags by name (was "flags 6"), port, dev, as ip orders them
    assert ok(lab, "endpoint", "show", "id", "9").splitlines() == [shown[0]]
    assert any(" subflow backup dev c2" in line for line in shown)
    res = run(lab, "endpoint", "show", "id", "99")
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1 and "no endpoint" in res.stderr
    # the flag iproute2 6.1 does not know: ip prints its bit, mptcp its name
    ok(lab, "endpoint", "add", f"10.{n}.2.10", "id", "40", "laminar")
    assert f"10.{n}.2.10 id 40 rawflags 20" in ip_show(lab)
    assert f"10.{n}.2.10 id 40 laminar" in ok(lab, "endpoint", "show").splitlines()


def test_del_and_change_do_what_ip_does(clean: Lab) -> None:
    lab = clean
    n = lab.net
    for i in (5, 6, 7):
        lab.ip(lab.client_ns, "mptcp", "endpoint", "add", f"10.{n}.2.{i}", "id", str(i), "subflow")
    ok(lab, "endpoint", "del", "5")
    ok(lab, "endpoint", "delete", "id", "6", f"10.{n}.2.6")  # ip's form, address included
    assert ip_show(lab) == [f"10.{n}.2.7 id 7 subflow"]
    ok(lab, "endpoint", "change", "7", "backup")
    assert ip_show(lab) == [f"10.{n}.2.7 id 7 subflow backup"]
    ok(lab, "endpoint", "change", "id", "7", "nobackup", "fullmesh")
    assert ip_show(lab) == [f"10.{n}.2.7 id 7 subflow fullmesh"]
    lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", "7", "backup", "nofullmesh")
    assert ok(lab, "endpoint", "show").splitlines() == ip_show(lab) == [
        f"10.{n}.2.7 id 7 subflow backup"]


def test_del_id_0_with_the_address_removes_the_initial_subflow_as_ip_does(clean: Lab) -> None:
    lab = clean
    c1, c2 = lab.client_addrs["v4"]
    srv = lab.start_server()
    lab.ip(lab.client_ns, "mptcp", "endpoint", "add", c2, "dev", "c2", "subflow")
    for tool in ("mptcp", "ip"):
        with lab.connect(port=srv.port) as s:
            s.sendall(b"x" * 2000)
            lab.wait_for(lambda: len(mptcp.get_sub_ids(s)) == 2, what="the endpoint's subflow")
            if tool == "mptcp":
                ok(lab, "endpoint", "del", "id", "0", c1)
            else:
                lab.ip(lab.client_ns, "mptcp", "endpoint", "delete", "id", "0", c1)
            lab.wait_for(lambda: [sf.local[0] for sf in mptcp.subflows(s)] == [c2],
                         what=f"{tool}: the initial subflow to close")
            assert ip_show(lab) == [f"{c2} id 1 subflow dev c2"]


def test_limits_set(clean: Lab) -> None:
    lab = clean
    ok(lab, "limits", "set", "subflows", "3")                       # ip's form
    assert "add_addr_accepted 8 subflows 3" in lab.ip(lab.client_ns, "mptcp", "limits", "show")
    ok(lab, "limits", "set", "--add-addr-accepted", "2", "subflows", "4")  # mixed
    assert "add_addr_accepted 2 subflows 4" in lab.ip(lab.client_ns, "mptcp", "limits", "show")
    assert ok(lab, "limits", "show").strip() == "add_addr_accepted 2 subflows 4"


USAGE = [
    ("limits", "set"),                                  # did nothing and exited 0
    ("endpoint", "del", "300"),                         # exited 1 from the library's ValueError
    ("endpoint", "del", "id", "256"),
    ("endpoint", "del", "0"),                           # id 0 needs the address
    ("endpoint", "del"),
    ("endpoint", "add"),
    ("endpoint", "add", "10.0.0.300"),
    ("endpoint", "add", "10.0.0.1", "id", "256"),
    ("endpoint", "add", "10.0.0.1", "port", "65536", "signal"),
    ("endpoint", "add", "10.0.0.1", "subflow", "subflow"),
    ("endpoint", "add", "10.0.0.1", "nosuchflag"),
    ("endpoint", "add", "10.0.0.1", "--nosuchoption"),
    ("endpoint", "change", "0", "backup"),              # the kernel refuses id 0 there
    ("endpoint", "change", "5"),
    ("endpoint", "change", "5", "backup", "nobackup"),
    ("endpoint", "show", "id", "x"),
    ("limits", "set", "subflows", "-1"),
    ("limits", "set", "subflows"),
]


@pytest.mark.parametrize("argv", USAGE, ids=[" ".join(a) for a in USAGE])
def test_usage_errors_exit_2_with_one_line_and_change_nothing(clean: Lab, argv: tuple[str, ...]) -> None:
    lab = clean
    lab.ip(lab.client_ns, "mptcp", "endpoint", "add", f"10.{lab.net}.2.5", "id", "5", "subflow")
    before = (ip_show(lab), lab.ip(lab.client_ns, "mptcp", "limits", "show"))
    res = run(lab, *argv)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith(f"mptcp {argv[0]}"), res.stderr
    assert res.stdout == ""
    assert (ip_show(lab), lab.ip(lab.client_ns, "mptcp", "limits", "show")) == before
