"""The ``mptcp_pm`` generic netlink family: its attribute tables, the encoding of its
commands, and the decoding of its replies and events.

The tables below (``<linux/mptcp_pm.h>``, family version 1) are the one place the
family's numbers and payload types are written down; requests are encoded from them
(:meth:`Encoder.put`) and replies and events decoded with them. :class:`PMSocket`
sends the commands; the policy around them (argument checks, address ids, waiting
for a join) lives in the layers above.

Kernel facts that shape the encoding (6.18, checked live):

* ``AddrAttr.PORT`` is read in host byte order by the kernel, although the netlink
  spec says big-endian: sending network order connects to the wrong port. Event
  ports are network order.
* Extended-ack messages explain refusals; they are kept for error messages.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any, Optional

from .. import _mptcp as _core
from .._addr import Host
from .._errors import (
    MPTCPError,
    MPTCPPermissionError,
    NotMPTCPError,
    PathManagerError,
    SubflowNotFoundError,
    error_from_errno,
)
from .._records import Endpoint, EndpointFlags, Event, EventType, Limits
from .genl import (
    GENL_HDRLEN,
    NLMSG_HDRLEN,
    Attr,
    AttrPath,
    AttrTable,
    Encoder,
    ErrorHook,
    GenlMessage,
    GenlSocket,
    Kind,
    What,
    refusal_of,
    what_text,
)

__all__ = [
    "FAMILY", "EVENTS_GROUP", "MIN_VERSION", "Cmd", "PmAttr", "AddrAttr", "EventAttr",
    "put_addr", "decode_endpoint", "build_event", "decode_event", "decode_events",
    "PMSocket", "global_error", "connection_error", "connection_state", "address_id_refused",
]

FAMILY = _core.abi.PM_FAMILY_NAME
EVENTS_GROUP = _core.abi.PM_EVENTS_GROUP
MIN_VERSION = (5, 7)  # the first kernel with the family


class Cmd(Attr):
    """``MPTCP_PM_CMD_*`` (the kind is unused: commands carry no payload)."""

    ADD_ADDR = 1, Kind.FLAG
    DEL_ADDR = 2, Kind.FLAG
    GET_ADDR = 3, Kind.FLAG
    FLUSH_ADDRS = 4, Kind.FLAG
    SET_LIMITS = 5, Kind.FLAG
    GET_LIMITS = 6, Kind.FLAG
    SET_FLAGS = 7, Kind.FLAG
    ANNOUNCE = 8, Kind.FLAG
    REMOVE = 9, Kind.FLAG
    SUBFLOW_CREATE = 10, Kind.FLAG
    SUBFLOW_DESTROY = 11, Kind.FLAG


class PmAttr(Attr):
    """``MPTCP_PM_ATTR_*``: the top-level attributes of commands and replies."""

    ADDR = 1, Kind.NEST
    RCV_ADD_ADDRS = 2, Kind.U32
    SUBFLOWS = 3, Kind.U32
    TOKEN = 4, Kind.U32
    LOC_ID = 5, Kind.U8
    ADDR_REMOTE = 6, Kind.NEST


class AddrAttr(Attr):
    """``MPTCP_PM_ADDR_ATTR_*``: inside ``PmAttr.ADDR`` and ``PmAttr.ADDR_REMOTE``."""

    FAMILY = 1, Kind.U16
    ID = 2, Kind.U8
    ADDR4 = 3, Kind.IN_ADDR
    ADDR6 = 4, Kind.IN6_ADDR
    PORT = 5, Kind.U16  # host byte order (see the module docstring)
    FLAGS = 6, Kind.U32
    IF_IDX = 7, Kind.S32


class EventAttr(Attr):
    """``MPTCP_ATTR_*``: the attributes of ``mptcp_pm_events`` messages."""

    TOKEN = 1, Kind.U32
    FAMILY = 2, Kind.U16
    LOC_ID = 3, Kind.U8
    REM_ID = 4, Kind.U8
    SADDR4 = 5, Kind.IN_ADDR
    SADDR6 = 6, Kind.IN6_ADDR
    DADDR4 = 7, Kind.IN_ADDR
    DADDR6 = 8, Kind.IN6_ADDR
    SPORT = 9, Kind.BE16
    DPORT = 10, Kind.BE16
    BACKUP = 11, Kind.U8
    ERROR = 12, Kind.U8
    FLAGS = 13, Kind.U16
    TIMEOUT = 14, Kind.U32
    IF_IDX = 15, Kind.S32
    RESET_REASON = 16, Kind.U32
    RESET_FLAGS = 17, Kind.U32
    SERVER_SIDE = 18, Kind.U8  # deprecated upstream in favour of FLAGS bit 1


# MPTCP_PM_EV_FLAG_* carried in EventAttr.FLAGS of CREATED/ESTABLISHED
EV_FLAG_DENY_JOIN_ID0 = 1 << 0
EV_FLAG_SERVER_SIDE = 1 << 1


# ---------------------------------------------------------------- encoding


def put_addr(
    enc: Encoder,
    attr: PmAttr,
    host: Optional[Host],
    *,
    id: Optional[int] = None,
    port: Optional[int] = None,
    flags: Optional[int] = None,
    if_index: Optional[int] = None,
) -> None:
    """Append the nested address attribute ``attr`` (ADDR or ADDR_REMOTE)."""
    start = enc.nest_start(attr)
    if host is not None:
        enc.put(AddrAttr.FAMILY, host.family)
        enc.put(AddrAttr.ADDR4 if host.family == socket.AF_INET else AddrAttr.ADDR6, host.packed)
    if id is not None:
        enc.put(AddrAttr.ID, id)
    if port is not None:
        enc.put(AddrAttr.PORT, port)
    if flags is not None:
        enc.put(AddrAttr.FLAGS, flags)
    if if_index is not None:
        enc.put(AddrAttr.IF_IDX, if_index)
    enc.nest_end(start)


# ---------------------------------------------------------------- replies


def decode_endpoint(msg: GenlMessage, table: Optional[AttrTable] = None) -> Optional[Endpoint]:
    """The :class:`Endpoint` of one GET_ADDR reply message (None without an address)."""
    a = msg.attrs.nested(PmAttr.ADDR, table or AttrTable(AddrAttr))
    if a is None:
        return None
    raw = a.get(AddrAttr.ADDR4)
    if raw is not None:
        addr = socket.inet_ntop(socket.AF_INET, raw)
    else:
        raw = a.get(AddrAttr.ADDR6)
        addr = socket.inet_ntop(socket.AF_INET6, raw) if raw is not None else ""
    ifx = a.get(AddrAttr.IF_IDX)
    dev = None
    if ifx:
        try:
            dev = socket.if_indextoname(ifx)
        except (OSError, OverflowError):  # IF_IDX is an s32: negative is no device
            dev = None
    else:
        ifx = None
    return Endpoint(
        a.get(AddrAttr.ID) or 0,
        addr,
        a.get(AddrAttr.PORT) or None,
        EndpointFlags(a.get(AddrAttr.FLAGS) or 0),
        ifx,
        dev,
    )


def decode_limits(msg: GenlMessage) -> Limits:
    a = msg.attrs
    return Limits(a.get(PmAttr.SUBFLOWS) or 0, a.get(PmAttr.RCV_ADD_ADDRS) or 0)


# ---------------------------------------------------------------- events

_NLMSGHDR = struct.Struct("=IHHII")
_BE32 = struct.Struct(">I")
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_inet_ntop = socket.inet_ntop
_TYPES = {int(t): t for t in EventType}
_SIDED = (EventType.CREATED, EventType.ESTABLISHED)

# The decoder reads the table's offset/length arrays directly, indexed by these
# plain ints (an enum member lookup per attribute would double its cost).
_E_TOKEN, _E_FAMILY, _E_LOC_ID, _E_REM_ID = (int(EventAttr.TOKEN), int(EventAttr.FAMILY),
                                             int(EventAttr.LOC_ID), int(EventAttr.REM_ID))
_E_SADDR4, _E_SADDR6, _E_DADDR4, _E_DADDR6 = (int(EventAttr.SADDR4), int(EventAttr.SADDR6),
                                              int(EventAttr.DADDR4), int(EventAttr.DADDR6))
_E_SPORT, _E_DPORT, _E_BACKUP, _E_ERROR = (int(EventAttr.SPORT), int(EventAttr.DPORT),
                                           int(EventAttr.BACKUP), int(EventAttr.ERROR))
_E_FLAGS, _E_TIMEOUT, _E_IF_IDX = int(EventAttr.FLAGS), int(EventAttr.TIMEOUT), int(EventAttr.IF_IDX)
_E_RESET_REASON, _E_RESET_FLAGS = int(EventAttr.RESET_REASON), int(EventAttr.RESET_FLAGS)
_E_SERVER_SIDE = int(EventAttr.SERVER_SIDE)

# IPv4 text by address value: a monitor sees few distinct addresses, and this
# spares a bytes slice + inet_ntop per address. Bounded.
_v4_text: dict[int, str] = {}


def _v4(buf: Any, off: int) -> str:
    key = _BE32.unpack_from(buf, off)[0]
    text = _v4_text.get(key)
    if text is None:
        text = _inet_ntop(_AF_INET, bytes(buf[off : off + 4]))
        if len(_v4_text) >= 4096:
            _v4_text.clear()
        _v4_text[key] = text
    return text


_U16 = struct.Struct("=H").unpack_from
_U32 = struct.Struct("=I").unpack_from
_S32 = struct.Struct("=i").unpack_from
_BE16 = struct.Struct(">H").unpack_from


def _host(buf: Any, offs: list[int], lens: list[int], v4: int, v6: int,
          family: Optional[int]) -> Optional[str]:
    """The v4 or v6 address attribute as text, preferring the event's family."""
    has4 = lens[v4] >= 4
    has6 = lens[v6] >= 16
    if has6 and (family == _AF_INET6 or not has4):
        off = offs[v6]
        return _inet_ntop(_AF_INET6, bytes(buf[off : off + 16]))
    if has4:
        return _v4(buf, offs[v4])
    return None


