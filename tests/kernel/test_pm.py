"""PathManager against the real kernel, in private namespaces."""

from __future__ import annotations

import errno
import re
import socket
from typing import Any

import pytest

import mptcp
from mptcp import pm as P
from mptcp._lab import Lab


def with_pm(lab: Lab, fn: Any) -> Any:
    def run() -> Any:
        with P.PathManager() as pm:
            return fn(pm)

    return lab.run_in(lab.client_ns, run)


def ip_endpoints(lab: Lab) -> list[dict[str, Any]]:
    out = []
    for line in lab.ip(lab.client_ns, "mptcp", "endpoint", "show").splitlines():
        words = line.split()
        if not words:
            continue
        rec: dict[str, Any] = {"addr": words[0], "flags": set(), "port": None, "dev": None}
        it = iter(words[1:])
        for w in it:
            if w in ("id", "port", "dev"):
                v = next(it)
                rec[w] = int(v) if w in ("id", "port") else v
            else:
                rec["flags"].add(w)
        out.append(rec)
    return out


def test_mode(pm_lab: Lab, ulab: Lab) -> None:
    assert with_pm(pm_lab, lambda pm: pm.mode) == "in-kernel"
    assert with_pm(ulab, lambda pm: pm.mode) == "userspace"
    assert pm_lab.run_in(pm_lab.server_ns, P.read_mode) == "in-kernel"


def test_endpoints_round_trip(pm_lab: Lab) -> None:
    a2 = pm_lab.client_addrs["v4"][1]
    a6 = pm_lab.client_addrs["v6"][1]
    with_pm(pm_lab, lambda pm: pm.flush_endpoints())
    ep = with_pm(pm_lab, lambda pm: pm.add_endpoint(a2, dev="c2", subflow=True, backup=True))
    assert ep.addr == a2 and ep.dev == "c2" and ep.if_index == pm_lab.ifindex(pm_lab.client_ns, "c2")
    assert ep.flags == mptcp.EndpointFlags.SUBFLOW | mptcp.EndpointFlags.BACKUP and ep.id >= 1
    ep6 = with_pm(pm_lab, lambda pm: pm.add_endpoint(a6, id=42, port=8080, signal=True))
    assert ep6 == mptcp.Endpoint(42, a6, 8080, mptcp.EndpointFlags.SIGNAL, None, None)
    shown = {r["id"]: r for r in ip_endpoints(pm_lab)}
    assert shown[ep.id]["addr"] == a2 and shown[ep.id]["dev"] == "c2"
    assert shown[ep.id]["flags"] >= {"subflow", "backup"}
    assert shown[42]["addr"] == a6 and shown[42]["port"] == 8080 and "signal" in shown[42]["flags"]
    assert sorted(e.id for e in with_pm(pm_lab, lambda pm: pm.endpoints())) == sorted(shown)
    # one endpoint by id (GET_ADDR with an id), as the dump has it
    for e in with_pm(pm_lab, lambda pm: pm.endpoints()):
        assert with_pm(pm_lab, lambda pm: pm.get_endpoint(e.id)) == e
    assert with_pm(pm_lab, lambda pm: pm.get_endpoint(99)) is None

    ep2 = with_pm(pm_lab, lambda pm: pm.set_endpoint_flags(ep.id, backup=False, fullmesh=True))
    assert ep2.flags == mptcp.EndpointFlags.SUBFLOW | mptcp.EndpointFlags.FULLMESH
    shown = {r["id"]: r for r in ip_endpoints(pm_lab)}
    assert "backup" not in shown[ep.id]["flags"] and "fullmesh" in shown[ep.id]["flags"]
    # None keeps a flag as it is
    ep3 = with_pm(pm_lab, lambda pm: pm.set_endpoint_flags(ep.id, backup=True))
    assert ep3.flags == mptcp.EndpointFlags.SUBFLOW | mptcp.EndpointFlags.FULLMESH | mptcp.EndpointFlags.BACKUP

    with pytest.raises(mptcp.PathManagerError):  # duplicate id
        with_pm(pm_lab, lambda pm: pm.add_endpoint(pm_lab.client_addrs["v4"][0], id=42))
    with_pm(pm_lab, lambda pm: pm.remove_endpoint(42))
    assert 42 not in {r["id"] for r in ip_endpoints(pm_lab)}
    with pytest.raises(mptcp.PathManagerError):
        with_pm(pm_lab, lambda pm: pm.remove_endpoint(42))
    with pytest.raises(mptcp.PathManagerError):
        with_pm(pm_lab, lambda pm: pm.set_endpoint_flags(42, backup=True))
    with_pm(pm_lab, lambda pm: pm.flush_endpoints())
    assert ip_endpoints(pm_lab) == [] and with_pm(pm_lab, lambda pm: pm.endpoints()) == []


