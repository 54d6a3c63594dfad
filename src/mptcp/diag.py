"""The system-wide view: every MPTCP connection of a network namespace (sock_diag).

:func:`connections` asks the kernel's ``NETLINK_SOCK_DIAG`` interface for the MPTCP
sockets of the calling thread's network namespace (with their ``struct mptcp_info``)
and for the TCP sockets that are their subflows (with ``tcp_info`` and the MPTCP
subflow attributes: tokens, address ids, flags), and groups each subflow under its
connection by token. The walk over the kernel's bytes and the records happen in the
compiled core; this module holds the record types and the policy.

Like ``ss``, it sees the namespace of the thread that calls it (a netlink socket
belongs to the namespace of the thread that creates it) and needs no privilege:
fields the kernel gives only to CAP_NET_ADMIN are ``None`` for others.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import List

from . import _args
from . import _mptcp
from ._errors import KernelTooOldError, MPTCPError, error_from_errno
from ._records import Connection, DiagSubflow, SubflowFlags

__all__ = ["Connection", "DiagSubflow", "SubflowFlags", "connections"]

#: First kernel whose sock_diag answers for MPTCP sockets (INET_DIAG_REQ_PROTOCOL
#: and the MPTCP diag handler). The kernel itself says when it has none: before 5.9
#: the protocol attribute is unknown and the request names protocol 0, which has no
#: handler (ENOENT), as a kernel without CONFIG_INET_MPTCP_DIAG answers.
MIN_KERNEL = (5, 9)


def _as_mptcp_error(err: OSError, what: str) -> MPTCPError:
    # The core's hook speaks of fds; these calls have none, so say what was attempted.
    return error_from_errno(err.errno or _errno.EIO, what)


def connections(*, listening: bool = False, orphans: bool = False) -> List[Connection]:
    """Every MPTCP connection in the calling thread's network namespace.

    Two kinds of sock_diag dump: the MPTCP sockets with their ``mptcp_info`` (one
    request per family), then the TCP sockets with ``tcp_info`` and their MPTCP
    subflow attributes (one request for both families, the compat
    ``TCPDIAG_GETSOCK``: each request walks the whole TCP table the namespaces
    share), which are grouped under the connection whose token equals their local
    token. Like ``ss``, it lists sockets in every state but LISTEN,
    CLOSE, TIME_WAIT and SYN_RECV; a subflow appears under its connection only if
    both were seen in the same call (a connection opening or closing meanwhile
    may show fewer subflows).

    Parameters
    ----------
    listening
        Also list listening MPTCP sockets (``state == TCPState.LISTEN``, token 0,
        no subflows). Listeners are reported by Linux 5.19 and newer.
    orphans
        Also list subflows that outlive their MPTCP socket: once an application
        closes a connection, a subflow whose FIN is not acknowledged (its path is
        down, or its endpoint was removed) stays in FIN_WAIT1 for a while, and
        ``ss -tiM`` lists it, although no MPTCP socket has its token any more.
        They come after the connections, one entry per token: a
        :class:`Connection` with ``state == TCPState.CLOSE`` (no real entry has
        that state: closed MPTCP sockets are not listed), ``local``, ``remote``
        and ``info`` ``None``, ``inode`` and ``if_index`` 0, and the orphaned
        subflows in ``subflows``/``subflow_diag``. Only subflows in the states a
        closed subflow goes through (FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK)
        count: a subflow in another state with an unknown token belongs to a
        connection opened during the call, and is left out.

    Returns
    -------
    list of Connection
        In the kernel's order. Works without privileges; fields the kernel gives
        only to CAP_NET_ADMIN are ``None``.

    Raises
    ------
    KernelTooOldError
        Before Linux 5.9 (no sock_diag for MPTCP sockets), or if the kernel was
        built without ``CONFIG_INET_MPTCP_DIAG``.
    MPTCPError
        Any other netlink failure (``errno`` says which).

    Notes
    -----
    Minimum kernel: 5.9 (MPTCP socket diag and ``INET_DIAG_REQ_PROTOCOL``); the
    subflow attributes exist since 5.7; ``mptcp_info`` fields grew up to 6.18
    (missing ones are ``None``, see :class:`MPTCPInfo`).
    """
    _args.flag("listening", listening)
    _args.flag("orphans", orphans)
    try:
        return _mptcp.diag_connections(listening, orphans)
    except OSError as err:
        if err.errno in (_errno.ENOENT, _errno.EPROTONOSUPPORT, _errno.EINVAL):
            raise KernelTooOldError(
                err.errno,
                "connections() needs sock_diag for MPTCP sockets: this kernel has no "
                "MPTCP diag handler (CONFIG_INET_MPTCP_DIAG, Linux 5.9+): "
                f"{os.strerror(err.errno)}",
                min_version=MIN_KERNEL,
            ) from err
        raise _as_mptcp_error(err, "connections() could not dump sockets (sock_diag)") from err