def build_event(cmd: int, a: AttrTable) -> Event:
    """The :class:`Event` for an event message whose attributes are in ``a``.

    One pass over the table's arrays, no per-attribute objects; an attribute
    shorter than its kind reads as absent.
    """
    buf = a.buf
    offs = a._off
    lens = a._len
    etype = _TYPES.get(cmd, cmd)
    family = _U16(buf, offs[_E_FAMILY])[0] if lens[_E_FAMILY] >= 2 else None
    flags = _U16(buf, offs[_E_FLAGS])[0] if lens[_E_FLAGS] >= 2 else None
    if lens[_E_SERVER_SIDE] >= 1:
        server_side: Optional[bool] = buf[offs[_E_SERVER_SIDE]] != 0
    elif etype in _SIDED:
        server_side = bool(flags is not None and flags & EV_FLAG_SERVER_SIDE)
    else:
        server_side = None
    host = _host(buf, offs, lens, _E_SADDR4, _E_SADDR6, family)
    local = None if host is None else (
        host, _BE16(buf, offs[_E_SPORT])[0] if lens[_E_SPORT] >= 2 else 0)
    host = _host(buf, offs, lens, _E_DADDR4, _E_DADDR6, family)
    remote = None if host is None else (
        host, _BE16(buf, offs[_E_DPORT])[0] if lens[_E_DPORT] >= 2 else 0)
    return Event(
        etype,
        _U32(buf, offs[_E_TOKEN])[0] if lens[_E_TOKEN] >= 4 else None,
        local,
        remote,
        buf[offs[_E_LOC_ID]] if lens[_E_LOC_ID] >= 1 else None,
        buf[offs[_E_REM_ID]] if lens[_E_REM_ID] >= 1 else None,
        buf[offs[_E_BACKUP]] != 0 if lens[_E_BACKUP] >= 1 else None,
        buf[offs[_E_ERROR]] if lens[_E_ERROR] >= 1 else None,
        flags,
        _S32(buf, offs[_E_IF_IDX])[0] if lens[_E_IF_IDX] >= 4 else None,
        server_side,
        _U32(buf, offs[_E_RESET_REASON])[0] if lens[_E_RESET_REASON] >= 4 else None,
        _U32(buf, offs[_E_RESET_FLAGS])[0] if lens[_E_RESET_FLAGS] >= 4 else None,
        _U32(buf, offs[_E_TIMEOUT])[0] if lens[_E_TIMEOUT] >= 4 else None,
        family,
    )


