"""Child-process driver for the draft-kernel double's own tests.

Runs under LD_PRELOAD=draft_double.so (see build.child_env) and drives raw
getsockopt/setsockopt through ctypes, never through the mptcp library, so the
double is tested on its own.  Usage:

    python _driver.py                 run MAIN_CASES, print {case: result} JSON
    python _driver.py CASE [CASE...]  run those cases only (e.g. the aborting ones)

Each result is {"status": "pass" | "fail" | "skip", "detail": str}.  Importing
this module has no side effects: the parent imports it for the case names.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import platform
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator

SOL_TCP = 6
IPPROTO_MPTCP = 262
TCP_NODELAY = 1
TCP_IS_MPTCP = 43
MPTCP_ENABLED = 42
GET_SUB_IDS = 66
CLOSE_SUB_ID = 67
GET_SUB_TUPLE = 68
OPEN_SUB_TUPLE = 69
SUB_GETSOCKOPT = 71
SUB_SETSOCKOPT = 72

SLAVE_SK, FULLY_ESTABLISHED, ATTACHED, LOW_PRIO, PRE_ESTABLISHED = 1, 2, 4, 8, 16
TUPLE4, TUPLE6 = 1 + 2 * 16, 1 + 2 * 28
SUBOPT_LEN = 32  # struct mptcp_sub_{get,set}sockopt on LP64

# getsockopt(2) without libc, so without the double: the kernel's own answer.
SYS_GETSOCKOPT = {"x86_64": 55, "aarch64": 209}.get(platform.machine())


class Skip(Exception):
    """The case cannot run on this machine (reason in the message)."""


# --------------------------------------------------------------------------- calls

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """Process-global symbols, so the preloaded getsockopt/setsockopt win."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
        lib.setsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_uint32]
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


class Res:
    """Outcome of one raw call: ret, errno, the buffer after, optlen after."""

    def __init__(self, ret: int, err: int, buf: bytes, optlen: int) -> None:
        self.ret, self.err, self.buf, self.optlen = ret, err, buf, optlen

    def __repr__(self) -> str:
        name = errno.errorcode.get(self.err, self.err) if self.ret < 0 else "OK"
        return f"Res(ret={self.ret}, {name}, optlen={self.optlen}, buf={self.buf[:64].hex()})"


def gso(fd: int, optname: int, data: bytes = b"", optlen: int | None = None,
        size: int | None = None, level: int = SOL_TCP) -> Res:
    """getsockopt with a buffer of `size` bytes starting with `data`."""
    if optlen is None:
        optlen = max(len(data), size or 0)
    size = max(size or 0, len(data), optlen, 1)
    buf = ctypes.create_string_buffer(data, size)
    ln = ctypes.c_uint32(optlen)
    ctypes.set_errno(0)
    ret = libc().getsockopt(fd, level, optname, buf, ctypes.byref(ln))
    return Res(ret, ctypes.get_errno(), buf.raw, ln.value)


def sso(fd: int, optname: int, data: bytes, optlen: int | None = None,
        level: int = SOL_TCP) -> Res:
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    ln = len(data) if optlen is None else optlen
    ctypes.set_errno(0)
    ret = libc().setsockopt(fd, level, optname, buf, ln)
    return Res(ret, ctypes.get_errno(), buf.raw, ln)


def raw_gso(fd: int, level: int, optname: int, size: int = 64) -> Res:
    """The kernel's answer, bypassing libc (and thus the double)."""
    if SYS_GETSOCKOPT is None:
        raise Skip(f"no getsockopt syscall number for {platform.machine()}")
    buf = ctypes.create_string_buffer(size)
    ln = ctypes.c_uint32(size)
    ctypes.set_errno(0)
    ret = libc().syscall(SYS_GETSOCKOPT, fd, level, optname, buf, ctypes.byref(ln))
    return Res(int(ret), ctypes.get_errno(), buf.raw, ln.value)


def expect_err(res: Res, err: int, what: str) -> None:
    assert res.ret == -1 and res.err == err, \
        f"{what}: expected {errno.errorcode[err]}, got {res!r}"


def expect_ok(res: Res, what: str) -> None:
    assert res.ret == 0, f"{what}: expected success, got {res!r}"


# ------------------------------------------------------------------ connections

_keep: list[socket.socket] = []  # sockets must outlive each case's locals


