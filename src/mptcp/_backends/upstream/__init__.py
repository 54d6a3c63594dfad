"""The upstream Linux kernel's backend: ``read`` (SOL_MPTCP getsockopts and the shared
lookups), ``control`` (the userspace path manager's subflow commands) and ``sockopt``
(one subflow's socket options)."""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable

from ... import _mptcp as _core
from ..base import Backend
from . import read

__all__ = ["bind"]


def _needs_full_info(call: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        read.require_full_info(call)

    return refuse


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``module.name``, imported on its first call: the read path loads neither the
    netlink modules nor the BPF loader."""
    found: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(getattr(importlib.import_module(f".{module}", __name__), name))
        return found[0](*args, **kwargs)

    return call


def _poller_check(full_info: bool) -> Any:
    def check(call: str) -> None:
        if not full_info:
            read.require_full_info(call)

    return check


def bind() -> Backend:
    """The upstream functions for this kernel (MPTCP_NO_FULL_INFO=1 forces the pre-6.5
    read path, for testing it on new kernels)."""
    if os.environ.get("MPTCP_NO_FULL_INFO") == "1":
        full_info = False
    else:
        full_info = read.kernel_has("full_info")  # type: ignore[assignment]
    calls: dict[str, Any] = dict(
        get_sub_ids=_core.sub_ids,
        get_sub_tuple=read.get_sub_tuple,
        open_sub=_lazy("control", "open_sub"),
        close_sub=_lazy("control", "close_sub"),
        set_sub_prio=_lazy("control", "set_sub_prio"),
        get_sub_sockopt_int=_lazy("sockopt", "get_sub_sockopt_int"),
        set_sub_sockopt_int=_lazy("sockopt", "set_sub_sockopt_int"),
        get_sub_sockopt=_lazy("sockopt", "get_sub_sockopt"),
        set_sub_sockopt=_lazy("sockopt", "set_sub_sockopt"),
        get_subflow_sockopt=_lazy("sockopt", "get_subflow_sockopt"),
        set_subflow_sockopt=_lazy("sockopt", "set_subflow_sockopt"),
        unload_sockopt=_core.bpf_unload,
        subflow_options=_lazy("sockopt", "options"),
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
                     "get_sub_sockopt_int", "set_sub_sockopt_int", "get_sub_sockopt",
                     "set_sub_sockopt"):
            calls[call] = _needs_full_info(call)
    # Unknown (no MPTCP socket could be made here): the error path finds out, so the
    # selection is provisional and made again on the next call.
    return Backend("upstream", final=full_info is not None, **calls)

