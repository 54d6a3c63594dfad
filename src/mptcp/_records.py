"""Every record the library returns, and the kernel's flag bits as enums.

Records are immutable tuple subclasses, each documented with the call that returns
it. The compiled core fills the hot ones directly (see ``_mptcp._register_records``),
so they stay plain NamedTuples whose field order matches the core's ``*_FIELDS``;
this module checks that and registers them when it is imported.

Annotations are evaluated (no ``from __future__ import annotations``): NamedTuple
turns postponed ones into ForwardRefs, compiling each string at import, a third of
this module's import time. Every type a record names is defined above it.
"""

import enum
from typing import List, NamedTuple, Optional, Tuple, Union

from . import _mptcp as _core

__all__ = [
    "Address", "MPTCPInfo", "SubflowInfo", "Subflow", "SubflowStatus", "TCPState",
    "SubflowFlags", "DiagSubflow", "Connection", "EventType", "Event", "EndpointFlags",
    "Endpoint", "Limits", "SubflowOption", "Sample", "RecordedEvent", "Progress",
]

Address = Tuple[str, int]


class SubflowStatus(enum.IntFlag):
    """Draft-API kernels' subflow status bits (the ones the fork really sets)."""

    FULLY_ESTABLISHED = 0x02
    ATTACHED = 0x04
    PRE_ESTABLISHED = 0x10

    __module__ = "mptcp"