def mptcp_pair(family: int = socket.AF_INET) -> tuple[socket.socket, socket.socket]:
    """A fresh connected IPPROTO_MPTCP (client, accepted) pair on loopback."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    try:
        lst = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
        lst.bind((host, 0))
    except OSError as e:
        raise Skip(f"cannot make an MPTCP listener on {host}: {e}") from e
    lst.listen()
    cli = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    cli.connect(lst.getsockname()[:2])
    srv, _ = lst.accept()
    _keep.extend([lst, cli, srv])
    return cli, srv


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    _keep.extend([lst, cli, srv])
    return cli, srv


def sa4(host: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_aton(host) + bytes(8)


def sa6(host: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + bytes(4) + \
        socket.inet_pton(socket.AF_INET6, host) + bytes(4)


def parse_sa(b: bytes) -> tuple[int, str, int, bytes]:
    """(family, host, port, padding garbage) of a sockaddr_in/in6."""
    fam = struct.unpack_from("<H", b)[0]
    port = struct.unpack_from(">H", b, 2)[0]
    if fam == socket.AF_INET:
        return fam, socket.inet_ntoa(b[4:8]), port, b[8:16]
    assert fam == socket.AF_INET6, f"bad family {fam}"
    return fam, socket.inet_ntop(socket.AF_INET6, b[8:24]), port, b[4:8] + b[24:28]


def sub_ids(fd: int) -> list[tuple[int, int]]:
    res = gso(fd, GET_SUB_IDS, size=512)
    expect_ok(res, "GET_SUB_IDS")
    n = res.buf[0]
    assert res.optlen == 2 + 2 * n, res
    return [(res.buf[2 + 2 * i], res.buf[3 + 2 * i]) for i in range(n)]


def ids(fd: int) -> list[int]:
    return [i for i, _ in sub_ids(fd)]


def tuple_of(fd: int, sub_id: int) -> tuple[tuple[int, str, int, bytes], ...]:
    res = gso(fd, GET_SUB_TUPLE, bytes([sub_id]), size=TUPLE6)
    expect_ok(res, f"GET_SUB_TUPLE {sub_id}")
    salen = (res.optlen - 1) // 2
    return parse_sa(res.buf[1:1 + salen]), parse_sa(res.buf[1 + salen:1 + 2 * salen])


def open_sub(fd: int, local: bytes, remote: bytes, optlen: int | None = None) -> Res:
    data = b"\x00" + local + remote
    return gso(fd, OPEN_SUB_TUPLE, data, optlen=len(data) if optlen is None else optlen,
               size=TUPLE6)


def subopt(sub_id: int, level: int, optname: int, ptr: int, lenfield: int) -> bytes:
    """struct mptcp_sub_{get,set}sockopt: id@0 level@4 optname@8 optval@16 optlen@24."""
    return struct.pack("<B3xii4xQQ", sub_id, level, optname, ptr, lenfield)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """What the double writes to fd 2 during the block."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


# ------------------------------------------------------------------------ cases

def case_probe_plain_tcp() -> None:
    """Detection: a throwaway plain TCP socket answers EOPNOTSUPP (mainline: ENOPROTOOPT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        expect_err(gso(s.fileno(), GET_SUB_IDS, size=512), errno.EOPNOTSUPP, "66 unconnected")
        assert raw_gso(s.fileno(), SOL_TCP, GET_SUB_IDS).err == errno.ENOPROTOOPT
    cli, _ = tcp_pair()
    for opt in range(66, 73):
        expect_err(gso(cli.fileno(), opt, size=512), errno.EOPNOTSUPP, f"{opt} on TCP")


def case_enabled_mptcp() -> None:
    """MPTCP_ENABLED is 1 on connected MPTCP sockets (both ends, v4 and v6)."""
    socks = list(mptcp_pair())
    try:
        socks += mptcp_pair(socket.AF_INET6)
    except Skip:
        pass
    for s in socks:
        res = gso(s.fileno(), MPTCP_ENABLED, size=4)
        expect_ok(res, "42")
        assert res.optlen == 4 and struct.unpack_from("<i", res.buf)[0] == 1, res


def case_enabled_plain_tcp() -> None:
    """MPTCP_ENABLED is 0 on plain TCP, connected or not."""
    cli, srv = tcp_pair()
    with socket.socket() as fresh:
        for s in (cli, srv, fresh):
            res = gso(s.fileno(), MPTCP_ENABLED, b"\xff" * 4)
            expect_ok(res, "42 on TCP")
            assert res.optlen == 4 and res.buf[:4] == bytes(4), res


def case_enabled_not_connected() -> None:
    """Unconnected/listening MPTCP sockets: not MPTCP yet (mpc needs MP_CAPABLE)."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    fresh = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    _keep.extend([lst, fresh])
    for s in (lst, fresh):
        res = gso(s.fileno(), MPTCP_ENABLED, b"\xff" * 4)
        expect_ok(res, "42")
        assert res.buf[:4] == bytes(4), res
        expect_err(gso(s.fileno(), GET_SUB_IDS, size=512), errno.EOPNOTSUPP, "66")


