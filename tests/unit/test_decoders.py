"""The Cython decoders against the pure-Python reference, on the same kernel bytes."""

from __future__ import annotations

import pickle
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mptcp
from mptcp import _mptcp as core

from . import reference as ref

HYPOTHESIS = settings(max_examples=300, deadline=None)


def _as_dict(rec):  # type: ignore[no-untyped-def]
    return rec._asdict()


def _canned_info() -> bytes:
    values = {
        "subflows": 1, "add_addr_signal": 2, "add_addr_accepted": 3, "subflows_max": 8,
        "add_addr_signal_max": 4, "add_addr_accepted_max": 8, "flags": 3,
        "token": 0xDEADBEEF, "write_seq": 2**64 - 1, "snd_una": 12345, "rcv_nxt": 2**40,
        "local_addr_used": 1, "local_addr_max": 2, "csum_enabled": 1, "retransmits": 7,
        "bytes_retrans": 8, "bytes_sent": 9, "bytes_received": 10, "bytes_acked": 11,
        "subflows_total": 2, "endp_laminar_max": 3, "endp_fullmesh_max": 4,
        "last_data_sent": 100, "last_data_recv": 200, "last_ack_recv": 300,
    }
    buf = bytearray(96)
    for name, code, off in ref.MPTCP_INFO_LAYOUT:
        struct.pack_into("<" + code, buf, off, values[name])
    return bytes(buf)


@pytest.mark.parametrize("length", ref.HISTORICAL_INFO_LENGTHS)
def test_mptcp_info_every_historical_length(length: int) -> None:
    data = _canned_info()[:length]
    rec = core.decode_mptcp_info(data)
    assert isinstance(rec, mptcp.MPTCPInfo)
    assert _as_dict(rec) == ref.mptcp_info(data)


def test_mptcp_info_values() -> None:
    rec = core.decode_mptcp_info(_canned_info())
    assert rec.token == 0xDEADBEEF and rec.write_seq == 2**64 - 1
    assert rec.fallback is True and rec.last_ack_recv == 300
    # before 6.5: no byte counters
    old = core.decode_mptcp_info(_canned_info()[:44])
    assert old.bytes_sent is None and old.token == 0xDEADBEEF and old.csum_enabled == 1


@HYPOTHESIS
@given(st.binary(max_size=140))
def test_mptcp_info_arbitrary_bytes(data: bytes) -> None:
    assert _as_dict(core.decode_mptcp_info(data)) == ref.mptcp_info(data)


def _full_info_bytes(subs, ti_kernel=280, sf_kernel=264, arrays=8, num=None):  # type: ignore[no-untyped-def]
    ti_user, sf_user = core.SIZEOF_TCP_INFO, core.SIZEOF_SUBFLOW_INFO
    header = struct.pack("<6I", ti_kernel, ti_user, sf_kernel, sf_user,
                         len(subs) if num is None else num, arrays)
    header += struct.pack("<QQ", 0, 0) + _canned_info()
    sfinfo = b"".join(struct.pack("<II", sid, 0) + ref.sockaddr_in(*loc) + ref.sockaddr_in(*rem)
                      for sid, loc, rem, _ in subs)
    tcpinfo = b""
    for _, _, _, state in subs:
        ti = bytearray(ti_user)
        for i in range(ti_user):
            ti[i] = (i * 7 + state) & 0xFF
        ti[0] = state
        tcpinfo += bytes(ti)
    return header, sfinfo, tcpinfo


def test_full_info_two_subflows_v4_v6() -> None:
    subs = [(1, ("10.0.1.2", 40000), ("10.0.1.1", 80), 1),
            (3, ("fd00:1:2::2", 1), ("fd00:1:1::1", 65535), 1),
            (2, ("10.0.2.2", 5), ("10.0.1.1", 80), 7)]  # TCP_CLOSE: left out
    header, sfinfo, tcpinfo = _full_info_bytes(subs)
    info, got = core.decode_full_info(header, sfinfo, tcpinfo)
    ref_info, want = ref.full_info(header, sfinfo, tcpinfo)
    assert _as_dict(info) == ref_info
    assert [_as_dict(r) for r in got] == want
    assert [r.id for r in got] == [1, 3]
    assert got[1].local == ("fd00:1:2::2", 1) and got[1].remote == ("fd00:1:1::1", 65535)
    assert all(isinstance(r, mptcp.SubflowInfo) for r in got)
    _, with_closed = core.decode_full_info(header, sfinfo, tcpinfo, live_only=False)
    assert [r.id for r in with_closed] == [1, 3, 2]


