"""Pure-Python reference for the sock_diag decoders, plus builders of sock_diag bytes.

Written from the uapi layouts (linux/netlink.h, linux/inet_diag.h, linux/mptcp.h)
with ``struct`` only. The decoders mirror the documented rules of the core's walk:

- netlink messages: a header whose length is < 16 or runs past the buffer ends the
  walk; NLMSG_DONE ends it (a negative code in it is an error); NLMSG_ERROR with a
  negative code (or too short to hold one: EPROTO) is an error, code 0 is skipped;
- an inet_diag_msg shorter than 72 bytes is skipped;
- an attribute whose length is < 4 or runs past its container ends the walk of that
  container; a later attribute of the same type wins; unknown types are skipped;
- a fixed-size attribute shorter than its type is ignored (the field stays absent).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any, Dict, List, Optional, Tuple

from . import reference as ref

NLMSG_ERROR = 2
NLMSG_DONE = 3
SOCK_DIAG_BY_FAMILY = 20
INET_DIAG_INFO = 2
INET_DIAG_ULP_INFO = 19
INET_ULP_INFO_NAME = 1
INET_ULP_INFO_MPTCP = 3
TCP_LISTEN = 10
TCP_CLOSE = 7
# FIN_WAIT1, FIN_WAIT2, LAST_ACK, CLOSING: where a subflow is once its MPTCP socket closed it
ORPHAN_STATES = {4, 5, 9, 11}
BKUP_LOC = 1 << 5

# MPTCP_SUBFLOW_ATTR_*: (field, struct code)
SUBFLOW_ATTRS = {
    1: ("token_rem", "I"), 2: ("token", "I"), 3: ("relwrite_seq", "I"),
    4: ("map_seq", "Q"), 5: ("map_sfseq", "I"), 6: ("ssn_offset", "I"),
    7: ("map_datalen", "H"), 8: ("flags", "I"), 9: ("rem_id", "B"), 10: ("loc_id", "B"),
}


class DecodeError(OSError):
    pass


def _align(n: int) -> int:
    return (n + 3) & ~3


def iter_attrs(data: bytes, start: int, end: int):  # type: ignore[no-untyped-def]
    off = start
    while off + 4 <= end:
        alen, atype = struct.unpack_from("<HH", data, off)
        if alen < 4 or alen > end - off:
            return
        yield atype & 0x3FFF, data[off + 4: off + alen]
        off += _align(alen)


def parse_msg(data: bytes) -> Optional[Dict[str, Any]]:
    """An inet_diag_msg and its attributes as a dict, None if shorter than 72 bytes."""
    if len(data) < 72:
        return None
    family, state = data[0], data[1]
    sport, dport = struct.unpack_from(">HH", data, 4)
    src, dst = data[8:24], data[24:40]
    if_index, = struct.unpack_from("<I", data, 40)
    uid, inode = struct.unpack_from("<II", data, 64)
    m: Dict[str, Any] = {"family": family, "state": state, "sport": sport, "dport": dport,
                         "src": src, "dst": dst, "if_index": if_index, "uid": uid,
                         "inode": inode, "info": None, "mptcp_ulp": False, "sf": {}}
    for atype, payload in iter_attrs(data, 72, len(data)):
        if atype == INET_DIAG_INFO:
            m["info"] = payload
        elif atype == INET_DIAG_ULP_INFO:
            for utype, upay in iter_attrs(payload, 0, len(payload)):
                if utype == INET_ULP_INFO_NAME:
                    m["mptcp_ulp"] = (len(upay) >= 5 and upay[:5] == b"mptcp"
                                      and (len(upay) == 5 or upay[5] == 0))
                elif utype == INET_ULP_INFO_MPTCP:
                    for stype, spay in iter_attrs(upay, 0, len(upay)):
                        if stype in SUBFLOW_ATTRS:
                            name, code = SUBFLOW_ATTRS[stype]
                            if len(spay) >= struct.calcsize(code):
                                m["sf"][name] = struct.unpack_from("<" + code, spay, 0)[0]
    return m


def _addr(m: Dict[str, Any], remote: bool) -> Optional[Tuple[str, int]]:
    raw = m["dst"] if remote else m["src"]
    port = m["dport"] if remote else m["sport"]
    if m["family"] == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4]), port
    if m["family"] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw), port
    return None


def connection(m: Dict[str, Any]) -> Dict[str, Any]:
    info = ref.mptcp_info(m["info"]) if m["info"] is not None else None
    return {"token": None if info is None else info["token"],
            "local": _addr(m, False), "remote": _addr(m, True), "state": m["state"],
            "info": info, "subflows": [], "subflow_diag": [], "family": m["family"],
            "if_index": m["if_index"], "uid": m["uid"], "inode": m["inode"]}


def subflow(m: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    local, remote = _addr(m, False), _addr(m, True)
    info = m["info"] if m["info"] is not None else b""
    sub: Dict[str, Any] = {"id": None, "local": local, "remote": remote, "backup": None}
    sub.update(ref.tcp_info(info))
    if len(info) < 1:
        sub["state"] = m["state"]
    sf = m["sf"]
    if "flags" in sf:
        sub["backup"] = bool(sf["flags"] & BKUP_LOC)
    diag = {"local": local, "remote": remote, "if_index": m["if_index"]}
    for name in ("token", "token_rem", "loc_id", "rem_id", "flags", "relwrite_seq",
                 "map_seq", "map_sfseq", "ssn_offset", "map_datalen"):
        diag[name] = sf.get(name)
    return sub, diag


def walk(data: bytes):  # type: ignore[no-untyped-def]
    """Payloads of the SOCK_DIAG_BY_FAMILY messages in data; DecodeError on errors."""
    off, n = 0, len(data)
    while off + 16 <= n:
        mlen, mtype = struct.unpack_from("<IH", data, off)
        if mlen < 16 or mlen > n - off:
            return
        if mtype == NLMSG_DONE:
            if mlen >= 20:
                code, = struct.unpack_from("<i", data, off + 16)
                if code < 0:
                    raise DecodeError(-code if code != -2**31 else errno.EPROTO, "done")
            return
        if mtype == NLMSG_ERROR:
            code = -errno.EPROTO
            if mlen >= 20:
                code, = struct.unpack_from("<i", data, off + 16)
            if code < 0:
                raise DecodeError(-code if code != -2**31 else errno.EPROTO, "error")
        elif mtype == SOCK_DIAG_BY_FAMILY:
            yield data[off + 16: off + mlen]
        off += _align(mlen)


def messages(data: bytes, tcp: bool) -> List[Any]:
    out: List[Any] = []
    for payload in walk(data):
        m = parse_msg(payload)
        if m is None:
            continue
        if not tcp:
            out.append(connection(m))
        elif m["mptcp_ulp"]:
            out.append(subflow(m))
    return out


def connections(mptcp_data: bytes, tcp_data: bytes, orphans: bool = False) -> List[Dict[str, Any]]:
    conns: List[Dict[str, Any]] = []
    by_token: Dict[int, Dict[str, Any]] = {}
    gone: Dict[int, Dict[str, Any]] = {}
    for payload in walk(mptcp_data):
        m = parse_msg(payload)
        if m is None:
            continue
        c = connection(m)
        conns.append(c)
        if m["state"] != TCP_LISTEN and c["token"] is not None:
            by_token[c["token"]] = c
    for payload in walk(tcp_data):
        m = parse_msg(payload)
        if m is None or not m["mptcp_ulp"] or m["state"] == TCP_LISTEN:
            continue
        token = m["sf"].get("token")
        if token is None:
            continue
        conn = by_token.get(token)
        if conn is None:
            if not orphans or m["state"] not in ORPHAN_STATES:
                continue
            conn = gone.get(token)
            if conn is None:
                conn = {"token": token, "local": None, "remote": None, "state": TCP_CLOSE,
                        "info": None, "subflows": [], "subflow_diag": [], "family": m["family"],
                        "if_index": 0, "uid": m["uid"], "inode": 0}
                gone[token] = conn
                conns.append(conn)
        sub, diag = subflow(m)
        conn["subflows"].append(sub)
        conn["subflow_diag"].append(diag)
    return conns


# --------------------------------------------------------------------------------
# Builders (test input)
# --------------------------------------------------------------------------------
def attr(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("<HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def nlmsg(mtype: int, payload: bytes, seq: int = 1, flags: int = 2) -> bytes:
    raw = struct.pack("<IHHII", 16 + len(payload), mtype, flags, seq, 0) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def done(code: int = 0, seq: int = 1) -> bytes:
    return nlmsg(NLMSG_DONE, struct.pack("<i", code), seq)


def error(code: int, seq: int = 1) -> bytes:
    return nlmsg(NLMSG_ERROR, struct.pack("<i", code) + b"\0" * 16, seq)


def diag_msg(family: int, state: int, local: Tuple[str, int], remote: Tuple[str, int],
             *, if_index: int = 0, uid: int = 0, inode: int = 0, attrs: bytes = b"") -> bytes:
    src = socket.inet_pton(family, local[0]).ljust(16, b"\0")
    dst = socket.inet_pton(family, remote[0]).ljust(16, b"\0")
    head = struct.pack("<BBBB", family, state, 0, 0)
    sockid = struct.pack(">HH", local[1], remote[1]) + src + dst
    sockid += struct.pack("<III", if_index, 0xFFFFFFFF, 0xFFFFFFFF)
    tail = struct.pack("<IIIII", 0, 0, 0, uid, inode)
    return head + sockid + tail + attrs


def subflow_attrs(*, token: int, token_rem: int = 0, loc_id: int = 0, rem_id: int = 0,
                  flags: int = 0xC3, seqs: bool = True) -> bytes:
    inner = attr(1, struct.pack("<I", token_rem)) + attr(2, struct.pack("<I", token))
    if seqs:
        inner += attr(3, struct.pack("<I", 11)) + attr(11, b"\0" * 4)  # PAD before u64
        inner += attr(4, struct.pack("<Q", 2**63 + 5)) + attr(5, struct.pack("<I", 12))
        inner += attr(6, struct.pack("<I", 13)) + attr(7, struct.pack("<H", 1400))
    inner += attr(8, struct.pack("<I", flags)) + attr(9, bytes([rem_id]))
    inner += attr(10, bytes([loc_id]))
    return attr(INET_DIAG_ULP_INFO | 0x8000,
                attr(INET_ULP_INFO_NAME, b"mptcp\0") + attr(INET_ULP_INFO_MPTCP | 0x8000, inner))
