"""One subflow's socket options on the upstream kernel.

The upstream kernel has no per-subflow getsockopt or setsockopt. Options that are
exactly a field of the subflow's own ``tcp_info`` are read from it (FULL_INFO, 6.5).
"""

from __future__ import annotations

import socket

from ..._errors import UnsupportedOperationError
from . import read

__all__ = ["SUB_SOCKOPT_FIELDS", "get_sub_sockopt_int", "set_sub_sockopt_int"]

#: Options ``get_sub_sockopt_int`` answers, as ``(level, optname) -> tcp_info field``.
#: Only exact equivalences: ``getsockopt(IPPROTO_TCP, TCP_MAXSEG)`` on a TCP socket
#: returns ``tp->mss_cache`` (outside CLOSE/LISTEN with a user MSS, and outside
#: repair mode, which subflows never are), and ``tcpi_snd_mss`` is
#: ``tp->mss_cache``. Checked live against ``getsockopt`` in the kernel tests.
SUB_SOCKOPT_FIELDS: dict[tuple[int, int], str] = {
    (socket.IPPROTO_TCP, socket.TCP_MAXSEG): "snd_mss",
}
_SOCKOPT_NAMES = {(socket.IPPROTO_TCP, socket.TCP_MAXSEG): "IPPROTO_TCP/TCP_MAXSEG"}


def get_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int) -> int:
    """An integer socket option of one subflow, from that subflow's ``tcp_info``
    (FULL_INFO, 6.5+): ``IPPROTO_TCP``/``TCP_MAXSEG`` (``tcpi_snd_mss``)."""
    field = SUB_SOCKOPT_FIELDS.get((level, optname))
    if field is None:
        raise UnsupportedOperationError(
            f"get_sub_sockopt_int: option (level {level}, optname {optname}) of one subflow "
            "cannot be read on the upstream kernel (no per-subflow getsockopt); supported, "
            f"from the subflow's tcp_info: {', '.join(_SOCKOPT_NAMES[k] for k in SUB_SOCKOPT_FIELDS)}"
        )
    rec = read.find_subflow(fd, sub_id, "get_sub_sockopt_int")
    value = getattr(rec, field)
    if value is None:  # pragma: no cover - tcp_info too short
        raise UnsupportedOperationError(
            f"get_sub_sockopt_int: the kernel did not return tcpi_{field}"
        )
    return int(value)


def set_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int, value: int) -> None:
    """Always raises: options set on the MPTCP socket itself apply to all its subflows
    (the kernel copies them to each one); that is never done on the caller's behalf."""
    raise UnsupportedOperationError(
        "set_sub_sockopt_int: the upstream kernel cannot set an option on one subflow; "
        "set it on the MPTCP socket with setsockopt(), which applies it to all subflows"
    )
