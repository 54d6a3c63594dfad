"""Argument checks for every public call, made once, before any syscall.

Wrong types raise ``TypeError`` and out-of-range values ``ValueError``, with the
argument's name in the message. Each function returns the value in the form the
layers below take (an ``int``, a canonical :class:`~mptcp._addr.Host`, ...).
"""

from __future__ import annotations

import math
import numbers
import socket
from typing import Any, Optional, Tuple

from ._addr import Host, parse_ip
from ._mptcp import BPF_VALUE_MAX

__all__ = [
    "integer", "c_int", "sub_id", "port", "address_id", "host", "address", "address_pair",
    "same_family", "how", "flag", "timeout", "optional_timeout", "conn", "rcvbuf", "u32", "option_int",
    "option_bytes", "buflen", "option_value", "interval", "optional_token", "pids",
    "interface",
]

U32_MAX = 0xFFFFFFFF
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def integer(name: str, value: Any) -> int:
    """An int (or an ``Integral``), never a bool."""
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return int(value)


def _in_range(name: str, value: Any, lo: int, hi: int, what: str = "") -> int:
    v = integer(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} {v} is outside {lo}-{hi}{what}")
    return v


def c_int(name: str, value: Any) -> int:
    """An int that fits a C int (socket option levels, names and values)."""
    v = integer(name, value)
    if not INT_MIN <= v <= INT_MAX:
        raise ValueError(f"{name} {v} does not fit a C int")
    return v


def option_int(value: Any) -> int:
    """An int option value: a C int, or up to 2**32 - 1 for the options the kernel
    reads as unsigned (the backend checks which)."""
    return _in_range("value", value, INT_MIN, U32_MAX)


def u32(name: str, value: Any) -> int:
    return _in_range(name, value, 0, U32_MAX)


def sub_id(value: Any, maximum: int = U32_MAX) -> int:
    """A subflow id; ``maximum`` is the largest the backend's kernel can carry."""
    return _in_range("sub_id", value, 0, maximum, ", the kernel's subflow id range")


def port(name: str, value: Any) -> int:
    return _in_range(name, value, 0, 65535)


def address_id(name: str, value: Any, lo: int = 1) -> int:
    """An MPTCP address id: a u8 (the kernel reads only the low byte of a wider value,
    so 256 would become 0); ``lo`` is 0 where the command takes id 0, the
    connection's initial address (checked live per command on 6.18)."""
    return _in_range(name, value, lo, 255)


def interface(dev: Any, if_index: Any) -> Optional[int]:
    """An interface given by name (``dev``) or by index (``if_index``), as its index;
    None for neither. A name is looked up in the calling thread's network namespace."""
    if dev is not None and if_index is not None:
        raise TypeError("give dev or if_index, not both")
    if if_index is not None:
        return _in_range("if_index", if_index, 1, INT_MAX)
    if dev is None:
        return None
    if not isinstance(dev, str):
        raise TypeError(f"dev must be an interface name, not {type(dev).__name__}")
    try:
        return socket.if_nametoindex(dev)
    except OSError:
        raise ValueError(f"no interface named {dev!r} in this network namespace") from None