@pytest.mark.parametrize("ti_kernel", [0, 1, 104, 136, 168, 216, 232, 236, 248, 280])
def test_full_info_older_tcp_info(ti_kernel: int) -> None:
    header, sfinfo, tcpinfo = _full_info_bytes([(1, ("10.0.0.1", 1), ("10.0.0.2", 2), 1)],
                                               ti_kernel=ti_kernel)
    _, got = core.decode_full_info(header, sfinfo, tcpinfo)
    assert [_as_dict(r) for r in got] == ref.full_info(header, sfinfo, tcpinfo)[1]


def test_full_info_reports_more_than_the_arrays_hold() -> None:
    header, sfinfo, tcpinfo = _full_info_bytes(
        [(i, ("10.0.0.1", i), ("10.0.0.2", 2), 1) for i in range(1, 4)], num=9, arrays=3)
    _, got = core.decode_full_info(header, sfinfo, tcpinfo)
    assert [r.id for r in got] == [1, 2, 3]


def test_full_info_short_header_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="40 bytes"):
        core.decode_full_info(b"\0" * 39, b"", b"")


@HYPOTHESIS
@given(st.binary(min_size=40, max_size=140), st.binary(max_size=600), st.binary(max_size=600),
       st.booleans())
def test_full_info_arbitrary_bytes(header: bytes, sfinfo: bytes, tcpinfo: bytes, live: bool) -> None:
    info, got = core.decode_full_info(header, sfinfo, tcpinfo, live)
    ref_info, want = ref.full_info(header, sfinfo, tcpinfo, live)
    assert _as_dict(info) == ref_info
    assert [_as_dict(r) for r in got] == want


@HYPOTHESIS
@given(st.integers(0, 8), st.integers(0, 300), st.integers(0, 300), st.integers(0, 3))
def test_full_info_structured_sizes(n: int, ti_kernel: int, sf_kernel: int, cut: int) -> None:
    rng = random.Random(n * 1000 + ti_kernel)
    subs = [(rng.randrange(1, 2**32), ("10.0.0.%d" % rng.randrange(256), rng.randrange(65536)),
             ("fd00::%x" % rng.randrange(65536), rng.randrange(65536)), rng.choice([1, 7, 10]))
            for _ in range(n)]
    header, sfinfo, tcpinfo = _full_info_bytes(subs, ti_kernel=ti_kernel, sf_kernel=sf_kernel)
    sfinfo = sfinfo[: len(sfinfo) - cut * 50]
    _, got = core.decode_full_info(header, sfinfo, tcpinfo)
    assert [_as_dict(r) for r in got] == ref.full_info(header, sfinfo, tcpinfo)[1]


@pytest.mark.parametrize("kind", ["tcpinfo", "addrs"])
@HYPOTHESIS
@given(data=st.binary(min_size=16, max_size=700))
def test_subflow_data_arbitrary_bytes(kind: str, data: bytes) -> None:
    num, got = core.decode_subflow_data(data, kind)
    ref_num, want = ref.subflow_data(data, kind)
    assert num == ref_num
    if kind == "addrs":
        assert got == want
    else:
        assert [_as_dict(r) for r in got] == want


def test_subflow_data_addrs_canned() -> None:
    elems = ref.sockaddr_in("10.0.1.2", 1234) + ref.sockaddr_in("10.0.1.1", 80)
    data = struct.pack("<4I", 16, 1, 256, 256) + elems
    assert core.decode_subflow_data(data, "addrs") == (1, [(("10.0.1.2", 1234), ("10.0.1.1", 80))])
    with pytest.raises(ValueError):
        core.decode_subflow_data(data[:15], "addrs")
    with pytest.raises(ValueError):
        core.decode_subflow_data(data, "bogus")


def test_records_pickle_and_module() -> None:
    rec = core.decode_mptcp_info(_canned_info())
    assert pickle.loads(pickle.dumps(rec)) == rec
    header, sfinfo, tcpinfo = _full_info_bytes([(1, ("10.0.0.1", 1), ("10.0.0.2", 2), 1)])
    sub = core.decode_full_info(header, sfinfo, tcpinfo)[1][0]
    assert pickle.loads(pickle.dumps(sub)) == sub
    for cls in (mptcp.MPTCPInfo, mptcp.SubflowInfo, mptcp.Subflow):
        assert cls.__module__ == "mptcp"


