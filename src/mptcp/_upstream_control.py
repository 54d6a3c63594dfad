"""The seed calls that steer subflows, on the upstream kernel (userspace PM).

``open_sub``/``close_sub``/``set_sub_prio`` drive the ``mptcp_pm`` generic netlink
family (see :mod:`mptcp.pm`); ``get_sub_sockopt_int`` answers from a subflow's own
``tcp_info``. The public layer (``mptcp.open_sub`` ...) checks argument types and
turns the socket into an fd before calling these; values are checked here.

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

import errno as _errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple, Optional

from . import _mptcp as _core
from . import _netlink as nl
from ._addr import same_host, unmap_v4
from . import pm as _pm
from ._errors import (
    MPTCPError,
    MPTCPTimeoutError,
    NotMPTCPError,
    PathManagerError,
    SubflowNotFoundError,
    SubflowOpenError,
    UnsupportedOperationError,
)

__all__ = [
    "open_sub",
    "close_sub",
    "set_sub_prio",
    "get_sub_sockopt_int",
    "set_sub_sockopt_int",
    "SUB_SOCKOPT_FIELDS",
]

TCP_ESTABLISHED = 1
TCP_CLOSE = 7

# events (MPTCP_EVENT_*) and their attributes (MPTCP_ATTR_*)
EV_SUB_ESTABLISHED = 10
EV_SUB_CLOSED = 11
EV_ATTR_TOKEN = 1
EV_ATTR_FAMILY = 2
EV_ATTR_SADDR4 = 5
EV_ATTR_SADDR6 = 6
EV_ATTR_DADDR4 = 7
EV_ATTR_DADDR6 = 8
EV_ATTR_SPORT = 9
EV_ATTR_DPORT = 10
EV_ATTR_ERROR = 12
EV_ATTR_MAX = 18

#: Options ``get_sub_sockopt_int`` answers, as ``(level, optname) -> tcp_info field``.
#: Only exact equivalences: ``getsockopt(IPPROTO_TCP, TCP_MAXSEG)`` on a TCP socket
#: returns ``tp->mss_cache`` (outside CLOSE/LISTEN with a user MSS, and outside
#: repair mode, which subflows never are), and ``tcpi_snd_mss`` is
#: ``tp->mss_cache``. Checked live against ``getsockopt`` in the kernel tests.
SUB_SOCKOPT_FIELDS: dict[tuple[int, int], str] = {
    (socket.IPPROTO_TCP, socket.TCP_MAXSEG): "snd_mss",
}
_SOCKOPT_NAMES = {(socket.IPPROTO_TCP, socket.TCP_MAXSEG): "IPPROTO_TCP/TCP_MAXSEG"}

_CREATE_OPEN_ERRNOS = frozenset(
    {
        _errno.EADDRNOTAVAIL,
        _errno.EADDRINUSE,
        _errno.ENETUNREACH,
        _errno.EHOSTUNREACH,
        _errno.ECONNREFUSED,
        _errno.ECONNRESET,
        _errno.EACCES,
        _errno.ENODEV,
    }
)


def _api() -> Any:
    import mptcp  # lazily: mptcp imports this module

    return mptcp


class _Addr(NamedTuple):
    host: "_pm._Host"
    port: int


def _norm_host(h: "_pm._Host") -> "_pm._Host":
    # An AF_INET6 socket talking to an IPv4 peer reports it v4-mapped; the path
    # manager wants the IPv4 address.
    return unmap_v4(h)


def _peer_of(fd: int) -> tuple[str, int]:
    try:
        peer = _core.peer_name(fd)
    except OSError as err:
        raise NotMPTCPError(err.errno or _errno.ENOTCONN,
                            "the socket has no peer: not connected") from err
    if peer is None:
        raise NotMPTCPError(_errno.EAFNOSUPPORT, "the socket's peer is not an IPv4/IPv6 address")
    return peer


def route_source(remote: "_pm._Host", port: int) -> "_pm._Host":
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
        return _pm.parse_host(u.getsockname()[0])


def _live(fd: int, call: str) -> list[Any]:
    return list(_api().subflows(fd))


def _find(fd: int, sub_id: int, call: str) -> Any:
    for rec in _live(fd, call):
        if rec.id == sub_id:
            return rec
    raise SubflowNotFoundError(
        _errno.ENOENT, f"{call}: the connection has no live subflow with id {sub_id}"
    )


def _check_sub_id(sub_id: object) -> int:
    if not isinstance(sub_id, int) or isinstance(sub_id, bool):
        raise TypeError(f"sub_id must be an int, not {type(sub_id).__name__}")
    if not 0 <= sub_id <= 0xFFFFFFFF:
        raise ValueError(f"sub_id {sub_id} is outside 0-4294967295")
    return sub_id


def _hosts_of(rec: Any) -> tuple[_Addr, _Addr]:
    return (
        _Addr(_norm_host(_pm.parse_host(rec.local[0])), int(rec.local[1])),
        _Addr(_norm_host(_pm.parse_host(rec.remote[0])), int(rec.remote[1])),
    )


def _make_subflow(sub_id: int, local: tuple[str, int], remote: tuple[str, int],
                  prio: Optional[int]) -> Any:
    return _core.make_subflow(sub_id, local, remote, prio, None)


# ---------------------------------------------------------------- events socket

_tls = threading.local()


def _events_socket(ns: int) -> nl.GenlSocket:
    """This thread's events socket for network namespace ``ns`` (netns_id)."""
    cache: Optional[dict[int, nl.GenlSocket]] = getattr(_tls, "ev", None)
    if cache is None:
        cache = _tls.ev = {}
    s = cache.get(ns)
    if s is None or s.closed:
        s = cache[ns] = nl.GenlSocket(_pm.FAMILY_NAME, error_hook=_pm._CONN_HOOK)
    return s


