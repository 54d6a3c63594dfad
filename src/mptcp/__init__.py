"""mptcp: see and steer the subflows of Multipath TCP connections on Linux.

The six calls of the draft MPTCP socket API (``get_sub_ids``, ``get_sub_tuple``,
``open_sub``, ``close_sub``, ``get_sub_sockopt_int``, ``set_sub_sockopt_int``) work
on the upstream Linux kernel and, through a second backend, on the draft-API
research kernels. Beyond them: ``info``, ``subflows``, ``Poller``, path manager
control, events and a system-wide view (upstream kernels).
"""

from typing import Any

from ._api import (
    Poller,
    backend,
    close_sub,
    get_sub_ids,
    get_sub_sockopt,
    get_sub_sockopt_int,
    get_sub_tuple,
    get_subflow_sockopt,
    info,
    is_mptcp,
    open_sub,
    set_sub_prio,
    set_sub_sockopt,
    set_sub_sockopt_int,
    set_subflow_sockopt,
    subflow,
    subflow_options,
    subflows,
    unload_sockopt_program,
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
    RecordedEvent,
    Sample,
    Subflow,
    SubflowFlags,
    SubflowInfo,
    SubflowOption,
    SubflowStatus,
    TCPState,
)
from ._version import __version__

# The path manager, the system-wide view, events and recordings load on first use.
_LAZY = {
    "PathManager": ("pm", "PathManager"),
    "connections": ("diag", "connections"),
    "events": ("_events", "events"),
    "record": ("_recording", "record"),
    "Recording": ("_recording", "Recording"),
    "plot": ("_plot", "plot"),
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
    "get_sub_sockopt", "set_sub_sockopt", "get_subflow_sockopt", "set_subflow_sockopt",
    "subflow_options", "unload_sockopt_program", "SubflowOption",
    "set_sub_prio", "subflow", "info", "is_mptcp", "subflows", "Poller", "backend",
    "MPTCPInfo", "SubflowInfo", "TCPState", "PathManager", "Endpoint", "EndpointFlags",
    "Limits", "connections", "Connection", "DiagSubflow", "SubflowFlags", "events", "Event",
    "EventType", "record", "Recording", "Sample", "RecordedEvent", "plot",
    # errors
    "MPTCPError", "NotMPTCPError", "SubflowNotFoundError", "SubflowOpenError",
    "MPTCPTimeoutError", "KernelTooOldError", "UnsupportedOperationError",
    "PathManagerError", "MPTCPPermissionError", "EventsLostError",
]
