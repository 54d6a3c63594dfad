"""The six seed calls on draft-API kernels (draft-hesmans-mptcp-socket research forks).

Only research forks of the out-of-tree multipath-tcp.org kernel implement these
``SOL_TCP`` options 42 and 66-72 (``include/mptcp_sockopt.h`` holds their structs). The
kernel calls are in the compiled
core (``_draft.pxi``); this module adds what the kernel leaves to its caller: which
exception an errno means for each call, finding the id of a subflow it just opened,
waiting for that subflow, and refusing what the kernel would silently do wrong.

The public layer (``mptcp._api``) has already checked the arguments (subflow ids
against this kernel's u8 range, ``SUB_ID_MAX``) and turned the socket into an fd;
:func:`bind` is only called once the kernel is known to have the draft API.

Choices, each because of what the fork does:

- ``open_sub`` waits for the new subflow's ``fully_established`` bit. The fork's
  MPTCP_OPEN_SUB_TUPLE is a non-blocking connect that returns before the join
  handshake; the subflow is listed at once (``pre_established`` until the MP_JOIN
  handshake completes), and vanishes if the join fails. The kernel reports no
  reason then, so the error is ``SubflowOpenError(ECONNRESET)`` saying so.
- The fork returns no id from MPTCP_OPEN_SUB_TUPLE: ids are diffed before and
  after, under a lock so that this process's threads never see each other's new
  subflow. If something else opened one meanwhile (another process sharing the
  socket), the new ids are matched against the requested tuple.
- ``backup=True`` raises: the fork cannot set a subflow's priority at all, and
  ignoring the request would hand back a normal subflow as if it were a backup.
- ``prio`` is always ``None``: the fork never initialises the low_prio bit.
- ``get_sub_ids`` on an unconnected TCP socket returns ``[]`` (an unconnected
  socket has no subflows yet, on either backend). The fork answers EOPNOTSUPP until MPTCP is negotiated, and an
  unconnected TCP socket may still become an MPTCP connection there.
- The per-subflow socket options first ask MPTCP_ENABLED: the fork's
  MPTCP_SUB_SETSOCKOPT leaves a non-MPTCP socket locked forever.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

from .. import _args
from .. import _mptcp as _core
from .._addr import Host, parse_ip
from .._errors import (
    MPTCPError,
    MPTCPTimeoutError,
    NotMPTCPError,
    SubflowNotFoundError,
    SubflowOpenError,
    UnsupportedOperationError,
    error_from_errno,
)
from .._records import Subflow, SubflowStatus
from .base import Backend, upstream_only
from .upstream import read

__all__ = [
    "bind",
    "get_sub_ids",
    "get_sub_tuple",
    "open_sub",
    "close_sub",
    "get_sub_sockopt_int",
    "set_sub_sockopt_int",
    "get_sub_sockopt",
    "set_sub_sockopt",
    "SUB_ID_MAX",
]

#: Subflow ids are a u8 on the draft kernel (it starts at 1; 0 is carried but unused).
SUB_ID_MAX = 255

_FULLY = int(SubflowStatus.FULLY_ESTABLISHED)
# Every masked bit combination, built once: the hot path only indexes.
_STATUS: List[SubflowStatus] = [SubflowStatus(b & _core.DRAFT_STATUS_MASK) for b in range(256)]

# Serialises ids-before / OPEN / ids-after of concurrent open_sub calls (not the wait).
_open_lock = threading.Lock()

_SOCKOPT_CALLS = frozenset({"get_sub_sockopt_int", "set_sub_sockopt_int", "get_sub_sockopt",
                            "set_sub_sockopt"})
_OPEN_HINTS: Dict[int, str] = {
    _errno.EINVAL: "; both addresses must be of the connection's address family",
    _errno.EADDRNOTAVAIL: "; the local address is not one of this host's",
    _errno.EADDRINUSE: "; the local address and port are already in use (port 0 picks a free one)",
    _errno.EACCES: "; binding that local port needs CAP_NET_BIND_SERVICE",
}

Addr = Tuple[str, int]
Endpoint = Optional[Tuple[Host, Optional[int]]]


# --------------------------------------------------------------------------------
# errno -> exception, per call
# --------------------------------------------------------------------------------
def _live_text(fd: int) -> str:
    try:
        return f" (live ids: {get_sub_ids(fd)})"
    except MPTCPError:
        return ""


def _core_error(err: int, call: str, fd: int) -> MPTCPError:
    """The draft calls' errno hook: the same errno means different things per call."""
    if err == _errno.EBADF:
        return MPTCPError(err, f"{call}: fd {fd} is not an open file descriptor (closed socket?)")
    if err == _errno.ENOTSOCK:
        return MPTCPError(err, f"{call}: fd {fd} is not a socket")
    if call in _SOCKOPT_CALLS:
        # EINVAL (unknown id or a rejected value) and EOPNOTSUPP are told apart by
        # the caller, which knows the id; ENOPROTOOPT is the subflow's TCP/IP layer.
        if err == _errno.EINVAL:
            return SubflowNotFoundError(err, f"{call}: no subflow with that id on fd {fd}")
        if err == _errno.ENOPROTOOPT:
            return UnsupportedOperationError(
                err,
                f"{call}: the subflow does not know this option (the draft kernel forwards "
                "only SOL_TCP, IPPROTO_IP and IPPROTO_IPV6 options to the subflow): "
                f"{os.strerror(err)}",
            )
    if err == _errno.EOPNOTSUPP:
        return NotMPTCPError(
            err,
            f"{call}: fd {fd} is not an MPTCP connection (the draft kernel answers "
            "EOPNOTSUPP for a TCP socket without MPTCP: plain TCP, fallen back, or not "
            "connected yet)",
        )
    if err == _errno.ENOPROTOOPT:
        return NotMPTCPError(err, f"{call}: fd {fd} is not a TCP socket")
    if call == "open_sub":
        return SubflowOpenError(
            err,
            f"open_sub: the kernel refused the new subflow: {os.strerror(err)}"
            f"{_OPEN_HINTS.get(err, '')}",
        )
    if err == _errno.EINVAL and call in ("get_sub_tuple", "close_sub"):
        # The buffers we pass are always long enough: EINVAL is an unknown id.
        return SubflowNotFoundError(
            err, f"{call}: the connection on fd {fd} has no subflow with that id{_live_text(fd)}"
        )
    return error_from_errno(err, f"{call} on fd {fd}")


