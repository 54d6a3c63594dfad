"""The Multipath TCP path manager over generic netlink (family ``mptcp_pm``).

:class:`PathManager` drives the kernel's path manager of one network namespace:
the in-kernel endpoints and limits (Linux 5.7+), and the per-connection commands of
the userspace path manager (Linux 5.19+; ``sysctl net.mptcp.pm_type=1``).

Reading endpoints, limits and the mode needs no privilege; every other command
needs CAP_NET_ADMIN in the namespace.
"""

from __future__ import annotations

import enum
import collections
import errno as _errno
import ipaddress
import os
import socket
import struct
import threading
from typing import Any, NamedTuple, Optional, Union

from . import _netlink as nl
from ._addr import Host, parse_ip
from ._errors import (
    MPTCPError,
    MPTCPPermissionError,
    NotMPTCPError,
    PathManagerError,
    SubflowNotFoundError,
    error_from_errno,
)

__all__ = ["PathManager", "Endpoint", "EndpointFlags", "Limits"]

FAMILY_NAME = "mptcp_pm"
EVENTS_GROUP = "mptcp_pm_events"

# commands
CMD_ADD_ADDR = 1
CMD_DEL_ADDR = 2
CMD_GET_ADDR = 3
CMD_FLUSH_ADDRS = 4
CMD_SET_LIMITS = 5
CMD_GET_LIMITS = 6
CMD_SET_FLAGS = 7
CMD_ANNOUNCE = 8
CMD_REMOVE = 9
CMD_SUBFLOW_CREATE = 10
CMD_SUBFLOW_DESTROY = 11

_CMD_NAMES = {
    CMD_ADD_ADDR: "ADD_ADDR",
    CMD_DEL_ADDR: "DEL_ADDR",
    CMD_GET_ADDR: "GET_ADDR",
    CMD_FLUSH_ADDRS: "FLUSH_ADDRS",
    CMD_SET_LIMITS: "SET_LIMITS",
    CMD_GET_LIMITS: "GET_LIMITS",
    CMD_SET_FLAGS: "SET_FLAGS",
    CMD_ANNOUNCE: "ANNOUNCE",
    CMD_REMOVE: "REMOVE",
    CMD_SUBFLOW_CREATE: "SUBFLOW_CREATE",
    CMD_SUBFLOW_DESTROY: "SUBFLOW_DESTROY",
}

# top-level attributes
ATTR_ADDR = 1
ATTR_RCV_ADD_ADDRS = 2
ATTR_SUBFLOWS = 3
ATTR_TOKEN = 4
ATTR_LOC_ID = 5
ATTR_ADDR_REMOTE = 6
ATTR_MAX = 6

# nested address attributes
ADDR_ATTR_FAMILY = 1
ADDR_ATTR_ID = 2
ADDR_ATTR_ADDR4 = 3
ADDR_ATTR_ADDR6 = 4
ADDR_ATTR_PORT = 5
ADDR_ATTR_FLAGS = 6
ADDR_ATTR_IF_IDX = 7
ADDR_ATTR_MAX = 7

SOL_MPTCP = 284
MPTCP_INFO = 1
_TOKEN_AT = struct.Struct("<I")

_PM_TYPE_PATH = "/proc/sys/net/mptcp/pm_type"
_PATH_MANAGER_PATH = "/proc/sys/net/mptcp/path_manager"

_PM_HINT = (
    "the connection uses the in-kernel path manager; per-connection commands need "
    "the userspace path manager, selected in the network namespace before the "
    "connection is made: sysctl net.mptcp.pm_type=1"
)
_CAP_HINT = "needs CAP_NET_ADMIN in this network namespace"


class EndpointFlags(enum.IntFlag):
    """Flags of an endpoint (``MPTCP_PM_ADDR_FLAG_*``)."""

    NONE = 0
    SIGNAL = 1
    SUBFLOW = 2
    BACKUP = 4
    FULLMESH = 8
    IMPLICIT = 16
    LAMINAR = 32


class Endpoint(NamedTuple):
    """An in-kernel path manager endpoint, as returned by :meth:`PathManager.endpoints`.

    ``port`` is None when the endpoint has none; ``if_index``/``dev`` are None when
    the endpoint is not bound to a device.
    """

    id: int
    addr: str
    port: Optional[int]
    flags: EndpointFlags
    if_index: Optional[int]
    dev: Optional[str]

    @property
    def backup(self) -> bool:
        return bool(self.flags & EndpointFlags.BACKUP)


