"""mptcp: see and steer the subflows of Multipath TCP connections on Linux.

The six calls of the draft MPTCP socket API (``get_sub_ids``, ``get_sub_tuple``,
``open_sub``, ``close_sub``, ``get_sub_sockopt_int``, ``set_sub_sockopt_int``) work
on the upstream Linux kernel; a second backend speaks the draft-API research
kernels' options (verified against the project's test double of such a kernel, as
none is available). Beyond them: ``info``, ``subflows``, ``Poller``, path manager
control, events and a system-wide view (upstream kernels).
"""

from typing import Any

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
from ._records import (
    Connection,
    DiagSubflow,
    Endpoint,
    EndpointFlags,
    Event,
    EventType,
    Limits,
    MPTCPInfo,
    Subflow,
    SubflowFlags,
    SubflowInfo,
    SubflowStatus,
    TCPState,
)
from ._version import __version__

# The path manager, the system-wide view and events load on first use.
_LAZY = {
    "PathManager": ("pm", "PathManager"),
    "connections": ("diag", "connections"),
    "events": ("_events", "events"),
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