def case_enabled_fallback() -> None:
    """An MPTCP socket that fell back to TCP is not MPTCP for the fork either."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    cli.connect(lst.getsockname())
    _keep.extend([lst, cli, lst.accept()[0]])
    if raw_gso(cli.fileno(), SOL_TCP, TCP_IS_MPTCP).ret < 0:
        raise Skip("kernel lacks TCP_IS_MPTCP (6.10+): fallback is invisible")
    res = gso(cli.fileno(), MPTCP_ENABLED, size=4)
    expect_ok(res, "42")
    assert res.buf[:4] == bytes(4), res
    expect_err(gso(cli.fileno(), GET_SUB_IDS, size=512), errno.EOPNOTSUPP, "66")


def case_enabled_optlen() -> None:
    """MPTCP_ENABLED has int-option semantics: min(optlen, 4) bytes, length written back."""
    cli, _ = mptcp_pair()
    res = gso(cli.fileno(), MPTCP_ENABLED, b"\xee" * 8)
    assert res.ret == 0 and res.optlen == 4 and res.buf[:8] == b"\x01\0\0\0" + b"\xee" * 4, res
    res = gso(cli.fileno(), MPTCP_ENABLED, b"\xee" * 4, optlen=1)
    assert res.ret == 0 and res.optlen == 1 and res.buf[:4] == b"\x01\xee\xee\xee", res


def case_forwarded() -> None:
    """Non-draft options, and non-TCP sockets / fds, get the kernel's own answer."""
    cli, _ = mptcp_pair()
    res = gso(cli.fileno(), TCP_IS_MPTCP, size=4)
    assert res.ret == 0 and res.buf[:4] == b"\x01\0\0\0", f"43 TCP_IS_MPTCP {res!r}"
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix_a, _unix_b = socket.socketpair()
    _keep.extend([udp, unix_a, _unix_b])
    for s in (udp, unix_a):
        for opt in (MPTCP_ENABLED, GET_SUB_IDS, SUB_GETSOCKOPT):
            got, want = gso(s.fileno(), opt, size=64), raw_gso(s.fileno(), SOL_TCP, opt)
            assert (got.ret, got.err) == (want.ret, want.err), f"{s} {opt}: {got} vs {want}"
    rfd, wfd = os.pipe()
    try:
        expect_err(gso(rfd, GET_SUB_IDS, size=512), errno.ENOTSOCK, "pipe")
        expect_err(gso(rfd, MPTCP_ENABLED, size=4), errno.ENOTSOCK, "pipe 42")
    finally:
        os.close(rfd)
        os.close(wfd)
    expect_err(gso(9999, GET_SUB_IDS, size=512), errno.EBADF, "bad fd")
    # Levels other than SOL_TCP with a draft number are not the fork's business.
    res = gso(cli.fileno(), GET_SUB_IDS, size=512, level=socket.SOL_IP)
    want = raw_gso(cli.fileno(), socket.SOL_IP, GET_SUB_IDS, size=512)
    assert (res.ret, res.err) == (want.ret, want.err), (res, want)


def case_sub_ids_exact() -> None:
    """GET_SUB_IDS with exactly 2 + 2n bytes: one subflow, id 1, optlen 4."""
    cli, _ = mptcp_pair()
    res = gso(cli.fileno(), GET_SUB_IDS, optlen=4, size=4)
    expect_ok(res, "66 exact")
    assert res.optlen == 4 and res.buf[0] == 1 and res.buf[2] == 1, res


def case_sub_ids_short() -> None:
    """Short buffer: EINVAL, and neither the needed length nor data is written."""
    cli, _ = mptcp_pair()
    for n in (0, 1, 3):
        res = gso(cli.fileno(), GET_SUB_IDS, b"\x5a" * 8, optlen=n)
        expect_err(res, errno.EINVAL, f"66 optlen {n}")
        assert res.optlen == n and res.buf == b"\x5a" * 8, res
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    res = gso(cli.fileno(), GET_SUB_IDS, b"\x5a" * 8, optlen=5)
    expect_err(res, errno.EINVAL, "66 optlen 5 with 2 subflows")
    assert res.optlen == 5 and res.buf == b"\x5a" * 8, res
    res = gso(cli.fileno(), GET_SUB_IDS, optlen=6)
    expect_ok(res, "66 optlen 6 with 2 subflows")
    assert res.optlen == 6 and res.buf[0] == 2, res