# ---------------------------------------------------------------- open_sub


def open_sub(
    fd: int,
    local: Any = None,
    remote: Any = None,
    backup: bool = False,
    timeout: float = 5.0,
) -> Any:
    """Open a subflow and wait until it is established (userspace PM, 5.19+;
    subflow ids need 6.5+).

    Parameters
    ----------
    fd : int
        The MPTCP socket.
    local : str or (str, int) or None
        Local address (and port, 0 = ephemeral); None = the source address the
        routing table picks for ``remote``.
    remote : str or (str, int) or None
        Remote address and port; None = the connection's peer; no port = the
        peer's port.
    backup : bool
        Open it as a backup subflow (MP_JOIN with the backup bit).
    timeout : float
        Seconds to wait for the join to complete; > 0.

    Returns
    -------
    Subflow
        The new subflow: kernel id, real local/remote tuples, ``prio``.

    Raises
    ------
    SubflowOpenError
        The kernel could not open it or the peer refused/reset the join
        (``errno``: e.g. ECONNREFUSED, ECONNRESET, EADDRNOTAVAIL).
    MPTCPTimeoutError
        Not established within ``timeout``; the half-open subflow is destroyed.
    PathManagerError
        The connection does not use the userspace path manager.
    MPTCPPermissionError
        Without CAP_NET_ADMIN.
    NotMPTCPError
        Not an MPTCP connection (or not connected).
    """
    if not isinstance(backup, bool):
        raise TypeError("backup must be a bool")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, not {timeout!r}")
    lhost = lport = rhost = rport = None
    if local is not None:
        lhost, lport = _pm.parse_address(local, "local")
    if remote is not None:
        rhost, rport = _pm.parse_address(remote, "remote")

    token = _pm.token_of_fd(fd)
    if rhost is None or rport is None:
        peer = _peer_of(fd)
        if rhost is None:
            rhost = _pm.parse_host(peer[0])
        if rport is None:
            rport = peer[1]
    rhost = _norm_host(rhost)
    if rport == 0:
        raise ValueError("remote port 0: give the port to join (or omit it for the peer's)")
    if lhost is None:
        lhost = route_source(rhost, rport)
    lhost = _norm_host(lhost)
    lport = lport or 0
    _pm._check_families(lhost, rhost)

    before = {(r.local[1]) for r in _live(fd, "open_sub") if _same_pair(r, lhost, rhost, rport)}
    ns = nl.netns_id()
    pm = _pm.thread_pm(ns)
    ev = _events_socket(ns)
    group = ev.family.groups.get(_pm.EVENTS_GROUP)
    if group is None:  # pragma: no cover - every kernel with the PM has it
        raise PathManagerError(_errno.ENOENT, "the mptcp_pm family has no events group")
    ev.add_membership(group)
    try:
        ev.discard_pending()  # events from before this call
        deadline = time.monotonic() + timeout
        lid = pm._local_id(token, lhost, lport)
        try:
            try:
                pm._subflow_create(token, lhost, lport, rhost, rport, lid, backup, None)
            except PathManagerError as err:
                if "did not match address and id" not in str(err):
                    raise
                # a remembered id went stale (another actor, or a reused token): ask
                pm._forget_id(token, lhost, lport)
                lid = pm._local_id(token, lhost, lport)
                pm._subflow_create(token, lhost, lport, rhost, rport, lid, backup, None)
        except MPTCPError as err:
            if err.errno != _errno.ENOTCONN:
                if err.errno in _CREATE_OPEN_ERRNOS:
                    raise SubflowOpenError(err.errno, f"open_sub: {err.strerror}") from err
                raise
            # The kernel opens extra subflows only once the connection is fully
            # established (the peer has acknowledged MPTCP data on the first
            # subflow). Wait for that (ESTABLISHED event), then try again.
            _wait_fully_established(ev, token, deadline, timeout)
            pm._subflow_create(token, lhost, lport, rhost, rport, lid, backup, None)
        pm._remember_id(token, lhost, lport, lid)
        sport = _wait_event(ev, fd, token, lhost, lport, rhost, rport, before, deadline)
    except _Timeout:
        _destroy_new(pm, fd, token, lhost, rhost, rport, before)
        raise MPTCPTimeoutError(
            _errno.ETIMEDOUT,
            f"open_sub: the subflow {_fmt(lhost, lport)} -> {_fmt(rhost, rport)} was not "
            f"established within {timeout} s (destroyed it)",
        ) from None
    finally:
        ev.settimeout(None)
        ev.drop_membership(group)
    local_t = (lhost.text, sport)
    remote_t = (rhost.text, rport)
    for rec in _live(fd, "open_sub"):
        if rec.local[1] == sport and _same_pair(rec, lhost, rhost, rport):
            return _make_subflow(rec.id, tuple(rec.local), tuple(rec.remote), 1 if backup else 0)
    raise SubflowOpenError(
        _errno.ECONNRESET,
        f"open_sub: the subflow {local_t} -> {remote_t} was established and closed again "
        "before it could be looked up",
    )


