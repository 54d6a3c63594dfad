"""The records the library returns, and the kernel's flag bits as enums.

Records are immutable tuple subclasses. On the hot paths the compiled core fills
them directly (see ``_mptcp._register``), so they must stay plain NamedTuples whose
field order matches the core's ``*_FIELDS`` (checked at import).
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Optional, Tuple

__all__ = ["Address", "MPTCPInfo", "SubflowInfo", "Subflow", "SubflowStatus", "TCPState"]

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