def case_sub_ids_512() -> None:
    """512 bytes always suffice (u8 count); optlen comes back as 2 + 2n."""
    cli, _ = mptcp_pair()
    res = gso(cli.fileno(), GET_SUB_IDS, size=512)
    expect_ok(res, "66 512")
    assert res.optlen == 4 and res.buf[0] == 1 and res.buf[2] == 1, res


def case_sub_status_bits() -> None:
    """Status decoding: established vs just opened; slave_sk/low_prio are garbage."""
    cli, _ = mptcp_pair()
    (sid, st), = sub_ids(cli.fileno())
    assert sid == 1 and st & (FULLY_ESTABLISHED | ATTACHED) == FULLY_ESTABLISHED | ATTACHED
    assert not st & PRE_ESTABLISHED, hex(st)
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    first = dict(sub_ids(cli.fileno()))
    assert first[2] & (PRE_ESTABLISHED | ATTACHED) == PRE_ESTABLISHED | ATTACHED, first
    assert not first[2] & FULLY_ESTABLISHED, first
    then = dict(sub_ids(cli.fileno()))
    assert then[2] & (FULLY_ESTABLISHED | ATTACHED | PRE_ESTABLISHED) == \
        FULLY_ESTABLISHED | ATTACHED, then
    # Uninitialised bits: over 200 reads each takes both values (p(fail) ~ 2^-199).
    seen = [st for _ in range(100) for _, st in sub_ids(cli.fileno())]
    for bit in (SLAVE_SK, LOW_PRIO):
        assert {bool(s & bit) for s in seen} == {False, True}, f"bit {bit:#x} not garbage"
    assert all(s & 0xE0 == 0 for s in seen)


def case_tuple_v4() -> None:
    """GET_SUB_TUPLE id 1 = getsockname/getpeername, 33 bytes, garbage sin_zero."""
    for s in mptcp_pair():
        for size in (TUPLE4, TUPLE6, 512):
            res = gso(s.fileno(), GET_SUB_TUPLE, b"\x01", optlen=size)
            expect_ok(res, f"68 optlen {size}")
            assert res.optlen == TUPLE4 and res.buf[0] == 1, res
            loc, rem = parse_sa(res.buf[1:17]), parse_sa(res.buf[17:33])
            assert (loc[1], loc[2]) == s.getsockname() and loc[0] == socket.AF_INET
            assert (rem[1], rem[2]) == s.getpeername(), (rem, s.getpeername())
            assert loc[3] != bytes(8) and rem[3] != bytes(8), "sin_zero must be garbage"


def case_tuple_v6() -> None:
    """IPv6: 57 bytes, addresses and ports match, flowinfo/scope_id garbage."""
    cli, _ = mptcp_pair(socket.AF_INET6)
    res = gso(cli.fileno(), GET_SUB_TUPLE, b"\x01", optlen=TUPLE6)
    expect_ok(res, "68 v6")
    assert res.optlen == TUPLE6, res
    loc, rem = parse_sa(res.buf[1:29]), parse_sa(res.buf[29:57])
    assert (loc[0], loc[1], loc[2]) == (socket.AF_INET6, "::1", cli.getsockname()[1])
    assert (rem[1], rem[2]) == ("::1", cli.getpeername()[1])
    assert loc[3][:4] != bytes(4) and loc[3][4:] != bytes(4), "flowinfo/scope garbage"
    assert rem[3][:4] != bytes(4) and rem[3][4:] != bytes(4), "flowinfo/scope garbage"


def case_tuple_unknown_id() -> None:
    cli, _ = mptcp_pair()
    for sid in (0, 2, 255):
        expect_err(gso(cli.fileno(), GET_SUB_TUPLE, bytes([sid]), optlen=TUPLE6),
                   errno.EINVAL, f"68 id {sid}")


