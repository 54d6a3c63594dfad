"""Leak checks: many calls, flat memory.

Each test warms up (first calls fill caches: the core's buffers, the per-thread
netlink sockets, interned strings, the IPv4 text cache of the event decoder),
then measures, around N calls:

* RSS (``/proc/self/statm``): must grow by less than 2 MiB;
* ``sys.getallocatedblocks()`` (every live pymalloc block, tracked or not:
  ints, bytes, strings as well as containers) and ``len(gc.get_objects())``
  (the containers the collector tracks): each must grow by less than
  ``BLOCK_BOUND`` / ``OBJECT_BOUND``, whatever N.

Why a fixed bound of 100: in steady state a call must leave nothing behind, so
the growth does not depend on N; what remains is noise from the interpreter and
the lab's idle threads: +5 to +7 blocks and 0 objects in every measured run.
The warm-up must be long enough for the library's bounded caches to fill:
``open_sub``/``close_sub`` grow by ~46 blocks over their first ~1,000 cycles
and then by 0 per 500 cycles, so that test warms up for 1,000 cycles (a short
warm-up of 20 gave +105 blocks over 200 cycles: a cache filling, not a leak).
The smallest N any test runs (the floors in ``conftest.py``: 200 open/close
cycles, 2,000 of the other calls) is at least twice the bound, so a leak of
even one block or one object per call fails the test at every scale (unless a
per-count variable sets N below its floor).

Run: ``MPTCP_LEAK=1 [MPTCP_LEAK_SCALE=0.05] python -m pytest -m leak tests/leak -s``.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import mptcp
from mptcp._netlink.mptcp_pm import decode_event, decode_events
from mptcp._records import EventType
from mptcp._lab import Lab
from tests.outside import listener_blip

MIB = 1024 * 1024
RSS_BOUND = 2 * MIB
BLOCK_BOUND = 100
OBJECT_BOUND = 100
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _sample() -> tuple[int, int, int]:
    gc.collect()
    gc.collect()
    return rss(), sys.getallocatedblocks(), len(gc.get_objects())


def measure(what: str, n: int, run: Callable[[int], None], warmup: int) -> dict[str, Any]:
    """Call ``run(warmup)``, then measure around ``run(n)``; assert the bounds."""
    run(warmup)
    rss0, blocks0, objs0 = _sample()
    t0 = time.perf_counter()
    run(n)
    elapsed = time.perf_counter() - t0
    rss1, blocks1, objs1 = _sample()
    fig = {
        "what": what,
        "n": n,
        "rss_delta_kib": (rss1 - rss0) / 1024,
        "blocks_delta": blocks1 - blocks0,
        "objects_delta": objs1 - objs0,
        "us_per_call": elapsed / n * 1e6,
        "seconds": elapsed,
    }
    print(
        f"\nleak: {what}: n={n:,} rss {fig['rss_delta_kib']:+.0f} KiB, "
        f"blocks {fig['blocks_delta']:+d}, gc objects {fig['objects_delta']:+d}, "
        f"{fig['us_per_call']:.2f} us/call ({elapsed:.1f} s)"
    )
    assert rss1 - rss0 < RSS_BOUND, fig
    assert blocks1 - blocks0 < BLOCK_BOUND, fig
    assert objs1 - objs0 < OBJECT_BOUND, fig
    return fig


def _warmup(n: int) -> int:
    return max(500, min(n // 20, 5000))


# ------------------------------------------------------------------ lab helpers


def two_subflows(lab: Lab, port: int) -> socket.socket:
    """A connection of the in-kernel lab with its endpoint's second subflow up."""
    s = lab.connect(port=port)
    s.sendall(b"x" * 1000)
    lab.wait_for(lambda: len(mptcp.get_sub_ids(s)) == 2, timeout=10,
                 what="the endpoint's second subflow")
    return s


# ------------------------------------------------------------------ the tests


def test_poller_poll(lab: Lab, count: Callable[[str], int]) -> None:
    n = count("POLLS")
    srv = lab.start_server()
    with two_subflows(lab, srv.port) as s, mptcp.Poller(s) as p:

        def run(k: int) -> None:
            poll = p.poll
            for i in range(k):
                got = poll()
                if not i & 63:  # the views too, now and then
                    assert got == 2
                    v = p[i & 1]
                    _ = (v.id, v.local, v.remote, v.state, v.rtt_us, v.bytes_acked)
                    _ = p.info

        measure("Poller.poll()", n, run, _warmup(n))
        assert p.poll() == 2


def test_subflows(lab: Lab, count: Callable[[str], int]) -> None:
    n = count("SUBFLOWS")
    srv = lab.start_server()
    with two_subflows(lab, srv.port) as s:

        def run(k: int) -> None:
            subflows = mptcp.subflows
            for _ in range(k):
                recs = subflows(s)
            assert len(recs) == 2 and all(r.id is not None for r in recs)

        measure("subflows()", n, run, _warmup(n))