class Limits(NamedTuple):
    """Limits of the in-kernel path manager, as returned by :meth:`PathManager.limits`."""

    subflows: int
    add_addr_accepted: int


Address = Union[str, tuple[str, int]]
Conn = Any  # a socket-like object (fileno()) or an int token


# ---------------------------------------------------------------- validation


_Host = Host


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_host(host: object, what: str = "address") -> _Host:
    """Validate an IP address text: TypeError / ValueError."""
    if isinstance(host, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        host = str(host)
    if not isinstance(host, str):
        raise TypeError(f"{what} must be an IP address string, not {type(host).__name__}")
    try:
        return parse_ip(host)
    except ValueError:
        raise ValueError(f"{what} {host!r} is not a valid IPv4 or IPv6 address") from None


def _check_range(value: object, what: str, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is outside {lo}-{hi}")
    return value


def check_port(port: object, what: str = "port") -> int:
    return _check_range(port, what, 0, 65535)


def check_id(value: object, what: str = "id") -> int:
    return _check_range(value, what, 1, 255)


def parse_address(value: object, what: str) -> tuple[_Host, Optional[int]]:
    """``host`` or ``(host, port)``; port None = not given (extra sockaddr fields
    ignored)."""
    if isinstance(value, tuple):
        if len(value) < 2:
            raise TypeError(f"{what} must be a host or a (host, port) tuple")
        port = None if value[1] is None else check_port(value[1], f"{what} port")
        return parse_host(value[0], f"{what} host"), port
    return parse_host(value, what), None


def _check_families(local: _Host, remote: _Host) -> None:
    if local.family != remote.family:
        raise ValueError(
            f"local address {local.text} and remote address {remote.text} are of "
            "different families"
        )


# ---------------------------------------------------------------- encoding


def put_addr(
    enc: nl.Encoder,
    atype: int,
    host: Optional[_Host],
    *,
    id: Optional[int] = None,
    port: Optional[int] = None,
    flags: Optional[int] = None,
    if_index: Optional[int] = None,
) -> None:
    """Append a nested MPTCP_PM address attribute.

    The kernel reads ``MPTCP_PM_ADDR_ATTR_PORT`` in host byte order (despite the
    netlink spec saying big-endian): sending network order connects to the wrong
    port.
    """
    start = enc.nest_start(atype)
    if host is not None:
        enc.put_u16(ADDR_ATTR_FAMILY, host.family)
        if host.family == socket.AF_INET:
            enc.put_bytes(ADDR_ATTR_ADDR4, host.packed)
        else:
            enc.put_bytes(ADDR_ATTR_ADDR6, host.packed)
    if id is not None:
        enc.put_u8(ADDR_ATTR_ID, id)
    if port is not None:
        enc.put_u16(ADDR_ATTR_PORT, port)
    if flags is not None:
        enc.put_u32(ADDR_ATTR_FLAGS, flags)
    if if_index is not None:
        enc.put_s32(ADDR_ATTR_IF_IDX, if_index)
    enc.nest_end(start)


def _addr_text(a: nl.AttrTable) -> Optional[str]:
    raw = a.bytes(ADDR_ATTR_ADDR4)
    if raw is not None and len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    raw = a.bytes(ADDR_ATTR_ADDR6)
    if raw is not None and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return None


def decode_endpoint(msg: nl.GenlMessage, table: Optional[nl.AttrTable] = None) -> Optional[Endpoint]:
    """Build an :class:`Endpoint` from one GET_ADDR reply message."""
    a = msg.attrs.nested(ATTR_ADDR, table or nl.AttrTable(ADDR_ATTR_MAX))
    if a is None:
        return None
    addr = _addr_text(a) or ""
    port = a.u16(ADDR_ATTR_PORT)
    ifx = a.s32(ADDR_ATTR_IF_IDX)
    dev = None
    if ifx:
        try:
            dev = socket.if_indextoname(ifx)
        except (OSError, OverflowError):  # IF_IDX is an s32: negative is no device
            dev = None
    else:
        ifx = None
    return Endpoint(
        a.u8(ADDR_ATTR_ID, 0) or 0,
        addr,
        port or None,
        EndpointFlags(a.u32(ADDR_ATTR_FLAGS, 0) or 0),
        ifx,
        dev,
    )


# ---------------------------------------------------------------- errors


def _make_error_hook(per_connection: bool):  # type: ignore[no-untyped-def]
    def hook(err: int, extack: Optional[str], cmd: int, what: str) -> MPTCPError:
        kernel = f" (kernel: {extack})" if extack else ""
        if err == _errno.EPERM:
            return MPTCPPermissionError(err, f"{what} {_CAP_HINT}{kernel}: {os.strerror(err)}")
        if per_connection and err == _errno.EINVAL and extack:
            low = extack.lower()
            if "userspace pm not selected" in low:
                return PathManagerError(err, f"{what}: {_PM_HINT}{kernel}")
            if "invalid token" in low:
                return NotMPTCPError(
                    err,
                    f"{what}: no MPTCP connection with this token in this network "
                    f"namespace (closed, fallen back, or not MPTCP){kernel}",
                )
            if "subflow not found" in low:  # SET_FLAGS says so where DESTROY gives ESRCH
                return SubflowNotFoundError(err, f"{what}: no such subflow{kernel}")
        if err == _errno.ESRCH:
            return SubflowNotFoundError(err, f"{what}: no such subflow{kernel}: {os.strerror(err)}")
        return error_from_errno(err, f"{what}{kernel}", default=PathManagerError)

    return hook


_GLOBAL_HOOK = _make_error_hook(False)
_CONN_HOOK = _make_error_hook(True)


# ---------------------------------------------------------------- tokens


def token_of(conn: Conn) -> int:
    """The MPTCP token of ``conn``: an int token as is, else read from the socket."""
    if _is_int(conn):
        if not 0 < conn <= 0xFFFFFFFF:
            raise ValueError(f"token {conn} is outside 1-4294967295")
        return int(conn)
    if isinstance(conn, bool) or not hasattr(conn, "fileno"):
        raise TypeError(
            f"conn must be a socket (anything with fileno()) or an int token, not "
            f"{type(conn).__name__}"
        )
    return token_of_fd(conn.fileno())


def token_of_fd(fd: int) -> int:
    try:
        from . import info as _info  # the read path, when built

        tok = int(_info(fd).token or 0)
    except ImportError:
        tok = _token_getsockopt(fd)
    if not tok:
        raise NotMPTCPError(
            _errno.ENOTCONN, "the socket has no MPTCP token: not connected or not MPTCP"
        )
    return tok


def _token_getsockopt(fd: int) -> int:
    s = socket.socket(fileno=fd)
    try:
        raw = s.getsockopt(SOL_MPTCP, MPTCP_INFO, 96)
    except OSError as err:
        e = err.errno or 0
        if e in (_errno.EOPNOTSUPP, _errno.ENOPROTOOPT):
            raise NotMPTCPError(e, "not an MPTCP connection (plain TCP or fallen back)") from err
        raise error_from_errno(e, "reading the MPTCP token") from err
    finally:
        s.detach()
    if len(raw) < 16:
        return 0
    return int(_TOKEN_AT.unpack_from(raw, 12)[0])


# ---------------------------------------------------------------- mode


def read_mode() -> str:
    """``"in-kernel"`` or ``"userspace"`` for the calling thread's network namespace."""
    try:
        with open(_PATH_MANAGER_PATH) as f:
            name = f.read().strip()
        return "in-kernel" if name in ("kernel", "in-kernel") else name
    except FileNotFoundError:
        pass
    try:
        with open(_PM_TYPE_PATH) as f:
            return "userspace" if f.read().strip() == "1" else "in-kernel"
    except FileNotFoundError:
        return "in-kernel"  # kernels before 5.19 have only the in-kernel one


# ---------------------------------------------------------------- the class


class PathManager:
    """The path manager of the calling thread's network namespace.

    Opens a generic netlink socket in the namespace of the thread that creates
    the object; use the object from that namespace. A context manager; ``close()``
    is idempotent.

    Raises
    ------
    KernelTooOldError
        The kernel has no ``mptcp_pm`` family (before 5.7, or MPTCP disabled).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nl: Optional[nl.GenlSocket] = nl.GenlSocket(FAMILY_NAME, error_hook=_GLOBAL_HOOK)
        self._addr_table = nl.AttrTable(ADDR_ATTR_MAX)
        # (token, packed address, port) -> the address id the kernel accepted for it
        # on that connection; saves open_sub a GET_ADDR dump per call. Bounded; a
        # stale entry is caught by the kernel ("did not match address and id").
        self._ids: "collections.OrderedDict[tuple[int, bytes, int], int]" = collections.OrderedDict()

    # -- lifecycle

    def close(self) -> None:
        """Close the netlink socket (idempotent)."""
        s, self._nl = self._nl, None
        if s is not None:
            s.close()

    @property
    def closed(self) -> bool:
        return self._nl is None

    def __enter__(self) -> "PathManager":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._nl is None else f"family id {self._nl.family.id}"
        return f"<mptcp.PathManager {state}>"

    def _sock(self) -> nl.GenlSocket:
        s = self._nl
        if s is None:
            raise MPTCPError(_errno.EBADF, "the PathManager is closed")
        return s

    def _do(self, cmd: int, encode: Any, what: nl.What, *,
            per_connection: bool = False, dump: bool = False) -> list[nl.GenlMessage]:
        hook = _CONN_HOOK if per_connection else _GLOBAL_HOOK

        def full() -> str:  # formatted only for an error message
            text = nl.what_text(what)
            return f"mptcp_pm {_CMD_NAMES[cmd]} ({text})" if text else f"mptcp_pm {_CMD_NAMES[cmd]}"

        with self._lock:
            s = self._sock()
            if dump:
                return s.dump(cmd, encode, what=full, error_hook=hook)
            return s.request(cmd, encode, what=full, error_hook=hook)

    @property
    def family(self) -> nl.GenlFamily:
        """The resolved ``mptcp_pm`` family (id, version, multicast groups)."""
        return self._sock().family

    # -- mode

    @property
    def mode(self) -> str:
        """``"in-kernel"`` or ``"userspace"``: the path manager new connections get.

        Read from ``net.mptcp.path_manager`` (6.15+) or ``net.mptcp.pm_type``
        (5.19+) of the calling thread's network namespace; ``"in-kernel"`` on older
        kernels. No privilege needed.
        """
        return read_mode()

    # -- in-kernel endpoints

    def endpoints(self) -> list[Endpoint]:
        """The in-kernel path manager's endpoints (``ip mptcp endpoint show``).

        Returns
        -------
        list[Endpoint]
            Ordered as the kernel lists them. Linux 5.7+. No privilege needed.
        """
        replies = self._do(CMD_GET_ADDR, None, "listing endpoints", dump=True)
        out = []
        for m in replies:
            ep = decode_endpoint(m, self._addr_table)
            if ep is not None:
                out.append(ep)
        return out

    def add_endpoint(
        self,
        addr: str,
        *,
        id: Optional[int] = None,
        dev: Optional[str] = None,
        port: Optional[int] = None,
        signal: bool = False,
        subflow: bool = False,
        backup: bool = False,
        fullmesh: bool = False,
    ) -> Endpoint:
        """Add an in-kernel endpoint (``ip mptcp endpoint add``). Linux 5.7+.

        Parameters
        ----------
        addr : str
            IPv4 or IPv6 address.
        id : int, optional
            Endpoint id 1-255; the kernel picks one when omitted.
        dev : str, optional
            Interface to bind subflows from this endpoint to.
        port : int, optional
            Port to announce (needs ``signal=True``).
        signal, subflow, backup, fullmesh : bool
            The endpoint's flags.

        Returns
        -------
        Endpoint
            The endpoint as the kernel recorded it.

        Raises
        ------
        TypeError, ValueError
            Invalid arguments, before anything is sent.
        MPTCPPermissionError
            Without CAP_NET_ADMIN.
        PathManagerError
            The kernel refused (duplicate address or id, bad flags); the message
            carries the kernel's explanation.
        """
        host = parse_host(addr)
        if id is not None:
            check_id(id, "endpoint id")
        if port is not None:
            check_port(port)
        if_index = None
        if dev is not None:
            if not isinstance(dev, str):
                raise TypeError(f"dev must be an interface name, not {type(dev).__name__}")
            try:
                if_index = socket.if_nametoindex(dev)
            except OSError:
                raise ValueError(f"no interface named {dev!r} in this network namespace") from None
        flags = EndpointFlags.NONE
        for on, bit in ((signal, EndpointFlags.SIGNAL), (subflow, EndpointFlags.SUBFLOW),
                        (backup, EndpointFlags.BACKUP), (fullmesh, EndpointFlags.FULLMESH)):
            if not isinstance(on, bool):
                raise TypeError("endpoint flags must be bools")
            if on:
                flags |= bit

        def enc(e: nl.Encoder) -> None:
            put_addr(e, ATTR_ADDR, host, id=id, port=port, flags=int(flags), if_index=if_index)

        self._do(CMD_ADD_ADDR, enc, f"adding endpoint {host.text}")
        for ep in self.endpoints():
            if ep.addr == host.text and (id is None or ep.id == id) and (
                port is None or ep.port == port
            ):
                return ep
        raise PathManagerError(  # pragma: no cover - raced with a concurrent delete
            _errno.ENOENT, f"endpoint {host.text} vanished right after it was added"
        )

    def remove_endpoint(self, id: int) -> None:
        """Remove the in-kernel endpoint ``id`` (``ip mptcp endpoint delete id``). 5.7+.

        Raises
        ------
        PathManagerError
            No endpoint with this id (kernel message included).
        MPTCPPermissionError
            Without CAP_NET_ADMIN.
        """
        check_id(id, "endpoint id")

        def enc(e: nl.Encoder) -> None:
            put_addr(e, ATTR_ADDR, None, id=id)

        self._do(CMD_DEL_ADDR, enc, f"removing endpoint {id}")

    def set_endpoint_flags(
        self, id: int, *, backup: Optional[bool] = None, fullmesh: Optional[bool] = None
    ) -> Endpoint:
        """Change the backup and/or fullmesh flag of endpoint ``id``. Linux 5.12+
        (fullmesh 5.18+). ``None`` keeps the current value. Existing subflows from
        the endpoint get MP_PRIO when ``backup`` changes.

        Returns
        -------
        Endpoint
            The endpoint after the change.
        """
        check_id(id, "endpoint id")
        for name, v in (("backup", backup), ("fullmesh", fullmesh)):
            if v is not None and not isinstance(v, bool):
                raise TypeError(f"{name} must be a bool or None")
        current = next((ep for ep in self.endpoints() if ep.id == id), None)
        if current is None:
            raise PathManagerError(_errno.ENOENT, f"no endpoint with id {id}")
        flags = current.flags
        if backup is not None:
            flags = flags | EndpointFlags.BACKUP if backup else flags & ~EndpointFlags.BACKUP
        if fullmesh is not None:
            flags = flags | EndpointFlags.FULLMESH if fullmesh else flags & ~EndpointFlags.FULLMESH

        def enc(e: nl.Encoder) -> None:
            put_addr(e, ATTR_ADDR, None, id=id, flags=int(flags))

        self._do(CMD_SET_FLAGS, enc, f"setting flags of endpoint {id}")
        return current._replace(flags=EndpointFlags(flags))

    def flush_endpoints(self) -> None:
        """Remove every in-kernel endpoint (``ip mptcp endpoint flush``). 5.7+."""
        self._do(CMD_FLUSH_ADDRS, None, "flushing endpoints")

    def limits(self) -> Limits:
        """The in-kernel path manager's limits (``ip mptcp limits show``). 5.7+.
        No privilege needed."""
        replies = self._do(CMD_GET_LIMITS, None, "reading limits")
        if not replies:
            raise MPTCPError(_errno.EPROTO, "GET_LIMITS returned nothing")
        a = replies[0].attrs
        return Limits(a.u32(ATTR_SUBFLOWS, 0) or 0, a.u32(ATTR_RCV_ADD_ADDRS, 0) or 0)

    def set_limits(
        self, subflows: Optional[int] = None, add_addr_accepted: Optional[int] = None
    ) -> Limits:
        """Set the limits; ``None`` keeps a value. 5.7+. The kernel caps both
        (8 on 6.18) and says so in the error.

        Returns
        -------
        Limits
            The limits after the change.
        """
        for name, v in (("subflows", subflows), ("add_addr_accepted", add_addr_accepted)):
            if v is not None:
                if not _is_int(v):
                    raise TypeError(f"{name} must be an int or None")
                if not 0 <= v <= 0xFFFFFFFF:
                    raise ValueError(f"{name} {v} is negative or too large")

        def enc(e: nl.Encoder) -> None:
            if add_addr_accepted is not None:
                e.put_u32(ATTR_RCV_ADD_ADDRS, add_addr_accepted)
            if subflows is not None:
                e.put_u32(ATTR_SUBFLOWS, subflows)

        self._do(CMD_SET_LIMITS, enc, "setting limits")
        return self.limits()

    # -- userspace path manager, per connection

    def local_addresses(self, conn: Conn) -> list[Endpoint]:
        """The local addresses (with their ids) the userspace path manager holds
        for one connection. Linux 6.7+ (GET_ADDR with a token)."""
        token = token_of(conn)

        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)

        replies = self._do(CMD_GET_ADDR, enc, "listing the connection's addresses",
                           per_connection=True, dump=True)
        out = []
        for m in replies:
            ep = decode_endpoint(m, self._addr_table)
            if ep is not None:
                out.append(ep)
        return out

    def announce(self, conn: Conn, addr: Address, id: int) -> None:
        """Announce a local address to the peer (ADD_ADDR). Userspace PM, 5.19+.

        Parameters
        ----------
        conn : socket or int
            The connection (anything with ``fileno()``) or its token.
        addr : str or (str, int)
            The address, optionally with a port to announce.
        id : int
            Address id 1-255.
        """
        host, port = parse_address(addr, "addr")
        check_id(id, "address id")
        token = token_of(conn)

        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)
            put_addr(e, ATTR_ADDR, host, id=id, port=port or None,
                     flags=int(EndpointFlags.SIGNAL))

        self._do(CMD_ANNOUNCE, enc, f"announcing {host.text} id {id}", per_connection=True)

    def remove(self, conn: Conn, id: int) -> None:
        """Withdraw address id ``id`` (REMOVE_ADDR to the peer). Userspace PM, 5.19+."""
        check_id(id, "address id")
        token = token_of(conn)

        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)
            e.put_u8(ATTR_LOC_ID, id)

        self._do(CMD_REMOVE, enc, f"removing address id {id}", per_connection=True)

    _IDS_MAX = 1024

    def _local_id(self, token: int, host: _Host, port: int) -> int:
        # The kernel keys a connection's local addresses by address and port and
        # refuses a known address with another id: reuse its id, else the lowest
        # free one (5.19-6.6 cannot list them: fall back to 1).
        known = self._ids.get((token, host.packed, port))
        if known is not None:
            return known

        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)

        try:
            replies = self._do(CMD_GET_ADDR, enc, "listing the connection's addresses",
                               per_connection=True, dump=True)
        except NotMPTCPError:
            raise
        except MPTCPError:
            replies = []
        used = set()
        for m in replies:
            ep = decode_endpoint(m, self._addr_table)
            if ep is None:
                continue
            if ep.addr == host.text and (ep.port or 0) == port and ep.id:
                return ep.id
            used.add(ep.id)
        for i in range(1, 256):
            if i not in used:
                return i
        raise PathManagerError(_errno.ENOSPC, "all 255 address ids of the connection are in use")

    def _remember_id(self, token: int, host: _Host, port: int, local_id: int) -> None:
        """The kernel accepted ``local_id`` for this address on this connection."""
        self._ids[(token, host.packed, port)] = local_id
        self._ids.move_to_end((token, host.packed, port))
        while len(self._ids) > self._IDS_MAX:
            self._ids.popitem(last=False)

    def _forget_id(self, token: int, host: _Host, port: int) -> None:
        self._ids.pop((token, host.packed, port), None)

    def create_subflow(
        self,
        conn: Conn,
        local: Address,
        remote: tuple[str, int],
        *,
        local_id: Optional[int] = None,
        backup: bool = False,
        if_index: Optional[int] = None,
    ) -> int:
        """Ask the kernel to open a subflow (SUBFLOW_CREATE). Userspace PM, 5.19+.

        Returns once the kernel has sent the SYN; the join may still fail later
        (see :func:`mptcp.open_sub`, which waits for the result).

        Parameters
        ----------
        conn : socket or int
            The connection or its token.
        local : str or (str, int)
            Local address, optionally with a port (0 = ephemeral).
        remote : (str, int)
            The peer's address and port.
        local_id : int, optional
            Address id of ``local`` (1-255); by default the id the connection
            already uses for this address, else the lowest free one.
        backup : bool
            Open it as a backup subflow.
        if_index : int, optional
            Bind the subflow to this interface.

        Returns
        -------
        int
            The local address id used.
        """
        lhost, lport = parse_address(local, "local")
        if not isinstance(remote, tuple):
            raise TypeError("remote must be a (host, port) tuple")
        rhost, rport = parse_address(remote, "remote")
        _check_families(lhost, rhost)
        if not isinstance(backup, bool):
            raise TypeError("backup must be a bool")
        if if_index is not None and (not _is_int(if_index) or if_index <= 0):
            raise ValueError("if_index must be a positive int")
        if local_id is not None:
            check_id(local_id, "local_id")
        token = token_of(conn)
        lid = local_id if local_id is not None else self._local_id(token, lhost, lport or 0)
        self._subflow_create(token, lhost, lport or 0, rhost, rport or 0, lid, backup, if_index)
        return lid

    def _subflow_create(self, token: int, lhost: _Host, lport: int, rhost: _Host, rport: int,
                        lid: int, backup: bool, if_index: Optional[int]) -> None:
        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)
            put_addr(e, ATTR_ADDR, lhost, id=lid, port=lport or None,
                     flags=int(EndpointFlags.BACKUP) if backup else None, if_index=if_index)
            put_addr(e, ATTR_ADDR_REMOTE, rhost, port=rport)

        self._do(CMD_SUBFLOW_CREATE, enc,
                 lambda: f"opening a subflow {_fmt(lhost, lport)} -> {_fmt(rhost, rport)}",
                 per_connection=True)

    def destroy_subflow(self, conn: Conn, local: tuple[str, int], remote: tuple[str, int]) -> None:
        """Close the subflow with this exact 4-tuple (SUBFLOW_DESTROY). Userspace
        PM, 5.19+. Works on the initial subflow too.

        Raises
        ------
        SubflowNotFoundError
            No subflow of the connection has this 4-tuple.
        """
        if not isinstance(local, tuple) or not isinstance(remote, tuple):
            raise TypeError("local and remote must be (host, port) tuples")
        lhost, lport = parse_address(local, "local")
        rhost, rport = parse_address(remote, "remote")
        _check_families(lhost, rhost)
        self._subflow_destroy(token_of(conn), lhost, lport or 0, rhost, rport or 0)

    def _subflow_destroy(self, token: int, lhost: _Host, lport: int, rhost: _Host,
                         rport: int) -> None:
        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)
            put_addr(e, ATTR_ADDR, lhost, port=lport)
            put_addr(e, ATTR_ADDR_REMOTE, rhost, port=rport)

        self._do(CMD_SUBFLOW_DESTROY, enc,
                 lambda: f"closing the subflow {_fmt(lhost, lport)} -> {_fmt(rhost, rport)}",
                 per_connection=True)

    def set_backup(self, conn: Conn, local: Address, remote: Address, backup: bool) -> None:
        """Set or clear the backup flag of a subflow (SET_FLAGS; sends MP_PRIO).
        Userspace PM, 5.19+ (6.10+ for reliable per-subflow matching with ports).

        ``local``/``remote`` may omit ports (0 = any subflow between the two
        addresses).
        """
        lhost, lport = parse_address(local, "local")
        rhost, rport = parse_address(remote, "remote")
        _check_families(lhost, rhost)
        if not isinstance(backup, bool):
            raise TypeError("backup must be a bool")
        self._set_backup(token_of(conn), lhost, lport or 0, rhost, rport or 0, backup)

    def _set_backup(self, token: int, lhost: _Host, lport: int, rhost: _Host, rport: int,
                    backup: bool) -> None:
        def enc(e: nl.Encoder) -> None:
            e.put_u32(ATTR_TOKEN, token)
            put_addr(e, ATTR_ADDR, lhost, port=lport or None,
                     flags=int(EndpointFlags.BACKUP) if backup else 0)
            put_addr(e, ATTR_ADDR_REMOTE, rhost, port=rport or None)

        self._do(CMD_SET_FLAGS, enc,
                 f"setting backup={backup} on {_fmt(lhost, lport)} -> {_fmt(rhost, rport)}",
                 per_connection=True)


def _fmt(host: _Host, port: Optional[int]) -> str:
    if host.family == socket.AF_INET6:
        return f"[{host.text}]:{port or 0}"
    return f"{host.text}:{port or 0}"


# One PathManager per (thread, network namespace) for the seed calls.
_local = threading.local()


def thread_pm(ns: Optional[int] = None) -> PathManager:
    """A cached :class:`PathManager` for the calling thread's network namespace
    (``ns``: its :func:`_netlink.netns_id`, when the caller already has it)."""
    if ns is None:
        ns = nl.netns_id()
    cache: Optional[dict[int, PathManager]] = getattr(_local, "pms", None)
    if cache is None:
        cache = _local.pms = {}
    pm = cache.get(ns)
    if pm is None or pm.closed:
        pm = cache[ns] = PathManager()
    return pm
