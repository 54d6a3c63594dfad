"""mptcp: see and steer the subflows of Multipath TCP connections on Linux.

The six calls of the draft MPTCP socket API (``get_sub_ids``, ``get_sub_tuple``,
``open_sub``, ``close_sub``, ``get_sub_sockopt_int``, ``set_sub_sockopt_int``) work
on the upstream Linux kernel; a second backend speaks the draft-API research
kernels' options (verified against the project's test double of such a kernel, as
none is available). Beyond them: ``info``, ``subflows``, ``Poller``, one subflow's
socket options, path manager control, events, a system-wide view and recorded
experiments (upstream kernels).
"""

# The records and errors load with the package (the compiled core fills records
# registered at their import); the calls load on first use (PEP 562), so
# ``import mptcp`` stays cheap and a program (or ``mptcp ls``) pays only for the
# layers it calls: connections() never loads the seed calls' backends. A type
# checker sees the real names.
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

TYPE_CHECKING = False
if TYPE_CHECKING:
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
    from ._events import events
    from ._plot import plot
    from ._recording import Recording, record
    from .diag import connections
    from .pm import PathManager

from ._version import __version__

_LAZY = {
    **dict.fromkeys(
        ["Poller", "backend", "close_sub", "get_sub_ids", "get_sub_sockopt",
         "get_sub_sockopt_int", "get_sub_tuple", "get_subflow_sockopt", "info", "is_mptcp",
         "open_sub", "set_sub_prio", "set_sub_sockopt", "set_sub_sockopt_int",
         "set_subflow_sockopt", "subflow", "subflow_options", "subflows",
         "unload_sockopt_program"], "_api"),
    "PathManager": "pm",
    "connections": "diag",
    "events": "_events",
    "record": "_recording",
    "Recording": "_recording",
    "plot": "_plot",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mptcp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
