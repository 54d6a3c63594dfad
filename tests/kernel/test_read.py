"""The read path on the real kernel, checked against ss, getsockname/getpeername and
itself, in private network namespaces."""

from __future__ import annotations

import errno
import json
import socket
from typing import Any, Iterator, List

import pytest

import mptcp
from mptcp import _api, _backends
from mptcp._lab import Lab
from tests.conftest import two_subflows
from tests.outside import ss_mptcp


def _ss_tuples(lab: Lab) -> List[Any]:
    return sorted((s["local"], s["remote"]) for s in lab.ss_subflows(lab.client_ns)
                  if s["state"] == "ESTAB")


@pytest.fixture
def conn(lab: Lab) -> Iterator[socket.socket]:
    sock = two_subflows(lab)
    yield sock
    sock.close()


def test_subflows_match_ss_and_the_socket(lab: Lab, conn: socket.socket) -> None:
    subs = mptcp.subflows(conn)
    assert sorted((s.local, s.remote) for s in subs) == _ss_tuples(lab)
    first = min(subs, key=lambda s: s.id)
    assert first.id == 1
    assert first.local == conn.getsockname() and first.remote == conn.getpeername()
    second = max(subs, key=lambda s: s.id)
    assert second.local[0] == lab.client_addrs["v4"][1]  # the endpoint's path
    for s in subs:
        assert s.state == mptcp.TCPState.ESTABLISHED
        assert s.rtt_us > 0 and s.snd_cwnd > 0 and s.snd_mss > 0
    lab.wait_for(lambda: sum(s.bytes_acked for s in mptcp.subflows(conn)) >= 65536,
                 what="the data acked")


def test_ids_agree_across_calls(conn: socket.socket) -> None:
    ids = mptcp.get_sub_ids(conn)
    assert ids == sorted(s.id for s in mptcp.subflows(conn)) == [1, 2]
    with mptcp.Poller(conn) as poller:
        assert poller.poll() == 2 == len(poller)
        assert sorted(poller[i].id for i in range(len(poller))) == ids
        assert poller.info.token == mptcp.info(conn).token
        snap = poller.snapshot()
        assert [s.id for s in snap] == [poller[i].id for i in range(2)]
        assert [(s.local, s.remote) for s in snap] == [(poller[i].local, poller[i].remote)
                                                       for i in range(2)]


def test_info_matches_ss(lab: Lab, conn: socket.socket) -> None:
    info = mptcp.info(conn)
    assert isinstance(info, mptcp.MPTCPInfo)
    (ss,) = [m for m in ss_mptcp(lab, lab.client_ns) if m["local"] == conn.getsockname()]
    assert ss["token"] == info.token
    assert info.subflows == 1 and info.subflows_total == 2  # subflows counts the extra ones
    assert info.fallback is False and info.bytes_sent >= 65536
    assert mptcp.is_mptcp(conn) is True


def test_get_sub_tuple_and_backup_flag_of_a_device_bound_subflow(lab: Lab, conn: socket.socket) -> None:
    ss = {(s["local"], s["remote"]): s for s in lab.ss_subflows(lab.client_ns)}
    for sub_id in (1, 2):
        sf = lab.run_in(lab.client_ns, mptcp.get_sub_tuple, conn, sub_id)
        assert isinstance(sf, mptcp.Subflow) and sf.id == sub_id
        assert sf.prio == 0 and sf.backup is False and sf.status is None
        assert not ss[(sf.local, sf.remote)]["backup_local"]
    # the endpoint's subflow is bound to c2: a plain sock_diag lookup by 4-tuple
    # would miss it (sock_diag answers ENOENT unless idiag_if names its device);
    # flip its backup flag from outside
    endpoint_id = lab.ip(lab.client_ns, "mptcp", "endpoint", "show").split(" id ")[1].split()[0]
    lab.ip(lab.client_ns, "mptcp", "endpoint", "change", "id", endpoint_id, "backup")
    sf = lab.wait_for(lambda: (lambda s: s if s.prio == 1 else None)(
        lab.run_in(lab.client_ns, mptcp.get_sub_tuple, conn, 2)), what="backup flag")
    assert sf.backup is True
    ss = {(s["local"], s["remote"]): s for s in lab.ss_subflows(lab.client_ns)}
    assert ss[(sf.local, sf.remote)]["backup_local"]
    assert lab.run_in(lab.client_ns, mptcp.get_sub_tuple, conn, 1).prio == 0


