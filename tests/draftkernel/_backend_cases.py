"""Draft-only tests of the library's draft backend, run in a child pytest under the double.

Not collected by the parent run (no ``test_`` file prefix): ``test_draft_backend.py``
runs this file in a child Python with ``LD_PRELOAD=draft_double.so`` and
``MPTCP_BACKEND=draft``, in groups (see ``GROUPS``), and reports each test here as
one of its own. Everything goes through the public ``mptcp`` calls; raw ctypes calls
(which the preload also answers) only set up states the library never makes, or
check what the double saw.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import mptcp
from mptcp import (
    MPTCPError,
    MPTCPTimeoutError,
    NotMPTCPError,
    Subflow,
    SubflowNotFoundError,
    SubflowOpenError,
    SubflowStatus,
    UnsupportedOperationError,
)

IPPROTO_MPTCP = 262
SOL_TCP = socket.IPPROTO_TCP
GET_SUB_IDS, OPEN_SUB_TUPLE = 66, 69
SLAVE_SK, LOW_PRIO = 0x01, 0x08
FULL = SubflowStatus.FULLY_ESTABLISHED | SubflowStatus.ATTACHED
PRE = SubflowStatus.PRE_ESTABLISHED | SubflowStatus.ATTACHED

# Tests that need a child of their own (parent: test_draft_backend.py).
GROUPS: dict[str, dict[str, object]] = {
    # If the library forgot MPTCP_ENABLED, the double would abort the whole child.
    "noabort": {"tests": ["test_set_sockopt_non_mptcp_no_abort"], "env": {}},
    # Drops CAP_NET_BIND_SERVICE for good.
    "eacces": {"tests": ["test_open_eacces_keeps_errno"], "env": {}},
    # One stderr line per intercepted call: checks the exact calls made.
    "log": {"tests": ["test_exact_calls"], "env": {"DRAFT_DOUBLE_LOG": "1"}},
    # Every draft call sleeps: checks the GIL is released around it.
    "sleep": {"tests": ["test_gil_released"], "env": {"DRAFT_DOUBLE_SLEEP_MS": "150"}},
}

_keep: list[socket.socket] = []


def _under_double() -> bool:
    return "draft_double" in os.environ.get("LD_PRELOAD", "")


@pytest.fixture(autouse=True, scope="module")
def _require_double() -> None:
    if not _under_double():
        pytest.skip("runs only in a child under the draft double (see test_draft_backend.py)")


def _pair(family: int, proto: int = IPPROTO_MPTCP) -> tuple[socket.socket, socket.socket]:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    try:
        lst = socket.socket(family, socket.SOCK_STREAM, proto)
        lst.bind((host, 0))
    except OSError as exc:
        pytest.skip(f"no listener on {host}: {exc}")
    lst.listen()
    cli = socket.socket(family, socket.SOCK_STREAM, proto)
    cli.connect(lst.getsockname()[:2])
    srv, _ = lst.accept()
    _keep.extend([lst, cli, srv])
    return cli, srv


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def family(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def conn(family: int) -> Iterator[socket.socket]:
    cli, _srv = _pair(family)
    yield cli


@pytest.fixture
def conn4() -> socket.socket:
    return _pair(socket.AF_INET)[0]


def _id(sf: Subflow) -> int:
    assert sf.id is not None
    return sf.id


def _loop(family: int) -> str:
    return "127.0.0.1" if family == socket.AF_INET else "::1"


# ---------------------------------------------------------------- raw calls

_libc = ctypes.CDLL(None, use_errno=True)  # the preloaded getsockopt wins
_libc.getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_uint32)]


def raw_sub_status(fd: int) -> dict[int, int]:
    """{id: raw status byte} from one GET_SUB_IDS, garbage bits included."""
    buf = ctypes.create_string_buffer(512)
    ln = ctypes.c_uint32(512)
    assert _libc.getsockopt(fd, SOL_TCP, GET_SUB_IDS, buf, ctypes.byref(ln)) == 0
    raw = buf.raw
    return {raw[2 + 2 * i]: raw[3 + 2 * i] for i in range(raw[0])}


def raw_open(fd: int, family: int, host: str) -> None:
    """OPEN_SUB_TUPLE without the library (which would wait for the subflow)."""
    if family == socket.AF_INET:
        sa = struct.pack("<H", family) + bytes(2) + socket.inet_aton(host) + bytes(8)
    else:
        sa = struct.pack("<H", family) + bytes(6) + socket.inet_pton(family, host) + bytes(4)
    data = b"\0" + sa + sa
    buf = ctypes.create_string_buffer(data, len(data))
    ln = ctypes.c_uint32(len(data))
    assert _libc.getsockopt(fd, SOL_TCP, OPEN_SUB_TUPLE, buf, ctypes.byref(ln)) == 0


# ---------------------------------------------------------------- reads


def test_backend_is_draft() -> None:
    assert mptcp.backend() == "draft"


def test_initial_subflow_equals_socket_names(conn: socket.socket) -> None:
    assert mptcp.get_sub_ids(conn) == [1]
    sf = mptcp.get_sub_tuple(conn, 1)
    assert sf == Subflow(1, conn.getsockname()[:2], conn.getpeername()[:2], None, None, FULL)
    assert isinstance(sf, Subflow) and isinstance(sf.status, SubflowStatus)
    assert sf.prio is None and sf.backup is None
    # canonical text, no brackets, no scope; int ports
    assert sf.local[0] == _loop(conn.family) and type(sf.local[1]) is int


def test_accepts_fd_and_fileno_objects(conn4: socket.socket) -> None:
    class Wrapper:
        def fileno(self) -> int:
            return conn4.fileno()

    assert mptcp.get_sub_ids(conn4.fileno()) == mptcp.get_sub_ids(Wrapper()) == [1]
    assert mptcp.get_sub_tuple(Wrapper(), 1) == mptcp.get_sub_tuple(conn4, 1)


def test_status_decoding(conn: socket.socket) -> None:
    """A just-opened subflow reads pre_established|attached once, then fully_established."""
    raw_open(conn.fileno(), conn.family, _loop(conn.family))
    first = mptcp.get_sub_tuple(conn, 2)
    assert first.status == PRE and first.status & SubflowStatus.PRE_ESTABLISHED
    assert mptcp.get_sub_tuple(conn, 2).status == FULL
    assert mptcp.get_sub_tuple(conn, 1).status == FULL


def test_low_prio_garbage_never_reported(conn4: socket.socket) -> None:
    """The fork leaves slave_sk/low_prio uninitialised: never in status, prio stays None."""
    seen = 0
    for _ in range(64):
        seen |= raw_sub_status(conn4.fileno())[1]
        sf = mptcp.get_sub_tuple(conn4, 1)
        assert sf.prio is None and sf.backup is None
        assert sf.status == FULL, sf.status
        assert int(sf.status) & (SLAVE_SK | LOW_PRIO) == 0
    assert seen & LOW_PRIO and seen & SLAVE_SK, "the double stopped sending garbage bits"


def test_get_sub_ids_ascending_after_open_close(conn4: socket.socket) -> None:
    a = mptcp.open_sub(conn4)
    b = mptcp.open_sub(conn4)
    assert (a.id, b.id) == (2, 3)
    assert mptcp.get_sub_ids(conn4) == [1, 2, 3]
    mptcp.close_sub(conn4, 2)
    assert mptcp.get_sub_ids(conn4) == [1, 3]
    assert mptcp.open_sub(conn4).id == 4  # ids are never reused
    mptcp.close_sub(conn4, 1)
    assert mptcp.get_sub_ids(conn4) == [3, 4]


def test_unconnected_socket_has_no_subflows(family: int) -> None:
    s = socket.socket(family, socket.SOCK_STREAM, IPPROTO_MPTCP)
    _keep.append(s)
    assert mptcp.get_sub_ids(s) == []


# ---------------------------------------------------------------- open_sub


def test_open_sub_defaults(conn: socket.socket) -> None:
    """local None: the routing table's source; remote None: the peer (its port)."""
    sf = mptcp.open_sub(conn)
    host = _loop(conn.family)
    assert sf.id == 2 and sf.status == FULL and sf.prio is None and sf.backup is None
    assert sf.local[0] == host and sf.local[1] not in (0, conn.getsockname()[1])
    assert sf.remote == conn.getpeername()[:2]
    assert mptcp.get_sub_tuple(conn, 2) == sf
    assert mptcp.get_sub_ids(conn) == [1, 2]


