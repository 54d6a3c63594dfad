"""One subflow's socket options on the upstream kernel, through BPF.

The upstream kernel has no per-subflow getsockopt or setsockopt: an option set on the
MPTCP socket is copied to every subflow. The core's BPF iter/tcp program
(``src/mptcp_bpf.c``) calls the kernel's own ``bpf_setsockopt``/``bpf_getsockopt`` on
exactly one subflow: the TCP socket whose family and whole 4-tuple are the subflow's
and which is an MPTCP subflow of the connection with the right token. It is loaded on
the first call (BTF lookups, program load: about 2 ms) and kept for the process;
:func:`unload` drops it, a forked child forgets it.

Needs Linux 5.15 (bpf_setsockopt/getsockopt from iter/tcp; 6.5 for the calls that
name a subflow by id, which come from MPTCP_FULL_INFO), the kernel's BTF
(CONFIG_DEBUG_INFO_BTF) and, to load the program, CAP_BPF + CAP_PERFMON or
CAP_SYS_ADMIN in the initial user namespace. A call walks every bucket of its
network namespace's TCP hash table: about 35 us in a namespace with its own small
table (``net.ipv4.tcp_child_ehash_entries``), about 1 ms in the host's.
"""

from __future__ import annotations

import errno as _errno
import os
import socket
import struct
from typing import Any, Optional, Union

from ... import _args
from ... import _mptcp as _core
from ..._errors import (
    KernelTooOldError,
    MPTCPError,
    MPTCPPermissionError,
    SubflowNotFoundError,
    UnsupportedOperationError,
    error_from_errno,
)
from ..._records import SubflowOption
from . import read

__all__ = ["OPTIONS", "get_sub_sockopt_int", "set_sub_sockopt_int", "get_sub_sockopt",
           "set_sub_sockopt", "get_subflow_sockopt", "set_subflow_sockopt", "options"]

MIN_VERSION = (5, 15)
_S, _T, _IP, _IP6 = socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP, socket.IPPROTO_IPV6
_K = _core.abi
_V4_ONLY = ("IPv4 and v4-mapped IPv6 subflows only: the kernel refuses it (EINVAL) on an "
            "IPv6-only subflow, which every joined AF_INET6 subflow is")
_V6_ONLY = "AF_INET6 subflows only (v4-mapped ones included)"


def _opt(name: str, constant: str, level: int, optname: int, kind: str = "int",
         get: bool = True, set: bool = True, note: str = "") -> SubflowOption:
    return SubflowOption(name, constant, level, optname, kind, get, set, note)


