"""Generic netlink encoding/decoding on canned bytes, ext-ack parsing, validation."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

import mptcp
from mptcp import _args as A
from mptcp import pm as P
from mptcp._backends.upstream import control as uc
from mptcp._backends.upstream import read, sockopt
from mptcp._netlink import genl as nl
from mptcp._netlink import mptcp_pm as PM
from mptcp._errors import (
    MPTCPPermissionError,
    NotMPTCPError,
    PathManagerError,
    SubflowNotFoundError,
    UnsupportedOperationError,
)


def nla(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * ((-len(raw)) % 4)


def nlmsg(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


# ---------------------------------------------------------------- encoder


def test_encoder_header_and_scalars() -> None:
    e = nl.Encoder(16)  # small on purpose: must grow
    e.begin(28, 10, nl.NLM_F_ACK, 7, version=1)
    e.put_u32(4, 0xDEADBEEF)
    e.put_u8(5, 3)
    e.put_u16(1, 2)
    e.put_be16(9, 0x1234)
    e.put_s32(7, -1)
    e.put_u64(3, 1 << 40)
    out = bytes(e.finish())
    body = (
        bytes([10, 1, 0, 0])
        + nla(4, struct.pack("=I", 0xDEADBEEF))
        + nla(5, b"\x03")
        + nla(1, struct.pack("=H", 2))
        + nla(9, b"\x12\x34")
        + nla(7, struct.pack("=i", -1))
        + nla(3, struct.pack("=Q", 1 << 40))
    )
    assert out == nlmsg(28, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 7, body)
    assert e.seq == 7


def test_encoder_nested_and_bytes_padding_reused_buffer() -> None:
    e = nl.Encoder()
    # dirty the buffer first: padding must be zeroed on reuse
    e.begin(1, 1, 0, 1)
    e.put_bytes(1, b"\xff" * 40)
    e.finish()
    e.begin(28, 10, 0, 2)
    start = e.nest_start(1)
    e.put_u16(1, socket.AF_INET)
    e.put_bytes(3, socket.inet_aton("10.0.2.1"))
    e.put_str(8, "ab")
    e.nest_end(start)
    out = bytes(e.finish())
    inner = nla(1, struct.pack("=H", 2)) + nla(3, bytes([10, 0, 2, 1])) + nla(8, b"ab\0")
    nest = struct.pack("=HH", 4 + len(inner), 1 | nl.NLA_F_NESTED) + inner
    assert out == nlmsg(28, nl.NLM_F_REQUEST, 2, bytes([10, 1, 0, 0]) + nest)


def test_put_addr_port_is_host_byte_order() -> None:
    # The kernel reads MPTCP_PM_ADDR_ATTR_PORT in host order, although the netlink
    # spec says big-endian (network order connected to the wrong port, checked live).
    e = nl.Encoder()
    e.begin(28, PM.Cmd.SUBFLOW_CREATE, 0, 1)
    PM.put_addr(e, PM.PmAttr.ADDR_REMOTE, A.host("address", "10.0.1.1"), port=0x1F90)
    msg = nl.decode_genl(bytes(e.finish()))
    a = msg.attrs.nested(PM.PmAttr.ADDR_REMOTE, nl.AttrTable(PM.AddrAttr))
    assert a is not None
    assert a.u16(PM.AddrAttr.PORT) == 0x1F90
    assert a.bytes(PM.AddrAttr.PORT) == struct.pack("=H", 0x1F90)
    assert a.u16(PM.AddrAttr.FAMILY) == socket.AF_INET
    assert a.bytes(PM.AddrAttr.ADDR4) == bytes([10, 0, 1, 1])


# ---------------------------------------------------------------- decoding


def test_iter_attrs_and_table() -> None:
    payload = nla(1, b"\x05") + nla(2, struct.pack("=I", 42)) + nla(30, b"zz") + nla(2 | nl.NLA_F_NET_BYTEORDER, struct.pack("=I", 43))
    assert [(t, ln) for t, _o, ln in nl.iter_attrs(payload, 0, len(payload))] == [
        (1, 1), (2, 4), (30, 2), (2, 4)
    ]
    t = nl.AttrTable(4).parse(payload, 0, len(payload))
    assert t.u8(1) == 5
    assert t.u32(2) == 43  # last wins
    assert 30 not in t and 3 not in t
    assert t.u32(3) is None and t.u32(3, 9) == 9
    # refill in place: old entries vanish
    t.parse(nla(3, b"\x01\x02"), 0, 8)
    assert 1 not in t and t.u16(3) == 0x0201 and t.be16(3) == 0x0102
    assert t.types() == [3]


def test_truncated_attributes_stop() -> None:
    payload = nla(1, b"\x05") + struct.pack("=HH", 200, 2) + b"\0" * 4
    assert [t for t, *_ in nl.iter_attrs(payload, 0, len(payload))] == [1]
    t = nl.AttrTable(4).parse(payload, 0, len(payload))
    assert t.types() == [1]
    # too short for the type asked
    assert nl.AttrTable(2).parse(nla(1, b"\x01"), 0, 8).u32(1) is None


def test_decode_event_from_bytes() -> None:
    # A SUB_ESTABLISHED event as the kernel sends it (ports in network order).
    body = bytes([10, 1, 0, 0]) + b"".join([
        nla(1, struct.pack("=I", 0x1295CE36)),
        nla(2, struct.pack("=H", 2)),
        nla(3, b"\x01"),
        nla(5, bytes([10, 1, 2, 2])),
        nla(7, bytes([10, 1, 1, 1])),
        nla(9, struct.pack(">H", 59353)),
        nla(10, struct.pack(">H", 37549)),
        nla(11, b"\x00"),
    ])
    raw = nlmsg(28, 0, 0, body)
    table = nl.AttrTable(PM.EventAttr)
    msg = nl.decode_genl(raw, into=table)
    assert msg.cmd == mptcp.EventType.SUB_ESTABLISHED and msg.attrs is table
    assert table.u32(PM.EventAttr.TOKEN) == 0x1295CE36
    assert table.be16(PM.EventAttr.SPORT) == 59353
    assert table.be16(PM.EventAttr.DPORT) == 37549
    assert table.bytes(PM.EventAttr.SADDR4) == bytes([10, 1, 2, 2])
    # two messages in one datagram, found by offset
    both = raw + raw
    offs = [o for o, *_ in nl.iter_messages(both, len(both))]
    assert offs == [0, len(raw)]
    with pytest.raises(ValueError):
        nl.decode_genl(raw[:10])


def test_decode_endpoint() -> None:
    inner = b"".join([
        nla(PM.AddrAttr.FAMILY, struct.pack("=H", socket.AF_INET6)),
        nla(PM.AddrAttr.ID, b"\x07"),
        nla(PM.AddrAttr.ADDR6, socket.inet_pton(socket.AF_INET6, "fd00:1:2::2")),
        nla(PM.AddrAttr.PORT, struct.pack("=H", 8080)),
        nla(PM.AddrAttr.FLAGS, struct.pack("=I", 1 | 4)),
    ])
    body = bytes([PM.Cmd.GET_ADDR, 1, 0, 0]) + struct.pack("=HH", 4 + len(inner), PM.PmAttr.ADDR | nl.NLA_F_NESTED) + inner
    ep = PM.decode_endpoint(nl.decode_genl(nlmsg(28, 2, 1, body)))
    assert ep == mptcp.Endpoint(7, "fd00:1:2::2", 8080, mptcp.EndpointFlags.SIGNAL | mptcp.EndpointFlags.BACKUP, None, None)
    assert ep.backup


def test_family_from_reply() -> None:
    grp = nla(1, nla(nl.CTRL_ATTR_MCAST_GRP_NAME, b"mptcp_pm_events\0") + nla(nl.CTRL_ATTR_MCAST_GRP_ID, struct.pack("=I", 9)))
    body = bytes([1, 2, 0, 0]) + nla(nl.CTRL_ATTR_FAMILY_ID, struct.pack("=H", 28)) + nla(
        nl.CTRL_ATTR_FAMILY_NAME, b"mptcp_pm\0") + nla(nl.CTRL_ATTR_VERSION, struct.pack("=I", 1)) + struct.pack(
        "=HH", 4 + len(grp), nl.CTRL_ATTR_MCAST_GROUPS | nl.NLA_F_NESTED) + grp
    fam = nl.family_from_reply(nl.decode_genl(nlmsg(nl.GENL_ID_CTRL, 0, 1, body)))
    assert fam == nl.GenlFamily("mptcp_pm", 28, 1, {"mptcp_pm_events": 9})


# ---------------------------------------------------------------- ext-ack


def _err(err: int, flags: int, tlvs: bytes, request: bytes = b"") -> bytes:
    echoed = request or struct.pack("=IHHII", 36, 28, 5, 7, 0)
    return nlmsg(nl.NLMSG_ERROR, flags, 7, struct.pack("=i", -err) + echoed + tlvs)


def test_parse_error_capped_with_message() -> None:
    raw = _err(errno.EINVAL, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS,
               nla(nl.NLMSGERR_ATTR_MSG, b"userspace PM not selected\0") + nla(nl.NLMSGERR_ATTR_OFFS, struct.pack("=I", 24)))
    ack = nl.parse_error(raw)
    assert ack == nl.NetlinkAck(errno.EINVAL, 7, "userspace PM not selected", 24, None)


def test_parse_error_uncapped_skips_request() -> None:
    req = struct.pack("=IHHII", 28, 28, 5, 7, 0) + bytes([10, 1, 0, 0]) + nla(4, struct.pack("=I", 1))
    raw = _err(errno.EINVAL, nl.NLM_F_ACK_TLVS, nla(nl.NLMSGERR_ATTR_MISS_TYPE, struct.pack("=I", 6)), req)
    ack = nl.parse_error(raw)
    assert ack.error == errno.EINVAL and ack.message is None and ack.missing_type == 6
    assert nl._ack_text(ack) == "missing attribute 6"


def test_parse_error_plain_ack() -> None:
    ack = nl.parse_error(_err(0, nl.NLM_F_CAPPED, b""))
    assert ack.error == 0 and ack.message is None
    with pytest.raises(ValueError):
        nl.parse_error(nlmsg(nl.NLMSG_DONE, 0, 1, b"\0" * 4))


def _request() -> bytes:
    """A SUBFLOW_CREATE as PMSocket encodes it: TOKEN, ADDR{FAMILY, ADDR4, ID}, ADDR_REMOTE{..}."""
    e = nl.Encoder()
    e.begin(28, PM.Cmd.SUBFLOW_CREATE, nl.NLM_F_ACK, 7)
    e.put(PM.PmAttr.TOKEN, 0x1234)
    PM.put_addr(e, PM.PmAttr.ADDR, A.host("a", "10.0.2.2"), id=3)
    PM.put_addr(e, PM.PmAttr.ADDR_REMOTE, A.host("a", "10.0.1.1"), port=80)
    return bytes(e.finish())


def test_locate_attr_top_level_nested_and_outside() -> None:
    req = _request()
    # offsets as the kernel reports them: the start of the attribute's header
    top = [(t, off - 4) for t, off, _ln in nl.iter_attrs(req, 20, len(req))]
    assert [t for t, _ in top] == [PM.PmAttr.TOKEN, PM.PmAttr.ADDR, PM.PmAttr.ADDR_REMOTE]
    for t, off in top:
        assert nl.locate_attr(req, off) == (t,)
    addr_off = top[1][1]
    inner = [(t, off - 4) for t, off, _ln in nl.iter_attrs(req, addr_off + 4, top[2][1])]
    assert [t for t, _ in inner] == [PM.AddrAttr.FAMILY, PM.AddrAttr.ADDR4, PM.AddrAttr.ID]
    for t, off in inner:
        assert nl.locate_attr(req, off) == (PM.PmAttr.ADDR, t)
    # inside a plain attribute's payload: that attribute
    assert nl.locate_attr(req, top[0][1] + 5) == (PM.PmAttr.TOKEN,)
    # the headers, past the end, nothing given
    for off in (0, 19, len(req), len(req) + 40, None):
        assert nl.locate_attr(req, off) is None
    assert nl.locate_attr(b"short", 4) is None


class _Canned(nl.GenlSocket):
    """A GenlSocket without a kernel: send() records, recv() plays canned datagrams."""

    def __init__(self, *replies: bytes) -> None:  # no super(): nothing is opened
        self._sock = None
        self._min_version = None
        self._error_hook = nl._default_error
        self._enc = nl.Encoder()
        self._rbuf = bytearray(65536)
        self._rview = memoryview(self._rbuf)
        self._seq = 6  # the next request gets seq 7, as the canned replies say
        self.family = nl.GenlFamily("mptcp_pm", 28, 1, {})
        self.replies = list(replies)
        self.sent: list[bytes] = []

    def _send(self, data: memoryview) -> None:
        self.sent.append(bytes(data))

    def _recv(self) -> int:
        data = self.replies.pop(0)
        self._rbuf[: len(data)] = data
        return len(data)


def _fill_create(e: nl.Encoder) -> None:
    e.put(PM.PmAttr.TOKEN, 0x1234)
    PM.put_addr(e, PM.PmAttr.ADDR, A.host("a", "10.0.2.2"), id=3)
    PM.put_addr(e, PM.PmAttr.ADDR_REMOTE, A.host("a", "10.0.1.1"), port=80)


def test_request_refusal_names_the_attribute_and_keeps_it_as_cause() -> None:
    req = _request()
    addr_off = [off - 4 for t, off, _ln in nl.iter_attrs(req, 20, len(req))][1]
    ack = _err(errno.EINVAL, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS,
               nla(nl.NLMSGERR_ATTR_MSG, b"did not match address and id\0")
               + nla(nl.NLMSGERR_ATTR_OFFS, struct.pack("=I", addr_off)))
    seen: list[tuple[object, ...]] = []

    def hook(err: int, text: object, cmd: int, what: str, attr: object) -> mptcp.MPTCPError:
        seen.append((err, text, cmd, what, attr))
        return PathManagerError(err, what)

    s = _Canned(ack)
    with pytest.raises(PathManagerError) as info:
        s.request(PM.Cmd.SUBFLOW_CREATE, _fill_create, what="open_sub", error_hook=hook)
    assert s.sent == [req]
    assert seen == [(errno.EINVAL, "did not match address and id", PM.Cmd.SUBFLOW_CREATE,
                     "open_sub", (PM.PmAttr.ADDR,))]
    refusal = nl.refusal_of(info.value)
    assert refusal is not None and refusal.errno == errno.EINVAL
    assert refusal.cmd == PM.Cmd.SUBFLOW_CREATE and refusal.attr == (PM.PmAttr.ADDR,)
    assert refusal.message == "did not match address and id" and refusal.missing is None
    assert nl.refusal_of(ValueError("x")) is None


def test_dump_refusal_in_done_names_the_attribute() -> None:
    # The kernel answers a refused dump with NLMSG_DONE: -errno, then the TLVs
    # (seen live on 6.18 for GET_ADDR with an unknown token).
    tlvs = (nla(nl.NLMSGERR_ATTR_MSG, b"invalid token\0")
            + nla(nl.NLMSGERR_ATTR_OFFS, struct.pack("=I", 20)))
    done = nlmsg(nl.NLMSG_DONE, nl.NLM_F_MULTI | nl.NLM_F_ACK_TLVS, 7,
                 struct.pack("=i", -errno.EINVAL) + tlvs)
    seen: list[object] = []

    def hook(err: int, text: object, cmd: int, what: str, attr: object) -> mptcp.MPTCPError:
        seen.append((err, text, attr))
        return NotMPTCPError(err, what)

    s = _Canned(done)
    with pytest.raises(NotMPTCPError) as info:
        s.dump(PM.Cmd.GET_ADDR, lambda e: e.put(PM.PmAttr.TOKEN, 9), error_hook=hook)
    assert seen == [(errno.EINVAL, "invalid token", (PM.PmAttr.TOKEN,))]
    refusal = nl.refusal_of(info.value)
    assert refusal is not None and refusal.attr == (PM.PmAttr.TOKEN,)


def test_missing_attribute_refusal() -> None:
    ack = _err(errno.EINVAL, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS,
               nla(nl.NLMSGERR_ATTR_MISS_TYPE, struct.pack("=I", PM.PmAttr.ADDR)))
    s = _Canned(ack)
    with pytest.raises(mptcp.MPTCPError) as info:
        s.request(PM.Cmd.SUBFLOW_CREATE, None, what="create_subflow")
    refusal = nl.refusal_of(info.value)
    assert refusal is not None and refusal.attr is None and refusal.missing == PM.PmAttr.ADDR
    assert "missing attribute 1" in str(info.value)


T, A_, L = (PM.PmAttr.TOKEN,), (PM.PmAttr.ADDR,), (PM.PmAttr.LOC_ID,)
C = PM.Cmd


@pytest.mark.parametrize(
    "err, cmd, attr, state, cls, says",
    [
        # 6.18 names TOKEN both for an unknown token and for an in-kernel-PM connection
        (errno.EINVAL, C.SUBFLOW_CREATE, T, PM.ABSENT, NotMPTCPError, "no MPTCP connection with this token (00001234)"),
        (errno.EINVAL, C.ANNOUNCE, T, PM.IN_KERNEL, PathManagerError, "sysctl net.mptcp.pm_type=1"),
        (errno.EINVAL, C.REMOVE, T, PM.FALLBACK, NotMPTCPError, "fell back to plain TCP"),
        # older kernels name no attribute for "userspace PM not selected"
        (errno.EINVAL, C.SUBFLOW_DESTROY, None, PM.IN_KERNEL, PathManagerError, "pm_type=1"),
        # SET_FLAGS of a userspace connection without a matching subflow
        (errno.EINVAL, C.SET_FLAGS, None, PM.USERSPACE, SubflowNotFoundError, "no such subflow"),
        (errno.ENOTCONN, C.SUBFLOW_CREATE, None, PM.FALLBACK, NotMPTCPError, "fell back to plain TCP"),
        (errno.ENOTCONN, C.SUBFLOW_CREATE, None, PM.USERSPACE, NotMPTCPError, "not fully established"),
        (errno.EINVAL, C.SUBFLOW_CREATE, A_, None, PathManagerError, "another id"),
        (errno.EINVAL, C.ANNOUNCE, A_, None, PathManagerError, "another id"),
        (errno.EINVAL, C.REMOVE, L, None, PathManagerError, "no address with this id"),
        (errno.ESRCH, C.SUBFLOW_DESTROY, None, None, SubflowNotFoundError, "no such subflow"),
        (errno.EPERM, C.SUBFLOW_CREATE, None, None, MPTCPPermissionError, "CAP_NET_ADMIN"),
        (errno.EADDRNOTAVAIL, C.SUBFLOW_CREATE, None, None, PathManagerError, "(mptcp_pm SUBFLOW_CREATE)"),
    ],
)
def test_connection_error_hook_keys_on_errno_and_attribute(
    monkeypatch: pytest.MonkeyPatch, err: int, cmd: int, attr: object, state: object, cls: type,
    says: str,
) -> None:
    asked: list[int] = []

    def ask(token: int) -> object:
        asked.append(token)
        return state

    monkeypatch.setattr(PM, "connection_state", ask)
    # a wording no kernel uses: the class must not depend on it
    exc = PM.connection_error(0x1234)(err, "reworded by a future kernel", cmd,
                                      "create_subflow 10.0.2.2:0 -> 10.0.1.1:80", attr)  # type: ignore[arg-type]
    assert type(exc) is cls and exc.errno == err
    assert str(exc).startswith(f"[Errno {err}] create_subflow 10.0.2.2:0 -> 10.0.1.1:80"), exc
    assert says in str(exc) and "(kernel: reworded by a future kernel)" in str(exc)
    assert asked == ([0x1234] if state is not None else [])


@pytest.mark.parametrize(
    "err, cmd, attr, cls, says",
    [
        (errno.EINVAL, C.DEL_ADDR, A_, PathManagerError, "no endpoint with this id"),
        (errno.EINVAL, C.GET_ADDR, (PM.PmAttr.ADDR, PM.AddrAttr.ID), PathManagerError, "no endpoint"),
        (errno.EOPNOTSUPP, C.SET_FLAGS, A_, PathManagerError, "(mptcp_pm SET_FLAGS)"),
        (errno.ENOBUFS, C.ADD_ADDR, None, PathManagerError, "(mptcp_pm ADD_ADDR)"),
        (errno.EEXIST, C.ADD_ADDR, None, PathManagerError, "(mptcp_pm ADD_ADDR)"),
        (errno.EPERM, C.FLUSH_ADDRS, None, MPTCPPermissionError, "CAP_NET_ADMIN"),
    ],
)
def test_global_error_hook(err: int, cmd: int, attr: object, cls: type, says: str) -> None:
    exc = PM.global_error(err, "x", cmd, "remove_endpoint 42", attr)  # type: ignore[arg-type]
    assert type(exc) is cls and exc.errno == err
    assert str(exc).startswith(f"[Errno {err}] remove_endpoint 42") and says in str(exc), exc


def test_address_id_refused_keys_on_the_refusal() -> None:
    def raised(cmd: int, errno_: int, attr: object) -> BaseException:
        try:
            raise PathManagerError(errno_, "x") from nl.Refusal(errno_, cmd, attr, None, "y")  # type: ignore[arg-type]
        except PathManagerError as err:
            return err

    assert PM.address_id_refused(raised(C.SUBFLOW_CREATE, errno.EINVAL, A_))
    assert not PM.address_id_refused(raised(C.SUBFLOW_CREATE, errno.EINVAL, T))
    assert not PM.address_id_refused(raised(C.ANNOUNCE, errno.EINVAL, A_))
    assert not PM.address_id_refused(raised(C.SUBFLOW_CREATE, errno.EEXIST, A_))
    assert not PM.address_id_refused(PathManagerError(errno.EINVAL, "did not match address and id"))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["10.0.0.256", "not-an-ip", "", "1.2.3"])
def test_parse_host_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        A.host("address", bad)


def test_parse_host_forms() -> None:
    assert A.host("address", "10.0.0.1").family == socket.AF_INET
    h = A.host("address", "[FD00:0:0::1]")
    assert h.family == socket.AF_INET6 and h.text == "fd00::1"
    with pytest.raises(TypeError):
        A.host("address", b"10.0.0.1")
    with pytest.raises(TypeError):
        A.host("address", None)


@pytest.mark.parametrize("port, exc", [(-1, ValueError), (65536, ValueError), ("80", TypeError), (True, TypeError), (1.0, TypeError)])
def test_check_port(port: object, exc: type) -> None:
    with pytest.raises(exc):
        A.port("port", port)
    assert A.port("port", 65535) == 65535 and A.port("port", 0) == 0


@pytest.mark.parametrize("value, exc", [(0, ValueError), (256, ValueError), (True, TypeError), ("1", TypeError)])
def test_check_id(value: object, exc: type) -> None:
    with pytest.raises(exc):
        A.address_id("id", value)


def test_parse_address_and_family_mismatch() -> None:
    host, port = A.address("remote", ("fd00::1", 80))
    assert port == 80 and host.family == socket.AF_INET6
    assert A.address("local", "10.0.0.1")[1] is None
    with pytest.raises(TypeError):
        A.address("local", ("10.0.0.1",))
    with pytest.raises(ValueError):
        A.address("local", ("10.0.0.1", 70000))
    with pytest.raises(ValueError, match="different families"):
        A.same_family(A.host("address", "10.0.0.1"), A.host("address", "fd00::1"))


def test_token_of_validation() -> None:
    assert read.token_of(12345, "test") == 12345
    with pytest.raises(ValueError):
        read.token_of(0, "test")
    with pytest.raises(ValueError):
        read.token_of(1 << 32, "test")
    with pytest.raises(TypeError):
        read.token_of("12345", "test")
    with pytest.raises(TypeError):
        read.token_of(True, "test")


def test_token_of_plain_tcp_socket() -> None:
    with socket.socket() as s:
        with pytest.raises((NotMPTCPError, OSError)):
            read.token_of(s, "test")


def test_control_value_checks_before_any_syscall() -> None:
    # fd -1 would fail at the first syscall: these must fail earlier.
    with pytest.raises(ValueError):
        mptcp.open_sub(-1, timeout=0)
    with pytest.raises(ValueError):
        mptcp.open_sub(-1, timeout=-1.0)
    with pytest.raises(ValueError):
        mptcp.open_sub(-1, local=("10.0.0.1", 70000), timeout=1.0)
    with pytest.raises(ValueError):
        mptcp.open_sub(-1, local="10.0.0.300", timeout=1.0)
    with pytest.raises(TypeError):
        mptcp.open_sub(-1, backup="yes", timeout=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mptcp.close_sub(-1, 1, 7)
    with pytest.raises(ValueError):
        mptcp.close_sub(-1, -1)
    with pytest.raises(TypeError):
        mptcp.close_sub(-1, "1")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedOperationError, match="half-close"):
        uc.close_sub(-1, 1, socket.SHUT_WR)
    with pytest.raises(UnsupportedOperationError, match="half-close"):
        uc.close_sub(-1, 1, socket.SHUT_RD)
    with pytest.raises(TypeError):
        mptcp.set_sub_prio(-1, 1, "x")  # type: ignore[arg-type]


def test_sockopt_calls() -> None:
    # options the BPF path cannot take are refused before any syscall (fd -1: EBADF)
    with pytest.raises(UnsupportedOperationError, match="TCP_MAXSEG") as info:
        sockopt.get_sub_sockopt_int(-1, 1, socket.SOL_SOCKET, socket.SO_LINGER)
    assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(UnsupportedOperationError, match="read"):
        sockopt.set_sub_sockopt_int(-1, 1, socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1000)
    with pytest.raises(TypeError):
        mptcp.set_sub_sockopt_int(-1, 1, socket.IPPROTO_TCP, socket.TCP_MAXSEG, "1000")  # type: ignore[arg-type]
    assert {(o.level, o.optname) for o in sockopt.OPTIONS} >= {
        (socket.IPPROTO_TCP, socket.TCP_MAXSEG), (socket.SOL_SOCKET, socket.SO_MARK)}


class _ScriptedEvents:
    """Stands in for the events GenlSocket: hands out datagrams, then raises."""

    def __init__(self, *items: object) -> None:
        self.items = list(items)
        self.timeouts: list[float] = []
        self.family = nl.GenlFamily("mptcp_pm", 28, 1, {})

    def settimeout(self, t: float) -> None:
        self.timeouts.append(t)

    def recv_into_buffer(self) -> tuple[memoryview, int]:
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, bytes)
        return memoryview(bytearray(item)), len(item)


def test_event_messages_yields_decodable_messages_then_reports_timeout_and_loss() -> None:
    import errno
    import socket
    import time

    event = nlmsg(28, 0, 0, bytes([mptcp.EventType.SUB_ESTABLISHED, 1, 0, 0]) + nla(1, struct.pack("=I", 7)))
    junk = nlmsg(28, 0, 0, b"\x01") + b"\0\0\0"  # too short for a genl header: skipped
    deadline = time.monotonic() + 30

    ev = _ScriptedEvents(junk + event, socket.timeout())
    msgs = uc._events(ev, deadline, 7)  # type: ignore[arg-type]
    first = next(msgs)
    assert first.type == mptcp.EventType.SUB_ESTABLISHED and first.token == 7
    with pytest.raises(uc._Timeout):
        next(msgs)
    assert 0 < ev.timeouts[-1] <= 30  # the socket waits only until the deadline

    lost = _ScriptedEvents(OSError(errno.ENOBUFS, "lost"))
    with pytest.raises(uc._EventsLost):
        next(uc._events(lost, deadline, 7))  # type: ignore[arg-type]
    other = _ScriptedEvents(OSError(errno.EBADF, "closed"))
    with pytest.raises(OSError):
        next(uc._events(other, deadline, 7))  # type: ignore[arg-type]
    with pytest.raises(uc._Timeout):  # past the deadline: no receive at all
        next(uc._events(_ScriptedEvents(), time.monotonic() - 1, 7))  # type: ignore[arg-type]


# ---------------------------------------------------------------- open_sub's tries


class _FakePM:
    """Stands in for the PMSocket: SUBFLOW_CREATE fails as scripted, then succeeds."""

    def __init__(self, *failures: BaseException, held: object = ()) -> None:
        self.failures = list(failures)
        self.held = list(held)  # type: ignore[call-overload]
        self.lids: list[int] = []

    def subflow_create(self, token: int, lhost: object, lport: int, lid: int, *rest: object) -> None:
        self.lids.append(lid)
        if self.failures:
            raise self.failures.pop(0)

    def connection_addrs(self, token: int, what: object) -> list[mptcp.Endpoint]:
        return self.held  # type: ignore[return-value]

    def subflow_destroy(self, *args: object) -> None:
        pass


class _FakeEvents:
    family = nl.GenlFamily("mptcp_pm", 28, 1, {"mptcp_pm_events": 5})

    def add_membership(self, group: object) -> None:
        pass

    def drop_membership(self, group: object) -> None:
        pass

    def discard_pending(self) -> None:
        pass

    def settimeout(self, t: object) -> None:
        pass


def _refused(cls: type, err: int, attr: object = None) -> BaseException:
    try:
        raise cls(err, f"open_sub 10.0.2.2:0 -> 10.0.1.1:80 refused ({errno.errorcode[err]})") from (
            nl.Refusal(err, PM.Cmd.SUBFLOW_CREATE, attr, None, "whatever the kernel says"))  # type: ignore[arg-type]
    except cls as e:
        return e


def _open_sub_with(monkeypatch: pytest.MonkeyPatch, pm: _FakePM) -> mptcp.Subflow:
    new = mptcp.SubflowInfo(*([None] * len(mptcp.SubflowInfo._fields)))._replace(
        id=2, local=("10.0.2.2", 40000), remote=("10.0.1.1", 80), state=1)
    lives = [[], [new]]
    waited: list[int] = []
    monkeypatch.setattr(uc, "thread_pm", lambda: pm)
    monkeypatch.setattr(uc, "_events_socket", lambda: _FakeEvents())
    monkeypatch.setattr(uc.read, "token", lambda fd, call: 0x77)
    monkeypatch.setattr(uc.read, "initial_local", lambda tok, fd, call: A.host("i", "10.0.1.2"))
    monkeypatch.setattr(uc, "_live", lambda fd: lives.pop(0) if len(lives) > 1 else lives[0])
    monkeypatch.setattr(uc, "_wait_fully_established", lambda *a: waited.append(1))
    monkeypatch.setattr(uc, "_wait_event", lambda *a: 40000)
    uc.forget_id(0x77, A.host("l", "10.0.2.2"), 0)
    try:
        return uc.open_sub(-1, (A.host("l", "10.0.2.2"), None), (A.host("r", "10.0.1.1"), 80),
                           False, 5.0)
    finally:
        uc.forget_id(0x77, A.host("l", "10.0.2.2"), 0)


@pytest.mark.parametrize("first_enotconn", [False, True])
def test_open_sub_maps_a_refused_create_the_same_on_every_try(
    monkeypatch: pytest.MonkeyPatch, first_enotconn: bool
) -> None:
    # EADDRNOTAVAIL is a SubflowOpenError whether it comes at once or after the
    # wait for full establishment (the retry used to skip the mapping).
    failures = [_refused(PathManagerError, errno.EADDRNOTAVAIL)]
    if first_enotconn:
        failures.insert(0, _refused(NotMPTCPError, errno.ENOTCONN))
    pm = _FakePM(*failures)
    with pytest.raises(mptcp.SubflowOpenError) as info:
        _open_sub_with(monkeypatch, pm)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert str(info.value).startswith(f"[Errno {errno.EADDRNOTAVAIL}] open_sub 10.0.2.2:0 -> ")
    assert len(pm.lids) == 1 + first_enotconn


def test_open_sub_asks_the_ids_again_when_the_kernel_refuses_the_address_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = [mptcp.Endpoint(4, "10.0.2.2", None, mptcp.EndpointFlags.SUBFLOW, None, None)]
    pm = _FakePM(_refused(PathManagerError, errno.EINVAL, (PM.PmAttr.ADDR,)), held=held)
    uc.remember_id(0x77, A.host("l", "10.0.2.2"), 0, 9)  # a stale remembered id

    new = mptcp.SubflowInfo(*([None] * len(mptcp.SubflowInfo._fields)))._replace(
        id=2, local=("10.0.2.2", 40000), remote=("10.0.1.1", 80), state=1)
    lives = [[], [new]]
    monkeypatch.setattr(uc, "thread_pm", lambda: pm)
    monkeypatch.setattr(uc, "_events_socket", lambda: _FakeEvents())
    monkeypatch.setattr(uc.read, "token", lambda fd, call: 0x77)
    monkeypatch.setattr(uc.read, "initial_local", lambda tok, fd, call: A.host("i", "10.0.1.2"))
    monkeypatch.setattr(uc, "_live", lambda fd: lives.pop(0) if len(lives) > 1 else lives[0])
    monkeypatch.setattr(uc, "_wait_event", lambda *a: 40000)
    try:
        sf = uc.open_sub(-1, (A.host("l", "10.0.2.2"), None), (A.host("r", "10.0.1.1"), 80),
                         False, 5.0)
    finally:
        uc.forget_id(0x77, A.host("l", "10.0.2.2"), 0)
    assert pm.lids == [9, 4] and sf.id == 2


def test_open_sub_does_not_retry_other_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same errno, another attribute (the token): not an address/id conflict, no retry.
    pm = _FakePM(_refused(PathManagerError, errno.EINVAL, (PM.PmAttr.TOKEN,)))
    with pytest.raises(PathManagerError):
        _open_sub_with(monkeypatch, pm)
    assert len(pm.lids) == 1