def test_ipv6_connection(lab: Lab) -> None:
    server = lab.start_server(family=socket.AF_INET6)
    with lab.connect(family=socket.AF_INET6, port=server.port) as sock:
        (sub,) = mptcp.subflows(sock)
        assert sub.local == sock.getsockname()[:2] and sub.remote == sock.getpeername()[:2]
        assert ":" in sub.local[0] and "[" not in sub.local[0]
        assert _ss_tuples(lab) == [(sub.local, sub.remote)]
        sf = lab.run_in(lab.client_ns, mptcp.get_sub_tuple, sock, 1)
        assert (sf.local, sf.remote, sf.prio) == (sub.local, sub.remote, 0)


def test_unknown_subflow_id(conn: socket.socket) -> None:
    with pytest.raises(mptcp.SubflowNotFoundError, match="no live subflow with id 99"):
        mptcp.get_sub_tuple(conn, 99)
    with pytest.raises(ValueError):
        mptcp.get_sub_tuple(conn, -1)
    with pytest.raises(TypeError):
        mptcp.get_sub_tuple(conn, "1")  # type: ignore[arg-type]


def test_plain_tcp_socket(lab: Lab) -> None:
    server = lab.start_server(proto=socket.IPPROTO_TCP)
    with lab.connect(port=server.port, proto=socket.IPPROTO_TCP) as sock:
        for call in (mptcp.get_sub_ids, mptcp.subflows, mptcp.info, mptcp.Poller):
            with pytest.raises(mptcp.NotMPTCPError, match="plain TCP"):
                call(sock)
        assert mptcp.is_mptcp(sock) is False
        sock.sendall(b"still works")


def test_fallen_back_connection(lab: Lab) -> None:
    server = lab.start_server(proto=socket.IPPROTO_TCP)  # a plain TCP server: no MP_CAPABLE
    with lab.connect(port=server.port) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == 262
        with pytest.raises(mptcp.NotMPTCPError, match="fell back"):
            mptcp.get_sub_ids(sock)
        with pytest.raises(mptcp.NotMPTCPError):
            mptcp.subflows(sock)
        assert mptcp.is_mptcp(sock) is False
        sock.sendall(b"data still flows")


def test_unconnected_and_listening_sockets(lab: Lab) -> None:
    unconnected = lab.socket(lab.client_ns)
    listener = lab.socket(lab.server_ns)
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    try:
        for sock in (unconnected, listener):
            assert mptcp.get_sub_ids(sock) == []
            assert mptcp.subflows(sock) == []
            assert mptcp.is_mptcp(sock) is False
            assert isinstance(mptcp.info(sock), mptcp.MPTCPInfo)
    finally:
        unconnected.close()
        listener.close()


def test_closed_and_non_socket_fds() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    fd = sock.fileno()
    sock.close()
    with pytest.raises(mptcp.MPTCPError) as err:
        mptcp.get_sub_ids(fd)
    assert err.value.errno == errno.EBADF
    with pytest.raises(mptcp.MPTCPError) as err:
        mptcp.get_sub_ids(sock)  # fileno() is -1 after close
    assert err.value.errno == errno.EBADF
    import os

    r, w = os.pipe()
    try:
        with pytest.raises(mptcp.MPTCPError) as err:
            mptcp.info(r)
        assert err.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(TypeError):
        mptcp.get_sub_ids(True)
    with pytest.raises(TypeError):
        mptcp.get_sub_ids("3")


def test_poller_grows_with_the_subflow_set(lab: Lab) -> None:
    server = lab.start_server()
    with lab.connect(port=server.port) as sock, mptcp.Poller(sock) as poller:
        assert poller.poll() == 1
        first = poller[0]
        assert first.id == 1 and first.local == sock.getsockname()
        sock.sendall(b"x" * 65536)
        lab.wait_for(lambda: poller.poll() == 2, what="poller sees the second subflow")
        assert poller[0] is first  # the same view object on every poll
        assert {poller[0].id, poller[1].id} == {1, 2}
        assert poller[1].rtt_us > 0 and poller[1].snd_cwnd > 0
        with pytest.raises(IndexError):
            poller[2]
    with pytest.raises(ValueError):
        poller.poll()  # closed


