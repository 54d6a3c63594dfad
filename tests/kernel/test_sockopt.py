"""One subflow's socket options on the real kernel, through the BPF iterator program.

Ground truth from outside the library: ``ss -tie`` (fwmark, congestion control, mss),
plain ``getsockopt`` on the sockets the tests own, and what the kernel refuses on the
MPTCP socket itself. Each connection gets its second subflow from the lab's in-kernel
``subflow`` endpoint (IPv4; the IPv6 tests add an IPv6 one).
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import mptcp
from mptcp._backends.upstream import sockopt
from mptcp._lab import Lab
from tests.conftest import two_subflows
from tests.outside import ss_subflow_text

SOL_SOCKET, SOL_TCP, SOL_IP, SOL_IPV6 = (socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP,
                                         socket.IPPROTO_IPV6)
SRC = str(Path(mptcp.__file__).resolve().parents[1])
Pair = tuple[tuple[str, int], tuple[str, int]]


@pytest.fixture(scope="module")
def klab() -> Iterator[Lab]:
    """A lab whose client has an IPv6 'subflow' endpoint too (one per family)."""
    with Lab(prefix="mptcp") as lab:
        lab.ip(lab.client_ns, "mptcp", "endpoint", "add", lab.client_addrs["v6"][1], "dev", "c2",
               "subflow")
        yield lab


def in_client(lab: Lab, fn: Callable[..., Any], *args: Any) -> Any:
    return lab.run_in(lab.client_ns, fn, *args)


def plain(host: str) -> str:
    """An address as ss prints it (v4-mapped shown as IPv4, as the lab's parser does)."""
    return host[7:] if host.startswith("::ffff:") and "." in host else host


def ss_text(lab: Lab, ns: str, sub: Any) -> str:
    table = ss_subflow_text(lab, ns)
    key = ((plain(sub.local[0]), sub.local[1]), (plain(sub.remote[0]), sub.remote[1]))
    return table[key]


PACING = mptcp._mptcp.abi.SO_MAX_PACING_RATE


def by_id(sock: socket.socket) -> dict[int, Any]:
    return {s.id: s for s in mptcp.subflows(sock)}


@pytest.fixture
def conn(klab: Lab) -> Iterator[socket.socket]:
    sock = two_subflows(klab)
    yield sock
    sock.close()


# --------------------------------------------------------------------------------
# One subflow only, seen from outside
# --------------------------------------------------------------------------------
def test_mark_on_one_subflow_only(klab: Lab, conn: socket.socket) -> None:
    subs = by_id(conn)
    assert "fwmark" not in ss_text(klab, klab.client_ns, subs[2])
    in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, socket.SO_MARK, 0x42)
    assert "fwmark:0x42" in ss_text(klab, klab.client_ns, subs[2])
    assert "fwmark" not in ss_text(klab, klab.client_ns, subs[1])
    assert [in_client(klab, mptcp.get_sub_sockopt_int, conn, i, SOL_SOCKET, socket.SO_MARK)
            for i in (1, 2)] == [0, 0x42]
    assert conn.getsockopt(SOL_SOCKET, socket.SO_MARK) == 0  # the MPTCP socket's own


def test_congestion_control_on_one_subflow_only(klab: Lab, conn: socket.socket) -> None:
    subs = by_id(conn)
    before = [in_client(klab, mptcp.get_sub_sockopt, conn, i, SOL_TCP, socket.TCP_CONGESTION, 16)
              .rstrip(b"\0").decode() for i in (1, 2)]
    target = "reno" if before[0] != "reno" else "cubic"
    in_client(klab, mptcp.set_sub_sockopt, conn, 1, SOL_TCP, socket.TCP_CONGESTION, target.encode())
    assert f" {target} " in ss_text(klab, klab.client_ns, subs[1])
    assert f" {before[1]} " in ss_text(klab, klab.client_ns, subs[2])  # the other keeps its own
    got = in_client(klab, mptcp.get_sub_sockopt, conn, 1, SOL_TCP, socket.TCP_CONGESTION, 16)
    assert got.rstrip(b"\0") == target.encode() and len(got) == 16
    with pytest.raises(mptcp.MPTCPError) as err:
        in_client(klab, mptcp.set_sub_sockopt, conn, 2, SOL_TCP, socket.TCP_CONGESTION, b"nonesuch")
    assert err.value.errno == errno.ENOENT and "TCP_CONGESTION" in str(err.value)
    assert not isinstance(err.value, mptcp.SubflowNotFoundError)


