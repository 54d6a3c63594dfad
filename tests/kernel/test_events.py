"""mptcp.events() against the kernel, side by side with ``ip mptcp monitor``.

Every stream (``ip -n NS mptcp monitor``, a blocking monitor, an asyncio monitor)
is cut between two sentinels: an MPTCP listener opened and closed on 127.0.0.1 in
the watched namespace (LISTENER_CREATED/CLOSED; iproute2 6.1 prints them as
``[UNKNOWN 15]``/``[UNKNOWN 16]`` without attributes). The kernel sends each
event to every group member in the same order, so the streams must be equal.
"""

from __future__ import annotations

from collections import Counter
import asyncio
import errno
import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import mptcp
from mptcp._lab import Lab
from tests.outside import listener_blip, parse_ip_monitor_line, ss_mptcp, start_ip_monitor

E = importlib.import_module("mptcp._events")
Event, EventType = mptcp.Event, mptcp.EventType

SRC = str(Path(mptcp.__file__).resolve().parent.parent)

Key = tuple[int, Optional[int], Optional[tuple[str, int]], Optional[tuple[str, int]]]


def ev_key(ev: Event) -> Key:
    if ev.type in (EventType.LISTENER_CREATED, EventType.LISTENER_CLOSED):
        return (int(ev.type), None, None, None)  # iproute2 6.1 prints no attributes
    return (int(ev.type), ev.token, ev.local, ev.remote)