def _fmt(h: "_pm._Host", port: Optional[int]) -> str:
    return _pm._fmt(h, port)


def _same_pair(rec: Any, lhost: "_pm._Host", rhost: "_pm._Host", rport: int) -> bool:
    return (rec.remote[1] == rport and same_host(rec.local[0], lhost)
            and same_host(rec.remote[0], rhost))


class _Timeout(Exception):
    pass


EV_ESTABLISHED = 2
EV_CLOSED = 3


class _EventsLost(Exception):
    pass


def _event_messages(ev: nl.GenlSocket, deadline: float,
                    table: nl.AttrTable) -> Iterator[nl.GenlMessage]:
    """Decoded event messages as they arrive; raises _Timeout at the deadline and
    _EventsLost when the kernel dropped events (ENOBUFS)."""
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
        for off, _mlen, _t, _f, _s in nl.iter_messages(view, n):
            try:
                msg = nl.decode_genl(view, off, into=table)
            except ValueError:
                continue
            yield msg


def _wait_fully_established(ev: nl.GenlSocket, token: int, deadline: float,
                            timeout: float) -> None:
    try:
        for msg in _event_messages(ev, deadline, nl.AttrTable(EV_ATTR_MAX)):
            if msg.attrs.u32(EV_ATTR_TOKEN) != token:
                continue
            if msg.cmd == EV_ESTABLISHED:
                return
            if msg.cmd == EV_CLOSED:
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


