"""Bad input against every public call that takes it: the calls x input-classes matrix.

Each cell names the exception class the README's Errors section promises (exact
class, not a base; wrong types ``TypeError``, out-of-range values ``ValueError``), a
pattern its message must contain so it names the problem, and then checks that the
object the caller passed still works (send and receive), since the library must
never close, dup or break the caller's socket.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Optional

import pytest

import mptcp
from mptcp._lab import Lab

TCP = socket.IPPROTO_TCP
MAXSEG = socket.TCP_MAXSEG


class Env(NamedTuple):
    lab: Lab
    echo: Any      # MPTCP echo server
    tcp_echo: Any  # plain TCP echo server (MPTCP clients fall back to TCP on it)


@pytest.fixture(scope="module")
def ulab() -> Iterator[Env]:
    lab = Lab(prefix="mptcp", userspace_pm=True, endpoint=False)
    try:
        yield Env(lab, lab.start_server(mode="echo"),
                  lab.start_server(mode="echo", proto=socket.IPPROTO_TCP))
    finally:
        lab.close()


@pytest.fixture(scope="module")
def klab() -> Iterator[Env]:
    lab = Lab(prefix="mptcp")  # in-kernel path manager
    try:
        yield Env(lab, lab.start_server(mode="echo"), None)
    finally:
        lab.close()


def echo_ok(s: socket.socket, data: bytes = b"still-works") -> None:
    s.settimeout(5)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        assert chunk, "the peer closed the connection"
        got += chunk
    assert got == data


def connected(env: Env, proto: int = 262) -> socket.socket:
    s = env.lab.connect(port=(env.echo if proto == 262 else env.tcp_echo).port, proto=proto)
    echo_ok(s, b"hello")
    return s


def in_client(env: Env, fn: Callable[..., Any], *args: Any) -> Any:
    return env.lab.run_in(env.lab.client_ns, fn, *args)


class Fd:
    """An object with fileno() only (every call taking ``sock`` accepts one: README, API)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def _unused_fd() -> int:
    for fd in range(1000, 2000):  # high, so no thread of this process reuses it meanwhile
        try:
            os.fstat(fd)
        except OSError:
            return fd
    raise RuntimeError("no free fd")


# --------------------------------------------------------------------------------
# The socket-like inputs: factory -> (what to pass, proof it still works, cleanup)
# --------------------------------------------------------------------------------
Made = tuple[Any, Optional[Callable[[], None]], Callable[[], None]]


def _closed_fd(env: Env) -> Made:
    return Fd(_unused_fd()), None, lambda: None


def _fd_minus_1(env: Env) -> Made:
    return -1, None, lambda: None


def _pipe(env: Env) -> Made:
    r, w = os.pipe()

    def works() -> None:
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"

    return r, works, lambda: (os.close(r), os.close(w))


def _udp(env: Env) -> Made:
    u = env.lab.socket(env.lab.client_ns, socket.AF_INET, socket.SOCK_DGRAM, 0)
    u.bind(("127.0.0.1", 0))

    def works() -> None:
        u.settimeout(5)
        u.sendto(b"x", u.getsockname())
        assert u.recv(1) == b"x"

    return u, works, u.close


def _unix(env: Env) -> Made:
    a, b = socket.socketpair()

    def works() -> None:
        a.sendall(b"x")
        assert b.recv(1) == b"x"

    return a, works, lambda: (a.close(), b.close())


def _unconnected(env: Env) -> Made:
    s = env.lab.socket(env.lab.client_ns)

    def works() -> None:
        s.settimeout(5)
        s.connect((env.lab.server_addrs["v4"][0], env.echo.port))
        echo_ok(s)

    return s, works, s.close


def _listening(env: Env) -> Made:
    s = env.lab.socket(env.lab.client_ns)
    s.bind(("127.0.0.1", 0))
    s.listen()

    def works() -> None:
        c = env.lab.socket(env.lab.client_ns)
        with c:
            c.settimeout(5)
            c.connect(s.getsockname())
            s.settimeout(5)
            a, _ = s.accept()
            with a:
                c.sendall(b"x")
                assert a.recv(1) == b"x"

    return s, works, s.close


def _plain_tcp(env: Env) -> Made:
    s = connected(env, socket.IPPROTO_TCP)
    return s, lambda: echo_ok(s), s.close


def _fallback(env: Env) -> Made:
    s = connected(env, 262)
    s.close()
    s = env.lab.connect(port=env.tcp_echo.port)  # MPTCP client, plain TCP server
    echo_ok(s)
    assert mptcp.is_mptcp(s) is False
    return s, lambda: echo_ok(s), s.close