def read_until_port(mon: Any, port: int, timeout: float = 10) -> list[Event]:
    """Blocking reads up to the LISTENER_CLOSED of ``port``."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        ev = mon.next(max(0.0, left))
        assert ev is not None, f"timed out; got {out}"
        out.append(ev)
        if ev.type == EventType.LISTENER_CLOSED and ev.local and ev.local[1] == port:
            return out


class AsyncCollector:
    """``async for`` over a monitor in an event loop (in its own thread, so the
    load runs meanwhile); stops after the second LISTENER_CLOSED (the start and
    the end sentinels are the only listeners in the watched window)."""

    def __init__(self, mon: Any) -> None:
        self.mon = mon
        self.events: list[Event] = []
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        async def main() -> None:
            closed = 0
            async for ev in self.mon:
                self.events.append(ev)
                if ev.type == EventType.LISTENER_CLOSED:
                    closed += 1
                    if closed == 2:
                        return

        try:
            asyncio.run(asyncio.wait_for(main(), 30))
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err
        finally:
            self.done.set()

    def result(self, stop_port: int) -> list[Event]:
        assert self.done.wait(15), f"the asyncio reader did not finish: {self.events}"
        if self.error is not None:
            raise self.error
        assert self.events[-1].local == ("127.0.0.1", stop_port)
        return self.events


class Watch:
    """ip monitor + blocking monitor + asyncio monitor on one namespace."""

    def __init__(self, lab: Lab, ns: str) -> None:
        self.lab, self.ns = lab, ns
        self.ipm, self.ip_start = start_ip_monitor(lab, ns)
        self.mon = lab.run_in(ns, mptcp.events, rcvbuf=1 << 20)
        self.amon = lab.run_in(ns, mptcp.events, rcvbuf=1 << 20)
        self.start_port = listener_blip(lab, ns)
        self.acoll: Optional[AsyncCollector] = None

    def start_async(self) -> None:
        # The async reader starts after the start sentinel is queued, so it sees it.
        self.acoll = AsyncCollector(self.amon)

    def finish(self) -> tuple[list[Key], list[Event], list[Event]]:
        end_port = listener_blip(self.lab, self.ns)
        assert self.acoll is not None
        sync = read_until_port(self.mon, end_port)
        asy = self.acoll.result(end_port)
        n = len(sync)
        self.lab.wait_for(lambda: len(self.ipm.lines) >= self.ip_start + n, timeout=5,
                          what=f"{n} lines of ip mptcp monitor")
        time.sleep(0.1)  # anything extra would show up now
        err = self.ipm.stop()
        assert "No buffer space" not in err, err
        ip_keys = [parse_ip_monitor_line(line) for line in self.ipm.lines[self.ip_start:]]
        return ip_keys, sync, asy

    def close(self) -> None:
        self.mon.close()
        self.amon.close()
        self.ipm.stop()


def established_subflows(lab: Lab, ns: str) -> int:
    return sum(1 for sf in lab.ss_subflows(ns) if sf["state"] == "ESTAB")


def test_events_match_ip_monitor_and_asyncio(lab: Lab) -> None:
    cli, srv = lab.client_ns, lab.server_ns
    server = lab.start_server(mode="sink")
    # The server announces its path-2 address: the client gets ANNOUNCED and its
    # in-kernel PM opens a subflow to it; the client's endpoint gives another.
    lab.ip(srv, "mptcp", "endpoint", "add", lab.server_addrs["v4"][1], "signal")
    watches = [Watch(lab, cli), Watch(lab, srv)]
    try:
        for w in watches:
            w.start_async()
        conns = [lab.connect(port=server.port) for _ in range(3)]
        tokens = []
        for s in conns:
            s.sendall(b"x" * 32768)
            tokens.append(mptcp.info(s).token)
        lab.wait_for(lambda: established_subflows(lab, cli) == 9, timeout=10,
                     what="3 subflows on each of 3 connections")
        # MP_PRIO to the server: SUB_PRIORITY there
        lab.ip(cli, "mptcp", "endpoint", "change", "id", "1", "backup")
        lab.wait_for(lambda: sum(sf["backup_remote"] for sf in lab.ss_subflows(srv)) >= 3,
                     timeout=5, what="the server to see the backup flags")
        conns[0].close()
        # RM_ADDR from the server: REMOVED + SUB_CLOSED on the client
        lab.ip(srv, "mptcp", "endpoint", "flush")
        # the client's endpoint goes: SUB_CLOSED for its subflows
        lab.ip(cli, "mptcp", "endpoint", "del", "id", "1")
        lab.wait_for(lambda: established_subflows(lab, cli) == 2, timeout=10,
                     what="only the initial subflows to remain")
        for s in conns[1:]:
            s.close()
        lab.wait_for(lambda: not ss_mptcp(lab, cli), timeout=10, what="the connections to close")
        lab.wait_for(lambda: not [c for c in ss_mptcp(lab, srv) if c["state"] != "LISTEN"],
                     timeout=10, what="the server side to close")

        results = {}
        for w in watches:
            results[w.ns] = w.finish()
    finally:
        for w in watches:
            w.close()

    for ns, (ip_keys, sync, asy) in results.items():
        assert sync[0].type == EventType.LISTENER_CREATED
        # the same events; not necessarily in the same order: two CPUs raising
        # events at once can reach two multicast listeners in different orders
        assert Counter(ev_key(e) for e in sync) == Counter(ip_keys), ns
        assert Counter(asy) == Counter(sync), ns
        assert all(type(e.type) is EventType for e in sync)

    ip_c, c, _ = results[cli]
    types_c = {e.type for e in c}
    assert {EventType.CREATED, EventType.ESTABLISHED, EventType.ANNOUNCED, EventType.REMOVED,
            EventType.SUB_ESTABLISHED, EventType.SUB_CLOSED, EventType.CLOSED} <= types_c
    conn_events = [e for e in c if e.token is not None]
    assert {e.token for e in conn_events} == set(tokens)
    for t in tokens:
        mine = [e.type for e in conn_events if e.token == t]
        assert mine[0] == EventType.CREATED and mine.count(EventType.CLOSED) == 1
        assert mine.count(EventType.SUB_ESTABLISHED) == 2
    created = [e for e in c if e.type == EventType.CREATED]
    assert all(e.server_side is False and e.local[0] == lab.client_addrs["v4"][0]
               and e.remote == (lab.server_addrs["v4"][0], server.port) for e in created)
    joins = [e for e in c if e.type == EventType.SUB_ESTABLISHED]
    c2 = lab.ifindex(cli, "c2")
    # the endpoint's subflows (to the server's path 1) are bound to c2; the ones
    # to the announced address are not
    assert sorted((e.rem_id, e.if_index or 0) for e in joins) == [(0, c2)] * 3 + [(1, 0)] * 3
    assert all(e.backup is False and e.loc_id == 1 for e in joins)
    ann = [e for e in c if e.type == EventType.ANNOUNCED]
    assert all(e.remote == (lab.server_addrs["v4"][1], server.port) and e.rem_id == 1
               for e in ann)

    _, s, _ = results[srv]
    created = [e for e in s if e.type == EventType.CREATED]
    assert len(created) == 3 and all(e.server_side is True for e in created)
    prio = [e for e in s if e.type == EventType.SUB_PRIORITY]
    assert prio and all(e.backup is True for e in prio)
    assert EventType.SUB_PRIORITY not in types_c  # fires on the peer only


def test_token_filter_and_timeouts(lab: Lab) -> None:
    server = lab.start_server()
    a = lab.connect(port=server.port)
    b = lab.connect(port=server.port)
    with a, b:
        a.sendall(b"a" * 1000)
        # the endpoint's subflow follows the data: let it come up before listening
        lab.wait_for(lambda: [s.state for s in mptcp.subflows(a)] == [1, 1],
                     what="a's second subflow")
        with lab.run_in(lab.client_ns, mptcp.events, token=a) as by_sock, \
                lab.run_in(lab.client_ns, mptcp.events,
                           token=mptcp.info(b).token) as by_int:
            assert by_sock.token == mptcp.info(a).token
            assert by_sock.next(0) is None  # nothing queued: no wait
            t0 = time.monotonic()
            assert by_sock.next(0.2) is None
            assert 0.15 < time.monotonic() - t0 < 2
            with pytest.raises(mptcp.MPTCPTimeoutError):
                by_sock.read(0.05)
            listener_blip(lab, lab.client_ns)  # no token: filtered out
            c = lab.connect(port=server.port)
            c.close()
            a.close()
            b.close()
            ev = by_sock.read(5)
            evs = [ev]
            while (ev := by_sock.next(0.3)) is not None:
                evs.append(ev)
            assert evs and {e.token for e in evs} == {by_sock.token}
            assert evs[-1].type == EventType.CLOSED
            got = by_int.read(5)
            assert got.token == by_int.token
    with pytest.raises(mptcp.NotMPTCPError):
        lab.run_in(lab.client_ns, mptcp.events, token=lab.socket(lab.client_ns))


def test_close_wakes_blocked_reader_and_is_idempotent(lab: Lab) -> None:
    mon = lab.run_in(lab.client_ns, mptcp.events)
    fd = mon.fileno()
    assert fd >= 0
    got: list[Any] = []
    ended = threading.Event()

    def read_all() -> None:
        for ev in mon:
            got.append(ev)
        ended.set()

    t = threading.Thread(target=read_all)
    t.start()
    port = listener_blip(lab, lab.client_ns)
    Lab.wait_for(lambda: len(got) >= 2, timeout=10, what="the listener's two events")
    time.sleep(0.05)  # the reader is back inside the blocking read
    mon.close()
    t.join(5)
    assert not t.is_alive() and ended.is_set(), "close() did not wake the blocked iteration"
    assert [(e.type, e.local) for e in got] == [
        (EventType.LISTENER_CREATED, ("127.0.0.1", port)),
        (EventType.LISTENER_CLOSED, ("127.0.0.1", port)),
    ]
    mon.close()
    assert mon.closed and mon.fileno() == -1 and mon.next(0) is None
    with pytest.raises(mptcp.MPTCPError):
        mon.read(0)

    async def closed_while_waiting() -> Optional[Event]:
        m = lab.run_in(lab.client_ns, mptcp.events)
        asyncio.get_running_loop().call_later(0.1, m.close)
        return await asyncio.wait_for(m.next_async(), 5)

    assert asyncio.run(closed_while_waiting()) is None


def test_overflow_raises_events_lost_and_monitor_stays_usable(lab: Lab) -> None:
    server = lab.start_server()
    mon = lab.run_in(lab.client_ns, mptcp.events, rcvbuf=1024)
    with mon:
        assert mon.rcvbuf <= 4608  # the kernel's minimum, doubled
        for _ in range(25):
            lab.connect(port=server.port).close()
        time.sleep(0.3)
        got = 0
        with pytest.raises(mptcp.EventsLostError) as info:
            while mon.next(1) is not None:
                got += 1
        assert info.value.errno == errno.ENOBUFS
        assert isinstance(info.value, mptcp.MPTCPError)
        assert got < 100  # 25 connections give ~100 events; most were dropped
        assert mon.losses == 1
        while mon.next(0.2) is not None:  # what was queued before the loss
            pass
        port = listener_blip(lab, lab.client_ns)
        ev = mon.read(5)
        assert ev.type == EventType.LISTENER_CREATED and ev.local == ("127.0.0.1", port)


def test_async_overflow_raises_too(lab: Lab) -> None:
    server = lab.start_server()
    mon = lab.run_in(lab.client_ns, mptcp.events, rcvbuf=1024)

    async def main() -> None:
        for _ in range(20):
            lab.connect(port=server.port).close()
        await asyncio.sleep(0.2)
        with pytest.raises(mptcp.EventsLostError):
            async for _ev in mon:
                pass

    with mon:
        asyncio.run(asyncio.wait_for(main(), 10))


def test_without_cap_net_admin_permission_error(lab: Lab) -> None:
    code = (
        "import mptcp\n"
        "try:\n"
        "    mptcp.events()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, isinstance(e, PermissionError), e.errno, e)\n"
        "else:\n"
        "    print('no error')\n"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    out = subprocess.run(
        ["ip", "netns", "exec", lab.client_ns, "setpriv", "--inh-caps=-all",
         "--bounding-set=-net_admin", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert out.returncode == 0, out.stderr
    name, is_perm, err, msg = out.stdout.strip().split(" ", 3)
    assert (name, is_perm, int(err)) == ("MPTCPPermissionError", "True", errno.EPERM)
    assert "CAP_NET_ADMIN" in msg
