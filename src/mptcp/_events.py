"""Typed Multipath TCP events from the kernel's ``mptcp_pm_events`` multicast group.

Example::

    import mptcp

    with mptcp.events() as mon:          # needs CAP_NET_ADMIN in this netns
        for ev in mon:                   # blocks; ends when mon is closed
            print(ev.type.name, hex(ev.token or 0), ev.local, ev.remote)

    with mptcp.events(token=sock) as mon:   # only the events of one connection
        ev = mon.next(timeout=1.0)          # an Event, or None after 1 s
        ev = mon.read(timeout=1.0)          # an Event, or MPTCPTimeoutError

    async with mptcp.events() as mon:    # asyncio, no threads (loop.add_reader)
        async for ev in mon:
            ...

The monitor listens in the network namespace of the thread that calls
:func:`events`. Joining the group needs ``CAP_NET_ADMIN`` there
(:class:`~mptcp.MPTCPPermissionError` otherwise).

**Lost events.** If the monitor's receive buffer fills up (a slow reader, a burst
of connections), the kernel drops events and the next read raises
:class:`~mptcp.EventsLostError`: the stream is incomplete and never silently
shorter. The monitor stays usable: keep reading and later events arrive (events
queued before the loss may arrive right after the error, because the kernel
reports the error before the queue). ``monitor.losses`` counts the losses
reported so far. Pass ``rcvbuf=`` to make losses less likely.

Kernel facts (6.18, checked live): the token attribute is a host-order u32, ports
are network order; a connection's close gives one ``CLOSED`` event and no
``SUB_CLOSED`` for the subflows that close with it; ``SUB_PRIORITY`` fires on the
peer that receives MP_PRIO; ``LISTENER_*`` events carry only the family and the
listener's local address and port.
"""

from __future__ import annotations

import asyncio
import errno as _errno
import math
import numbers
import os
import select
import socket
import struct
import threading
import time
from enum import IntEnum
from typing import Any, NamedTuple, Optional, Tuple, Union

from ._errors import (
    EventsLostError,
    KernelTooOldError,
    MPTCPError,
    MPTCPPermissionError,
    MPTCPTimeoutError,
    NotMPTCPError,
    error_from_errno,
)
from ._netlink import (
    GENL_HDRLEN,
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_GENERIC,
    NLMSG_HDRLEN,
    SOL_NETLINK,
    AttrTable,
    resolve_family,
)

__all__ = ["events", "EventMonitor", "Event", "EventType", "decode_event", "decode_events"]

FAMILY_NAME = "mptcp_pm"
GROUP_NAME = "mptcp_pm_events"


class EventType(IntEnum):
    """``enum mptcp_event_type`` of ``<linux/mptcp_pm.h>``."""

    __module__ = "mptcp"

    CREATED = 1
    ESTABLISHED = 2
    CLOSED = 3
    ANNOUNCED = 6
    REMOVED = 7
    SUB_ESTABLISHED = 10
    SUB_CLOSED = 11
    SUB_PRIORITY = 13
    LISTENER_CREATED = 15
    LISTENER_CLOSED = 16


# enum mptcp_event_attr
ATTR_TOKEN = 1  # u32, host order
ATTR_FAMILY = 2  # u16
ATTR_LOC_ID = 3  # u8
ATTR_REM_ID = 4  # u8
ATTR_SADDR4 = 5  # be32
ATTR_SADDR6 = 6  # in6_addr
ATTR_DADDR4 = 7
ATTR_DADDR6 = 8
ATTR_SPORT = 9  # be16
ATTR_DPORT = 10  # be16
ATTR_BACKUP = 11  # u8
ATTR_ERROR = 12  # u8
ATTR_FLAGS = 13  # u16
ATTR_TIMEOUT = 14  # u32
ATTR_IF_IDX = 15  # s32
ATTR_RESET_REASON = 16  # u32
ATTR_RESET_FLAGS = 17  # u32
ATTR_SERVER_SIDE = 18  # u8 (deprecated upstream in favour of FLAGS bit 1)
ATTR_MAX = 18

# MPTCP_PM_EV_FLAG_* carried in ATTR_FLAGS of CREATED/ESTABLISHED
EV_FLAG_DENY_JOIN_ID0 = 1 << 0
EV_FLAG_SERVER_SIDE = 1 << 1

Address = Tuple[str, int]