INPUTS: dict[str, Callable[[Env], Made]] = {
    "closed_fd": _closed_fd, "fd_-1": _fd_minus_1, "pipe": _pipe, "udp": _udp,
    "unix": _unix, "unconnected_mptcp": _unconnected, "listening_mptcp": _listening,
    "plain_tcp": _plain_tcp, "fallen_back": _fallback,
}

# The calls that take a socket.
CALLS: dict[str, Callable[[Any], Any]] = {
    "get_sub_ids": mptcp.get_sub_ids,
    "get_sub_tuple": lambda s: mptcp.get_sub_tuple(s, 1),
    "open_sub": lambda s: mptcp.open_sub(s, timeout=1),
    "close_sub": lambda s: mptcp.close_sub(s, 1),
    "get_sub_sockopt_int": lambda s: mptcp.get_sub_sockopt_int(s, 1, TCP, MAXSEG),
    "set_sub_sockopt_int": lambda s: mptcp.set_sub_sockopt_int(s, 1, TCP, MAXSEG, 1200),
    "set_sub_prio": lambda s: mptcp.set_sub_prio(s, 1, True),
    "info": mptcp.info,
    "subflows": mptcp.subflows,
    "is_mptcp": mptcp.is_mptcp,
    "Poller": lambda s: len(mptcp.Poller(s)),
    "events(token=)": lambda s: mptcp.events(token=s).close(),
    "PathManager.announce": lambda s: _pm(lambda pm: pm.announce(s, "10.0.0.1", 5)),
    "PathManager.local_addresses": lambda s: _pm(lambda pm: pm.local_addresses(s)),
}


def _pm(fn: Callable[[Any], Any]) -> Any:
    with mptcp.PathManager() as pm:
        return fn(pm)


E = mptcp.MPTCPError
NOT = (mptcp.NotMPTCPError, "plain TCP|fell back|not a stream socket|not MPTCP|not an MPTCP connection")
NOTFOUND = (mptcp.SubflowNotFoundError, "no live subflow with id 1")
NOTOKEN = (mptcp.NotMPTCPError, "not connected")


def _expect(inp: str, call: str) -> tuple[Any, Any]:
    """(expected exception class or ("ok", check), message pattern or errno), as the
    README's Errors section promises."""
    if inp in ("closed_fd", "fd_-1"):
        if inp == "fd_-1" and call.startswith(("events", "PathManager")):
            return (ValueError, "token -1 is outside")  # there an int is a token
        return (E, errno.EBADF)
    if inp == "pipe":
        if call.startswith("events"):  # an int there is a token filter: any value is one
            return ("ok", None)
        if call.startswith("PathManager"):  # an int is a token: no such connection
            return (mptcp.NotMPTCPError, "invalid token")
        return (E, errno.ENOTSOCK)
    if inp in ("udp", "unix", "plain_tcp", "fallen_back"):
        if call == "is_mptcp":
            return ("ok", False)
        return NOT
    # unconnected and listening MPTCP sockets: no subflows, no token
    return {
        "get_sub_ids": ("ok", []), "subflows": ("ok", []), "is_mptcp": ("ok", False),
        "Poller": ("ok", 0), "info": ("ok", mptcp.MPTCPInfo),
        "get_sub_tuple": (mptcp.SubflowNotFoundError, "no live subflow with id 1"),
        "close_sub": NOTFOUND, "get_sub_sockopt_int": NOTFOUND, "set_sub_sockopt_int": NOTFOUND,
        "set_sub_prio": NOTFOUND,
    }.get(call, NOTOKEN)


MATRIX = [(inp, call) for inp in INPUTS for call in CALLS]


@pytest.mark.parametrize(("inp", "call"), MATRIX, ids=[f"{i}-{c}" for i, c in MATRIX])
def test_socket_matrix(ulab: Env, inp: str, call: str) -> None:
    obj, works, cleanup = INPUTS[inp](ulab)
    try:
        want, detail = _expect(inp, call)
        if want == "ok":
            got = in_client(ulab, CALLS[call], obj)
            if isinstance(detail, type):
                assert isinstance(got, detail)
            else:
                assert got == detail
        else:
            with pytest.raises(want) as info:
                in_client(ulab, CALLS[call], obj)
            assert type(info.value) is want, f"{type(info.value).__name__}: {info.value}"
            if isinstance(detail, int):
                assert info.value.errno == detail
                assert re.search("not an open file descriptor|Bad file descriptor"
                                 if detail == errno.EBADF else "not a socket", str(info.value))
            else:
                assert re.search(detail, str(info.value)), str(info.value)
        if works is not None:
            works()
    finally:
        cleanup()