#: Every option the kernel's bpf_setsockopt/bpf_getsockopt accept on an established
#: subflow (the lists in net/core/filter.c, each tried on this project's kernel tests:
#: tests/kernel/test_sockopt.py). Left out: SK_BPF_CB_FLAGS and
#: TCP_BPF_SOCK_OPS_CB_FLAGS (they steer the callbacks of other BPF programs), and
#: TCP_SAVED_SYN and TCP_BPF_SYN* (the kernel keeps no SYN of a subflow: EINVAL).
OPTIONS: tuple[SubflowOption, ...] = (
    _opt("reuseaddr", "SO_REUSEADDR", _S, socket.SO_REUSEADDR,
         note="accepted; it matters only at bind time"),
    _opt("sndbuf", "SO_SNDBUF", _S, socket.SO_SNDBUF, note="bytes (the kernel doubles it)"),
    _opt("rcvbuf", "SO_RCVBUF", _S, socket.SO_RCVBUF, note="bytes (the kernel doubles it)"),
    _opt("keepalive", "SO_KEEPALIVE", _S, socket.SO_KEEPALIVE, note="0 or 1"),
    _opt("priority", "SO_PRIORITY", _S, socket.SO_PRIORITY, note="the skb priority, 0-6"),
    _opt("reuseport", "SO_REUSEPORT", _S, socket.SO_REUSEPORT,
         note="accepted; it matters only at bind time"),
    _opt("rcvlowat", "SO_RCVLOWAT", _S, socket.SO_RCVLOWAT, set=False,
         note="read only: the kernel refuses to set it through BPF (EINVAL)"),
    _opt("bindtodevice", "SO_BINDTODEVICE", _S, socket.SO_BINDTODEVICE, kind="bytes",
         get=False, note="an interface name; set only (read it as bindtoifindex)"),
    _opt("mark", "SO_MARK", _S, socket.SO_MARK, note="the fwmark of the subflow's packets"),
    _opt("max-pacing-rate", "SO_MAX_PACING_RATE", _S, _K.SO_MAX_PACING_RATE,
         note="bytes/s, 0 to 4294967294 (-1: unlimited)"),
    _opt("bindtoifindex", "SO_BINDTOIFINDEX", _S, _K.SO_BINDTOIFINDEX,
         note="the interface index the subflow is bound to (0: none)"),
    _opt("txrehash", "SO_TXREHASH", _S, _K.SO_TXREHASH, note="0, 1, or -1 (the sysctl)"),
    _opt("nodelay", "TCP_NODELAY", _T, socket.TCP_NODELAY, note="0 or 1"),
    _opt("maxseg", "TCP_MAXSEG", _T, socket.TCP_MAXSEG,
         note="read: the subflow's MSS; set: accepted, an established subflow keeps its MSS"),
    _opt("keepidle", "TCP_KEEPIDLE", _T, socket.TCP_KEEPIDLE, note="seconds"),
    _opt("keepintvl", "TCP_KEEPINTVL", _T, socket.TCP_KEEPINTVL, note="seconds"),
    _opt("keepcnt", "TCP_KEEPCNT", _T, socket.TCP_KEEPCNT, note="probes"),
    _opt("syncnt", "TCP_SYNCNT", _T, socket.TCP_SYNCNT,
         note="accepted; it matters only during the handshake"),
    _opt("window-clamp", "TCP_WINDOW_CLAMP", _T, socket.TCP_WINDOW_CLAMP,
         note="bytes; the MPTCP socket itself refuses it"),
    _opt("congestion", "TCP_CONGESTION", _T, socket.TCP_CONGESTION, kind="bytes",
         note="a congestion control name, as net.ipv4.tcp_available_congestion_control lists"),
    _opt("thin-linear-timeouts", "TCP_THIN_LINEAR_TIMEOUTS", _T, _K.TCP_THIN_LINEAR_TIMEOUTS,
         note="0 or 1; the MPTCP socket itself refuses it"),
    _opt("user-timeout", "TCP_USER_TIMEOUT", _T, socket.TCP_USER_TIMEOUT,
         note="milliseconds; the MPTCP socket itself refuses it"),
    _opt("notsent-lowat", "TCP_NOTSENT_LOWAT", _T, socket.TCP_NOTSENT_LOWAT, note="bytes"),
    _opt("save-syn", "TCP_SAVE_SYN", _T, _K.TCP_SAVE_SYN,
         note="accepted; it matters only during the handshake"),
    _opt("rto-max", "TCP_RTO_MAX_MS", _T, _K.TCP_RTO_MAX_MS,
         note="milliseconds (Linux 6.15); the MPTCP socket itself refuses it"),
    _opt("initial-window", "TCP_BPF_IW", _T, _K.TCP_BPF_IW, get=False,
         note="segments; set only, and only before the subflow has sent data (EINVAL after)"),
    _opt("sndcwnd-clamp", "TCP_BPF_SNDCWND_CLAMP", _T, _K.TCP_BPF_SNDCWND_CLAMP, get=False,
         note="segments; set only"),
    _opt("delack-max", "TCP_BPF_DELACK_MAX", _T, _K.TCP_BPF_DELACK_MAX,
         note="microseconds (Linux 6.1)"),
    _opt("rto-min", "TCP_BPF_RTO_MIN", _T, _K.TCP_BPF_RTO_MIN, note="microseconds (Linux 6.1)"),
    _opt("tos", "IP_TOS", _IP, socket.IP_TOS, note=_V4_ONLY),
    _opt("tclass", "IPV6_TCLASS", _IP6, socket.IPV6_TCLASS, note=_V6_ONLY),
    _opt("autoflowlabel", "IPV6_AUTOFLOWLABEL", _IP6, _K.IPV6_AUTOFLOWLABEL,
         note=_V6_ONLY + "; 0 or 1"),
)
_BY_KEY = {(o.level, o.optname): o for o in OPTIONS}
_INT = struct.Struct("=i")
_U32 = struct.Struct("=I")
#: Options the kernel reads as an unsigned 32-bit value, ~0 meaning "unlimited":
#: given and read as 0 to 2**32 - 2, or -1 for unlimited.
_UNSIGNED = frozenset({"SO_MAX_PACING_RATE"})