def _wait_event(ev: nl.GenlSocket, fd: int, token: int, lhost: "_pm._Host", lport: int,
                rhost: "_pm._Host", rport: int, before: set[int], deadline: float) -> int:
    """Block until the join's SUB_ESTABLISHED (returns the local port) or
    SUB_CLOSED (raises SubflowOpenError)."""
    s4 = lhost.family == socket.AF_INET
    sattr, dattr = (EV_ATTR_SADDR4, EV_ATTR_DADDR4) if s4 else (EV_ATTR_SADDR6, EV_ATTR_DADDR6)
    try:
        for msg in _event_messages(ev, deadline, nl.AttrTable(EV_ATTR_MAX)):
            if msg.cmd not in (EV_SUB_ESTABLISHED, EV_SUB_CLOSED):
                continue
            a = msg.attrs
            if a.u32(EV_ATTR_TOKEN) != token or a.u16(EV_ATTR_FAMILY) != lhost.family:
                continue
            if a.bytes(sattr) != lhost.packed or a.bytes(dattr) != rhost.packed:
                continue
            if a.be16(EV_ATTR_DPORT) != rport:
                continue
            sport = a.be16(EV_ATTR_SPORT) or 0
            if (lport and sport != lport) or sport in before:
                continue
            if msg.cmd == EV_SUB_ESTABLISHED:
                return sport
            code = a.u8(EV_ATTR_ERROR) or _errno.ECONNRESET
            raise SubflowOpenError(
                code,
                f"open_sub: the join {_fmt(lhost, sport)} -> {_fmt(rhost, rport)} failed: "
                f"{os.strerror(code)}",
            )
    except _EventsLost:
        return _poll_established(fd, lhost, lport, rhost, rport, before, deadline)
    raise AssertionError("unreachable: _event_messages ends only by raising")


def _poll_established(fd: int, lhost: "_pm._Host", lport: int, rhost: "_pm._Host",
                      rport: int, before: set[int], deadline: float) -> int:
    # The kernel dropped events: fall back to watching the snapshot.
    seen = False
    delay = 0.0005
    while True:
        found = None
        for rec in _live(fd, "open_sub"):
            if _same_pair(rec, lhost, rhost, rport) and rec.local[1] not in before and (
                not lport or rec.local[1] == lport
            ):
                found = rec
        if found is not None:
            seen = True
            if found.state == TCP_ESTABLISHED:
                return int(found.local[1])
        elif seen:
            raise SubflowOpenError(
                _errno.ECONNRESET,
                f"open_sub: the join {_fmt(lhost, lport)} -> {_fmt(rhost, rport)} failed "
                "(events were lost, so the kernel's reason is unknown)",
            )
        if time.monotonic() >= deadline:
            raise _Timeout()
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _destroy_new(pm: "_pm.PathManager", fd: int, token: int, lhost: "_pm._Host",
                 rhost: "_pm._Host", rport: int, before: set[int]) -> None:
    try:
        recs = _live(fd, "open_sub")
    except MPTCPError:
        return
    for rec in recs:
        if _same_pair(rec, lhost, rhost, rport) and rec.local[1] not in before:
            try:
                pm._subflow_destroy(token, lhost, int(rec.local[1]), rhost, rport)
            except MPTCPError:
                pass


# ---------------------------------------------------------------- close / prio


