"""The event decoder on canned messages, against a plain reference decoder."""

from __future__ import annotations

import errno
import pickle
import socket
import struct
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import events_reference as ref  # noqa: E402

import importlib  # noqa: E402

E = importlib.import_module("mptcp._events")
from mptcp import _args  # noqa: E402
from mptcp._backends.upstream import read  # noqa: E402
from mptcp._errors import EventsLostError  # noqa: E402
from mptcp._netlink.genl import AttrTable  # noqa: E402
from mptcp._netlink.mptcp_pm import EventAttr, EventReader, decode_event, decode_events  # noqa: E402
from mptcp._records import Event, EventType  # noqa: E402

FAM = 28  # any generic netlink family id >= 16


def nla(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * ((-len(raw)) % 4)


def u8(t: int, v: int) -> bytes:
    return nla(t, struct.pack("=B", v))


def u16(t: int, v: int) -> bytes:
    return nla(t, struct.pack("=H", v))


def be16(t: int, v: int) -> bytes:
    return nla(t, struct.pack(">H", v))


def u32(t: int, v: int) -> bytes:
    return nla(t, struct.pack("=I", v))


def s32(t: int, v: int) -> bytes:
    return nla(t, struct.pack("=i", v))


def v4(t: int, host: str) -> bytes:
    return nla(t, socket.inet_aton(host))


def v6(t: int, host: str) -> bytes:
    return nla(t, socket.inet_pton(socket.AF_INET6, host))


def msg(cmd: int, *attrs: bytes, mtype: int = FAM, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, seq, 0) + body


def as_dict(ev: Event) -> dict[str, Any]:
    d = ev._asdict()
    d["type"] = int(d["type"])
    return d


def check_same(data: bytes) -> Event:
    ev = decode_event(data)
    assert as_dict(ev) == ref.decode_message(data)
    return ev


TOKEN = 0xD16F18C0


def conn_attrs(family: int = socket.AF_INET) -> list[bytes]:
    if family == socket.AF_INET:
        addrs = [v4(EventAttr.SADDR4, "10.1.1.2"), v4(EventAttr.DADDR4, "10.1.1.1")]
    else:
        addrs = [v6(EventAttr.SADDR6, "fd00:1:1::2"), v6(EventAttr.DADDR6, "fd00:1:1::1")]
    return [
        u32(EventAttr.TOKEN, TOKEN),
        u16(EventAttr.FAMILY, family),
        *addrs,
        be16(EventAttr.SPORT, 51986),
        be16(EventAttr.DPORT, 39989),
        u8(EventAttr.LOC_ID, 0),
        u8(EventAttr.REM_ID, 0),
    ]


# ---------------------------------------------------------------- each type


def test_created_client_side_as_sent_by_6_18() -> None:
    # bytes recorded live: token c0186fd1 (host order), ports network order
    ev = check_same(msg(1, *conn_attrs()))
    assert ev == Event(
        EventType.CREATED, TOKEN, ("10.1.1.2", 51986), ("10.1.1.1", 39989),
        loc_id=0, rem_id=0, server_side=False, family=socket.AF_INET,
    )
    assert type(ev.type) is EventType and ev.type.name == "CREATED"


def test_established_server_side_attr_and_flags() -> None:
    ev = check_same(msg(2, *conn_attrs(), u8(EventAttr.SERVER_SIDE, 1), u16(EventAttr.FLAGS, 2)))
    assert ev.type is EventType.ESTABLISHED
    assert ev.server_side is True and ev.flags == 2


def test_server_side_from_flags_only() -> None:
    assert check_same(msg(1, *conn_attrs(), u16(EventAttr.FLAGS, 2))).server_side is True
    assert check_same(msg(1, *conn_attrs(), u16(EventAttr.FLAGS, 1))).server_side is False
    # the (older kernels') explicit 0 wins over the flags
    assert check_same(msg(1, *conn_attrs(), u8(EventAttr.SERVER_SIDE, 0))).server_side is False
    # other types: not carried
    assert check_same(msg(10, *conn_attrs(), u16(EventAttr.FLAGS, 2))).server_side is None


def test_closed_carries_only_token() -> None:
    ev = check_same(msg(3, u32(EventAttr.TOKEN, 7)))
    assert ev == Event(EventType.CLOSED, 7)
    assert ev.local is None and ev.server_side is None and ev.backup is None
    assert ev.family is None


def test_announced_v4_with_and_without_port() -> None:
    ev = check_same(msg(6, u32(1, TOKEN), u8(4, 1), be16(10, 39989), v4(7, "10.1.2.1")))
    assert ev.type is EventType.ANNOUNCED
    assert ev.remote == ("10.1.2.1", 39989) and ev.local is None and ev.rem_id == 1
    ev = check_same(msg(6, u32(1, TOKEN), u8(4, 2), v4(7, "10.1.2.1")))
    assert ev.remote == ("10.1.2.1", 0)


def test_announced_v6() -> None:
    ev = check_same(
        msg(6, u32(1, TOKEN), u16(2, socket.AF_INET6), u8(4, 3), v6(8, "fd00:1:2::1"))
    )
    assert ev.remote == ("fd00:1:2::1", 0) and ev.family == socket.AF_INET6


def test_removed() -> None:
    ev = check_same(msg(7, u32(1, TOKEN), u8(4, 1)))
    assert ev == Event(EventType.REMOVED, TOKEN, rem_id=1)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_sub_established_with_ifindex(family: int) -> None:
    ev = check_same(msg(10, *conn_attrs(family), u8(11, 0), s32(15, 11)))
    assert ev.type is EventType.SUB_ESTABLISHED and ev.family == family
    assert ev.backup is False and ev.if_index == 11 and ev.server_side is None
    if family == socket.AF_INET6:
        assert ev.local == ("fd00:1:1::2", 51986) and ev.remote == ("fd00:1:1::1", 39989)


def test_sub_closed_with_error_and_reset() -> None:
    ev = check_same(
        msg(11, *conn_attrs(), u8(11, 1), u8(12, errno.ECONNRESET), u32(16, 4), u32(17, 1))
    )
    assert ev.type is EventType.SUB_CLOSED
    assert (ev.backup, ev.error, ev.reset_reason, ev.reset_flags) == (
        True, errno.ECONNRESET, 4, 1,
    )


def test_sub_priority() -> None:
    ev = check_same(msg(13, *conn_attrs(), u8(11, 1)))
    assert ev.type is EventType.SUB_PRIORITY and ev.backup is True


def test_listener_events_as_sent_by_6_18() -> None:
    for cmd, etype in ((15, EventType.LISTENER_CREATED), (16, EventType.LISTENER_CLOSED)):
        ev = check_same(msg(cmd, u16(2, 2), be16(9, 39989), v4(5, "0.0.0.0")))
        assert ev == Event(etype, local=("0.0.0.0", 39989), family=socket.AF_INET)
        ev = check_same(msg(cmd, u16(2, 10), be16(9, 443), v6(6, "::")))
        assert ev.local == ("::", 443) and ev.token is None and ev.family == socket.AF_INET6


def test_every_attribute_at_once() -> None:
    data = msg(
        11, u32(1, 0xFFFFFFFF), u16(2, 10), u8(3, 255), u8(4, 254),
        v4(5, "1.2.3.4"), v6(6, "::1"), v4(7, "5.6.7.8"), v6(8, "fe80::1"),
        be16(9, 65535), be16(10, 1), u8(11, 1), u8(12, 104), u16(13, 0xFFFF),
        u32(14, 30), s32(15, -1), u32(16, 0xFFFFFFFF), u32(17, 2), u8(18, 1),
    )
    ev = check_same(data)
    # family AF_INET6 picks the v6 attributes
    assert ev.local == ("::1", 65535) and ev.remote == ("fe80::1", 1)
    assert (ev.token, ev.loc_id, ev.rem_id, ev.flags, ev.timeout, ev.if_index) == (
        0xFFFFFFFF, 255, 254, 0xFFFF, 30, -1,
    )
    assert ev.server_side is True and ev.reset_reason == 0xFFFFFFFF and ev.family == 10


def test_family_v4_prefers_v4_attr_and_missing_family_too() -> None:
    ev = check_same(msg(10, u16(2, 2), v4(5, "1.2.3.4"), v6(6, "::1")))
    assert ev.local == ("1.2.3.4", 0)
    ev = check_same(msg(10, v6(6, "::1"), v4(5, "1.2.3.4")))
    assert ev.local == ("1.2.3.4", 0)
    ev = check_same(msg(10, u16(2, 10), v4(5, "1.2.3.4")))  # v6 missing: fall back
    assert ev.local == ("1.2.3.4", 0)


# ---------------------------------------------------------------- robustness


def test_unknown_type_is_delivered_as_int() -> None:
    ev = check_same(msg(99, u32(1, 5), u8(3, 2)))
    assert ev.type == 99 and type(ev.type) is int and ev.token == 5 and ev.loc_id == 2


def test_unknown_attributes_are_ignored() -> None:
    ev = check_same(msg(3, nla(0, b"x"), u32(1, 9), nla(19, b"abcdefgh"), nla(0x3FFF, b""),
                        nla(200, b"\1\2\3")))
    assert ev == Event(EventType.CLOSED, 9)


def test_nested_and_byteorder_bits_are_masked() -> None:
    ev = check_same(msg(3, nla(1 | 0x4000, struct.pack("=I", 3))))
    assert ev.token == 3


def test_repeated_attribute_last_wins() -> None:
    assert check_same(msg(3, u32(1, 1), u32(1, 2))).token == 2


def test_short_attribute_payloads_read_as_absent() -> None:
    ev = check_same(msg(10, nla(1, b"\1\2"), nla(5, b"\1\2\3"), nla(9, b"\1"), u8(3, 1),
                        nla(6, b"\0" * 15), nla(11, b""), nla(15, b"\1\2\3")))
    assert ev.token is None and ev.local is None and ev.backup is None
    assert ev.if_index is None and ev.loc_id == 1


def test_long_attribute_payload_reads_from_start() -> None:
    ev = check_same(msg(3, nla(1, struct.pack("=IQ", 42, 7))))
    assert ev.token == 42


def test_truncated_attribute_ends_the_list() -> None:
    good = u32(1, 5)
    bad = struct.pack("=HH", 40, 3) + b"\1\2\3\4"  # claims 40 bytes
    ev = check_same(msg(3, good, bad))
    assert ev == Event(EventType.CLOSED, 5)
    # a zero-length attribute header (would loop forever if not stopped)
    ev = check_same(msg(3, good, struct.pack("=HH", 0, 4), u8(4, 1)))
    assert ev.rem_id is None
    # an attribute header cut in half
    ev = check_same(msg(3, good) + b"\x08\x00")
    assert ev.token == 5


def test_truncated_message_raises_valueerror() -> None:
    data = msg(1, *conn_attrs())
    for cut in (0, 10, 19, len(data) - 1):
        with pytest.raises(ValueError):
            decode_event(data[:cut])
        with pytest.raises(ValueError):
            ref.decode_message(data[:cut])
    bad_len = struct.pack("=I", 12) + data[4:]
    with pytest.raises(ValueError):
        decode_event(bad_len)


def test_decode_at_offset_with_reused_table() -> None:
    a, b = msg(3, u32(1, 1)), msg(7, u32(1, 2), u8(4, 9))
    data = a + b
    table = AttrTable(EventAttr)
    assert decode_event(data, 0, table=table) == Event(EventType.CLOSED, 1)
    assert decode_event(data, len(a), table=table) == Event(EventType.REMOVED, 2, rem_id=9)
    # the table was refilled: no leftover rem_id from the second message
    assert decode_event(data, 0, table=table).rem_id is None


def test_stream_skips_control_foreign_and_truncated_messages() -> None:
    noop = struct.pack("=IHHII", 16, 1, 0, 0, 0)
    err = struct.pack("=IHHII", 36, 2, 0, 0, 0) + b"\0" * 20
    foreign = msg(1, u32(1, 77), mtype=FAM + 1)
    short = struct.pack("=IHHII", 16, FAM, 0, 0, 0)  # no genl header
    one, two = msg(1, *conn_attrs()), msg(3, u32(1, TOKEN))
    data = noop + one + err + foreign + short + two + msg(3, u32(1, 3))[:-2]
    evs = decode_events(data, family_id=FAM)
    assert [e.type for e in evs] == [EventType.CREATED, EventType.CLOSED]
    assert [as_dict(e) for e in evs] == ref.decode_stream(data, FAM)
    # without a family id every genl-range type counts
    assert [e.token for e in decode_events(data)] == [TOKEN, 77, TOKEN]
    assert [as_dict(e) for e in decode_events(data)] == ref.decode_stream(data)
    # length limits the view
    assert decode_events(data, len(noop) + len(one), family_id=FAM)[0].type == 1
    assert decode_events(data, len(noop) + len(one) - 1, family_id=FAM) == []


def test_monitor_take_filters_family_and_token() -> None:
    mon = E.EventMonitor.__new__(E.EventMonitor)  # no socket: exercise the buffer path
    mon._reader = EventReader(FAM)
    mon._token = TOKEN
    data = (msg(1, u32(1, 1)) + msg(1, *conn_attrs(), mtype=FAM + 1) + msg(3, u32(1, TOKEN))
            + struct.pack("=IHHII", 16, 1, 0, 0, 0) + msg(7, u32(1, TOKEN), u8(4, 1)))
    mon._reader.reset(bytearray(data), len(data))
    assert mon._take() == Event(EventType.CLOSED, TOKEN)
    assert mon._take() == Event(EventType.REMOVED, TOKEN, rem_id=1)
    assert mon._take() is None and mon._reader.pos == len(data)
    mon._closed = True  # keep __del__ quiet


# ---------------------------------------------------------------- records


def test_record_types() -> None:
    assert Event.__module__ == "mptcp" and EventType.__module__ == "mptcp"
    assert [int(t) for t in EventType] == [1, 2, 3, 6, 7, 10, 11, 13, 15, 16]
    assert Event._fields == ref.FIELDS
    ev = Event(EventType.CLOSED, 1)
    with pytest.raises(AttributeError):
        ev.token = 2  # type: ignore[misc]
    assert hash(ev) == hash(Event(EventType.CLOSED, 1))


def test_records_pickle_through_the_package() -> None:
    import mptcp

    if "Event" not in dir(mptcp) and not hasattr(mptcp, "Event"):
        pytest.skip("mptcp.Event is not exported yet (mptcp/__init__.py)")
    ev = Event(EventType.SUB_ESTABLISHED, 5, ("1.2.3.4", 1), ("::1", 2), backup=True)
    assert pickle.loads(pickle.dumps(ev)) == ev
    assert pickle.loads(pickle.dumps(EventType.CREATED)) is EventType.CREATED


def test_lost_error_is_events_lost() -> None:
    err = E._lost_error()
    assert isinstance(err, EventsLostError) and err.errno == errno.ENOBUFS
    assert "dropped" in str(err) and "stays usable" in str(err)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize("bad", [True, 1.5, "1", object()])
def test_token_type_errors(bad: Any) -> None:
    with pytest.raises(TypeError):
        read.token_of(bad, "events")


@pytest.mark.parametrize("bad", [-1, 2**32])
def test_token_range(bad: int) -> None:
    with pytest.raises(ValueError):
        read.token_of(bad, "events")


def test_token_of_plain_tcp_socket_is_not_mptcp() -> None:
    from mptcp import NotMPTCPError

    with socket.socket() as s:
        with pytest.raises(NotMPTCPError):
            read.token_of(s, "events")
        assert s.fileno() >= 0  # not closed by the lookup
    assert read.token_of(0xFFFFFFFF, "events") == 0xFFFFFFFF


@pytest.mark.parametrize("bad,exc", [(True, TypeError), ("1", TypeError), (0, ValueError),
                                     (-5, ValueError), (2**31, ValueError)])
def test_rcvbuf_checks(bad: Any, exc: type) -> None:
    with pytest.raises(exc):
        _args.rcvbuf(bad)


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (float("nan"), ValueError),
                                     ("1", TypeError), (True, TypeError)])
