"""A deliberately plain reference decoder for MPTCP event messages.

Written from the uapi (``<linux/mptcp_pm.h>``) and netlink rules, without
``mptcp._netlink``: the library decoder must give the same records on any input.

Rules it encodes (the library documents the same):
* attributes: walk 4-byte aligned TLVs; stop at the first one whose length is
  < 4 or runs past the message; the NESTED/NET_BYTEORDER bits are masked off;
  unknown types are ignored; for a repeated type the last one wins;
* an attribute whose payload is shorter than its type needs reads as absent;
  longer payloads are read from their start;
* addresses: with family AF_INET6 prefer the v6 attribute, else the v4 one;
  a host without a port attribute gets port 0; no host -> no address;
* server_side: the SERVER_SIDE attribute if present, else for CREATED and
  ESTABLISHED bit 1 of FLAGS (False without FLAGS), else None;
* family: the FAMILY attribute (a u16) as it is, whatever its value.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

KNOWN = {
    1: "CREATED", 2: "ESTABLISHED", 3: "CLOSED", 6: "ANNOUNCED", 7: "REMOVED",
    10: "SUB_ESTABLISHED", 11: "SUB_CLOSED", 13: "SUB_PRIORITY",
    15: "LISTENER_CREATED", 16: "LISTENER_CLOSED",
}

FIELDS = (
    "type", "token", "local", "remote", "loc_id", "rem_id", "backup", "error", "flags",
    "if_index", "server_side", "reset_reason", "reset_flags", "timeout", "family",
)


def _le(raw: bytes, size: int, signed: bool = False) -> Optional[int]:
    if raw is None or len(raw) < size:
        return None
    return int.from_bytes(raw[:size], "little", signed=signed)


def _be(raw: bytes, size: int) -> Optional[int]:
    if raw is None or len(raw) < size:
        return None
    return int.from_bytes(raw[:size], "big")


def attrs(body: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(body):
        alen = int.from_bytes(body[i : i + 2], "little")
        atype = int.from_bytes(body[i + 2 : i + 4], "little") & 0x3FFF
        if alen < 4 or i + alen > len(body):
            break
        if 1 <= atype <= 18:
            out[atype] = bytes(body[i + 4 : i + alen])
        i += (alen + 3) // 4 * 4
    return out


def _host(a: dict[int, bytes], v4: int, v6: int, family: Optional[int]) -> Optional[str]:
    h4 = a.get(v4)
    h6 = a.get(v6)
    ok4 = h4 is not None and len(h4) >= 4
    ok6 = h6 is not None and len(h6) >= 16
    order = [(ok6, 6), (ok4, 4)] if family == 10 else [(ok4, 4), (ok6, 6)]
    for ok, kind in order:
        if ok:
            if kind == 4:
                return str(ipaddress.IPv4Address(h4[:4]))  # type: ignore[index]
            import socket

            return socket.inet_ntop(socket.AF_INET6, h6[:16])  # type: ignore[index]
    return None


def decode_message(msg: bytes) -> dict[str, Any]:
    """One whole netlink message (header included) -> dict of Event fields."""
    if len(msg) < 20:
        raise ValueError("truncated")
    mlen = int.from_bytes(msg[:4], "little")
    if mlen < 20 or mlen > len(msg):
        raise ValueError("bad length")
    cmd = msg[16]
    a = attrs(msg[20:mlen])
    family = _le(a.get(2), 2)  # type: ignore[arg-type]
    flags = _le(a.get(13), 2)  # type: ignore[arg-type]

    def addr(v4: int, v6: int, port: int) -> Optional[tuple[str, int]]:
        host = _host(a, v4, v6, family)
        if host is None:
            return None
        p = _be(a.get(port), 2)  # type: ignore[arg-type]
        return (host, 0 if p is None else p)

    side = _le(a.get(18), 1)  # type: ignore[arg-type]
    if side is not None:
        server_side: Optional[bool] = side != 0
    elif cmd in (1, 2):
        server_side = flags is not None and bool(flags & 2)
    else:
        server_side = None
    backup = _le(a.get(11), 1)  # type: ignore[arg-type]
    return {
        "type": cmd,
        "token": _le(a.get(1), 4),  # type: ignore[arg-type]
        "local": addr(5, 6, 9),
        "remote": addr(7, 8, 10),
        "loc_id": _le(a.get(3), 1),  # type: ignore[arg-type]
        "rem_id": _le(a.get(4), 1),  # type: ignore[arg-type]
        "backup": None if backup is None else backup != 0,
        "error": _le(a.get(12), 1),  # type: ignore[arg-type]
        "flags": flags,
        "if_index": _le(a.get(15), 4, signed=True),  # type: ignore[arg-type]
        "server_side": server_side,
        "reset_reason": _le(a.get(16), 4),  # type: ignore[arg-type]
        "reset_flags": _le(a.get(17), 4),  # type: ignore[arg-type]
        "timeout": _le(a.get(14), 4),  # type: ignore[arg-type]
        "family": family,
    }


def decode_stream(data: bytes, family_id: Optional[int] = None) -> list[dict[str, Any]]:
    """Every event message of a datagram, skipping control/foreign messages."""
    out = []
    i = 0
    while i + 16 <= len(data):
        mlen = int.from_bytes(data[i : i + 4], "little")
        mtype = int.from_bytes(data[i + 4 : i + 6], "little")
        if mlen < 16 or i + mlen > len(data):
            break
        wanted = mtype == family_id if family_id is not None else mtype >= 16
        if mlen >= 20 and wanted:
            out.append(decode_message(data[i : i + mlen]))
        i += (mlen + 3) // 4 * 4
    return out
