"""Steering subflows with the userspace path manager (real kernel, namespaces)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import mptcp

from mptcp._addr import parse_ip
from mptcp._backends.upstream import control
from mptcp._netlink import genl
from mptcp._lab import Lab

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(ulab: Lab) -> Any:
    return ulab.start_server()


@pytest.fixture(scope="module")
def server6(ulab: Lab) -> Any:
    return ulab.start_server(family=socket.AF_INET6)


def established(lab: Lab, port: int, family: int = socket.AF_INET) -> socket.socket:
    """A connection whose first subflow has exchanged data (the kernel adds
    subflows only to a fully established connection)."""
    s = lab.connect(port=port, family=family)
    s.sendall(b"hello")
    return s


def in_client(lab: Lab, fn: Any, *args: Any, **kw: Any) -> Any:
    return lab.run_in(lab.client_ns, fn, *args, **kw)


def ss_find(lab: Lab, local: tuple[str, int], remote: tuple[str, int]) -> dict[str, Any] | None:
    for rec in lab.ss_subflows(lab.client_ns):
        if tuple(rec["local"]) == tuple(local) and tuple(rec["remote"]) == tuple(remote):
            return rec
    return None


def test_open_sub_path2_visible_in_ss(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        before = mptcp.get_sub_ids(s)
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1])
        assert sf.local[0] == ulab.client_addrs["v4"][1] and sf.local[1] > 0
        assert sf.remote == (ulab.server_addrs["v4"][0], server.port)
        assert sf.prio == 0 and sf.backup is False
        ids = mptcp.get_sub_ids(s)
        assert sf.id in ids and sf.id not in before
        rec = ss_find(ulab, sf.local, sf.remote)
        assert rec is not None and rec["state"] == "ESTAB" and rec["join"]
        assert not rec["backup_local"]
        assert in_client(ulab, mptcp.get_sub_tuple, s, sf.id).local == sf.local
        # the same local address keeps its address id on this connection
        sf2 = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1],
                        remote=ulab.server_addrs["v4"][1])
        rec2 = ss_find(ulab, sf2.local, sf2.remote)
        assert rec2 is not None and rec2["loc_id"] == rec["loc_id"] != 0


def test_open_sub_defaults_route_source(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        # remote on path 2, no local: the routing table picks c2's address
        sf = in_client(ulab, mptcp.open_sub, s, remote=ulab.server_addrs["v4"][1])
        assert sf.local[0] == ulab.client_addrs["v4"][1]
        assert sf.remote == (ulab.server_addrs["v4"][1], server.port)


def test_backup_flag_and_set_sub_prio(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1], backup=True)
        assert sf.prio == 1 and sf.backup is True
        assert ss_find(ulab, sf.local, sf.remote)["backup_local"]
        assert in_client(ulab, mptcp.get_sub_tuple, s, sf.id).prio == 1
        in_client(ulab, mptcp.set_sub_prio, s, sf.id, False)
        ulab.wait_for(lambda: not ss_find(ulab, sf.local, sf.remote)["backup_local"],
                      what="backup flag cleared")
        assert in_client(ulab, mptcp.get_sub_tuple, s, sf.id).prio == 0
        in_client(ulab, mptcp.set_sub_prio, s, sf.id, True)
        ulab.wait_for(lambda: ss_find(ulab, sf.local, sf.remote)["backup_local"],
                      what="backup flag set")
        # the initial subflow too
        first = min(mptcp.get_sub_ids(s))
        t = in_client(ulab, mptcp.get_sub_tuple, s, first)
        in_client(ulab, mptcp.set_sub_prio, s, first, True)
        ulab.wait_for(lambda: ss_find(ulab, t.local, t.remote)["backup_local"],
                      what="backup flag on the initial subflow")


def test_close_sub_removes_it(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1])
        assert ss_find(ulab, sf.local, sf.remote) is not None
        in_client(ulab, mptcp.close_sub, s, sf.id)
        assert sf.id not in mptcp.get_sub_ids(s)
        ulab.wait_for(lambda: ss_find(ulab, sf.local, sf.remote) is None, what="subflow gone")
        with pytest.raises(mptcp.SubflowNotFoundError):
            in_client(ulab, mptcp.close_sub, s, sf.id)
        with pytest.raises(mptcp.SubflowNotFoundError):
            in_client(ulab, mptcp.set_sub_prio, s, sf.id, True)
        with pytest.raises(mptcp.UnsupportedOperationError, match="half-close"):
            in_client(ulab, mptcp.close_sub, s, min(mptcp.get_sub_ids(s)), socket.SHUT_WR)


def test_close_initial_during_transfer(ulab: Lab, server: Any) -> None:
    srv = ulab.start_server()
    payload = os.urandom(16 * MIB)
    with established(ulab, srv.port) as s:
        first = min(mptcp.get_sub_ids(s))
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1],
                       remote=ulab.server_addrs["v4"][1])
        sent = threading.Event()
        closed = threading.Event()
        error: list[BaseException] = []

        def send() -> None:
            try:
                # paced, and held after 2 MiB until the subflow is closed, so the
                # transfer is surely in flight when it closes
                view = memoryview(payload)
                for off in range(0, len(payload), 256 * 1024):
                    if off == 2 * MIB:
                        closed.wait(30)
                    s.sendall(view[off:off + 256 * 1024])
                    time.sleep(0.003)
            except BaseException as e:  # pragma: no cover - reported below
                error.append(e)
            finally:
                sent.set()

        t = threading.Thread(target=send)
        t.start()
        # close the initial subflow while data is in flight
        ulab.wait_for(lambda: (mptcp.info(s).bytes_sent or 0) > MIB or sent.is_set(),
                      interval=0.001, what="transfer started")
        assert not sent.is_set()
        try:
            in_client(ulab, mptcp.close_sub, s, first)
        finally:
            closed.set()
        assert first not in mptcp.get_sub_ids(s)
        t.join(30)
        assert not error
        assert mptcp.get_sub_ids(s) == [sf.id]
        s.shutdown(socket.SHUT_WR)
        got = srv.wait_result(30)
    assert got == (5 + 16 * MIB, hashlib.sha256(b"hello" + payload).hexdigest())


def test_refused_join_and_timeout(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        ids = mptcp.get_sub_ids(s)
        with pytest.raises(mptcp.SubflowOpenError) as info:
            # nobody listens on port 1: the SYN+MP_JOIN gets a RST
            in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1],
                      remote=(ulab.server_addrs["v4"][1], 1))
        assert info.value.errno == errno.ECONNREFUSED
        with pytest.raises(mptcp.SubflowOpenError) as info:
            in_client(ulab, mptcp.open_sub, s, local=f"10.{ulab.net}.9.9")
        assert info.value.errno == errno.EADDRNOTAVAIL
        # the refusal names the user's call, the subflow asked for and the command
        assert str(info.value).startswith(f"[Errno {errno.EADDRNOTAVAIL}] open_sub 10.{ulab.net}.9.9:0 -> "), info.value
        assert "(mptcp_pm SUBFLOW_CREATE)" in str(info.value), info.value
        # an unassigned address inside the lab: the SYN goes unanswered
        with pytest.raises(mptcp.MPTCPTimeoutError):
            in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1],
                      remote=(f"10.{ulab.net}.2.77", server.port), timeout=0.3)
        assert mptcp.get_sub_ids(s) == ids
        assert all(r["remote"][0] != f"10.{ulab.net}.2.77" for r in ulab.ss_subflows(ulab.client_ns))
        with pytest.raises(ValueError):
            in_client(ulab, mptcp.open_sub, s, local="fd00::1", remote=ulab.server_addrs["v4"][1])


def test_ipv6_open_close(ulab: Lab, server6: Any) -> None:
    with established(ulab, server6.port, socket.AF_INET6) as s:
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v6"][1])
        assert sf.local[0] == ulab.client_addrs["v6"][1]
        assert sf.remote == (ulab.server_addrs["v6"][0], server6.port)
        assert ss_find(ulab, sf.local, sf.remote) is not None
        in_client(ulab, mptcp.close_sub, s, sf.id)
        assert sf.id not in mptcp.get_sub_ids(s)


def test_subflow_context_manager(ulab: Lab, server: Any) -> None:
    with established(ulab, server.port) as s:
        def body() -> int:
            with mptcp.subflow(s, local=ulab.client_addrs["v4"][1]) as sf:
                assert sf.id in mptcp.get_sub_ids(s)
                sid = sf.id
            assert sid not in mptcp.get_sub_ids(s)
            with pytest.raises(RuntimeError):
                with mptcp.subflow(s, local=ulab.client_addrs["v4"][1]) as sf:
                    sid = sf.id
                    raise RuntimeError("boom")
            assert sid not in mptcp.get_sub_ids(s)
            # the subflow died inside the block: exit is a no-op
            with mptcp.subflow(s, local=ulab.client_addrs["v4"][1]) as sf:
                mptcp.close_sub(s, sf.id)
            return sid

        in_client(ulab, body)


def _tcp_maxseg_via_info(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("=I", raw, 16)[0])  # tcpi_snd_mss


def test_sockopt_table_matches_kernel(ulab: Lab, server: Any) -> None:
    # The mapping TCP_MAXSEG == tcpi_snd_mss, checked on a plain TCP socket ...
    with ulab.connect(port=server.port, proto=socket.IPPROTO_TCP) as t:
        t.sendall(b"x")
        assert t.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == _tcp_maxseg_via_info(t)
    # ... and on subflows: the MPTCP socket answers TCP_MAXSEG from its first subflow.
    with established(ulab, server.port) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1200)  # applies to all subflows
        sf = in_client(ulab, mptcp.open_sub, s, local=ulab.client_addrs["v4"][1])
        first = min(mptcp.get_sub_ids(s))
        v1 = mptcp.get_sub_sockopt_int(s, first, socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert v1 == s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        v2 = mptcp.get_sub_sockopt_int(s, sf.id, socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        assert v2 == next(r.snd_mss for r in mptcp.subflows(s) if r.id == sf.id)
        assert 0 < v2 <= 1200
        with pytest.raises(mptcp.UnsupportedOperationError, match="TCP_MAXSEG"):
            mptcp.get_sub_sockopt_int(s, first, socket.SOL_SOCKET, socket.SO_LINGER)
        with pytest.raises(mptcp.SubflowNotFoundError):
            mptcp.get_sub_sockopt_int(s, 999, socket.IPPROTO_TCP, socket.TCP_MAXSEG)


_CHILD = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])  # where the parent imported mptcp from
import mptcp
from mptcp import pm as P
host, port, local2 = sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = {}
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((host, port)); s.sendall(b"hi")
def attempt(name, fn):
    try:
        out[name] = ["ok", repr(fn())]
    except Exception as e:
        out[name] = [type(e).__name__, getattr(e, "errno", None), str(e)]
with P.PathManager() as pm:
    attempt("mode", lambda: pm.mode)
    attempt("endpoints", pm.endpoints)
    attempt("limits", pm.limits)
    attempt("set_limits", lambda: pm.set_limits(subflows=4))
    attempt("add_endpoint", lambda: pm.add_endpoint(local2, subflow=True))
    attempt("flush", pm.flush_endpoints)
    attempt("subflows", lambda: len(mptcp.subflows(s)))
    attempt("info", lambda: mptcp.info(s).token)
    attempt("open_sub", lambda: mptcp.open_sub(s, local=local2))
    attempt("set_sub_prio", lambda: mptcp.set_sub_prio(s, min(mptcp.get_sub_ids(s)), True))
    attempt("close_sub", lambda: mptcp.close_sub(s, min(mptcp.get_sub_ids(s))))
print(json.dumps(out))
"""


