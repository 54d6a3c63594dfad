#!/usr/bin/env python3
"""One subflow's socket options (the BPF path): the library against C, in one run.

    python benchmarks/bench_sockopt.py [--rounds 7] [--calls 300] [--sockets 10,2000,20000]
                                       [--json PATH]

As root, against the installed ``mptcp``. Three figures:

1. **Per call**: ``mptcp.get_sub_sockopt_int(sock, 2, SOL_SOCKET, SO_MARK)`` against a
   C loop (``cbaseline_sockopt.c``, ``gcc -O2``, with the library's own
   ``src/mptcp_bpf.c``) making the identical sequence on the same subflow: one
   MPTCP_FULL_INFO lookup, the map update, the iterator's creation, its read, the map
   lookup. Same thread, same namespace, rounds interleaved (C, library, C, ...); the
   overhead is the median of the per-round (library / C - 1). Target: at most 10 %.
2. **The first call** in a fresh process: BTF lookups and program load included.
   Target: at most 30 ms.
3. **The absolute median per call** against the number of TCP sockets in the
   namespace (``--sockets``, made as loopback connections), with the host's shared TCP
   hash table and with a small one of the namespace's own
   (``net.ipv4.tcp_child_ehash_entries=1024`` set in this namespace before the lab's
   are made, then restored: only namespaces created meanwhile get a table of their own).

The measuring process has one Python thread: the server runs in its own process and
this thread steps into the client namespace to connect and measure.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import _which

mptcp = _which.load()

from mptcp._lab import IPPROTO_MPTCP, Lab  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON = HERE / "results" / "bench_sockopt.json"
CHILD_EHASH = "/proc/sys/net/ipv4/tcp_child_ehash_entries"
OVERHEAD_TARGET = 0.10
FIRST_CALL_TARGET_MS = 30.0


def build_baseline() -> ctypes.CDLL:
    tmp = tempfile.mkdtemp(prefix="mptcp-cbaseline-sockopt-")
    try:
        so = os.path.join(tmp, "cbaseline_sockopt.so")
        cmd = ["gcc", "-O2", "-shared", "-fPIC", "-pthread", "-I", str(REPO / "include"), "-I",
               str(REPO / "src"), "-o", so, str(HERE / "cbaseline_sockopt.c"),
               str(REPO / "src" / "mptcp_bpf.c")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        lib = ctypes.CDLL(so)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lib.cb_load.restype = ctypes.c_int
    lib.cb_get_mark_loop.argtypes = [ctypes.c_int, ctypes.c_uint32, ctypes.c_int64]
    lib.cb_get_mark_loop.restype = ctypes.c_int64
    rc = lib.cb_load()
    if rc < 0:
        raise SystemExit(f"the C baseline could not load its program: {os.strerror(-rc)}")
    return lib


# A child holding n // 2 loopback connections (both ends) in its namespace.
_FILLER = r"""
import resource, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(4096)
held = []
for _ in range(n // 2):
    c = socket.create_connection(lst.getsockname())
    a, _ = lst.accept()
    held += [c, a]
print(len(held) + 1, flush=True)
sys.stdin.read()
"""
PER_CHILD = 8000  # well under a process's fd limit


class Filler:
    """About n more TCP sockets in the lab's client namespace, held by child processes
    (one process may not hold 20,000 fds here)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.children: list[subprocess.Popen[str]] = []
        self.count = 0

    def add(self, n: int) -> None:
        while n > 0:
            part = min(n, PER_CHILD)
            child = subprocess.Popen(
                ["ip", "netns", "exec", self.lab.client_ns, sys.executable, "-c", _FILLER,
                 str(part)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.children.append(child)
            assert child.stdout is not None
            self.count += int(child.stdout.readline())
            n -= part

    def close(self) -> None:
        for child in self.children:
            child.communicate("", timeout=60)


def per_call_us(fn: Any, calls: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - t0) / calls / 1000


def measure(lib: ctypes.CDLL, sock: socket.socket, rounds: int, calls: int) -> dict[str, Any]:
    fd = sock.fileno()
    call = mptcp.get_sub_sockopt_int

    def library() -> None:
        call(sock, 2, socket.SOL_SOCKET, socket.SO_MARK)

    def c_loop(n: int) -> float:
        ns = lib.cb_get_mark_loop(fd, 2, n)
        if ns < 0:
            raise SystemExit(f"C baseline: {os.strerror(-ns)}")
        return ns / n / 1000

    library()
    c_loop(5)  # warm both
    lib_us, c_us, over = [], [], []
    for _ in range(rounds):
        c = c_loop(calls)
        py = per_call_us(library, calls)
        lib_us.append(py)
        c_us.append(c)
        over.append(py / c - 1)
    return {"library_us": statistics.median(lib_us), "c_us": statistics.median(c_us),
            "overhead": statistics.median(over), "overhead_range": [min(over), max(over)]}


def first_call_ms(lab: Lab, port: int) -> dict[str, Any]:
    code = (
        "import json, socket, time, mptcp, mptcp._mptcp as core\n"
        f"s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, {IPPROTO_MPTCP})\n"
        f"s.connect(({lab.server_addrs['v4'][0]!r}, {port})); s.sendall(b'x' * 65536)\n"
        "t = time.perf_counter()\n"
        "mptcp.get_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_MARK)\n"
        "first = (time.perf_counter() - t) * 1e3\n"
        "t = time.perf_counter()\n"
        "mptcp.get_sub_sockopt_int(s, 1, socket.SOL_SOCKET, socket.SO_MARK)\n"
        "print(json.dumps({'first_ms': first, 'second_ms': (time.perf_counter() - t) * 1e3,"
        " **core.bpf_stats()}))\n")
    runs = []
    for _ in range(5):
        out = subprocess.run(["ip", "netns", "exec", lab.client_ns, sys.executable, "-c", code],
                             capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out))
    best = statistics.median(r["first_ms"] for r in runs)
    return {"first_call_ms": best, "runs": runs}


def table_size(lab: Lab) -> int:
    return int(lab.sh(lab.client_ns, "sysctl", "-n", "net.ipv4.tcp_ehash_entries").strip())


class SmallTable:
    """tcp_child_ehash_entries=1024 in this namespace while the lab's namespaces are made."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.old: Optional[str] = None

    def __enter__(self) -> "SmallTable":
        if self.on:
            with open(CHILD_EHASH) as f:
                self.old = f.read().strip()
            with open(CHILD_EHASH, "w") as f:
                f.write("1024")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            with open(CHILD_EHASH, "w") as f:
                f.write(self.old)


def run_table(lib: ctypes.CDLL, small: bool, sockets: list[int], rounds: int,
              calls: int) -> dict[str, Any]:
    with SmallTable(small):
        lab = Lab(prefix="mptcpbench")
    try:
        buckets = table_size(lab)
        # The sysctl reads -N for a namespace that uses the host's table of N buckets.
        out: dict[str, Any] = {"table": f"own ({buckets})" if small
                               else f"host's shared ({abs(buckets)})",
                               "tcp_ehash_entries": buckets, "by_sockets": {}}
        with lab.sink_process(IPPROTO_MPTCP) as (port,):
            with lab.inside(lab.client_ns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
                sock.connect((lab.server_addrs["v4"][0], port))
                sock.sendall(b"x" * 65536)
                deadline = time.monotonic() + 10
                while mptcp.get_sub_ids(sock) != [1, 2]:
                    if time.monotonic() > deadline:
                        raise SystemExit("the second subflow did not come up")
                    time.sleep(0.02)
                filler = Filler(lab)
                try:
                    for n in sorted(sockets):
                        filler.add(n - 2 - filler.count)  # the connection has two subflows
                        got = measure(lib, sock, rounds, calls)
                        got["sockets"] = filler.count + 2
                        out["by_sockets"][str(n)] = got
                finally:
                    filler.close()
                sock.close()
            out["first_call"] = None if small else first_call_ms(lab, port)
        return out
    finally:
        lab.close()


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=300, help="calls per side per round")
    ap.add_argument("--sockets", default="10,2000,20000",
                    help="TCP sockets in the namespace, comma-separated")
    ap.add_argument("--json", default=str(DEFAULT_JSON))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_sockopt needs root (namespaces, BPF)")
    print(_which.describe(mptcp), flush=True)
    sockets = [int(x) for x in args.sockets.split(",")]
    if threading.active_count() != 1:
        raise SystemExit("the measuring process must have one Python thread")
    print(f"mptcp per-subflow options benchmark: kernel {platform.release()}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs")
    lib = build_baseline()
    results = {"kernel": platform.release(), "mptcp": str(Path(mptcp.__file__).parent),
               "tables": [run_table(lib, small, sockets, args.rounds, args.calls)
                          for small in (False, True)]}
    print(f"\n{'TCP hash table':<22} {'sockets':>8} {'library us':>11} {'C us':>9} {'overhead':>9}"
          f"  {'[min..max]':<15} target")
    ok = True
    for t in results["tables"]:
        for n, r in t["by_sockets"].items():
            lo, hi = r["overhead_range"]
            good = r["overhead"] <= OVERHEAD_TARGET
            ok &= good
            print(f"{t['table']:<22} {r['sockets']:>8} "
                  f"{r['library_us']:>11.1f} {r['c_us']:>9.1f} {r['overhead']:>8.1%}  "
                  f"[{lo:.1%}..{hi:.1%}]  <= 10%: {'PASS' if good else 'FAIL'}")
    first = results["tables"][0]["first_call"]
    good = first["first_call_ms"] <= FIRST_CALL_TARGET_MS
    ok &= good
    stats = first["runs"][0]
    print(f"\nfirst call in a fresh process (BTF + load + call), median of 5: "
          f"{first['first_call_ms']:.1f} ms (target <= {FIRST_CALL_TARGET_MS:.0f} ms: "
          f"{'PASS' if good else 'FAIL'}); the load: BTF {stats['ns_btf'] / 1e6:.1f} ms, "
          f"program {stats['ns_prog'] / 1e6:.2f} ms ({stats['insns']} instructions, "
          f"{'kfunc' if stats['kfunc'] else 'probe_read'})")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {out}\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