_core._register_draft(_core_error)


# --------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------
def _check_opt(call: str, level: int, optname: int) -> None:
    if level == socket.SOL_SOCKET:
        raise UnsupportedOperationError(
            f"{call}: SOL_SOCKET options cannot be reached per subflow on the draft kernel "
            "(it forwards only SOL_TCP, IPPROTO_IP and IPPROTO_IPV6 options to the "
            "subflow); set SOL_SOCKET options on the MPTCP socket itself"
        )


def _require_mptcp(fd: int, call: str) -> None:
    """MPTCP_ENABLED before a per-subflow option: the fork's SUB_SETSOCKOPT locks a
    non-MPTCP socket forever (and SO_PROTOCOL cannot tell on the fork)."""
    if not _core.draft_enabled(fd):
        raise NotMPTCPError(
            _errno.EOPNOTSUPP,
            f"{call}: fd {fd} is not an MPTCP connection (MPTCP_ENABLED is 0: plain TCP, "
            "fallen back, or not connected yet)",
        )


def _stream_unconnected(fd: int) -> bool:
    """An IPv4/IPv6 stream socket without a peer (error path only)."""
    try:
        if (_core.sockopt_int(fd, socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_STREAM
                or _core.sockopt_int(fd, socket.SOL_SOCKET, socket.SO_DOMAIN)
                not in (socket.AF_INET, socket.AF_INET6)):
            return False
        read.peer(fd, "get_sub_ids")
        return False
    except NotMPTCPError as err:
        return err.errno == _errno.ENOTCONN
    except MPTCPError:
        return False


# --------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------
def get_sub_ids(fd: int) -> List[int]:
    """Ids of the connection's subflows, ascending (one MPTCP_GET_SUB_IDS)."""
    try:
        ids: List[int] = _core.draft_sub_ids(fd, False)
    except NotMPTCPError as err:
        if err.errno == _errno.EOPNOTSUPP and _stream_unconnected(fd):
            return []
        raise
    ids.sort()  # the fork lists the newest subflow first
    return ids


def get_sub_tuple(fd: int, sub_id: int) -> Subflow:
    """Subflow ``sub_id`` (MPTCP_GET_SUB_TUPLE, then MPTCP_GET_SUB_IDS for its status).

    ``prio``/``backup`` are None: the fork cannot report a subflow's priority.
    """
    local, remote = _core.draft_sub_tuple(fd, sub_id)
    bits = _core.draft_sub_status(fd, sub_id)
    if bits < 0:
        raise SubflowNotFoundError(
            _errno.EINVAL, f"get_sub_tuple: subflow {sub_id} on fd {fd} closed while being read"
        )
    return _core.make_subflow(sub_id, local, remote, None, _STATUS[bits])


# --------------------------------------------------------------------------------
# open_sub
# --------------------------------------------------------------------------------
def _route_source(family: int, host: str, port: int) -> str:
    """The source address the routing table picks for host: connect() a UDP
    socket, which sends nothing."""
    with socket.socket(family, socket.SOCK_DGRAM) as u:
        try:
            u.connect((host, port or 9))
        except OSError as err:
            raise SubflowOpenError(
                err.errno or _errno.ENETUNREACH,
                f"open_sub: no route to {host}: {os.strerror(err.errno or _errno.ENETUNREACH)}",
            ) from err
        return str(u.getsockname()[0])


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _matches(fd: int, sub_id: int, lhost: bytes, lport: int, rhost: bytes, rport: int,
             family: int) -> bool:
    try:
        local, remote = _core.draft_sub_tuple(fd, sub_id)
    except MPTCPError:
        return False
    return (
        socket.inet_pton(family, local[0]) == lhost
        and socket.inet_pton(family, remote[0]) == rhost
        and (not lport or local[1] == lport)
        and (not rport or remote[1] == rport)
    )


def open_sub(fd: int, local: Endpoint = None, remote: Endpoint = None, backup: bool = False,
             timeout: float = 5.0) -> Subflow:
    """Open a subflow (MPTCP_OPEN_SUB_TUPLE) and wait until it is fully established.

    ``local``/``remote`` are None or ``(host, port or None)``. Local port 0 or None
    is ephemeral; remote port 0 or None is the connection's port (the kernel fills
    it in). Returns the new :class:`Subflow` with its real tuple; ``prio`` None.
    """
    if backup:
        raise UnsupportedOperationError(
            "open_sub: the draft-API kernel cannot set a subflow's priority "
            "(MPTCP_OPEN_SUB_TUPLE has no priority, and the kernel has no MP_PRIO call), "
            "so backup=True cannot be honoured; open it with backup=False"
        )
    if remote is None:
        peer_host, rport = read.peer(fd, "open_sub")
        rhost = parse_ip(peer_host)
    else:
        rhost, rport = remote[0], remote[1] or 0
    if local is None:
        lhost, lport = parse_ip(_route_source(rhost.family, rhost.text, rport)), 0
    else:
        lhost, lport = local[0], local[1] or 0
    if lhost.family != rhost.family:
        raise ValueError(f"local {lhost.text} and remote {rhost.text} are of different "
                         "address families")
    lfam, lpacked, ltext = lhost.family, lhost.packed, lhost.text
    rpacked, rtext = rhost.packed, rhost.text

    deadline = time.monotonic() + timeout
    want = f"{_fmt(ltext, lport)} -> {_fmt(rtext, rport)}"
    with _open_lock:
        before = set(_core.draft_sub_ids(fd, False))
        _core.draft_open_sub(fd, lfam, lpacked, lport, rpacked, rport, 0, 0)
        pairs = _core.draft_sub_ids(fd, True)

    new_id: Optional[int] = None
    delay = 0.0002
    while True:
        if new_id is None:
            fresh = sorted(i for i, _ in pairs if i not in before)
            if len(fresh) > 1:  # opened meanwhile by another process: match the tuple
                fresh = [i for i in fresh
                         if _matches(fd, i, lpacked, lport, rpacked, rport, lfam)] or fresh
            if not fresh:
                raise SubflowOpenError(
                    _errno.ECONNRESET,
                    f"open_sub: the subflow {want} was dropped by the kernel right after it "
                    "was opened (the draft kernel does not report why)",
                )
            new_id = fresh[0]
        bits = next((b for i, b in pairs if i == new_id), None)
        if bits is None:
            raise SubflowOpenError(
                _errno.ECONNRESET,
                f"open_sub: subflow {new_id} ({want}) closed before it was established "
                "(the draft kernel does not report why)",
            )
        if bits & _FULLY:
            break
        if time.monotonic() >= deadline:
            try:
                _core.draft_close_sub(fd, new_id)
            except MPTCPError:
                pass
            raise MPTCPTimeoutError(
                _errno.ETIMEDOUT,
                f"open_sub: subflow {new_id} ({want}) was not established within "
                f"{timeout} s (closed it)",
            )
        time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, 0.02)
        pairs = _core.draft_sub_ids(fd, True)
    try:
        local_t, remote_t = _core.draft_sub_tuple(fd, new_id)
    except SubflowNotFoundError as err:
        raise SubflowOpenError(
            _errno.ECONNRESET,
            f"open_sub: subflow {new_id} ({want}) closed right after it was established",
        ) from err
    return _core.make_subflow(new_id, local_t, remote_t, None, _STATUS[bits])


