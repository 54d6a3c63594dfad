"""The upstream Linux kernel's backend: ``read`` (SOL_MPTCP getsockopts and the shared
lookups), ``control`` (the userspace path manager's subflow commands) and ``sockopt``
(one subflow's socket options)."""

from __future__ import annotations

import os
from typing import Any

from ... import _mptcp as _core
from ..base import Backend
from . import read

__all__ = ["bind"]


def _needs_full_info(call: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        read.require_full_info(call)

    return refuse


def _poller_check(full_info: bool) -> Any:
    def check(call: str) -> None:
        if not full_info:
            read.require_full_info(call)

    return check


def bind() -> Backend:
    """The upstream functions for this kernel (MPTCP_NO_FULL_INFO=1 forces the pre-6.5
    read path, for testing it on new kernels)."""
    from . import control, sockopt

    if os.environ.get("MPTCP_NO_FULL_INFO") == "1":
        full_info = False
    else:
        full_info = read.kernel_has("full_info")  # type: ignore[assignment]
    calls: dict[str, Any] = dict(
        get_sub_ids=_core.sub_ids,
        get_sub_tuple=read.get_sub_tuple,
        open_sub=control.open_sub,
        close_sub=control.close_sub,
        set_sub_prio=control.set_sub_prio,
        get_sub_sockopt_int=sockopt.get_sub_sockopt_int,
        set_sub_sockopt_int=sockopt.set_sub_sockopt_int,
        info=read.info,
        is_mptcp=read.is_mptcp,
        subflows=read.subflows,
        require_poller=_poller_check(full_info is not False),
    )
    if full_info is True:
        calls["subflows"] = _core.subflows  # the kernel has FULL_INFO: no fallback needed
    elif full_info is False:
        calls["subflows"] = read.subflows_legacy
        for call in ("get_sub_ids", "get_sub_tuple", "close_sub", "set_sub_prio",
                     "get_sub_sockopt_int"):
            calls[call] = _needs_full_info(call)
    # Unknown (no MPTCP socket could be made here): the error path finds out, so the
    # selection is provisional and made again on the next call.
    return Backend("upstream", final=full_info is not None, **calls)

