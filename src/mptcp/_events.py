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
import os
import select
import threading
import time
from typing import Any, Optional

from . import _args
from ._backends.upstream import read
from ._errors import (
    EventsLostError,
    KernelTooOldError,
    MPTCPError,
    MPTCPPermissionError,
    MPTCPTimeoutError,
    error_from_errno,
)
from ._netlink.genl import GenlSocket
from ._netlink.mptcp_pm import EVENTS_GROUP, FAMILY, MIN_VERSION, EventReader
from ._records import Event, EventType

__all__ = ["events", "EventMonitor", "Event", "EventType"]

_RECV_SIZE = 65536


def _lost_error() -> EventsLostError:
    return EventsLostError(
        _errno.ENOBUFS,
        "the kernel dropped MPTCP events: the monitor's receive buffer was full "
        "(ENOBUFS), so the event stream is incomplete. The monitor stays usable; "
        "read faster or pass a larger rcvbuf= to events()",
    )


def _join_error(err: int, extack: Optional[str], cmd: int, what: str,
                attr: Optional[tuple[int, ...]] = None) -> MPTCPError:
    if err in (_errno.EPERM, _errno.EACCES):
        return MPTCPPermissionError(
            err,
            f"joining the {EVENTS_GROUP} multicast group needs CAP_NET_ADMIN "
            "in this network namespace (run as root or grant the capability)",
        )
    return error_from_errno(err, f"cannot join the {EVENTS_GROUP} multicast group")


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
        self._nl: Optional[GenlSocket] = None
        self._wake_fd = -1
        size = _args.rcvbuf(rcvbuf)
        self._token = None if token is None else read.token_of(token, "events", "token")
        self._buf = bytearray(_RECV_SIZE)
        self._lock = threading.Lock()
        self._closed = False
        self._waiter: Optional[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = None
        self.losses = 0
        """How many times the kernel reported dropped events (ENOBUFS)."""

        nl = GenlSocket(FAMILY, error_hook=_join_error, min_version=MIN_VERSION)
        try:
            gid = nl.family.groups.get(EVENTS_GROUP)
            if gid is None:
                raise KernelTooOldError(
                    _errno.ENOENT,
                    f"the {FAMILY} generic netlink family has no {EVENTS_GROUP!r} group",
                    min_version=(5, 12),
                )
            if size is not None:
                nl.set_rcvbuf(size)
            nl.add_membership(gid)
            self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            nl.close()
            raise
        self._nl = nl
        self._reader = EventReader(nl.family.id)
        self._poll = select.poll()
        self._poll.register(nl.fileno(), select.POLLIN)
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
        nl = self._nl
        if nl is None:
            raise MPTCPError(_errno.EBADF, "the event monitor is closed")
        return nl.rcvbuf

    def fileno(self) -> int:
        """The netlink socket's fd (readable when events wait), -1 once closed."""
        nl = self._nl
        return -1 if nl is None else nl.fileno()

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
            nl, self._nl = self._nl, None
            if nl is not None:
                nl.close()
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
            nl = getattr(self, "_nl", None)
            if nl is not None:
                nl.close()
            if getattr(self, "_wake_fd", -1) >= 0:
                os.close(self._wake_fd)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self.fileno()}"
        flt = "" if self._token is None else f" token={self._token:08x}"
        return f"<mptcp.EventMonitor {state}{flt}>"

    # -- the core: decode what is buffered, receive without blocking

    def _take(self) -> Optional[Event]:
        """The next buffered event that passes the filter, or None."""
        return self._reader.next(self._token)

    def _recv(self) -> bool:
        """Receive one datagram if one is queued; False if none is."""
        nl = self._nl
        if nl is None:
            return False
        try:
            n = nl.recv_nowait(self._buf)
        except OSError as err:
            if err.errno == _errno.ENOBUFS:
                self.losses += 1
                raise _lost_error() from None
            raise error_from_errno(err.errno or 0, "receiving MPTCP events failed") from err
        if n is None:
            return False
        # A datagram longer than the buffer (never an event) is cut, and its cut
        # message is skipped.
        self._reader.reset(self._buf, n)
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
        limit = _args.optional_timeout(timeout)
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
        limit = _args.optional_timeout(timeout)
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
