"""Address id 0, the connection's initial address, and the id ranges of each
path-manager command, against the kernel (checked from outside with ``ss`` on both
sides, ``ip mptcp monitor`` on the peer and ``ip mptcp endpoint show``).

For every command a test sends the boundary ids both ways: through the library and
raw (the library's netlink socket without its checks), and asserts the kernel takes
what the library takes and refuses what it refuses."""

from __future__ import annotations

import errno
import re
import socket
import struct
from collections.abc import Callable
from typing import Any, Optional

import pytest

import mptcp
from mptcp import pm as P
from mptcp._addr import parse_ip
from mptcp._lab import Lab
from mptcp._netlink import genl
from mptcp._netlink.mptcp_pm import FAMILY, AddrAttr, Cmd, PmAttr, put_addr

from tests.outside import start_ip_monitor


def in_ns(lab: Lab, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return lab.run_in(lab.client_ns, fn, *args, **kw)


def pm_call(lab: Lab, fn: Callable[[P.PathManager], Any]) -> Any:
    def run() -> Any:
        with P.PathManager() as pm:
            return fn(pm)

    return in_ns(lab, run)


def raw(lab: Lab, cmd: int, fill: Callable[[genl.Encoder], None]) -> int:
    """Send one mptcp_pm command without the library's checks: 0 or the kernel's errno."""
    def run() -> int:
        hook = lambda err, *a: mptcp.MPTCPError(err, "raw")  # noqa: E731
        with genl.GenlSocket(FAMILY, error_hook=hook) as s:
            try:
                s.request(cmd, fill)
            except mptcp.MPTCPError as err:
                return err.errno or -1
        return 0

    return int(in_ns(lab, run))


def outcome(lab: Lab, fn: Callable[[P.PathManager], Any]) -> str:
    """"ok", "refused" (the library's ValueError, before sending) or the error class."""
    try:
        pm_call(lab, fn)
    except ValueError:
        return "refused"
    except mptcp.MPTCPError as err:
        return type(err).__name__
    return "ok"


def established(lab: Lab, port: int) -> socket.socket:
    """A connection the kernel will add subflows to: fully established, which takes
    the peer's acknowledgement of data (``ss`` flag ``e`` on the first subflow)."""
    s = lab.connect(port=port)
    s.sendall(b"x")
    local = s.getsockname()
    lab.wait_for(lambda: any(r["local"] == local and r["fully_established"]
                             for r in lab.ss_subflows(lab.client_ns)),
                 what="the connection to be fully established")
    return s


def peer_subflow(lab: Lab, client_local: tuple[str, int]) -> Optional[dict[str, Any]]:
    """The server's view (``ss``) of the subflow from ``client_local``."""
    for r in lab.ss_subflows(lab.server_ns):
        if r["remote"] == client_local:
            return r
    return None


def new_subflow_from(lab: Lab, s: socket.socket, host: str, before: set[int]) -> Any:
    return lab.wait_for(
        lambda: next((sf for sf in mptcp.subflows(s)
                      if sf.local[0] == host and sf.id not in before), None),
        what=f"a new subflow from {host}")


# ---------------------------------------------------------------- id 0 by default


@pytest.mark.parametrize("how", ["create_subflow-token", "create_subflow-socket", "open_sub"])
def test_new_subflow_from_the_initial_address_carries_id_0(ulab: Lab, how: str) -> None:
    srv = ulab.start_server()
    c1 = ulab.client_addrs["v4"][0]
    s2 = ulab.server_addrs["v4"][1]
    with established(ulab, srv.port) as s:
        assert s.getsockname()[0] == c1
        before = set(mptcp.get_sub_ids(s))
        if how == "open_sub":
            in_ns(ulab, mptcp.open_sub, s, local=c1, remote=(s2, srv.port))
        else:
            conn = mptcp.info(s).token if how.endswith("token") else s
            lid = pm_call(ulab, lambda pm: pm.create_subflow(conn, c1, (s2, srv.port)))
            assert lid == 0
        sf = new_subflow_from(ulab, s, c1, before)
        # both ends, from outside: the new subflow's address id is 0, as the first's
        mine = next(r for r in ulab.ss_subflows(ulab.client_ns) if r["local"] == tuple(sf.local))
        assert mine["loc_id"] == 0, mine["info"]
        theirs = ulab.wait_for(lambda: peer_subflow(ulab, tuple(sf.local)), what="the peer's view")
        assert theirs["rem_id"] == 0, theirs["info"]
        # one address, one id: the kernel lists the initial address once, with id 0
        held = pm_call(ulab, lambda pm: pm.local_addresses(s))
        assert [(e.id, e.addr) for e in held] == [(0, c1)]


def test_explicit_local_id_0_from_the_initial_address(ulab: Lab) -> None:
    srv = ulab.start_server()
    c1, c2 = ulab.client_addrs["v4"]
    s1, s2 = ulab.server_addrs["v4"]
    with established(ulab, srv.port) as s:
        before = set(mptcp.get_sub_ids(s))
        assert pm_call(ulab, lambda pm: pm.create_subflow(s, c1, (s2, srv.port), local_id=0)) == 0
        sf = new_subflow_from(ulab, s, c1, before)
        theirs = ulab.wait_for(lambda: peer_subflow(ulab, tuple(sf.local)), what="the peer's view")
        assert theirs["rem_id"] == 0
        # another address takes a non-zero id by default
        assert pm_call(ulab, lambda pm: pm.create_subflow(s, c2, (s1, srv.port))) == 1


def test_explicit_ids_that_break_id_0_are_refused(ulab: Lab) -> None:
    # The kernel takes both (seen live: the peer then sees rem_id 0 for two
    # addresses, or two ids for one): the library refuses them, naming why.
    srv = ulab.start_server()
    c1, c2 = ulab.client_addrs["v4"]
    s1, s2 = ulab.server_addrs["v4"]
    with established(ulab, srv.port) as s:
        ids = mptcp.get_sub_ids(s)
        with pytest.raises(mptcp.PathManagerError, match=f"initial local address {c1}"):
            pm_call(ulab, lambda pm: pm.create_subflow(s, c2, (s1, srv.port), local_id=0))
        with pytest.raises(mptcp.PathManagerError, match="whose address id is 0, not 3"):
            pm_call(ulab, lambda pm: pm.create_subflow(mptcp.info(s).token, c1, (s2, srv.port),
                                                       local_id=3))
        assert mptcp.get_sub_ids(s) == ids and len(ulab.ss_subflows(ulab.server_ns)) >= 1
        assert [r for r in ulab.ss_subflows(ulab.client_ns) if r["local"][0] == c2] == []


# ---------------------------------------------------------------- remove id 0


def test_remove_id_0_withdraws_the_initial_address(ulab: Lab) -> None:
    srv = ulab.start_server()
    c1, c2 = ulab.client_addrs["v4"]
    s1 = ulab.server_addrs["v4"][0]
    ipm, first = start_ip_monitor(ulab, ulab.server_ns)
    try:
        with established(ulab, srv.port) as s:
            initial = s.getsockname()
            in_ns(ulab, mptcp.open_sub, s, local=c2, remote=(s1, srv.port))
            pm_call(ulab, lambda pm: pm.remove(s, 0))
            # the initial subflow closes (client's ss); the connection goes on over c2
            ulab.wait_for(lambda: all(r["local"] != initial or r["state"] != "ESTAB"
                                      for r in ulab.ss_subflows(ulab.client_ns)),
                          what="the initial subflow to close")
            s.sendall(b"still there")
            # the peer got REMOVE_ADDR id 0 and closed its end of the initial subflow
            # (ip mptcp monitor on the server)
            token = next(r["token"] for r in ulab.ss_subflows(ulab.server_ns)
                         if r["remote"][0] == c2)

            def seen(kind: str, *words: str) -> bool:
                return any(re.match(rf"\[\s*{kind}\]", line) and f"token={token:08x}" in line
                           and all(w in line.split() for w in words) for line in ipm.lines[first:])

            ulab.wait_for(lambda: seen("REMOVED", "remid=0")
                          and seen("SF_CLOSED", "remid=0", f"daddr4={c1}", f"dport={initial[1]}"),
                          what=f"REMOVED remid=0 and SF_CLOSED on the peer: {ipm.lines[first:]}")
    finally:
        ipm.stop()


# ---------------------------------------------------------------- remove_endpoint id 0


def test_remove_endpoint_id_0_by_address(pm_lab: Lab) -> None:
    c1, c2 = pm_lab.client_addrs["v4"]
    srv = pm_lab.start_server()
    pm_call(pm_lab, lambda pm: pm.flush_endpoints())
    pm_call(pm_lab, lambda pm: pm.add_endpoint(c2, dev="c2", subflow=True))
    try:
        with pm_lab.connect(port=srv.port) as s:
            s.sendall(b"x" * 2000)
            pm_lab.wait_for(lambda: len(mptcp.get_sub_ids(s)) == 2, what="the endpoint's subflow")
            initial = s.getsockname()
            with pytest.raises(ValueError, match="give the address too"):
                pm_call(pm_lab, lambda pm: pm.remove_endpoint(0))
            pm_call(pm_lab, lambda pm: pm.remove_endpoint(0, c1))
            pm_lab.wait_for(lambda: [sf.local[0] for sf in mptcp.subflows(s)] == [c2],
                          what="the initial subflow to close")
            assert all(r["local"] != initial or r["state"] != "ESTAB"
                       for r in pm_lab.ss_subflows(pm_lab.client_ns))
            s.sendall(b"still there")
            # the endpoints are untouched (no endpoint has id 0)
            shown = pm_lab.ip(pm_lab.client_ns, "mptcp", "endpoint", "show")
            assert c2 in shown and c1 not in shown
    finally:
        pm_call(pm_lab, lambda pm: pm.flush_endpoints())


# ---------------------------------------------------------------- the ranges, per command


def _id_only(i: int) -> Callable[[genl.Encoder], None]:
    return lambda e: put_addr(e, PmAttr.ADDR, None, id=i)


def test_endpoint_id_ranges_agree_with_the_kernel(pm_lab: Lab) -> None:
    n = pm_lab.net
    flush = lambda: pm_call(pm_lab, lambda pm: pm.flush_endpoints())  # noqa: E731
    shown = lambda: pm_lab.ip(pm_lab.client_ns, "mptcp", "endpoint", "show")  # noqa: E731
    flush()
    try:
        # ADD_ADDR: 0 means "the kernel picks" for both; 1 and 255 are ids
        for i in (0, 1, 255):
            addr = f"10.{n}.2.{100 + i % 100}"
            assert raw(pm_lab, Cmd.ADD_ADDR, lambda e: put_addr(
                e, PmAttr.ADDR, parse_ip(addr), id=i, flags=2)) == 0
            got = shown()
            flush()
            ep = pm_call(pm_lab, lambda pm: pm.add_endpoint(addr, id=i, subflow=True))
            assert ep.id == (i or ep.id) and ep.id != 0
            assert shown() == got
            flush()
        # ids above 255 cannot be carried: the kernel reads the u8's low byte
        # (263 is endpoint 7), so the library refuses them
        def wide(e: genl.Encoder) -> None:
            start = e.nest_start(PmAttr.ADDR)
            e.put(AddrAttr.FAMILY, socket.AF_INET)
            e.put(AddrAttr.ADDR4, parse_ip(f"10.{n}.2.50").packed)
            e.put_u16(AddrAttr.ID, 263)
            e.put(AddrAttr.FLAGS, 2)
            e.nest_end(start)
        assert raw(pm_lab, Cmd.ADD_ADDR, wide) == 0 and f"10.{n}.2.50 id 7 " in shown()
        flush()
        for bad in (256, 263, -1):
            assert outcome(pm_lab, lambda pm: pm.add_endpoint(f"10.{n}.2.50", id=bad)) == "refused"
            assert outcome(pm_lab, lambda pm: pm.remove_endpoint(bad)) == "refused"
            assert outcome(pm_lab, lambda pm: pm.set_endpoint_flags(bad, backup=True)) == "refused"
            assert outcome(pm_lab, lambda pm: pm.get_endpoint(bad)) == "refused"

        for i in (1, 255):
            pm_call(pm_lab, lambda pm: pm.add_endpoint(f"10.{n}.2.{i % 100 + 1}", id=i, subflow=True))
        # SET_FLAGS by id: the kernel refuses 0 ("missing address ID"), so does the library
        assert raw(pm_lab, Cmd.SET_FLAGS, lambda e: put_addr(e, PmAttr.ADDR, None, id=0, flags=4)) \
            == errno.EOPNOTSUPP
        assert outcome(pm_lab, lambda pm: pm.set_endpoint_flags(0, backup=True)) == "refused"
        for i in (1, 255):
            assert raw(pm_lab, Cmd.SET_FLAGS, lambda e: put_addr(e, PmAttr.ADDR, None, id=i, flags=4)) == 0
            assert outcome(pm_lab, lambda pm: pm.set_endpoint_flags(i, backup=False)) == "ok"
        # GET_ADDR by id: 0 is a valid question whose answer is "none" (no endpoint
        # has id 0); 1 and 255 are found
        assert raw(pm_lab, Cmd.GET_ADDR, _id_only(0)) == errno.EINVAL
        assert pm_call(pm_lab, lambda pm: pm.get_endpoint(0)) is None
        for i in (1, 255):
            assert raw(pm_lab, Cmd.GET_ADDR, _id_only(i)) == 0
            assert pm_call(pm_lab, lambda pm: pm.get_endpoint(i)).id == i
        # DEL_ADDR: 1 and 255 remove the endpoint; 0 needs the address. Without
        # it the kernel answers 0 but does nothing, so the library refuses it.
        before = shown()
        assert raw(pm_lab, Cmd.DEL_ADDR, _id_only(0)) == 0 and shown() == before
        assert outcome(pm_lab, lambda pm: pm.remove_endpoint(0)) == "refused"
        c1 = pm_lab.client_addrs["v4"][0]
        assert raw(pm_lab, Cmd.DEL_ADDR, lambda e: put_addr(e, PmAttr.ADDR, parse_ip(c1), id=0)) == 0
        assert outcome(pm_lab, lambda pm: pm.remove_endpoint(0, c1)) == "ok"
        assert shown() == before
        assert raw(pm_lab, Cmd.DEL_ADDR, _id_only(1)) == 0
        assert outcome(pm_lab, lambda pm: pm.remove_endpoint(255)) == "ok"
        assert shown().strip() == ""
    finally:
        flush()


def test_connection_id_ranges_agree_with_the_kernel(ulab: Lab) -> None:
    srv = ulab.start_server()
    c1, c2 = ulab.client_addrs["v4"]
    s1, s2 = ulab.server_addrs["v4"]
    n = ulab.net
    with established(ulab, srv.port) as s:
        tok = mptcp.info(s).token

        def announce(i: int, host: str) -> Callable[[genl.Encoder], None]:
            def fill(e: genl.Encoder) -> None:
                e.put(PmAttr.TOKEN, tok)
                put_addr(e, PmAttr.ADDR, parse_ip(host), id=i, flags=1)
            return fill

        def remove(i: int) -> Callable[[genl.Encoder], None]:
            return lambda e: (e.put(PmAttr.TOKEN, tok), e.put(PmAttr.LOC_ID, i))  # type: ignore[func-returns-value]

        # ANNOUNCE: the kernel refuses id 0 ("invalid addr id"), so does the library
        assert raw(ulab, Cmd.ANNOUNCE, announce(0, f"10.{n}.2.60")) == errno.EINVAL
        assert outcome(ulab, lambda pm: pm.announce(s, f"10.{n}.2.60", 0)) == "refused"
        for i, host in ((1, f"10.{n}.2.61"), (255, f"10.{n}.2.62")):
            assert raw(ulab, Cmd.ANNOUNCE, announce(i, host)) == 0
            assert outcome(ulab, lambda pm: pm.announce(s, host, i)) == "ok"  # again: same id
        for i, host in ((2, f"10.{n}.2.63"), (254, f"10.{n}.2.64")):
            assert outcome(ulab, lambda pm: pm.announce(s, host, i)) == "ok"
        # REMOVE: 1 and 255 (announced above) and 0 (the initial address) are taken
        assert raw(ulab, Cmd.REMOVE, remove(1)) == 0
        assert outcome(ulab, lambda pm: pm.remove(s, 255)) == "ok"
        assert raw(ulab, Cmd.REMOVE, remove(254)) == 0
        assert outcome(ulab, lambda pm: pm.remove(s, 2)) == "ok"
        for bad in (256, -1):
            assert outcome(ulab, lambda pm: pm.remove(s, bad)) == "refused"
            assert outcome(ulab, lambda pm: pm.announce(s, c2, bad)) == "refused"
            assert outcome(ulab, lambda pm: pm.create_subflow(s, c2, (s1, srv.port),
                                                              local_id=bad)) == "refused"
        # SUBFLOW_CREATE: 0 from the initial address, 1-255 from another
        before = set(mptcp.get_sub_ids(s))
        assert outcome(ulab, lambda pm: pm.create_subflow(s, c1, (s2, srv.port), local_id=0)) == "ok"
        new_subflow_from(ulab, s, c1, before)
        assert outcome(ulab, lambda pm: pm.create_subflow(s, c2, (s1, srv.port),
                                                          local_id=255)) == "ok"
        new_subflow_from(ulab, s, c2, before)

        def create(i: int, host: str, rhost: str) -> Callable[[genl.Encoder], None]:
            def fill(e: genl.Encoder) -> None:
                e.put(PmAttr.TOKEN, tok)
                put_addr(e, PmAttr.ADDR, parse_ip(host), id=i)
                put_addr(e, PmAttr.ADDR_REMOTE, parse_ip(rhost), port=srv.port)
            return fill

        # the same again, raw: the kernel takes the ids it now holds for them
        assert raw(ulab, Cmd.SUBFLOW_CREATE, create(0, c1, s1)) == 0
        assert raw(ulab, Cmd.SUBFLOW_CREATE, create(255, c2, s2)) == 0
        # REMOVE id 0: taken (the initial address has subflows)
        assert outcome(ulab, lambda pm: pm.remove(s, 0)) == "ok"
        assert raw(ulab, Cmd.REMOVE, remove(255)) == 0


def test_create_subflow_asks_again_when_the_id_it_remembered_went_stale(ulab: Lab) -> None:
    srv = ulab.start_server()
    c2 = ulab.client_addrs["v4"][1]
    s1, s2 = ulab.server_addrs["v4"]
    with established(ulab, srv.port) as s:
        tok = mptcp.info(s).token
        before = set(mptcp.get_sub_ids(s))
        assert pm_call(ulab, lambda pm: pm.create_subflow(tok, c2, (s1, srv.port))) == 1
        sf = new_subflow_from(ulab, s, c2, before)
        pm_call(ulab, lambda pm: pm.destroy_subflow(tok, tuple(sf.local), tuple(sf.remote)))
        ulab.wait_for(lambda: sf.id not in mptcp.get_sub_ids(s), what="the subflow to close")

        def other_actor(e: genl.Encoder) -> None:  # another program gives c2 id 7
            e.put(PmAttr.TOKEN, tok)
            put_addr(e, PmAttr.ADDR, parse_ip(c2), id=7)
            put_addr(e, PmAttr.ADDR_REMOTE, parse_ip(s2), port=srv.port)

        assert raw(ulab, Cmd.SUBFLOW_CREATE, other_actor) == 0
        # the library remembered 1 for c2; the kernel refuses it, the library asks again
        before = set(mptcp.get_sub_ids(s))
        assert pm_call(ulab, lambda pm: pm.create_subflow(tok, c2, (s1, srv.port))) == 7
        new = ulab.wait_for(lambda: next((x for x in mptcp.subflows(s) if x.id not in before
                                          and tuple(x.remote) == (s1, srv.port)), None),
                            what="the new subflow to s1")
        theirs = ulab.wait_for(lambda: peer_subflow(ulab, tuple(new.local)), what="the peer's view")
        assert theirs["rem_id"] == 7, theirs["info"]