def test_user_timeout_which_the_mptcp_socket_refuses(klab: Lab, conn: socket.socket) -> None:
    with pytest.raises(OSError) as err:
        conn.setsockopt(SOL_TCP, socket.TCP_USER_TIMEOUT, 5000)
    assert err.value.errno == errno.ENOPROTOOPT
    in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_TCP, socket.TCP_USER_TIMEOUT, 5000)
    assert [in_client(klab, mptcp.get_sub_sockopt_int, conn, i, SOL_TCP, socket.TCP_USER_TIMEOUT)
            for i in (1, 2)] == [0, 5000]


def test_maxseg_is_the_mss_ss_shows(klab: Lab, conn: socket.socket) -> None:
    for sub in mptcp.subflows(conn):
        mss = in_client(klab, mptcp.get_sub_sockopt_int, conn, sub.id, SOL_TCP, socket.TCP_MAXSEG)
        assert f" mss:{mss} " in ss_text(klab, klab.client_ns, sub)
        assert mss == sub.snd_mss


@pytest.mark.parametrize("kind", ["ipv6", "v4-mapped"])
def test_ipv6_and_v4_mapped_subflows(klab: Lab, kind: str) -> None:
    if kind == "ipv6":
        sock = two_subflows(klab, socket.AF_INET6)
    else:  # an AF_INET6 socket to ::ffff:a.b.c.d: a mapped AF_INET6 first subflow, AF_INET joins
        sock = two_subflows(klab, socket.AF_INET6, "::ffff:" + klab.server_addrs["v4"][0])
    with sock:
        subs = by_id(sock)
        if kind == "v4-mapped":
            assert subs[1].local[0].startswith("::ffff:") and ":" not in subs[2].local[0]
        for i, mark in ((1, 0x51), (2, 0x52)):
            in_client(klab, mptcp.set_sub_sockopt_int, sock, i, SOL_SOCKET, socket.SO_MARK, mark)
            assert f"fwmark:{mark:#x}" in ss_text(klab, klab.client_ns, subs[i])
        assert [in_client(klab, mptcp.get_sub_sockopt_int, sock, i, SOL_SOCKET, socket.SO_MARK)
                for i in (1, 2)] == [0x51, 0x52]


def test_the_server_side_of_a_connection(klab: Lab) -> None:
    server = klab.start_server()
    with two_subflows(klab, server=server):
        klab.wait_for(lambda: server.conns, what="the accepted socket")
        accepted = server.conns[-1]
        ids = klab.run_in(klab.server_ns, mptcp.get_sub_ids, accepted)
        assert len(ids) == 2
        klab.run_in(klab.server_ns, mptcp.set_sub_sockopt_int, accepted, ids[1], SOL_SOCKET,
                    socket.SO_MARK, 0x61)
        subs = {s.id: s for s in klab.run_in(klab.server_ns, mptcp.subflows, accepted)}
        assert "fwmark:0x61" in ss_text(klab, klab.server_ns, subs[ids[1]])
        assert "fwmark" not in ss_text(klab, klab.server_ns, subs[ids[0]])


# --------------------------------------------------------------------------------
# Never another socket
# --------------------------------------------------------------------------------
_READABLE_INTS = [o for o in sockopt.OPTIONS if o.get and o.kind == "int"
                  and o.level in (SOL_SOCKET, SOL_TCP)]


def _all_ints(lab: Lab, sock: socket.socket) -> dict[tuple[int, str], int]:
    return {(i, o.constant): in_client(lab, mptcp.get_sub_sockopt_int, sock, i, o.level, o.optname)
            for i in mptcp.get_sub_ids(sock) for o in _READABLE_INTS}


def test_a_second_connection_between_the_same_hosts_is_untouched(klab: Lab) -> None:
    server = klab.start_server()
    with two_subflows(klab, server=server) as a, two_subflows(klab, server=server) as b:
        before = _all_ints(klab, b)
        for i in (1, 2):
            for name, value in (("SO_MARK", 0x71), ("SO_PRIORITY", 4), ("TCP_NODELAY", 1),
                                ("TCP_KEEPIDLE", 33), ("TCP_USER_TIMEOUT", 7000),
                                ("TCP_NOTSENT_LOWAT", 12345)):
                opt = next(o for o in sockopt.OPTIONS if o.constant == name)
                in_client(klab, mptcp.set_sub_sockopt_int, a, i, opt.level, opt.optname, value)
        assert _all_ints(klab, b) == before
        assert in_client(klab, mptcp.get_sub_sockopt_int, a, 2, SOL_SOCKET, socket.SO_MARK) == 0x71


