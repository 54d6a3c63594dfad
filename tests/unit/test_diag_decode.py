"""sock_diag bytes -> Connection / SubflowInfo / DiagSubflow records.

The core's decoder is compared with the pure-Python reference (diag_reference.py)
on the same bytes: canned dumps shaped like the kernel's, every truncation of them,
corrupted copies and arbitrary bytes. Malformed input must never crash: the walk
stops or skips as documented there, and only NLMSG_ERROR/DONE codes raise (OSError
with the same errno as the reference).
"""

from __future__ import annotations

import errno
import pickle
import socket
import struct
from typing import Any, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mptcp
from mptcp import _mptcp as core
from mptcp import diag
from mptcp._backends.upstream import read

from . import diag_reference as dref
from . import reference as ref

HYPOTHESIS = settings(max_examples=300, deadline=None)
V4, V6 = socket.AF_INET, socket.AF_INET6
TOKEN = 0xAA79D9A1
ORPHAN = 0x0BADF00D


def _info_bytes(token: int, length: int = 96) -> bytes:
    buf = bytearray(96)
    struct.pack_into("<6B2xII", buf, 0, 1, 0, 0, 8, 0, 8, 2, token)
    struct.pack_into("<QQQ", buf, 16, 1, 2, 3)
    struct.pack_into("<I", buf, 84, 44)
    return bytes(buf[:length])


def _tcp_info(state: int = 1, length: int = 280, rtt: int = 86) -> bytes:
    buf = bytearray(max(length, 248))
    buf[0] = state
    struct.pack_into("<I", buf, 68, rtt)
    struct.pack_into("<I", buf, 80, 73)          # snd_cwnd
    struct.pack_into("<Q", buf, 120, 88753)      # bytes_acked
    struct.pack_into("<Q", buf, 200, 88752)      # bytes_sent
    return bytes(buf[:length])


def mptcp_dump(info_len: int = 96, seq: int = 1) -> bytes:
    out = b""
    out += dref.nlmsg(20, dref.diag_msg(V4, 1, ("10.1.1.2", 39010), ("10.1.1.1", 33399),
                                        uid=0, inode=82761,
                                        attrs=dref.attr(2, _info_bytes(TOKEN, info_len))), seq)
    out += dref.nlmsg(20, dref.diag_msg(V4, 10, ("0.0.0.0", 8080), ("0.0.0.0", 0),
                                        inode=7, attrs=dref.attr(2, _info_bytes(0))), seq)
    out += dref.done(0, seq)
    return out


def mptcp_dump6(seq: int = 1) -> bytes:
    msg = dref.diag_msg(V6, 1, ("fd00:1:1::2", 40000), ("fd00:1:1::1", 443), inode=9,
                        attrs=dref.attr(2, _info_bytes(0x1234)))
    return dref.nlmsg(20, msg, seq) + dref.done(0, seq)


def tcp_dump(seq: int = 1, seqs: bool = True) -> bytes:
    out = b""
    # the initial subflow, MP_CAPABLE
    out += dref.nlmsg(20, dref.diag_msg(
        V4, 1, ("10.1.1.2", 39010), ("10.1.1.1", 33399), inode=1,
        attrs=dref.attr(2, _tcp_info()) + dref.subflow_attrs(token=TOKEN, flags=0xC3,
                                                              seqs=seqs)), seq)
    # a plain TCP socket: no ULP, never a subflow
    out += dref.nlmsg(20, dref.diag_msg(V4, 1, ("10.1.1.2", 22), ("10.1.1.1", 5555),
                                        attrs=dref.attr(2, _tcp_info())), seq)
    # a joined backup subflow bound to device 11, with the nested flag on ULP_INFO
    out += dref.nlmsg(20, dref.diag_msg(
        V4, 1, ("10.1.2.2", 53597), ("10.1.1.1", 33399), if_index=11, inode=2,
        attrs=dref.attr(2, _tcp_info(rtt=40)) + dref.subflow_attrs(
            token=TOKEN, token_rem=0x72385A09, loc_id=1, flags=0xCC | 0x20, seqs=seqs)), seq)
    # a subflow of a connection that is not in the MPTCP dump
    out += dref.nlmsg(20, dref.diag_msg(
        V4, 1, ("10.1.1.2", 1), ("10.1.1.1", 2),
        attrs=dref.attr(2, _tcp_info()) + dref.subflow_attrs(token=99)), seq)
    # two closing subflows whose MPTCP socket is gone (FIN_WAIT1, LAST_ACK), one token
    for state, port in ((4, 3), (9, 4)):
        out += dref.nlmsg(20, dref.diag_msg(
            V4, state, ("10.1.2.2", port), ("10.1.1.1", 33399), if_index=11, uid=7,
            attrs=dref.attr(2, _tcp_info(state=state)) + dref.subflow_attrs(
                token=ORPHAN, loc_id=1, flags=0xCC)), seq)
    out += dref.done(0, seq)
    return out