class Event(NamedTuple):
    """One MPTCP path-manager event (immutable).

    Every field but ``type`` is ``None`` when the event does not carry it:

    ``type``
        An :class:`EventType`, or a plain ``int`` for a type this library does
        not know (such events are still delivered).
    ``token``
        The local connection token (``MPTCPInfo.token``); ``None`` for
        ``LISTENER_*`` events.
    ``local``, ``remote``
        ``(host, port)``: the connection's or subflow's local and remote
        address (``ANNOUNCED`` has only ``remote``, ``LISTENER_*`` only
        ``local``). The port is ``0`` when the kernel sent an address without
        a port (an ``ANNOUNCED`` address without a port means "the
        connection's port").
    ``loc_id``, ``rem_id``
        Address ids (not subflow ids).
    ``backup``
        ``bool``: the subflow's backup flag (``SUB_*``; for ``SUB_PRIORITY``
        the new value the peer asked for).
    ``error``
        The subflow's socket error (``SUB_CLOSED``/``SUB_ESTABLISHED``), an errno.
    ``flags``
        Raw ``MPTCP_ATTR_FLAGS`` (``MPTCP_PM_EV_FLAG_*``).
    ``if_index``
        The interface a subflow is bound to.
    ``server_side``
        ``bool`` for ``CREATED``/``ESTABLISHED`` (from the ``SERVER_SIDE``
        attribute or the flags' server-side bit; the kernel sends neither on the
        client side); ``None`` for other types.
    ``reset_reason``, ``reset_flags``
        MP_TCPRST reason and flags of a reset subflow.
    ``timeout``
        ``MPTCP_ATTR_TIMEOUT`` where the kernel sends it.
    """

    type: Union[EventType, int]
    token: Optional[int] = None
    local: Optional[Address] = None
    remote: Optional[Address] = None
    loc_id: Optional[int] = None
    rem_id: Optional[int] = None
    backup: Optional[bool] = None
    error: Optional[int] = None
    flags: Optional[int] = None
    if_index: Optional[int] = None
    server_side: Optional[bool] = None
    reset_reason: Optional[int] = None
    reset_flags: Optional[int] = None
    timeout: Optional[int] = None


Event.__module__ = "mptcp"

# ---------------------------------------------------------------- decoding

_NLMSGHDR = struct.Struct("=IHHII")
_BE32 = struct.Struct(">I")
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_inet_ntop = socket.inet_ntop
_TYPES = {int(t): t for t in EventType}
_SIDED = (EventType.CREATED, EventType.ESTABLISHED)

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


_U8 = struct.Struct("=B").unpack_from
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


def _build(cmd: int, a: AttrTable) -> Event:
    """The :class:`Event` for an event message whose attributes are in ``a``.

    Reads the table's offset/length arrays directly (one pass, no per-attribute
    objects); an attribute shorter than its type needs reads as absent.
    """
    buf = a.buf
    offs = a._off
    lens = a._len
    etype = _TYPES.get(cmd, cmd)
    family = _U16(buf, offs[ATTR_FAMILY])[0] if lens[ATTR_FAMILY] >= 2 else None
    flags = _U16(buf, offs[ATTR_FLAGS])[0] if lens[ATTR_FLAGS] >= 2 else None
    if lens[ATTR_SERVER_SIDE] >= 1:
        server_side: Optional[bool] = buf[offs[ATTR_SERVER_SIDE]] != 0
    elif etype in _SIDED:
        server_side = bool(flags is not None and flags & EV_FLAG_SERVER_SIDE)
    else:
        server_side = None
    host = _host(buf, offs, lens, ATTR_SADDR4, ATTR_SADDR6, family)
    local = None if host is None else (
        host, _BE16(buf, offs[ATTR_SPORT])[0] if lens[ATTR_SPORT] >= 2 else 0)
    host = _host(buf, offs, lens, ATTR_DADDR4, ATTR_DADDR6, family)
    remote = None if host is None else (
        host, _BE16(buf, offs[ATTR_DPORT])[0] if lens[ATTR_DPORT] >= 2 else 0)
    return Event(
        etype,
        _U32(buf, offs[ATTR_TOKEN])[0] if lens[ATTR_TOKEN] >= 4 else None,
        local,
        remote,
        buf[offs[ATTR_LOC_ID]] if lens[ATTR_LOC_ID] >= 1 else None,
        buf[offs[ATTR_REM_ID]] if lens[ATTR_REM_ID] >= 1 else None,
        buf[offs[ATTR_BACKUP]] != 0 if lens[ATTR_BACKUP] >= 1 else None,
        buf[offs[ATTR_ERROR]] if lens[ATTR_ERROR] >= 1 else None,
        flags,
        _S32(buf, offs[ATTR_IF_IDX])[0] if lens[ATTR_IF_IDX] >= 4 else None,
        server_side,
        _U32(buf, offs[ATTR_RESET_REASON])[0] if lens[ATTR_RESET_REASON] >= 4 else None,
        _U32(buf, offs[ATTR_RESET_FLAGS])[0] if lens[ATTR_RESET_FLAGS] >= 4 else None,
        _U32(buf, offs[ATTR_TIMEOUT])[0] if lens[ATTR_TIMEOUT] >= 4 else None,
    )


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
    a = table if table is not None else AttrTable(ATTR_MAX)
    a.parse(buf, offset + NLMSG_HDRLEN + GENL_HDRLEN, offset + mlen)
    return _build(buf[offset + NLMSG_HDRLEN], a)