# --------------------------------------------------------------------------------
# Argument classes against a live MPTCP connection (userspace PM lab)
# --------------------------------------------------------------------------------
ID_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "get_sub_tuple": lambda s, i: mptcp.get_sub_tuple(s, i),
    "close_sub": lambda s, i: mptcp.close_sub(s, i),
    "get_sub_sockopt_int": lambda s, i: mptcp.get_sub_sockopt_int(s, i, TCP, MAXSEG),
    "set_sub_sockopt_int": lambda s, i: mptcp.set_sub_sockopt_int(s, i, TCP, MAXSEG, 1200),
    "set_sub_prio": lambda s, i: mptcp.set_sub_prio(s, i, True),
}
IDS: dict[str, tuple[Any, type, str]] = {
    "unknown": (999, mptcp.SubflowNotFoundError, "999"),
    "negative": (-1, ValueError, "-1 is outside"),
    "2**32": (2**32, ValueError, "4294967296 is outside"),
    "bool": (True, TypeError, "sub_id must be an int, not bool"),
    "float": (1.0, TypeError, "sub_id must be an int, not float"),
    "str": ("1", TypeError, "sub_id must be an int, not str"),
}
ID_MATRIX = [(c, i) for c in ID_CALLS for i in IDS]


@pytest.mark.parametrize(("call", "kind"), ID_MATRIX, ids=[f"{c}-{i}" for c, i in ID_MATRIX])
def test_sub_id_matrix(ulab: Env, call: str, kind: str) -> None:
    value, exc, pattern = IDS[kind]
    with connected(ulab) as s:
        with pytest.raises(exc, match=pattern) as info:
            in_client(ulab, ID_CALLS[call], s, value)
        assert type(info.value) is exc
        echo_ok(s)
        assert mptcp.get_sub_ids(s) == [1]


