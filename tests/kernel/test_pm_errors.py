"""Path-manager errors against the kernel: each message names the call the user made,
and the class follows from errno and the attribute the kernel names (plus, where
those cannot tell two refusals apart, a second question to the kernel), never from
the extended ack's wording."""

from __future__ import annotations

import errno
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mptcp
from mptcp import pm as P
from mptcp._lab import Lab


def in_ns(lab: Lab, fn: Callable[..., Any], *args: Any) -> Any:
    return lab.run_in(lab.client_ns, fn, *args)


def pm_call(lab: Lab, fn: Callable[[P.PathManager], Any]) -> Any:
    def run() -> Any:
        with P.PathManager() as pm:
            return fn(pm)

    return in_ns(lab, run)


def ss_token(lab: Lab, port: int) -> tuple[int, bool]:
    """(token, fallback) of the client's MPTCP socket to ``port``, as ``ss -M`` prints it."""
    out = lab.sh(lab.client_ns, "ss", "-MinH")
    recs = re.split(r"\n(?=\S)", out.strip())
    for rec in recs:
        if f":{port} " in rec.split("\n", 1)[0] + " ":
            tok = re.search(r"token:([0-9a-f]+)", rec)
            assert tok, rec
            return int(tok.group(1), 16), " fallback " in f" {rec} "
    raise AssertionError(f"no MPTCP socket to port {port} in:\n{out}")


@pytest.fixture
def fallen_back(ulab: Lab) -> Iterator[tuple[socket.socket, int]]:
    """An MPTCP client connected to a plain TCP server: fallen back, yet ``ss -M``
    still shows its token (and the kernel still knows it)."""
    srv = ulab.start_server(proto=socket.IPPROTO_TCP)
    s = ulab.connect(port=srv.port)
    try:
        s.sendall(b"x")
        token, fallback = ss_token(ulab, srv.port)
        assert fallback and token
        yield s, token
    finally:
        s.close()


def test_create_subflow_unknown_token_names_create_subflow(ulab: Lab) -> None:
    c2, s1 = ulab.client_addrs["v4"][1], ulab.server_addrs["v4"][0]
    with pytest.raises(mptcp.NotMPTCPError) as info:
        pm_call(ulab, lambda pm: pm.create_subflow(0x12345, c2, (s1, 80)))
    text = str(info.value)
    assert text.startswith(f"[Errno {errno.EINVAL}] create_subflow {c2}:0 -> {s1}:80: "), text
    assert "no MPTCP connection with this token (00012345)" in text
    assert "GET_ADDR" not in text  # the internal lookup is not the user's call


def test_create_subflow_on_a_fallen_back_connection_says_fallback(
    ulab: Lab, fallen_back: tuple[socket.socket, int]
) -> None:
    s, token = fallen_back
    c2, s1 = ulab.client_addrs["v4"][1], ulab.server_addrs["v4"][0]
    # by token: the kernel answers SUBFLOW_CREATE with ENOTCONN ("connect error: -107")
    with pytest.raises(mptcp.NotMPTCPError) as info:
        pm_call(ulab, lambda pm: pm.create_subflow(token, c2, (s1, 80)))
    assert info.value.errno == errno.ENOTCONN
    text = str(info.value)
    assert text.startswith(f"[Errno {errno.ENOTCONN}] create_subflow {c2}:0 -> {s1}:80: "), text
    assert "fell back to plain TCP" in text
    # by socket: its MPTCP_INFO already says so
    with pytest.raises(mptcp.NotMPTCPError, match=r"^\[Errno \d+\] create_subflow: .*fell back"):
        pm_call(ulab, lambda pm: pm.create_subflow(s, c2, (s1, 80)))