# --------------------------------------------------------------------------------
# close_sub
# --------------------------------------------------------------------------------
def close_sub(fd: int, sub_id: int, how: int = socket.SHUT_RDWR) -> None:
    """Close subflow ``sub_id`` (MPTCP_CLOSE_SUB_ID): the kernel reinjects its data and
    aborts it at once, so it is gone when the call returns."""
    if how != socket.SHUT_RDWR:
        raise UnsupportedOperationError(
            "close_sub: the draft-API kernel cannot half-close a subflow (MPTCP_CLOSE_SUB_ID "
            "has no 'how': it aborts the subflow); use how=socket.SHUT_RDWR"
        )
    _core.draft_close_sub(fd, sub_id)


# --------------------------------------------------------------------------------
# Per-subflow socket options
# --------------------------------------------------------------------------------
def _refine(err: MPTCPError, fd: int, sub_id: int, call: str, what: str) -> MPTCPError:
    """Tell an unknown id from the option's own EINVAL, and a lost MPTCP connection
    from the subflow's EOPNOTSUPP (error path only)."""
    if err.errno == _errno.EINVAL:
        try:
            live = get_sub_ids(fd)
        except MPTCPError:
            return err
        if sub_id not in live:
            return SubflowNotFoundError(
                _errno.EINVAL,
                f"{call}: the connection on fd {fd} has no subflow with id {sub_id} "
                f"(live ids: {live})",
            )
        return MPTCPError(_errno.EINVAL, f"{call}: the subflow rejected {what}: "
                                         f"{os.strerror(_errno.EINVAL)}")
    if err.errno == _errno.EOPNOTSUPP:
        try:
            enabled = _core.draft_enabled(fd)
        except MPTCPError:
            return err
        if enabled:
            return UnsupportedOperationError(
                _errno.EOPNOTSUPP,
                f"{call}: the subflow does not support {what}: {os.strerror(_errno.EOPNOTSUPP)}",
            )
    return err