def host(name: str, value: Any) -> Host:
    """An IPv4 or IPv6 address: a str (``[...]`` and ``%scope`` allowed) or an
    ``ipaddress`` object."""
    if type(value).__name__ in ("IPv4Address", "IPv6Address") and hasattr(value, "packed"):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be an IP address string, not {type(value).__name__}")
    try:
        return parse_ip(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an IPv4 or IPv6 address") from None


def address(name: str, value: Any) -> Tuple[Host, Optional[int]]:
    """A host, or ``(host, port)`` (an IPv6 sockaddr's extra fields are ignored);
    port ``None`` means not given."""
    if isinstance(value, tuple):
        if len(value) not in (2, 4):
            raise TypeError(f"{name} must be a host or a (host, port) tuple, not {value!r}")
        p = None if value[1] is None else port(f"{name} port", value[1])
        return host(f"{name} host", value[0]), p
    if not isinstance(value, str) and not hasattr(value, "packed"):
        raise TypeError(f"{name} must be a host str or a (host, port) tuple, not {value!r}")
    return host(name, value), None


def address_pair(name: str, value: Any) -> Tuple[Host, int]:
    """An exact ``(host, port)`` tuple."""
    if not isinstance(value, tuple):
        raise TypeError(f"{name} must be a (host, port) tuple, not {type(value).__name__}")
    h, p = address(name, value)
    if p is None:
        raise ValueError(f"{name} needs its port: an exact (host, port), not ({h.text!r}, None)")
    return h, p


def same_family(local: Host, remote: Host) -> None:
    if local.family != remote.family:
        raise ValueError(
            f"local address {local.text} and remote address {remote.text} are of "
            "different families"
        )


def how(value: Any) -> int:
    v = integer("how", value)
    if v not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
        raise ValueError(f"how must be socket.SHUT_RD, SHUT_WR or SHUT_RDWR, not {v}")
    return v


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def timeout(value: Any) -> float:
    """A positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds, not {type(value).__name__}")
    v = float(value)
    if not v > 0:
        raise ValueError(f"timeout must be > 0 seconds, not {value!r}")
    return v


def optional_timeout(value: Any) -> Optional[float]:
    """``None`` (wait as long as it takes) or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"timeout must be a number or None, not {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {value!r}")
    return v


def conn(value: Any, name: str = "conn") -> Tuple[Optional[int], Optional[int]]:
    """A connection given as an int token or a socket: ``(token, None)`` or
    ``(None, fd)``. The token of a socket is read later, by the backend."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int token or a socket, not bool")
    if isinstance(value, numbers.Integral):
        token = int(value)
        if not 0 < token <= U32_MAX:
            raise ValueError(f"token {token} is outside 1-{U32_MAX}")
        return token, None
    if not hasattr(value, "fileno"):
        raise TypeError(
            f"{name} must be an int token or a socket (anything with fileno()), not "
            f"{type(value).__name__}"
        )
    fd = value.fileno()
    if isinstance(fd, bool) or not isinstance(fd, numbers.Integral):
        raise TypeError(f"{type(value).__name__}.fileno() returned {fd!r}, not an int")
    return None, int(fd)


def rcvbuf(value: Any) -> Optional[int]:
    if value is None:
        return None
    return _in_range("rcvbuf", value, 1, INT_MAX, " bytes")


# The longest option value one subflow's calls carry: the BPF request's buffer
# (MPTCPK_BPF_VALUE_MAX in include/mptcp_sockopt.h, 128).
OPTION_MAX = BPF_VALUE_MAX


def option_bytes(value: Any) -> bytes:
    """A byte-string option value (``bytes``, ``bytearray``, ``memoryview``), 1-128 bytes."""
    if isinstance(value, str) or not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"value must be bytes (e.g. b\"reno\"), not {type(value).__name__}")
    data = bytes(value)
    if not 1 <= len(data) <= OPTION_MAX:
        raise ValueError(f"value must be 1-{OPTION_MAX} bytes, not {len(data)}")
    return data


def buflen(value: Any) -> int:
    return _in_range("buflen", value, 1, OPTION_MAX)


def option_value(value: Any) -> "int | bytes":
    """An option value: an int (:func:`option_int`), or 1-128 bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return option_bytes(value)
    return option_int(value)


def interval(value: Any) -> float:
    """A positive, finite number of seconds between two samples."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"interval must be a number of seconds, not {type(value).__name__}")
    v = float(value)
    if not v > 0 or math.isinf(v):
        raise ValueError(f"interval must be a positive number of seconds, not {value}")
    return v


def optional_token(value: Any) -> Optional[int]:
    """None, or a connection token (an int of 32 bits)."""
    if value is None:
        return None
    return _in_range("token", value, 0, U32_MAX)


def pids(values: Any) -> Tuple[int, ...]:
    """Process ids (positive ints)."""
    out = tuple(values)
    for pid in out:
        integer("pids", pid)
        if pid <= 0:
            raise ValueError(f"{pid} is not a process id")
    return out