def as_dict(rec: Any) -> Any:
    if rec is None:
        return None
    if isinstance(rec, tuple) and hasattr(rec, "_asdict"):
        return {k: as_dict(v) if k in ("info",) else
                [as_dict(x) for x in v] if isinstance(v, list) else v
                for k, v in rec._asdict().items()}
    return rec


def core_messages(data: bytes, tcp: bool) -> List[Any]:
    out = core.decode_diag_messages(data, tcp)
    if tcp:
        return [(as_dict(a), as_dict(b)) for a, b in out]
    return [as_dict(c) for c in out]


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except OSError as err:
        return ("error", err.errno)


# --------------------------------------------------------------------------------
# Canned dumps
# --------------------------------------------------------------------------------
def test_connections_grouped_by_token() -> None:
    conns = core.decode_diag_connections(mptcp_dump(), tcp_dump())
    assert [type(c) for c in conns] == [diag.Connection, diag.Connection]
    c, listener = conns
    assert c.token == TOKEN and c.state == mptcp.TCPState.ESTABLISHED
    assert c.local == ("10.1.1.2", 39010) and c.remote == ("10.1.1.1", 33399)
    assert c.inode == 82761 and c.family == V4
    assert isinstance(c.info, mptcp.MPTCPInfo) and c.info.token == TOKEN
    assert [s.local for s in c.subflows] == [("10.1.1.2", 39010), ("10.1.2.2", 53597)]
    assert [type(s) for s in c.subflows] == [mptcp.SubflowInfo] * 2
    assert [s.backup for s in c.subflows] == [False, True]
    assert [s.id for s in c.subflows] == [None, None]
    assert c.subflows[1].rtt_us == 40 and c.subflows[0].snd_cwnd == 73
    d0, d1 = c.subflow_diag
    assert isinstance(d1, diag.DiagSubflow)
    assert d1.flags == (diag.SubflowFlags.JOIN_REM | diag.SubflowFlags.JOIN_LOC
                        | diag.SubflowFlags.BKUP_LOC | diag.SubflowFlags.FULLY_ESTABLISHED
                        | diag.SubflowFlags.CONNECTED)
    assert isinstance(d1.flags, diag.SubflowFlags)
    assert (d1.loc_id, d1.rem_id, d1.if_index, d1.token, d1.token_rem) == (
        1, 0, 11, TOKEN, 0x72385A09)
    assert d0.map_seq == 2**63 + 5 and d0.map_datalen == 1400 and d0.relwrite_seq == 11
    assert listener.state == mptcp.TCPState.LISTEN and listener.subflows == []
    assert listener.token == 0


