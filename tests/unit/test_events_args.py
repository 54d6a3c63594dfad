"""events() checks every argument before it touches a socket: a bad rcvbuf is a
TypeError/ValueError even when token= is a socket that would fail the lookup."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import mptcp


class _Watched:
    """A socket stand-in that records whether anything asked for its fd."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.asked = 0

    def fileno(self) -> int:
        self.asked += 1
        return self.sock.fileno()


@pytest.mark.parametrize("rcvbuf, exc", [("x", TypeError), (1.5, TypeError), (True, TypeError),
                                         (0, ValueError), (-1, ValueError)])
def test_bad_rcvbuf_is_refused_before_the_token_lookup(rcvbuf: Any, exc: type) -> None:
    with socket.socket() as plain:  # its token lookup would raise NotMPTCPError
        watched = _Watched(plain)
        with pytest.raises(exc):
            mptcp.events(token=watched, rcvbuf=rcvbuf)
        assert watched.asked == 0  # not even the fd was read: no syscall made
        with pytest.raises(exc):
            mptcp.events(token=plain, rcvbuf=rcvbuf)
        assert plain.fileno() >= 0
