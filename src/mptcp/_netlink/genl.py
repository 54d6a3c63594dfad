"""Generic netlink (standard library only): the one socket, encoder and decoder
that every generic netlink family of the package goes through.

* :class:`Attr`: the base of a family's declarative attribute table (an IntEnum
  whose members carry their payload :class:`Kind`), used by the encoder and the
  decoder alike, so an attribute's number and type are written down once.
* :class:`Encoder`: builds one request in a reusable ``bytearray`` with
  ``struct.pack_into``; no object is allocated per attribute.
* :class:`AttrTable` and :func:`iter_attrs`: decode attributes by offsets into a
  buffer. An :class:`AttrTable` is a fixed-size table (payload offset and length
  per attribute type) that is refilled in place, so a stream of messages (events)
  can be decoded without allocating per attribute. :func:`decode_genl` decodes one
  message from any ``bytes``-like buffer.
* :class:`GenlSocket`: a ``NETLINK_GENERIC`` socket bound to one family, resolved
  through ``nlctrl`` once per network namespace; ``request``/``dump`` match replies
  by sequence number, parse the kernel's extended-ack message and retry EINTR; it
  can also join the family's multicast groups and receive them without blocking.
* :class:`Refusal`: the kernel's negative answer to one request (errno, command,
  the request attribute the extended ack points at, its text), kept as the
  ``__cause__`` of the error raised for it, so that callers key control flow on
  errno and attribute instead of the kernel's wording.

A netlink socket belongs to the network namespace of the thread that creates it;
family ids are cached per namespace (keyed by the namespace's inode).
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, NoReturn, Optional, Union

from .._errors import KernelTooOldError, MPTCPError, error_from_errno

__all__ = [
    "NETLINK_GENERIC",
    "Kind",
    "Attr",
    "Encoder",
    "AttrTable",
    "GenlMessage",
    "GenlFamily",
    "GenlSocket",
    "NetlinkAck",
    "Refusal",
    "AttrPath",
    "locate_attr",
    "refusal_of",
    "iter_attrs",
    "iter_messages",
    "decode_genl",
    "parse_error",
    "resolve_family",
    "netns_id",
]

Buffer = Union[bytes, bytearray, memoryview]

# <linux/netlink.h>
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_DROP_MEMBERSHIP = 2
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
# flags of an NLMSG_ERROR (ack) message
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2
NLMSGERR_ATTR_MISS_TYPE = 5
NLMSGERR_ATTR_MISS_NEST = 6

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# <linux/genetlink.h>
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_VERSION = 3
CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME = 1
CTRL_ATTR_MCAST_GRP_ID = 2

NLMSG_HDRLEN = 16
GENL_HDRLEN = 4
NLA_HDRLEN = 4

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_GENLHDR = struct.Struct("=BBH")  # cmd, version, reserved
_NLA = struct.Struct("=HH")  # len, type
_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_BE16 = struct.Struct(">H")
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_U64 = struct.Struct("=Q")
_NLA_U8 = struct.Struct("=HHB3x")
_NLA_U16 = struct.Struct("=HHH2x")
_NLA_U32 = struct.Struct("=HHI")
_NLA_S32 = struct.Struct("=HHi")
_NLA_U64 = struct.Struct("=HHQ")
_S32_AT = struct.Struct("=i")

_RECV_SIZE = 65536


def _align(n: int) -> int:
    return (n + 3) & ~3


class Kind(enum.Enum):
    """Payload type of a netlink attribute."""

    U8 = "u8"
    U16 = "u16"        # host byte order
    BE16 = "be16"      # network byte order
    U32 = "u32"
    S32 = "s32"
    U64 = "u64"
    IN_ADDR = "in_addr"    # 4 bytes, network order
    IN6_ADDR = "in6_addr"  # 16 bytes
    STR = "str"            # NUL-terminated
    NEST = "nest"
    FLAG = "flag"


class Attr(enum.IntEnum):
    """Base of a family's attribute table: each member is ``NAME = number, Kind``."""

    kind: Kind

    def __new__(cls, number: int, kind: Kind) -> "Attr":
        member = int.__new__(cls, number)
        member._value_ = number
        member.kind = kind
        return member