def test_a_plain_tcp_socket_on_a_dead_subflows_tuple_is_untouched(klab: Lab) -> None:
    server = klab.start_server()
    with two_subflows(klab, server=server) as sock:
        token = mptcp.info(sock).token
        dead = by_id(sock)[2]
        # kill that subflow with a RST (no TIME_WAIT keeps its tuple busy)
        klab.sh(klab.client_ns, "ss", "-K", "src", f"{dead.local[0]}", "sport", "=",
                f":{dead.local[1]}")
        klab.wait_for(lambda: 2 not in mptcp.get_sub_ids(sock), what="the subflow gone")
        squatter = klab.socket(klab.client_ns, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        with squatter:
            squatter.bind(dead.local)
            squatter.connect(dead.remote)  # the MPTCP listener takes plain TCP as fallback
            assert (squatter.getsockname(), squatter.getpeername()) == (dead.local, dead.remote)
            with pytest.raises(mptcp.SubflowNotFoundError):
                in_client(klab, mptcp.set_subflow_sockopt, token, dead.local, dead.remote,
                          SOL_SOCKET, socket.SO_MARK, 0x81)
            assert squatter.getsockopt(SOL_SOCKET, socket.SO_MARK) == 0
            with pytest.raises(mptcp.SubflowNotFoundError):
                in_client(klab, mptcp.set_sub_sockopt_int, sock, 2, SOL_SOCKET, socket.SO_MARK, 1)


def test_an_unsupported_option_is_refused_before_any_bpf_work() -> None:
    # fd -1 would fail loudly at the first syscall (EBADF): these must fail earlier
    with pytest.raises(mptcp.UnsupportedOperationError, match="SO_MARK"):
        mptcp.get_sub_sockopt_int(-1, 1, SOL_SOCKET, socket.SO_LINGER)
    with pytest.raises(mptcp.UnsupportedOperationError, match="read"):
        mptcp.set_sub_sockopt_int(-1, 1, SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    with pytest.raises(mptcp.UnsupportedOperationError, match="byte string"):
        mptcp.get_sub_sockopt_int(-1, 1, SOL_TCP, socket.TCP_CONGESTION)
    with pytest.raises(TypeError):
        mptcp.set_sub_sockopt(-1, 1, SOL_TCP, socket.TCP_CONGESTION, "reno")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mptcp.get_sub_sockopt(-1, 1, SOL_TCP, socket.TCP_CONGESTION, 129)


# --------------------------------------------------------------------------------
# Every listed option, on every kind of subflow
# --------------------------------------------------------------------------------
# (value to set, value read back; None: read back what was set, KEPT: the value from
# before, as the table's note says). Options the kernel rewrites on the way say so.
KEPT = object()
_SET = {
    "maxseg": (1000, KEPT),
    "reuseaddr": (1, None), "sndbuf": (262144, 524288), "rcvbuf": (262144, 524288),
    "keepalive": (1, None), "priority": (3, None), "reuseport": (1, None), "mark": (0x91, None),
    "max-pacing-rate": (12_500_000, None), "txrehash": (0, None), "nodelay": (1, None),
    "keepidle": (30, None), "keepintvl": (10, None), "keepcnt": (5, None), "syncnt": (3, None),
    "window-clamp": (100_000, None), "thin-linear-timeouts": (1, None),
    "user-timeout": (6000, None), "notsent-lowat": (16384, None), "save-syn": (1, None),
    "rto-max": (30_000, None), "sndcwnd-clamp": (40, None), "delack-max": (52_000, None),
    "rto-min": (52_000, None), "tos": (0x10, None), "tclass": (0x20, None),
    "autoflowlabel": (0, None), "congestion": (b"reno", b"reno"),
}
# Binding to a device: the one the subflow already uses (c1 for the initial subflows,
# c2 for the joins through the endpoint), so that it keeps working.
_DEV = {"v4 initial": "c1", "v4 join": "c2", "v6 initial": "c1", "v6 join": "c2",
        "v4-mapped initial": "c1"}
# subflow kinds: (connection, subflow id, family, IPv6-only)
_KINDS = ["v4 initial", "v4 join", "v6 initial", "v6 join", "v4-mapped initial"]


@pytest.fixture(scope="module")
def kinds(klab: Lab) -> Iterator[dict[str, tuple[socket.socket, int]]]:
    v4 = two_subflows(klab)
    v6 = two_subflows(klab, socket.AF_INET6)
    mapped = two_subflows(klab, socket.AF_INET6, "::ffff:" + klab.server_addrs["v4"][0])
    yield {"v4 initial": (v4, 1), "v4 join": (v4, 2), "v6 initial": (v6, 1),
           "v6 join": (v6, 2), "v4-mapped initial": (mapped, 1)}
    for s in (v4, v6, mapped):
        s.close()


def _refused(opt: Any, kind: str) -> bool:
    """Where the table's notes say the kernel refuses the option."""
    if opt.constant == "IP_TOS":
        return kind == "v6 join"  # an IPv6-only subflow
    if opt.constant.startswith("IPV6_"):
        return kind.startswith("v4 ")
    return False


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("opt", [o for o in sockopt.OPTIONS if o.constant != "TCP_BPF_IW"],
                         ids=lambda o: o.name)
def test_every_listed_option_on_every_kind_of_subflow(klab: Lab, kinds: Any, opt: Any,
                                                      kind: str) -> None:
    sock, sub_id = kinds[kind]
    raw = opt.kind == "bytes"

    def get() -> Any:
        if raw:
            return in_client(klab, mptcp.get_sub_sockopt, sock, sub_id, opt.level, opt.optname, 16)
        return in_client(klab, mptcp.get_sub_sockopt_int, sock, sub_id, opt.level, opt.optname)

    def put(value: Any) -> None:
        call = mptcp.set_sub_sockopt if raw else mptcp.set_sub_sockopt_int
        in_client(klab, call, sock, sub_id, opt.level, opt.optname, value)

    if _refused(opt, kind):
        with pytest.raises(mptcp.MPTCPError) as err:
            get() if opt.get else put(_SET[opt.name][0])
        assert err.value.errno == errno.EINVAL and opt.constant in str(err.value)
        return
    if opt.get:
        get()
    if opt.set:
        dev = _DEV[kind]
        value, back = _SET.get(opt.name, (None, None))
        if opt.name == "bindtodevice":
            value = dev.encode()
        elif opt.name == "bindtoifindex":
            value = klab.ifindex(klab.client_ns, dev)
        assert value is not None, f"no test value for {opt.name}"
        original = get() if opt.get else None
        put(value)
        if opt.get:
            got = get()
            want = value if back is None else original if back is KEPT else back
            assert (got.rstrip(b"\0") if raw else got) == want
            put(original.rstrip(b"\0") if raw else original)  # leave the subflow as it was
        if opt.name == "bindtodevice":
            in_client(klab, mptcp.set_sub_sockopt, sock, sub_id, opt.level, opt.optname, b"\0")


def test_initial_window_only_before_the_subflow_sent_data(klab: Lab, kinds: Any) -> None:
    sock, sub_id = kinds["v4 initial"]  # it carried the connection's first 64 KiB
    with pytest.raises(mptcp.MPTCPError) as err:
        in_client(klab, mptcp.set_sub_sockopt_int, sock, sub_id, SOL_TCP, mptcp._mptcp.abi.TCP_BPF_IW, 10)
    assert err.value.errno == errno.EINVAL and "before the subflow has sent data" in str(err.value)


# What the MPTCP socket itself does with a plain setsockopt of each option: the
# README's table. Refused here, per-subflow only through the library.
MPTCP_SOCKET_REFUSES = {"TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_THIN_LINEAR_TIMEOUTS",
                        "TCP_USER_TIMEOUT", "TCP_SAVE_SYN", "TCP_RTO_MAX_MS",
                        "SO_MAX_PACING_RATE", "SO_TXREHASH", "SO_REUSEADDR", "SO_REUSEPORT",
                        "SO_BINDTODEVICE", "SO_BINDTOIFINDEX", "IPV6_TCLASS", "IPV6_AUTOFLOWLABEL",
                        "TCP_BPF_IW", "TCP_BPF_SNDCWND_CLAMP", "TCP_BPF_DELACK_MAX", "TCP_BPF_RTO_MIN"}


# ... and of the ones it takes, those it writes into every subflow (the rest it keeps
# for itself, or the subflows ignore).
MPTCP_SOCKET_COPIES = {"SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "SO_PRIORITY", "SO_MARK",
                       "TCP_NODELAY", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT",
                       "TCP_CONGESTION", "IP_TOS"}


def test_what_the_mptcp_socket_itself_does_with_each_option(klab: Lab) -> None:
    refused, copied = set(), set()
    with two_subflows(klab) as conn:
        for opt in sockopt.OPTIONS:
            value, back = _SET.get(opt.name, (1, None))
            raw = struct.pack("=i", value) if isinstance(value, int) else value
            try:
                conn.setsockopt(opt.level, opt.optname, raw)
            except OSError as err:
                assert err.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EINVAL), (opt, err)
                refused.add(opt.constant)
                continue
            if not opt.get:
                continue
            want = value if back is None or back is KEPT else back
            got = [in_client(klab, mptcp.get_sub_sockopt, conn, i, opt.level, opt.optname, 16)
                   .rstrip(b"\0") if opt.kind == "bytes" else
                   in_client(klab, mptcp.get_sub_sockopt_int, conn, i, opt.level, opt.optname)
                   for i in (1, 2)]
            if got == [want, want]:
                copied.add(opt.constant)
    assert refused == MPTCP_SOCKET_REFUSES
    assert copied == MPTCP_SOCKET_COPIES


# --------------------------------------------------------------------------------
# What later changes on the MPTCP socket do (kernel-abi section 6, as tests)
# --------------------------------------------------------------------------------
def _cc(lab: Lab, sock: socket.socket, sub_id: int) -> bytes:
    return in_client(lab, mptcp.get_sub_sockopt, sock, sub_id, SOL_TCP, socket.TCP_CONGESTION,
                     16).rstrip(b"\0")


def test_later_changes_on_the_mptcp_socket(ulab: Lab) -> None:
    server = ulab.start_server()
    sock = ulab.connect(port=server.port)
    with sock:
        sock.sendall(b"y" * 65536)
        c2, s2 = ulab.client_addrs["v4"][1], ulab.server_addrs["v4"][1]
        second = ulab.run_in(ulab.client_ns, mptcp.open_sub, sock, local=c2, remote=s2)
        in_client(ulab, mptcp.set_sub_sockopt, sock, second.id, SOL_TCP, socket.TCP_CONGESTION, b"reno")
        keep = _cc(ulab, sock, 1)
        assert keep != b"reno"
        # another option set on the MPTCP socket: written to every subflow, reno survives
        sock.setsockopt(SOL_SOCKET, socket.SO_MARK, 0xA1)
        for name, value in ((socket.TCP_NODELAY, 1), (socket.IP_TOS, 0x10)):
            sock.setsockopt(SOL_TCP if name == socket.TCP_NODELAY else SOL_IP, name, value)
        assert [in_client(ulab, mptcp.get_sub_sockopt_int, sock, i, SOL_SOCKET, socket.SO_MARK)
                for i in (1, second.id)] == [0xA1, 0xA1]
        assert _cc(ulab, sock, second.id) == b"reno" and _cc(ulab, sock, 1) == keep
        # the same option on the MPTCP socket overwrites the per-subflow value
        sock.setsockopt(SOL_TCP, socket.TCP_CONGESTION, keep)
        assert _cc(ulab, sock, second.id) == keep
        # a subflow that joins later gets the MPTCP socket's options, not a sibling's
        in_client(ulab, mptcp.set_sub_sockopt_int, sock, second.id, SOL_SOCKET, socket.SO_MARK, 0xB2)
        third = ulab.run_in(ulab.client_ns, mptcp.open_sub, sock, local=c2,
                            remote=ulab.server_addrs["v4"][0])
        assert in_client(ulab, mptcp.get_sub_sockopt_int, sock, third.id, SOL_SOCKET,
                         socket.SO_MARK) == 0xA1


# --------------------------------------------------------------------------------
# Without the fd, from another process, from the command
# --------------------------------------------------------------------------------
_OWNER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(b"z" * 65536)
print("connected", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_by_token_and_the_command_on_a_connection_of_another_process(klab: Lab) -> None:
    server = klab.start_server()
    owner = subprocess.Popen(["ip", "netns", "exec", klab.client_ns, sys.executable, "-c", _OWNER,
                              klab.server_addrs["v4"][0], str(server.port)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "connected"

        def theirs() -> Any:
            conns = [c for c in in_client(klab, mptcp.connections)
                     if c.remote and c.remote[1] == server.port and len(c.subflows) == 2]
            return conns[0] if len(conns) == 1 else None

        c = klab.wait_for(theirs, timeout=10, what="the other process's two subflows")
        a, b = c.subflows
        in_client(klab, mptcp.set_subflow_sockopt, c.token, b.local, b.remote, SOL_SOCKET,
                  socket.SO_MARK, 0xC3)
        assert "fwmark:0xc3" in ss_text(klab, klab.client_ns, b)
        assert "fwmark" not in ss_text(klab, klab.client_ns, a)
        assert in_client(klab, mptcp.get_subflow_sockopt, c.token, b.local, b.remote, SOL_SOCKET,
                         socket.SO_MARK) == 0xC3
        cc = in_client(klab, mptcp.get_subflow_sockopt, c.token, a.local, a.remote, SOL_TCP,
                       socket.TCP_CONGESTION, 16)
        assert isinstance(cc, bytes) and cc.rstrip(b"\0")

        def cmd(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", klab.client_ns, sys.executable, "-m",
                                   "mptcp", "sockopt", *args], capture_output=True, text=True,
                                  timeout=60, env=_env())

        local, remote = (f"{h}:{p}" for h, p in (a.local, a.remote))
        res = cmd("set", f"{c.token:08x}", local, remote, "mark", "0xd4")
        assert res.returncode == 0, res.stderr
        assert "fwmark:0xd4" in ss_text(klab, klab.client_ns, a)
        res = cmd("get", f"0x{c.token:x}", local, remote, "mark", "--json")
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got["value"] == 0xD4 and got["option"] == "mark" and got["token"] == f"{c.token:08x}"
        res = cmd("get", f"{c.token:08x}", local, remote, "congestion")
        assert res.returncode == 0 and res.stdout.strip() == cc.rstrip(b"\0").decode()
        res = cmd("get", f"{c.token:08x}", local, remote, "no-such-option")
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "mark" in res.stderr
        res = cmd("get", f"{c.token:08x}", local, "10.9.9.9:1", "mark")
        assert res.returncode == 1 and "no subflow" in res.stderr
        res = cmd("list", "--json")
        assert res.returncode == 0 and {o["name"] for o in json.loads(res.stdout)} == {
            o.name for o in sockopt.OPTIONS}
    finally:
        owner.communicate("", timeout=10)


# --------------------------------------------------------------------------------
# Privileges, fork, threads, namespaces, resources
# --------------------------------------------------------------------------------
_UNPRIVILEGED = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import mptcp
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.connect((sys.argv[2], int(sys.argv[3])))
s.sendall(b"w" * 65536)
out = {}
def attempt(name, fn):
    try:
        out[name] = ["ok", fn()]
    except Exception as e:
        out[name] = [type(e).__name__, str(e)]
attempt("mark", lambda: mptcp.get_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_MARK))
attempt("set_mark", lambda: mptcp.set_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_MARK, 1))
attempt("maxseg", lambda: mptcp.get_sub_sockopt_int(s, 1, socket.IPPROTO_TCP, socket.TCP_MAXSEG))
attempt("snd_mss", lambda: mptcp.subflows(s)[0].snd_mss)
attempt("linger", lambda: mptcp.get_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_LINGER))
print(json.dumps(out))
"""


def test_without_bpf_privileges(klab: Lab) -> None:
    server = klab.start_server()
    drop = "-bpf,-perfmon,-sys_admin"
    proc = subprocess.run(
        ["ip", "netns", "exec", klab.client_ns, "setpriv", f"--inh-caps={drop}",
         f"--bounding-set={drop}", sys.executable, "-c", _UNPRIVILEGED, SRC,
         klab.server_addrs["v4"][0], str(server.port)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for name in ("mark", "set_mark"):
        assert out[name][0] == "MPTCPPermissionError", out
        assert "CAP_BPF" in out[name][1] and "CAP_PERFMON" in out[name][1]
    assert out["maxseg"][0] == "ok" and out["maxseg"][1] == out["snd_mss"][1] > 0
    assert out["linger"][0] == "UnsupportedOperationError"


def _bpf_fds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:bpf") or "bpf-" in target:
            found.append(target)
    return found


def test_a_forked_child_holds_none_of_the_bpf_fds(klab: Lab, conn: socket.socket) -> None:
    in_client(klab, mptcp.get_sub_sockopt_int, conn, 1, SOL_SOCKET, socket.SO_MARK)
    assert mptcp._mptcp.bpf_loaded() and _bpf_fds()  # the parent holds them
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        os.close(r)
        os.write(w, json.dumps([_bpf_fds(), mptcp._mptcp.bpf_loaded()]).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        fds, loaded = json.loads(f.read())
    os.waitpid(pid, 0)
    assert fds == [] and loaded is False


def test_unload_closes_the_program_and_the_next_call_reloads(klab: Lab, conn: socket.socket) -> None:
    in_client(klab, mptcp.get_sub_sockopt_int, conn, 1, SOL_SOCKET, socket.SO_MARK)
    mptcp.unload_sockopt_program()
    mptcp.unload_sockopt_program()  # idempotent
    assert _bpf_fds() == [] and not mptcp._mptcp.bpf_loaded()
    assert in_client(klab, mptcp.get_sub_sockopt_int, conn, 2, SOL_SOCKET, socket.SO_MARK) >= 0
    assert mptcp._mptcp.bpf_loaded()


def test_unloading_while_other_threads_call(klab: Lab, conn: socket.socket) -> None:
    # A call that finds the program unloaded under it loads it again: never an error.
    errors: list[BaseException] = []
    stop = threading.Event()

    def call() -> None:
        try:
            while not stop.is_set():
                in_client(klab, mptcp.get_sub_sockopt_int, conn, 2, SOL_SOCKET, socket.SO_MARK)
        except BaseException as err:  # noqa: BLE001 - any failure is the test's answer
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(200):
        mptcp.unload_sockopt_program()
        time.sleep(0.001)
    stop.set()
    for t in threads:
        t.join(60)
    assert errors == []


def test_max_pacing_rate_is_unsigned(klab: Lab, conn: socket.socket) -> None:
    # The kernel reads SO_MAX_PACING_RATE as an unsigned 32-bit value, ~0 unlimited.
    sub = by_id(conn)[2]
    for value in (3_000_000_000, 12_500_000, -1):
        in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, PACING, value)
        assert in_client(klab, mptcp.get_sub_sockopt_int, conn, 2, SOL_SOCKET, PACING) == value
    in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, PACING, 3_000_000_000)
    # ss prints "pacing_rate NOW/MAX" in bits per second: the maximum, 24 Gbit/s
    assert re.search(r"pacing_rate \S+/24Gbps", ss_text(klab, klab.client_ns, sub))
    assert "/24Gbps" not in ss_text(klab, klab.client_ns, by_id(conn)[1])
    for bad, words in ((2**32, "outside"), (-2, "SO_MAX_PACING_RATE is 0 to 4294967295")):
        with pytest.raises(ValueError, match=words):
            in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, PACING, bad)
    with pytest.raises(ValueError, match="takes a C int"):  # a signed option stays signed
        in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, socket.SO_MARK, 2**31)
    in_client(klab, mptcp.set_sub_sockopt_int, conn, 2, SOL_SOCKET, PACING, -1)


def test_four_threads_see_their_own_values(klab: Lab) -> None:
    server = klab.start_server()
    with two_subflows(klab, server=server) as a, two_subflows(klab, server=server) as b:
        targets = [(a, 1), (a, 2), (b, 1), (b, 2)]
        wrong: list[Any] = []

        def work(k: int) -> None:
            sock, sub_id = targets[k]
            for n in range(40):
                value = 0x1000 * (k + 1) + n
                mptcp.set_sub_sockopt_int(sock, sub_id, SOL_SOCKET, socket.SO_MARK, value)
                got = mptcp.get_sub_sockopt_int(sock, sub_id, SOL_SOCKET, socket.SO_MARK)
                if got != value:
                    wrong.append((k, value, got))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not wrong


def test_a_socket_of_another_network_namespace(klab: Lab, conn: socket.socket) -> None:
    # this thread is in the test's own namespace, the socket in the client's: the call
    # enters the socket's namespace (SO_NETNS_COOKIE tells them apart)
    home = os.stat("/proc/thread-self/ns/net").st_ino
    assert home != klab.run_in(klab.client_ns, lambda: os.stat("/proc/thread-self/ns/net").st_ino)
    mptcp.set_sub_sockopt_int(conn, 2, SOL_SOCKET, socket.SO_MARK, 0xE5)
    assert "fwmark:0xe5" in ss_text(klab, klab.client_ns, by_id(conn)[2])
    assert mptcp.get_sub_sockopt_int(conn, 2, SOL_SOCKET, socket.SO_MARK) == 0xE5
    # the namespace was entered by a thread of its own: this one never left home
    assert os.stat("/proc/thread-self/ns/net").st_ino == home


_FOREIGN = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import mptcp
s = socket.socket(fileno=int(sys.argv[2]))
try:
    mptcp.get_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_MARK)
    print(json.dumps(["ok", ""]))
except Exception as e:
    print(json.dumps([type(e).__name__, str(e)]))
"""