def _pack(call: str, opt: SubflowOption, value: int) -> bytes:
    if opt.constant in _UNSIGNED:
        if not -1 <= value <= _args.U32_MAX:
            raise ValueError(f"{call}: {opt.constant} is 0 to {_args.U32_MAX} (-1: unlimited), "
                             f"not {value}")
        return _U32.pack(value & _args.U32_MAX)
    if not _args.INT_MIN <= value <= _args.INT_MAX:
        raise ValueError(f"{call}: {opt.constant} takes a C int, not {value}")
    return _INT.pack(value)


def _unpack(opt: SubflowOption, data: bytes) -> int:
    if opt.constant in _UNSIGNED:
        v = int(_U32.unpack_from(data)[0])
        return -1 if v == _args.U32_MAX else v
    return int(_INT.unpack_from(data)[0])


def _supported() -> str:
    return ", ".join(o.constant for o in OPTIONS)


def _option(call: str, level: int, optname: int, setting: bool, kind: Optional[str]) -> SubflowOption:
    """The table's entry, or UnsupportedOperationError before any BPF work."""
    opt = _BY_KEY.get((level, optname))
    if opt is None:
        raise UnsupportedOperationError(
            f"{call}: option (level {level}, optname {optname}) cannot be reached on one "
            f"subflow: the kernel's bpf_{'set' if setting else 'get'}sockopt does not take it. "
            f"Supported: {_supported()}"
        )
    if not (opt.set if setting else opt.get):
        raise UnsupportedOperationError(
            f"{call}: {opt.constant} can only be {'read' if setting else 'set'} on a subflow "
            f"({opt.note})"
        )
    if kind == "int" and opt.kind != "int":
        how = {"get_subflow_sockopt": "pass buflen", "set_subflow_sockopt": "pass bytes"}.get(
            call, f"use {'set_sub_sockopt' if setting else 'get_sub_sockopt'}")
        raise UnsupportedOperationError(
            f"{call}: {opt.constant} is a byte string, not an int: {how}")
    return opt


# --------------------------------------------------------------------------------
# Errors: the loader's (through the core's hook) and the helper's answer
# --------------------------------------------------------------------------------
# The loader's and the helper's errnos are never a subflow lookup's nor a socket
# that is not MPTCP (the lookup and the socket were checked before): plain MPTCPError.
_NOT_A_LOOKUP = {e: MPTCPError for e in (_errno.ENOENT, _errno.ESRCH, _errno.EOPNOTSUPP,
                                          _errno.ENOTCONN)}


