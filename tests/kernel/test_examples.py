"""Every script in examples/ runs for real, in a private two-path lab.

Each example exposes ``main(...)``, taking the connection (or address) it needs;
the tests here build it in a lab, call ``main`` (in the client namespace where the
example talks netlink) and check what it returns and prints against the library.
A new example without a test here fails ``test_every_example_has_a_test``.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict

import pytest

import mptcp
from mptcp._lab import Lab
from tests.conftest import two_subflows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"



def load(name: str) -> ModuleType:
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"mptcp_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_list_subflows(lab: Lab, lab_userspace: Lab) -> None:
    with two_subflows(lab) as sock:
        out = io.StringIO()
        subs = load("list_subflows").main(sock, out=out)
        assert sorted(s.id for s in subs) == mptcp.get_sub_ids(sock) == [1, 2]
        text = out.getvalue()
        assert f"{mptcp.info(sock).token:#010x}" in text
        assert text.count("  id ") == 2 and "ESTABLISHED" in text


def run_poll_fast(lab: Lab, lab_userspace: Lab) -> None:
    with two_subflows(lab) as sock:
        out = io.StringIO()
        best = load("poll_fast").main(sock, polls=2000, out=out)
        assert sorted(best) == [1, 2] and all(rtt > 0 for rtt in best.values())
        assert "2000 polls" in out.getvalue()


def run_open_close_subflow(lab: Lab, lab_userspace: Lab) -> None:
    ulab = lab_userspace
    server = ulab.start_server()
    with ulab.connect(port=server.port) as sock:
        sock.sendall(b"hello")
        c2 = ulab.client_addrs["v4"][1]
        out = io.StringIO()
        new = ulab.run_in(ulab.client_ns, load("open_close_subflow").main, sock, c2, out=out)
        assert isinstance(new, mptcp.Subflow) and new.local[0] == c2 and new.backup is True
        assert new.id not in mptcp.get_sub_ids(sock)
        assert mptcp.get_sub_ids(sock) == [1]
        assert f"opened: id {new.id}" in out.getvalue()


def run_watch_events(lab: Lab, lab_userspace: Lab) -> None:
    example = load("watch_events")
    server = lab.start_server()
    for use_asyncio in (False, True):
        # Subscribe in the client namespace first, then make the traffic.
        mon = lab.run_in(lab.client_ns, mptcp.events)
        with lab.connect(port=server.port) as sock:
            token = mptcp.info(sock).token
            sock.sendall(b"hello")  # the client reports ESTABLISHED once data went through
            out = io.StringIO()
            seen = example.main(count=2, timeout=10, use_asyncio=use_asyncio, out=out,
                                monitor=mon)
        assert [e.type for e in seen] == [mptcp.EventType.CREATED, mptcp.EventType.ESTABLISHED]
        assert {e.token for e in seen} == {token}
        assert f"{token:#010x}" in out.getvalue()
        assert mon.closed


def run_endpoints(lab: Lab, lab_userspace: Lab) -> None:
    def in_client() -> tuple[list[mptcp.Endpoint], list[mptcp.Endpoint], list[mptcp.Endpoint],
                             mptcp.Limits, mptcp.Limits]:
        with mptcp.PathManager() as pm:
            before, limits_before = pm.endpoints(), pm.limits()
            listed = load("endpoints").main(addr, dev="c2", out=out)
            return before, listed, pm.endpoints(), limits_before, pm.limits()

    addr = lab.client_addrs["v6"][1]
    out = io.StringIO()
    before, listed, after, limits_before, limits_after = lab.run_in(lab.client_ns, in_client)
    (ours,) = [e for e in listed if e.addr == addr]
    assert ours.backup and ours.flags & mptcp.EndpointFlags.SUBFLOW and ours.dev == "c2"
    assert after == before and limits_after == limits_before
    assert f"removed endpoint {ours.id}" in out.getvalue()


def run_connections(lab: Lab, lab_userspace: Lab) -> None:
    with two_subflows(lab) as sock:
        token = mptcp.info(sock).token
        out = io.StringIO()
        conns = lab.run_in(lab.client_ns, load("connections").main, out=out)
        (ours,) = [c for c in conns if c.token == token]
        assert sorted((s.local, s.remote) for s in ours.subflows) == sorted(
            (s.local, s.remote) for s in mptcp.subflows(sock))
        assert f"{token:#010x}" in out.getvalue()


DRIVERS: Dict[str, Callable[[Lab, Lab], None]] = {
    "list_subflows": run_list_subflows,
    "poll_fast": run_poll_fast,
    "open_close_subflow": run_open_close_subflow,
    "watch_events": run_watch_events,
    "endpoints": run_endpoints,
    "connections": run_connections,
}


def test_every_example_has_a_test() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_example(name: str, request: pytest.FixtureRequest) -> None:
    # Only the lab an example needs is built (each costs namespaces and veths).
    wants_userspace = name == "open_close_subflow"
    lab = None if wants_userspace else request.getfixturevalue("lab")
    ulab = request.getfixturevalue("lab_userspace") if wants_userspace else None
    DRIVERS[name](lab, ulab)  # type: ignore[arg-type]
