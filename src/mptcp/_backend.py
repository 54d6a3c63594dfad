"""fd coercion, the one-time kernel capability probe, backend selection, and the hook
that turns the core's errno into an ``mptcp`` exception."""

from __future__ import annotations

import errno as _errno
import os
import socket
from typing import Optional, Tuple

from . import _mptcp as _core
from ._errors import (
    KernelTooOldError,
    MPTCPError,
    NotMPTCPError,
    UnsupportedOperationError,
    error_from_errno,
)

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
_MPTCP_GET_SUB_IDS = 66
_SO_PROTOCOL = getattr(socket, "SO_PROTOCOL", 38)

__all__ = ["fileno", "backend", "has_full_info", "require_sol_mptcp", "core_error"]


fileno = _core.fileno  # int fd of a socket, a fileno() object or an int; never dup'ed


# --------------------------------------------------------------------------------
# Errors from the core
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
    if proto == IPPROTO_MPTCP:
        return "an MPTCP socket whose connection fell back to plain TCP"
    if proto == socket.IPPROTO_TCP:
        return "a plain TCP socket (create it with socket(..., IPPROTO_MPTCP) = 262)"
    return f"a socket of protocol {proto}, not MPTCP"


def core_error(err: int, call: str, fd: int) -> MPTCPError:
    """The errno hook the core raises through: name the call and what to do."""
    if err in (_errno.EOPNOTSUPP, _errno.ENOPROTOOPT):
        kind = _socket_kind(fd)
        if kind == "not a socket":
            return MPTCPError(err, f"{call}: fd {fd} is not a socket")
        return NotMPTCPError(err, f"{call}: fd {fd} is {kind}")
    if err == _errno.EBADF:
        return MPTCPError(err, f"{call}: fd {fd} is not an open file descriptor (closed socket?)")
    if err == _errno.ENOTSOCK:
        return MPTCPError(err, f"{call}: fd {fd} is not a socket")
    return error_from_errno(err, f"{call} on fd {fd}")


# --------------------------------------------------------------------------------
# One-time probes (cached per process)
# --------------------------------------------------------------------------------
_caps: Optional[Tuple[bool, bool]] = None
_backend: Optional[str] = None
_kernel_api: Optional[str] = None  # what the probe found, whatever MPTCP_BACKEND forces


def _probe_caps() -> Tuple[bool, bool]:
    """(SOL_MPTCP getsockopt works (5.16), MPTCP_FULL_INFO works (6.5)).

    An unconnected IPPROTO_MPTCP socket answers both on kernels that have them.
    Not cached when no MPTCP socket can be made here (MPTCP disabled in this
    network namespace is not a fact about the kernel).
    """
    global _caps
    if _caps is not None:
        return _caps
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    except OSError:
        return (True, os.environ.get("MPTCP_NO_FULL_INFO") != "1")
    with probe:
        sol = _core.info_errno(probe.fileno()) == 0
        full = sol and _core.full_info_errno(probe.fileno()) == 0
    if os.environ.get("MPTCP_NO_FULL_INFO") == "1":
        full = False
    _caps = (sol, full)
    return _caps


def require_sol_mptcp(call: str) -> None:
    if not _probe_caps()[0]:
        raise KernelTooOldError(
            _errno.EOPNOTSUPP,
            f"{call}: this kernel has no MPTCP getsockopt (SOL_MPTCP); Linux 5.16 or newer needed",
            min_version=(5, 16),
        )


def has_full_info() -> bool:
    """Whether MPTCP_FULL_INFO (Linux 6.5) is used; MPTCP_NO_FULL_INFO=1 forces False."""
    return _probe_caps()[1]


def require_full_info(call: str) -> None:
    require_sol_mptcp(call)
    if not _probe_caps()[1]:
        raise KernelTooOldError(
            _errno.EOPNOTSUPP,
            f"{call}: subflow ids need MPTCP_FULL_INFO (Linux 6.5 or newer)",
            min_version=(6, 5),
        )


def _probe_backend() -> str:
    """'draft' if a plain TCP socket answers the draft GET_SUB_IDS with EOPNOTSUPP.

    Mainline answers ENOPROTOOPT (unknown option). An MPTCP socket must never be the
    probe: mainline answers EOPNOTSUPP for it too. Cached: the kernel does not change.
    """
    global _kernel_api
    if _kernel_api is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
            err = _core.sockopt_errno(probe.fileno(), socket.IPPROTO_TCP, _MPTCP_GET_SUB_IDS)
        _kernel_api = "draft" if err == _errno.EOPNOTSUPP else "upstream"
    return _kernel_api


def backend() -> str:
    """``"upstream"`` or ``"draft"``: which kernel socket API the seed calls use.

    Decided once per process by probing the kernel; ``MPTCP_BACKEND=upstream|draft``
    forces one. Forcing ``draft`` on a kernel without the draft API makes every
    seed call raise :class:`UnsupportedOperationError`.
    """
    global _backend
    if _backend is None:
        forced = os.environ.get("MPTCP_BACKEND", "").strip().lower()
        if forced not in ("", "upstream", "draft"):
            raise ValueError(f"MPTCP_BACKEND must be 'upstream' or 'draft', not {forced!r}")
        _backend = forced or _probe_backend()
    return _backend


def require_draft_kernel(call: str) -> None:
    """Forced draft backend on a kernel that lacks the draft API: say so."""
    if _probe_backend() != "draft":
        raise UnsupportedOperationError(
            f"{call}: MPTCP_BACKEND=draft, but this kernel has no draft MPTCP socket API "
            "(a plain TCP socket answers ENOPROTOOPT for MPTCP_GET_SUB_IDS); "
            "unset MPTCP_BACKEND to use the upstream kernel's interfaces"
        )


def upstream_only(call: str) -> None:
    raise UnsupportedOperationError(
        f"{call} needs the upstream Linux MPTCP interfaces; the draft-API kernel "
        "offers only the six seed calls (get_sub_ids, get_sub_tuple, open_sub, "
        "close_sub, get_sub_sockopt_int, set_sub_sockopt_int)"
    )


def _reset() -> None:
    """Forget cached probes (tests change the environment)."""
    global _caps, _backend, _kernel_api
    _caps = None
    _backend = None
    _kernel_api = None
    from . import _api  # its fast-path flags derive from these probes

    _api._fast = False
    _api._draft_module = None