def _args(lab: Lab, port: int) -> list[tuple[str, Callable[[Any], Any], type, str]]:
    """(id, call on an established connection, exception class, message pattern)."""
    n = lab.net
    c4, c6 = lab.client_addrs["v4"], lab.client_addrs["v6"]
    s4, s6 = lab.server_addrs["v4"], lab.server_addrs["v6"]
    pm: Callable[[Callable[[Any], Any]], Any] = _pm
    rows: list[tuple[str, Callable[[Any], Any], type, str]] = []
    for host, exc, pat in (("10.0.0.256", ValueError, "not"), ("not-an-ip", ValueError, "not"),
                           ("", ValueError, "not"), ("fe80::1::2", ValueError, "not"),
                           (1234, TypeError, "must be"), (b"10.0.0.1", TypeError, "must be")):
        h = repr(host)
        rows += [
            (f"open_sub-local={h}", lambda s, x=host: mptcp.open_sub(s, local=x), exc, pat),
            (f"open_sub-remote={h}", lambda s, x=host: mptcp.open_sub(s, remote=(x, port)), exc, pat),
            (f"add_endpoint={h}", lambda s, x=host: pm(lambda p: p.add_endpoint(x)), exc, pat),
            (f"announce={h}", lambda s, x=host: pm(lambda p: p.announce(s, x, 5)), exc, pat),
            (f"create_subflow={h}", lambda s, x=host: pm(
                lambda p: p.create_subflow(s, x, (s4[0], port))), exc, pat),
        ]
    for bad, exc, pat in ((-1, ValueError, "-1 is outside"), (65536, ValueError, "65536 is outside"),
                          ("80", TypeError, "port must be an int"),
                          (True, TypeError, "port must be an int")):
        b = repr(bad)
        rows += [
            (f"open_sub-local_port={b}", lambda s, x=bad: mptcp.open_sub(s, local=(c4[1], x)), exc, pat),
            (f"open_sub-remote_port={b}", lambda s, x=bad: mptcp.open_sub(s, remote=(s4[0], x)), exc, pat),
            (f"add_endpoint-port={b}", lambda s, x=bad: pm(lambda p: p.add_endpoint(c4[1], port=x)),
             exc, pat),
            (f"announce-port={b}", lambda s, x=bad: pm(lambda p: p.announce(s, (c4[1], x), 5)), exc, pat),
            (f"create_subflow-port={b}", lambda s, x=bad: pm(
                lambda p: p.create_subflow(s, (c4[1], x), (s4[0], port))), exc, pat),
        ]
    fam = "different (address )?families"
    rows += [
        ("mixed-open_sub", lambda s: mptcp.open_sub(s, local=c4[1], remote=s6[0]), ValueError, fam),
        ("mixed-open_sub-v6-local-v4-conn", lambda s: mptcp.open_sub(s, local=c6[1]), ValueError, fam),
        ("mixed-create_subflow", lambda s: pm(lambda p: p.create_subflow(s, c4[1], (s6[0], port))),
         ValueError, fam),
        ("mixed-destroy_subflow", lambda s: pm(
            lambda p: p.destroy_subflow(s, (c4[1], 1), (s6[0], port))), ValueError, fam),
        ("mixed-set_backup", lambda s: pm(lambda p: p.set_backup(s, c4[1], s6[0], True)),
         ValueError, fam),
        # a local address that is not on this host, remotes with no route / no answer
        ("local-not-on-host", lambda s: mptcp.open_sub(s, local=f"10.{n}.1.77", timeout=2),
         mptcp.SubflowOpenError, "Cannot assign requested address"),
        ("remote-unrouted", lambda s: mptcp.open_sub(s, remote=f"10.{n}.9.9", timeout=2),
         mptcp.SubflowOpenError, "no route to"),
        ("remote-unanswered", lambda s: mptcp.open_sub(s, remote=f"10.{n}.1.99", timeout=0.5),
         mptcp.MPTCPTimeoutError, "not established within 0.5 s"),
        ("remote-port-closed", lambda s: mptcp.open_sub(s, remote=(s4[1], 9), timeout=2),
         mptcp.SubflowOpenError, "Connection refused"),
        # stale tokens (no such connection in this namespace)
        ("stale-token-announce", lambda s: pm(lambda p: p.announce(0x1234567, c4[1], 5)),
         mptcp.NotMPTCPError, "no MPTCP connection with this token"),
        ("stale-token-create", lambda s: pm(lambda p: p.create_subflow(0x1234567, c4[1], (s4[0], port))),
         mptcp.NotMPTCPError, "no MPTCP connection with this token"),
        ("stale-token-remove", lambda s: pm(lambda p: p.remove(0x1234567, 5)),
         mptcp.NotMPTCPError, "no MPTCP connection with this token"),
        ("token-0", lambda s: pm(lambda p: p.remove(0, 5)), ValueError, "token 0 is outside"),
        # timeouts
        ("open_sub-timeout=0", lambda s: mptcp.open_sub(s, timeout=0), ValueError, "timeout must be > 0"),
        ("open_sub-timeout=-1", lambda s: mptcp.open_sub(s, timeout=-1), ValueError, "timeout must be > 0"),
        ("open_sub-timeout=nan", lambda s: mptcp.open_sub(s, timeout=math.nan), ValueError,
         "timeout must be > 0"),
        ("open_sub-timeout=str", lambda s: mptcp.open_sub(s, timeout="1"), TypeError, "timeout must be"),
        ("events.next-timeout=-1", lambda s: _events(lambda m: m.next(timeout=-1)), ValueError,
         "timeout must be >= 0"),
        ("events.read-timeout=0", lambda s: _events(lambda m: m.read(timeout=0)),
         mptcp.MPTCPTimeoutError, "no MPTCP event within 0 s"),
        # how
        ("close_sub-how=SHUT_WR", lambda s: mptcp.close_sub(s, 1, socket.SHUT_WR),
         mptcp.UnsupportedOperationError, "cannot half-close"),
        ("close_sub-how=SHUT_RD", lambda s: mptcp.close_sub(s, 1, socket.SHUT_RD),
         mptcp.UnsupportedOperationError, "cannot half-close"),
        ("close_sub-how=5", lambda s: mptcp.close_sub(s, 1, 5), ValueError, "how must be"),
        ("close_sub-how=-1", lambda s: mptcp.close_sub(s, 1, -1), ValueError, "how must be"),
        ("close_sub-how=True", lambda s: mptcp.close_sub(s, 1, True), TypeError, "how must be an int"),
        ("close_sub-how=str", lambda s: mptcp.close_sub(s, 1, "SHUT_RDWR"), TypeError, "how must be"),
        # sock itself of the wrong type
        ("sock=str", lambda s: mptcp.get_sub_ids("3"), TypeError, "sock must be"),
        ("sock=bool", lambda s: mptcp.info(True), TypeError, "not bool"),
        ("sock=float", lambda s: mptcp.subflows(3.0), TypeError, "sock must be"),
        ("sock=None", lambda s: mptcp.Poller(None), TypeError, "sock must be"),
    ]
    return rows