def event_token(a: AttrTable) -> Optional[int]:
    """The token of the event whose attributes are in ``a`` (a cheap filter)."""
    if a._len[_E_TOKEN] < 4:
        return None
    return int(_U32(a.buf, a._off[_E_TOKEN])[0])


def decode_event(buf: Any, offset: int = 0, *, table: Optional[AttrTable] = None) -> Event:
    """Decode the generic netlink event message at ``offset`` of ``buf``.

    The netlink header's type (the family id) is not checked. Attributes of
    unknown types are ignored; a truncated attribute ends the attribute list;
    an attribute too short for its type reads as absent. Raises ``ValueError``
    when the message itself is truncated.
    """
    if len(buf) - offset < NLMSG_HDRLEN + GENL_HDRLEN:
        raise ValueError("truncated netlink message")
    mlen = _NLMSGHDR.unpack_from(buf, offset)[0]
    if mlen < NLMSG_HDRLEN + GENL_HDRLEN or offset + mlen > len(buf):
        raise ValueError(f"bad netlink message length {mlen}")
    a = table if table is not None else AttrTable(EventAttr)
    a.parse(buf, offset + NLMSG_HDRLEN + GENL_HDRLEN, offset + mlen)
    return build_event(buf[offset + NLMSG_HDRLEN], a)