def _load_error(err: int, stage: str, message: str, call: str) -> MPTCPError:
    """The exception for a failure of the loader or of the iterator, from the errno
    and the stage the core reports (its message says what exactly failed)."""
    where = f"{call}: {message}" if message else f"{call}: {stage}: {os.strerror(err)}"
    if err == _errno.EPERM and stage in ("map_create", "prog_load"):
        return MPTCPPermissionError(
            err, f"{call}: one subflow's options need CAP_BPF and CAP_PERFMON (or "
            f"CAP_SYS_ADMIN), in the initial user namespace, to load the BPF program once "
            f"({message})")
    if stage == "netns" and err == _errno.EPERM:
        return MPTCPPermissionError(
            err, f"{call}: the socket is in another network namespace than the calling "
            "thread; entering it for the call needs CAP_NET_ADMIN and CAP_SYS_ADMIN. Call "
            f"from a thread in the socket's namespace ({where})")
    if stage == "netns":
        return error_from_errno(err, f"{where} (entering the socket's network namespace)",
                                overrides=_NOT_A_LOOKUP)
    if stage == "btf_open" and err == _errno.ENOENT:
        return UnsupportedOperationError(
            err, f"{where}: one subflow's options need the kernel's BTF "
            "(/sys/kernel/btf/vmlinux), which a kernel built without CONFIG_DEBUG_INFO_BTF "
            "lacks")
    if stage == "btf_lookup" and "mptcp_subflow_context" in message:
        return UnsupportedOperationError(err, f"{where}: this kernel has no MPTCP (CONFIG_MPTCP)")
    if (stage == "btf_lookup" and "bpf_iter" in message) or (stage == "prog_load" and (
            "cannot use helper" in message or "unknown func" in message)):
        return KernelTooOldError(
            err, f"{where}: one subflow's options need Linux {MIN_VERSION[0]}.{MIN_VERSION[1]} "
            "or newer (bpf_setsockopt from a TCP iterator)", min_version=MIN_VERSION)
    if stage in ("btf_lookup", "btf_parse", "prog_load"):
        # A layout or a verifier this library has not seen: say what, never guess.
        return UnsupportedOperationError(
            err, f"{where}: this kernel does not accept the per-subflow option program")
    return error_from_errno(err, where, overrides=_NOT_A_LOOKUP)


_core._register_bpf(_load_error)
os.register_at_fork(after_in_child=_core.bpf_forget)

_HINTS = {
    (socket.TCP_CONGESTION, _errno.ENOENT):
        "no such congestion control (see net.ipv4.tcp_available_congestion_control; "
        "its module may need loading)",
    (socket.TCP_CONGESTION, _errno.EPERM):
        "that congestion control is not in net.ipv4.tcp_allowed_congestion_control of "
        "this network namespace",
}


def _answer(call: str, opt: SubflowOption, what: str, ret: int, family: int) -> None:
    """Raise for the helper's negative return, naming the option."""
    if ret >= 0:
        return
    err = -ret
    fam = {int(socket.AF_INET): "AF_INET", int(socket.AF_INET6): "AF_INET6"}.get(family, str(family))
    hint = _HINTS.get((opt.optname, err)) or opt.note
    text = f"{call}: the kernel refused {what} {opt.constant} on this {fam} subflow"
    if hint:
        text += f" ({hint})"
    raise error_from_errno(err, text, overrides=_NOT_A_LOOKUP)


def _not_found(call: str, fd: int, sub_id: int) -> SubflowNotFoundError:
    try:
        live = _core.sub_ids(fd)
    except MPTCPError:
        live = []
    return SubflowNotFoundError(
        _errno.ENOENT, f"{call}: no live subflow with id {sub_id} on fd {fd} (live ids: {live})")


# --------------------------------------------------------------------------------
# By subflow id (the seed calls)
# --------------------------------------------------------------------------------
def _by_id(call: str, fd: int, sub_id: int, opt: SubflowOption, value: Optional[bytes],
           buflen: int) -> Optional[bytes]:
    ret, matched, data, family = _core.bpf_sub_sockopt(
        fd, sub_id, value is not None, opt.level, opt.optname, value, buflen, call)
    if not matched:
        raise _not_found(call, fd, sub_id)  # gone between the lookup and the walk, too
    _answer(call, opt, "setting" if value is not None else "reading", ret, family)
    return data


