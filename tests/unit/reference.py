"""Pure-Python reference decoders of kernel bytes (the test oracle for the core).

Written from the uapi layouts with ``struct`` only; nothing here is shared with the
Cython decoders, so agreement between the two means something.
"""

from __future__ import annotations

import socket
import struct
from typing import List, Optional, Tuple

# (name, struct code, offset) of struct mptcp_info, in kernel order.
MPTCP_INFO_LAYOUT = [
    ("subflows", "B", 0), ("add_addr_signal", "B", 1), ("add_addr_accepted", "B", 2),
    ("subflows_max", "B", 3), ("add_addr_signal_max", "B", 4),
    ("add_addr_accepted_max", "B", 5), ("flags", "I", 8), ("token", "I", 12),
    ("write_seq", "Q", 16), ("snd_una", "Q", 24), ("rcv_nxt", "Q", 32),
    ("local_addr_used", "B", 40), ("local_addr_max", "B", 41), ("csum_enabled", "B", 42),
    ("retransmits", "I", 44), ("bytes_retrans", "Q", 48), ("bytes_sent", "Q", 56),
    ("bytes_received", "Q", 64), ("bytes_acked", "Q", 72), ("subflows_total", "B", 80),
    ("endp_laminar_max", "B", 81), ("endp_fullmesh_max", "B", 82),
    ("last_data_sent", "I", 84), ("last_data_recv", "I", 88), ("last_ack_recv", "I", 92),
]
# The lengths mptcp_info had over the kernel's history (field groups appended).
HISTORICAL_INFO_LENGTHS = [0, 1, 6, 8, 16, 40, 41, 42, 43, 44, 48, 80, 81, 83, 84, 96]

# Groups that appeared together: a group is present only when all of it fits.
_INFO_GROUPS = {
    "retransmits": 80, "bytes_retrans": 80, "bytes_sent": 80, "bytes_received": 80,
    "bytes_acked": 80, "endp_laminar_max": 83, "endp_fullmesh_max": 83,
    "last_data_sent": 96, "last_data_recv": 96, "last_ack_recv": 96,
}


def mptcp_info(data: bytes) -> dict:  # type: ignore[type-arg]
    out = {}
    for name, code, off in MPTCP_INFO_LAYOUT:
        end = _INFO_GROUPS.get(name, off + struct.calcsize(code))
        out[name] = struct.unpack_from("<" + code, data, off)[0] if len(data) >= end else None
    out["fallback"] = bool(out["flags"] & 1) if out["flags"] is not None else None
    return out


# tcp_info: (name, code, offset, end that must fit for the field to count as present)
TCP_INFO_LAYOUT = [
    ("state", "B", 0, 1), ("ca_state", "B", 1, 2), ("rto_us", "I", 8, 104),
    ("snd_mss", "I", 16, 104), ("rcv_mss", "I", 20, 104), ("unacked", "I", 24, 104),
    ("lost", "I", 32, 104), ("retrans", "I", 36, 104), ("total_retrans", "I", 100, 104),
    ("rtt_us", "I", 68, 104), ("rttvar_us", "I", 72, 104), ("min_rtt_us", "I", 148, 152),
    ("snd_cwnd", "I", 80, 104), ("snd_ssthresh", "I", 76, 104), ("pmtu", "I", 60, 104),
    ("pacing_rate", "Q", 104, 112), ("delivery_rate", "Q", 160, 168),
    ("bytes_acked", "Q", 120, 136), ("bytes_received", "Q", 128, 136),
    ("bytes_sent", "Q", 200, 216), ("bytes_retrans", "Q", 208, 216),
    ("segs_out", "I", 136, 144), ("segs_in", "I", 140, 144),
    ("notsent_bytes", "I", 144, 152), ("snd_wnd", "I", 228, 232), ("rcv_wnd", "I", 232, 236),
    ("last_data_sent_ms", "I", 44, 104), ("last_data_recv_ms", "I", 52, 104),
    ("busy_time_us", "Q", 168, 176), ("delivered", "I", 192, 196),
]


def tcp_info(data: bytes) -> dict:  # type: ignore[type-arg]
    return {
        name: struct.unpack_from("<" + code, data, off)[0] if len(data) >= end else None
        for name, code, off, end in TCP_INFO_LAYOUT
    }


def sockaddr(data: bytes) -> Optional[Tuple[str, int]]:
    if len(data) < 2:
        return None
    family = struct.unpack_from("<H", data, 0)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return socket.inet_ntop(socket.AF_INET, data[4:8]), struct.unpack_from(">H", data, 2)[0]
    if family == socket.AF_INET6 and len(data) >= 24:
        return socket.inet_ntop(socket.AF_INET6, data[8:24]), struct.unpack_from(">H", data, 2)[0]
    return None


def full_info(header: bytes, sfinfo: bytes, tcpinfo: bytes, live_only: bool = True) -> Tuple[dict, List[dict]]:  # type: ignore[type-arg]
    (ti_kernel, ti_user, sf_kernel, sf_user, num, arrays) = struct.unpack_from("<6I", header, 0)
    info = mptcp_info(header[40:])
    n = min(num, arrays)
    if sf_user == 0 or ti_user == 0:
        n = 0
    else:
        n = min(n, len(sfinfo) // sf_user, len(tcpinfo) // ti_user)
    sf_avail, ti_avail = min(sf_kernel, sf_user), min(ti_kernel, ti_user)
    subs = []
    for i in range(n):
        sf = sfinfo[i * sf_user: i * sf_user + sf_avail]
        ti = tcpinfo[i * ti_user: i * ti_user + ti_avail]
        if live_only and len(ti) >= 1 and ti[0] in (7, 10):
            continue
        if len(sf) < 4:
            continue
        rec = {"id": struct.unpack_from("<I", sf, 0)[0],
               "local": sockaddr(sf[8:136]) if len(sf) > 8 else None,
               "remote": sockaddr(sf[136:264]) if len(sf) > 136 else None,
               "backup": None}
        rec.update(tcp_info(ti))
        subs.append(rec)
    return info, subs


def sockaddr_in(host: str, port: int) -> bytes:
    """A 128-byte sockaddr_storage holding host:port (test input builder)."""
    if ":" in host:
        raw = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + b"\0" * 4
        raw += socket.inet_pton(socket.AF_INET6, host) + b"\0" * 4
    else:
        raw = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port)
        raw += socket.inet_pton(socket.AF_INET, host) + b"\0" * 8
    return raw.ljust(128, b"\0")


def subflow_data(data: bytes, kind: str) -> Tuple[int, list]:  # type: ignore[type-arg]
    """(num_subflows, elements) of an MPTCP_TCPINFO / MPTCP_SUBFLOW_ADDRS reply."""
    size_hdr, num, size_kernel, size_user = struct.unpack_from("<4I", data, 0)
    avail = min(size_kernel, size_user)
    out: list = []  # type: ignore[type-arg]
    if size_user == 0 or size_hdr > len(data):
        return num, out
    n = min((len(data) - size_hdr) // size_user, num)
    for i in range(n):
        elem = data[size_hdr + i * size_user: size_hdr + i * size_user + avail]
        if kind == "addrs":
            out.append((sockaddr(elem[:128]) if avail else None,
                        sockaddr(elem[128:256]) if avail > 128 else None))
        else:
            rec = {"id": None, "local": None, "remote": None, "backup": None}
            rec.update(tcp_info(elem))
            out.append(rec)
    return num, out
