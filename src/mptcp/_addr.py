"""Text forms of addresses and tokens: validation and the canonical form of an IP
address, ``host:port`` as ``ss`` prints it, and a token in hex. socket.inet_pton and
inet_ntop rather than ipaddress: the same answers for addresses, at a tenth of the
cost on the open_sub path (and a lighter import)."""

from __future__ import annotations

import socket
from typing import NamedTuple, Optional, Tuple


class Host(NamedTuple):
    family: int
    packed: bytes
    text: str  # canonical: IPv6 compressed, no brackets, no scope


def parse_ip(text: str) -> Host:
    """``Host`` for an IPv4 or IPv6 address text (``[...]`` and ``%scope`` allowed).

    Raises ``ValueError`` if it is not an address (the caller checks the type).
    """
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        packed = socket.inet_pton(family, text)
    except OSError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    return Host(family, packed, socket.inet_ntop(family, packed))


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def unmap_v4(host: Host) -> Host:
    """An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, what an AF_INET6 socket
    reports for an IPv4 peer) as the IPv4 address; any other address unchanged."""
    if host.family == socket.AF_INET6 and host.packed[:12] == _V4_MAPPED:
        packed = host.packed[12:]
        return Host(socket.AF_INET, packed, socket.inet_ntop(socket.AF_INET, packed))
    return host


def same_host(text: str, host: Host) -> bool:
    """Whether a canonical address text (as the core decodes it) is ``host``, also
    when it is ``host`` v4-mapped."""
    return text == host.text or (host.family == socket.AF_INET and text == "::ffff:" + host.text)


def hostport(addr: Optional[Tuple[str, int]], dev: Optional[str] = None) -> str:
    """``host:port``, with IPv6 hosts in brackets and a device binding as
    ``host%dev:port`` (as ``ss`` prints them); ``-`` for None."""
    if addr is None:
        return "-"
    host, port = addr
    if ":" in host:
        host = f"[{host}]"
    return f"{host}%{dev}:{port}" if dev else f"{host}:{port}"


def token_hex(token: Optional[int]) -> str:
    """A connection token as 8 hex digits, as ``ip mptcp monitor`` prints it; ``-``
    for None."""
    return "-" if token is None else f"{token:08x}"


def parse_hostport(text: str) -> Tuple[str, int]:
    """``host:port`` as :func:`hostport` and ``ss`` print it (``[v6]:port``, a device
    binding ``host%dev:port``) -> ``(host, port)``; ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("["):
        # ``[v6]``, ``[v6]%dev`` (as ss and hostport() print a device) or ``[v6%dev]``
        close = host.find("]")
        if close < 0 or (close + 1 < len(host) and host[close + 1] != "%"):
            raise ValueError(f"{text!r} is not host:port")
        host = host[1:close]
    number = int(port)
    if number > 0xFFFF:
        raise ValueError(f"{text!r}: port {number} is outside 0-65535")
    return host.split("%", 1)[0], number
