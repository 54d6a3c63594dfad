"""The seed calls that steer subflows on the upstream kernel, through the userspace
path manager: ``open_sub``, ``close_sub``, ``set_sub_prio``; and the choice of a new
subflow's local address id, which ``PathManager.create_subflow`` shares.

How ``open_sub`` waits. A SUBFLOW_CREATE that the kernel acknowledges has only
sent the SYN: the join can still be refused or reset. We join the
``mptcp_pm_events`` group before sending the command and wait (blocking ``recv``
with the remaining timeout, no polling) for the SUB_ESTABLISHED or SUB_CLOSED
event of that token and address pair. The event wakes us the moment the kernel
decides (about 0.1 ms after the command on a veth pair) and SUB_CLOSED carries the
subflow's socket error, which polling a snapshot could never tell (a refused join
just vanishes). The FULL_INFO snapshot then gives the new subflow's kernel id. If
the kernel drops events (ENOBUFS, a busy namespace) we fall back to polling the
snapshot. The events group needs CAP_NET_ADMIN, as SUBFLOW_CREATE itself does.
"""

from __future__ import annotations

import collections
import errno as _errno
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional, Tuple

from ... import _mptcp as _core
from ..._addr import Host, parse_ip, same_host, unmap_v4
from ..._args import same_family
from ..._errors import (
    MPTCPError,
    MPTCPTimeoutError,
    NotMPTCPError,
    PathManagerError,
    SubflowOpenError,
    UnsupportedOperationError,
)
from ..._records import Event, EventType, Subflow, SubflowInfo, TCPState
from ..._netlink import genl
from ..._netlink.mptcp_pm import EVENTS_GROUP, FAMILY, MIN_VERSION, EventReader, PMSocket
from ..._netlink.mptcp_pm import address_id_refused, connection_error
from . import read

__all__ = ["open_sub", "close_sub", "set_sub_prio", "thread_pm", "local_id", "check_id",
           "remember_id", "forget_id", "fmt"]

Endpoint = Optional[Tuple[Host, Optional[int]]]

_CREATE_OPEN_ERRNOS = frozenset({
    _errno.EADDRNOTAVAIL, _errno.EADDRINUSE, _errno.ENETUNREACH, _errno.EHOSTUNREACH,
    _errno.ECONNREFUSED, _errno.ECONNRESET, _errno.EACCES, _errno.ENODEV,
})


def fmt(host: Host, port: Optional[int]) -> str:
    if host.family == socket.AF_INET6:
        return f"[{host.text}]:{port or 0}"
    return f"{host.text}:{port or 0}"


# ---------------------------------------------------------------- per-thread sockets

_tls = threading.local()


def _cached(attr: str, make: Any) -> Any:
    """This thread's object ``attr`` for its current network namespace."""
    ns = genl.netns_id()
    cache = getattr(_tls, attr, None)
    if cache is None:
        cache = {}
        setattr(_tls, attr, cache)
    obj = cache.get(ns)
    if obj is None or obj.closed:
        obj = cache[ns] = make()
    return obj


def thread_pm() -> PMSocket:
    """A cached :class:`PMSocket` for the calling thread's network namespace."""
    return _cached("pms", PMSocket)  # type: ignore[no-any-return]


def _events_socket() -> genl.GenlSocket:
    """This thread's events socket for its network namespace."""
    return _cached("ev", lambda: genl.GenlSocket(  # type: ignore[no-any-return]
        FAMILY, error_hook=connection_error(None), min_version=MIN_VERSION))


# ---------------------------------------------------------------- local address ids

# (netns, token, packed address, port) -> the address id the kernel accepted for it on
# that connection; saves a GET_ADDR dump per open_sub. Bounded; a stale entry is
# caught by the kernel (SUBFLOW_CREATE's EINVAL naming the ADDR attribute).
_ids: "collections.OrderedDict[tuple[int, int, bytes, int], int]" = collections.OrderedDict()
_ids_lock = threading.Lock()
_IDS_MAX = 1024