def _sockopt(call: str, fd: int, sub_id: int, level: int, optname: int,
             value: Optional[bytes], buflen: int) -> bytes:
    """One MPTCP_SUB_GETSOCKOPT (value None) or MPTCP_SUB_SETSOCKOPT, after MPTCP_ENABLED."""
    _check_opt(call, level, optname)
    _require_mptcp(fd, call)
    try:
        if value is None:
            return _core.draft_sub_getsockopt(fd, sub_id, level, optname, buflen, call)
        _core.draft_sub_setsockopt(fd, sub_id, level, optname, value, call)
        return b""
    except MPTCPError as err:
        what = f"option (level {level}, optname {optname})"
        better = _refine(err, fd, sub_id, call, what if value is None else f"{value!r} for {what}")
        if better is err:
            raise
        raise better from err


def get_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int) -> int:
    """An int option of one subflow."""
    data = _sockopt("get_sub_sockopt_int", fd, sub_id, level, optname, None, 4)
    if len(data) == 1:
        # Some IP options answer one byte: read it, not the int's first byte by luck.
        return data[0]
    return int.from_bytes(data[:4].ljust(4, b"\0"), sys.byteorder, signed=True)


def set_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int, value: int) -> None:
    """Set an int option of one subflow (the fork's call carries a C int)."""
    value = _args.c_int("value", value)
    _sockopt("set_sub_sockopt_int", fd, sub_id, level, optname,
             value.to_bytes(4, sys.byteorder, signed=True), 4)


def get_sub_sockopt(fd: int, sub_id: int, level: int, optname: int, buflen: int) -> bytes:
    """Up to ``buflen`` bytes of an option of one subflow."""
    return _sockopt("get_sub_sockopt", fd, sub_id, level, optname, None, buflen)


def set_sub_sockopt(fd: int, sub_id: int, level: int, optname: int, value: bytes) -> None:
    """Set an option of one subflow to ``value``."""
    _sockopt("set_sub_sockopt", fd, sub_id, level, optname, value, len(value))


def bind() -> Backend:
    """The draft kernel's functions (call only where the kernel has the draft API)."""
    return Backend(
        "draft",
        sub_id_max=SUB_ID_MAX,
        get_sub_ids=lambda sock: get_sub_ids(_core.fileno(sock)),
        get_sub_tuple=get_sub_tuple,
        open_sub=open_sub,
        close_sub=close_sub,
        get_sub_sockopt_int=get_sub_sockopt_int,
        set_sub_sockopt_int=set_sub_sockopt_int,
        get_sub_sockopt=get_sub_sockopt,
        set_sub_sockopt=set_sub_sockopt,
        get_subflow_sockopt=upstream_only("get_subflow_sockopt"),
        set_subflow_sockopt=upstream_only("set_subflow_sockopt"),
        unload_sockopt=lambda: None,  # nothing to unload: the fork's calls need no program
        subflow_options=upstream_only("subflow_options"),
        set_sub_prio=upstream_only("set_sub_prio"),
        info=upstream_only("info"),
        is_mptcp=upstream_only("is_mptcp"),
        subflows=upstream_only("subflows"),
        require_poller=upstream_only("Poller"),
    )