def test_without_cap_net_admin(ulab: Lab, server: Any) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ulab.client_ns, "setpriv", "--inh-caps=-all",
         "--bounding-set=-net_admin", sys.executable, "-c", _CHILD, os.path.dirname(os.path.dirname(mptcp.__file__)),
         ulab.server_addrs["v4"][0], str(server.port), ulab.client_addrs["v4"][1]],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ("mode", "endpoints", "limits", "subflows", "info"):
        assert out[name][0] == "ok", (name, out[name])
    assert out["mode"][1] == "'userspace'"
    for name in ("set_limits", "add_endpoint", "flush", "open_sub", "set_sub_prio", "close_sub"):
        assert out[name][0] == "MPTCPPermissionError", (name, out[name])
        assert out[name][1] == errno.EPERM
        assert "CAP_NET_ADMIN" in out[name][2]




def test_open_sub_recovers_from_a_stale_address_id(ulab: Lab, server: Any) -> None:
    """open_sub remembers the address id the kernel accepted for a local address;
    when that memory is wrong (another actor re-added the address with another id,
    or a token was reused) the kernel answers "did not match address and id" and
    open_sub asks the kernel (GET_ADDR) and tries again."""
    with established(ulab, server.port) as s:
        c2, s2 = ulab.client_addrs["v4"][1], ulab.server_addrs["v4"][1]
        tok = mptcp.info(s).token

        def open_with_a_wrong_memory() -> Any:
            sf = mptcp.open_sub(s, local=c2, remote=s2)
            mptcp.close_sub(s, sf.id)
            key = (genl.netns_id(), tok, parse_ip(c2).packed, 0)
            assert key in control._ids
            control._ids[key] = (control._ids[key] % 200) + 17  # an id the kernel never gave it
            return mptcp.open_sub(s, local=c2, remote=s2)

        sf = in_client(ulab, open_with_a_wrong_memory)
        assert sf.id in mptcp.get_sub_ids(s) and sf.local[0] == c2