def test_connections(lab: Lab, count: Callable[[str], int]) -> None:
    """connections() in the client namespace (4 connections of 2 subflows each),
    with listening=True every other call (the server namespace's listener)."""
    n = count("CONNECTIONS")
    srv = lab.start_server()
    socks = [two_subflows(lab, srv.port) for _ in range(4)]
    try:

        def run(k: int) -> None:
            connections = mptcp.connections
            for i in range(k):
                conns = connections(listening=bool(i & 1))
            assert len(conns) == 4, conns
            assert all(len(c.subflows) == 2 for c in conns), conns

        def run_srv(k: int) -> None:
            for _ in range(k):
                conns = mptcp.connections(listening=True)
            assert len(conns) == 5, conns  # 4 accepted + the listener

        # Whole loops in a thread that lives in the namespace (no per-call hop).
        lab.run_in(lab.client_ns, measure, "connections() [client ns]", n, run, _warmup(n))
        m = max(n // 20, 200)
        lab.run_in(lab.server_ns, measure, "connections(listening=True) [server ns]", m,
                   run_srv, _warmup(m))
    finally:
        for s in socks:
            s.close()


def _netstat(name: str) -> int:
    """A counter of /proc/net/netstat in the calling thread's namespace."""
    with open("/proc/thread-self/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        keys = head.split()
        if name in keys:
            return int(vals.split()[keys.index(name)])
    raise KeyError(name)


def test_open_close_cycles(lab_userspace: Lab, count: Callable[[str], int]) -> None:
    """N successful open_sub + close_sub cycles on one connection (userspace PM).

    Local: the client's path-2 address, ephemeral port; remote: the server's
    path-1 address. Two kernel facts shape the loop:

    * The server's in-kernel PM rejects a join (RST after the handshake,
      ``MPTcpExtMPJoinRejected``) while subflows that the client already closed
      still count against its limit of 8 (``ip mptcp limits``, the maximum);
      its worker frees them a little later. At full speed (0.3 ms a cycle) that
      happens in bursts, and ``open_sub`` raises ``SubflowOpenError``
      (documented). The loop counts those, checks that the server's counter
      agrees, waits 1 ms and tries again: the failure path is measured too.
    * Each closed subflow leaves a client TIME_WAIT socket for 60 s holding a
      port of the client's address: 10,000 cycles stay below the 28,232 ports
      of the default ``ip_local_port_range``, so no EADDRINUSE (measured:
      11,000 TIME_WAIT sockets after the 1,000 warm-up + 10,000 cycles).
    """
    lab = lab_userspace
    n = count("CYCLES")
    srv = lab.start_server(mode="echo")
    c2 = lab.client_addrs["v4"][1]
    s1 = lab.server_addrs["v4"][0]
    with lab.connect(port=srv.port) as s:
        s.sendall(b"hello")
        assert s.recv(5) == b"hello"
        first = mptcp.get_sub_ids(s)
        assert len(first) == 1
        state = {"cycles": 0, "rejected": 0, "last": 0}
        rejected0 = lab.run_in(lab.server_ns, _netstat, "MPJoinRejected")

        def run(k: int) -> None:
            done = 0
            while done < k:
                try:
                    sf = mptcp.open_sub(s, local=c2, remote=s1)
                except mptcp.SubflowOpenError as err:
                    assert err.errno == errno.ECONNRESET, err
                    state["rejected"] += 1
                    assert state["rejected"] <= 20 * (state["cycles"] + 50), state
                    time.sleep(0.001)
                    continue
                assert sf.id is not None and sf.id > state["last"]  # ids grow; never reused
                state["last"] = sf.id
                mptcp.close_sub(s, sf.id)
                done += 1
                state["cycles"] += 1
            assert mptcp.get_sub_ids(s) == first

        # ~1,000 cycles fill the library's bounded caches (measured: +46 blocks
        # over the first 1,100 cycles, then 0 per 500 cycles)
        warm = 1000
        lab.run_in(lab.client_ns, measure, "open_sub()+close_sub() cycle", n, run, warm)
        rejected = lab.run_in(lab.server_ns, _netstat, "MPJoinRejected") - rejected0
        tw = lab.sh(lab.client_ns, "ss", "-tanH", "state", "time-wait").count("\n")
        print(f"leak: {state['cycles']:,} cycles, {state['rejected']:,} joins refused "
              f"(server MPJoinRejected +{rejected:,}), {tw:,} client TIME_WAIT sockets")
        assert state["cycles"] == n + warm
        # every open_sub failure is a join the server refused, nothing else
        assert state["rejected"] <= rejected
        # the connection still carries data
        s.sendall(b"world")
        assert s.recv(5) == b"world"


# ------------------------------------------------------------------ events


def _nla(atype: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), atype) + payload
    return raw + b"\0" * ((-len(raw)) % 4)


def _msg(cmd: int, attrs: list[bytes], mtype: int) -> bytes:
    body = struct.pack("=BBH", cmd, 1, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def canned_events(fam: int = 28) -> list[bytes]:
    """One message of every event type, IPv4 and IPv6, as the 6.18 kernel lays them
    out (token u32, family u16, addresses, ports big-endian, ids u8, ...)."""
    from mptcp._netlink.mptcp_pm import EventAttr

    out = []
    for family, (sa, da, src, dst) in (
        (socket.AF_INET, (EventAttr.SADDR4, EventAttr.DADDR4,
                          socket.inet_aton("10.1.1.2"), socket.inet_aton("10.1.1.1"))),
        (socket.AF_INET6, (EventAttr.SADDR6, EventAttr.DADDR6,
                           socket.inet_pton(socket.AF_INET6, "fd00:1:1::2"),
                           socket.inet_pton(socket.AF_INET6, "fd00:1:1::1"))),
    ):
        for etype in EventType:
            attrs = [
                _nla(EventAttr.TOKEN, struct.pack("=I", 0xD16F18C0)),
                _nla(EventAttr.FAMILY, struct.pack("=H", family)),
                _nla(sa, src), _nla(da, dst),
                _nla(EventAttr.SPORT, struct.pack(">H", 51986)),
                _nla(EventAttr.DPORT, struct.pack(">H", 39989)),
                _nla(EventAttr.LOC_ID, b"\x01"), _nla(EventAttr.REM_ID, b"\x02"),
                _nla(EventAttr.BACKUP, b"\x00"), _nla(EventAttr.ERROR, b"\x68"),
                _nla(EventAttr.FLAGS, struct.pack("=H", 2)),
                _nla(EventAttr.IF_IDX, struct.pack("=i", 11)),
                _nla(EventAttr.SERVER_SIDE, b"\x01"),
                _nla(EventAttr.RESET_REASON, struct.pack("=I", 1)),
                _nla(EventAttr.RESET_FLAGS, struct.pack("=I", 0)),
                _nla(EventAttr.TIMEOUT, struct.pack("=I", 3)),
            ]
            out.append(_msg(int(etype), attrs, fam))
    return out


def _decode_loop(msgs: list[bytes], fam: int) -> Callable[[int], None]:
    stream = b"".join(msgs)  # every message is 4-byte aligned already
    buf = bytearray(stream)

    def run(k: int) -> None:
        """k decodes: half one message at a time, half in whole-buffer batches."""
        m = len(msgs)
        for i in range(k - k // 2):
            ev = decode_event(msgs[i % m])
        assert ev.token is not None
        done = 0
        while done < k // 2:
            evs = decode_events(buf, len(buf), family_id=fam)
            assert len(evs) == m
            done += m

    return run


def test_event_decodes_canned(count: Callable[[str], int]) -> None:
    """Every event type, IPv4 and IPv6 (no kernel needed)."""
    n = count("EVENTS")
    msgs = canned_events(28)
    assert len(msgs) >= 20
    measure("event decodes (canned, every type)", n, _decode_loop(msgs, 28), _warmup(n))


def _type_name(t: object) -> str:
    return t.name if isinstance(t, EventType) else str(t)


def test_event_decodes_captured(lab: Lab, count: Callable[[str], int]) -> None:
    """Event messages the kernel really sent (CREATED, ESTABLISHED, SUB_ESTABLISHED,
    LISTENER_*, CLOSED, ...), captured from an events() monitor's receive buffer."""
    n = count("EVENTS")
    captured: list[bytes] = []
    mon = lab.run_in(lab.client_ns, mptcp.events)  # joins in the client's namespace
    with mon:
        orig = mon._recv

        def recv() -> bool:
            got = orig()
            if got:
                captured.append(bytes(mon._buf[: mon._reader.end]))
            return bool(got)

        mon._recv = recv  # type: ignore[method-assign]
        srv = lab.start_server()
        with two_subflows(lab, srv.port):
            pass
        listener_blip(lab, lab.client_ns)
        want = {"CREATED", "ESTABLISHED", "SUB_ESTABLISHED", "CLOSED", "LISTENER_CREATED"}
        seen = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ev = mon.next(timeout=0.5)
            if ev is not None:
                seen.add(ev.type.name)
            elif want <= seen:
                break
        assert want <= seen, seen
        fam = mon._reader.family_id
    # Split the datagrams into single messages (a datagram may hold several).
    msgs = []
    for dgram in captured:
        pos = 0
        while pos + 16 <= len(dgram):
            mlen, mtype = struct.unpack_from("=IH", dgram, pos)
            if mlen < 16 or pos + mlen > len(dgram):
                break
            if mtype == fam and mlen >= 20:
                msgs.append(dgram[pos : pos + mlen])
            pos += (mlen + 3) & ~3
    assert len(msgs) >= 4, captured
    print(f"\nleak: captured {len(msgs)} event messages: "
          f"{sorted({_type_name(decode_event(m).type) for m in msgs})}")
    measure("event decodes (captured)", n, _decode_loop(msgs, fam), _warmup(n))