def test_make_subflow_derives_backup() -> None:
    assert core.make_subflow(1, ("a", 1), ("b", 2), 1, None).backup is True
    assert core.make_subflow(1, ("a", 1), ("b", 2), 0, None).backup is False
    assert core.make_subflow(1, ("a", 1), ("b", 2), None, None).backup is None


def test_ids_decoder_sorts_and_owns_every_id() -> None:
    # ids are never reused, so they pass 256, where ints stop being shared small
    # ints: the list must own each (a refcount slip once freed ints still listed)
    import sys

    subs = [(70000, ("10.0.0.1", 1), ("10.0.0.2", 2), 1), (3, ("10.0.0.1", 3), ("10.0.0.2", 2), 1),
            (257, ("10.0.0.1", 4), ("10.0.0.2", 2), 7), (2**32 - 1, ("10.0.0.1", 5), ("10.0.0.2", 2), 1)]
    header, sfinfo, tcpinfo = _full_info_bytes(subs)
    for _ in range(1000):
        ids = core.decode_full_info_ids(header, sfinfo, tcpinfo)
        assert ids == [3, 70000, 2**32 - 1]  # 257 is in TCP_CLOSE
        assert all(sys.getrefcount(i) >= 2 for i in ids)
    want = sorted(r["id"] for r in ref.full_info(header, sfinfo, tcpinfo)[1])
    assert ids == want
    # arrays shorter than the header claims: only what is there is read
    assert core.decode_full_info_ids(header, sfinfo[:264], tcpinfo) == [70000]


def _addr_set(host: str, port: int) -> int:
    """The core's address-cache set of an IPv4 sockaddr (mirrors decode_sockaddr)."""
    import socket as _socket

    h = struct.unpack("=H", struct.pack("!H", port))[0]  # the port as stored: network order
    for b in _socket.inet_aton(host) + bytes(12):
        h = (h * 31 + b) & 0xFFFFFFFF
    return (h ^ (h >> 7)) % 64


def test_address_cache_keeps_two_colliding_addresses() -> None:
    # Two subflow addresses in one cache set must both stay cached (same tuple
    # objects on the next decode); a third in that set evicts the oldest and every
    # value stays right.
    host = "10.0.1.2"
    first = _addr_set(host, 40000)
    ports = [p for p in range(40000, 60000) if _addr_set(host, p) == first][:3]
    assert len(ports) == 3
    remote = ref.sockaddr_in("10.0.1.1", 80)

    def decode(*ps: int) -> list:  # type: ignore[type-arg]
        elems = b"".join(ref.sockaddr_in(host, p) + remote for p in ps)
        data = struct.pack("<4I", 16, len(ps), 256, 256) + elems
        return [local for local, _ in core.decode_subflow_data(data, "addrs")[1]]

    a1, b1 = decode(ports[0], ports[1])
    a2, b2 = decode(ports[0], ports[1])
    assert (a1, b1) == ((host, ports[0]), (host, ports[1]))
    assert a2 is a1 and b2 is b1
    assert decode(ports[2], ports[0], ports[1]) == [(host, p) for p in (ports[2], ports[0], ports[1])]


def test_address_cache_promotes_a_hit_in_the_second_way() -> None:
    # A set whose second way holds an address (what earlier decodes may leave
    # behind): using it must make it the most recent, so the next new address in the
    # set evicts the other entry. Without that, two colliding subflow addresses
    # evicted each other on every poll after such a history.
    host = "10.0.1.2"
    first = _addr_set(host, 41000)
    p0, p1, other = [p for p in range(41000, 61000) if _addr_set(host, p) == first][:3]
    remote = ref.sockaddr_in("10.0.1.1", 80)

    def decode(*ps: int) -> list:  # type: ignore[type-arg]
        elems = b"".join(ref.sockaddr_in(host, p) + remote for p in ps)
        data = struct.pack("<4I", 16, len(ps), 256, 256) + elems
        return [local for local, _ in core.decode_subflow_data(data, "addrs")[1]]

    decode(p0)
    decode(other)  # the set now holds other, then p0 in its second way
    a1, b1 = decode(p0, p1)
    a2, b2 = decode(p0, p1)
    assert a2 is a1 and b2 is b1
