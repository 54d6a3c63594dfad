"""Backends: which kernel socket API the seed calls use, chosen once per process.

``upstream/`` drives mainline Linux (SOL_MPTCP getsockopts, the ``mptcp_pm`` path
manager); ``draft`` the draft-API research kernels. :func:`select` probes the kernel
(or reads ``MPTCP_BACKEND``) and returns one :class:`~.base.Backend`, a fixed set of
functions the public layer binds; nothing above asks which backend it has.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
from typing import Any, Optional

from .. import _mptcp as _core
from .base import Backend, refusal, upstream_only
from .upstream import bind as _bind_upstream

__all__ = ["Backend", "select", "backend", "reset"]

_selected: Optional[Backend] = None
_kernel_api: Optional[str] = None  # what the probe found, whatever MPTCP_BACKEND forces


def _probe_kernel_api() -> str:
    """'draft' if a plain TCP socket answers the draft GET_SUB_IDS with EOPNOTSUPP.

    Mainline answers ENOPROTOOPT (unknown option). An MPTCP socket must never be the
    probe: mainline answers EOPNOTSUPP for it too. Cached: the kernel does not change.
    """
    global _kernel_api
    if _kernel_api is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
            err = _core.sockopt_errno(probe.fileno(), socket.IPPROTO_TCP,
                                      _core.abi.MPTCP_GET_SUB_IDS)
        _kernel_api = "draft" if err == _errno.EOPNOTSUPP else "upstream"
    return _kernel_api


def _forced() -> str:
    forced = os.environ.get("MPTCP_BACKEND", "").strip().lower()
    if forced not in ("", "upstream", "draft"):
        raise ValueError(f"MPTCP_BACKEND must be 'upstream' or 'draft', not {forced!r}")
    return forced


def _draft_missing() -> Backend:
    """MPTCP_BACKEND=draft on a kernel without the draft API: every seed call says so."""

    def missing(call: str) -> Any:
        return refusal(
            f"{call}: MPTCP_BACKEND=draft, but this kernel has no draft MPTCP socket API "
            "(a plain TCP socket answers ENOPROTOOPT for MPTCP_GET_SUB_IDS); "
            "unset MPTCP_BACKEND to use the upstream kernel's interfaces"
        )

    seed = ("get_sub_ids", "get_sub_tuple", "open_sub", "close_sub", "get_sub_sockopt_int",
            "set_sub_sockopt_int", "get_sub_sockopt", "set_sub_sockopt")
    others = ("set_sub_prio", "info", "is_mptcp", "subflows", "require_poller",
              "get_subflow_sockopt", "set_subflow_sockopt", "subflow_options")
    calls: dict[str, Any] = {c: missing(c) for c in seed}
    calls.update({c: upstream_only("Poller" if c == "require_poller" else c) for c in others})
    return Backend("draft", sub_id_max=255, unload_sockopt=lambda: None, **calls)


def select() -> Backend:
    """The backend for this process: ``MPTCP_BACKEND=upstream|draft`` forces one (an
    invalid value raises ``ValueError``, on every call), else the kernel is probed.
    Cached once the choice is final."""
    global _selected
    if _selected is not None:
        return _selected
    name = _forced() or _probe_kernel_api()
    if name == "draft":
        if _probe_kernel_api() == "draft":
            from . import draft

            chosen = draft.bind()
        else:
            chosen = _draft_missing()
    else:
        chosen = _bind_upstream()
    if chosen.final:
        _selected = chosen
    return chosen


def backend() -> str:
    """``"upstream"`` or ``"draft"``: which kernel socket API the seed calls use.

    Decided once per process by probing the kernel; ``MPTCP_BACKEND=upstream|draft``
    forces one. Forcing ``draft`` on a kernel without the draft API makes every
    seed call raise :class:`~mptcp.UnsupportedOperationError`.
    """
    return select().name


def reset() -> None:
    """Forget the selection and the probes (tests change the environment)."""
    global _selected, _kernel_api
    from .upstream import read

    _selected = None
    _kernel_api = None
    read._reset()
