"""The Multipath TCP path manager over generic netlink (family ``mptcp_pm``).

:class:`PathManager` drives the kernel's path manager of one network namespace:
the in-kernel endpoints and limits (Linux 5.7+), and the per-connection commands of
the userspace path manager (Linux 5.19+; ``sysctl net.mptcp.pm_type=1``).

Reading endpoints, limits and the mode needs no privilege; every other command
needs CAP_NET_ADMIN in the namespace.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Optional, Union

from . import _args
from ._addr import Host
from ._backends.upstream import control, read
from ._errors import MPTCPError, PathManagerError
from ._netlink.genl import GenlFamily
from ._netlink.mptcp_pm import PMSocket, address_id_refused
from ._records import Endpoint, EndpointFlags, Limits

__all__ = ["PathManager", "read_mode"]

Address = Union[str, tuple[str, int]]
Conn = Any  # a socket-like object (fileno()) or an int token

_PM_TYPE_PATH = "/proc/sys/net/mptcp/pm_type"
_PATH_MANAGER_PATH = "/proc/sys/net/mptcp/path_manager"


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
        self._pm: PMSocket = PMSocket()

    # -- lifecycle

    def close(self) -> None:
        """Close the netlink socket (idempotent)."""
        self._pm.close()

    @property
    def closed(self) -> bool:
        return self._pm.closed

    def __enter__(self) -> "PathManager":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        nl = self._pm.nl
        state = "closed" if nl is None else f"family id {nl.family.id}"
        return f"<mptcp.PathManager {state}>"

    @property
    def family(self) -> GenlFamily:
        """The resolved ``mptcp_pm`` family (id, version, multicast groups)."""
        nl = self._pm.nl
        if nl is None:
            raise MPTCPError(_errno.EBADF, "the PathManager is closed")
        return nl.family

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
        return self._pm.get_addrs("endpoints")

    def get_endpoint(self, id: int) -> Optional[Endpoint]:
        """The in-kernel endpoint ``id`` (``ip mptcp endpoint show id ID``; GET_ADDR
        with an id), or None when there is none. Linux 5.7+. No privilege needed.

        Id 0 is valid and always None: it is each connection's initial address, which
        no endpoint has.
        """
        _args.address_id("endpoint id", id, lo=0)
        return self._pm.get_addr(id, f"get_endpoint {id}")

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
        laminar: bool = False,
    ) -> Endpoint:
        """Add an in-kernel endpoint (``ip mptcp endpoint add``). Linux 5.7+.

        Parameters
        ----------
        addr : str
            IPv4 or IPv6 address.
        id : int, optional
            Endpoint id 1-255; the kernel picks one when omitted or 0 (an endpoint
            never has id 0, the id of each connection's initial address).
        dev : str, optional
            Interface to bind subflows from this endpoint to.
        port : int, optional
            Port to announce (needs ``signal=True``).
        signal, subflow, backup, fullmesh : bool
            The endpoint's flags.
        laminar : bool
            Linux 6.18+: the in-kernel PM takes laminar endpoints as the source of
            the subflow it opens towards each address the peer announces, skipping
            one that already has a subflow. ``MPTCPInfo.endp_laminar_max`` counts
            them.

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
        host = _args.host("address", addr)
        if id is not None and _args.address_id("endpoint id", id, lo=0) == 0:
            id = None  # 6.18 picks an id for 0 too; not sending it means that on every kernel
        if port is not None:
            _args.port("port", port)
        if_index = _args.interface(dev, None)
        flags = EndpointFlags.NONE
        for name, on, bit in (("signal", signal, EndpointFlags.SIGNAL),
                              ("subflow", subflow, EndpointFlags.SUBFLOW),
                              ("backup", backup, EndpointFlags.BACKUP),
                              ("fullmesh", fullmesh, EndpointFlags.FULLMESH),
                              ("laminar", laminar, EndpointFlags.LAMINAR)):
            if _args.flag(name, on):
                flags |= bit
        self._pm.add_addr(host, id, port, int(flags), if_index, f"add_endpoint {host.text}")
        for ep in self.endpoints():
            if ep.addr == host.text and (id is None or ep.id == id) and (
                port is None or ep.port == port
            ):
                return ep
        raise PathManagerError(  # pragma: no cover - raced with a concurrent delete
            _errno.ENOENT, f"endpoint {host.text} vanished right after it was added"
        )

    def remove_endpoint(self, id: int, addr: Optional[str] = None) -> None:
        """Remove the in-kernel endpoint ``id`` (``ip mptcp endpoint delete id ID
        [ADDR]``). Linux 5.7+.

        With ``id=0`` and ``addr``, remove the address ``addr`` where it is a
        connection's initial address (address id 0, which no endpoint has): the
        kernel sends REMOVE_ADDR id 0 and closes the subflows from it, in every
        connection of the in-kernel path manager in this network namespace
        (checked on 6.18). For any other id, ``addr`` may be given as ``ip`` takes
        it; the kernel goes by the id.

        Raises
        ------
        ValueError
            ``id=0`` without ``addr``: the kernel would accept it and do nothing.
        PathManagerError
            No endpoint with this id (kernel message included).
        MPTCPPermissionError
            Without CAP_NET_ADMIN.
        """
        _args.address_id("endpoint id", id, lo=0)
        host = None if addr is None else _args.host("addr", addr)
        if id == 0 and host is None:
            raise ValueError(
                "endpoint id 0 is each connection's initial address: give the address too "
                "(remove_endpoint(0, addr))")
        what = f"remove_endpoint {id}" + ("" if host is None else f" {host.text}")
        self._pm.del_addr(id, host, what)

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
        _args.address_id("endpoint id", id)
        for name, v in (("backup", backup), ("fullmesh", fullmesh)):
            if v is not None and not isinstance(v, bool):
                raise TypeError(f"{name} must be a bool or None")
        current = self._pm.get_addr(id, f"set_endpoint_flags {id}")
        if current is None:
            raise PathManagerError(_errno.ENOENT, f"set_endpoint_flags {id}: no endpoint with id {id}")
        flags = current.flags
        if backup is not None:
            flags = flags | EndpointFlags.BACKUP if backup else flags & ~EndpointFlags.BACKUP
        if fullmesh is not None:
            flags = flags | EndpointFlags.FULLMESH if fullmesh else flags & ~EndpointFlags.FULLMESH
        self._pm.set_endpoint_flags(id, int(flags), f"set_endpoint_flags {id}")
        return current._replace(flags=EndpointFlags(flags))

    def flush_endpoints(self) -> None:
        """Remove every in-kernel endpoint (``ip mptcp endpoint flush``). 5.7+."""
        self._pm.flush("flush_endpoints")

    def limits(self) -> Limits:
        """The in-kernel path manager's limits (``ip mptcp limits show``). 5.7+.
        No privilege needed."""
        return self._pm.get_limits("limits")

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
                _args.u32(name, v)
        self._pm.set_limits(subflows, add_addr_accepted, "set_limits")
        return self.limits()

    # -- userspace path manager, per connection

    def local_addresses(self, conn: Conn) -> list[Endpoint]:
        """The local addresses (with their ids) the userspace path manager holds
        for one connection. Linux 6.7+ (GET_ADDR with a token)."""
        token = read.token_of(conn, "local_addresses")
        return self._pm.connection_addrs(token, "local_addresses")

    def announce(self, conn: Conn, addr: Address, id: int, *, dev: Optional[str] = None,
                 if_index: Optional[int] = None) -> None:
        """Announce a local address to the peer (ADD_ADDR). Userspace PM, 5.19+.

        Parameters
        ----------
        conn : socket or int
            The connection (anything with ``fileno()``) or its token.
        addr : str or (str, int)
            The address, optionally with a port to announce.
        id : int
            Address id 1-255 (the kernel refuses 0, the initial address's id: that
            address needs no announcement).
        dev, if_index : str or int, optional
            The interface the address belongs to (by name or index; not both). The
            kernel keeps it with the address (``local_addresses`` shows it).
        """
        host, port = _args.address("addr", addr)
        _args.address_id("address id", id)
        ifx = _args.interface(dev, if_index)
        token = read.token_of(conn, "announce")
        self._pm.announce(token, host, id, port or None, ifx, f"announce {host.text} id {id}")

    def remove(self, conn: Conn, id: int) -> None:
        """Withdraw address id ``id`` (REMOVE_ADDR to the peer). Userspace PM, 5.19+.

        Id 0 withdraws the connection's initial address: the peer gets REMOVE_ADDR
        id 0 and the subflows from that address close (6.18).
        """
        _args.address_id("address id", id, lo=0)
        token = read.token_of(conn, "remove")
        self._pm.remove(token, id, f"remove id {id}")

    def create_subflow(
        self,
        conn: Conn,
        local: Address,
        remote: tuple[str, int],
        *,
        local_id: Optional[int] = None,
        backup: bool = False,
        if_index: Optional[int] = None,
        dev: Optional[str] = None,
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
            Address id of ``local`` (0-255). Id 0 is the connection's initial local
            address (RFC 8684): a subflow from that address carries 0, any other
            address a non-zero id. By default: 0 for the initial address, else the
            id the connection already uses for this address, else the lowest free
            one.
        backup : bool
            Open it as a backup subflow.
        if_index, dev : int or str, optional
            Bind the subflow to this interface (by index or by name; not both).

        Returns
        -------
        int
            The local address id used.

        Raises
        ------
        PathManagerError
            The kernel refused; also an explicit ``local_id`` 0 for another address
            than the initial one, or a non-zero one for the initial address (the
            kernel would take both, leaving an address with two ids or two
            addresses with id 0).
        NotMPTCPError
            No such connection, it fell back to TCP, or it is not fully established
            yet (send data first).
        """
        lhost, lport = _args.address("local", local)
        rhost, rport = _args.address_pair("remote", remote)
        _args.same_family(lhost, rhost)
        _args.flag("backup", backup)
        if_index = _args.interface(dev, if_index)
        if local_id is not None:
            _args.address_id("local_id", local_id, lo=0)
        token = read.token_of(conn, "create_subflow")
        what = f"create_subflow {control.fmt(lhost, lport)} -> {control.fmt(rhost, rport)}"
        fd = _args.conn(conn)[1]

        def initial() -> Optional[Host]:
            return read.initial_local(token, fd, "create_subflow")

        if local_id is None:
            lid = control.local_id(self._pm, token, lhost, lport or 0, initial, what)
        else:
            control.check_id(local_id, lhost, initial(), what)
            lid = local_id
        try:
            self._pm.subflow_create(token, lhost, lport or 0, lid, rhost, rport, backup,
                                    if_index, what)
        except PathManagerError as err:
            if local_id is not None or not address_id_refused(err):
                raise
            # the remembered id went stale: ask the kernel which ids the connection holds
            control.forget_id(token, lhost, lport or 0)
            lid = control.local_id(self._pm, token, lhost, lport or 0, initial, what)
            self._pm.subflow_create(token, lhost, lport or 0, lid, rhost, rport, backup,
                                    if_index, what)
        control.remember_id(token, lhost, lport or 0, lid)
        return lid

    def destroy_subflow(self, conn: Conn, local: tuple[str, int], remote: tuple[str, int]) -> None:
        """Close the subflow with this exact 4-tuple (SUBFLOW_DESTROY). Userspace
        PM, 5.19+. Works on the initial subflow too.

        Raises
        ------
        SubflowNotFoundError
            No subflow of the connection has this 4-tuple.
        """
        lhost, lport = _args.address_pair("local", local)
        rhost, rport = _args.address_pair("remote", remote)
        _args.same_family(lhost, rhost)
        self._pm.subflow_destroy(
            read.token_of(conn, "destroy_subflow"), lhost, lport, rhost, rport,
            lambda: f"destroy_subflow {control.fmt(lhost, lport)} -> {control.fmt(rhost, rport)}")

    def set_backup(self, conn: Conn, local: Address, remote: Address, backup: bool) -> None:
        """Set or clear the backup flag of a subflow (SET_FLAGS; sends MP_PRIO).
        Userspace PM, 5.19+ (6.10+ for reliable per-subflow matching with ports).

        ``local``/``remote`` may omit ports (0 = any subflow between the two
        addresses).
        """
        lhost, lport = _args.address("local", local)
        rhost, rport = _args.address("remote", remote)
        _args.same_family(lhost, rhost)
        _args.flag("backup", backup)
        self._pm.set_backup(
            read.token_of(conn, "set_backup"), lhost, lport or 0, rhost, rport or 0, backup,
            f"set_backup {control.fmt(lhost, lport)} -> {control.fmt(rhost, rport)} backup={backup}")

