"""Differential fuzzing of every decoder of kernel bytes, in one table.

Each entry of :data:`CASES` is ``name -> (strategy, check)``: ``check(example)``
feeds the same bytes to the library's decoder and to a pure-Python reference
decoder and asserts that both give the same records, or that both raise the same
documented exception. The default run uses a bounded number of examples per
decoder (``MPTCP_FUZZ_DEFAULT_EXAMPLES``, 120); ``tests/fuzz`` runs the same table
with up to millions of examples (see ``tests/fuzz/README.md``).

References: ``reference.py`` (mptcp_info, FULL_INFO, TCPINFO/SUBFLOW_ADDRS),
``diag_reference.py`` (sock_diag), ``events_reference.py`` (events), the draft
references of ``test_draft_decode.py``, and below, written from the netlink uapi
with plain ``int.from_bytes`` slicing, the generic netlink layer
(``mptcp._netlink``: messages, attributes, NLMSG_ERROR/extended ack, nlctrl
replies) and the path manager's endpoint decoder.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mptcp
from mptcp import _mptcp as core
from mptcp._netlink import genl as nl
from mptcp._netlink import mptcp_pm as PM
from mptcp._netlink.mptcp_pm import decode_event, decode_events

from . import diag_reference as dref
from . import events_reference as eref
from . import reference as ref
from .test_draft_decode import ref_sub_ids, ref_sub_tuple

DEFAULT_EXAMPLES = int(os.environ.get("MPTCP_FUZZ_DEFAULT_EXAMPLES", "120"))
V4, V6 = socket.AF_INET, socket.AF_INET6


# --------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------
def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """("ok", value) or ("raise", documented class name, errno)."""
    try:
        return ("ok", fn(*args))
    except ValueError:
        return ("raise", "ValueError", None)
    except OSError as err:  # MPTCPError from the core's hook, DecodeError from dref
        return ("raise", "OSError", err.errno)


def rec_dict(rec: Any) -> Any:
    if rec is None:
        return None
    if isinstance(rec, tuple) and hasattr(rec, "_asdict"):
        return {k: rec_dict(v) if k == "info" else
                [rec_dict(x) for x in v] if isinstance(v, list) else v
                for k, v in rec._asdict().items()}
    return rec


def le(raw: bytes, size: int, signed: bool = False) -> Optional[int]:
    if len(raw) < size:
        return None
    return int.from_bytes(raw[:size], "little", signed=signed)


def nla(atype: int, payload: bytes, *, length: Optional[int] = None, pad: bytes = b"") -> bytes:
    """An attribute; ``length`` may lie, ``pad`` replaces the zero padding."""
    n = 4 + len(payload) if length is None else length
    raw = struct.pack("<HH", n & 0xFFFF, atype & 0xFFFF) + payload
    padlen = (-len(raw)) % 4
    return raw + (pad + b"\0" * padlen)[:padlen]


def nlmsg(mtype: int, flags: int, seq: int, body: bytes, *, length: Optional[int] = None) -> bytes:
    n = 16 + len(body) if length is None else length
    raw = struct.pack("<IHHII", n & 0xFFFFFFFF, mtype, flags, seq, 0) + body
    return raw + b"\0" * ((-len(raw)) % 4)


# Attribute payloads: arbitrary, or the widths decoders read.
payload_st = st.one_of(
    st.binary(max_size=24),
    st.integers(0, 0xFF).map(lambda v: bytes([v])),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("<I", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: struct.pack("<i", v)),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=16, max_size=16),
    st.sampled_from([b"mptcp\0", b"mptcp", b"mptcp_pm\0", b"mptcp_pm_events\0", b"\xff\xfe\0"]),
)
atype_st = st.one_of(st.integers(0, 20), st.integers(0, 0xFFFF),
                     st.integers(0, 20).map(lambda t: t | 0x8000),
                     st.integers(0, 20).map(lambda t: t | 0x4000))


@st.composite
def attrs_st(draw: Any, depth: int = 1, max_size: int = 8) -> bytes:
    """A run of attributes, some nested, some with lying lengths, maybe a cut tail."""
    out = b""
    for _ in range(draw(st.integers(0, max_size))):
        t = draw(atype_st)
        if depth > 0 and draw(st.integers(0, 4)) == 0:
            p = draw(attrs_st(depth=depth - 1, max_size=4))
        else:
            p = draw(payload_st)
        lie = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 0xFFFF)))
        out += nla(t, p, length=lie, pad=draw(st.binary(max_size=3)))
    return out + draw(st.binary(max_size=draw(st.integers(0, 1)) * 6))


# --------------------------------------------------------------------------------
# mptcp_info (every length), FULL_INFO, TCPINFO / SUBFLOW_ADDRS
# --------------------------------------------------------------------------------
info_st = st.integers(0, 110).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def check_mptcp_info(data: bytes) -> None:
    assert core.decode_mptcp_info(data)._asdict() == ref.mptcp_info(data)


def _sockaddr_st() -> Any:
    return st.one_of(
        st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)).map(
            lambda hp: ref.sockaddr_in(*hp)),
        st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535)).map(
            lambda hp: ref.sockaddr_in(*hp)),
        st.binary(min_size=128, max_size=128),
    )


size_st = st.one_of(st.sampled_from([0, 1, 4, 8, 104, 136, 168, 216, 232, 248, 256, 264, 280,
                                     core.SIZEOF_TCP_INFO, core.SIZEOF_SUBFLOW_INFO]),
                    st.integers(0, 400), st.integers(0, 2**32 - 1))


@st.composite
def full_info_st(draw: Any) -> Tuple[bytes, bytes, bytes, bool]:
    if draw(st.booleans()):
        header = draw(st.binary(min_size=0, max_size=140))
        return header, draw(st.binary(max_size=700)), draw(st.binary(max_size=700)), draw(st.booleans())
    ti_k, ti_u, sf_k, sf_u = (draw(size_st) for _ in range(4))
    n = draw(st.integers(0, 6))
    num = draw(st.one_of(st.just(n), st.integers(0, 2**32 - 1)))
    arrays = draw(st.one_of(st.just(n), st.integers(0, 12)))
    info = draw(info_st)
    header = struct.pack("<6IQQ", ti_k, ti_u, sf_k, sf_u, num, arrays, 0, 0) + info
    sf_stride = sf_u if 0 < sf_u < 600 else 264
    ti_stride = ti_u if 0 < ti_u < 600 else 280
    sfinfo = b""
    tcpinfo = b""
    for _ in range(n):
        elem = struct.pack("<II", draw(st.integers(0, 2**32 - 1)), 0) + draw(_sockaddr_st()) \
            + draw(_sockaddr_st())
        sfinfo += elem.ljust(sf_stride, b"\0")[:sf_stride]
        ti = bytearray(draw(st.binary(min_size=ti_stride, max_size=ti_stride)))
        if ti:
            ti[0] = draw(st.sampled_from([1, 1, 7, 10, 0, 255]))
        tcpinfo += bytes(ti)
    cut_sf = draw(st.integers(0, len(sfinfo)))
    cut_ti = draw(st.integers(0, len(tcpinfo)))
    return header, sfinfo[:cut_sf] if draw(st.booleans()) else sfinfo, \
        tcpinfo[:cut_ti] if draw(st.booleans()) else tcpinfo, draw(st.booleans())


def check_full_info(ex: Tuple[bytes, bytes, bytes, bool]) -> None:
    header, sfinfo, tcpinfo, live = ex
    if len(header) < 40:
        with pytest.raises(ValueError, match="40 bytes"):
            core.decode_full_info(header, sfinfo, tcpinfo, live)
        return
    info, subs = core.decode_full_info(header, sfinfo, tcpinfo, live)
    ref_info, want = ref.full_info(header, sfinfo, tcpinfo, live)
    assert info._asdict() == ref_info
    assert [r._asdict() for r in subs] == want


@st.composite
def subflow_data_st(draw: Any) -> Tuple[bytes, str]:
    kind = draw(st.sampled_from(["tcpinfo", "addrs"]))
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=700)), kind
    elem = 256 if kind == "addrs" else 280
    size_hdr = draw(st.one_of(st.just(16), size_st))
    num = draw(st.integers(0, 5))
    size_kernel = draw(st.one_of(st.just(elem), size_st))
    size_user = draw(st.one_of(st.just(elem), size_st))
    hdr = struct.pack("<4I", size_hdr, draw(st.one_of(st.just(num), st.integers(0, 2**32 - 1))),
                      size_kernel, size_user)
    body = b""
    for _ in range(num):
        if kind == "addrs":
            body += draw(_sockaddr_st()) + draw(_sockaddr_st())
        else:
            body += draw(st.binary(min_size=elem, max_size=elem))
    data = hdr + body
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data, kind


def check_subflow_data(ex: Tuple[bytes, str]) -> None:
    data, kind = ex
    if len(data) < 16:
        with pytest.raises(ValueError, match="16 bytes"):
            core.decode_subflow_data(data, kind)
        return
    num, got = core.decode_subflow_data(data, kind)
    ref_num, want = ref.subflow_data(data, kind)
    assert num == ref_num
    assert (got if kind == "addrs" else [r._asdict() for r in got]) == want


# --------------------------------------------------------------------------------
# sock_diag replies
# --------------------------------------------------------------------------------
@st.composite
def diag_msg_st(draw: Any) -> bytes:
    family = draw(st.sampled_from([V4, V6, V4, 0, 44]))
    fam = family if family in (V4, V6) else V4
    host = st.ip_addresses(v=4 if fam == V4 else 6).map(str)
    local = (draw(host), draw(st.integers(0, 65535)))
    remote = (draw(host), draw(st.integers(0, 65535)))
    attrs = b""
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 4))
        if kind == 0:  # INET_DIAG_INFO: mptcp_info or tcp_info of any length
            attrs += dref.attr(2, draw(st.binary(max_size=300)))
        elif kind == 1:  # a well-formed MPTCP ULP block
            attrs += dref.subflow_attrs(token=draw(st.integers(0, 3)),
                                        token_rem=draw(st.integers(0, 2**32 - 1)),
                                        loc_id=draw(st.integers(0, 255)),
                                        rem_id=draw(st.integers(0, 255)),
                                        flags=draw(st.integers(0, 2**32 - 1)),
                                        seqs=draw(st.booleans()))
        elif kind == 2:  # a ULP block with arbitrary nested content
            inner = nla(1, draw(st.sampled_from([b"mptcp\0", b"mptcp", b"tls\0", b"mptcpx"])))
            inner += nla(3 | 0x8000, draw(attrs_st(depth=0)))
            attrs += nla(19 | 0x8000, inner)
        else:
            attrs += draw(attrs_st(depth=1, max_size=3))
    raw = dref.diag_msg(fam, draw(st.integers(0, 15)), local, remote,
                        if_index=draw(st.integers(0, 2**32 - 1)), uid=draw(st.integers(0, 9)),
                        inode=draw(st.integers(0, 2**32 - 1)), attrs=attrs)
    if family != fam:
        raw = bytes([family]) + raw[1:]
    return raw


@st.composite
def diag_dump_st(draw: Any) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 9))
        if kind <= 6:
            body = draw(diag_msg_st())
            if draw(st.integers(0, 5)) == 0:
                body = body[: draw(st.integers(0, len(body)))]
            out += dref.nlmsg(20, body)
        elif kind == 7:
            out += dref.error(draw(st.sampled_from([0, 0, -1, -13, -2**31, 5])))
        elif kind == 8:
            out += dref.done(draw(st.sampled_from([0, -2, -2**31])))
        else:
            out += nlmsg(draw(st.integers(0, 0xFFFF)), 0, 1, draw(st.binary(max_size=40)),
                         length=draw(st.one_of(st.none(), st.integers(0, 200))))
    raw = bytearray(out)
    for _ in range(draw(st.integers(0, 3))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw[: draw(st.integers(0, len(raw)))]) if draw(st.booleans()) else bytes(raw)


def _core_messages(data: bytes, tcp: bool) -> List[Any]:
    out = core.decode_diag_messages(data, tcp)
    if tcp:
        return [(rec_dict(a), rec_dict(b)) for a, b in out]
    return [rec_dict(c) for c in out]


def check_diag_messages(ex: Tuple[bytes, bool]) -> None:
    data, tcp = ex
    assert outcome(_core_messages, data, tcp) == outcome(dref.messages, data, tcp)


def check_diag_connections(ex: Tuple[bytes, bytes]) -> None:
    mdump, tdump = ex
    assert outcome(lambda: [rec_dict(c) for c in core.decode_diag_connections(mdump, tdump)]) \
        == outcome(dref.connections, mdump, tdump)


# --------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------
def _ev_dict(ev: Any) -> Dict[str, Any]:
    d = ev._asdict()
    d["type"] = int(d["type"])
    return d


@st.composite
def event_stream_st(draw: Any) -> bytes:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=300))
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        body = struct.pack("<BBH", draw(st.integers(0, 255)), 1, 0) + draw(attrs_st(depth=0))
        mtype = draw(st.sampled_from([28, 28, 28, 2, 3, 16, 0xFFFF]))
        out += nlmsg(mtype, 0, 0, body, length=draw(st.one_of(
            st.none(), st.none(), st.integers(0, len(body) + 40))))
    return out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out


def check_events(data: bytes) -> None:
    try:
        want: Any = eref.decode_message(data)
    except ValueError:
        want = ValueError
    try:
        got: Any = _ev_dict(decode_event(data))
    except ValueError:
        got = ValueError
    assert got == want
    assert [_ev_dict(e) for e in decode_events(data)] == eref.decode_stream(data)
    assert [_ev_dict(e) for e in decode_events(data, family_id=28)] == eref.decode_stream(data, 28)


# --------------------------------------------------------------------------------
# draft structs
# --------------------------------------------------------------------------------
@st.composite
def draft_st(draw: Any) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    family = draw(st.sampled_from([V4, V6]))
    salen = 16 if family == V4 else 28
    data = bytes([draw(st.integers(0, 255))])
    for _ in range(2):
        sa = bytearray(draw(st.binary(min_size=salen, max_size=salen)))
        sa[0:2] = struct.pack("=H", draw(st.sampled_from([family, family, family, V4, V6, 1])))
        data += bytes(sa)
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


def check_draft(data: bytes) -> None:
    for with_status in (True, False):
        assert core.decode_draft_sub_ids(data, with_status) == ref_sub_ids(data, with_status)
    try:
        want: Any = ref_sub_tuple(data)
    except ValueError:
        want = ValueError
    try:
        got: Any = core.decode_draft_sub_tuple(data)
    except ValueError:
        got = ValueError
    assert got == want


# --------------------------------------------------------------------------------
# generic netlink: the reference
# --------------------------------------------------------------------------------
def ref_attrs(buf: bytes, start: int, end: int) -> List[Tuple[int, int, int]]:
    """(type without NESTED/BYTEORDER, payload offset, payload length) of each attribute."""
    out = []
    pos = start
    while end - pos >= 4:
        alen = le(buf[pos:pos + 2], 2)
        atype = le(buf[pos + 2:pos + 4], 2)
        assert alen is not None and atype is not None
        if alen < 4 or pos + alen > end:
            break
        out.append((atype & 0x3FFF, pos + 4, alen - 4))
        pos += (alen + 3) // 4 * 4
    return out


def ref_table(buf: bytes, start: int, end: int, maxtype: int) -> Dict[int, bytes]:
    """Payload of the last attribute of each type <= maxtype."""
    return {t: buf[o:o + n] for t, o, n in ref_attrs(buf, start, end) if t <= maxtype}


def ref_str(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def check_table(table: nl.AttrTable, want: Dict[int, bytes]) -> None:
    """Every getter of an AttrTable against the reference payloads."""
    assert table.types() == sorted(want)
    for t in range(table.maxtype + 2):
        raw = want.get(t)
        assert (t in table) == (raw is not None)
        r = raw if raw is not None else b""
        assert table.u8(t) == le(r, 1)
        assert table.u16(t) == le(r, 2)
        assert table.be16(t) == (None if len(r) < 2 else int.from_bytes(r[:2], "big"))
        assert table.u32(t) == le(r, 4)
        assert table.s32(t) == le(r, 4, signed=True)
        assert table.u64(t) == le(r, 8)
        assert table.bytes(t) == raw
        assert table.str(t) == ref_str(raw)
        assert table.span(t) == (None if raw is None else (table._off[t], len(raw)))


def ref_messages(buf: bytes, length: int) -> List[Tuple[int, int, int, int, int]]:
    out = []
    pos = 0
    while length - pos >= 16:
        mlen, mtype, mflags, mseq = (le(buf[pos:pos + 4], 4), le(buf[pos + 4:pos + 6], 2),
                                     le(buf[pos + 6:pos + 8], 2), le(buf[pos + 8:pos + 12], 4))
        assert mlen is not None
        if mlen < 16 or pos + mlen > length:
            break
        out.append((pos, mlen, mtype, mflags, mseq))
        pos += (mlen + 3) // 4 * 4
    return out


def ref_parse_error(buf: bytes, off: int) -> Tuple[int, int, Optional[str], Optional[int], Optional[int]]:
    mlen, mtype, mflags, mseq = (le(buf[off:off + 4], 4), le(buf[off + 4:off + 6], 2),
                                 le(buf[off + 6:off + 8], 2), le(buf[off + 8:off + 12], 4))
    assert mlen is not None and mflags is not None
    if mtype != 2 or mlen < 20:
        raise ValueError("not an NLMSG_ERROR")
    end = off + mlen
    code = le(buf[off + 16:off + 20], 4, signed=True)
    assert code is not None
    message = offs = miss = None
    inner = off + 20
    if mflags & 0x200 and inner + 16 <= end:
        if mflags & 0x100:  # capped: only the request's header is echoed
            tlv = inner + 16
        else:
            inner_len = le(buf[inner:inner + 4], 4)
            assert inner_len is not None
            tlv = inner + (inner_len + 3) // 4 * 4
        t = ref_table(buf, tlv, end, 6)
        message = ref_str(t.get(1))
        offs = le(t[2], 4) if 2 in t else None
        miss = le(t[5], 4) if 5 in t else None
    return -code, mseq or 0, message or None, offs, miss


@st.composite
def genl_stream_st(draw: Any) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 2))
        if kind == 0:  # NLMSG_ERROR with an echoed request and extended-ack TLVs
            flags = draw(st.sampled_from([0, 0x100, 0x200, 0x300]))
            echoed = struct.pack("<IHHII", draw(st.one_of(st.integers(16, 64),
                                                          st.integers(0, 2**32 - 1))),
                                 28, 5, 7, 0)
            if not flags & 0x100:
                echoed += draw(st.binary(max_size=24))
            tlvs = b""
            for _ in range(draw(st.integers(0, 4))):
                t = draw(st.sampled_from([1, 2, 3, 5, 6, 7]))
                p = draw(st.one_of(st.just(b"userspace PM not selected\0"), payload_st))
                tlvs += nla(t, p)
            body = struct.pack("<i", draw(st.sampled_from([0, -1, -22, -2**31, 5]))) + echoed + tlvs
            out += nlmsg(2, flags, 7, body, length=draw(st.one_of(
                st.none(), st.none(), st.integers(0, len(body) + 30))))
        else:
            body = struct.pack("<BBH", draw(st.integers(0, 255)), draw(st.integers(0, 3)), 0)
            body += draw(attrs_st(depth=1))
            out += nlmsg(draw(st.sampled_from([16, 28, 3, 1, 4])), draw(st.integers(0, 0xFFFF)),
                         draw(st.integers(0, 9)), body,
                         length=draw(st.one_of(st.none(), st.none(), st.integers(0, len(body) + 40))))
    return out[: draw(st.integers(0, len(out)))] if draw(st.booleans()) else out


_TABLE = nl.AttrTable(24)  # reused across examples, as the library reuses its tables


def check_genl(data: bytes) -> None:
    # messages of a datagram
    msgs = list(nl.iter_messages(data, len(data)))
    assert msgs == ref_messages(data, len(data))
    # attributes of the whole buffer read as one attribute run, at every start
    for start in (0, 4, 16, 20):
        if start <= len(data):
            assert list(nl.iter_attrs(data, start, len(data))) == ref_attrs(data, start, len(data))
    for off, mlen, mtype, _f, _s in msgs:
        # one message: decode_genl (ValueError for a message too short for genl)
        if mlen < 20:
            with pytest.raises(ValueError):
                nl.decode_genl(data, off)
        else:
            for into in (None, _TABLE):
                msg = nl.decode_genl(data, off, into=into)
                assert msg.cmd == data[off + 16] and msg.version == data[off + 17]
                check_table(msg.attrs, ref_table(data, off + 20, off + mlen, msg.attrs.maxtype))
        # NLMSG_ERROR: the extended ack
        try:
            want: Any = ref_parse_error(data, off)
        except ValueError:
            want = ValueError
        try:
            a = nl.parse_error(data, off)
            got: Any = (a.error, a.seq, a.message, a.bad_attr_offset, a.missing_type)
        except ValueError:
            got = ValueError
        assert got == want


def ref_family(data: bytes, off: int, mlen: int) -> Any:
    top = ref_table(data, off + 20, off + mlen, 64)
    fid = le(top.get(1, b""), 2)  # CTRL_ATTR_FAMILY_ID
    if fid is None:
        return ("raise", "OSError", 71)
    groups: Dict[str, int] = {}
    if 7 in top:
        start = [o for t, o, n in ref_attrs(data, off + 20, off + mlen) if t == 7][-1]
        for _t, o, n in ref_attrs(data, start, start + len(top[7])):
            g = ref_table(data, o, o + n, 2)
            name = ref_str(g.get(1))
            gid = le(g[2], 4) if 2 in g else None
            if name is not None and gid is not None:
                groups[name] = gid
    version = le(top.get(3, b""), 4)
    return ("ok", nl.GenlFamily(ref_str(top.get(2)) or "", fid,
                                (1 if version is None else version) or 1, groups))


_IFNAMES = dict(socket.if_nameindex())


def ref_endpoint(data: bytes, off: int, mlen: int) -> Any:
    top = ref_table(data, off + 20, off + mlen, 64)
    if 1 not in top:
        return None
    start = [o for t, o, n in ref_attrs(data, off + 20, off + mlen) if t == 1][-1]
    a = ref_table(data, start, start + len(top[1]), 7)
    addr = ""
    if len(a.get(3, b"")) == 4:
        addr = socket.inet_ntop(V4, a[3])
    elif len(a.get(4, b"")) == 16:
        addr = str(ipaddress.IPv6Address(a[4]))
    port = le(a[5], 2) if 5 in a else None
    ifx = le(a[7], 4, signed=True) if 7 in a else None
    dev = _IFNAMES.get(ifx) if ifx else None
    flags = le(a[6], 4) if 6 in a else None
    return mptcp.Endpoint((le(a[2], 1) if 2 in a else 0) or 0, addr, port or None,
                      mptcp.EndpointFlags(flags or 0), ifx or None, dev)


@st.composite
def genl_reply_st(draw: Any) -> bytes:
    """One nlctrl NEWFAMILY or mptcp_pm GET_ADDR reply, well formed or not."""
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        t = draw(st.sampled_from([1, 1, 2, 3, 6, 7, 7, 30]))
        if t == 7 and draw(st.booleans()):  # CTRL_ATTR_MCAST_GROUPS: an array of nests
            inner = b""
            for i in range(draw(st.integers(0, 3))):
                grp = b""
                for _ in range(draw(st.integers(0, 3))):
                    grp += nla(draw(st.sampled_from([1, 2, 3])),
                               draw(st.one_of(st.just(b"mptcp_pm_events\0"), payload_st)))
                inner += nla(i + 1 | 0x8000, grp)
            parts.append(nla(t | 0x8000, inner))
        elif t == 1 and draw(st.booleans()):  # MPTCP_PM_ATTR_ADDR: a nested address
            inner = b""
            for _ in range(draw(st.integers(0, 7))):
                at = draw(st.integers(1, 8))
                if at == 3:
                    p = draw(st.one_of(st.binary(min_size=4, max_size=4), payload_st))
                elif at == 4:
                    p = draw(st.one_of(st.binary(min_size=16, max_size=16), payload_st))
                elif at == 7:
                    p = struct.pack("<i", draw(st.sampled_from(
                        [0, 1, -1, -2**31, 2**31 - 1, *_IFNAMES])))
                else:
                    p = draw(payload_st)
                inner += nla(at, p)
            parts.append(nla(t | 0x8000, inner))
        else:
            parts.append(nla(t, draw(payload_st)))
    body = struct.pack("<BBH", 1, 1, 0) + b"".join(parts)
    return nlmsg(28, 0, 1, body)


def check_genl_reply(data: bytes) -> None:
    mlen = le(data[:4], 4)
    if mlen is None or len(data) < 20 or mlen < 20 or mlen > len(data):
        with pytest.raises(ValueError):
            nl.decode_genl(data)
        return
    msg = nl.decode_genl(data)
    got = outcome(nl.family_from_reply, msg)
    want = ref_family(data, 0, mlen)
    if got[0] == "raise":
        assert want[0] == "raise" and got[2] == want[2]
    else:
        assert got == want
    assert PM.decode_endpoint(nl.decode_genl(data)) == ref_endpoint(data, 0, mlen)


# --------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------
CASES: Dict[str, Tuple[Any, Callable[[Any], None]]] = {
    "mptcp_info": (info_st, check_mptcp_info),
    "full_info": (full_info_st(), check_full_info),
    "subflow_data": (subflow_data_st(), check_subflow_data),
    "diag_messages": (st.tuples(st.one_of(diag_dump_st(), st.binary(max_size=400)),
                                st.booleans()), check_diag_messages),
    "diag_connections": (st.tuples(diag_dump_st(), diag_dump_st()), check_diag_connections),
    "events": (event_stream_st(), check_events),
    "draft": (draft_st(), check_draft),
    "genl_messages": (genl_stream_st(), check_genl),
    "genl_replies": (genl_reply_st(), check_genl_reply),
}


def run_case(name: str, examples: int, **extra: Any) -> None:
    strategy, check = CASES[name]
    test = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), **extra)(given(strategy)(check))
    test()


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoder_matches_reference(name: str) -> None:
    run_case(name, DEFAULT_EXAMPLES)


@pytest.mark.parametrize("length", range(0, 101))
def test_mptcp_info_every_length(length: int) -> None:
    """Every length 0..100 (history: 0..96 grew by field groups), two fill patterns."""
    for fill in (b"\xff", bytes(range(256))):
        data = (fill * 200)[:length]
        check_mptcp_info(data)
        # the same length inside FULL_INFO's header and a sock_diag INFO attribute
        header = struct.pack("<6IQQ", 280, core.SIZEOF_TCP_INFO, 264, core.SIZEOF_SUBFLOW_INFO,
                             0, 0, 0, 0) + data
        check_full_info((header, b"", b"", True))
        msg = dref.nlmsg(20, dref.diag_msg(V4, 1, ("10.0.0.1", 1), ("10.0.0.2", 2),
                                           attrs=dref.attr(2, data)))
        check_diag_messages((msg, False))


def test_endpoint_negative_ifindex_is_not_a_crash() -> None:
    """A negative IF_IDX (s32) once raised OverflowError from if_indextoname."""
    inner = nla(1, struct.pack("<H", V4)) + nla(3, socket.inet_aton("10.0.0.1")) \
        + nla(7, struct.pack("<i", -5))
    data = nlmsg(28, 0, 1, struct.pack("<BBH", 1, 1, 0) + nla(1 | 0x8000, inner))
    ep = PM.decode_endpoint(nl.decode_genl(data))
    assert ep is not None and ep.addr == "10.0.0.1" and ep.if_index == -5 and ep.dev is None
    assert isinstance(mptcp.MPTCPError(1, "x"), OSError)
