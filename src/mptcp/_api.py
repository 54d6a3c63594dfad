"""The public calls: argument checks shared by both backends, then dispatch.

Argument types are checked here, before any syscall (``TypeError``), and so are
ranges (``ValueError``); the backend modules then talk to the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import numbers
import socket
from typing import Any, Iterator, List, Optional, Tuple, Union

from . import _backend, _upstream
from ._addr import parse_ip
from . import _mptcp as _core
from ._errors import MPTCPError, NotMPTCPError, SubflowNotFoundError
from ._types import MPTCPInfo, Subflow, SubflowInfo

__all__ = [
    "get_sub_ids", "get_sub_tuple", "open_sub", "close_sub", "get_sub_sockopt_int",
    "set_sub_sockopt_int", "set_sub_prio", "info", "is_mptcp", "subflows", "Poller",
    "subflow", "backend",
]

backend = _backend.backend
Host = Union[str, Tuple[str, int]]
_U32_MAX = 0xFFFFFFFF
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

# Set once both the upstream backend and FULL_INFO are known to be there: the hot
# calls then skip every probe.
_fast = False


def _upstream_fast() -> bool:
    global _fast
    if not _fast:
        _fast = _backend.backend() == "upstream" and _backend.has_full_info()
    return _fast


_draft_module: Any = None


def _draft_backend(call: str) -> Any:
    """The draft backend module, once the kernel is known to have the draft API."""
    global _draft_module
    if _draft_module is None:
        _backend.require_draft_kernel(call)  # raises on every call until it passes
        from . import _draft

        _draft_module = _draft
    return _draft_module


def _control() -> Any:
    from . import _upstream_control as control

    return control


def _check_int(name: str, value: Any) -> int:
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return int(value)


def _check_sub_id(sub_id: object) -> int:
    sub_id = _check_int("sub_id", sub_id)
    if not 0 <= sub_id <= _U32_MAX:
        raise ValueError(f"sub_id {sub_id} is outside 0..{_U32_MAX}, the kernel's subflow id range")
    return sub_id


def _check_host(name: str, host: Any) -> str:
    if not isinstance(host, str):
        raise TypeError(f"{name} host must be a str, not {type(host).__name__}")
    try:
        return parse_ip(host).text
    except ValueError:
        raise ValueError(f"{name} host {host!r} is not an IPv4 or IPv6 address") from None


def _check_port(name: str, port: object) -> int:
    port = _check_int(f"{name} port", port)
    if not 0 <= port <= 65535:
        raise ValueError(f"{name} port {port} is outside 0..65535")
    return port


def _endpoint(name: str, value: Any) -> Optional[Tuple[str, Optional[int]]]:
    """None, a host, or (host, port) -> (canonical host, port or None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (_check_host(name, value), None)
    if isinstance(value, tuple) and len(value) == 2:
        return (_check_host(name, value[0]), _check_port(name, value[1]))
    raise TypeError(f"{name} must be a host str or a (host, port) tuple, not {value!r}")


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


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
    if _fast or _upstream_fast():
        return _core.sub_ids(sock)
    fd = _backend.fileno(sock)
    if _backend.backend() == "draft":
        return _draft_backend("get_sub_ids").get_sub_ids(fd)  # type: ignore[no-any-return]
    return _upstream.get_sub_ids(fd)


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
    fd = _backend.fileno(sock)
    sub_id = _check_sub_id(sub_id)
    if _backend.backend() == "draft":
        return _draft_backend("get_sub_tuple").get_sub_tuple(fd, sub_id)  # type: ignore[no-any-return]
    return _upstream.get_sub_tuple(fd, sub_id)


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
    fd = _backend.fileno(sock)
    if subflow is not None:
        if not isinstance(subflow, Subflow):
            raise TypeError(f"subflow must be a mptcp.Subflow, not {type(subflow).__name__}")
        if local is not None or remote is not None:
            raise TypeError("open_sub takes either a Subflow or local=/remote=, not both")
        local, remote = subflow.local, subflow.remote
        backup = backup or bool(subflow.prio)
    if not isinstance(backup, bool):
        raise TypeError(f"backup must be a bool, not {type(backup).__name__}")
    if isinstance(timeout, bool) or not (type(timeout) in (int, float)
                                         or isinstance(timeout, numbers.Real)):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
    loc = _endpoint("local", local)
    rem = _endpoint("remote", remote)
    if loc and rem and _family(loc[0]) != _family(rem[0]):
        raise ValueError(f"local {loc[0]} and remote {rem[0]} are of different address families")
    if _backend.backend() == "draft":
        return _draft_backend("open_sub").open_sub(fd, loc, rem, backup, float(timeout))  # type: ignore[no-any-return, unused-ignore]
    return _control().open_sub(fd, loc, rem, backup, float(timeout))  # type: ignore[no-any-return, unused-ignore]


def _check_how(how: object) -> int:
    how = _check_int("how", how)
    if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
        raise ValueError(f"how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR, not {how}")
    return how


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
    fd = _backend.fileno(sock)
    sub_id = _check_sub_id(sub_id)
    how = _check_how(how)
    if _backend.backend() == "draft":
        _draft_backend("close_sub").close_sub(fd, sub_id, how)
        return
    _control().close_sub(fd, sub_id, how)


def _check_opt(level: Any, optname: Any) -> Tuple[int, int]:
    level = _check_int("level", level)
    optname = _check_int("optname", optname)
    for name, v in (("level", level), ("optname", optname)):
        if not _INT_MIN <= v <= _INT_MAX:
            raise ValueError(f"{name} {v} does not fit a C int")
    return level, optname


def get_sub_sockopt_int(sock: Any, sub_id: int, level: int, optname: int) -> int:
    """An int socket option of one subflow.

    Draft kernels: MPTCP_SUB_GETSOCKOPT (SOL_TCP, IPPROTO_IP and IPPROTO_IPV6
    options). Upstream has no per-subflow getsockopt: the few options that map
    exactly to a field of the subflow's own ``tcp_info`` are answered from it
    (Linux 6.5); any other raises :class:`UnsupportedOperationError`.
    """
    fd = _backend.fileno(sock)
    sub_id = _check_sub_id(sub_id)
    level, optname = _check_opt(level, optname)
    if _backend.backend() == "draft":
        return _draft_backend("get_sub_sockopt_int").get_sub_sockopt_int(fd, sub_id, level, optname)  # type: ignore[no-any-return]
    return _control().get_sub_sockopt_int(fd, sub_id, level, optname)  # type: ignore[no-any-return]


def set_sub_sockopt_int(sock: Any, sub_id: int, level: int, optname: int, value: int) -> None:
    """Set an int socket option on one subflow (draft kernels only).

    Upstream kernels cannot set an option on one subflow: options set on the MPTCP
    socket apply to all subflows, so this raises
    :class:`UnsupportedOperationError` rather than silently changing them all.
    """
    fd = _backend.fileno(sock)
    sub_id = _check_sub_id(sub_id)
    level, optname = _check_opt(level, optname)
    value = _check_int("value", value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"value {value} does not fit a C int")
    if _backend.backend() == "draft":
        _draft_backend("set_sub_sockopt_int").set_sub_sockopt_int(fd, sub_id, level, optname, value)
        return
    _control().set_sub_sockopt_int(fd, sub_id, level, optname, value)


def set_sub_prio(sock: Any, sub_id: int, backup: bool) -> None:
    """Mark subflow ``sub_id`` backup (``True``) or normal; sends MP_PRIO.

    Upstream only: SET_FLAGS of the userspace path manager (Linux 5.19). The
    draft kernel cannot set priority: :class:`UnsupportedOperationError`.
    """
    fd = _backend.fileno(sock)
    sub_id = _check_sub_id(sub_id)
    if not isinstance(backup, bool):
        raise TypeError(f"backup must be a bool, not {type(backup).__name__}")
    if _backend.backend() == "draft":
        _backend.upstream_only("set_sub_prio")
    _control().set_sub_prio(fd, sub_id, backup)


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
def _upstream_fd(sock: Any, call: str) -> int:
    fd = _backend.fileno(sock)
    if not _fast and _backend.backend() == "draft":
        _backend.upstream_only(call)
    return fd


def info(sock: Any) -> MPTCPInfo:
    """The connection's ``struct mptcp_info`` (MPTCP_INFO, Linux 5.16).

    Fields the running kernel did not return are ``None``.
    """
    if _fast or _upstream_fast():
        return _core.info(sock)
    return _upstream.info(_upstream_fd(sock, "info"))


def is_mptcp(sock: Any) -> bool:
    """True for a connected MPTCP connection that has not fallen back (Linux 5.16)."""
    return _upstream.is_mptcp(_upstream_fd(sock, "is_mptcp"))


def subflows(sock: Any) -> List[SubflowInfo]:
    """Live subflows with their tcp_info counters.

    One MPTCP_FULL_INFO snapshot on Linux 6.5+; before that (or with
    ``MPTCP_NO_FULL_INFO=1``) MPTCP_TCPINFO + MPTCP_SUBFLOW_ADDRS (5.16) and ``id``
    is ``None``. ``backup`` is ``None``: see :func:`mptcp.connections`.
    """
    if _fast or _upstream_fast():
        return _core.subflows(sock)
    return _upstream.subflows(_upstream_fd(sock, "subflows"))


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
        fd = _upstream_fd(sock, "Poller")
        if fd < 0:  # -1 is also the core's "closed Poller" mark: say EBADF, as every call does
            raise MPTCPError(errno.EBADF, f"Poller: fd {fd} is not an open file descriptor (closed socket?)")
        _backend.require_full_info("Poller")
        self._attach(fd, sock)
        self.poll()  # a socket that is not an MPTCP connection fails here, not later