def decode_events(
    buf: Any, length: Optional[int] = None, *, family_id: Optional[int] = None
) -> list[Event]:
    """Decode every event message in the first ``length`` bytes of ``buf``.

    Messages whose netlink type is not ``family_id`` (when given), control
    messages and messages too short for a generic netlink header are skipped; a
    truncated last message is dropped.
    """
    end = len(buf) if length is None else min(length, len(buf))
    table = AttrTable(ATTR_MAX)
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
            out.append(_build(buf[pos + NLMSG_HDRLEN], table))
        pos += (mlen + 3) & ~3
    return out


# ---------------------------------------------------------------- the monitor

_RECV_SIZE = 65536
_U32_MAX = 0xFFFFFFFF
_SOL_MPTCP = 284
_MPTCP_INFO = 1
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def _token_of(token: Any) -> Optional[int]:
    if token is None:
        return None
    if isinstance(token, bool):
        raise TypeError("token must be an int token or a socket, not bool")
    if isinstance(token, numbers.Integral):
        value = int(token)
        if not 0 <= value <= _U32_MAX:
            raise ValueError(f"token {value} is outside 0..{_U32_MAX}")
        return value
    if isinstance(token, socket.socket):
        sock, own = token, False
    elif hasattr(token, "fileno"):
        fd = token.fileno()
        if isinstance(fd, bool) or not isinstance(fd, numbers.Integral):
            raise TypeError("fileno() must return an int")
        try:
            sock = socket.socket(fileno=int(fd))
        except OSError as err:
            raise error_from_errno(err.errno or 0, "token: cannot use the socket") from err
        own = True
    else:
        raise TypeError(
            f"token must be an int token or a socket, not {type(token).__name__}"
        )
    try:
        raw = sock.getsockopt(_SOL_MPTCP, _MPTCP_INFO, 16)
    except OSError as err:
        code = err.errno or 0
        if code in (_errno.EOPNOTSUPP, _errno.ENOPROTOOPT):
            raise NotMPTCPError(
                code, "token: the socket is not an MPTCP connection (plain TCP or fallen back)"
            ) from err
        raise error_from_errno(code, "token: cannot read the socket's MPTCP token") from err
    finally:
        if own:
            sock.detach()
    value = struct.unpack_from("=I", raw, 12)[0] if len(raw) >= 16 else 0
    if value == 0:
        raise NotMPTCPError(
            _errno.ENOTCONN, "token: the socket has no MPTCP connection token yet (not connected)"
        )
    return int(value)


def _check_rcvbuf(rcvbuf: Any) -> Optional[int]:
    if rcvbuf is None:
        return None
    if isinstance(rcvbuf, bool) or not isinstance(rcvbuf, numbers.Integral):
        raise TypeError(f"rcvbuf must be an int, not {type(rcvbuf).__name__}")
    value = int(rcvbuf)
    if not 0 < value <= 2**31 - 1:
        raise ValueError(f"rcvbuf {value} must be in 1..{2**31 - 1} bytes")
    return value


def _rmem_max() -> Optional[int]:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _set_rcvbuf(sock: socket.socket, size: int) -> None:
    limit = _rmem_max()
    if limit is None or size > limit:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
            return
        except PermissionError:
            pass  # no CAP_NET_ADMIN: the kernel caps SO_RCVBUF at rmem_max
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _check_timeout(timeout: Any) -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    value = float(timeout)
    if math.isnan(value) or value < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout!r}")
    return value


def _lost_error() -> EventsLostError:
    return EventsLostError(
        _errno.ENOBUFS,
        "the kernel dropped MPTCP events: the monitor's receive buffer was full "
        "(ENOBUFS), so the event stream is incomplete. The monitor stays usable; "
        "read faster or pass a larger rcvbuf= to events()",
    )