class TCPState(enum.IntEnum):
    """TCP states as ``tcp_info.tcpi_state`` reports them."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12

    __module__ = "mptcp"


def state_name(value: Optional[int], unknown: str = "") -> str:
    """A TCP state's name as ``ss`` prints it; the number for one TCPState does not
    know, ``unknown`` for None."""
    if value is None:
        return unknown
    try:
        return TCPState(value).name
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------------
# The read path: mptcp.info, mptcp.subflows, mptcp.get_sub_tuple / open_sub
# --------------------------------------------------------------------------------
class MPTCPInfo(NamedTuple):
    """Connection-level ``struct mptcp_info``, returned by :func:`mptcp.info`.

    Fields the running kernel did not return are ``None`` (``retransmits`` and the
    ``bytes_*`` counters need 6.5, ``subflows_total`` 6.8, ``last_*`` 6.10). Note
    ``subflows`` counts the *extra* subflows, ``subflows_total`` all of them.
    ``endp_laminar_max``/``endp_fullmesh_max`` read 0 on 6.10-6.17 (reserved bytes).
    """

    subflows: Optional[int]
    add_addr_signal: Optional[int]
    add_addr_accepted: Optional[int]
    subflows_max: Optional[int]
    add_addr_signal_max: Optional[int]
    add_addr_accepted_max: Optional[int]
    flags: Optional[int]
    token: Optional[int]
    write_seq: Optional[int]
    snd_una: Optional[int]
    rcv_nxt: Optional[int]
    local_addr_used: Optional[int]
    local_addr_max: Optional[int]
    csum_enabled: Optional[int]
    retransmits: Optional[int]
    bytes_retrans: Optional[int]
    bytes_sent: Optional[int]
    bytes_received: Optional[int]
    bytes_acked: Optional[int]
    subflows_total: Optional[int]
    endp_laminar_max: Optional[int]
    endp_fullmesh_max: Optional[int]
    last_data_sent: Optional[int]
    last_data_recv: Optional[int]
    last_ack_recv: Optional[int]
    fallback: Optional[bool]


MPTCPInfo.__module__ = "mptcp"


class SubflowInfo(NamedTuple):
    """One subflow with its ``tcp_info`` counters, returned by :func:`mptcp.subflows`.

    ``id`` is the kernel's subflow id (``None`` on kernels before 6.5, which have no
    ids); ``state`` is a :class:`TCPState` value; ``backup`` is ``None`` unless it
    was looked up (``mptcp.connections()`` does). Times ending in ``_us`` are
    microseconds, ``_ms`` milliseconds; fields a kernel lacks are ``None``.
    """

    id: Optional[int]
    local: Optional[Address]
    remote: Optional[Address]
    state: Optional[int]
    backup: Optional[bool]
    ca_state: Optional[int]
    rto_us: Optional[int]
    snd_mss: Optional[int]
    rcv_mss: Optional[int]
    unacked: Optional[int]
    lost: Optional[int]
    retrans: Optional[int]
    total_retrans: Optional[int]
    rtt_us: Optional[int]
    rttvar_us: Optional[int]
    min_rtt_us: Optional[int]
    snd_cwnd: Optional[int]
    snd_ssthresh: Optional[int]
    pmtu: Optional[int]
    pacing_rate: Optional[int]
    delivery_rate: Optional[int]
    bytes_acked: Optional[int]
    bytes_received: Optional[int]
    bytes_sent: Optional[int]
    bytes_retrans: Optional[int]
    segs_out: Optional[int]
    segs_in: Optional[int]
    notsent_bytes: Optional[int]
    snd_wnd: Optional[int]
    rcv_wnd: Optional[int]
    last_data_sent_ms: Optional[int]
    last_data_recv_ms: Optional[int]
    busy_time_us: Optional[int]
    delivered: Optional[int]


SubflowInfo.__module__ = "mptcp"


class Subflow(NamedTuple):
    """A subflow as the draft socket API describes it (``get_sub_tuple``, ``open_sub``).

    ``prio`` is 1 for a backup (low priority) subflow, 0 for a normal one and
    ``None`` where the kernel cannot say; ``backup`` is derived from it. ``status``
    carries the draft kernel's :class:`SubflowStatus` bits (``None`` upstream).
    """

    id: Optional[int]
    local: Address
    remote: Address
    prio: Optional[int] = None
    backup: Optional[bool] = None
    status: Optional[SubflowStatus] = None


Subflow.__module__ = "mptcp"


# --------------------------------------------------------------------------------
# The system-wide view: mptcp.connections
# --------------------------------------------------------------------------------
class SubflowFlags(enum.IntFlag):
    """A subflow's MPTCP state bits as sock_diag reports them (``MPTCP_SUBFLOW_FLAG_*``).

    ``ss -tiM`` prints them as the letters M m J j B b e c v, in this order.
    """

    MCAP_REM = 1 << 0
    MCAP_LOC = 1 << 1
    JOIN_REM = 1 << 2
    JOIN_LOC = 1 << 3
    BKUP_REM = 1 << 4
    BKUP_LOC = 1 << 5
    FULLY_ESTABLISHED = 1 << 6
    CONNECTED = 1 << 7
    MAPVALID = 1 << 8

    __module__ = "mptcp"


class DiagSubflow(NamedTuple):
    """What sock_diag says about one subflow beyond its ``tcp_info``.

    ``Connection.subflow_diag[i]`` describes the same subflow as
    ``Connection.subflows[i]``. ``token`` is the local token (the connection's),
    ``token_rem`` the peer's; ``loc_id``/``rem_id`` are the MPTCP *address* ids
    (the ones path-manager events carry, not the kernel's subflow id); ``if_index``
    is the device the subflow is bound to (0 = none). The sequence fields
    (``relwrite_seq`` .. ``map_datalen``) need CAP_NET_ADMIN in the namespace on
    kernels that withhold them, and are ``None`` otherwise.
    """

    local: Optional[Address]
    remote: Optional[Address]
    token: Optional[int]
    token_rem: Optional[int]
    loc_id: Optional[int]
    rem_id: Optional[int]
    flags: Optional[SubflowFlags]
    if_index: int
    relwrite_seq: Optional[int]
    map_seq: Optional[int]
    map_sfseq: Optional[int]
    ssn_offset: Optional[int]
    map_datalen: Optional[int]


DiagSubflow.__module__ = "mptcp"


class Connection(NamedTuple):
    """One MPTCP connection (or listener) as :func:`mptcp.connections` returns it.

    ``token`` is the local connection token (what the path manager and events
    use; ``0`` for a listener); ``local``/``remote`` are the MPTCP socket's
    addresses; ``state`` a :class:`TCPState`; ``info`` the connection's
    :class:`MPTCPInfo`. ``subflows`` lists its subflows as :class:`SubflowInfo`
    records (``id`` is ``None``: sock_diag has no subflow ids; ``backup`` is this
    side's backup flag, BKUP_LOC), and ``subflow_diag`` the matching
    :class:`DiagSubflow` records, in the same order. ``uid`` and ``inode`` are the
    owner and socket inode, as ``ss -e`` shows them.
    """

    token: Optional[int]
    local: Optional[Address]
    remote: Optional[Address]
    state: int
    info: Optional[MPTCPInfo]
    subflows: List[SubflowInfo]
    subflow_diag: List[DiagSubflow]
    family: int
    if_index: int
    uid: int
    inode: int


Connection.__module__ = "mptcp"


# --------------------------------------------------------------------------------
# Events: mptcp.events
# --------------------------------------------------------------------------------
class EventType(enum.IntEnum):
    """``enum mptcp_event_type`` of ``<linux/mptcp_pm.h>``."""

    __module__ = "mptcp"

    CREATED = 1
    ESTABLISHED = 2
    CLOSED = 3
    ANNOUNCED = 6
    REMOVED = 7
    SUB_ESTABLISHED = 10
    SUB_CLOSED = 11
    SUB_PRIORITY = 13
    LISTENER_CREATED = 15
    LISTENER_CLOSED = 16


class Event(NamedTuple):
    """One MPTCP path-manager event (immutable), as :func:`mptcp.events` yields it.

    Every field but ``type`` is ``None`` when the event does not carry it:

    ``type``
        An :class:`EventType`, or a plain ``int`` for a type this library does
        not know (such events are still delivered).
    ``token``
        The local connection token (``MPTCPInfo.token``); ``None`` for
        ``LISTENER_*`` events.
    ``local``, ``remote``
        ``(host, port)``: the connection's or subflow's local and remote
        address (``ANNOUNCED`` has only ``remote``, ``LISTENER_*`` only
        ``local``). The port is ``0`` when the kernel sent an address without
        a port (an ``ANNOUNCED`` address without a port means "the
        connection's port").
    ``loc_id``, ``rem_id``
        Address ids (not subflow ids).
    ``backup``
        ``bool``: the subflow's backup flag (``SUB_*``; for ``SUB_PRIORITY``
        the new value the peer asked for).
    ``error``
        The subflow's socket error (``SUB_CLOSED``/``SUB_ESTABLISHED``), an errno.
    ``flags``
        Raw ``MPTCP_ATTR_FLAGS`` (``MPTCP_PM_EV_FLAG_*``).
    ``if_index``
        The interface a subflow is bound to.
    ``server_side``
        ``bool`` for ``CREATED``/``ESTABLISHED`` (from the ``SERVER_SIDE``
        attribute or the flags' server-side bit; the kernel sends neither on the
        client side); ``None`` for other types.
    ``reset_reason``, ``reset_flags``
        MP_TCPRST reason and flags of a reset subflow.
    ``timeout``
        ``MPTCP_ATTR_TIMEOUT`` where the kernel sends it.
    ``family``
        ``MPTCP_ATTR_FAMILY``: the address family of the event's addresses
        (``socket.AF_INET`` or ``AF_INET6``; ``CLOSED`` and ``REMOVED`` carry none).
    """

    type: Union[EventType, int]
    token: Optional[int] = None
    local: Optional[Address] = None
    remote: Optional[Address] = None
    loc_id: Optional[int] = None
    rem_id: Optional[int] = None
    backup: Optional[bool] = None
    error: Optional[int] = None
    flags: Optional[int] = None
    if_index: Optional[int] = None
    server_side: Optional[bool] = None
    reset_reason: Optional[int] = None
    reset_flags: Optional[int] = None
    timeout: Optional[int] = None
    family: Optional[int] = None


Event.__module__ = "mptcp"


# --------------------------------------------------------------------------------
# The path manager: mptcp.PathManager
# --------------------------------------------------------------------------------
class EndpointFlags(enum.IntFlag):
    """Flags of an endpoint (``MPTCP_PM_ADDR_FLAG_*``)."""

    NONE = 0
    SIGNAL = _core.abi.PM_ADDR_FLAG_SIGNAL
    SUBFLOW = _core.abi.PM_ADDR_FLAG_SUBFLOW
    BACKUP = _core.abi.PM_ADDR_FLAG_BACKUP
    FULLMESH = _core.abi.PM_ADDR_FLAG_FULLMESH
    IMPLICIT = _core.abi.PM_ADDR_FLAG_IMPLICIT
    LAMINAR = _core.abi.PM_ADDR_FLAG_LAMINAR


class Endpoint(NamedTuple):
    """An in-kernel path manager endpoint, as :meth:`mptcp.PathManager.endpoints`
    returns it (also the connection's addresses of ``local_addresses``).

    ``port`` is None when the endpoint has none; ``if_index``/``dev`` are None when
    the endpoint is not bound to a device.
    """

    id: int
    addr: str
    port: Optional[int]
    flags: EndpointFlags
    if_index: Optional[int]
    dev: Optional[str]

    @property
    def backup(self) -> bool:
        return bool(self.flags & EndpointFlags.BACKUP)


class Limits(NamedTuple):
    """Limits of the in-kernel path manager, as :meth:`mptcp.PathManager.limits`
    returns them."""

    subflows: int
    add_addr_accepted: int


# --------------------------------------------------------------------------------
# One subflow's socket options: mptcp.subflow_options
# --------------------------------------------------------------------------------
class SubflowOption(NamedTuple):
    """A socket option one subflow can have on its own, as :func:`mptcp.subflow_options`
    lists it (the upstream kernel, through BPF).

    ``name`` is what ``mptcp sockopt`` takes (``"mark"``), ``constant`` the C name
    (``"SO_MARK"``); ``kind`` is ``"int"`` or ``"bytes"`` (a name such as a congestion
    control); ``get``/``set`` say what the kernel allows on an established subflow;
    ``note`` says where it does not (family, state) or what a value means.
    """

    name: str
    constant: str
    level: int
    optname: int
    kind: str
    get: bool
    set: bool
    note: str


SubflowOption.__module__ = "mptcp"


# --------------------------------------------------------------------------------
# Recordings: mptcp.record
# --------------------------------------------------------------------------------
class Sample(NamedTuple):
    """One subflow in one sample of a :class:`Recording` (one row of the samples CSV).

    ``time`` is seconds since the recording started; ``token`` the connection's
    local token; ``subflow`` the kernel's subflow id, always ``None`` here (sock_diag
    reports none); ``loc_id``/``rem_id`` the path manager's address ids; ``backup``
    this side's backup flag; ``state`` a :class:`mptcp.TCPState` value. The tcp_info
    counters keep the kernel's names except ``cwnd`` (``snd_cwnd``), ``ssthresh``
    (``snd_ssthresh``) and ``retrans`` (``total_retrans``, segments retransmitted
    over the subflow's life). ``conn_*`` are the connection's ``mptcp_info``
    counters, the same on every row of a connection. ``None`` where the kernel did
    not report a value.
    """

    time: float
    token: Optional[int]
    subflow: Optional[int]
    local: Optional[Address]
    remote: Optional[Address]
    loc_id: Optional[int]
    rem_id: Optional[int]
    backup: Optional[bool]
    state: Optional[int]
    bytes_acked: Optional[int]
    bytes_received: Optional[int]
    bytes_sent: Optional[int]
    bytes_retrans: Optional[int]
    rtt_us: Optional[int]
    rttvar_us: Optional[int]
    min_rtt_us: Optional[int]
    cwnd: Optional[int]
    ssthresh: Optional[int]
    retrans: Optional[int]
    pacing_rate: Optional[int]
    delivery_rate: Optional[int]
    conn_subflows: Optional[int]
    conn_bytes_sent: Optional[int]
    conn_bytes_received: Optional[int]
    conn_bytes_acked: Optional[int]
    conn_bytes_retrans: Optional[int]
    conn_retransmits: Optional[int]


class RecordedEvent(NamedTuple):
    """A path manager event of a :class:`Recording`: when it was read, and the
    fields of :class:`mptcp.Event` (one row of the events CSV).

    ``time`` is seconds since the recording started, on the samples' clock.
    """

    time: float
    type: Union[EventType, int]
    token: Optional[int] = None
    local: Optional[Address] = None
    remote: Optional[Address] = None
    loc_id: Optional[int] = None
    rem_id: Optional[int] = None
    backup: Optional[bool] = None
    error: Optional[int] = None
    flags: Optional[int] = None
    if_index: Optional[int] = None
    server_side: Optional[bool] = None
    reset_reason: Optional[int] = None
    reset_flags: Optional[int] = None
    timeout: Optional[int] = None
    family: Optional[int] = None


if RecordedEvent._fields[1:] != Event._fields:
    raise ImportError("mptcp.RecordedEvent must carry exactly the fields of mptcp.Event")
Sample.__module__ = RecordedEvent.__module__ = "mptcp"


class Progress(NamedTuple):
    """How far a running :class:`Recording` is (for a progress line)."""

    elapsed: float
    samples: int
    connections: int
    rows: int
    bytes_written: int
    late: int
    skipped: int
    events: int
    events_lost: int
    events_unattributed: int


# The core fills these records by position: their fields must be the core's.
for _cls, _names in ((MPTCPInfo, _core.MPTCP_INFO_FIELDS), (SubflowInfo, _core.SUBFLOW_INFO_FIELDS),
                     (Subflow, _core.SUBFLOW_FIELDS), (Connection, _core.CONNECTION_FIELDS),
                     (DiagSubflow, _core.DIAG_SUBFLOW_FIELDS)):
    if _cls._fields != tuple(_names):
        raise ImportError(f"mptcp.{_cls.__name__} fields differ from the compiled core's")
_core._register_records(MPTCPInfo, SubflowInfo, Subflow, SubflowStatus)
_core._register_diag(Connection, DiagSubflow, SubflowFlags, TCPState)
