"""mptcp: see and steer the subflows of Multipath TCP connections on Linux.

The six calls of the draft MPTCP socket API (``get_sub_ids``, ``get_sub_tuple``,
``open_sub``, ``close_sub``, ``get_sub_sockopt_int``, ``set_sub_sockopt_int``) work
on the upstream Linux kernel and, through a second backend, on the draft-API
research kernels. Beyond them: ``info``, ``subflows``, ``Poller``, path manager
control, events and a system-wide view (upstream kernels).
"""

from typing import Any

from . import _backend
from . import _mptcp as _core
from ._api import (
    Poller,
    backend,
    close_sub,
    get_sub_ids,
    get_sub_sockopt_int,
    get_sub_tuple,
    info,
    is_mptcp,
    open_sub,
    set_sub_prio,
    set_sub_sockopt_int,
    subflow,
    subflows,
)
from ._errors import (
    EventsLostError,
    KernelTooOldError,
    MPTCPError,
    MPTCPPermissionError,
    MPTCPTimeoutError,
    NotMPTCPError,
    PathManagerError,
    SubflowNotFoundError,
    SubflowOpenError,
    UnsupportedOperationError,
)
from ._types import MPTCPInfo, Subflow, SubflowInfo, SubflowStatus, TCPState
from ._version import __version__

for _cls, _names in ((MPTCPInfo, _core.MPTCP_INFO_FIELDS), (SubflowInfo, _core.SUBFLOW_INFO_FIELDS),
                     (Subflow, _core.SUBFLOW_FIELDS)):
    if _cls._fields != _names:  # the core fills records by position
        raise ImportError(f"mptcp.{_cls.__name__} fields differ from the compiled core's")
_core._register(MPTCPInfo, SubflowInfo, Subflow, SubflowStatus, _backend.core_error)

# Heavier pieces load on first use.
_LAZY = {
    "PathManager": ("pm", "PathManager"),
    "Endpoint": ("pm", "Endpoint"),
    "EndpointFlags": ("pm", "EndpointFlags"),
    "Limits": ("pm", "Limits"),
    "connections": ("diag", "connections"),
    "Connection": ("diag", "Connection"),
    "DiagSubflow": ("diag", "DiagSubflow"),
    "SubflowFlags": ("diag", "SubflowFlags"),
    "events": ("_events", "events"),
    "Event": ("_events", "Event"),
    "EventType": ("_events", "EventType"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mptcp' has no attribute {name!r}")


__all__ = [
    "__version__",
    # the seed calls
    "get_sub_ids", "get_sub_tuple", "open_sub", "close_sub", "get_sub_sockopt_int",
    "set_sub_sockopt_int", "Subflow", "SubflowStatus",
    # beyond the seed
    "set_sub_prio", "subflow", "info", "is_mptcp", "subflows", "Poller", "backend",
    "MPTCPInfo", "SubflowInfo", "TCPState", "PathManager", "Endpoint", "EndpointFlags",
    "Limits", "connections", "Connection", "DiagSubflow", "SubflowFlags", "events", "Event",
    "EventType",
    # errors
    "MPTCPError", "NotMPTCPError", "SubflowNotFoundError", "SubflowOpenError",
    "MPTCPTimeoutError", "KernelTooOldError", "UnsupportedOperationError",
    "PathManagerError", "MPTCPPermissionError", "EventsLostError",
]
