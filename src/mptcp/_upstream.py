"""The read path on upstream Linux kernels: info, is_mptcp, subflows, get_sub_ids,
get_sub_tuple and Poller, over the SOL_MPTCP socket options."""

from __future__ import annotations

import errno as _errno
import socket
from typing import Any, List, Optional

from . import _backend
from . import _mptcp as _core
from ._errors import NotMPTCPError, SubflowNotFoundError
from ._types import MPTCPInfo, Subflow, SubflowInfo

_BKUP_LOC = 1 << 5


def info(fd: int) -> MPTCPInfo:
    _backend.require_sol_mptcp("info")
    return _core.info(fd)


def is_mptcp(fd: int) -> bool:
    try:
        proto = _core.sockopt_int(fd, socket.SOL_SOCKET, _backend._SO_PROTOCOL)
    except NotMPTCPError:
        return False  # not a socket level we can ask: a pipe, say, is not MPTCP
    if proto != _backend.IPPROTO_MPTCP:
        return False
    _backend.require_sol_mptcp("is_mptcp")
    try:
        if _core.info(fd).fallback:
            return False
    except NotMPTCPError:
        return False  # fell back before MPTCP_INFO could answer
    return _connected(fd)


def _connected(fd: int) -> bool:
    probe = socket.socket(fileno=fd)
    try:
        probe.getpeername()
        return True
    except OSError as err:
        if err.errno == _errno.ENOTCONN:
            return False
        raise
    finally:
        probe.detach()  # the fd stays the caller's


def subflows(fd: int) -> List[SubflowInfo]:
    _backend.require_sol_mptcp("subflows")
    if _backend.has_full_info():
        return _core.subflows(fd)
    return _core.subflows_legacy(fd)


def get_sub_ids(fd: int) -> List[int]:
    _backend.require_full_info("get_sub_ids")
    return _core.sub_ids(fd)


def find_subflow(fd: int, sub_id: int, call: str) -> SubflowInfo:
    _backend.require_full_info(call)
    rec: Optional[SubflowInfo] = _core.find_subflow(fd, sub_id, call)
    if rec is None:
        raise SubflowNotFoundError(
            _errno.ENOENT,
            f"{call}: no live subflow with id {sub_id} on fd {fd} "
            f"(live ids: {_core.sub_ids(fd)})",
        )
    return rec


def subflow_prio(local: Any, remote: Any) -> Optional[int]:
    """1 if our side marked the subflow backup (BKUP_LOC), 0 if not, None if unknown.

    The backup flag of one subflow is only visible through sock_diag (Linux 5.7).
    """
    from .diag import _subflow_flags

    if local is None or remote is None:
        return None
    family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
    found = _subflow_flags(family, local, remote)
    if found is None:
        return None
    return 1 if found[0] & _BKUP_LOC else 0


def get_sub_tuple(fd: int, sub_id: int) -> Subflow:
    rec = find_subflow(fd, sub_id, "get_sub_tuple")
    prio = subflow_prio(rec.local, rec.remote)
    return _core.make_subflow(rec.id, rec.local, rec.remote, prio, None)