def decode_events(
    buf: Any, length: Optional[int] = None, *, family_id: Optional[int] = None
) -> list[Event]:
    """Decode every event message in the first ``length`` bytes of ``buf``.

    Messages whose netlink type is not ``family_id`` (when given), control
    messages and messages too short for a generic netlink header are skipped; a
    truncated last message is dropped.
    """
    end = len(buf) if length is None else min(length, len(buf))
    table = AttrTable(EventAttr)
    out = []
    pos = 0
    while pos + NLMSG_HDRLEN <= end:
        mlen, mtype = _NLMSGHDR.unpack_from(buf, pos)[:2]
        if mlen < NLMSG_HDRLEN or pos + mlen > end:
            break
        if mlen >= NLMSG_HDRLEN + GENL_HDRLEN and (
            mtype == family_id if family_id is not None else mtype >= 0x10
        ):
            table.parse(buf, pos + NLMSG_HDRLEN + GENL_HDRLEN, pos + mlen)
            out.append(build_event(buf[pos + NLMSG_HDRLEN], table))
        pos += (mlen + 3) & ~3
    return out


class EventReader:
    """Walks the event messages of one received datagram, one at a time, with one
    reusable attribute table (the events monitor and ``open_sub`` both read this way)."""

    __slots__ = ("buf", "end", "pos", "family_id", "table")

    def __init__(self, family_id: int) -> None:
        self.buf: Any = b""
        self.end = 0
        self.pos = 0
        self.family_id = family_id
        self.table = AttrTable(EventAttr)

    def reset(self, buf: Any, length: int) -> None:
        """Read the first ``length`` bytes of ``buf`` (a received datagram) next."""
        self.buf = buf
        self.end = length
        self.pos = 0

    def next(self, token: Optional[int] = None) -> Optional[Event]:
        """The next event of the datagram (of ``token`` only, if given), or None."""
        buf, end, pos, fam, table = self.buf, self.end, self.pos, self.family_id, self.table
        unpack = _NLMSGHDR.unpack_from
        try:
            while pos + NLMSG_HDRLEN <= end:
                mlen, mtype = unpack(buf, pos)[:2]
                if mlen < NLMSG_HDRLEN or pos + mlen > end:
                    pos = end
                    break
                start = pos
                pos += (mlen + 3) & ~3
                if mtype != fam or mlen < NLMSG_HDRLEN + GENL_HDRLEN:
                    continue  # NLMSG_NOOP/ERROR/DONE/OVERRUN or foreign: not events
                table.parse(buf, start + NLMSG_HDRLEN + GENL_HDRLEN, start + mlen)
                if token is not None and (table._len[_E_TOKEN] < 4
                                          or _U32(buf, table._off[_E_TOKEN])[0] != token):
                    continue
                return build_event(buf[start + NLMSG_HDRLEN], table)
            return None
        finally:
            self.pos = pos


# ---------------------------------------------------------------- errors

# The kernel's refusals, as seen on 6.18 (NLMSGERR_ATTR_OFFS mapped back to the
# request's attribute), and what they mean. Control flow keys on errno, command and
# attribute, never on the extended-ack wording, which changes between kernels:
#
# * EINVAL naming TOKEN: no connection with the token, *or* (6.13+) the connection
#   uses the in-kernel path manager; older kernels name no attribute for the latter.
#   The two are told apart by asking the kernel (connection_state).
# * EINVAL naming ADDR: SUBFLOW_CREATE/ANNOUNCE refused the local address entry (the
#   connection holds this address with another id, or this id for another address;
#   flags and id 0 are checked before sending); DEL_ADDR/SET_FLAGS/GET_ADDR found
#   no endpoint with that id.
# * EINVAL naming LOC_ID: REMOVE found no address with that id.
# * EINVAL naming nothing: SET_FLAGS of a userspace connection found no subflow;
#   "families mismatch"; older kernels' "userspace PM not selected".
# * ENOTCONN from SUBFLOW_CREATE: the connection is not fully established yet, or
#   fell back to TCP.
# * ESRCH from SUBFLOW_DESTROY: no subflow with that 4-tuple.
# * EOPNOTSUPP from SET_FLAGS of an endpoint: no id given.

