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
from ._records import MPTCPInfo, Subflow, SubflowInfo

__all__ = [
    "get_sub_ids", "get_sub_tuple", "open_sub", "close_sub", "get_sub_sockopt_int",
    "set_sub_sockopt_int", "set_sub_prio", "info", "is_mptcp", "subflows", "Poller",
    "subflow", "backend",
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
    """An int socket option of one subflow.

    Draft kernels: MPTCP_SUB_GETSOCKOPT (SOL_TCP, IPPROTO_IP and IPPROTO_IPV6
    options). Upstream has no per-subflow getsockopt: the few options that map
    exactly to a field of the subflow's own ``tcp_info`` are answered from it
    (Linux 6.5); any other raises :class:`UnsupportedOperationError`.
    """
    fd = _core.fileno(sock)
    return _impl.get_sub_sockopt_int(  # type: ignore[no-any-return]
        fd, _args.sub_id(sub_id, _impl.sub_id_max), _args.c_int("level", level),
        _args.c_int("optname", optname))


def set_sub_sockopt_int(sock: Any, sub_id: int, level: int, optname: int, value: int) -> None:
    """Set an int socket option on one subflow (draft kernels only).

    Upstream kernels cannot set an option on one subflow: options set on the MPTCP
    socket apply to all subflows, so this raises
    :class:`UnsupportedOperationError` rather than silently changing them all.
    """
    fd = _core.fileno(sock)
    _impl.set_sub_sockopt_int(fd, _args.sub_id(sub_id, _impl.sub_id_max),
                              _args.c_int("level", level), _args.c_int("optname", optname),
                              _args.c_int("value", value))


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
