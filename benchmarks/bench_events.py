"""Events under load: does ``mptcp.events()``, or the ``mptcp monitor`` command, get
every event the kernel sent?

In a private two-path lab (root), N connections (default 500) are opened in
batches, each gets its second subflow from the client's in-kernel ``subflow``
endpoint (checked with MPTCP_INFO), and all are closed as fast as possible.
In each namespace a monitor reads the events while ``ip -n NS mptcp monitor``
runs beside it: by default a thread of this process reading ``mptcp.events()``;
with ``--command``, the command as a user runs it, ``python -m mptcp monitor
--json`` in a child process whose output a thread reads from a pipe. Between a
start and an end sentinel (an MPTCP listener opened and closed on 127.0.0.1)
both streams must hold the same events: the monitor either has every event
``ip`` printed or reported the loss (``EventsLostError``, or the command's
``EVENTS_LOST`` line: counted, never hidden). The kernel's own count of events
dropped on each socket (the ``Drops`` column of /proc/net/netlink) is reported
for both monitors.

``--rcvbuf`` is passed to ``events(rcvbuf=)`` or as the command's ``--rcvbuf``
(default: the library's default, the kernel's; the command's own default).

Run:  python benchmarks/bench_events.py [--conns 500] [--batch 50] [--rate CONNS_PER_S]
           [--rcvbuf BYTES] [--command]
against the ``mptcp`` that ``import mptcp`` finds (the installed one, or
``PYTHONPATH=src`` after an in-place build); the first line says which.
Prints a summary and writes benchmarks/results/bench_events.json (with
``--command``, bench_events_command.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import _which

HERE = Path(__file__).resolve().parent
mptcp = _which.load()
sys.path.insert(1, str(HERE.parent))  # tests.outside: ip mptcp monitor, the outside view

from mptcp import Event, EventType  # noqa: E402
from mptcp._lab import IPPROTO_MPTCP, Lab  # noqa: E402
from tests.outside import IpMonitor, listener_blip, parse_ip_monitor_line, start_ip_monitor  # noqa: E402

SOL_MPTCP, MPTCP_INFO = 284, 1
Key = tuple[int, Optional[int], Optional[tuple[str, int]], Optional[tuple[str, int]]]


def ev_key(ev: Event) -> Key:
    if ev.type in (EventType.LISTENER_CREATED, EventType.LISTENER_CLOSED):
        return (int(ev.type), None, None, None)  # iproute2 6.1 prints no attributes
    return (int(ev.type), ev.token, ev.local, ev.remote)


class Reader:
    """Reads a monitor continuously in a thread, as an application would."""

    def __init__(self, mon: Any) -> None:
        self.mon = mon
        self.events: list[Event] = []
        self.losses = 0
        self.cpu = 0.0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        t0 = time.thread_time()
        while True:
            try:
                for ev in self.mon:
                    self.events.append(ev)
                return
            except mptcp.EventsLostError:
                self.losses += 1
            finally:
                self.cpu = time.thread_time() - t0


class CommandReader:
    """``mptcp monitor --json`` in a child process in ``ns``; a thread reads its
    output from a pipe and keeps the events (as :class:`Event` records)."""

    def __init__(self, ns: str, rcvbuf: Optional[int]) -> None:
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "mptcp", "monitor", "--json"]
        if rcvbuf is not None:
            argv += ["--rcvbuf", str(rcvbuf)]
        self.ns = ns
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events: list[Event] = []
        self.losses = 0
        self.cpu = 0.0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            d = json.loads(line)
            if d["type"] == "EVENTS_LOST":
                self.losses += 1
                continue
            etype = EventType[d["type"]] if d["type"] in EventType.__members__ else int(d["type"])
            token = d.get("token")  # hex text (before 0.1.0's fix: a decimal int)
            self.events.append(Event(
                etype, int(token, 16) if isinstance(token, str) else token,
                None if d.get("local") is None else tuple(d["local"]),  # type: ignore[arg-type]
                None if d.get("remote") is None else tuple(d["remote"])))  # type: ignore[arg-type]

    def subscribe(self, lab: Lab) -> None:
        """Wait until the child has joined the events group (it reports a probe)."""
        deadline = time.monotonic() + 15
        while not self.events:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"mptcp monitor did not start: {self.stop()}")
            listener_blip(lab, self.ns)
            time.sleep(0.05)

    def drops(self, lab: Lab) -> Optional[int]:
        return netlink_drops(lab, self.ns, socket_inodes(self.proc.pid))

    def stop(self) -> str:
        """End the child (SIGTERM); returns its stderr."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            self.cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        self.t.join(5)
        return err.decode()


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def netlink_drops(lab: Lab, ns: str, inodes: set[int]) -> Optional[int]:
    """The kernel's count of messages dropped on the generic netlink socket with
    one of these inodes that has joined a group, in ``ns`` (/proc/net/netlink:
    sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode)."""
    rows = [r.split() for r in lab.sh(ns, "cat", "/proc/net/netlink").splitlines()[1:]]
    mine = [r for r in rows if r[1] == "16" and int(r[9]) in inodes and int(r[3], 16)]
    return int(mine[0][8]) if mine else None


