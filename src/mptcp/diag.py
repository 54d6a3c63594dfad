"""The system-wide view: every MPTCP connection of a network namespace (sock_diag).

:func:`connections` asks the kernel's ``NETLINK_SOCK_DIAG`` interface for the MPTCP
sockets of the calling thread's network namespace (with their ``struct mptcp_info``)
and for the TCP sockets that are their subflows (with ``tcp_info`` and the MPTCP
subflow attributes: tokens, address ids, flags), and groups each subflow under its
connection by token. The walk over the kernel's bytes and the records happen in the
compiled core; this module holds the record types and the policy.

Like ``ss``, it sees the namespace of the thread that calls it (a netlink socket
belongs to the namespace of the thread that creates it) and needs no privilege:
fields the kernel gives only to CAP_NET_ADMIN are ``None`` for others.
"""

from __future__ import annotations

import enum
import gc
import errno as _errno
import os
import socket
from typing import List, NamedTuple, Optional, Tuple

from . import _mptcp
from ._errors import KernelTooOldError, MPTCPError, error_from_errno
from ._types import Address, MPTCPInfo, SubflowInfo, TCPState

__all__ = ["Connection", "DiagSubflow", "SubflowFlags", "connections"]

#: First kernel whose sock_diag answers for MPTCP sockets (INET_DIAG_REQ_PROTOCOL
#: and the MPTCP diag handler). 5.7 and 5.8 ignore the protocol attribute and would
#: answer with plain TCP sockets, so they are refused up front.
MIN_KERNEL = (5, 9)


class SubflowFlags(enum.IntFlag):
    """A subflow's MPTCP state bits as sock_diag reports them (``MPTCP_SUBFLOW_FLAG_*``).

    ``ss -tiM`` prints them as the letters M m J j B b e c v, in this order.
    """

    MCAP_REM = 1 << 0
    MCAP_LOC = 1 << 1
    JOIN_REM = 1 << 2
    JOIN_LOC = 1 << 3
    BKUP_REM = 1 << 4
    BKUP_LOC = 1 << 5
    FULLY_ESTABLISHED = 1 << 6
    CONNECTED = 1 << 7
    MAPVALID = 1 << 8

    __module__ = "mptcp"


class DiagSubflow(NamedTuple):
    """What sock_diag says about one subflow beyond its ``tcp_info``.

    ``Connection.subflow_diag[i]`` describes the same subflow as
    ``Connection.subflows[i]``. ``token`` is the local token (the connection's),
    ``token_rem`` the peer's; ``loc_id``/``rem_id`` are the MPTCP *address* ids
    (the ones path-manager events carry, not the kernel's subflow id); ``if_index``
    is the device the subflow is bound to (0 = none). The sequence fields
    (``relwrite_seq`` .. ``map_datalen``) need CAP_NET_ADMIN in the namespace on
    kernels that withhold them, and are ``None`` otherwise.
    """

    local: Optional[Address]
    remote: Optional[Address]
    token: Optional[int]
    token_rem: Optional[int]
    loc_id: Optional[int]
    rem_id: Optional[int]
    flags: Optional[SubflowFlags]
    if_index: int
    relwrite_seq: Optional[int]
    map_seq: Optional[int]
    map_sfseq: Optional[int]
    ssn_offset: Optional[int]
    map_datalen: Optional[int]


DiagSubflow.__module__ = "mptcp"


class Connection(NamedTuple):
    """One MPTCP connection (or listener) as :func:`connections` returns it.

    ``token`` is the local connection token (what the path manager and events
    use; ``0`` for a listener); ``local``/``remote`` are the MPTCP socket's
    addresses; ``state`` a :class:`TCPState`; ``info`` the connection's
    :class:`MPTCPInfo`. ``subflows`` lists its subflows as :class:`SubflowInfo`
    records (``id`` is ``None``: sock_diag has no subflow ids; ``backup`` is this
    side's backup flag, BKUP_LOC), and ``subflow_diag`` the matching
    :class:`DiagSubflow` records, in the same order. ``uid`` and ``inode`` are the
    owner and socket inode, as ``ss -e`` shows them.
    """

    token: Optional[int]
    local: Optional[Address]
    remote: Optional[Address]
    state: int
    info: Optional[MPTCPInfo]
    subflows: List[SubflowInfo]
    subflow_diag: List[DiagSubflow]
    family: int
    if_index: int
    uid: int
    inode: int


Connection.__module__ = "mptcp"

if tuple(_mptcp.CONNECTION_FIELDS) != Connection._fields:
    raise ImportError("mptcp._mptcp and mptcp.diag disagree on Connection's fields")
if tuple(_mptcp.DIAG_SUBFLOW_FIELDS) != DiagSubflow._fields:
    raise ImportError("mptcp._mptcp and mptcp.diag disagree on DiagSubflow's fields")
_mptcp._register_diag(Connection, DiagSubflow, SubflowFlags, TCPState)

_kernel_checked = False


def _release() -> Tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _check_kernel() -> None:
    global _kernel_checked
    if _kernel_checked:
        return
    if _release() < MIN_KERNEL:
        raise KernelTooOldError(
            _errno.EOPNOTSUPP,
            "connections() needs sock_diag for MPTCP sockets (Linux 5.9 or newer); "
            f"this kernel is {os.uname().release}",
            min_version=MIN_KERNEL,
        )
    _kernel_checked = True