def close_sub(fd: int, sub_id: int, how: int = socket.SHUT_RDWR, *,
              timeout: float = 5.0) -> None:
    """Close one subflow (SUBFLOW_DESTROY; userspace PM, 5.19+, ids 6.5+).

    Returns once the subflow is gone from the connection's snapshot. The initial
    subflow can be closed too; the connection goes on over the others.

    Raises
    ------
    UnsupportedOperationError
        ``how`` is SHUT_RD or SHUT_WR: the kernel cannot half-close one subflow.
    SubflowNotFoundError
        No live subflow with this id.
    """
    _check_sub_id(sub_id)
    if isinstance(how, bool) or not isinstance(how, int):
        raise TypeError("how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR")
    if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
        raise ValueError(f"how {how} is not SHUT_RD, SHUT_WR or SHUT_RDWR")
    if how != socket.SHUT_RDWR:
        raise UnsupportedOperationError(
            "close_sub: the upstream kernel cannot half-close one subflow "
            "(SUBFLOW_DESTROY closes both directions); use how=socket.SHUT_RDWR, or "
            "shutdown() the whole MPTCP socket"
        )
    rec = _find(fd, sub_id, "close_sub")
    token = _pm.token_of_fd(fd)
    (la, ra) = _hosts_of(rec)
    _pm.thread_pm()._subflow_destroy(token, la.host, la.port, ra.host, ra.port)
    deadline = time.monotonic() + timeout
    delay = 0.0002
    while True:
        try:
            live = _live(fd, "close_sub")
        except NotMPTCPError:
            return  # the whole connection went away with it
        if not any(r.id == sub_id and r.state != TCP_CLOSE for r in live):
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
    6.5+).

    Raises
    ------
    SubflowNotFoundError
        No live subflow with this id.
    """
    _check_sub_id(sub_id)
    if not isinstance(backup, bool):
        if isinstance(backup, int) and backup in (0, 1):
            backup = bool(backup)
        else:
            raise TypeError("backup must be a bool")
    rec = _find(fd, sub_id, "set_sub_prio")
    token = _pm.token_of_fd(fd)
    (la, ra) = _hosts_of(rec)
    _pm.thread_pm()._set_backup(token, la.host, la.port, ra.host, ra.port, backup)


# ---------------------------------------------------------------- sockopts


def _supported_text() -> str:
    return ", ".join(_SOCKOPT_NAMES[k] for k in SUB_SOCKOPT_FIELDS)


def get_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int) -> int:
    """An integer socket option of one subflow, from that subflow's ``tcp_info``
    (FULL_INFO, 6.5+). Only options equal to a ``tcp_info`` field are answered:
    ``IPPROTO_TCP``/``TCP_MAXSEG`` (``tcpi_snd_mss``).

    Raises
    ------
    UnsupportedOperationError
        Any other option (the upstream kernel has no per-subflow getsockopt).
    SubflowNotFoundError
        No live subflow with this id.
    """
    _check_sub_id(sub_id)
    for name, v in (("level", level), ("optname", optname)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int")
    field = SUB_SOCKOPT_FIELDS.get((level, optname))
    if field is None:
        raise UnsupportedOperationError(
            f"get_sub_sockopt_int: option (level {level}, optname {optname}) of one subflow "
            "cannot be read on the upstream kernel (no per-subflow getsockopt); supported, "
            f"from the subflow's tcp_info: {_supported_text()}"
        )
    rec = _find(fd, sub_id, "get_sub_sockopt_int")
    value = getattr(rec, field)
    if value is None:  # pragma: no cover - tcp_info too short
        raise UnsupportedOperationError(
            f"get_sub_sockopt_int: the kernel did not return tcpi_{field}"
        )
    return int(value)


def set_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int, value: int) -> None:
    """Always raises: the upstream kernel cannot set an option on one subflow.

    Raises
    ------
    UnsupportedOperationError
        Always. Options set on the MPTCP socket itself apply to all its subflows
        (the kernel copies them to each one); that is never done on the caller's
        behalf here.
    """
    _check_sub_id(sub_id)
    for name, v in (("level", level), ("optname", optname), ("value", value)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an int")
    raise UnsupportedOperationError(
        "set_sub_sockopt_int: the upstream kernel cannot set an option on one subflow; "
        "set it on the MPTCP socket with setsockopt(), which applies it to all subflows"
    )
