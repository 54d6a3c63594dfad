"""core.peer_name (getpeername into a stack sockaddr) agrees with socket.getpeername."""

from __future__ import annotations

import errno
import socket

import pytest

import mptcp
from mptcp import _mptcp as core


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_peer_name_matches_getpeername(family: int, host: str) -> None:
    with socket.socket(family) as lst:
        lst.bind((host, 0))
        lst.listen(1)
        with socket.create_connection(lst.getsockname()[:2]) as cli:
            conn, _ = lst.accept()
            with conn:
                assert core.peer_name(cli.fileno()) == cli.getpeername()[:2]
                assert core.peer_name(conn.fileno()) == conn.getpeername()[:2]


def test_peer_name_errors() -> None:
    with socket.socket() as s:
        with pytest.raises(mptcp.MPTCPError) as info:
            core.peer_name(s.fileno())
        assert info.value.errno == errno.ENOTCONN
    a, b = socket.socketpair()
    with a, b:
        assert core.peer_name(a.fileno()) is None  # AF_UNIX: not an IP peer
