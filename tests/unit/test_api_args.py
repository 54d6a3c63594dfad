"""Argument checks of the public calls: TypeError / ValueError before any syscall.

An fd that would fail loudly if used (-1) shows that nothing reached the kernel.
"""

from __future__ import annotations

import socket

import pytest

import mptcp

FD = -1  # EBADF if anything were sent


@pytest.mark.parametrize("sub_id,exc", [(True, TypeError), (1.0, TypeError), ("1", TypeError),
                                        (None, TypeError), (-1, ValueError), (2**32, ValueError)])
@pytest.mark.parametrize("call", ["get_sub_tuple", "close_sub", "set_sub_prio",
                                  "get_sub_sockopt_int", "set_sub_sockopt_int"])
def test_bad_sub_ids(call: str, sub_id: object, exc: type) -> None:
    args = {"get_sub_tuple": (), "close_sub": (), "set_sub_prio": (False,),
            "get_sub_sockopt_int": (6, 2), "set_sub_sockopt_int": (6, 2, 1)}[call]
    with pytest.raises(exc):
        getattr(mptcp, call)(FD, sub_id, *args)


@pytest.mark.parametrize("kwargs,exc", [
    ({"local": ("10.0.0.1", -1)}, ValueError), ({"local": ("10.0.0.1", 65536)}, ValueError),
    ({"remote": ("10.0.0.1", 65536)}, ValueError), ({"local": "not-an-ip"}, ValueError),
    ({"local": "10.0.0.300"}, ValueError), ({"local": 10}, TypeError),
    ({"local": ("10.0.0.1", "80")}, TypeError), ({"local": ("10.0.0.1", True)}, TypeError),
    ({"local": "10.0.0.1", "remote": "fd00::1"}, ValueError),
    ({"timeout": 0}, ValueError), ({"timeout": -1.0}, ValueError), ({"timeout": "1"}, TypeError),
    ({"timeout": True}, TypeError), ({"backup": 1}, TypeError),
])
def test_open_sub_rejects_bad_arguments(kwargs: dict, exc: type) -> None:  # type: ignore[type-arg]
    with pytest.raises(exc):
        mptcp.open_sub(FD, **kwargs)


def test_open_sub_subflow_and_keywords_is_a_type_error() -> None:
    sf = mptcp.Subflow(1, ("10.0.0.1", 1), ("10.0.0.2", 2))
    with pytest.raises(TypeError, match="either"):
        mptcp.open_sub(FD, sf, local="10.0.0.1")
    with pytest.raises(TypeError):
        mptcp.open_sub(FD, ("10.0.0.1", 1))  # type: ignore[arg-type]


@pytest.mark.parametrize("how,exc", [(99, ValueError), (-1, ValueError), ("rdwr", TypeError),
                                     (None, TypeError)])
def test_close_sub_bad_how(how: object, exc: type) -> None:
    with pytest.raises(exc):
        mptcp.close_sub(FD, 1, how)  # type: ignore[arg-type]


@pytest.mark.parametrize("sock", [None, "3", 3.0, True, object()])
def test_bad_sock_arguments(sock: object) -> None:
    for call in (mptcp.get_sub_ids, mptcp.subflows, mptcp.info):
        with pytest.raises(TypeError):
            call(sock)


def test_option_values_must_fit_a_c_int() -> None:
    with pytest.raises(ValueError):
        mptcp.set_sub_sockopt_int(FD, 1, socket.IPPROTO_TCP, 1, 2**31)
    with pytest.raises(ValueError):
        mptcp.get_sub_sockopt_int(FD, 1, 2**31, 1)
    with pytest.raises(ValueError, match="4294967295"):  # the widest an option takes
        mptcp.set_sub_sockopt_int(FD, 1, socket.SOL_SOCKET, socket.SO_MARK, 2**32)


@pytest.mark.parametrize("local,remote", [(("10.0.0.1", None), ("10.0.0.2", 80)),
                                          (("10.0.0.1", 5000), ("10.0.0.2", None))])
def test_a_subflow_tuple_needs_both_ports(local: object, remote: object) -> None:
    # A subflow is its exact 4-tuple: a missing port is refused, not searched as port 0.
    with pytest.raises(ValueError, match="needs its port"):
        mptcp.get_subflow_sockopt(0x1234, local, remote, socket.SOL_SOCKET, socket.SO_MARK)