def get_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int) -> int:
    """An int option of subflow ``sub_id``. TCP_MAXSEG is also answered, from the
    subflow's tcp_info, where the BPF program cannot be loaded (no privileges)."""
    opt = _option("get_sub_sockopt_int", level, optname, False, "int")
    try:
        data = _by_id("get_sub_sockopt_int", fd, sub_id, opt, None, 4)
    except (MPTCPPermissionError, UnsupportedOperationError, KernelTooOldError):
        if opt.constant != "TCP_MAXSEG" or _core.bpf_loaded():
            raise
        # tcpi_snd_mss is tp->mss_cache, what getsockopt(TCP_MAXSEG) returns on an
        # established socket (checked against BPF in the kernel tests)
        return int(read.find_subflow(fd, sub_id, "get_sub_sockopt_int").snd_mss or 0)
    assert data is not None
    return _unpack(opt, data)


def set_sub_sockopt_int(fd: int, sub_id: int, level: int, optname: int, value: int) -> None:
    opt = _option("set_sub_sockopt_int", level, optname, True, "int")
    _by_id("set_sub_sockopt_int", fd, sub_id, opt, _pack("set_sub_sockopt_int", opt, value), 4)


def get_sub_sockopt(fd: int, sub_id: int, level: int, optname: int, buflen: int) -> bytes:
    opt = _option("get_sub_sockopt", level, optname, False, None)
    data = _by_id("get_sub_sockopt", fd, sub_id, opt, None, buflen)
    assert data is not None
    return data


def set_sub_sockopt(fd: int, sub_id: int, level: int, optname: int, value: bytes) -> None:
    opt = _option("set_sub_sockopt", level, optname, True, None)
    _by_id("set_sub_sockopt", fd, sub_id, opt, value, len(value))


# --------------------------------------------------------------------------------
# By 4-tuple, without the fd (a connection of another process)
# --------------------------------------------------------------------------------
def _by_tuple(call: str, conn: Any, local: Any, remote: Any, level: int, optname: int,
              value: Union[int, bytes, None], buflen: Optional[int]) -> Union[int, bytes, None]:
    lhost, lport = _args.address_pair("local", local)
    rhost, rport = _args.address_pair("remote", remote)
    _args.same_family(lhost, rhost)
    setting = value is not None
    kind = "int" if (buflen is None and not setting) or isinstance(value, int) else None
    opt = _option(call, level, optname, setting, kind)
    tok, fd = _args.conn(conn)
    token = tok if tok is not None else read.token(fd, call) if fd is not None else 0
    raw = _pack(call, opt, value) if isinstance(value, int) else value
    ret, matched, data, family = _core.bpf_tuple_sockopt(
        token, lhost.family, lhost.packed, lport, rhost.packed, rport, setting, opt.level,
        opt.optname, raw, 4 if buflen is None else buflen, -1 if fd is None else fd, call)
    if not matched:
        raise SubflowNotFoundError(
            _errno.ENOENT, f"{call}: connection {token:08x} has no subflow "
            f"{lhost.text}:{lport} -> {rhost.text}:{rport} in this network namespace "
            "(give the addresses as mptcp.connections() reports the subflow)")
    _answer(call, opt, "setting" if setting else "reading", ret, family)
    if setting:
        return None
    assert data is not None
    return _unpack(opt, data) if buflen is None else data


def get_subflow_sockopt(conn: Any, local: Any, remote: Any, level: int, optname: int,
                        buflen: Optional[int]) -> Union[int, bytes]:
    got = _by_tuple("get_subflow_sockopt", conn, local, remote, level, optname, None, buflen)
    assert got is not None
    return got


def set_subflow_sockopt(conn: Any, local: Any, remote: Any, level: int, optname: int,
                        value: Union[int, bytes]) -> None:
    _by_tuple("set_subflow_sockopt", conn, local, remote, level, optname, value, None)


def options() -> list[SubflowOption]:
    return list(OPTIONS)
