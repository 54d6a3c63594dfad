"""The read path on upstream Linux kernels, and the lookups every upstream call shares.

``info``, ``subflows``, ``get_sub_ids`` and ``Poller`` are one SOL_MPTCP getsockopt
each, made by the core; this module adds what they share: finding one subflow by
id, the connection's token, its peer, a subflow's sock_diag flags, the capability
probe, and the hook through which the core raises ``mptcp`` exceptions.

Kernel versions are found on the error path, never guessed: when a SOL_MPTCP option
fails on an MPTCP socket whose own MPTCP_INFO works, the kernel lacks that option
(MPTCP_FULL_INFO before 6.5); when MPTCP_INFO fails too, the connection fell back
or the kernel predates 5.16, which an unconnected probe socket tells apart.
"""

from __future__ import annotations

import errno as _errno
import socket
from typing import Any, List, Optional, Tuple

from ... import _args
from ... import _mptcp as _core
from ..._addr import Host, parse_ip, unmap_v4
from ..._errors import (
    KernelTooOldError,
    MPTCPError,
    NotMPTCPError,
    SubflowNotFoundError,
    error_from_errno,
)
from ..._records import Subflow, SubflowFlags, SubflowInfo

__all__ = [
    "core_error", "kernel_has", "info", "is_mptcp", "subflows", "subflows_legacy",
    "find_subflow", "subflow_and_token", "token", "token_of", "peer", "subflow_flags", "get_sub_tuple",
    "initial_local",
]

_SO_PROTOCOL = getattr(socket, "SO_PROTOCOL", 38)
_IPPROTO_MPTCP = _core.abi.IPPROTO_MPTCP
SOL_MPTCP_MIN = (5, 16)
FULL_INFO_MIN = (6, 5)


# --------------------------------------------------------------------------------
# What the kernel has (probed once; cached only when known)
# --------------------------------------------------------------------------------
_known: dict[str, bool] = {}


def kernel_has(what: str) -> Optional[bool]:
    """Whether the kernel has ``"sol_mptcp"`` (MPTCP getsockopt, 5.16) or
    ``"full_info"`` (MPTCP_FULL_INFO, 6.5); None when it cannot be told here.

    An unconnected MPTCP socket answers both on kernels that have them. No such
    socket can be made where MPTCP is disabled in the calling thread's network
    namespace: that says nothing about the kernel, so nothing is cached then.
    """
    if what in _known:
        return _known[what]
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM, _IPPROTO_MPTCP)
    except OSError:
        return None
    with probe:
        sol = _core.info_errno(probe.fileno()) == 0
        _known["sol_mptcp"] = sol
        _known["full_info"] = sol and _core.full_info_errno(probe.fileno()) == 0
    return _known[what]


def _reset() -> None:
    """Forget the probe (tests)."""
    _known.clear()


