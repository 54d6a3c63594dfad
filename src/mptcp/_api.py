"""The public calls: each checks its arguments once (``_args``), then calls the
backend bound for this process (``_backends.select``), which talks to the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any, Iterator, List, Optional, Tuple, Union

from . import _args
from . import _mptcp as _core
from ._backends import Backend, select
from ._backends import backend as _backend_name
from ._errors import MPTCPError, NotMPTCPError, SubflowNotFoundError
from ._records import MPTCPInfo, Subflow, SubflowInfo, SubflowOption

__all__ = [
    "get_sub_ids", "get_sub_tuple", "open_sub", "close_sub", "get_sub_sockopt_int",
    "set_sub_sockopt_int", "get_sub_sockopt", "set_sub_sockopt", "get_subflow_sockopt",
    "set_subflow_sockopt", "subflow_options", "unload_sockopt_program", "set_sub_prio",
    "info", "is_mptcp", "subflows", "Poller", "subflow", "backend",
]

backend = _backend_name
Host = Union[str, Tuple[str, int]]


class _FirstCall(Backend):
    """Stands in for the backend until the first call selects it: an invalid
    ``MPTCP_BACKEND`` must fail that call, not ``import mptcp``. (Its slots are never
    set, so every attribute read lands in ``__getattr__``.)"""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        global _impl
        chosen = select()
        if chosen.final:
            _impl = chosen
        return getattr(chosen, name)


# The backend's functions, bound on the first call; the calls below go through it.
_impl: Backend = _FirstCall()


def _rebind() -> None:
    """Select the backend again on the next call (tests change the environment)."""
    global _impl
    _impl = _FirstCall()


# --------------------------------------------------------------------------------
# The seed calls
# --------------------------------------------------------------------------------
def get_sub_ids(sock: Any) -> List[int]:
    """Ids of the connection's live subflows, ascending.

    Upstream: one MPTCP_FULL_INFO snapshot (Linux 6.5); subflows in TCP_CLOSE are
    left out. Draft kernels: MPTCP_GET_SUB_IDS. An unconnected MPTCP socket has
    no subflows: ``[]``.

    Raises
    ------
    NotMPTCPError
        Plain TCP, a connection that fell back, or not a stream socket.
    KernelTooOldError
        Before Linux 6.5 (no subflow ids).
    MPTCPError
        A closed fd (EBADF) or not a socket (ENOTSOCK).
    """
    return _impl.get_sub_ids(sock)  # type: ignore[no-any-return]


def get_sub_tuple(sock: Any, sub_id: int) -> Subflow:
    """The subflow ``sub_id`` as a :class:`Subflow` (id, local, remote, prio).

    Upstream (Linux 6.5): addresses from MPTCP_FULL_INFO, ``prio`` from the sock_diag
    BKUP_LOC flag of that subflow. Draft kernels: MPTCP_GET_SUB_TUPLE, ``prio`` None.

    Raises
    ------
    SubflowNotFoundError
        No live subflow has that id.
    ValueError, TypeError
        ``sub_id`` out of range or not an int.
    """
    fd = _core.fileno(sock)
    return _impl.get_sub_tuple(fd, _args.sub_id(sub_id, _impl.sub_id_max))  # type: ignore[no-any-return]


def open_sub(
    sock: Any,
    subflow: Optional[Subflow] = None,
    *,
    local: Optional[Host] = None,
    remote: Optional[Host] = None,
    backup: bool = False,
    timeout: float = 5.0,
) -> Subflow:
    """Open a new subflow and return it once established.

    Either pass a :class:`Subflow` (its ``local``, ``remote`` and ``prio`` are used)
    or the keywords. ``local`` None: the source address the routing table picks for
    the remote; ``remote`` None: the connection's peer; a missing remote port: the
    peer's port. Upstream this is the userspace path manager's SUBFLOW_CREATE
    (Linux 5.19; the network namespace needs ``net.mptcp.pm_type=1``); draft
    kernels use MPTCP_OPEN_SUB_TUPLE.

    Raises
    ------
    SubflowOpenError
        The kernel refused or reset the join (``errno`` says why).
    MPTCPTimeoutError
        Not established within ``timeout`` seconds (nothing is left half-open).
    PathManagerError
        The in-kernel path manager is selected (upstream).
    """
    fd = _core.fileno(sock)
    if subflow is not None:
        if not isinstance(subflow, Subflow):
            raise TypeError(f"subflow must be a mptcp.Subflow, not {type(subflow).__name__}")
        if local is not None or remote is not None:
            raise TypeError("open_sub takes either a Subflow or local=/remote=, not both")
        local, remote = subflow.local, subflow.remote
        backup = backup or bool(subflow.prio)
    backup = _args.flag("backup", backup)
    wait = _args.timeout(timeout)
    loc = None if local is None else _args.address("local", local)
    rem = None if remote is None else _args.address("remote", remote)
    if loc and rem:
        _args.same_family(loc[0], rem[0])
    return _impl.open_sub(fd, loc, rem, backup, wait)  # type: ignore[no-any-return]


def close_sub(sock: Any, sub_id: int, how: int = socket.SHUT_RDWR) -> None:
    """Close subflow ``sub_id`` and return once it is gone.

    Only ``how=SHUT_RDWR`` exists: neither kernel can half-close one subflow.
    Upstream: SUBFLOW_DESTROY of the userspace path manager (Linux 5.19); draft
    kernels: MPTCP_CLOSE_SUB_ID (the subflow is aborted after its data is
    reinjected). Closing the initial subflow works; the connection goes on.

    Raises
    ------
    SubflowNotFoundError
        No live subflow has that id.
    UnsupportedOperationError
        ``how`` other than ``SHUT_RDWR``.
    """
    fd = _core.fileno(sock)
    _impl.close_sub(fd, _args.sub_id(sub_id, _impl.sub_id_max), _args.how(how))


def get_sub_sockopt_int(sock: Any, sub_id: int, level: int, optname: int) -> int:
    """An int socket option of one subflow (``getsockopt`` on that subflow alone).

    Upstream (Linux 5.15, 6.5 for subflow ids): a BPF iterator program calls the
    kernel's ``bpf_getsockopt`` on exactly that subflow; the program is loaded on
    the first call, which needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN), and the
    kernel's BTF. :func:`subflow_options` lists the options it takes. Without those
    privileges ``TCP_MAXSEG`` is still answered, from the subflow's ``tcp_info``.
    Draft kernels: MPTCP_SUB_GETSOCKOPT.

    Raises
    ------
    UnsupportedOperationError
        An option the kernel cannot read on one subflow (before any BPF work), or a
        kernel without BTF.
    MPTCPPermissionError
        The BPF program cannot be loaded without CAP_BPF + CAP_PERFMON.
    SubflowNotFoundError
        No live subflow has that id (also when it closed during the call).
    KernelTooOldError
        Before Linux 5.15 (6.5 for subflow ids).
    """
    fd = _core.fileno(sock)
    return _impl.get_sub_sockopt_int(  # type: ignore[no-any-return]
        fd, _args.sub_id(sub_id, _impl.sub_id_max), _args.c_int("level", level),
        _args.c_int("optname", optname))


def set_sub_sockopt_int(sock: Any, sub_id: int, level: int, optname: int, value: int) -> None:
    """Set an int socket option on one subflow only (``setsockopt`` on that subflow).

    Upstream (Linux 5.15, 6.5 for subflow ids): the kernel's ``bpf_setsockopt`` on
    exactly that subflow, through the BPF program :func:`get_sub_sockopt_int`
    describes; the other subflows keep their values. A later ``setsockopt`` of the
    same option on the MPTCP socket overwrites it on every subflow. Draft kernels:
    MPTCP_SUB_SETSOCKOPT.

    Raises
    ------
    UnsupportedOperationError, MPTCPPermissionError, SubflowNotFoundError, KernelTooOldError
        As :func:`get_sub_sockopt_int`.
    MPTCPError
        The kernel refused the value (``errno`` says why; the message names the option).
    """
    fd = _core.fileno(sock)
    _impl.set_sub_sockopt_int(fd, _args.sub_id(sub_id, _impl.sub_id_max),
                              _args.c_int("level", level), _args.c_int("optname", optname),
                              _args.option_int(value))


def get_sub_sockopt(sock: Any, sub_id: int, level: int, optname: int, buflen: int) -> bytes:
    """A socket option of one subflow as ``buflen`` bytes (1-128), for options
    that are not ints: ``TCP_CONGESTION`` gives the algorithm's NUL-padded name.
    Upstream and draft kernels as :func:`get_sub_sockopt_int`."""
    fd = _core.fileno(sock)
    return _impl.get_sub_sockopt(  # type: ignore[no-any-return]
        fd, _args.sub_id(sub_id, _impl.sub_id_max), _args.c_int("level", level),
        _args.c_int("optname", optname), _args.buflen(buflen))


def set_sub_sockopt(sock: Any, sub_id: int, level: int, optname: int, value: bytes) -> None:
    """Set a socket option of one subflow from bytes (1-128), e.g. ``TCP_CONGESTION``
    to ``b"reno"``. Upstream and draft kernels as :func:`set_sub_sockopt_int`."""
    fd = _core.fileno(sock)
    _impl.set_sub_sockopt(fd, _args.sub_id(sub_id, _impl.sub_id_max),
                          _args.c_int("level", level), _args.c_int("optname", optname),
                          _args.option_bytes(value))


def get_subflow_sockopt(conn: Any, local: Tuple[str, int], remote: Tuple[str, int], level: int,
                        optname: int, buflen: Optional[int] = None) -> Union[int, bytes]:
    """A socket option of one subflow of any MPTCP connection of this network
    namespace, without its socket: ``conn`` is the connection's token (or a socket),
    ``local``/``remote`` the subflow's ``(host, port)`` as :func:`mptcp.connections`
    reports it. ``buflen=None`` reads an int, else up to ``buflen`` bytes.

    Upstream only (Linux 5.15), through the BPF program of :func:`get_sub_sockopt_int`,
    with its privileges. The subflow is searched in the calling thread's network
    namespace (a socket's own, when ``conn`` is a socket).

    Raises
    ------
    SubflowNotFoundError
        The connection has no subflow with that 4-tuple here.
    """
    return _impl.get_subflow_sockopt(  # type: ignore[no-any-return]
        conn, local, remote, _args.c_int("level", level), _args.c_int("optname", optname),
        None if buflen is None else _args.buflen(buflen))


def set_subflow_sockopt(conn: Any, local: Tuple[str, int], remote: Tuple[str, int], level: int,
                        optname: int, value: Union[int, bytes]) -> None:
    """Set a socket option on one subflow of any MPTCP connection of this network
    namespace (``value`` an int or bytes); see :func:`get_subflow_sockopt`. Upstream
    only (Linux 5.15)."""
    _impl.set_subflow_sockopt(conn, local, remote, _args.c_int("level", level),
                              _args.c_int("optname", optname), _args.option_value(value))


def subflow_options() -> List[SubflowOption]:
    """The socket options one subflow can have on its own on the upstream kernel (the
    ones its ``bpf_setsockopt``/``bpf_getsockopt`` take), with what each allows."""
    return _impl.subflow_options()  # type: ignore[no-any-return]


def unload_sockopt_program() -> None:
    """Close the BPF program the per-subflow option calls loaded (e.g. before a daemon
    drops its privileges: whoever holds its fds can change any TCP socket). The next
    such call loads it again. Idempotent."""
    _impl.unload_sockopt()


def set_sub_prio(sock: Any, sub_id: int, backup: bool) -> None:
    """Mark subflow ``sub_id`` backup (``True``) or normal; sends MP_PRIO.

    Upstream only: SET_FLAGS of the userspace path manager (Linux 5.19). The
    draft kernel cannot set priority: :class:`UnsupportedOperationError`.
    """
    fd = _core.fileno(sock)
    _impl.set_sub_prio(fd, _args.sub_id(sub_id, _impl.sub_id_max), _args.flag("backup", backup))


@contextlib.contextmanager
def subflow(
    sock: Any,
    *,
    local: Optional[Host] = None,
    remote: Optional[Host] = None,
    backup: bool = False,
    timeout: float = 5.0,
) -> Iterator[Subflow]:
    """Open a subflow on enter and close it on exit, also on an exception.

    Closing is idempotent: a subflow that already died is not an error.
    """
    sf = open_sub(sock, local=local, remote=remote, backup=backup, timeout=timeout)
    try:
        yield sf
    finally:
        try:
            close_sub(sock, sf.id)  # type: ignore[arg-type]
        except (SubflowNotFoundError, NotMPTCPError):
            pass  # the subflow, or the whole connection, is already gone
        except MPTCPError as err:
            if err.errno not in (errno.EBADF, errno.ENOTSOCK, errno.ENOTCONN):
                raise


# --------------------------------------------------------------------------------
# Beyond the seed (upstream only)
# --------------------------------------------------------------------------------
def info(sock: Any) -> MPTCPInfo:
    """The connection's ``struct mptcp_info`` (MPTCP_INFO, Linux 5.16).

    Fields the running kernel did not return are ``None``.
    """
    return _impl.info(sock)  # type: ignore[no-any-return]


def is_mptcp(sock: Any) -> bool:
    """True for a connected MPTCP connection that has not fallen back (Linux 5.16)."""
    return _impl.is_mptcp(_core.fileno(sock))  # type: ignore[no-any-return]


def subflows(sock: Any) -> List[SubflowInfo]:
    """Live subflows with their tcp_info counters.

    One MPTCP_FULL_INFO snapshot on Linux 6.5+; before that (or with
    ``MPTCP_NO_FULL_INFO=1``) MPTCP_TCPINFO + MPTCP_SUBFLOW_ADDRS (5.16) and ``id``
    is ``None``. ``backup`` is ``None``: see :func:`mptcp.connections`.
    """
    return _impl.subflows(sock)  # type: ignore[no-any-return]


class Poller(_core.Poller):
    """Poll one connection's subflows at high rate (MPTCP_FULL_INFO, Linux 6.5).

    ``poll()`` makes one getsockopt into buffers the Poller owns and returns the
    number of live subflows, allocating nothing in steady state. ``poller[i]`` is
    the same view object for slot ``i`` on every poll; its attributes (``id``,
    ``local``, ``remote``, ``state``, ``rtt_us``, ``snd_cwnd``, ``bytes_acked``,
    ...) read the last poll. ``poller.info`` views the connection's mptcp_info and
    ``poller.snapshot()`` copies the subflows out. Use one Poller per thread.
    """

    __slots__ = ()

    def __init__(self, sock: Any) -> None:
        fd = _core.fileno(sock)
        _impl.require_poller("Poller")
        if fd < 0:  # -1 is also the core's "closed Poller" mark: say EBADF, as every call does
            raise MPTCPError(errno.EBADF, f"Poller: fd {fd} is not an open file descriptor (closed socket?)")
        self._attach(fd, sock)
        self.poll()  # a socket that is not an MPTCP connection fails here, not later
