#!/usr/bin/env python3
"""Benchmark of the system-wide view: mptcp.connections() and ``mptcp ls`` against ``ss -tiMnH``.

Builds a private two-path lab (root needed), opens N MPTCP connections that each get
a second subflow from the lab's in-kernel endpoint, and times, interleaved in the
same run and the same client namespace:

- ``ss``:   one run of ``ss -tiMnH`` (the C tool; forked from a thread inside the
            namespace, its output read from a pipe), wall time including process start;
- ``lib``:  ``mptcp.connections()`` in this process (two MPTCP dumps, one TCP
            dumps, records built);
- ``ls json`` / ``ls text``: the command as a user runs it, ``python -m mptcp ls
            --json`` and ``python -m mptcp ls``, as processes started like ``ss``
            (and ``mptcp ls --json``, the console script, when it is installed
            next to the interpreter: ``script_json``);
- ``pass``: ``python -c pass``, the interpreter's own start-up, the floor of any
            Python command;
- ``spawn``: starting a trivial process (``true``) the same way, to show how much of
            ss's time is process start rather than work.

Target: at 1,000 connections ``ls --json`` takes at most twice ``ss -tiMnH``'s
time. N = 100, 1,000 and 5,000 (each connection is 2 client + 2 server subflows).
Prints medians and the median of per-round ratios and writes
benchmarks/results/bench_system.json. Measures the ``mptcp`` that ``import mptcp``
finds (the installed one; ``PYTHONPATH=src`` for an in-place build) and says which.

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
from typing import Any, Callable, Dict, List

import _which

HERE = Path(__file__).resolve().parent
mptcp = _which.load()

from mptcp import diag  # noqa: E402
from mptcp._lab import Lab  # noqa: E402

TARGET_LS_OVER_SS = 2.0
LS_JSON = [sys.executable, "-m", "mptcp", "ls", "--json"]
LS_TEXT = [sys.executable, "-m", "mptcp", "ls"]
PASS = [sys.executable, "-c", "pass"]
# The console script pip installs next to the interpreter: what a user types.
SCRIPT = Path(sys.executable).with_name("mptcp")


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


def _timed(argv: List[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, cwd=HERE)
    return time.perf_counter() - t0


def _timed_piped(argv: List[str]) -> float:
    # The output read to the end from a pipe, as a user's tool would.
    t0 = time.perf_counter()
    out = subprocess.run(argv, stdout=subprocess.PIPE, check=True, cwd=HERE).stdout
    dt = time.perf_counter() - t0
    if not out:
        raise RuntimeError(f"{' '.join(argv)} printed nothing")
    return dt


def _timed_lib() -> float:
    t0 = time.perf_counter()
    diag.connections()
    return time.perf_counter() - t0


ROWS: Dict[str, Callable[[], float]] = {
    "ss": lambda: _timed_piped(["ss", "-tiMnH"]),
    "lib": _timed_lib,
    "ls_json": lambda: _timed_piped(LS_JSON),
    "ls_text": lambda: _timed_piped(LS_TEXT),
    **({"script_json": lambda: _timed_piped([str(SCRIPT), "ls", "--json"])}
       if SCRIPT.exists() else {}),
    "pass": lambda: _timed(PASS),
    "spawn": lambda: _timed(["true"]),
}


def measure(lab: Lab, n: int, rounds: int) -> Dict[str, Any]:
    ns = lab.client_ns
    conns = lab.run_in(ns, diag.connections)
    subs = sum(len(c.subflows) for c in conns)
    listed = json.loads(lab.run_in(ns, lambda: subprocess.run(
        LS_JSON, stdout=subprocess.PIPE, check=True).stdout))
    if len(listed) < len(conns):
        raise RuntimeError(f"mptcp ls --json listed {len(listed)} connections, "
                           f"connections() {len(conns)}")
    for fn in ROWS.values():  # warm up (page cache, .pyc files)
        lab.run_in(ns, fn)
    times: Dict[str, List[float]] = {k: [] for k in ROWS}
    ratios: Dict[str, List[float]] = {"ss_over_lib": [], "ls_json_over_ss": [], "ls_text_over_ss": []}
    for _ in range(rounds):
        got = {k: lab.run_in(ns, fn) for k, fn in ROWS.items()}
        for k, v in got.items():
            times[k].append(v)
        ratios["ss_over_lib"].append(got["ss"] / got["lib"])
        ratios["ls_json_over_ss"].append(got["ls_json"] / got["ss"])
        ratios["ls_text_over_ss"].append(got["ls_text"] / got["ss"])
        if "script_json" in got:
            ratios.setdefault("script_json_over_ss", []).append(got["script_json"] / got["ss"])
    return {
        "connections": len(conns), "subflows": subs, "target": n, "rounds": rounds,
        **{f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()},
        **{f"ratio_{k}": statistics.median(v) for k, v in ratios.items()},
        "lib_us_per_connection": statistics.median(times["lib"]) * 1e6 / max(len(conns), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default=str(HERE / "results" / "bench_system.json"))
    args = ap.parse_args()
    print(_which.describe(mptcp), flush=True)
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
                  f"{'ls json':>8} {'ls text':>8} {'pass ms':>8} {'spawn ms':>8} {'ss/lib':>7} "
                  f"{'json/ss':>7} {'text/ss':>7}")
            for n in sizes:
                setup = grow(lab, acc, clients, n)
                r = measure(lab, n, args.rounds)
                r["setup_s"] = setup
                results.append(r)
                print(f"{r['connections']:>6} {r['subflows']:>8} {setup:>8.1f} {r['ss_ms']:>8.2f} "
                      f"{r['lib_ms']:>8.2f} {r['ls_json_ms']:>8.2f} {r['ls_text_ms']:>8.2f} "
                      f"{r['pass_ms']:>8.2f} {r['spawn_ms']:>8.2f} {r['ratio_ss_over_lib']:>7.2f} "
                      f"{r['ratio_ls_json_over_ss']:>7.2f} {r['ratio_ls_text_over_ss']:>7.2f}",
                      flush=True)
                if "script_json_ms" in r:
                    print(f"{'':>6} console script 'mptcp ls --json': {r['script_json_ms']:.2f} ms, "
                          f"{r['ratio_script_json_over_ss']:.2f} x ss", flush=True)
        finally:
            for s in clients:
                s.close()
            acc.close()
    out = {
        "benchmark": "connections() and mptcp ls vs ss -tiMnH",
        "kernel": platform.release(), "python": platform.python_version(),
        "mptcp": getattr(mptcp, "__version__", None), "mptcp_path": mptcp.__file__,
        "cpus": os.cpu_count(),
        "note": "ss and ls include process start (see pass_ms, spawn_ms); medians over "
                "interleaved rounds",
        "target_ls_json_over_ss_at_1000": TARGET_LS_OVER_SS,
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