_PM_HINT = (
    "the connection uses the in-kernel path manager; per-connection commands need "
    "the userspace path manager, selected in the network namespace before the "
    "connection is made: sysctl net.mptcp.pm_type=1"
)
_CAP_HINT = "needs CAP_NET_ADMIN in this network namespace"
_NOT_ESTABLISHED = (
    "the MPTCP connection is not fully established yet: the kernel adds subflows "
    "only once the peer has acknowledged data on the first one (send data first)"
)

# What connection_state finds.
ABSENT, FALLBACK, IN_KERNEL, USERSPACE, UNKNOWN = (
    "absent", "fallback", "in-kernel", "userspace", "unknown")


def _kernel(extack: Optional[str]) -> str:
    return f" (kernel: {extack})" if extack else ""


def _plain_error(err: int, extack: Optional[str], cmd: int, what: str,
                 attr: Optional[AttrPath] = None) -> MPTCPError:
    return MPTCPError(err, what)


def connection_state(token: int) -> str:
    """What the calling thread's network namespace holds under ``token``: ABSENT,
    FALLBACK (the connection fell back to TCP), IN_KERNEL or USERSPACE (its path
    manager), UNKNOWN. Two questions to the kernel, asked only on an error path:
    sock_diag (does an MPTCP socket with this token exist, did it fall back?), then
    GET_ADDR with the token, which only a userspace-PM connection answers (6.7+)."""
    try:
        found = [c for c in _core.diag_connections(False) if c.token == token]
    except OSError:
        found = None
    if found is not None:
        if not found:
            return ABSENT
        info = found[0].info
        if info is not None and info.fallback:
            return FALLBACK
    try:
        with GenlSocket(FAMILY, error_hook=_plain_error, min_version=MIN_VERSION) as nl:
            nl.dump(Cmd.GET_ADDR, lambda e: e.put(PmAttr.TOKEN, token), what="GET_ADDR")
    except MPTCPError as err:
        if err.errno == _errno.EINVAL:
            return IN_KERNEL if found else UNKNOWN
        return UNKNOWN
    return USERSPACE


def _generic(err: int, extack: Optional[str], cmd: int, what: str) -> MPTCPError:
    # A refusal without a more specific meaning: name the command for diagnosis.
    name = next((c.name for c in Cmd if c == cmd), str(cmd))
    return error_from_errno(
        err, f"{what} (mptcp_pm {name}){_kernel(extack)}", default=PathManagerError,
        overrides={_errno.EOPNOTSUPP: PathManagerError, _errno.ENOENT: PathManagerError,
                   _errno.ENOTCONN: PathManagerError})


def global_error(err: int, extack: Optional[str], cmd: int, what: str,
                 attr: Optional[AttrPath] = None) -> MPTCPError:
    """The exception for a refused endpoint or limits command (no connection)."""
    if err in (_errno.EPERM, _errno.EACCES):
        return MPTCPPermissionError(err, f"{what} {_CAP_HINT}{_kernel(extack)}: {os.strerror(err)}")
    if (err == _errno.EINVAL and attr is not None and attr[0] == PmAttr.ADDR
            and cmd in (Cmd.DEL_ADDR, Cmd.SET_FLAGS, Cmd.GET_ADDR)):
        return PathManagerError(err, f"{what}: no endpoint with this id{_kernel(extack)}")
    return _generic(err, extack, cmd, what)