def test_orphaned_subflows_only_when_asked() -> None:
    # Subflows whose MPTCP socket is gone: left out by default (the same list as
    # before), one CLOSE entry per token with orphans=True, after the connections.
    plain = core.decode_diag_connections(mptcp_dump(), tcp_dump())
    assert [c.token for c in plain] == [TOKEN, 0]
    conns = core.decode_diag_connections(mptcp_dump(), tcp_dump(), orphans=True)
    assert conns[:2] == plain
    (gone,) = conns[2:]
    assert isinstance(gone, diag.Connection)
    assert (gone.token, gone.state, gone.local, gone.remote, gone.info, gone.inode,
            gone.if_index, gone.family, gone.uid) == (
        ORPHAN, mptcp.TCPState.CLOSE, None, None, None, 0, 0, V4, 7)
    assert gone.state is mptcp.TCPState.CLOSE
    assert [(s.local, s.state) for s in gone.subflows] == [(("10.1.2.2", 3), 4), (("10.1.2.2", 4), 9)]
    assert [(d.token, d.loc_id, d.if_index) for d in gone.subflow_diag] == [(ORPHAN, 1, 11)] * 2
    # the ESTABLISHED subflow with an unknown token (a connection opened between the
    # two dumps) is no orphan
    assert all(c.token != 99 for c in conns)
    assert core.DIAG_STATES_ORPHAN == sum(1 << s for s in dref.ORPHAN_STATES)


def test_unprivileged_dump_leaves_sequence_fields_none() -> None:
    c = core.decode_diag_connections(mptcp_dump(), tcp_dump(seqs=False))[0]
    d = c.subflow_diag[1]
    assert (d.relwrite_seq, d.map_seq, d.map_sfseq, d.ssn_offset, d.map_datalen) == (None,) * 5
    assert d.flags is not None and d.loc_id == 1 and c.subflows[1].backup is True


def test_ipv6_addresses_text() -> None:
    (c,) = core.decode_diag_messages(mptcp_dump6(), False)
    assert c.local == ("fd00:1:1::2", 40000) and c.remote == ("fd00:1:1::1", 443)
    assert c.family == V6 and c.token == 0x1234


@pytest.mark.parametrize("length", ref.HISTORICAL_INFO_LENGTHS)
def test_every_historical_mptcp_info_length(length: int) -> None:
    data = mptcp_dump(info_len=length)
    assert [as_dict(c) for c in core.decode_diag_messages(data, False)] == \
        dref.messages(data, False)
    c = core.decode_diag_messages(data, False)[0]
    assert c.token == (TOKEN if length >= 16 else None)


def test_records_module() -> None:
    for cls in (diag.Connection, diag.DiagSubflow, diag.SubflowFlags):
        assert cls.__module__ == "mptcp"


def test_records_pickle() -> None:
    # Pickle finds the classes as mptcp.<name>: the package must export them.
    missing = [n for n in ("Connection", "DiagSubflow", "SubflowFlags") if not hasattr(mptcp, n)]
    if missing:
        pytest.skip(f"mptcp does not export {', '.join(missing)} yet")
    c = core.decode_diag_connections(mptcp_dump(), tcp_dump())[0]
    for obj in (c, c.subflow_diag[0], c.subflow_diag[0].flags):
        assert pickle.loads(pickle.dumps(obj)) == obj


def test_error_and_done_codes_raise() -> None:
    with pytest.raises(OSError) as info:
        core.decode_diag_messages(dref.error(-errno.EPERM), False)
    assert info.value.errno == errno.EPERM and isinstance(info.value, mptcp.MPTCPError)
    with pytest.raises(OSError) as info:
        core.decode_diag_messages(dref.done(-errno.ENOENT), True)
    assert info.value.errno == errno.ENOENT
    # an ack (error 0) is not an error
    assert core.decode_diag_messages(dref.error(0) + mptcp_dump(), False)


def test_matches_reference_on_canned_dumps() -> None:
    for data, tcp in ((mptcp_dump(), False), (mptcp_dump6(), False), (tcp_dump(), True),
                      (tcp_dump(seqs=False), True)):
        assert core_messages(data, tcp) == dref.messages(data, tcp)
    for orphans in (False, True):
        assert [as_dict(c) for c in core.decode_diag_connections(
            mptcp_dump(), tcp_dump(), orphans)] == dref.connections(mptcp_dump(), tcp_dump(), orphans)


# --------------------------------------------------------------------------------
# Truncated and corrupted input: never a crash, always what the reference says
# --------------------------------------------------------------------------------
def _compare(data: bytes, tcp: bool) -> None:
    assert outcome(core_messages, data, tcp) == outcome(dref.messages, data, tcp)


