#!/usr/bin/env python3
"""Benchmark of the system-wide view: mptcp.connections() against ``ss -tiMnH``.

Builds a private two-path lab (root needed), opens N MPTCP connections that each get
a second subflow from the lab's in-kernel endpoint, and times, interleaved in the
same run and the same client namespace:

- ``ss``:   one run of ``ss -tiMnH`` (the C tool; forked from a thread inside the
            namespace, output to /dev/null), wall time including process start;
- ``lib``:  ``mptcp.connections()`` (two MPTCP dumps, two TCP dumps, records built);
- ``spawn``: starting a trivial process (``true``) the same way, to show how much of
            ss's time is process start rather than work.

N = 100, 1,000 and 5,000 (each connection is 2 client + 2 server subflows). Prints
medians and the median of per-round ratios ss/lib (> 1: the library is faster) and
writes benchmarks/results/bench_system.json.

    python benchmarks/bench_system.py [--sizes 100,1000,5000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import mptcp  # noqa: E402
from mptcp import diag  # noqa: E402
from mptcp._lab import Lab  # noqa: E402


class Acceptor:
    """Accepts in the server namespace and keeps the sockets; no thread per connection."""

    def __init__(self, lab: Lab) -> None:
        self.listener = lab.socket(lab.server_ns)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("0.0.0.0", 0))
        self.listener.listen(4096)
        self.port = self.listener.getsockname()[1]
        self.conns: List[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for s in self.conns + [self.listener]:
            s.close()


def _count_subflows(lab: Lab) -> int:
    return sum(len(c.subflows) for c in lab.run_in(lab.client_ns, diag.connections))


def grow(lab: Lab, acc: Acceptor, clients: List[socket.socket], n: int) -> float:
    t0 = time.perf_counter()
    server = lab.server_addrs["v4"][0]

    def connect_many(k: int) -> List[socket.socket]:
        out = []
        for _ in range(k):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, mptcp_proto())
            s.connect((server, acc.port))
            s.sendall(b"x" * 1000)  # the in-kernel PM adds the endpoint's subflow after data
            out.append(s)
        return out

    clients += lab.run_in(lab.client_ns, connect_many, n - len(clients))
    lab.wait_for(lambda: _count_subflows(lab) >= 2 * n, timeout=600, interval=0.5,
                 what=f"{2 * n} client subflows")
    return time.perf_counter() - t0


def mptcp_proto() -> int:
    return 262


def _timed_ss() -> float:
    t0 = time.perf_counter()
    subprocess.run(["ss", "-tiMnH"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _timed_spawn() -> float:
    t0 = time.perf_counter()
    subprocess.run(["true"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _timed_lib() -> float:
    t0 = time.perf_counter()
    diag.connections()
    return time.perf_counter() - t0


def measure(lab: Lab, n: int, rounds: int) -> Dict[str, Any]:
    ns = lab.client_ns
    conns = lab.run_in(ns, diag.connections)
    subs = sum(len(c.subflows) for c in conns)
    for fn in (_timed_ss, _timed_lib, _timed_spawn):  # warm up
        lab.run_in(ns, fn)
    ss_t, lib_t, spawn_t, ratios = [], [], [], []
    for _ in range(rounds):
        a = lab.run_in(ns, _timed_ss)
        b = lab.run_in(ns, _timed_lib)
        c = lab.run_in(ns, _timed_spawn)
        ss_t.append(a)
        lib_t.append(b)
        spawn_t.append(c)
        ratios.append(a / b)
    return {
        "connections": len(conns), "subflows": subs, "target": n, "rounds": rounds,
        "ss_ms": statistics.median(ss_t) * 1e3,
        "lib_ms": statistics.median(lib_t) * 1e3,
        "spawn_ms": statistics.median(spawn_t) * 1e3,
        "ratio_ss_over_lib": statistics.median(ratios),
        "lib_us_per_connection": statistics.median(lib_t) * 1e6 / max(len(conns), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default=str(HERE / "results" / "bench_system.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_system needs root (network namespaces)", file=sys.stderr)
        return 1
    sizes = sorted(int(x) for x in args.sizes.split(","))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * sizes[-1] + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        print(f"RLIMIT_NOFILE hard limit {hard} < {need}: sizes capped", file=sys.stderr)
        sizes = [s for s in sizes if 2 * s + 256 <= hard] or [min(sizes)]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)) if hard != resource.RLIM_INFINITY else need, hard))

    results: List[Dict[str, Any]] = []
    clients: List[socket.socket] = []
    with Lab(prefix="mptcpbench", ipv6=False) as lab:
        # room for 2 subflows per connection on both sides
        for ns in (lab.client_ns, lab.server_ns):
            lab.ip(ns, "mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2")
        acc = Acceptor(lab)
        try:
            print(f"{'conns':>6} {'subflows':>8} {'setup s':>8} {'ss ms':>8} {'lib ms':>8} "
                  f"{'spawn ms':>8} {'ss/lib':>7}")
            for n in sizes:
                setup = grow(lab, acc, clients, n)
                r = measure(lab, n, args.rounds)
                r["setup_s"] = setup
                results.append(r)
                print(f"{r['connections']:>6} {r['subflows']:>8} {setup:>8.1f} {r['ss_ms']:>8.2f} "
                      f"{r['lib_ms']:>8.2f} {r['spawn_ms']:>8.2f} {r['ratio_ss_over_lib']:>7.2f}",
                      flush=True)
        finally:
            for s in clients:
                s.close()
            acc.close()
    out = {
        "benchmark": "connections() vs ss -tiMnH",
        "kernel": platform.release(), "python": platform.python_version(),
        "mptcp": getattr(mptcp, "__version__", None), "cpus": os.cpu_count(),
        "note": "ss includes process start (see spawn_ms); medians over interleaved rounds",
        "results": results,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: Dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except ValueError:
            existing = {}
    existing["connections"] = out
    path.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