def test_open_sub_remote_without_port_is_peer_port(conn: socket.socket) -> None:
    host = _loop(conn.family)
    sf = mptcp.open_sub(conn, local=host, remote=host)
    assert sf.remote == (host, conn.getpeername()[1])


def test_open_sub_explicit_local_port(conn: socket.socket) -> None:
    host = _loop(conn.family)
    with socket.socket(conn.family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    sf = mptcp.open_sub(conn, local=(host, port), remote=(host, conn.getpeername()[1]))
    assert sf.local == (host, port)


def test_open_sub_from_subflow_record(conn4: socket.socket) -> None:
    tmpl = mptcp.get_sub_tuple(conn4, 1)
    sf = mptcp.open_sub(conn4, Subflow(None, ("127.0.0.1", 0), tmpl.remote))
    assert sf.remote == tmpl.remote and sf.id == 2


def test_open_sub_backup_unsupported(conn4: socket.socket) -> None:
    with pytest.raises(UnsupportedOperationError, match="priority"):
        mptcp.open_sub(conn4, backup=True)
    with pytest.raises(UnsupportedOperationError):
        mptcp.open_sub(conn4, Subflow(None, ("127.0.0.1", 0), conn4.getpeername(), prio=1))
    assert mptcp.get_sub_ids(conn4) == [1], "a subflow was opened anyway"


def test_open_sub_wrong_family(conn: socket.socket) -> None:
    other = "::1" if conn.family == socket.AF_INET else "127.0.0.1"
    with pytest.raises(SubflowOpenError) as info:
        mptcp.open_sub(conn, local=(other, 0), remote=(other, conn.getpeername()[1]))
    assert info.value.errno == errno.EINVAL
    assert mptcp.get_sub_ids(conn) == [1]


def test_open_sub_eaddrnotavail_keeps_errno(conn: socket.socket) -> None:
    absent = "192.0.2.1" if conn.family == socket.AF_INET else "2001:db8::1"
    with pytest.raises(SubflowOpenError) as info:
        mptcp.open_sub(conn, local=absent)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert not isinstance(info.value, PermissionError)
    assert mptcp.get_sub_ids(conn) == [1]


def test_open_sub_eaddrinuse_keeps_errno(conn: socket.socket) -> None:
    sf = mptcp.open_sub(conn)
    with pytest.raises(SubflowOpenError) as info:
        mptcp.open_sub(conn, local=sf.local)
    assert info.value.errno == errno.EADDRINUSE
    assert mptcp.get_sub_ids(conn) == [1, 2]


def test_open_eacces_keeps_errno(conn4: socket.socket) -> None:
    """Own child: drops CAP_NET_BIND_SERVICE for good."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        start = int(f.read())
    if start <= 1:
        pytest.skip("ip_unprivileged_port_start is 0: no port is privileged")
    hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    assert _libc.capget(hdr, data) == 0
    for i in (0, 1, 2):  # effective, permitted, inheritable (first word)
        data[i] &= ~(1 << 10)  # CAP_NET_BIND_SERVICE
    assert _libc.capset(hdr, data) == 0
    with pytest.raises(SubflowOpenError) as info:
        mptcp.open_sub(conn4, local=("127.0.0.1", start - 1))
    assert info.value.errno == errno.EACCES
    assert not isinstance(info.value, PermissionError), "EACCES here is a refused bind"


def test_open_sub_timeout_closes_it(conn4: socket.socket) -> None:
    """The double reports a new subflow pre_established once: a tiny timeout expires."""
    with pytest.raises(MPTCPTimeoutError) as info:
        mptcp.open_sub(conn4, timeout=1e-9)
    assert isinstance(info.value, TimeoutError) and info.value.errno == errno.ETIMEDOUT
    assert mptcp.get_sub_ids(conn4) == [1], "the half-open subflow was left behind"


def test_open_sub_concurrent_threads_get_their_own_ids(conn4: socket.socket) -> None:
    got: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                got.append(_id(mptcp.open_sub(conn4)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(got) == list(range(2, 22)), got
    assert mptcp.get_sub_ids(conn4) == list(range(1, 22))


def test_subflow_context_manager(conn4: socket.socket) -> None:
    with mptcp.subflow(conn4) as sf:
        assert mptcp.get_sub_ids(conn4) == [1, sf.id]
    assert mptcp.get_sub_ids(conn4) == [1]


# ---------------------------------------------------------------- close_sub


def test_close_sub(conn: socket.socket) -> None:
    sub_id = _id(mptcp.open_sub(conn))
    mptcp.close_sub(conn, sub_id)
    assert mptcp.get_sub_ids(conn) == [1]
    with pytest.raises(SubflowNotFoundError):
        mptcp.get_sub_tuple(conn, sub_id)


@pytest.mark.parametrize("how", [socket.SHUT_RD, socket.SHUT_WR])
def test_close_sub_half_close_unsupported(conn4: socket.socket, how: int) -> None:
    with pytest.raises(UnsupportedOperationError, match="SHUT_RDWR"):
        mptcp.close_sub(conn4, 1, how)
    assert mptcp.get_sub_ids(conn4) == [1], "the subflow was closed anyway"


def test_close_sub_bad_how(conn4: socket.socket) -> None:
    with pytest.raises(ValueError):
        mptcp.close_sub(conn4, 1, 7)


# ---------------------------------------------------------------- unknown ids, ranges


@pytest.mark.parametrize("call", ["get_sub_tuple", "close_sub", "get_sockopt", "set_sockopt"])
@pytest.mark.parametrize("sub_id", [0, 9, 255])
def test_unknown_id(conn4: socket.socket, call: str, sub_id: int) -> None:
    fns: dict[str, Callable[[], object]] = {
        "get_sub_tuple": lambda: mptcp.get_sub_tuple(conn4, sub_id),
        "close_sub": lambda: mptcp.close_sub(conn4, sub_id),
        "get_sockopt": lambda: mptcp.get_sub_sockopt_int(conn4, sub_id, SOL_TCP,
                                                         socket.TCP_NODELAY),
        "set_sockopt": lambda: mptcp.set_sub_sockopt_int(conn4, sub_id, SOL_TCP,
                                                         socket.TCP_NODELAY, 1),
    }
    with pytest.raises(SubflowNotFoundError) as info:
        fns[call]()
    assert isinstance(info.value, LookupError) and info.value.errno == errno.EINVAL
    assert mptcp.get_sub_ids(conn4) == [1]


@pytest.mark.parametrize("sub_id", [-1, 256, 2**32])
def test_id_out_of_u8_range(conn4: socket.socket, sub_id: int) -> None:
    for call in (lambda: mptcp.get_sub_tuple(conn4, sub_id),
                 lambda: mptcp.close_sub(conn4, sub_id),
                 lambda: mptcp.get_sub_sockopt_int(conn4, sub_id, SOL_TCP, 1),
                 lambda: mptcp.set_sub_sockopt_int(conn4, sub_id, SOL_TCP, 1, 1)):
        with pytest.raises(ValueError):
            call()


def test_id_type(conn4: socket.socket) -> None:
    with pytest.raises(TypeError):
        mptcp.get_sub_tuple(conn4, True)
    with pytest.raises(TypeError):
        mptcp.close_sub(conn4, "1")  # type: ignore[arg-type]


# ---------------------------------------------------------------- socket options


def test_sockopt_roundtrip(conn: socket.socket) -> None:
    for want in (1, 0):
        mptcp.set_sub_sockopt_int(conn, 1, SOL_TCP, socket.TCP_NODELAY, want)
        assert conn.getsockopt(SOL_TCP, socket.TCP_NODELAY) == want
        assert mptcp.get_sub_sockopt_int(conn, 1, SOL_TCP, socket.TCP_NODELAY) == want


def test_sockopt_ip_level(conn4: socket.socket) -> None:
    assert mptcp.get_sub_sockopt_int(conn4, 1, socket.IPPROTO_IP, socket.IP_TOS) == \
        conn4.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


@pytest.mark.parametrize("which", ["get", "set"])
def test_sol_socket_rejected_before_any_call(which: str) -> None:
    """Rejected before any syscall: even a closed fd gets the SOL_SOCKET message."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    fd = s.fileno()
    s.close()
    with pytest.raises(UnsupportedOperationError, match="SOL_SOCKET"):
        if which == "get":
            mptcp.get_sub_sockopt_int(fd, 1, socket.SOL_SOCKET, socket.SO_RCVBUF)
        else:
            mptcp.set_sub_sockopt_int(fd, 1, socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)


def test_sockopt_rejected_value_is_not_unknown_id(conn4: socket.socket) -> None:
    """EINVAL for a live id is the option's own error, not SubflowNotFoundError."""
    with pytest.raises(MPTCPError) as info:
        mptcp.set_sub_sockopt_int(conn4, 1, SOL_TCP, socket.TCP_MAXSEG, 1)
    assert info.value.errno == errno.EINVAL
    assert not isinstance(info.value, SubflowNotFoundError)


def test_sockopt_foreign_level_unsupported(conn4: socket.socket) -> None:
    with pytest.raises(UnsupportedOperationError) as info:
        mptcp.get_sub_sockopt_int(conn4, 1, socket.IPPROTO_UDP, 1)
    assert info.value.errno == errno.ENOPROTOOPT
    assert not isinstance(info.value, NotMPTCPError)


def test_set_sockopt_non_mptcp_no_abort() -> None:
    """Own child: the fork would lock these sockets forever; the double would abort."""
    plain, _ = _pair(socket.AF_INET, socket.IPPROTO_TCP)
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    _keep.append(unconnected)
    for s in (plain, unconnected):
        with pytest.raises(NotMPTCPError):
            mptcp.set_sub_sockopt_int(s, 1, SOL_TCP, socket.TCP_NODELAY, 1)
        with pytest.raises(NotMPTCPError):
            mptcp.get_sub_sockopt_int(s, 1, SOL_TCP, socket.TCP_NODELAY)
    assert os.getpid() > 0  # still alive


# ---------------------------------------------------------------- not MPTCP


def test_plain_tcp_is_not_mptcp() -> None:
    plain, _ = _pair(socket.AF_INET, socket.IPPROTO_TCP)
    for call in (lambda: mptcp.get_sub_ids(plain),
                 lambda: mptcp.get_sub_tuple(plain, 1),
                 lambda: mptcp.open_sub(plain),
                 lambda: mptcp.close_sub(plain, 1)):
        with pytest.raises(NotMPTCPError) as info:
            call()
        assert info.value.errno == errno.EOPNOTSUPP


def test_udp_and_unix_are_not_mptcp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(NotMPTCPError):
            mptcp.get_sub_ids(udp)
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(NotMPTCPError):
            mptcp.get_sub_ids(a)
        with pytest.raises(NotMPTCPError):
            mptcp.set_sub_sockopt_int(a, 1, SOL_TCP, socket.TCP_NODELAY, 1)


def test_closed_and_non_socket_fds() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    fd = s.fileno()
    s.close()
    with pytest.raises(MPTCPError) as info:
        mptcp.get_sub_ids(fd)
    assert info.value.errno == errno.EBADF
    r, w = os.pipe()
    try:
        for call in (lambda: mptcp.get_sub_ids(r), lambda: mptcp.get_sub_tuple(r, 1),
                     lambda: mptcp.set_sub_sockopt_int(r, 1, SOL_TCP, 1, 1)):
            with pytest.raises(MPTCPError) as info:
                call()
            assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


def test_upstream_only_calls_unsupported(conn4: socket.socket) -> None:
    for call in (lambda: mptcp.info(conn4), lambda: mptcp.subflows(conn4),
                 lambda: mptcp.is_mptcp(conn4), lambda: mptcp.set_sub_prio(conn4, 1, True),
                 lambda: mptcp.Poller(conn4)):
        with pytest.raises(UnsupportedOperationError):
            call()


# ---------------------------------------------------------------- exact calls (log group)

_LOG = re.compile(r"draft_double: (getsockopt|setsockopt)\(fd=(\d+), SOL_TCP, (\d+) \S+, "
                  r"optlen=(\d+)\) = (-?\d+)")


def _calls(capfd: pytest.CaptureFixture[str], fd: int) -> list[tuple[str, int, int]]:
    err = capfd.readouterr().err
    return [(m[1], int(m[3]), int(m[4])) for m in _LOG.finditer(err) if int(m[2]) == fd]


def test_exact_calls(capfd: pytest.CaptureFixture[str], family: int) -> None:
    """Own child with DRAFT_DOUBLE_LOG=1: the library makes exactly these calls."""
    conn, _ = _pair(family)
    fd = conn.fileno()
    tlen = 33 if family == socket.AF_INET else 57
    capfd.readouterr()
    mptcp.get_sub_ids(conn)
    assert _calls(capfd, fd) == [("getsockopt", 66, 512)]  # one call, never a retry loop
    mptcp.get_sub_tuple(conn, 1)
    assert _calls(capfd, fd) == [("getsockopt", 68, 57), ("getsockopt", 66, 512)]
    sf = mptcp.open_sub(conn)
    calls = _calls(capfd, fd)
    assert calls[:2] == [("getsockopt", 66, 512), ("getsockopt", 69, tlen)], calls
    assert calls[-1] == ("getsockopt", 68, 57), calls
    assert set(calls[2:-1]) == {("getsockopt", 66, 512)}, calls
    mptcp.close_sub(conn, _id(sf))
    assert _calls(capfd, fd) == [("getsockopt", 67, 1)]
    mptcp.get_sub_sockopt_int(conn, 1, SOL_TCP, socket.TCP_NODELAY)
    assert _calls(capfd, fd) == [("getsockopt", 42, 4), ("getsockopt", 71, 32)]
    mptcp.set_sub_sockopt_int(conn, 1, SOL_TCP, socket.TCP_NODELAY, 1)
    assert _calls(capfd, fd) == [("getsockopt", 42, 4), ("setsockopt", 72, 32)]


# ---------------------------------------------------------------- GIL (sleep group)


def test_gil_released(conn4: socket.socket) -> None:
    """Own child with DRAFT_DOUBLE_SLEEP_MS: other threads run during each draft call."""
    ms = int(os.environ.get("DRAFT_DOUBLE_SLEEP_MS", "0"))
    if ms < 100:
        pytest.skip("needs DRAFT_DOUBLE_SLEEP_MS >= 100")
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
        t0 = time.monotonic()
        assert mptcp.get_sub_ids(conn4) == [1]
        mptcp.get_sub_tuple(conn4, 1)  # two draft calls
        mptcp.get_sub_sockopt_int(conn4, 1, SOL_TCP, socket.TCP_NODELAY)  # two more
        took = time.monotonic() - t0
        before = ticks
    finally:
        stop.set()
        t.join()
    assert took >= 5 * ms / 1000 * 0.95, took
    assert before > 100, f"the thread stalled during the calls ({before} ticks in {took:.2f} s)"
