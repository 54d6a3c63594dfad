"""The 6.18 path-manager features: laminar endpoints (and what ``mptcp_info`` and
``Poller.info`` say about the endpoints), an announced address's interface."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import mptcp
from mptcp import pm as P
from mptcp._lab import Lab


def pm_call(lab: Lab, fn: Callable[[P.PathManager], Any]) -> Any:
    def run() -> Any:
        with P.PathManager() as pm:
            return fn(pm)

    return lab.run_in(lab.client_ns, run)


def ss_info(lab: Lab, local: tuple[str, int]) -> dict[str, int]:
    """The numbers ``ss -Mi`` prints for the MPTCP socket bound to ``local``."""
    out = lab.sh(lab.client_ns, "ss", "-MinH")
    for rec in re.split(r"\n(?=\S)", out.strip()):
        if f"{local[0]}:{local[1]} " in rec:
            return {k: int(v) for k, v in re.findall(r"(\w+):(\d+)\b", rec)}
    raise AssertionError(f"no MPTCP socket {local} in:\n{out}")


def test_laminar_endpoint_and_the_endpoint_counters(pm_lab: Lab) -> None:
    n = pm_lab.net
    c2 = pm_lab.client_addrs["v4"][1]
    pm_call(pm_lab, lambda pm: pm.flush_endpoints())
    try:
        ep = pm_call(pm_lab, lambda pm: pm.add_endpoint(c2, dev="c2", laminar=True))
        assert ep.flags == mptcp.EndpointFlags.LAMINAR and ep.dev == "c2"
        assert pm_call(pm_lab, lambda pm: pm.get_endpoint(ep.id)) == ep
        # iproute2 6.1 does not know the flag by name: it prints its bit (0x20)
        (line,) = pm_lab.ip(pm_lab.client_ns, "mptcp", "endpoint", "show").splitlines()
        assert line.split()[:3] == [c2, "id", str(ep.id)] and "rawflags 20" in line, line
        pm_call(pm_lab, lambda pm: pm.add_endpoint(f"10.{n}.2.9", signal=True))
        pm_call(pm_lab, lambda pm: pm.add_endpoint(f"10.{n}.2.10", laminar=True, subflow=True))

        srv = pm_lab.start_server()
        with pm_lab.connect(port=srv.port) as s:
            s.sendall(b"x")
            info = mptcp.info(s)
            assert (info.endp_laminar_max, info.endp_fullmesh_max) == (2, 0)
            assert info.add_addr_signal_max == 1 and info.add_addr_accepted_max == 8
            with mptcp.Poller(s) as p:
                p.poll()
                view = p.info
                for field in ("subflows_max", "add_addr_signal_max", "add_addr_accepted_max",
                              "endp_laminar_max", "endp_fullmesh_max", "local_addr_max"):
                    assert getattr(view, field) == getattr(mptcp.info(s), field), field
                # the outside view of the same numbers (ss prints the non-zero ones)
                ss = ss_info(pm_lab, s.getsockname())
                assert ss["add_addr_signal_max"] == view.add_addr_signal_max == 1
                assert ss["add_addr_accepted_max"] == view.add_addr_accepted_max == 8
                assert ss["subflows_max"] == view.subflows_max
    finally:
        pm_call(pm_lab, lambda pm: pm.flush_endpoints())


def test_announce_with_an_interface(ulab: Lab) -> None:
    srv = ulab.start_server()
    n = ulab.net
    c2 = ulab.client_addrs["v4"][1]
    c2_index = ulab.ifindex(ulab.client_ns, "c2")
    with ulab.connect(port=srv.port) as s:
        s.sendall(b"x")
        pm_call(ulab, lambda pm: pm.announce(s, c2, 5, dev="c2"))
        pm_call(ulab, lambda pm: pm.announce(s, f"10.{n}.2.20", 6, if_index=c2_index))
        pm_call(ulab, lambda pm: pm.announce(s, f"10.{n}.2.21", 7))
        held = {e.id: e for e in pm_call(ulab, lambda pm: pm.local_addresses(s))}
        assert (held[5].addr, held[5].if_index, held[5].dev) == (c2, c2_index, "c2")
        assert (held[6].addr, held[6].if_index, held[6].dev) == (f"10.{n}.2.20", c2_index, "c2")
        assert (held[7].if_index, held[7].dev) == (None, None)
        for kw, exc in (({"dev": "c2", "if_index": c2_index}, TypeError),
                        ({"dev": "nosuchdev0"}, ValueError), ({"if_index": 0}, ValueError),
                        ({"if_index": "1"}, TypeError), ({"dev": 3}, TypeError)):
            with pytest.raises(exc):
                pm_call(ulab, lambda pm: pm.announce(s, f"10.{n}.2.22", 8, **kw))
        assert 8 not in {e.id for e in pm_call(ulab, lambda pm: pm.local_addresses(s))}


def test_events_carry_the_kernels_family(ulab: Lab) -> None:
    import socket
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from outside import start_ip_monitor

    srv4 = ulab.start_server()
    srv6 = ulab.start_server(family=socket.AF_INET6)
    ipm, first = start_ip_monitor(ulab, ulab.client_ns)
    try:
        with ulab.run_in(ulab.client_ns, mptcp.events) as mon:
            got = {}
            for family, srv in ((socket.AF_INET, srv4), (socket.AF_INET6, srv6)):
                with ulab.connect(family=family, port=srv.port) as s:
                    s.sendall(b"x")
                    token = mptcp.info(s).token
                    while True:
                        ev = mon.read(timeout=5)
                        if ev.token == token and ev.type == mptcp.EventType.CREATED:
                            got[family] = (token, ev.family)
                            break
            assert got[socket.AF_INET][1] == socket.AF_INET
            assert got[socket.AF_INET6][1] == socket.AF_INET6
        # ip mptcp monitor prints the address attribute of that family
        for family, (token, _) in got.items():
            key = "saddr4=" if family == socket.AF_INET else "saddr6="
            ulab.wait_for(lambda: any("CREATED" in line and f"token={token:08x}" in line
                                      and key in line for line in ipm.lines[first:]),
                          what=f"ip mptcp monitor's CREATED of {token:08x}")
    finally:
        ipm.stop()