@pytest.fixture
def no_full_info(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MPTCP_NO_FULL_INFO", "1")
    _backends.reset()
    _api._rebind()
    yield
    monkeypatch.delenv("MPTCP_NO_FULL_INFO")
    _backends.reset()
    _api._rebind()


def test_pre_6_5_path(lab: Lab, conn: socket.socket, no_full_info: None) -> None:
    with pytest.raises(mptcp.KernelTooOldError):  # the forced pre-6.5 path: no FULL_INFO
        _backends.select().require_poller("Poller")
    subs = mptcp.subflows(conn)
    assert sorted((s.local, s.remote) for s in subs) == _ss_tuples(lab)
    assert all(s.id is None and s.rtt_us > 0 for s in subs)
    for call in (mptcp.get_sub_ids, mptcp.Poller, lambda s: mptcp.get_sub_tuple(s, 1)):
        with pytest.raises(mptcp.KernelTooOldError) as err:
            call(conn)
        assert err.value.min_version == (6, 5)


def test_info_follows_the_counters(lab: Lab, conn: socket.socket) -> None:
    # info() shares records for identical kernel bytes: it must never return a stale one
    before = mptcp.info(conn)
    assert mptcp.info(conn) == before
    conn.sendall(b"y" * 100_000)
    lab.wait_for(lambda: mptcp.info(conn).bytes_acked >= before.bytes_acked + 100_000,
                 what="bytes_acked grows")
    after = mptcp.info(conn)
    assert after.bytes_sent >= before.bytes_sent + 100_000
    assert after.snd_una == after.write_seq  # everything acked
    assert after.token == before.token


def test_a_namespace_without_mptcp_decides_nothing_about_the_kernel(lab: Lab) -> None:
    """Where net.mptcp.enabled=0 no MPTCP socket can be made, so the kernel's API
    cannot be probed there: nothing is concluded, and the first call from a namespace
    with MPTCP probes and binds for real."""
    from mptcp._backends.upstream import read as _read

    ns = lab.client_ns
    server = lab.start_server()
    _backends.reset()  # the probes too
    _api._rebind()
    lab.sh(ns, "sysctl", "-q", "-w", "net.mptcp.enabled=0")
    try:
        with pytest.raises(OSError):  # no MPTCP socket here at all
            lab.socket(ns, socket.AF_INET, socket.SOCK_STREAM, 262)
        tcp = lab.connect(port=server.port, proto=socket.IPPROTO_TCP)
        with pytest.raises(mptcp.NotMPTCPError):
            lab.run_in(ns, mptcp.get_sub_ids, tcp)
        assert lab.run_in(ns, _read.kernel_has, "full_info") is None
        assert _read._known == {}
        tcp.close()
    finally:
        lab.sh(ns, "sysctl", "-q", "-w", "net.mptcp.enabled=1")
    sock = lab.connect(port=server.port)
    assert lab.run_in(ns, mptcp.get_sub_ids, sock)[:1] == [1]
    assert _read._known == {"sol_mptcp": True, "full_info": True}
    assert mptcp.backend() == "upstream"
    sock.close()


_POLL_ALLOCATIONS = r"""
import json, socket, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
import mptcp
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((sys.argv[2], int(sys.argv[3])))
s.sendall(b"x" * 65536)
deadline = time.monotonic() + 20
while len(mptcp.get_sub_ids(s)) < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
poller = mptcp.Poller(s)
poll = poller.poll
for _ in range(1000):
    poll()

def least_allocated(fn):
    # The least fn allocated, freed or not (tracemalloc's peak above the level just
    # before the call), over many calls: the bookkeeping around the call sometimes
    # adds a few bytes (how many depends on the interpreter's state, e.g. where the
    # package was imported from), never takes any away, so an allocation made on
    # every call is the minimum.
    least = None
    for _ in range(300):
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        least = peak if least is None else min(least, peak)
    return least

tracemalloc.start()
print(json.dumps({"subflows": poll(), "poll": least_allocated(poll),
                  "object": least_allocated(object)}))
"""


def test_poll_allocates_nothing_in_one_call(lab: Lab) -> None:
    """Not just "leaks nothing": a single poll() allocates no memory at all, not even
    transiently (tracemalloc's peak), in a process with no other thread."""
    import subprocess
    import sys
    from pathlib import Path

    server = lab.start_server()
    src = str(Path(mptcp.__file__).resolve().parents[1])
    proc = subprocess.run(["ip", "netns", "exec", lab.client_ns, sys.executable, "-c",
                           _POLL_ALLOCATIONS, src, lab.server_addrs["v4"][0], str(server.port)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["subflows"] == 2
    assert got["object"] > 0, got  # the measurement sees a 16-byte object()
    assert got["poll"] == 0, got