class EventMonitor:
    """A subscription to the ``mptcp_pm_events`` group; made by :func:`events`.

    Reading:

    * ``for ev in mon`` blocks for each event; the loop ends when the monitor is
      closed (also by :meth:`close` from another thread, which wakes it).
    * :meth:`next` ``(timeout=None)`` returns the next :class:`Event`, or
      ``None`` if none arrived within ``timeout`` seconds.
    * :meth:`read` ``(timeout=None)`` returns the next :class:`Event` or raises
      :class:`~mptcp.MPTCPTimeoutError`.
    * ``async for ev in mon`` and ``await mon.next_async(timeout)`` under
      asyncio, without threads (``loop.add_reader`` on :meth:`fileno`).

    Any read raises :class:`~mptcp.EventsLostError` when the kernel dropped
    events; the monitor stays usable afterwards. One reader at a time: the
    monitor is not meant to be read from several threads at once.
    """

    def __init__(self, *, token: Any = None, rcvbuf: Any = None) -> None:
        self._sock: Optional[socket.socket] = None
        self._wake_fd = -1
        self._token = _token_of(token)
        size = _check_rcvbuf(rcvbuf)
        self._buf = bytearray(_RECV_SIZE)
        self._n = 0
        self._pos = 0
        self._table = AttrTable(ATTR_MAX)
        self._lock = threading.Lock()
        self._closed = False
        self._waiter: Optional[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = None
        self.losses = 0
        """How many times the kernel reported dropped events (ENOBUFS)."""

        fam = resolve_family(FAMILY_NAME)
        gid = fam.groups.get(GROUP_NAME)
        if gid is None:
            raise KernelTooOldError(
                _errno.ENOENT,
                f"the {FAMILY_NAME} generic netlink family has no {GROUP_NAME!r} group",
                min_version=(5, 12),
            )
        self._family_id = fam.id
        try:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC
            )
        except OSError as err:
            raise error_from_errno(err.errno or 0, "cannot open a generic netlink socket") from err
        try:
            if size is not None:
                _set_rcvbuf(sock, size)
            sock.bind((0, 0))
            try:
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, gid)
            except OSError as err:
                if err.errno in (_errno.EPERM, _errno.EACCES):
                    raise MPTCPPermissionError(
                        err.errno,
                        f"joining the {GROUP_NAME} multicast group needs CAP_NET_ADMIN "
                        "in this network namespace (run as root or grant the capability)",
                    ) from err
                raise error_from_errno(
                    err.errno or 0, f"cannot join the {GROUP_NAME} multicast group"
                ) from err
            sock.setblocking(False)
            self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._poll.register(self._wake_fd, select.POLLIN)

    # -- plumbing

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def token(self) -> Optional[int]:
        """The token events are filtered by, or None."""
        return self._token

    @property
    def rcvbuf(self) -> int:
        """The socket's receive buffer as the kernel reports it (SO_RCVBUF)."""
        sock = self._sock
        if sock is None:
            raise MPTCPError(_errno.EBADF, "the event monitor is closed")
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def fileno(self) -> int:
        """The netlink socket's fd (readable when events wait), -1 once closed."""
        sock = self._sock
        return -1 if sock is None else sock.fileno()

    def close(self) -> None:
        """Leave the group and close the socket. Idempotent; wakes a blocked reader."""
        if self._closed:
            return
        self._closed = True
        if self._wake_fd >= 0:
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:
                pass
        self._cancel_waiter()
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
            if self._wake_fd >= 0:
                os.close(self._wake_fd)
                self._wake_fd = -1

    def _cancel_waiter(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        loop, fut = waiter
        fd = self.fileno()

        def wake() -> None:
            if fd >= 0:
                try:
                    loop.remove_reader(fd)
                except Exception:
                    pass
            if not fut.done():
                fut.set_result(None)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(wake)

    def __enter__(self) -> "EventMonitor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "EventMonitor":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            sock = getattr(self, "_sock", None)
            if sock is not None:
                sock.close()
            if getattr(self, "_wake_fd", -1) >= 0:
                os.close(self._wake_fd)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.fileno()}"
        flt = "" if self._token is None else f" token={self._token:08x}"
        return f"<mptcp.EventMonitor {state}{flt}>"

    # -- the core: decode what is buffered, receive without blocking

    def _take(self) -> Optional[Event]:
        """The next buffered event that passes the filter, or None."""
        buf = self._buf
        end = self._n
        pos = self._pos
        fam = self._family_id
        want = self._token
        table = self._table
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
                if want is not None and (
                    table._len[ATTR_TOKEN] < 4
                    or _U32(buf, table._off[ATTR_TOKEN])[0] != want
                ):
                    continue
                return _build(buf[start + NLMSG_HDRLEN], table)
            return None
        finally:
            self._pos = pos

    def _recv(self) -> bool:
        """Receive one datagram if one is queued; False if none is."""
        sock = self._sock
        if sock is None:
            return False
        try:
            n = sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as err:
            if err.errno == _errno.ENOBUFS:
                self.losses += 1
                raise _lost_error() from None
            raise error_from_errno(err.errno or 0, "receiving MPTCP events failed") from err
        # MSG_TRUNC reports a datagram's real length; a longer one than the
        # buffer (never an event) is cut, and its cut message is skipped.
        self._n = min(n, len(self._buf))
        self._pos = 0
        return True

    def _poll_once(self) -> Optional[Event]:
        """Buffered or queued event without waiting, or None. Raises on loss."""
        with self._lock:
            while True:
                ev = self._take()
                if ev is not None:
                    return ev
                if self._closed or not self._recv():
                    return None

    # -- blocking API

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event; ``None`` if none came within ``timeout`` seconds.

        ``timeout=None`` waits as long as it takes; ``0`` only returns what is
        already queued. Also returns ``None`` once the monitor is closed.
        Raises :class:`~mptcp.EventsLostError` if the kernel dropped events.
        """
        limit = _check_timeout(timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            ev = self._poll_once()
            if ev is not None or self._closed:
                return ev
            if deadline is None:
                ms = -1
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                ms = max(1, math.ceil(left * 1000))
            self._poll.poll(ms)

    def read(self, timeout: Optional[float] = None) -> Event:
        """Like :meth:`next` but raises :class:`~mptcp.MPTCPTimeoutError` on timeout.

        On a closed monitor it raises :class:`~mptcp.MPTCPError` (EBADF).
        """
        ev = self.next(timeout)
        if ev is not None:
            return ev
        if self._closed:
            raise MPTCPError(_errno.EBADF, "the event monitor is closed")
        raise MPTCPTimeoutError(_errno.ETIMEDOUT, f"no MPTCP event within {timeout} s")

    def __iter__(self) -> "EventMonitor":
        return self

    def __next__(self) -> Event:
        ev = self.next(None)
        if ev is None:
            raise StopIteration
        return ev

    # -- asyncio API

    async def next_async(self, timeout: Optional[float] = None) -> Optional[Event]:
        """Await the next event; ``None`` on timeout or once closed.

        Uses ``loop.add_reader`` on the socket, no thread. Cancel-safe.
        """
        limit = _check_timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            ev = self._poll_once()
            if ev is not None or self._closed:
                return ev
            if deadline is not None and loop.time() >= deadline:
                return None
            if self._waiter is not None:
                raise RuntimeError("another coroutine is already waiting on this monitor")
            fd = self.fileno()
            fut: asyncio.Future[None] = loop.create_future()

            def ready(f: asyncio.Future[None] = fut) -> None:
                if not f.done():
                    f.set_result(None)

            loop.add_reader(fd, ready)
            self._waiter = (loop, fut)
            try:
                if deadline is None:
                    await fut
                else:
                    try:
                        await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        pass
            finally:
                if self._waiter is not None and self._waiter[1] is fut:
                    self._waiter = None
                    loop.remove_reader(fd)

    def __aiter__(self) -> "EventMonitor":
        return self

    async def __anext__(self) -> Event:
        ev = await self.next_async(None)
        if ev is None:
            raise StopAsyncIteration
        return ev


def events(*, token: Any = None, rcvbuf: Optional[int] = None) -> EventMonitor:
    """Subscribe to MPTCP path-manager events of the calling thread's network namespace.

    Parameters
    ----------
    token
        Deliver only the events of one connection: an MPTCP ``socket`` (its
        local token is read with MPTCP_INFO), an object with ``fileno()``, or an
        ``int`` token (note: an int here is a token, not an fd). Events without
        a token (``LISTENER_*``) are then not delivered.
    rcvbuf
        Receive buffer size in bytes (SO_RCVBUF; above ``net.core.rmem_max``
        SO_RCVBUFFORCE is used, which the needed CAP_NET_ADMIN allows). The
        kernel doubles the value and enforces a minimum (about 2.3 KiB).

    Returns an :class:`EventMonitor` (a context manager). Raises
    :class:`~mptcp.MPTCPPermissionError` without CAP_NET_ADMIN,
    :class:`~mptcp.KernelTooOldError` if the kernel has no ``mptcp_pm`` family,
    :class:`~mptcp.NotMPTCPError` if ``token`` is a socket without an MPTCP
    connection.
    """
    return EventMonitor(token=token, rcvbuf=rcvbuf)