def case_tuple_short() -> None:
    """Needs 1 + 2*sizeof(sockaddr_in) for IPv4, 1 + 2*sizeof(sockaddr_in6) for IPv6."""
    cli, _ = mptcp_pair()
    for n in (0, 1, TUPLE4 - 1):
        res = gso(cli.fileno(), GET_SUB_TUPLE, b"\x01", optlen=n, size=64)
        expect_err(res, errno.EINVAL, f"68 v4 optlen {n}")
        assert res.optlen == n, res
    cli6, _ = mptcp_pair(socket.AF_INET6)
    for n in (TUPLE4, TUPLE6 - 1):
        res = gso(cli6.fileno(), GET_SUB_TUPLE, b"\x01", optlen=n, size=64)
        expect_err(res, errno.EINVAL, f"68 v6 optlen {n}")
        assert res.optlen == n, res


def case_open_optlen() -> None:
    """OPEN_SUB_TUPLE: optlen exactly 33 (IPv4) / 57 (IPv6); families must agree."""
    cli, _ = mptcp_pair()
    tup = sa4("127.0.0.1", 0) + sa4("127.0.0.1", 0)
    for n in (TUPLE4 - 1, TUPLE4 + 1, TUPLE6):
        expect_err(open_sub(cli.fileno(), tup[:16], tup[16:], optlen=n), errno.EINVAL,
                   f"69 optlen {n}")
    assert ids(cli.fileno()) == [1]
    expect_ok(open_sub(cli.fileno(), tup[:16], tup[16:], optlen=TUPLE4), "69 optlen 33")
    assert ids(cli.fileno()) == [1, 2]
    bad_fam = struct.pack("<H", socket.AF_INET6) + tup[2:16]
    expect_err(open_sub(cli.fileno(), bad_fam, tup[16:]), errno.EINVAL, "local family field")
    expect_err(open_sub(cli.fileno(), tup[:16], bad_fam), errno.EINVAL, "remote family field")
    cli6, _ = mptcp_pair(socket.AF_INET6)
    expect_err(open_sub(cli6.fileno(), tup[:16], tup[16:]), errno.EINVAL, "v4 tuple on v6")
    expect_ok(open_sub(cli6.fileno(), sa6("::1", 0), sa6("::1", 0)), "69 v6 optlen 57")
    assert ids(cli6.fileno()) == [1, 2]


def case_open_no_id_back() -> None:
    """The fork returns no id: buffer and optlen untouched; the id shows in GET_SUB_IDS."""
    cli, _ = mptcp_pair()
    data = b"\x00" + sa4("127.0.0.1", 0) + sa4("127.0.0.1", 0)
    res = gso(cli.fileno(), OPEN_SUB_TUPLE, data, optlen=TUPLE4, size=64)
    expect_ok(res, "69")
    assert res.buf[:TUPLE4] == data and res.buf[TUPLE4:] == bytes(64 - TUPLE4), res
    assert res.optlen == TUPLE4, res
    assert ids(cli.fileno()) == [1, 2]


def case_open_ports() -> None:
    """Local port 0 = ephemeral; remote port 0 = the connection's; others kept."""
    cli, _ = mptcp_pair()
    peer_port = cli.getpeername()[1]
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    loc, rem = tuple_of(cli.fileno(), 2)
    assert loc[1] == "127.0.0.1" and loc[2] != 0 and loc[2] != cli.getsockname()[1], loc
    assert (rem[1], rem[2]) == ("127.0.0.1", peer_port), rem
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.2", 0), sa4("127.0.0.3", 4242)), "open 2")
    loc, rem = tuple_of(cli.fileno(), 3)
    assert loc[1] == "127.0.0.2" and loc[2] != 0 and (rem[1], rem[2]) == ("127.0.0.3", 4242)


def case_open_bind_errors() -> None:
    """The local address is bind-checked: EADDRNOTAVAIL, EADDRINUSE pass through."""
    cli, _ = mptcp_pair()
    remote = sa4("127.0.0.1", 0)
    expect_err(open_sub(cli.fileno(), sa4("192.0.2.1", 0), remote), errno.EADDRNOTAVAIL,
               "192.0.2.1 not on host")
    lst_port = cli.getpeername()[1]  # the MPTCP listener holds this port
    expect_err(open_sub(cli.fileno(), sa4("127.0.0.1", lst_port), remote), errno.EADDRINUSE,
               "listener's port")
    expect_err(open_sub(cli.fileno(), sa4("127.0.0.1", cli.getsockname()[1]), remote),
               errno.EADDRINUSE, "initial subflow's port")
    # A port that a fake subflow of the double holds is in use too.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.1", free_port), remote), "free port")
    expect_err(open_sub(cli.fileno(), sa4("127.0.0.1", free_port), remote), errno.EADDRINUSE,
               "port of an opened subflow")
    assert ids(cli.fileno()) == [1, 2]
    try:
        cli6, _ = mptcp_pair(socket.AF_INET6)
    except Skip:
        return
    expect_err(open_sub(cli6.fileno(), sa6("2001:db8::1", 0), sa6("::1", 0)),
               errno.EADDRNOTAVAIL, "2001:db8::1 not on host")


