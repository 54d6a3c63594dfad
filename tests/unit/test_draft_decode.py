"""The draft-API decoders of the core against a pure-Python ``struct`` reference.

``decode_draft_sub_ids`` and ``decode_draft_sub_tuple`` are the decoders the draft
backend's syscalls use (GET_SUB_IDS and GET_SUB_TUPLE, ``include/mptcp_sockopt.h``),
exposed over caller bytes. The
reference below is the test oracle: canned replies, then hypothesis over arbitrary
bytes and over well-formed replies with random garbage in the fields the fork
leaves uninitialised.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptcp import _mptcp as core

SLAVE_SK, FULLY, ATTACHED, LOW_PRIO, PRE = 0x01, 0x02, 0x04, 0x08, 0x10
MASK = FULLY | ATTACHED | PRE
SALEN = {socket.AF_INET: 16, socket.AF_INET6: 28}


# ---------------------------------------------------------------- the reference


def ref_sub_ids(data: bytes, with_status: bool = True) -> list[Any]:
    """struct mptcp_sub_ids { u8 sub_count; <pad>; {u8 id; u8 bits;} sub_status[]; }"""
    if len(data) < 2:
        return []
    n = min(data[0], (len(data) - 2) // 2)
    out: list[Any] = []
    for i in range(n):
        sub_id, bits = struct.unpack_from("BB", data, 2 + 2 * i)
        out.append((sub_id, bits & MASK) if with_status else sub_id)
    return out


def ref_sub_tuple(data: bytes) -> tuple[tuple[str, int], tuple[str, int]]:
    """struct mptcp_sub_tuple { u8 id; sockaddr local; sockaddr remote; } (unaligned)."""
    if len(data) < 3:
        raise ValueError("short")
    (family,) = struct.unpack_from("=H", data, 1)
    if family not in SALEN:
        raise ValueError("family")
    salen = SALEN[family]
    if len(data) < 1 + 2 * salen:
        raise ValueError("short")

    def sockaddr(off: int) -> tuple[str, int]:
        (fam,) = struct.unpack_from("=H", data, off)
        if fam != family:
            raise ValueError("family")
        (port,) = struct.unpack_from("!H", data, off + 2)
        addr = data[off + 4:off + 8] if family == socket.AF_INET else data[off + 8:off + 24]
        return socket.inet_ntop(family, addr), port

    return sockaddr(1), sockaddr(1 + salen)


def sockaddr(family: int, host: str, port: int, garbage: bytes = b"") -> bytes:
    """A sockaddr_in/in6 with `garbage` in sin_zero / flowinfo + scope_id."""
    if family == socket.AF_INET:
        pad = (garbage + bytes(8))[:8]
        return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(host) + pad
    g = (garbage + bytes(8))[:8]
    return (struct.pack("=H", family) + struct.pack("!H", port) + g[:4]
            + socket.inet_pton(family, host) + g[4:])


def decode_tuple(data: bytes) -> Any:
    try:
        return core.decode_draft_sub_tuple(data)
    except ValueError:
        return ValueError


def ref_tuple(data: bytes) -> Any:
    try:
        return ref_sub_tuple(data)
    except ValueError:
        return ValueError


# ---------------------------------------------------------------- canned replies


def test_sub_ids_masks_uninitialised_bits() -> None:
    data = bytes([3, 0, 1, FULLY | ATTACHED | LOW_PRIO | SLAVE_SK, 4, PRE | ATTACHED, 2, 0xFF])
    assert core.decode_draft_sub_ids(data) == [(1, FULLY | ATTACHED), (4, PRE | ATTACHED), (2, MASK)]
    assert core.decode_draft_sub_ids(data, False) == [1, 4, 2]
    assert core.decode_draft_sub_ids(data) == ref_sub_ids(data)


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00", b"\x05\x00\x01\x02", bytes(512)])
def test_sub_ids_short_and_empty(data: bytes) -> None:
    assert core.decode_draft_sub_ids(data) == ref_sub_ids(data)
    assert core.decode_draft_sub_ids(data, False) == ref_sub_ids(data, False)


def test_sub_ids_full_buffer() -> None:
    data = bytes([255, 0]) + b"".join(bytes([i, 0xFF]) for i in range(1, 256))
    assert len(data) == 512
    got = core.decode_draft_sub_ids(data, False)
    assert got == list(range(1, 256))


@pytest.mark.parametrize(
    "family,local,remote",
    [
        (socket.AF_INET, ("10.0.1.1", 40000), ("10.0.2.2", 80)),
        (socket.AF_INET6, ("2001:db8::1", 1), ("fe80::1", 65535)),
        (socket.AF_INET6, ("::ffff:127.0.0.1", 5000), ("::1", 0)),
    ],
)
def test_sub_tuple_ignores_garbage(family: int, local: tuple[str, int],
                                   remote: tuple[str, int]) -> None:
    data = (b"\x07" + sockaddr(family, *local, garbage=b"\xa5" * 8)
            + sockaddr(family, *remote, garbage=b"\x5a" * 8))
    assert len(data) == (33 if family == socket.AF_INET else 57)
    got = core.decode_draft_sub_tuple(data)
    assert got == (local, remote) == ref_sub_tuple(data)
    # A 57-byte buffer holding an IPv4 reply (trailing bytes unused) decodes the same.
    assert core.decode_draft_sub_tuple(data + bytes(57 - len(data))) == got


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x01" + sockaddr(socket.AF_INET, "1.2.3.4", 1),  # remote missing
        b"\x01" + struct.pack("=H", 1) + bytes(60),  # AF_UNIX
        b"\x01" + sockaddr(socket.AF_INET, "1.2.3.4", 1) + sockaddr(socket.AF_INET6, "::1", 1),
    ],
)
def test_sub_tuple_rejects_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        core.decode_draft_sub_tuple(data)
    assert ref_tuple(data) is ValueError


# ---------------------------------------------------------------- differential fuzzing


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_sub_ids_matches_reference(data: bytes, with_status: bool) -> None:
    assert core.decode_draft_sub_ids(data, with_status) == ref_sub_ids(data, with_status)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_sub_tuple_matches_reference_on_any_bytes(data: bytes) -> None:
    assert decode_tuple(data) == ref_tuple(data)


@st.composite
def tuples(draw: st.DrawFn) -> bytes:
    family = draw(st.sampled_from([socket.AF_INET, socket.AF_INET6]))
    size = 4 if family == socket.AF_INET else 16
    parts = [draw(st.binary(min_size=1, max_size=1))]
    for _ in range(2):
        addr = socket.inet_ntop(family, draw(st.binary(min_size=size, max_size=size)))
        parts.append(sockaddr(family, addr, draw(st.integers(0, 65535)),
                              draw(st.binary(min_size=8, max_size=8))))
    return b"".join(parts) + draw(st.binary(max_size=30))


@settings(max_examples=500, deadline=None)
@given(tuples())
def test_sub_tuple_matches_reference_on_replies(data: bytes) -> None:
    got = core.decode_draft_sub_tuple(data)
    assert got == ref_sub_tuple(data)