def local_id(pm: PMSocket, token: int, host: Host, port: int,
             initial: Callable[[], Optional[Host]], what: str) -> int:
    """The address id a new subflow from ``host`` must carry on connection ``token``.

    Id 0 is the connection's initial local address (``initial``, RFC 8684): a
    subflow from that address carries 0, whatever its port, as the kernel's own PM
    does for it (6.18 accepts 0 there and the peer sees rem_id 0); another id would
    give the one address two ids. The kernel keys the connection's other local
    addresses by address and port and refuses a known address with another id:
    reuse its id, else the lowest free non-zero one (5.19-6.6 cannot list them:
    fall back to 1). ``initial()`` is asked only when no id is remembered.
    """
    key = (genl.netns_id(), token, host.packed, port)
    with _ids_lock:
        known = _ids.get(key)
    if known is not None:
        return known
    first = initial()
    if first is not None and host.family == first.family and host.packed == first.packed:
        return 0
    try:
        addrs = pm.connection_addrs(token, what)
    except NotMPTCPError:
        raise
    except MPTCPError:
        addrs = []
    used = set()
    for ep in addrs:
        if ep.addr == host.text and (ep.port or 0) == port:
            return ep.id
        used.add(ep.id)
    for i in range(1, 256):
        if i not in used:
            return i
    raise PathManagerError(_errno.ENOSPC, f"{what}: all 255 address ids of the connection are in use")


def check_id(lid: int, host: Host, initial: Optional[Host], what: str) -> None:
    """Refuse an explicit address id that breaks "id 0 is the initial address" (the
    kernel would take it: one address with two ids, or two addresses with id 0)."""
    if initial is None:
        return
    is_initial = host.family == initial.family and host.packed == initial.packed
    if lid == 0 and not is_initial:
        raise PathManagerError(
            _errno.EINVAL, f"{what}: address id 0 is the connection's initial local address "
            f"{initial.text}; {host.text} needs an id 1-255 (or none: the library picks one)")
    if lid != 0 and is_initial:
        raise PathManagerError(
            _errno.EINVAL, f"{what}: {host.text} is the connection's initial local address, "
            f"whose address id is 0, not {lid} (or pass none: the library picks 0)")


def remember_id(token: int, host: Host, port: int, lid: int) -> None:
    """The kernel accepted ``lid`` for this address on this connection."""
    key = (genl.netns_id(), token, host.packed, port)
    with _ids_lock:
        _ids[key] = lid
        _ids.move_to_end(key)
        while len(_ids) > _IDS_MAX:
            _ids.popitem(last=False)


def forget_id(token: int, host: Host, port: int) -> None:
    with _ids_lock:
        _ids.pop((genl.netns_id(), token, host.packed, port), None)


# ---------------------------------------------------------------- open_sub


def route_source(remote: Host, port: int) -> Host:
    """The source address the routing table picks for ``remote`` (calling thread's
    network namespace): connect() a UDP socket, which sends nothing."""
    with socket.socket(remote.family, socket.SOCK_DGRAM) as u:
        try:
            u.connect((remote.text, port or 9))
        except OSError as err:
            raise SubflowOpenError(
                err.errno or _errno.ENETUNREACH,
                f"open_sub: no route to {remote.text}: {os.strerror(err.errno or 0)}",
            ) from err
        return unmap_v4(_host_of(u.getsockname()[0]))


def _host_of(text: str) -> Host:
    return parse_ip(text)


def _live(fd: int) -> list[SubflowInfo]:
    return read.subflows(fd)


def _same_pair(rec: SubflowInfo, lhost: Host, rhost: Host, rport: int) -> bool:
    assert rec.local is not None and rec.remote is not None
    return (rec.remote[1] == rport and same_host(rec.local[0], lhost)
            and same_host(rec.remote[0], rhost))