def connection_error(token: Optional[int]) -> ErrorHook:
    """The error hook for the per-connection commands of connection ``token`` (None
    when it is not known: no second question is asked then)."""

    def hook(err: int, extack: Optional[str], cmd: int, what: str,
             attr: Optional[AttrPath] = None) -> MPTCPError:
        kernel = _kernel(extack)
        if err in (_errno.EPERM, _errno.EACCES):
            return MPTCPPermissionError(err, f"{what} {_CAP_HINT}{kernel}: {os.strerror(err)}")
        about_connection = err == _errno.EINVAL and (attr is None or attr == (PmAttr.TOKEN,))
        if token is not None and (about_connection or (
                err == _errno.ENOTCONN and cmd == Cmd.SUBFLOW_CREATE)):
            state = connection_state(token)
            if state == ABSENT:
                return NotMPTCPError(
                    err, f"{what}: no MPTCP connection with this token ({token:08x}) in this "
                    f"network namespace (closed, fallen back, or not MPTCP){kernel}")
            if state == FALLBACK:
                return NotMPTCPError(
                    err, f"{what}: the connection with token {token:08x} fell back to plain "
                    f"TCP, which has no subflows to manage{kernel}")
            if err == _errno.ENOTCONN:
                return NotMPTCPError(err, f"{what}: {_NOT_ESTABLISHED}{kernel}")
            if state == IN_KERNEL:
                return PathManagerError(err, f"{what}: {_PM_HINT}{kernel}")
            if state == USERSPACE and attr is None and cmd == Cmd.SET_FLAGS:
                return SubflowNotFoundError(err, f"{what}: no such subflow{kernel}")
        if err == _errno.ENOTCONN and cmd == Cmd.SUBFLOW_CREATE:
            return NotMPTCPError(err, f"{what}: {_NOT_ESTABLISHED}{kernel}")
        if err == _errno.ESRCH:
            return SubflowNotFoundError(err, f"{what}: no such subflow{kernel}: {os.strerror(err)}")
        if err == _errno.EINVAL and attr == (PmAttr.ADDR,) and cmd in (Cmd.SUBFLOW_CREATE,
                                                                        Cmd.ANNOUNCE):
            return PathManagerError(
                err, f"{what}: the connection already holds this local address with another "
                f"id, or this id for another address{kernel}")
        if err == _errno.EINVAL and attr == (PmAttr.LOC_ID,) and cmd == Cmd.REMOVE:
            return PathManagerError(err, f"{what}: the connection has no address with this id{kernel}")
        return _generic(err, extack, cmd, what)

    return hook


def address_id_refused(err: BaseException) -> bool:
    """``err`` is SUBFLOW_CREATE's refusal of the local address and id (EINVAL naming
    the ADDR attribute): the connection knows the address under another id."""
    r = refusal_of(err)
    return (r is not None and r.cmd == Cmd.SUBFLOW_CREATE and r.errno == _errno.EINVAL
            and r.attr == (PmAttr.ADDR,))


# ---------------------------------------------------------------- the socket