@pytest.mark.parametrize("tcp", [False, True])
def test_every_truncation(tcp: bool) -> None:
    data = tcp_dump() if tcp else mptcp_dump()
    for n in range(len(data) + 1):
        _compare(data[:n], tcp)


@pytest.mark.parametrize("tcp", [False, True])
def test_truncated_inside_messages_with_fixed_headers(tcp: bool) -> None:
    """Shrink one message's payload but keep its nlmsg_len consistent, so the walk
    reaches the short inet_diag_msg and the cut attributes themselves."""
    dump = tcp_dump() if tcp else mptcp_dump()
    first_len = struct.unpack_from("<I", dump, 0)[0] - 16
    msg = dump[16:16 + first_len]
    for n in range(len(msg) + 1):
        data = dref.nlmsg(20, msg[:n]) + dref.done()
        _compare(data, tcp)


def test_attribute_lengths_lie() -> None:
    good = dref.diag_msg(V4, 1, ("10.0.0.1", 1), ("10.0.0.2", 2),
                         attrs=dref.attr(2, _tcp_info()) + dref.subflow_attrs(token=1))
    for off in range(72, len(good) - 1, 2):
        for value in (0, 3, 4, 5, 0xFFFF, 200):
            bad = bytearray(good)
            struct.pack_into("<H", bad, off, value)
            _compare(dref.nlmsg(20, bytes(bad)) + dref.done(), True)


@HYPOTHESIS
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes(data: bytes, tcp: bool) -> None:
    _compare(data, tcp)


@HYPOTHESIS
@given(st.data())
def test_corrupted_dumps(data: st.DataObject) -> None:
    tcp = data.draw(st.booleans())
    raw = bytearray(tcp_dump() if tcp else mptcp_dump())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _compare(bytes(raw[:cut]), tcp)
    mdump = bytes(raw[:cut]) if not tcp else mptcp_dump()
    tdump = bytes(raw[:cut]) if tcp else tcp_dump()
    orphans = data.draw(st.booleans())
    assert outcome(lambda: [as_dict(c) for c in core.decode_diag_connections(mdump, tdump, orphans)]) \
        == outcome(dref.connections, mdump, tdump, orphans)


# --------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------
def _ref_request(family: int, mptcp_: bool, states: int, seq: int,
                 bytecode: Optional[bytes]) -> bytes:
    req = struct.pack("<BBBBI", family, 0 if mptcp_ else 6, 2, 0, states)
    req += b"\0" * 40 + struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF)
    if mptcp_:
        req += dref.attr(3, struct.pack("<I", 262))
    if bytecode:
        req += dref.attr(1, bytecode)
    return struct.pack("<IHHII", 16 + len(req), 20, 0x301, seq, 0) + req


def test_requests_match_reference() -> None:
    states = core.DIAG_STATES_CONNECTED
    assert states == 0x1FFE & ~((1 << 10) | (1 << 7) | (1 << 6) | (1 << 3) | (1 << 12))
    for family in (V4, V6):
        for m in (False, True):
            assert core.diag_request(family, m, states, 7) == \
                _ref_request(family, m, states, 7, None)
    bc = struct.pack("<BBHBBH", 11, 8, 20, 0, 0, 5000) + struct.pack("<BBHBBH", 12, 8, 12, 0, 0, 80)
    assert core.diag_request(V4, False, states, 1, bc) == _ref_request(V4, False, states, 1, bc)


def test_subflow_flags_argument_checks() -> None:
    with pytest.raises(ValueError):
        read.subflow_flags(socket.AF_UNIX, ("1.2.3.4", 1), ("1.2.3.5", 2))
    with pytest.raises(TypeError):
        read.subflow_flags(V4, "1.2.3.4", ("1.2.3.5", 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        read.subflow_flags(V4, ("1.2.3.4", 70000), ("1.2.3.5", 2))
    with pytest.raises(ValueError):
        read.subflow_flags(V4, ("fd00::1", 1), ("1.2.3.5", 2))
    with pytest.raises(TypeError):
        diag.connections(listening=1)  # type: ignore[arg-type]