def open_sub(fd: int, local: Endpoint, remote: Endpoint, backup: bool, timeout: float) -> Subflow:
    """Open a subflow and wait until it is established (userspace PM, 5.19+;
    subflow ids need 6.5+). Arguments are checked by the public layer."""
    token = read.token(fd, "open_sub")
    lhost, lport = local if local is not None else (None, None)
    rhost, rport = remote if remote is not None else (None, None)
    if rhost is None or rport is None:
        peer = read.peer(fd, "open_sub")
        if rhost is None:
            rhost = _host_of(peer[0])
        if rport is None:
            rport = peer[1]
    rhost = unmap_v4(rhost)  # an AF_INET6 socket reports an IPv4 peer v4-mapped
    if rport == 0:
        raise ValueError("remote port 0: give the port to join (or omit it for the peer's)")
    lhost = route_source(rhost, rport) if lhost is None else unmap_v4(lhost)
    lport = lport or 0
    same_family(lhost, rhost)

    before = {r.local[1] for r in _live(fd) if _same_pair(r, lhost, rhost, rport)}  # type: ignore[index]
    pm = thread_pm()
    ev = _events_socket()
    group = ev.family.groups.get(EVENTS_GROUP)
    if group is None:  # pragma: no cover - every kernel with the PM has it
        raise PathManagerError(_errno.ENOENT, "the mptcp_pm family has no events group")
    ev.add_membership(group)

    def what() -> str:
        return f"open_sub {fmt(lhost, lport)} -> {fmt(rhost, rport)}"

    try:
        ev.discard_pending()  # events from before this call
        deadline = time.monotonic() + timeout

        def initial() -> Optional[Host]:
            return read.initial_local(token, fd, "open_sub")

        lid = local_id(pm, token, lhost, lport, initial, what())
        waited = asked = False
        while True:  # at most three tries, every failure through the one mapping below
            try:
                pm.subflow_create(token, lhost, lport, lid, rhost, rport, backup, None, what)
                break
            except MPTCPError as err:
                if address_id_refused(err) and not asked:
                    # A remembered id went stale (another actor, or a reused token):
                    # ask the kernel which ids the connection holds.
                    asked = True
                    forget_id(token, lhost, lport)
                    lid = local_id(pm, token, lhost, lport, initial, what())
                    continue
                if err.errno == _errno.ENOTCONN and not waited:
                    # The kernel opens extra subflows only once the connection is
                    # fully established (the peer has acknowledged MPTCP data on the
                    # first subflow): wait for that (ESTABLISHED event), then retry.
                    # A connection that fell back says so here (MPTCP_INFO fails).
                    waited = True
                    read.token(fd, "open_sub")
                    _wait_fully_established(ev, token, deadline, timeout)
                    continue
                if err.errno in _CREATE_OPEN_ERRNOS:
                    raise SubflowOpenError(err.errno, err.strerror) from err
                raise
        remember_id(token, lhost, lport, lid)
        sport = _wait_event(ev, fd, token, lhost, lport, rhost, rport, before, deadline)
    except _Timeout:
        _destroy_new(pm, fd, token, lhost, rhost, rport, before)
        raise MPTCPTimeoutError(
            _errno.ETIMEDOUT,
            f"open_sub: the subflow {fmt(lhost, lport)} -> {fmt(rhost, rport)} was not "
            f"established within {timeout} s (destroyed it)",
        ) from None
    finally:
        ev.settimeout(None)
        ev.drop_membership(group)
    for rec in _live(fd):
        if rec.local is not None and rec.local[1] == sport and _same_pair(rec, lhost, rhost, rport):
            return _core.make_subflow(rec.id, tuple(rec.local), tuple(rec.remote),  # type: ignore[arg-type]
                                      1 if backup else 0, None)
    raise SubflowOpenError(
        _errno.ECONNRESET,
        f"open_sub: the subflow {(lhost.text, sport)} -> {(rhost.text, rport)} was established "
        "and closed again before it could be looked up",
    )


class _Timeout(Exception):
    pass


class _EventsLost(Exception):
    pass


def _events(ev: genl.GenlSocket, deadline: float, token: int) -> Iterator[Event]:
    """The connection's events as they arrive; raises _Timeout at the deadline and
    _EventsLost when the kernel dropped events (ENOBUFS)."""
    reader = EventReader(ev.family.id)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout()
        ev.settimeout(remaining)
        try:
            view, n = ev.recv_into_buffer()
        except socket.timeout:
            raise _Timeout() from None
        except OSError as err:
            if err.errno == _errno.ENOBUFS:
                raise _EventsLost() from None
            raise
        reader.reset(view, n)
        while True:
            event = reader.next(token)
            if event is None:
                break
            yield event


def _wait_fully_established(ev: genl.GenlSocket, token: int, deadline: float,
                            timeout: float) -> None:
    try:
        for event in _events(ev, deadline, token):
            if event.type == EventType.ESTABLISHED:
                return
            if event.type == EventType.CLOSED:
                raise NotMPTCPError(_errno.ENOTCONN, "open_sub: the connection was closed")
    except _Timeout:
        raise MPTCPTimeoutError(
            _errno.ETIMEDOUT,
            f"open_sub: the MPTCP connection did not become fully established within "
            f"{timeout} s; the kernel adds subflows only after the peer has "
            "acknowledged data on the first one: send data first",
        ) from None
    except _EventsLost:
        return  # just try again


