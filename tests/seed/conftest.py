"""Fixtures that let one suite of the six seed calls run over both backends.

The same test bodies (``test_seed_api.py``) run twice:

* **upstream** (this process): the real kernel. A session-wide userspace-PM lab
  (two namespaces, two paths); each test gets a fresh connection from the client
  namespace to a server in the server namespace, and the test's own thread is moved
  into the client namespace for the duration of the test (``setns``), so the bodies
  call ``mptcp`` directly, as users do. These tests carry the ``kernel`` marker:
  without root/MPTCP they skip, and under CI=true they fail (``tests/conftest.py``).
* **draft** (a child ``pytest`` started by ``test_seed_api_over_draft_backend``,
  ``MPTCP_SEED_CHILD=1``): the LD_PRELOAD double of a draft-API kernel and
  ``MPTCP_BACKEND=draft``; connections are IPPROTO_MPTCP pairs on loopback, which
  the double treats as the fork's MPTCP-enabled TCP sockets.

:class:`SeedEnv` says what the backend can do (the README's API table); tests branch on
it only where the backends legitimately differ (``prio``/``status`` reporting,
``backup=True``, which per-subflow options can be read or set, the id range).
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

IN_CHILD = os.environ.get("MPTCP_SEED_CHILD") == "1"
HERE = Path(__file__).resolve().parent
PARENT_TEST = "test_seed_api_over_draft_backend"
IPPROTO_MPTCP = 262
SOL_TCP = socket.IPPROTO_TCP
_CLONE_NEWNET = 0x40000000
LAB_PREFIX = "mptcp"  # as tests/conftest.py: stale namespaces of killed runs get cleaned up

# Per-subflow options the suite asks about, and which backend answers which.
SOCKOPT_TABLE: list[tuple[str, int, int]] = [
    ("TCP_MAXSEG", SOL_TCP, socket.TCP_MAXSEG),
    ("TCP_NODELAY", SOL_TCP, socket.TCP_NODELAY),
    ("IP_TOS", socket.IPPROTO_IP, socket.IP_TOS),
    ("SO_RCVBUF", socket.SOL_SOCKET, socket.SO_RCVBUF),
]
_UPSTREAM_GET = frozenset({(SOL_TCP, socket.TCP_MAXSEG), (SOL_TCP, socket.TCP_NODELAY),
                           (socket.IPPROTO_IP, socket.IP_TOS),
                           (socket.SOL_SOCKET, socket.SO_RCVBUF)})  # through BPF
_DRAFT_GET = frozenset({(SOL_TCP, socket.TCP_MAXSEG), (SOL_TCP, socket.TCP_NODELAY),
                        (socket.IPPROTO_IP, socket.IP_TOS)})  # forwarded; never SOL_SOCKET


def _under_double() -> bool:
    return "draft_double" in os.environ.get("LD_PRELOAD", "")


@dataclass
class SeedEnv:
    """One backend, one address family: where new subflows go and what is supported."""

    backend: str  # "upstream" or "draft"
    family: int
    new_local: str  # a local address for a new subflow
    alt_remote: str  # a remote for which the routing table picks new_local as source
    absent_local: str  # an address this host does not have (EADDRNOTAVAIL)
    prio_reported: bool  # Subflow.prio is 0/1 (upstream) rather than None (draft)
    status_reported: bool  # Subflow.status is SubflowStatus (draft) rather than None
    backup_supported: bool  # open_sub(backup=True)
    set_sockopt_supported: bool  # set_sub_sockopt_int at all
    sol_socket_supported: bool  # SOL_SOCKET options of one subflow (upstream: BPF)
    sockopt_reaches_mptcp_socket: bool  # a subflow's new value shows on the MPTCP socket too
    get_sockopts: frozenset[tuple[int, int]]  # (level, optname) get_sub_sockopt_int answers
    sub_id_max: int  # the largest id the backend's kernel can carry
    _connect: Callable[[int], socket.socket]
    _owned: list[socket.socket] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.backend}-{'v4' if self.family == socket.AF_INET else 'v6'}"

    def connect(self, proto: int = IPPROTO_MPTCP) -> socket.socket:
        """A connected client socket (data already exchanged); closed after the test."""
        s = self._connect(proto)
        self._owned.append(s)
        return s

    def socket(self, proto: int = IPPROTO_MPTCP) -> socket.socket:
        """An unconnected stream socket of this family; closed after the test."""
        s = socket.socket(self.family, socket.SOCK_STREAM, proto)
        self._owned.append(s)
        return s

    def close(self) -> None:
        for s in reversed(self._owned):
            s.close()
        self._owned.clear()


# --------------------------------------------------------------------------------
# Collection: the kernel marker for the upstream run, no recursion in the child
# --------------------------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if HERE in Path(str(i.path)).parents]
    if IN_CHILD:
        drop = [i for i in mine if i.name.startswith(PARENT_TEST)]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = [i for i in items if i not in drop]
        return
    for item in mine:
        if "seed_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)


# --------------------------------------------------------------------------------
# Counts for the terminal summary (both runs visible in the parent's output)
# --------------------------------------------------------------------------------
_SUMMARY: dict[str, Any] = {"upstream": {"passed": 0, "failed": 0, "skipped": 0}, "draft": None}


@pytest.fixture(scope="session")
def seed_summary() -> dict[str, Any]:
    """Where the parent test records the child run's counts for the terminal summary."""
    return _SUMMARY


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    if not path.endswith("seed/test_seed_api.py") or PARENT_TEST in report.nodeid:
        return
    counts = _SUMMARY["upstream"]
    if report.when == "call" and report.passed:
        counts["passed"] += 1
    elif report.failed:
        counts["failed"] += 1
    elif report.skipped:
        counts["skipped"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    up = _SUMMARY["upstream"]
    label = "draft backend (child, under the double)" if IN_CHILD else "upstream backend"
    lines = []
    if sum(up.values()):
        lines.append(f"seed suite over the {label}: {up['passed']} passed, "
                     f"{up['failed']} failed, {up['skipped']} skipped")
    child = _SUMMARY["draft"]
    if child is not None:
        lines.append(f"seed suite over the draft backend (child pytest under the double): "
                     f"{child['passed']} passed, {child['failed']} failed, "
                     f"{child['skipped']} skipped")
    if lines:
        terminalreporter.write_sep("-", "seed API suite")
        for line in lines:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------------
# Upstream: a session-wide userspace-PM lab, and setns into its client namespace
# --------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class _ThreadInNetns:
    """Move the calling thread into a network namespace, and back."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.home = -1

    def __enter__(self) -> None:
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        except BaseException:
            os.close(self.home)
            raise
        finally:
            os.close(target)

    def __exit__(self, *exc: object) -> None:
        try:
            _setns(self.home)
        finally:
            os.close(self.home)


@pytest.fixture(scope="session")
def _upstream_lab() -> Iterator[Any]:
    from mptcp._lab import Lab

    lab = Lab(prefix=LAB_PREFIX, userspace_pm=True, endpoint=False)
    try:
        lab.seed_servers = {  # type: ignore[attr-defined]
            socket.AF_INET: lab.start_server(),
            socket.AF_INET6: lab.start_server(family=socket.AF_INET6),
        }
        yield lab
    finally:
        lab.close()


def _upstream_env(request: pytest.FixtureRequest, family: int) -> SeedEnv:
    lab = request.getfixturevalue("_upstream_lab")
    server = lab.seed_servers[family]
    key = "v4" if family == socket.AF_INET else "v6"
    n = lab.net

    def connect(proto: int) -> socket.socket:
        s = lab.connect(family=family, port=server.port, proto=proto)
        s.sendall(b"hello")  # subflows join only a fully established connection
        return s

    return SeedEnv(
        backend="upstream",
        family=family,
        new_local=lab.client_addrs[key][1],  # path 2 (c2); routed to s1 via s2
        alt_remote=lab.server_addrs[key][1],  # s2: the routing table picks c2
        absent_local=f"10.{n}.9.9" if key == "v4" else f"fd00:{n:x}:9::9",
        prio_reported=True,
        status_reported=False,
        backup_supported=True,
        set_sockopt_supported=True,
        sol_socket_supported=True,
        sockopt_reaches_mptcp_socket=False,  # one subflow only: the point of the call
        get_sockopts=_UPSTREAM_GET,
        sub_id_max=0xFFFFFFFF,
        _connect=connect,
    )


# --------------------------------------------------------------------------------
# Draft: loopback pairs under the double
# --------------------------------------------------------------------------------
def _draft_env(family: int) -> SeedEnv:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    keep: list[socket.socket] = []

    def connect(proto: int) -> socket.socket:
        lst = socket.socket(family, socket.SOCK_STREAM, proto)
        keep.append(lst)
        lst.bind((host, 0))
        lst.listen()
        cli = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            cli.connect(lst.getsockname()[:2])
            srv, _ = lst.accept()
            keep.append(srv)
            cli.sendall(b"hello")
            assert srv.recv(16) == b"hello"
        except BaseException:
            cli.close()
            raise
        return cli

    env = SeedEnv(
        backend="draft",
        family=family,
        new_local=host,
        alt_remote=host,
        absent_local="192.0.2.1" if family == socket.AF_INET else "2001:db8::1",
        prio_reported=False,
        status_reported=True,
        backup_supported=False,
        set_sockopt_supported=True,
        sol_socket_supported=False,
        sockopt_reaches_mptcp_socket=True,  # the double forwards to the MPTCP socket itself
        get_sockopts=_DRAFT_GET,
        sub_id_max=255,
        _connect=connect,
    )
    env._owned = keep  # listeners and server ends are closed with the clients
    return env


def _has_loopback(family: int) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
def seed_env(request: pytest.FixtureRequest) -> Iterator[SeedEnv]:
    """The backend under test for this family (draft in the child, upstream here)."""
    import mptcp

    family = int(request.param)
    if IN_CHILD:
        if not _under_double() or mptcp.backend() != "draft":
            pytest.fail("MPTCP_SEED_CHILD=1 needs the draft double in LD_PRELOAD and "
                        f"MPTCP_BACKEND=draft (backend is {mptcp.backend()!r})")
        if not _has_loopback(family):
            pytest.skip(f"no {'::1' if family == socket.AF_INET6 else '127.0.0.1'} here")
        env = _draft_env(family)
        try:
            yield env
        finally:
            env.close()
        return
    if mptcp.backend() != "upstream":
        pytest.skip("MPTCP_BACKEND forces the draft backend in this process: the seed suite "
                    "runs over it in test_seed_api_over_draft_backend's child only")
    env = _upstream_env(request, family)
    lab = request.getfixturevalue("_upstream_lab")
    with _ThreadInNetns(os.path.join("/run/netns", lab.client_ns)):
        try:
            yield env
        finally:
            env.close()


@pytest.fixture
def seed_conn(seed_env: SeedEnv) -> socket.socket:
    """A fresh MPTCP connection over the backend under test (one subflow, id 1)."""
    return seed_env.connect()