# ---------------------------------------------------------------- encoding


class Encoder:
    """Builds one generic netlink message in a reusable buffer.

    ``begin`` writes the netlink and generic netlink headers; ``put_*`` append
    attributes; ``nest_start``/``nest_end`` bracket a nested attribute;
    ``finish`` fixes the total length and returns a ``memoryview`` of the message
    (valid until the next ``begin``).
    """

    __slots__ = ("buf", "pos")

    def __init__(self, size: int = 4096) -> None:
        self.buf = bytearray(max(size, 64))
        self.pos = 0

    def _room(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            # A new buffer, not an in-place resize: a view returned by an earlier
            # finish() may still be alive and would block the resize.
            new = bytearray(max(2 * len(self.buf), self.pos + n))
            new[: self.pos] = self.buf[: self.pos]
            self.buf = new

    def begin(self, family: int, cmd: int, flags: int, seq: int, version: int = 1) -> "Encoder":
        """Start a message: ``flags`` without NLM_F_REQUEST (always set)."""
        _NLMSGHDR.pack_into(self.buf, 0, 0, family, flags | NLM_F_REQUEST, seq, 0)
        _GENLHDR.pack_into(self.buf, NLMSG_HDRLEN, cmd, version, 0)
        self.pos = NLMSG_HDRLEN + GENL_HDRLEN
        return self

    def _put_fixed(self, st: struct.Struct, nla_len: int, atype: int, value: int) -> None:
        # st packs (nla_len, type, value) plus the alignment padding: st.size bytes
        self._room(st.size)
        st.pack_into(self.buf, self.pos, nla_len, atype, value)
        self.pos += st.size

    def put_u8(self, atype: int, value: int) -> None:
        self._put_fixed(_NLA_U8, 5, atype, value)

    def put_u16(self, atype: int, value: int) -> None:
        """Host byte order u16 (what the kernel reads for most attributes)."""
        self._put_fixed(_NLA_U16, 6, atype, value)

    def put_be16(self, atype: int, value: int) -> None:
        """Network byte order u16."""
        self._put_fixed(_NLA_U16, 6, atype, socket.htons(value))

    def put_u32(self, atype: int, value: int) -> None:
        self._put_fixed(_NLA_U32, 8, atype, value)

    def put_s32(self, atype: int, value: int) -> None:
        self._put_fixed(_NLA_S32, 8, atype, value)

    def put_u64(self, atype: int, value: int) -> None:
        self._put_fixed(_NLA_U64, 12, atype, value)

    def put_bytes(self, atype: int, data: Buffer) -> None:
        n = len(data)
        total = _align(NLA_HDRLEN + n)
        self._room(total)
        _NLA.pack_into(self.buf, self.pos, NLA_HDRLEN + n, atype)
        start = self.pos + NLA_HDRLEN
        self.buf[start : start + n] = data
        # zero the alignment padding: the buffer is reused
        for i in range(start + n, self.pos + total):
            self.buf[i] = 0
        self.pos += total

    def put_str(self, atype: int, text: str) -> None:
        """A NUL-terminated string attribute."""
        self.put_bytes(atype, text.encode() + b"\0")

    def put_flag(self, atype: int) -> None:
        self._room(4)
        _NLA.pack_into(self.buf, self.pos, NLA_HDRLEN, atype)
        self.pos += 4

    def put(self, attr: Attr, value: Any) -> None:
        """Append ``value`` as attribute ``attr``, encoded as its table says."""
        if attr.kind is Kind.NEST:
            raise TypeError(f"{attr!r} is a nest: use nest_start/nest_end")
        if attr.kind is Kind.FLAG:
            if value:
                self.put_flag(attr)
            return
        _PUT[attr.kind](self, attr, value)

    def nest_start(self, atype: int) -> int:
        """Open a nested attribute; pass the returned offset to ``nest_end``."""
        self._room(4)
        start = self.pos
        _NLA.pack_into(self.buf, start, 0, atype | NLA_F_NESTED)
        self.pos += 4
        return start

    def nest_end(self, start: int) -> None:
        _U16.pack_into(self.buf, start, self.pos - start)

    def finish(self) -> memoryview:
        _U32.pack_into(self.buf, 0, self.pos)
        return memoryview(self.buf)[: self.pos]

    @property
    def seq(self) -> int:
        return int(_U32.unpack_from(self.buf, 8)[0])


# ---------------------------------------------------------------- decoding


def iter_attrs(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(type, payload_offset, payload_length)`` for each attribute.

    ``type`` has the NESTED/NET_BYTEORDER bits masked off. Truncated attributes
    end the iteration.
    """
    pos = start
    while pos + NLA_HDRLEN <= end:
        alen, atype = _NLA.unpack_from(buf, pos)
        if alen < NLA_HDRLEN or pos + alen > end:
            return
        yield atype & NLA_TYPE_MASK, pos + NLA_HDRLEN, alen - NLA_HDRLEN
        pos += _align(alen)


def iter_messages(buf: Buffer, length: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Yield ``(offset, length, type, flags, seq)`` for each netlink message."""
    pos = 0
    while pos + NLMSG_HDRLEN <= length:
        mlen, mtype, mflags, mseq, _pid = _NLMSGHDR.unpack_from(buf, pos)
        if mlen < NLMSG_HDRLEN or pos + mlen > length:
            return
        yield pos, mlen, mtype, mflags, mseq
        pos += _align(mlen)


class AttrTable:
    """Attributes of one message (or nest), indexed by type, refilled in place.

    ``parse`` records each attribute's payload offset and length; the getters read
    straight from the buffer. Types above ``maxtype`` are ignored. For repeated
    attribute types the last one wins; use :func:`iter_attrs` for arrays.
    """

    __slots__ = ("buf", "maxtype", "_off", "_len", "_seen")

    def __init__(self, maxtype: Union[int, type[Attr]]) -> None:
        if not isinstance(maxtype, int):
            maxtype = max(maxtype)  # a family's table: room for its highest attribute
        self.buf: Buffer = b""
        self.maxtype = maxtype
        self._off = [0] * (maxtype + 1)
        self._len = [-1] * (maxtype + 1)
        self._seen: list[int] = []

    def parse(self, buf: Buffer, start: int, end: int) -> "AttrTable":
        lens = self._len
        for t in self._seen:
            lens[t] = -1
        self._seen.clear()
        self.buf = buf
        maxtype = self.maxtype
        pos = start
        unpack = _NLA.unpack_from
        while pos + NLA_HDRLEN <= end:
            alen, atype = unpack(buf, pos)
            if alen < NLA_HDRLEN or pos + alen > end:
                break
            atype &= NLA_TYPE_MASK
            if atype <= maxtype:
                if lens[atype] < 0:
                    self._seen.append(atype)
                self._off[atype] = pos + NLA_HDRLEN
                lens[atype] = alen - NLA_HDRLEN
            pos += (alen + 3) & ~3
        return self

    def __contains__(self, atype: int) -> bool:
        return 0 <= atype <= self.maxtype and self._len[atype] >= 0

    def types(self) -> list[int]:
        return sorted(self._seen)

    def span(self, atype: int) -> Optional[tuple[int, int]]:
        """``(offset, length)`` of the payload, or None."""
        if atype not in self:
            return None
        return self._off[atype], self._len[atype]

    def _need(self, atype: int, size: int) -> Optional[int]:
        if not 0 <= atype <= self.maxtype or self._len[atype] < size:
            return None
        return self._off[atype]

    def u8(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 1)
        return default if off is None else int(self.buf[off])

    def u16(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 2)
        return default if off is None else int(_U16.unpack_from(self.buf, off)[0])

    def be16(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 2)
        return default if off is None else int(_BE16.unpack_from(self.buf, off)[0])

    def u32(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 4)
        return default if off is None else int(_U32.unpack_from(self.buf, off)[0])

    def s32(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 4)
        return default if off is None else int(_S32.unpack_from(self.buf, off)[0])

    def u64(self, atype: int, default: Optional[int] = None) -> Optional[int]:
        off = self._need(atype, 8)
        return default if off is None else int(_U64.unpack_from(self.buf, off)[0])

    def bytes(self, atype: int) -> Optional[bytes]:
        off = self._need(atype, 0)
        if off is None:
            return None
        return bytes(self.buf[off : off + self._len[atype]])

    def str(self, atype: int) -> Optional[str]:
        raw = self.bytes(atype)
        if raw is None:
            return None
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def get(self, attr: Attr) -> Any:
        """The payload of ``attr`` decoded as its table says, or None if absent (or
        of the wrong size for its kind)."""
        if attr.kind is Kind.NEST:
            raise TypeError(f"{attr!r} is a nest: use nested()")
        if attr.kind is Kind.FLAG:
            return attr in self
        if attr.kind in _ADDR_LEN:
            raw = self.bytes(attr)
            return raw if raw is not None and len(raw) == _ADDR_LEN[attr.kind] else None
        return _GET[attr.kind](self, attr)

    def nested(self, atype: int, into: "AttrTable") -> Optional["AttrTable"]:
        """Parse the nested attribute ``atype`` into ``into`` (or return None)."""
        off = self._need(atype, 0)
        if off is None:
            return None
        return into.parse(self.buf, off, off + self._len[atype])


# How each payload kind is written and read (FLAG and NEST are handled apart).
_PUT: dict[Kind, Callable[[Encoder, int, Any], None]] = {
    Kind.U8: Encoder.put_u8, Kind.U16: Encoder.put_u16, Kind.BE16: Encoder.put_be16,
    Kind.U32: Encoder.put_u32, Kind.S32: Encoder.put_s32, Kind.U64: Encoder.put_u64,
    Kind.IN_ADDR: Encoder.put_bytes, Kind.IN6_ADDR: Encoder.put_bytes, Kind.STR: Encoder.put_str,
}
_GET: dict[Kind, Callable[[AttrTable, int], Any]] = {
    Kind.U8: AttrTable.u8, Kind.U16: AttrTable.u16, Kind.BE16: AttrTable.be16,
    Kind.U32: AttrTable.u32, Kind.S32: AttrTable.s32, Kind.U64: AttrTable.u64,
    Kind.STR: AttrTable.str,
}
_ADDR_LEN = {Kind.IN_ADDR: 4, Kind.IN6_ADDR: 16}


class GenlMessage(NamedTuple):
    """One decoded generic netlink message: header fields and its attributes."""

    type: int
    flags: int
    seq: int
    cmd: int
    version: int
    attrs: AttrTable


def decode_genl(
    buf: Buffer, offset: int = 0, *, maxtype: int = 64, into: Optional[AttrTable] = None
) -> GenlMessage:
    """Decode the generic netlink message at ``offset`` of ``buf``.

    Pass a reusable ``into`` table to avoid allocating one per message; the table
    then references ``buf``, which must stay unchanged while it is read.
    """
    if len(buf) - offset < NLMSG_HDRLEN + GENL_HDRLEN:
        raise ValueError("truncated generic netlink message")
    mlen, mtype, mflags, mseq, _pid = _NLMSGHDR.unpack_from(buf, offset)
    if mlen < NLMSG_HDRLEN + GENL_HDRLEN or offset + mlen > len(buf):
        raise ValueError(f"bad netlink message length {mlen}")
    cmd, version, _ = _GENLHDR.unpack_from(buf, offset + NLMSG_HDRLEN)
    table = into if into is not None else AttrTable(maxtype)
    table.parse(buf, offset + NLMSG_HDRLEN + GENL_HDRLEN, offset + mlen)
    return GenlMessage(mtype, mflags, mseq, cmd, version, table)


class NetlinkAck(NamedTuple):
    """An NLMSG_ERROR message: ``error`` is a positive errno (0 for an ack)."""

    error: int
    seq: int
    message: Optional[str]
    bad_attr_offset: Optional[int]
    missing_type: Optional[int]


def _with_tlvs(err: int, seq: int, buf: Buffer, start: int, end: int) -> NetlinkAck:
    """The ack of ``err`` with the extended-ack TLVs in ``buf[start:end]``."""
    table = AttrTable(NLMSGERR_ATTR_MISS_NEST).parse(buf, start, end)
    return NetlinkAck(err, seq, table.str(NLMSGERR_ATTR_MSG) or None,
                      table.u32(NLMSGERR_ATTR_OFFS), table.u32(NLMSGERR_ATTR_MISS_TYPE))


def parse_error(buf: Buffer, offset: int = 0) -> NetlinkAck:
    """Decode the NLMSG_ERROR message at ``offset``, extended-ack TLVs included.

    With NETLINK_CAP_ACK the kernel echoes only the request's header
    (NLM_F_CAPPED); otherwise the whole request follows and the TLVs come after it.
    """
    mlen, mtype, mflags, mseq, _pid = _NLMSGHDR.unpack_from(buf, offset)
    if mtype != NLMSG_ERROR or mlen < NLMSG_HDRLEN + 4:
        raise ValueError("not an NLMSG_ERROR message")
    end = offset + mlen
    (neg,) = _S32_AT.unpack_from(buf, offset + NLMSG_HDRLEN)
    err = -neg
    inner = offset + NLMSG_HDRLEN + 4
    if not (mflags & NLM_F_ACK_TLVS and inner + NLMSG_HDRLEN <= end):
        return NetlinkAck(err, mseq, None, None, None)
    if mflags & NLM_F_CAPPED:
        tlv = inner + NLMSG_HDRLEN
    else:
        (inner_len,) = _U32.unpack_from(buf, inner)
        tlv = inner + _align(inner_len)
    return _with_tlvs(err, mseq, buf, tlv, end)


# The attribute a refusal points at, as the path of attribute types from the top
# level down (``(ADDR, ID)`` is the ID inside the ADDR nest).
AttrPath = tuple[int, ...]


def locate_attr(request: Buffer, offset: Optional[int]) -> Optional[AttrPath]:
    """The attribute of ``request`` (a whole generic netlink message) that starts at
    byte ``offset``: what NLMSGERR_ATTR_OFFS of the kernel's extended ack names.

    Nests are entered (their NLA_F_NESTED bit is set); an offset inside a plain
    attribute's payload names that attribute. None when nothing is there.
    """
    if offset is None or len(request) < NLMSG_HDRLEN + GENL_HDRLEN:
        return None
    (mlen,) = _U32.unpack_from(request, 0)
    end = min(mlen, len(request))
    pos = NLMSG_HDRLEN + GENL_HDRLEN
    path: list[int] = []
    while pos + NLA_HDRLEN <= end:
        alen, atype = _NLA.unpack_from(request, pos)
        if alen < NLA_HDRLEN or pos + alen > end:
            return None
        if pos == offset:
            return (*path, atype & NLA_TYPE_MASK)
        if pos < offset < pos + alen:
            path.append(atype & NLA_TYPE_MASK)
            if not atype & NLA_F_NESTED:
                return tuple(path)
            end = pos + alen
            pos += NLA_HDRLEN
            continue
        pos += _align(alen)
    return None


class Refusal(Exception):
    """The kernel's negative answer to one request: ``errno``, the command ``cmd``,
    ``attr`` (the :data:`AttrPath` of the request attribute the extended ack names,
    or None), ``missing`` (an attribute type the kernel missed) and ``message`` (its
    extended-ack text, for people: the wording changes between kernels).

    Never raised on its own: it is the ``__cause__`` of the :class:`MPTCPError`
    built for the refusal (see :func:`refusal_of`).
    """

    def __init__(self, errno: int, cmd: int, attr: Optional[AttrPath],
                 missing: Optional[int], message: Optional[str]) -> None:
        super().__init__(errno, cmd, attr, missing, message)
        self.errno = errno
        self.cmd = cmd
        self.attr = attr
        self.missing = missing
        self.message = message

    def __str__(self) -> str:
        where = f", attribute {'/'.join(map(str, self.attr))}" if self.attr else ""
        if self.missing is not None:
            where += f", missing attribute {self.missing}"
        text = f": {self.message}" if self.message else ""
        return f"command {self.cmd} refused with {os.strerror(self.errno)}{where}{text}"


def refusal_of(err: BaseException) -> Optional[Refusal]:
    """The kernel's :class:`Refusal` behind ``err``, if ``err`` was raised for one."""
    cause = err.__cause__
    return cause if isinstance(cause, Refusal) else None


def _ack_text(ack: NetlinkAck) -> Optional[str]:
    if ack.message:
        return ack.message
    if ack.missing_type is not None:
        return f"missing attribute {ack.missing_type}"
    return None


# ---------------------------------------------------------------- the socket


class GenlFamily(NamedTuple):
    """A resolved generic netlink family."""

    name: str
    id: int
    version: int
    groups: dict[str, int]


# (errno, extended-ack text, command, what was attempted, the attribute the kernel
# pointed at) -> the exception to raise.
ErrorHook = Callable[[int, Optional[str], int, str, Optional[AttrPath]], MPTCPError]


# What a request does, for error messages: a str, or a callable that formats it
# only when an error is raised (hot requests skip the formatting).
What = Union[str, Callable[[], str]]


def what_text(what: What) -> str:
    """The text of a :data:`What`."""
    return what() if callable(what) else what


def _default_error(err: int, extack: Optional[str], cmd: int, what: str,
                   attr: Optional[AttrPath] = None) -> MPTCPError:
    text = f"{what} (kernel: {extack})" if extack else what
    return error_from_errno(err, text)


def netns_id() -> int:
    """Inode of the calling thread's network namespace (the family cache key)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _rmem_max() -> Optional[int]:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


_family_cache: dict[tuple[int, str], GenlFamily] = {}
_family_lock = threading.Lock()


def _open_raw() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


class GenlSocket:
    """A generic netlink socket talking to one family.

    Parameters
    ----------
    family_name : str
        e.g. ``"mptcp_pm"``; resolved through ``nlctrl`` once per network
        namespace (the namespace of the calling thread).
    error_hook : callable, optional
        ``(errno, extack_message, cmd, what) -> MPTCPError`` builds the exception
        for a failed request; the default maps through the errno table.
    min_version : (int, int), optional
        The first kernel with the family, for the error when it is missing.

    The socket belongs to the calling thread's network namespace. Not thread-safe:
    use one per thread (requests and replies share one receive queue).
    """

    def __init__(self, family_name: str, *, error_hook: Optional[ErrorHook] = None,
                 min_version: Optional[tuple[int, int]] = None) -> None:
        self._sock: Optional[socket.socket] = None
        self._min_version = min_version
        self._error_hook: ErrorHook = error_hook or _default_error
        self._enc = Encoder()
        self._rbuf = bytearray(_RECV_SIZE)
        self._rview = memoryview(self._rbuf)
        self._seq = 0
        try:
            self._sock = _open_raw()
        except OSError as err:
            raise error_from_errno(err.errno or 0, "cannot open a generic netlink socket") from err
        self._ns = netns_id()
        try:
            self.family = self._resolve(family_name)
        except BaseException:
            self.close()
            raise

    # -- plumbing

    @property
    def closed(self) -> bool:
        return self._sock is None

    def fileno(self) -> int:
        if self._sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        return self._sock.fileno()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> "GenlSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _send(self, data: memoryview) -> None:
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        while True:
            try:
                sock.send(data)
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries already
                continue

    def _recv(self) -> int:
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        while True:
            try:
                n = sock.recv_into(self._rbuf)
            except InterruptedError:  # pragma: no cover
                continue
            # 64 KiB holds any generic netlink datagram the kernel sends (dump
            # skbs are at most 32 KiB), so nothing is truncated.
            return n

    def encoder(self, cmd: int, flags: int = 0, *, family: Optional[int] = None) -> Encoder:
        """Start a request for ``cmd``; fill attributes, then pass to ``request``."""
        fam = self.family.id if family is None else family
        version = self.family.version if family is None else 1
        return self._enc.begin(fam, cmd, flags, self._next_seq(), version)

    def _transact(
        self,
        cmd: int,
        encode: Optional[Callable[[Encoder], None]],
        flags: int,
        what: What,
        family: Optional[int] = None,
        error_hook: Optional[ErrorHook] = None,
    ) -> list[GenlMessage]:
        enc = self.encoder(cmd, flags, family=family)
        if encode is not None:
            encode(enc)
        seq = enc.seq
        self._send(enc.finish())
        replies: list[GenlMessage] = []
        dump = (flags & NLM_F_DUMP) == NLM_F_DUMP
        hook = error_hook or self._error_hook
        while True:
            n = self._recv()
            view = self._rview
            for off, mlen, mtype, mflags, mseq in iter_messages(view, n):
                if mseq != seq:
                    continue  # a stale reply of an earlier, abandoned request
                if mtype == NLMSG_ERROR:
                    ack = parse_error(view, off)
                    if ack.error:
                        self._refused(hook, cmd, what, ack)
                    if not dump:
                        return replies
                    continue
                if mtype == NLMSG_DONE:
                    # a dump's DONE carries an int error (EINTR-like dump restarts)
                    # and, for a refusal, the extended-ack TLVs after it
                    if mlen >= NLMSG_HDRLEN + 4:
                        (neg,) = _S32_AT.unpack_from(view, off + NLMSG_HDRLEN)
                        if neg < 0:
                            self._refused(hook, cmd, what, _with_tlvs(
                                -neg, mseq, view, off + NLMSG_HDRLEN + 4, off + mlen))
                    return replies
                if mtype in (NLMSG_NOOP, NLMSG_OVERRUN):
                    continue
                data = bytes(view[off : off + mlen])
                replies.append(decode_genl(data))
                if not dump and not (flags & NLM_F_ACK):
                    return replies

    def _refused(self, hook: ErrorHook, cmd: int, what: What, ack: NetlinkAck) -> NoReturn:
        """Raise the hook's exception for a negative ack, its Refusal as the cause."""
        # The request is still in the encoder: the ack's offset points into it.
        attr = locate_attr(bytes(self._enc.buf[: self._enc.pos]), ack.bad_attr_offset)
        refusal = Refusal(ack.error, cmd, attr, ack.missing_type, ack.message)
        raise hook(ack.error, _ack_text(ack), cmd, what_text(what), attr) from refusal

    def request(
        self,
        cmd: int,
        encode: Optional[Callable[[Encoder], None]] = None,
        *,
        what: What = "",
        error_hook: Optional[ErrorHook] = None,
    ) -> list[GenlMessage]:
        """Send ``cmd`` with NLM_F_ACK; return the replies that came before the ack.

        ``encode(encoder)`` appends the attributes. Raises the exception built by
        the error hook for a negative ack, with the extended-ack text.
        """
        return self._transact(cmd, encode, NLM_F_ACK, what or f"command {cmd}", None, error_hook)

    def dump(
        self,
        cmd: int,
        encode: Optional[Callable[[Encoder], None]] = None,
        *,
        what: What = "",
        error_hook: Optional[ErrorHook] = None,
    ) -> list[GenlMessage]:
        """Send ``cmd`` as a dump (NLM_F_DUMP) and collect messages until NLMSG_DONE."""
        return self._transact(
            cmd, encode, NLM_F_DUMP | NLM_F_ACK, what or f"dump {cmd}", None, error_hook
        )

    def add_membership(self, group: Union[str, int]) -> None:
        """Join a multicast group (by name, resolved with the family)."""
        gid = self.family.groups[group] if isinstance(group, str) else group
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, gid)
        except OSError as err:
            raise self._error_hook(
                err.errno or 0, None, 0, f"joining the {self.family.name} group {group!r}", None
            ) from err

    def drop_membership(self, group: Union[str, int]) -> None:
        """Leave a multicast group (errors ignored: leaving is best effort)."""
        gid = self.family.groups[group] if isinstance(group, str) else group
        if self._sock is not None:
            try:
                self._sock.setsockopt(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, gid)
            except OSError:
                pass

    def set_rcvbuf(self, size: int) -> None:
        """Receive buffer of ``size`` bytes (SO_RCVBUF; above ``net.core.rmem_max``
        SO_RCVBUFFORCE, which CAP_NET_ADMIN allows). The kernel doubles the value."""
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        limit = _rmem_max()
        if limit is None or size > limit:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
                return
            except PermissionError:
                pass  # no CAP_NET_ADMIN: the kernel caps SO_RCVBUF at rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)

    @property
    def rcvbuf(self) -> int:
        """The receive buffer as the kernel reports it (SO_RCVBUF)."""
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def recv_nowait(self, buf: bytearray) -> Optional[int]:
        """Receive one queued datagram into ``buf`` without blocking: its length (cut
        to ``len(buf)``), or None when nothing is queued. The kernel's ENOBUFS (it
        dropped datagrams) is raised as ``OSError``."""
        sock = self._sock
        if sock is None:
            return None
        try:
            n = sock.recv_into(buf, 0, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            return None
        return min(n, len(buf))

    def recv_into_buffer(self) -> tuple[memoryview, int]:
        """Receive one datagram into the internal buffer: ``(view, length)``.

        The view is overwritten by the next receive.
        """
        return self._rview, self._recv()

    def discard_pending(self) -> None:
        """Drop every datagram already queued (and a pending ENOBUFS), without blocking."""
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        while True:
            try:
                sock.recv_into(self._rbuf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as err:
                if err.errno != _errno.ENOBUFS:
                    raise

    def settimeout(self, timeout: Optional[float]) -> None:
        if self._sock is None:
            raise MPTCPError(_errno.EBADF, "the netlink socket is closed")
        self._sock.settimeout(timeout)

    # -- family resolution

    def _resolve(self, name: str) -> GenlFamily:
        key = (self._ns, name)
        fam = _family_cache.get(key)
        if fam is not None:
            return fam

        def enc(e: Encoder) -> None:
            e.put_str(CTRL_ATTR_FAMILY_NAME, name)

        def hook(err: int, extack: Optional[str], cmd: int, what: str,
                 attr: Optional[AttrPath] = None) -> MPTCPError:
            if err == _errno.ENOENT:
                return KernelTooOldError(
                    err,
                    f"the generic netlink family {name!r} does not exist: the kernel "
                    "lacks it or the module is not loaded",
                    min_version=self._min_version,
                )
            return _default_error(err, extack, cmd, what, attr)

        self.family = GenlFamily("nlctrl", GENL_ID_CTRL, 1, {})
        replies = self._transact(
            CTRL_CMD_GETFAMILY, enc, NLM_F_ACK, f"resolving {name!r}", GENL_ID_CTRL, hook
        )
        if not replies:
            raise MPTCPError(_errno.EPROTO, f"nlctrl gave no answer for {name!r}")
        fam = family_from_reply(replies[0])
        with _family_lock:
            _family_cache[key] = fam
        return fam


def family_from_reply(msg: GenlMessage) -> GenlFamily:
    """Build a :class:`GenlFamily` from a CTRL_CMD_NEWFAMILY message."""
    a = msg.attrs
    fid = a.u16(CTRL_ATTR_FAMILY_ID)
    if fid is None:
        raise MPTCPError(_errno.EPROTO, "nlctrl reply without a family id")
    groups: dict[str, int] = {}
    span = a.span(CTRL_ATTR_MCAST_GROUPS)
    if span is not None:
        grp = AttrTable(CTRL_ATTR_MCAST_GRP_ID)
        for _t, off, ln in iter_attrs(a.buf, span[0], span[0] + span[1]):
            grp.parse(a.buf, off, off + ln)
            gname = grp.str(CTRL_ATTR_MCAST_GRP_NAME)
            gid = grp.u32(CTRL_ATTR_MCAST_GRP_ID)
            if gname is not None and gid is not None:
                groups[gname] = gid
    return GenlFamily(
        a.str(CTRL_ATTR_FAMILY_NAME) or "", fid, a.u32(CTRL_ATTR_VERSION, 1) or 1, groups
    )


def resolve_family(name: str) -> GenlFamily:
    """Resolve ``name`` in the calling thread's network namespace (cached)."""
    fam = _family_cache.get((netns_id(), name))
    if fam is not None:
        return fam
    with GenlSocket(name) as s:
        return s.family