def test_another_namespace_without_the_right_to_enter_it_is_a_clear_error(
        klab: Lab, conn: socket.socket) -> None:
    # CAP_BPF + CAP_PERFMON load the program; entering the socket's namespace needs
    # CAP_SYS_ADMIN too: the answer must say so, not "no such subflow"
    proc = subprocess.run(
        ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", sys.executable, "-c",
         _FOREIGN, SRC, str(conn.fileno())],
        capture_output=True, text=True, timeout=60, pass_fds=(conn.fileno(),))
    assert proc.returncode == 0, proc.stderr
    kind, text = json.loads(proc.stdout)
    assert kind == "MPTCPPermissionError" and "namespace" in text, (kind, text)


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def test_a_thousand_calls_leave_fds_and_memory_flat(klab: Lab, conn: socket.socket) -> None:
    def calls(n: int) -> None:
        for k in range(n):
            mptcp.set_sub_sockopt_int(conn, 1 + k % 2, SOL_SOCKET, socket.SO_MARK, k)
            mptcp.get_sub_sockopt_int(conn, 1 + k % 2, SOL_SOCKET, socket.SO_MARK)

    klab.run_in(klab.client_ns, calls, 100)  # warm up
    fds, rss = len(os.listdir("/proc/self/fd")), klab.run_in(klab.client_ns, _rss_kib)
    klab.run_in(klab.client_ns, calls, 500)  # 1,000 calls
    assert len(os.listdir("/proc/self/fd")) == fds
    assert klab.run_in(klab.client_ns, _rss_kib) - rss < 512  # KiB