def settle(*counts: Any) -> None:
    """Wait until no monitor's count of lines changes for 0.3 s."""
    before = None
    while True:
        now = [c() for c in counts]
        if now == before:
            return
        before = now
        time.sleep(0.3)


def sink_server(listener: socket.socket, stop: threading.Event, stats: dict[str, int]) -> None:
    """Accept, read to EOF, close: one thread, non-blocking."""
    sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    buf = bytearray(65536)
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            sock = key.fileobj
            if sock is listener:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    stats["accepted"] += 1
            else:
                try:
                    n = sock.recv_into(buf)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    n = 0
                if n == 0:
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    stats["closed"] += 1
    for key in list(sel.get_map().values()):
        if key.fileobj is not listener:
            key.fileobj.close()  # type: ignore[union-attr]
    sel.close()


def extra_subflows(sock: socket.socket) -> int:
    return sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 1)[0]


def client_load(addr: tuple[str, int], conns: int, batch: int,
                rate: Optional[float] = None) -> dict[str, Any]:
    """Runs in the client namespace's thread; ``rate``: at most that many
    connections per second (batches start on schedule)."""
    with_two = 0
    t0 = time.monotonic()
    for start in range(0, conns, batch):
        if rate:
            wait = t0 + start / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        socks = []
        for _ in range(min(batch, conns - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
            s.connect(addr)
            s.send(b"x")  # the in-kernel PM opens the endpoint's subflow after data
            socks.append(s)
        deadline = time.monotonic() + 5
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            pending = [s for s in pending if extra_subflows(s) < 1]
            if pending:
                time.sleep(0.001)
        with_two += len(socks) - len(pending)
        for s in socks:
            s.close()
    return {"seconds": time.monotonic() - t0, "with_two_subflows": with_two}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rate", type=float, default=None,
                    help="open at most this many connections per second (default: as fast as "
                         "possible)")
    ap.add_argument("--rcvbuf", type=int, default=None,
                    help="SO_RCVBUF of the monitors (default: the library's or the command's)")
    ap.add_argument("--command", action="store_true",
                    help="measure 'python -m mptcp monitor --json' (a process) instead of events()")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    print(_which.describe(mptcp), flush=True)
    if args.out is None:
        args.out = str(HERE / "results" / ("bench_events_command.json" if args.command
                                           else "bench_events.json"))
    if os.geteuid() != 0:
        print("needs root (network namespaces, CAP_NET_ADMIN)", file=sys.stderr)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    with Lab(prefix="mptcp", ipv6=False) as lab:
        cli, srv = lab.client_ns, lab.server_ns
        listener = lab.socket(srv, socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        stop = threading.Event()
        stats = {"accepted": 0, "closed": 0}
        srv_thread = threading.Thread(target=sink_server, args=(listener, stop, stats), daemon=True)
        srv_thread.start()

        sides: dict[str, dict[str, Any]] = {}
        for name, ns in (("client", cli), ("server", srv)):
            ipm, ip_start = start_ip_monitor(lab, ns)
            side: dict[str, Any] = {"ns": ns, "ipm": ipm, "ip_start": ip_start}
            if args.command:
                from mptcp.cli import monitor as command

                # None: a command without a default of its own takes the kernel's
                default = getattr(command, "DEFAULT_RCVBUF", None)
                asked = default if args.rcvbuf is None else args.rcvbuf
                reader_c = CommandReader(ns, args.rcvbuf)
                reader_c.subscribe(lab)
                # the probes reached both monitors: start counting after them
                settle(lambda: len(ipm.lines), lambda r=reader_c: len(r.events))
                side["ip_start"] = len(ipm.lines)
                side["mon_start"] = len(reader_c.events)
                side.update(mon=None, reader=reader_c, rcvbuf=None if asked is None else 2 * asked)
            else:
                mon = lab.run_in(ns, mptcp.events, rcvbuf=args.rcvbuf)
                side.update(mon=mon, rcvbuf=mon.rcvbuf, reader=Reader(mon), mon_start=0)
            sides[name] = side
        for side in sides.values():
            side["start_port"] = listener_blip(lab, side["ns"])

        load = lab.run_in(cli, client_load, (lab.server_addrs["v4"][0], port),
                          args.conns, args.batch, args.rate)
        lab.wait_for(lambda: stats["closed"] >= args.conns, timeout=30,
                     what="the server to close every connection")
        time.sleep(0.5)
        for side in sides.values():
            side["end_port"] = listener_blip(lab, side["ns"])

        report: dict[str, Any] = {
            "mptcp": _which.describe(mptcp),
            "monitor": "python -m mptcp monitor --json (a process)" if args.command
                       else "mptcp.events() (a thread)",
            "kernel": os.uname().release, "conns": args.conns, "batch": args.batch,
            "load_seconds": round(load["seconds"], 3),
            "conns_per_second": round(args.conns / load["seconds"], 1),
            "conns_with_two_subflows": load["with_two_subflows"],
        }
        ok = True
        for name, side in sides.items():
            reader: Any = side["reader"]
            end = side["end_port"]

            def seen_end(reader: Any = reader, end: int = end) -> bool:
                return any(e.type == EventType.LISTENER_CLOSED and e.local == ("127.0.0.1", end)
                           for e in reader.events[-4:])

            try:
                lab.wait_for(seen_end, timeout=20, what=f"the {name} monitor's end sentinel")
            except TimeoutError:
                pass
            events = list(reader.events)[side["mon_start"]:]
            ipm: IpMonitor = side["ipm"]
            deadline = time.monotonic() + 10
            want = side["ip_start"] + len(events)
            while len(ipm.lines) < want and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            mon_drops = (reader.drops(lab) if args.command
                         else netlink_drops(lab, side["ns"], {os.fstat(side["mon"].fileno()).st_ino}))
            ip_drops = netlink_drops(lab, side["ns"], socket_inodes(ipm.proc.pid))
            ip_err = ipm.stop()
            ip_lines = ipm.lines[side["ip_start"]:]
            ip_keys = [parse_ip_monitor_line(line) for line in ip_lines]
            ours = [ev_key(e) for e in events]
            if args.command:
                mon_err = reader.stop()
            else:
                side["mon"].close()
                reader.t.join(5)
                mon_err = ""
            by_type = collections.Counter(
                e.type.name if isinstance(e.type, EventType) else str(e.type) for e in events)
            ip_lost = ip_err.count("No buffer space")
            res = {
                "monitor_events": len(events),
                "ip_monitor_lines": len(ip_lines),
                # Multicast delivery is per listener: events raised on two CPUs at
                # once can reach two listeners in different orders, so the verdict
                # compares the events as multisets; same order is informational.
                "same_events": collections.Counter(ours) == collections.Counter(ip_keys),
                "same_order": ours == ip_keys,
                "monitor_losses_raised": reader.losses,
                "monitor_kernel_drops": mon_drops,
                "ip_monitor_enobufs": ip_lost,
                "ip_monitor_kernel_drops": ip_drops,
                "rcvbuf": side["rcvbuf"],
                "by_type": dict(sorted(by_type.items())),
                "reader_cpu_seconds": round(reader.cpu, 3),
                "reader_cpu_us_per_event": round(1e6 * reader.cpu / max(1, len(events)), 2),
            }
            # the verdict: every event, or an explicit loss
            res["every_event_or_raised"] = (
                (reader.losses == 0 and ip_lost == 0 and res["same_events"])
                or reader.losses > 0
                or (ip_lost > 0 and len(events) >= len(ip_lines))
            )
            if mon_err:
                res["monitor_stderr"] = mon_err.strip().splitlines()[:3]
            ok &= res["every_event_or_raised"]
            report[name] = res
        stop.set()
        srv_thread.join(5)
        listener.close()

    # decode speed alone, on the bytes of a real SUB_ESTABLISHED message
    from mptcp._netlink.mptcp_pm import decode_events

    def nla(t: int, payload: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(payload), t) + payload
        return raw + b"\0" * (-len(raw) % 4)

    body = struct.pack("=BBH", 10, 1, 0) + b"".join([
        nla(1, struct.pack("=I", 0x741F0D6F)), nla(2, struct.pack("=H", 2)),
        nla(5, socket.inet_aton("10.1.2.2")), nla(7, socket.inet_aton("10.1.1.1")),
        nla(9, struct.pack(">H", 33323)), nla(10, struct.pack(">H", 39989)),
        nla(3, b"\1"), nla(4, b"\0"), nla(11, b"\0"), nla(15, struct.pack("=i", 11)),
    ])
    one = struct.pack("=IHHII", 16 + len(body), 28, 0, 0, 0) + body
    burst = one * 500
    t0 = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        evs = decode_events(burst, family_id=28)
    dt = time.perf_counter() - t0
    report["decode_us_per_event"] = round(1e6 * dt / (rounds * len(evs)), 3)
    report["ok"] = ok

    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