# --------------------------------------------------------------------------------
# The hook the core raises through
# --------------------------------------------------------------------------------
def _socket_kind(fd: int) -> str:
    """Why an fd is not an MPTCP connection, in words (only on the error path)."""
    try:
        proto = _core.sockopt_int(fd, socket.SOL_SOCKET, _SO_PROTOCOL)
        kind = _core.sockopt_int(fd, socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError:
        return "not a socket"
    if kind != socket.SOCK_STREAM:
        return "not a stream socket"
    if proto == _IPPROTO_MPTCP:
        return "mptcp"
    if proto == socket.IPPROTO_TCP:
        return "a plain TCP socket (create it with socket(..., IPPROTO_MPTCP) = 262)"
    return f"a socket of protocol {proto}, not MPTCP"


def _not_mptcp(err: int, call: str, fd: int) -> MPTCPError:
    kind = _socket_kind(fd)
    if kind == "not a socket":
        return MPTCPError(err, f"{call}: fd {fd} is not a socket")
    if kind != "mptcp":
        return NotMPTCPError(err, f"{call}: fd {fd} is {kind}")
    if _core.info_errno(fd) == 0:
        # MPTCP_INFO works on this very socket: the option that failed is missing.
        return KernelTooOldError(
            err, f"{call}: subflow ids need MPTCP_FULL_INFO (Linux 6.5 or newer)",
            min_version=FULL_INFO_MIN)
    if kernel_has("sol_mptcp") is False:
        return KernelTooOldError(
            err, f"{call}: this kernel has no MPTCP getsockopt (SOL_MPTCP); Linux 5.16 or "
            "newer needed", min_version=SOL_MPTCP_MIN)
    return NotMPTCPError(err, f"{call}: fd {fd} is an MPTCP socket whose connection fell "
                              "back to plain TCP")


def core_error(err: int, call: str, fd: int) -> MPTCPError:
    """The errno hook the core raises through: name the call and what to do."""
    if err in (_errno.EOPNOTSUPP, _errno.ENOPROTOOPT):
        return _not_mptcp(err, call, fd)
    if err == _errno.EBADF:
        return MPTCPError(err, f"{call}: fd {fd} is not an open file descriptor (closed socket?)")
    if err == _errno.ENOTSOCK:
        return MPTCPError(err, f"{call}: fd {fd} is not a socket")
    return error_from_errno(err, f"{call} on fd {fd}")


_core._register_hook(core_error)


# --------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------
info = _core.info  # MPTCP_INFO (5.16), one getsockopt


def subflows_legacy(sock: Any) -> List[SubflowInfo]:
    """Live subflows through MPTCP_TCPINFO + MPTCP_SUBFLOW_ADDRS (5.16); ids are None."""
    return _core.subflows_legacy(_core.fileno(sock))


def subflows(sock: Any) -> List[SubflowInfo]:
    """FULL_INFO where the kernel has it (6.5), else the 5.16 pair of options."""
    try:
        return _core.subflows(sock)
    except KernelTooOldError as err:
        if err.min_version != FULL_INFO_MIN:
            raise
    return subflows_legacy(sock)


def is_mptcp(fd: int) -> bool:
    """True for a connected MPTCP connection that has not fallen back."""
    if _core.sockopt_int(fd, socket.SOL_SOCKET, _SO_PROTOCOL) != _IPPROTO_MPTCP:
        return False
    try:
        if _core.info(fd, "is_mptcp").fallback:
            return False
        peer(fd, "is_mptcp")
    except NotMPTCPError:
        return False  # fell back before MPTCP_INFO could answer, or not connected
    return True


def find_subflow(fd: int, sub_id: int, call: str) -> SubflowInfo:
    """The live subflow ``sub_id`` (one FULL_INFO snapshot), or SubflowNotFoundError."""
    return subflow_and_token(fd, sub_id, call)[0]


def subflow_and_token(fd: int, sub_id: int, call: str) -> Tuple[SubflowInfo, int]:
    """The live subflow ``sub_id`` and the connection's token, from one FULL_INFO
    snapshot (6.5); SubflowNotFoundError if no live subflow has that id."""
    conn, subs = _core.snapshot(fd, call)
    for rec in subs:
        if rec.id == sub_id:
            return rec, _checked_token(conn.token, fd, call)
    raise SubflowNotFoundError(
        _errno.ENOENT,
        f"{call}: no live subflow with id {sub_id} on fd {fd} "
        f"(live ids: {sorted(r.id or 0 for r in subs)})",
    )


def token(fd: int, call: str) -> int:
    """The connection's local token (MPTCP_INFO), or NotMPTCPError."""
    return _checked_token(_core.info(fd, call).token, fd, call)


def _checked_token(tok: Optional[int], fd: int, call: str) -> int:
    if not tok:
        raise NotMPTCPError(
            _errno.ENOTCONN, f"{call}: fd {fd} has no MPTCP token: not connected or not MPTCP"
        )
    return int(tok)


def token_of(conn: Any, call: str, name: str = "conn") -> int:
    """The token of a connection given (as the argument ``name``) as an int token or
    as a socket."""
    tok, fd = _args.conn(conn, name)
    if tok is not None:
        return tok
    assert fd is not None
    return token(fd, call)


def initial_local(token: int, fd: Optional[int], call: str) -> Optional[Host]:
    """The connection's initial local address, the one whose MPTCP address id is 0
    (RFC 8684): the MPTCP socket's own address (getsockname) when its ``fd`` is
    known, else that of the MPTCP socket with ``token`` in the calling thread's
    network namespace (sock_diag); None when neither can tell."""
    found: Optional[Tuple[str, int]] = None
    if fd is not None:
        found = _core.sock_name(fd, call)
    else:
        try:
            found = next((c.local for c in _core.diag_connections(False) if c.token == token), None)
        except OSError:
            return None
    if found is None:
        return None
    return unmap_v4(parse_ip(found[0]))


def peer(fd: int, call: str) -> Tuple[str, int]:
    """The socket's peer ``(host, port)``, or NotMPTCPError when it has none."""
    try:
        found = _core.peer_name(fd, call)
    except NotMPTCPError as err:  # ENOTCONN
        raise NotMPTCPError(err.errno, f"{call}: fd {fd} is not connected") from None
    if found is None:
        raise NotMPTCPError(_errno.EAFNOSUPPORT,
                            f"{call}: the peer of fd {fd} is not an IPv4/IPv6 address")
    return found


def subflow_flags(
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
    lhost, lport = _args.address_pair("local", local)
    rhost, rport = _args.address_pair("remote", remote)
    if lhost.family != family or rhost.family != family:
        raise ValueError(f"{local!r} -> {remote!r} are not addresses of family {family}")
    src, dst = lhost.packed, rhost.packed
    try:
        return _core.diag_subflow(family, src, lport, dst, rport)
    except OSError as err:
        raise error_from_errno(err.errno or _errno.EIO,
                               "could not look up the subflow's flags (sock_diag)") from err


def subflow_prio(local: Any, remote: Any) -> Optional[int]:
    """1 if our side marked the subflow backup (BKUP_LOC), 0 if not, None if unknown."""
    if local is None or remote is None:
        return None
    family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
    found = subflow_flags(family, local, remote)
    if found is None:
        return None
    return 1 if found[0] & SubflowFlags.BKUP_LOC else 0


def get_sub_tuple(fd: int, sub_id: int) -> Subflow:
    """Subflow ``sub_id``: addresses from FULL_INFO, ``prio`` from sock_diag (6.5)."""
    rec = find_subflow(fd, sub_id, "get_sub_tuple")
    return _core.make_subflow(rec.id, rec.local, rec.remote, subflow_prio(rec.local, rec.remote),
                              None)


def require_full_info(call: str) -> None:
    raise KernelTooOldError(
        _errno.EOPNOTSUPP, f"{call}: subflow ids need MPTCP_FULL_INFO (Linux 6.5 or newer)",
        min_version=FULL_INFO_MIN)