def test_errors_of_the_loader_name_what_to_do() -> None:
    err = sockopt._load_error(errno.EPERM, "map_create", "BPF_MAP_CREATE: Operation not permitted", "x")
    assert isinstance(err, mptcp.MPTCPPermissionError) and "CAP_BPF" in str(err)
    err = sockopt._load_error(errno.ENOENT, "btf_open", "/sys/kernel/btf/vmlinux: No such file", "x")
    assert isinstance(err, mptcp.UnsupportedOperationError) and "CONFIG_DEBUG_INFO_BTF" in str(err)
    err = sockopt._load_error(errno.EINVAL, "prog_load", "BPF_PROG_LOAD: Invalid argument: verifier: "
                              "program of this type cannot use helper bpf_setsockopt#49", "x")
    assert isinstance(err, mptcp.KernelTooOldError) and err.min_version == (5, 15)
    err = sockopt._load_error(errno.EACCES, "prog_load", "BPF_PROG_LOAD: Permission denied: "
                              "verifier: R1 invalid mem access 'scalar'", "x")
    assert isinstance(err, mptcp.UnsupportedOperationError) and "R1 invalid mem access" in str(err)
    err = sockopt._load_error(errno.EOPNOTSUPP, "btf_lookup", "BTF has no FUNC bpf_iter_tcp", "x")
    assert isinstance(err, mptcp.KernelTooOldError) and err.min_version == (5, 15)


def test_the_kfunc_and_the_probe_read_programs_both_load() -> None:
    # The probe_read variant serves kernels without bpf_rdonly_cast (before 6.2): it
    # must pass this kernel's verifier too. A child: the library's own program stays.
    code = textwrap.dedent("""
        import sys; sys.path.insert(0, sys.argv[1])
        import mptcp._mptcp as core
        core.bpf_load("test", 1)
        print(core.bpf_stats()["kfunc"], core.bpf_stats()["insns"])
    """)
    out = subprocess.run([sys.executable, "-c", code, SRC], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out[0] == "False" and 70 <= int(out[1]) <= 130