def test_open_sub_on_a_fallen_back_connection_names_open_sub(
    ulab: Lab, fallen_back: tuple[socket.socket, int]
) -> None:
    s, _token = fallen_back
    with pytest.raises(mptcp.NotMPTCPError) as info:
        in_ns(ulab, lambda: mptcp.open_sub(s, local=ulab.client_addrs["v4"][1], timeout=1))
    assert re.match(r"\[Errno \d+\] open_sub: .*fell back to plain TCP", str(info.value)), info.value


def test_create_subflow_before_full_establishment_says_so(ulab: Lab) -> None:
    srv = ulab.start_server()
    c2, s1 = ulab.client_addrs["v4"][1], ulab.server_addrs["v4"][0]
    with ulab.connect(port=srv.port) as s:  # nothing sent: not fully established
        with pytest.raises(mptcp.NotMPTCPError) as info:
            pm_call(ulab, lambda pm: pm.create_subflow(s, c2, (s1, srv.port)))
        assert info.value.errno == errno.ENOTCONN
        assert str(info.value).startswith(f"[Errno {errno.ENOTCONN}] create_subflow {c2}:0 -> ")
        assert "not fully established" in str(info.value) and "send data first" in str(info.value)


def _calls(lab: Lab, port: int) -> dict[str, Callable[[P.PathManager, Any], Any]]:
    c1, c2 = lab.client_addrs["v4"]
    s1 = lab.server_addrs["v4"][0]
    return {
        "create_subflow": lambda pm, c: pm.create_subflow(c, c2, (s1, port), local_id=3),
        "announce": lambda pm, c: pm.announce(c, c2, 3),
        "remove": lambda pm, c: pm.remove(c, 3),
        "local_addresses": lambda pm, c: pm.local_addresses(c),
        "destroy_subflow": lambda pm, c: pm.destroy_subflow(c, (c1, 1), (s1, port)),
        "set_backup": lambda pm, c: pm.set_backup(c, c1, s1, True),
    }


CALL_NAMES = ["create_subflow", "announce", "remove", "local_addresses", "destroy_subflow",
              "set_backup"]


@pytest.mark.parametrize("call", CALL_NAMES)
def test_in_kernel_connection_and_unknown_token_told_apart(pm_lab: Lab, call: str) -> None:
    # 6.18 answers both with EINVAL naming the TOKEN attribute: the library asks the
    # kernel a second question instead of reading the wording.
    srv = pm_lab.start_server()
    fn = _calls(pm_lab, srv.port)[call]
    with pm_lab.connect(port=srv.port) as s:
        s.sendall(b"x")
        token, fallback = ss_token(pm_lab, srv.port)
        assert not fallback
        for conn in (s, token):
            with pytest.raises(mptcp.PathManagerError) as info:
                pm_call(pm_lab, lambda pm: fn(pm, conn))
            assert type(info.value) is mptcp.PathManagerError
            assert str(info.value).startswith(f"[Errno {errno.EINVAL}] {call}"), info.value
            assert "sysctl net.mptcp.pm_type=1" in str(info.value)
        unknown = token ^ 0x5A5A5A5A
        with pytest.raises(mptcp.NotMPTCPError) as info:
            pm_call(pm_lab, lambda pm: fn(pm, unknown))
        assert str(info.value).startswith(f"[Errno {errno.EINVAL}] {call}"), info.value
        assert f"no MPTCP connection with this token ({unknown:08x})" in str(info.value)


def test_set_backup_without_such_subflow_is_subflow_not_found(ulab: Lab) -> None:
    # SET_FLAGS of a userspace-PM connection answers EINVAL naming no attribute
    srv = ulab.start_server()
    c1 = ulab.client_addrs["v4"][0]
    with ulab.connect(port=srv.port) as s:
        s.sendall(b"x")
        with pytest.raises(mptcp.SubflowNotFoundError) as info:
            pm_call(ulab, lambda pm: pm.set_backup(s, c1, f"10.{ulab.net}.2.77", True))
        assert str(info.value).startswith(f"[Errno {errno.EINVAL}] set_backup {c1}:0 -> ")