def _ensure_hook() -> None:
    # The package registers the core's error hook when it is imported; importing it
    # here makes a direct ``import mptcp.diag`` raise mptcp exceptions too.
    if not _mptcp._diag_hook_registered():
        try:
            import mptcp  # noqa: F401
        except ImportError:
            pass


def _as_mptcp_error(err: OSError, what: str) -> MPTCPError:
    # The core's hook speaks of fds; these calls have none, so say what was attempted.
    return error_from_errno(err.errno or _errno.EIO, what)


def connections(*, listening: bool = False) -> List[Connection]:
    """Every MPTCP connection in the calling thread's network namespace.

    Two kinds of sock_diag dump (IPv4 and IPv6 each): the MPTCP sockets with
    their ``mptcp_info``, then the TCP sockets with ``tcp_info`` and their MPTCP
    subflow attributes, which are grouped under the connection whose token equals
    their local token. Like ``ss``, it lists sockets in every state but LISTEN,
    CLOSE, TIME_WAIT and SYN_RECV; a subflow appears under its connection only if
    both were seen in the same call (a connection opening or closing meanwhile
    may show fewer subflows).

    Parameters
    ----------
    listening
        Also list listening MPTCP sockets (``state == TCPState.LISTEN``, token 0,
        no subflows). Listeners are reported by Linux 5.19 and newer.

    Returns
    -------
    list of Connection
        In the kernel's order. Works without privileges; fields the kernel gives
        only to CAP_NET_ADMIN are ``None``.

    Raises
    ------
    KernelTooOldError
        Before Linux 5.9 (no sock_diag for MPTCP sockets), or if the kernel was
        built without ``CONFIG_INET_MPTCP_DIAG``.
    MPTCPError
        Any other netlink failure (``errno`` says which).

    Notes
    -----
    Minimum kernel: 5.9 (MPTCP socket diag and ``INET_DIAG_REQ_PROTOCOL``); the
    subflow attributes exist since 5.7; ``mptcp_info`` fields grew up to 6.18
    (missing ones are ``None``, see :class:`MPTCPInfo`).
    """
    if not isinstance(listening, bool):
        raise TypeError(f"listening must be a bool, not {type(listening).__name__}")
    _check_kernel()
    _ensure_hook()
    # Thousands of fresh records would trigger repeated full collections of objects
    # that cannot be garbage yet (25% of the time at 5,000 connections).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _mptcp.diag_connections(listening)
    except OSError as err:
        if err.errno in (_errno.ENOENT, _errno.EPROTONOSUPPORT, _errno.EINVAL):
            raise KernelTooOldError(
                err.errno,
                "connections() needs sock_diag for MPTCP sockets: this kernel has no "
                "MPTCP diag handler (CONFIG_INET_MPTCP_DIAG, Linux 5.9+): "
                f"{os.strerror(err.errno)}",
                min_version=MIN_KERNEL,
            ) from err
        raise _as_mptcp_error(err, "connections() could not dump sockets (sock_diag)") from err
    finally:
        if gc_was_enabled:
            gc.enable()


def _pack(family: int, host: str) -> bytes:
    try:
        return socket.inet_pton(family, host)
    except (OSError, TypeError) as err:
        raise ValueError(f"{host!r} is not an address of family {family}") from err


def _check_addr(name: str, value: object) -> Tuple[str, int]:
    if (not isinstance(value, tuple) or len(value) != 2 or not isinstance(value[0], str)
            or not isinstance(value[1], int) or isinstance(value[1], bool)):
        raise TypeError(f"{name} must be a (host, port) tuple")
    if not 0 <= value[1] <= 0xFFFF:
        raise ValueError(f"{name} port {value[1]} is outside 0-65535")
    return value[0], value[1]


def _subflow_flags(
    family: int, local: Tuple[str, int], remote: Tuple[str, int]
) -> Optional[Tuple[int, int, int, int]]:
    """``(flags, loc_id, rem_id, token_loc)`` of the MPTCP subflow with this 4-tuple.

    One TCP dump that the kernel filters on both ports (inet_diag bytecode), then an
    exact address match in the core; works for subflows bound to a device (where a
    single-socket request without the device's index answers ENOENT). ``None`` if
    no MPTCP subflow has that tuple in the calling thread's namespace. ``family`` is
    the subflow socket's family (an IPv4 peer of an IPv6 socket is ``::ffff:a.b.c.d``
    with AF_INET6). Linux 5.7+.
    """
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError("family must be AF_INET or AF_INET6")
    lhost, lport = _check_addr("local", local)
    rhost, rport = _check_addr("remote", remote)
    if family == socket.AF_INET6:
        # Scope suffixes never reach sock_diag's address bytes.
        lhost = lhost.split("%", 1)[0]
        rhost = rhost.split("%", 1)[0]
    src = _pack(family, lhost)
    dst = _pack(family, rhost)
    _ensure_hook()
    try:
        return _mptcp.diag_subflow(family, src, lport, dst, rport)
    except OSError as err:
        raise _as_mptcp_error(err, "could not look up the subflow's flags (sock_diag)") from err