def _events(fn: Callable[[Any], Any]) -> Any:
    with mptcp.events() as mon:
        return fn(mon)


def _row_ids() -> list[str]:
    class _L:
        net = 1
        client_addrs = {"v4": ["10.1.1.2", "10.1.2.2"], "v6": ["fd00:1:1::2", "fd00:1:2::2"]}
        server_addrs = {"v4": ["10.1.1.1", "10.1.2.1"], "v6": ["fd00:1:1::1", "fd00:1:2::1"]}

    return [r[0] for r in _args(_L(), 1)]  # type: ignore[arg-type]


@pytest.mark.parametrize("row", _row_ids())
def test_argument_classes(ulab: Env, row: str) -> None:
    (case,) = [r for r in _args(ulab.lab, ulab.echo.port) if r[0] == row]
    _, fn, exc, pattern = case
    with connected(ulab) as s:
        with pytest.raises(exc) as info:
            in_client(ulab, fn, s)
        assert type(info.value) is exc, f"{type(info.value).__name__}: {info.value}"
        assert re.search(pattern, str(info.value)), str(info.value)
        echo_ok(s)
        assert mptcp.is_mptcp(s)


# --------------------------------------------------------------------------------
# In-kernel path manager where the userspace one is needed
# --------------------------------------------------------------------------------
PM_CALLS: dict[str, Callable[[Any], Any]] = {
    "open_sub": lambda s: mptcp.open_sub(s, timeout=1),
    "close_sub": lambda s: mptcp.close_sub(s, 1),
    "set_sub_prio": lambda s: mptcp.set_sub_prio(s, 1, True),
    "PathManager.announce": lambda s: _pm(lambda pm: pm.announce(s, "10.0.0.1", 5)),
}


@pytest.mark.parametrize("call", sorted(PM_CALLS))
def test_in_kernel_pm(klab: Env, call: str) -> None:
    with connected(klab) as s:
        with pytest.raises(mptcp.PathManagerError, match="userspace path manager") as info:
            in_client(klab, PM_CALLS[call], s)
        assert type(info.value) is mptcp.PathManagerError
        assert "pm_type=1" in str(info.value)
        echo_ok(s)


# --------------------------------------------------------------------------------
# No CAP_NET_ADMIN: a child with the capability dropped
# --------------------------------------------------------------------------------
_CHILD = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import mptcp
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
s.settimeout(5)
s.connect((sys.argv[2], int(sys.argv[3])))
def echo():
    s.sendall(b"ping")
    got = b""
    while len(got) < 4:
        got += s.recv(4 - len(got))
    return got == b"ping"
echo()
out = {}
calls = {
    "get_sub_ids": lambda: mptcp.get_sub_ids(s),
    "open_sub": lambda: mptcp.open_sub(s, local=sys.argv[4], timeout=2),
    "close_sub": lambda: mptcp.close_sub(s, 1),
    "set_sub_prio": lambda: mptcp.set_sub_prio(s, 1, True),
    "events": lambda: mptcp.events().close(),
    "add_endpoint": lambda: mptcp.PathManager().add_endpoint(sys.argv[4]),
    "announce": lambda: mptcp.PathManager().announce(s, sys.argv[4], 5),
}
for name, fn in calls.items():
    try:
        out[name] = ["ok", repr(fn())]
    except Exception as e:
        out[name] = [type(e).__name__, getattr(e, "errno", None), str(e), echo()]
out["echo"] = echo()
print(json.dumps(out))
"""


def test_without_cap_net_admin(ulab: Env) -> None:
    lab = ulab.lab
    src = os.path.dirname(os.path.dirname(mptcp.__file__))
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.client_ns, "setpriv", "--inh-caps=-all",
         "--bounding-set=-net_admin", sys.executable, "-c", _CHILD, src,
         lab.server_addrs["v4"][0], str(ulab.echo.port), lab.client_addrs["v4"][1]],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["get_sub_ids"] == ["ok", "[1]"]
    for name in ("open_sub", "close_sub", "set_sub_prio", "events", "add_endpoint", "announce"):
        cls, err, text, still_works = out[name]
        assert cls == "MPTCPPermissionError", (name, out[name])
        assert err == errno.EPERM and "CAP_NET_ADMIN" in text, (name, out[name])
        assert still_works, name
    assert out["echo"] is True