def test_timeout_checks(bad: Any, exc: type) -> None:
    with pytest.raises(exc):
        _args.optional_timeout(bad)


# ---------------------------------------------------------------- differential


_attr_value = st.one_of(
    st.binary(max_size=20),
    st.integers(0, 255).map(lambda v: bytes([v])),
    st.integers(0, 0xFFFF).map(lambda v: struct.pack("=H", v)),
    st.integers(0, 0xFFFFFFFF).map(lambda v: struct.pack("=I", v)),
    st.binary(min_size=16, max_size=16),
)
_attr = st.tuples(st.integers(0, 24) | st.integers(0, 0xFFFF), _attr_value).map(
    lambda t: nla(t[0], t[1])
)


@settings(max_examples=400, deadline=None)
@given(cmd=st.integers(0, 255), attrs=st.lists(_attr, max_size=20), tail=st.binary(max_size=6))
def test_structured_messages_match_reference(cmd: int, attrs: list[bytes], tail: bytes) -> None:
    check_same(msg(cmd, *attrs))
    # garbage after the message inside the length (a truncated trailing attribute)
    data = msg(cmd, *attrs)
    body = data[16:] + tail
    data = struct.pack("=IHHII", 16 + len(body), FAM, 0, 0, 0) + body
    check_same(data)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_match_reference(data: bytes) -> None:
    try:
        want: Optional[dict[str, Any]] = ref.decode_message(data)
    except ValueError:
        want = None
    if want is None:
        with pytest.raises(ValueError):
            decode_event(data)
    else:
        assert as_dict(decode_event(data)) == want
    assert [as_dict(e) for e in decode_events(data)] == ref.decode_stream(data)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(st.integers(0, 20), st.lists(_attr, max_size=6)), max_size=6),
       cut=st.integers(0, 40))
def test_streams_match_reference(parts: list[tuple[int, list[bytes]]], cut: int) -> None:
    data = b"".join(msg(c, *a) for c, a in parts)
    data = data[: max(0, len(data) - cut)]
    assert [as_dict(e) for e in decode_events(data, family_id=FAM)] == ref.decode_stream(data, FAM)