class PMSocket:
    """A generic netlink socket bound to ``mptcp_pm`` in the calling thread's network
    namespace, with one method per command. Arguments arrive checked; ``what`` names
    the user's call in error messages. Thread-safe (one request at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.nl: Optional[GenlSocket] = GenlSocket(FAMILY, error_hook=global_error,
                                                   min_version=MIN_VERSION)
        self._addr_table = AttrTable(AddrAttr)

    def close(self) -> None:
        s, self.nl = self.nl, None
        if s is not None:
            s.close()

    @property
    def closed(self) -> bool:
        return self.nl is None

    def _sock(self) -> GenlSocket:
        s = self.nl
        if s is None:
            raise MPTCPError(_errno.EBADF, "the PathManager is closed")
        return s

    def _do(self, cmd: Cmd, encode: Optional[Callable[[Encoder], None]], what: What, *,
            token: Optional[int] = None, dump: bool = False) -> list[GenlMessage]:
        # ``what`` names the user's call first: the error messages start with it.
        # A command for one connection (``token``) gets that connection's error hook.
        hook = global_error if token is None else connection_error(token)
        with self._lock:
            s = self._sock()
            if dump:
                return s.dump(cmd, encode, what=what, error_hook=hook)
            return s.request(cmd, encode, what=what, error_hook=hook)

    def _endpoints(self, replies: list[GenlMessage]) -> list[Endpoint]:
        out = []
        for m in replies:
            ep = decode_endpoint(m, self._addr_table)
            if ep is not None:
                out.append(ep)
        return out

    # -- in-kernel endpoints and limits

    def get_addrs(self, what: What) -> list[Endpoint]:
        return self._endpoints(self._do(Cmd.GET_ADDR, None, what, dump=True))

    def get_addr(self, id: int, what: What) -> Optional[Endpoint]:
        """The endpoint with ``id`` (GET_ADDR with an id), None if there is none."""
        def enc(e: Encoder) -> None:
            put_addr(e, PmAttr.ADDR, None, id=id)

        try:
            replies = self._do(Cmd.GET_ADDR, enc, what)
        except PathManagerError as err:
            r = refusal_of(err)
            if r is not None and r.errno == _errno.EINVAL and r.attr is not None \
                    and r.attr[0] == PmAttr.ADDR:
                return None  # "address not found"
            raise
        found = self._endpoints(replies)
        return found[0] if found else None

    def add_addr(self, host: Host, id: Optional[int], port: Optional[int], flags: int,
                 if_index: Optional[int], what: What) -> None:
        def enc(e: Encoder) -> None:
            put_addr(e, PmAttr.ADDR, host, id=id, port=port, flags=flags, if_index=if_index)

        self._do(Cmd.ADD_ADDR, enc, what)

    def del_addr(self, id: int, host: Optional[Host], what: What) -> None:
        def enc(e: Encoder) -> None:
            put_addr(e, PmAttr.ADDR, host, id=id)

        self._do(Cmd.DEL_ADDR, enc, what)

    def set_endpoint_flags(self, id: int, flags: int, what: What) -> None:
        def enc(e: Encoder) -> None:
            put_addr(e, PmAttr.ADDR, None, id=id, flags=flags)

        self._do(Cmd.SET_FLAGS, enc, what)

    def flush(self, what: What) -> None:
        self._do(Cmd.FLUSH_ADDRS, None, what)

    def get_limits(self, what: What) -> Limits:
        replies = self._do(Cmd.GET_LIMITS, None, what)
        if not replies:
            raise MPTCPError(_errno.EPROTO, "GET_LIMITS returned nothing")
        return decode_limits(replies[0])

    def set_limits(self, subflows: Optional[int], add_addr_accepted: Optional[int],
                   what: What) -> None:
        def enc(e: Encoder) -> None:
            if add_addr_accepted is not None:
                e.put(PmAttr.RCV_ADD_ADDRS, add_addr_accepted)
            if subflows is not None:
                e.put(PmAttr.SUBFLOWS, subflows)

        self._do(Cmd.SET_LIMITS, enc, what)

    # -- userspace path manager, per connection

    def connection_addrs(self, token: int, what: What) -> list[Endpoint]:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)

        return self._endpoints(self._do(Cmd.GET_ADDR, enc, what, token=token, dump=True))

    def announce(self, token: int, host: Host, id: int, port: Optional[int],
                 if_index: Optional[int], what: What) -> None:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)
            put_addr(e, PmAttr.ADDR, host, id=id, port=port,
                     flags=int(EndpointFlags.SIGNAL), if_index=if_index)

        self._do(Cmd.ANNOUNCE, enc, what, token=token)

    def remove(self, token: int, id: int, what: What) -> None:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)
            e.put(PmAttr.LOC_ID, id)

        self._do(Cmd.REMOVE, enc, what, token=token)

    def subflow_create(self, token: int, lhost: Host, lport: int, lid: int, rhost: Host,
                       rport: int, backup: bool, if_index: Optional[int], what: What) -> None:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)
            put_addr(e, PmAttr.ADDR, lhost, id=lid, port=lport or None,
                     flags=int(EndpointFlags.BACKUP) if backup else None, if_index=if_index)
            put_addr(e, PmAttr.ADDR_REMOTE, rhost, port=rport)

        self._do(Cmd.SUBFLOW_CREATE, enc, what, token=token)

    def subflow_destroy(self, token: int, lhost: Host, lport: int, rhost: Host, rport: int,
                        what: What) -> None:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)
            put_addr(e, PmAttr.ADDR, lhost, port=lport)
            put_addr(e, PmAttr.ADDR_REMOTE, rhost, port=rport)

        self._do(Cmd.SUBFLOW_DESTROY, enc, what, token=token)

    def set_backup(self, token: int, lhost: Host, lport: int, rhost: Host, rport: int,
                   backup: bool, what: What) -> None:
        def enc(e: Encoder) -> None:
            e.put(PmAttr.TOKEN, token)
            put_addr(e, PmAttr.ADDR, lhost, port=lport or None,
                     flags=int(EndpointFlags.BACKUP) if backup else 0)
            put_addr(e, PmAttr.ADDR_REMOTE, rhost, port=rport or None)

        self._do(Cmd.SET_FLAGS, enc, what, token=token)
