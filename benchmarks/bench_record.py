#!/usr/bin/env python3
"""The recorder's own CPU time: what ``mptcp record`` costs while it samples.

Builds a private two-path lab (root needed), opens N idle MPTCP connections that
each get a second subflow from the lab's in-kernel endpoint (the servers live in
their own process, so nothing else in this process works), then runs the recorder
in this process for ``--seconds`` per configuration and reports its process CPU
time (``time.process_time``: every thread of the process, the kernel's work for
the sock_diag dumps included) as a fraction of one core:

- ``dump``: the floor, one ``mptcp.connections()`` call per tick and nothing else
  (the sock_diag dumps in the kernel and the core's records);
- ``sampler``: the sampling loop, into a sink that drops the rows (``dump`` plus
  filtering and building the typed rows);
- ``record``: what ``mptcp record`` runs, the sampling loop plus the CSV writer
  thread writing to a file in a temporary directory.

N = 100 and 1,000 connections (2 subflows each), at intervals of 0.1 s (the
default; target: at most 5% of a core for 100 connections) and 0.01 s. Late and
skipped samples are reported too (a sampler that cannot keep up skips ticks).

Runs against the INSTALLED package (``pip install .``), not the source tree.

    python benchmarks/bench_record.py [--sizes 100,1000] [--intervals 0.1,0.01]
           [--seconds 10] [--json benchmarks/results/bench_record.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import _which

HERE = Path(__file__).resolve().parent
mptcp = _which.load()

from mptcp import _recording  # noqa: E402
from mptcp.diag import connections  # noqa: E402
from mptcp._lab import IPPROTO_MPTCP, Lab  # noqa: E402

TARGET = 0.05  # of one core, 100 connections at 0.1 s


class NullSink:
    """Keeps nothing: the sampling loop's cost alone."""

    def __init__(self) -> None:
        self.rows = 0

    def sample(self, rows: List[_recording.Sample]) -> bool:
        self.rows += len(rows)
        return True

    def event(self, event: _recording.RecordedEvent) -> None:
        pass

    def events_lost(self, t: float) -> None:
        pass


def _subflows() -> int:
    return sum(len(c.subflows) for c in connections())


def grow(lab: Lab, port: int, clients: List[socket.socket], n: int) -> float:
    """Open connections up to ``n`` (data on each, so the endpoint's subflow joins)."""
    t0 = time.perf_counter()
    server = lab.server_addrs["v4"][0]

    def connect_many(k: int) -> List[socket.socket]:
        out = []
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
            s.connect((server, port))
            s.sendall(b"x" * 1000)
            out.append(s)
        return out

    clients += lab.run_in(lab.client_ns, connect_many, n - len(clients))
    lab.wait_for(lambda: lab.run_in(lab.client_ns, _subflows) >= 2 * n, timeout=600,
                 interval=0.5, what=f"{2 * n} client subflows")
    return time.perf_counter() - t0


def measure(lab: Lab, mode: str, interval: float, seconds: float, tmp: Path) -> Dict[str, Any]:
    def start() -> Any:
        if mode in ("dump", "sampler"):
            source = (lambda: [connections()][:0]) if mode == "dump" else connections
            sampler = _recording.Sampler(NullSink(), interval, source=source)
            sampler.start()
            return sampler
        return _recording.stream(tmp / f"bench-{interval}.csv", interval)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    running = lab.run_in(lab.client_ns, start)  # its threads live in the client namespace
    time.sleep(seconds)
    running.stop()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if mode != "record":
        samples, rows, late, skipped = running.samples, running.rows, running.late, running.skipped
    else:
        p = running.progress()
        samples, rows, late, skipped = p.samples, p.rows, p.late, p.skipped
    return {
        "mode": mode, "interval": interval, "seconds": round(wall, 3),
        "cpu_fraction": cpu / wall, "cpu_ms_per_sample": 1e3 * cpu / max(samples, 1),
        "samples": samples, "rows": rows, "late": late, "skipped": skipped,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--intervals", default="0.1,0.01")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", default=str(HERE / "results" / "bench_record.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_record needs root (network namespaces)", file=sys.stderr)
        return 1
    print(_which.describe(mptcp), flush=True)
    sizes = sorted(int(x) for x in args.sizes.split(","))
    intervals = [float(x) for x in args.intervals.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = sizes[-1] + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY
                                                    else min(need, hard), hard))

    results: List[Dict[str, Any]] = []
    clients: List[socket.socket] = []
    with Lab(prefix="mptcpbench", ipv6=False) as lab, lab.sink_process(IPPROTO_MPTCP) as (port,), \
            tempfile.TemporaryDirectory() as tmp:
        try:
            print(f"{'conns':>6} {'subflows':>8} {'mode':>8} {'interval':>8} {'CPU %':>7} "
                  f"{'ms/sample':>9} {'samples':>7} {'late':>5} {'skipped':>7}")
            for n in sizes:
                setup = grow(lab, port, clients, n)
                subflows = lab.run_in(lab.client_ns, _subflows)
                for interval in intervals:
                    for mode in ("dump", "sampler", "record"):
                        r = measure(lab, mode, interval, args.seconds, Path(tmp))
                        r.update(connections=n, subflows=subflows, setup_s=round(setup, 1))
                        results.append(r)
                        print(f"{n:>6} {subflows:>8} {mode:>8} {interval:>8g} "
                              f"{100 * r['cpu_fraction']:>6.2f}% {r['cpu_ms_per_sample']:>9.3f} "
                              f"{r['samples']:>7} {r['late']:>5} {r['skipped']:>7}", flush=True)
        finally:
            for s in clients:
                s.close()
    headline = [r for r in results if r["connections"] == 100 and r["interval"] == 0.1
                and r["mode"] == "record"]
    verdict = None
    if headline:
        verdict = headline[0]["cpu_fraction"] <= TARGET
        print(f"100 connections at 0.1 s: {100 * headline[0]['cpu_fraction']:.2f}% of a core "
              f"(target {100 * TARGET:.0f}%): {'met' if verdict else 'MISSED'}")
    out = {
        "benchmark": "recorder CPU time (process_time / wall time, one core = 1.0)",
        "kernel": platform.release(), "python": platform.python_version(),
        "mptcp": mptcp.__version__, "package": str(Path(mptcp.__file__).parent),
        "cpus": os.cpu_count(), "target_100_at_0.1s": TARGET, "target_met": verdict,
        "results": results,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