def case_open_eacces() -> None:
    """Binding a privileged port without CAP_NET_BIND_SERVICE: EACCES passes through.

    Irreversibly drops capabilities: run it in its own child.
    """
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start <= 1:
        raise Skip("ip_unprivileged_port_start is 0: every port is unprivileged")
    drop_net_bind_service()
    cli, _ = mptcp_pair()
    expect_err(open_sub(cli.fileno(), sa4("127.0.0.1", start - 1), sa4("127.0.0.1", 0)),
               errno.EACCES, f"port {start - 1}")


def drop_net_bind_service() -> None:
    """Clear CAP_NET_BIND_SERVICE (10) from this process (no-op if not held)."""
    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
    data = (ctypes.c_uint32 * 6)()  # 2 x {effective, permitted, inheritable}
    if libc().capget(hdr, data) != 0:
        raise Skip(f"capget failed: {os.strerror(ctypes.get_errno())}")
    for i in (0, 1, 2):  # word 0 of effective, permitted, inheritable
        data[i] &= ~(1 << 10)
    if libc().capset(hdr, data) != 0:
        raise Skip(f"capset failed: {os.strerror(ctypes.get_errno())}")


def case_close_ok() -> None:
    """CLOSE_SUB_ID with optlen 1 removes the subflow."""
    cli, _ = mptcp_pair()
    expect_ok(open_sub(cli.fileno(), sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    res = gso(cli.fileno(), CLOSE_SUB_ID, b"\x02", optlen=1)
    expect_ok(res, "67 id 2")
    assert res.optlen == 1, res
    assert ids(cli.fileno()) == [1]
    expect_err(gso(cli.fileno(), GET_SUB_TUPLE, b"\x02", optlen=TUPLE6), errno.EINVAL,
               "68 on closed id")


def case_close_optlen() -> None:
    """Any optlen but 1 is EINVAL; larger ones also warn loudly (stack overflow on the fork)."""
    cli, _ = mptcp_pair()
    with captured_stderr() as err:
        expect_err(gso(cli.fileno(), CLOSE_SUB_ID, b"\x01\0\0\0", optlen=4), errno.EINVAL,
                   "67 optlen 4")
    assert "CLOSE_SUB_ID optlen 4 would overflow the fork's kernel stack" in err[0], err
    with captured_stderr() as err:
        expect_err(gso(cli.fileno(), CLOSE_SUB_ID, b"\x01", optlen=0), errno.EINVAL,
                   "67 optlen 0")
    assert "overflow" not in err[0], err
    assert ids(cli.fileno()) == [1]


def case_close_unknown_id() -> None:
    cli, _ = mptcp_pair()
    for sid in (0, 2, 200):
        expect_err(gso(cli.fileno(), CLOSE_SUB_ID, bytes([sid]), optlen=1), errno.EINVAL,
                   f"67 id {sid}")
    assert ids(cli.fileno()) == [1]


def case_ids_never_reused() -> None:
    """Ids grow from 1 and are never reused, even after closing the newest or id 1."""
    cli, _ = mptcp_pair()
    fd, tup = cli.fileno(), (sa4("127.0.0.1", 0), sa4("127.0.0.1", 0))
    expect_ok(open_sub(fd, *tup), "open")
    assert ids(fd) == [1, 2]
    expect_ok(gso(fd, CLOSE_SUB_ID, b"\x02", optlen=1), "close 2")
    expect_ok(open_sub(fd, *tup), "open")
    assert ids(fd) == [1, 3]
    expect_ok(gso(fd, CLOSE_SUB_ID, b"\x01", optlen=1), "close 1")
    expect_ok(open_sub(fd, *tup), "open")
    assert ids(fd) == [3, 4]


def case_close_last() -> None:
    """Closing the last subflow is allowed; the connection stays MPTCP with 0 subflows."""
    cli, _ = mptcp_pair()
    expect_ok(gso(cli.fileno(), CLOSE_SUB_ID, b"\x01", optlen=1), "close 1")
    res = gso(cli.fileno(), GET_SUB_IDS, optlen=2)
    expect_ok(res, "66 empty")
    assert res.optlen == 2 and res.buf[0] == 0, res
    assert gso(cli.fileno(), MPTCP_ENABLED, size=4).buf[:4] == b"\x01\0\0\0"


def case_table_per_socket() -> None:
    """Tables follow the socket, not the fd number: a reused fd starts fresh."""
    cli, _ = mptcp_pair()
    fd = cli.fileno()
    expect_ok(open_sub(fd, sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    assert ids(fd) == [1, 2]
    cli.close()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    _keep.append(lst)
    new = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    new.connect(lst.getsockname())
    _keep.extend([new, lst.accept()[0]])
    assert ids(new.fileno()) == [1], "stale table inherited"
    # Either end of one connection is its own socket, with its own table.
    a, b = mptcp_pair()
    expect_ok(open_sub(a.fileno(), sa4("127.0.0.1", 0), sa4("127.0.0.1", 0)), "open")
    assert ids(b.fileno()) == [1]


def _nodelay(s: socket.socket) -> int:
    return s.getsockopt(SOL_TCP, TCP_NODELAY)


def case_sub_getsockopt() -> None:
    """SUB_GETSOCKOPT forwards TCP/IP levels to the real socket with the inner buffer."""
    cli, _ = mptcp_pair()
    for want in (1, 0):
        cli.setsockopt(SOL_TCP, TCP_NODELAY, want)
        val, ln = ctypes.c_int(-1), ctypes.c_uint32(4)
        req = subopt(1, SOL_TCP, TCP_NODELAY, ctypes.addressof(val), ctypes.addressof(ln))
        res = gso(cli.fileno(), SUB_GETSOCKOPT, req)
        expect_ok(res, "71 TCP_NODELAY")
        assert res.optlen == SUBOPT_LEN and val.value == want and ln.value == 4, \
            (res, val.value, ln.value)
    val, ln = ctypes.c_int(-1), ctypes.c_uint32(4)
    req = subopt(1, socket.IPPROTO_IP, socket.IP_TOS, ctypes.addressof(val),
                 ctypes.addressof(ln))
    expect_ok(gso(cli.fileno(), SUB_GETSOCKOPT, req), "71 IP_TOS")
    assert val.value == cli.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


def case_sub_getsockopt_errors() -> None:
    """optlen must be 32; unknown id EINVAL; SOL_SOCKET (and foreign levels) ENOPROTOOPT."""
    cli, _ = mptcp_pair()
    val, ln = ctypes.c_int(-1), ctypes.c_uint32(4)
    p, pl = ctypes.addressof(val), ctypes.addressof(ln)
    req = subopt(1, SOL_TCP, TCP_NODELAY, p, pl)
    for n in (0, 31, 33, 64):
        expect_err(gso(cli.fileno(), SUB_GETSOCKOPT, req, optlen=n, size=64), errno.EINVAL,
                   f"71 optlen {n}")
    expect_err(gso(cli.fileno(), SUB_GETSOCKOPT, subopt(7, SOL_TCP, TCP_NODELAY, p, pl)),
               errno.EINVAL, "71 unknown id")
    expect_err(gso(cli.fileno(), SUB_GETSOCKOPT,
                   subopt(1, socket.SOL_SOCKET, socket.SO_RCVBUF, p, pl)),
               errno.ENOPROTOOPT, "71 SOL_SOCKET")
    expect_err(gso(cli.fileno(), SUB_GETSOCKOPT, subopt(1, 17, 1, p, pl)),
               errno.ENOPROTOOPT, "71 SOL_UDP")
    assert val.value == -1, "inner buffer written on error"


def case_sub_setsockopt() -> None:
    """SUB_SETSOCKOPT arrives through setsockopt and reaches the real socket."""
    cli, _ = mptcp_pair()
    for want in (1, 0):
        val = ctypes.c_int(want)
        req = struct.pack("<B3xii4xQI4x", 1, SOL_TCP, TCP_NODELAY, ctypes.addressof(val), 4)
        expect_ok(sso(cli.fileno(), SUB_SETSOCKOPT, req), "72 TCP_NODELAY")
        assert _nodelay(cli) == want


def case_sub_setsockopt_errors() -> None:
    cli, _ = mptcp_pair()
    cli.setsockopt(SOL_TCP, TCP_NODELAY, 0)
    val = ctypes.c_int(1)
    p = ctypes.addressof(val)

    def req(sid: int, level: int, opt: int) -> bytes:
        return struct.pack("<B3xii4xQI4x", sid, level, opt, p, 4)

    for n in (0, 31, 33):
        expect_err(sso(cli.fileno(), SUB_SETSOCKOPT, req(1, SOL_TCP, TCP_NODELAY) + bytes(8),
                       optlen=n), errno.EINVAL, f"72 optlen {n}")
    expect_err(sso(cli.fileno(), SUB_SETSOCKOPT, req(9, SOL_TCP, TCP_NODELAY)), errno.EINVAL,
               "72 unknown id")
    expect_err(sso(cli.fileno(), SUB_SETSOCKOPT, req(1, socket.SOL_SOCKET, socket.SO_KEEPALIVE)),
               errno.ENOPROTOOPT, "72 SOL_SOCKET")
    assert _nodelay(cli) == 0 and cli.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    # 72 is set-only and 66-71 get-only on the fork.
    expect_err(gso(cli.fileno(), SUB_SETSOCKOPT, req(1, SOL_TCP, TCP_NODELAY)),
               errno.ENOPROTOOPT, "getsockopt 72")


def case_abort_plain_tcp() -> None:
    """SUB_SETSOCKOPT on plain TCP: the fork locks the socket forever; the double aborts."""
    cli, _ = tcp_pair()
    val = ctypes.c_int(1)
    sso(cli.fileno(), SUB_SETSOCKOPT,
        struct.pack("<B3xii4xQI4x", 1, SOL_TCP, TCP_NODELAY, ctypes.addressof(val), 4))
    raise AssertionError("the double did not abort")


def case_abort_unconnected_mptcp() -> None:
    """Same for an MPTCP socket that is not (yet) an MPTCP connection."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    _keep.append(s)
    val = ctypes.c_int(1)
    sso(s.fileno(), SUB_SETSOCKOPT,
        struct.pack("<B3xii4xQI4x", 1, SOL_TCP, TCP_NODELAY, ctypes.addressof(val), 4))
    raise AssertionError("the double did not abort")


def case_sleep() -> None:
    """Under DRAFT_DOUBLE_SLEEP_MS every draft call sleeps; ctypes lets threads run meanwhile."""
    ms = int(os.environ.get("DRAFT_DOUBLE_SLEEP_MS", "0"))
    if ms < 100:
        raise Skip("run with DRAFT_DOUBLE_SLEEP_MS >= 100")
    cli, _ = mptcp_pair()
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    try:
        for opt, data in ((GET_SUB_IDS, bytes(512)), (MPTCP_ENABLED, bytes(4))):
            t0 = time.monotonic()
            expect_ok(gso(cli.fileno(), opt, data), f"{opt}")
            took = time.monotonic() - t0
            assert took >= ms / 1000 * 0.95, f"{opt} took {took:.3f}s"
    finally:
        stop.set()
        t.join()
    assert ticks > 10, f"other threads stalled during the call ({ticks} ticks)"
    t0 = time.monotonic()
    _nodelay(cli)
    assert time.monotonic() - t0 < ms / 1000 / 2, "non-draft option slept"


def case_log() -> None:
    """Under DRAFT_DOUBLE_LOG=1 each intercepted call logs one line (checked by the parent)."""
    cli, _ = mptcp_pair()
    expect_ok(gso(cli.fileno(), GET_SUB_IDS, size=512), "66")
    expect_err(gso(cli.fileno(), GET_SUB_TUPLE, b"\x09", optlen=TUPLE6), errno.EINVAL, "68")


CASES: dict[str, Callable[[], None]] = {
    name[len("case_"):]: fn for name, fn in list(globals().items())
    if name.startswith("case_") and callable(fn)
}
# Cases that need their own child: they abort, drop privileges, or need env vars.
SEPARATE = ("abort_plain_tcp", "abort_unconnected_mptcp", "open_eacces", "sleep", "log")
MAIN_CASES = [name for name in CASES if name not in SEPARATE]


def run(names: list[str]) -> dict[str, dict[str, str]]:
    results = {}
    for name in names:
        try:
            CASES[name]()
            results[name] = {"status": "pass", "detail": ""}
        except Skip as e:
            results[name] = {"status": "skip", "detail": str(e)}
        except Exception:  # report every failure, keep running the others
            results[name] = {"status": "fail", "detail": traceback.format_exc()}
    return results


def main(argv: list[str]) -> int:
    names = argv or MAIN_CASES
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown cases: {unknown}", file=sys.stderr)
        return 2
    json.dump(run(names), sys.stdout)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