def test_limits_round_trip(pm_lab: Lab) -> None:
    assert with_pm(pm_lab, lambda pm: pm.limits()) == mptcp.Limits(8, 8)  # set by the lab
    got = with_pm(pm_lab, lambda pm: pm.set_limits(subflows=3))
    assert got == mptcp.Limits(3, 8)
    got = with_pm(pm_lab, lambda pm: pm.set_limits(add_addr_accepted=5))
    assert got == mptcp.Limits(3, 5)
    text = pm_lab.ip(pm_lab.client_ns, "mptcp", "limits", "show")
    assert re.search(r"add_addr_accepted 5", text) and re.search(r"subflows 3", text)
    with pytest.raises(mptcp.PathManagerError, match="maximum"):
        with_pm(pm_lab, lambda pm: pm.set_limits(subflows=1000))
    with_pm(pm_lab, lambda pm: pm.set_limits(8, 8))


def test_in_kernel_connection_refuses_userspace_commands(pm_lab: Lab) -> None:
    srv = pm_lab.start_server()
    with pm_lab.connect(port=srv.port) as s:
        s.sendall(b"x")
        with pytest.raises(mptcp.PathManagerError, match=r"sysctl net\.mptcp\.pm_type=1"):
            with_pm(pm_lab, lambda pm: pm.create_subflow(
                s, pm_lab.client_addrs["v4"][1], (pm_lab.server_addrs["v4"][0], srv.port)))
        with pytest.raises(mptcp.PathManagerError, match="pm_type=1"):
            with_pm(pm_lab, lambda pm: pm.announce(s, pm_lab.client_addrs["v4"][1], 5))
        with pytest.raises(mptcp.PathManagerError, match="pm_type=1"):
            pm_lab.run_in(pm_lab.client_ns, mptcp.open_sub, s, local=pm_lab.client_addrs["v4"][1])


def test_userspace_commands_and_errors(ulab: Lab) -> None:
    srv = ulab.start_server()
    c1, c2 = ulab.client_addrs["v4"]
    s1, s2 = ulab.server_addrs["v4"]
    with ulab.connect(port=srv.port) as s:
        s.sendall(b"x")
        token = mptcp.info(s).token
        with pytest.raises(mptcp.NotMPTCPError):
            with_pm(ulab, lambda pm: pm.create_subflow((token + 1) & 0xFFFFFFFF or 1, c2, (s1, srv.port)))
        lid = with_pm(ulab, lambda pm: pm.create_subflow(token, c2, (s2, srv.port), backup=True))
        assert lid >= 1
        ulab.wait_for(lambda: len(mptcp.get_sub_ids(s)) == 2, what="second subflow")
        sub = next(r for r in mptcp.subflows(s) if r.local[0] == c2)
        assert [e.id for e in with_pm(ulab, lambda pm: pm.local_addresses(s))] == [lid]
        with_pm(ulab, lambda pm: pm.set_backup(s, sub.local, sub.remote, False))
        with pytest.raises(mptcp.SubflowNotFoundError):
            with_pm(ulab, lambda pm: pm.destroy_subflow(s, (c2, 1), (s2, srv.port)))
        with_pm(ulab, lambda pm: pm.destroy_subflow(s, sub.local, sub.remote))
        ulab.wait_for(lambda: len(mptcp.get_sub_ids(s)) == 1, what="subflow destroyed")
        with_pm(ulab, lambda pm: pm.announce(s, c2, lid))
        with_pm(ulab, lambda pm: pm.remove(s, lid))
        # validation: nothing is sent
        for bad, exc in (
            (lambda pm: pm.create_subflow(s, "fd00::1", (s1, srv.port)), ValueError),
            (lambda pm: pm.create_subflow(s, c2, (s1, 70000)), ValueError),
            (lambda pm: pm.create_subflow(s, "10.0.0.999", (s1, 1)), ValueError),
            (lambda pm: pm.create_subflow(s, c2, s1), TypeError),
            (lambda pm: pm.create_subflow("tok", c2, (s1, 1)), TypeError),
            (lambda pm: pm.announce(s, c2, 0), ValueError),
            (lambda pm: pm.remove(s, 256), ValueError),
            (lambda pm: pm.add_endpoint("nope"), ValueError),
            (lambda pm: pm.add_endpoint(c2, dev="nosuchdev0"), ValueError),
            (lambda pm: pm.set_limits(subflows=-1), ValueError),
            (lambda pm: pm.set_limits(subflows="1"), TypeError),
        ):
            with pytest.raises(exc):
                with_pm(ulab, bad)
    with socket.socket() as plain:
        with pytest.raises((mptcp.NotMPTCPError, OSError)):
            with_pm(ulab, lambda pm: pm.remove(plain, 1))


def test_close_is_idempotent(ulab: Lab) -> None:
    def run() -> None:
        pm = P.PathManager()
        assert pm.limits()
        pm.close()
        pm.close()
        assert pm.closed
        with pytest.raises(mptcp.MPTCPError) as info:
            pm.limits()
        assert info.value.errno == errno.EBADF

    ulab.run_in(ulab.client_ns, run)