def _wait_event(ev: genl.GenlSocket, fd: int, token: int, lhost: Host, lport: int,
                rhost: Host, rport: int, before: set[int], deadline: float) -> int:
    """Block until the join's SUB_ESTABLISHED (returns the local port) or
    SUB_CLOSED (raises SubflowOpenError)."""
    try:
        for event in _events(ev, deadline, token):
            if event.type not in (EventType.SUB_ESTABLISHED, EventType.SUB_CLOSED):
                continue
            if event.local is None or event.remote is None:
                continue
            if event.local[0] != lhost.text or event.remote != (rhost.text, rport):
                continue
            sport = event.local[1]
            if (lport and sport != lport) or sport in before:
                continue
            if event.type == EventType.SUB_ESTABLISHED:
                return sport
            code = event.error or _errno.ECONNRESET
            raise SubflowOpenError(
                code,
                f"open_sub: the join {fmt(lhost, sport)} -> {fmt(rhost, rport)} failed: "
                f"{os.strerror(code)}",
            )
    except _EventsLost:
        return _poll_established(fd, lhost, lport, rhost, rport, before, deadline)
    raise AssertionError("unreachable: _events ends only by raising")


def _poll_established(fd: int, lhost: Host, lport: int, rhost: Host, rport: int,
                      before: set[int], deadline: float) -> int:
    # The kernel dropped events: fall back to watching the snapshot.
    seen = False
    delay = 0.0005
    while True:
        found = None
        for rec in _live(fd):
            if _same_pair(rec, lhost, rhost, rport) and rec.local[1] not in before and (  # type: ignore[index]
                not lport or rec.local[1] == lport  # type: ignore[index]
            ):
                found = rec
        if found is not None:
            seen = True
            if found.state == TCPState.ESTABLISHED:
                return int(found.local[1])  # type: ignore[index]
        elif seen:
            raise SubflowOpenError(
                _errno.ECONNRESET,
                f"open_sub: the join {fmt(lhost, lport)} -> {fmt(rhost, rport)} failed "
                "(events were lost, so the kernel's reason is unknown)",
            )
        if time.monotonic() >= deadline:
            raise _Timeout()
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _destroy_new(pm: PMSocket, fd: int, token: int, lhost: Host, rhost: Host, rport: int,
                 before: set[int]) -> None:
    try:
        recs = _live(fd)
    except MPTCPError:
        return
    for rec in recs:
        if _same_pair(rec, lhost, rhost, rport) and rec.local[1] not in before:  # type: ignore[index]
            try:
                pm.subflow_destroy(token, lhost, int(rec.local[1]), rhost, rport,  # type: ignore[index]
                                   "open_sub (destroying the half-open subflow)")
            except MPTCPError:
                pass


# ---------------------------------------------------------------- close / prio


def _hosts_of(rec: SubflowInfo) -> tuple[Host, int, Host, int]:
    assert rec.local is not None and rec.remote is not None
    return (unmap_v4(_host_of(rec.local[0])), int(rec.local[1]),
            unmap_v4(_host_of(rec.remote[0])), int(rec.remote[1]))


def close_sub(fd: int, sub_id: int, how: int, *, timeout: float = 5.0) -> None:
    """Close one subflow (SUBFLOW_DESTROY; userspace PM, 5.19+, ids 6.5+) and return
    once it is gone from the connection's snapshot. The initial subflow can be closed
    too; the connection goes on over the others."""
    if how != socket.SHUT_RDWR:
        raise UnsupportedOperationError(
            "close_sub: the upstream kernel cannot half-close one subflow "
            "(SUBFLOW_DESTROY closes both directions); use how=socket.SHUT_RDWR, or "
            "shutdown() the whole MPTCP socket"
        )
    rec, token = read.subflow_and_token(fd, sub_id, "close_sub")
    lhost, lport, rhost, rport = _hosts_of(rec)
    thread_pm().subflow_destroy(token, lhost, lport, rhost, rport,
                                lambda: f"close_sub {sub_id} ({fmt(lhost, lport)} -> "
                                        f"{fmt(rhost, rport)})")
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        try:
            live = _live(fd)
        except NotMPTCPError:
            return  # the whole connection went away with it
        if not any(r.id == sub_id and r.state != TCPState.CLOSE for r in live):
            return
        if time.monotonic() >= deadline:
            raise MPTCPTimeoutError(
                _errno.ETIMEDOUT, f"close_sub: subflow {sub_id} still there after {timeout} s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def set_sub_prio(fd: int, sub_id: int, backup: bool) -> None:
    """Set (True) or clear (False) the backup priority of one subflow: SET_FLAGS
    with its 4-tuple, which sends MP_PRIO to the peer. Userspace PM, 5.19+ (ids
    6.5+)."""
    rec, token = read.subflow_and_token(fd, sub_id, "set_sub_prio")
    lhost, lport, rhost, rport = _hosts_of(rec)
    thread_pm().set_backup(token, lhost, lport, rhost, rport, backup,
                           lambda: f"set_sub_prio {sub_id} backup={backup} ({fmt(lhost, lport)} "
                                   f"-> {fmt(rhost, rport)})")
