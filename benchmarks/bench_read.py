#!/usr/bin/env python3
"""Read-path benchmark: the library's calls against a C loop of the same syscalls.

Method: a real two-subflow MPTCP connection in
a private namespace lab; a C baseline (``benchmarks/cbaseline.c``, ``gcc -O2``)
makes the same ``getsockopt`` with the same header and buffer sizes on the same fd;
rounds are interleaved (C, library, C, library, ...) and the median of the per-round
ratios (library calls/s divided by C calls/s) is reported.

    python benchmarks/bench_read.py [--rounds N] [--calls N] [--json PATH]   (as root)

It measures the ``mptcp`` that ``import mptcp`` finds (``pip install .``, or
``PYTHONPATH=src`` after ``python setup.py build_ext --inplace``) and says which; it
builds the C baseline (and, for ``--draft``, the draft-kernel double of
``tests/draftkernel``) with gcc from the repository's sources.

Pairs (library call vs C loop):

* ``Poller.poll()``          vs FULL_INFO (136-byte header, arrays of 8)
* ``Poller.poll()`` while a second Python thread exists (informational): the core
  then hands the GIL off around the syscall, as in any threaded program
* ``mptcp.get_sub_ids(sock)`` vs FULL_INFO
* ``mptcp.info(sock)``        vs MPTCP_INFO (96 bytes)
* ``mptcp.subflows(sock)``    vs FULL_INFO (2 live subflows)
* ``sock.getsockopt(284, 1, 96)`` (standard library) vs MPTCP_INFO, informational

Also: the ``sys.getallocatedblocks()`` delta over 100,000 ``poll()`` calls, and
(when a target is missed, or with ``--variants always``) per-call timings of
variants that split a call's cost into syscall, core decoding and Python layer.

The measured process has one Python thread, like a polling tool: the server runs
in its own process (``Lab.sink_process``) and the connection is made by this thread
stepping into the client namespace (``Lab.inside``); lab worker threads would make
every read pay the GIL hand-off. The garbage collector is off while a loop is
timed (as ``timeit`` does). The library side is timed in Python with ``time.perf_counter_ns`` around a plain
``for`` loop over a pre-bound callable, so the Python loop itself counts against
the library; the C side times its own loop with ``clock_gettime(CLOCK_MONOTONIC)``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
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
from typing import Any, Callable, Dict, List, Optional

import _which

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
INCLUDE = REPO / "include"  # the C baseline is built from the repository's header
DEFAULT_JSON = HERE / "results" / "bench_read.json"

# The mptcp that `import mptcp` finds: the installed package, or an in-place
# build with PYTHONPATH=src. Never src/ by itself: without a built core it does
# not import.
mptcp = _which.load()
from mptcp import _mptcp as core  # noqa: E402
from mptcp._lab import IPPROTO_MPTCP, Lab  # noqa: E402

SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_INFO_LEN = 96
ALLOC_CALLS = 100_000
ALLOC_TARGET = 10  # blocks


# --------------------------------------------------------------------------------
# The C baseline
# --------------------------------------------------------------------------------
def build_baseline() -> ctypes.CDLL:
    """Compile cbaseline.c into a temp dir and load it."""
    tmp = tempfile.mkdtemp(prefix="mptcp-cbaseline-")
    try:
        so = os.path.join(tmp, "cbaseline.so")
        cmd = ["gcc", "-O2", "-shared", "-fPIC", "-I", str(INCLUDE),
               "-o", so, str(HERE / "cbaseline.c")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        lib = ctypes.CDLL(so)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the mapping stays valid
    for name in ("cb_full_info_loop", "cb_mptcp_info_loop"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_int, ctypes.c_int64]
        fn.restype = ctypes.c_int64
    lib.cb_full_info_probe.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint32), ctypes.c_int]
    lib.cb_full_info_probe.restype = ctypes.c_int
    for name in ("cb_sizeof_full_info", "cb_sizeof_tcp_info", "cb_sizeof_subflow_info",
                 "cb_sizeof_mptcp_info"):
        getattr(lib, name).restype = ctypes.c_uint32
    return lib


def core_fingerprint() -> Dict[str, Any]:
    """Which build of the compiled core ran (others may rebuild it meanwhile)."""
    path = core.__file__
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return {"path": path, "sha256_16": digest,
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(path)))}


def c_timer(fn: Callable[[int, int], int], fd: int) -> Callable[[int], int]:
    def run(n: int) -> int:
        ns = fn(fd, n)
        if ns < 0:
            raise OSError(-ns, f"C baseline getsockopt failed: {os.strerror(-ns)}")
        return int(ns)
    return run


# --------------------------------------------------------------------------------
# Library-side loops: one pre-bound callable, a bare for loop, gc off
# --------------------------------------------------------------------------------
def loop0(fn: Callable[[], Any]) -> Callable[[int], int]:
    def run(n: int) -> int:
        r = range(n)
        t0 = time.perf_counter_ns()
        for _ in r:
            fn()
        return time.perf_counter_ns() - t0
    return run


def loop1(fn: Callable[[Any], Any], arg: Any) -> Callable[[int], int]:
    def run(n: int) -> int:
        r = range(n)
        t0 = time.perf_counter_ns()
        for _ in r:
            fn(arg)
        return time.perf_counter_ns() - t0
    return run


def loop_stdlib(sock: socket.socket) -> Callable[[int], int]:
    gso = sock.getsockopt

    def run(n: int) -> int:
        r = range(n)
        t0 = time.perf_counter_ns()
        for _ in r:
            gso(SOL_MPTCP, MPTCP_INFO, MPTCP_INFO_LEN)
        return time.perf_counter_ns() - t0
    return run


def timed(run: Callable[[int], int], n: int) -> float:
    """calls/s of one timed loop, gc off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        ns = run(n)
    finally:
        if enabled:
            gc.enable()
    return n * 1e9 / max(ns, 1)


# --------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------
def open_connection(lab: Lab, port: int) -> socket.socket:
    """A two-subflow connection made by this thread, which steps into the client
    namespace for the connect: no lab worker thread is left in this process."""
    with lab.inside(lab.client_ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_MPTCP)
    try:
        sock.settimeout(5)
        sock.connect((lab.server_addrs["v4"][0], port))
        # The in-kernel endpoint opens the second subflow once data flows.
        sock.sendall(b"x" * 64 * 1024)
        lab.wait_for(lambda: len(mptcp.subflows(sock)) == 2, timeout=10.0,
                     what="the second subflow")
    except BaseException:
        sock.close()
        raise
    return sock


def with_idle_thread(run: Callable[[int], int]) -> Callable[[int], int]:
    """``run`` while a second Python thread exists (blocked, not running): the core
    then hands the GIL off around each syscall, as in a threaded program."""
    def wrapped(n: int) -> int:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait, daemon=True)
        t.start()
        try:
            return run(n)
        finally:
            stop.set()
            t.join()
    return wrapped


def sanity(lib: ctypes.CDLL, sock: socket.socket, poller: Any) -> Dict[str, Any]:
    """Both sides see the same connection with the same sizes, or we stop."""
    sizes = {
        "full_info": (lib.cb_sizeof_full_info(), core.SIZEOF_FULL_INFO),
        "tcp_info": (lib.cb_sizeof_tcp_info(), core.SIZEOF_TCP_INFO),
        "subflow_info": (lib.cb_sizeof_subflow_info(), core.SIZEOF_SUBFLOW_INFO),
        "mptcp_info": (lib.cb_sizeof_mptcp_info(), core.SIZEOF_MPTCP_INFO),
    }
    for name, (c, py) in sizes.items():
        if c != py:
            raise RuntimeError(f"C baseline sizeof({name}) {c} != library's {py}")
    out = (ctypes.c_uint32 * 12)()
    rc = lib.cb_full_info_probe(sock.fileno(), out, 12)
    if rc != 0:
        raise OSError(-rc, "C FULL_INFO probe failed")
    n = out[0]
    c_ids = sorted(out[4 + i] for i in range(min(n, 8)))
    lib_ids = mptcp.get_sub_ids(sock)
    polled = poller.poll()
    if n != 2 or c_ids != lib_ids or polled != 2 or len(mptcp.subflows(sock)) != 2:
        raise RuntimeError(f"subflow views disagree: C {n} {c_ids}, get_sub_ids {lib_ids}, "
                           f"poll {polled}")
    if len(sock.getsockopt(SOL_MPTCP, MPTCP_INFO, MPTCP_INFO_LEN)) != MPTCP_INFO_LEN:
        raise RuntimeError("MPTCP_INFO did not return 96 bytes")
    return {
        "subflows": n, "ids": lib_ids, "full_info_optlen": out[1],
        "size_tcpinfo_kernel": out[2], "size_sfinfo_kernel": out[3],
        "sizes": {k: v[0] for k, v in sizes.items()},
    }


# --------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------
def run_pairs(pairs: List[Dict[str, Any]], rounds: int, calls: int) -> None:
    warm = max(calls // 10, 100)
    for p in pairs:
        timed(p["c"], warm)
        timed(p["lib"], warm)
        p["c_rates"], p["lib_rates"], p["ratios"] = [], [], []
    for _ in range(rounds):
        for p in pairs:  # C right before the library, every round
            c = timed(p["c"], calls)
            lib = timed(p["lib"], calls)
            p["c_rates"].append(c)
            p["lib_rates"].append(lib)
            p["ratios"].append(lib / c)
    for p in pairs:
        p["ratio_median"] = statistics.median(p["ratios"])
        p["lib_median"] = statistics.median(p["lib_rates"])
        p["c_median"] = statistics.median(p["c_rates"])
        t = p["target"]
        p["pass"] = None if t is None else p["ratio_median"] >= t


def alloc_delta(poll: Callable[[], int]) -> int:
    for _ in range(10_000):  # warm-up: views, caches, free lists
        poll()
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        r = range(ALLOC_CALLS)
        before = sys.getallocatedblocks()
        for _ in r:
            poll()
        after = sys.getallocatedblocks()
    finally:
        if enabled:
            gc.enable()
    return after - before


def run_variants(lib: ctypes.CDLL, sock: socket.socket, poller: Any, calls: int,
                 rounds: int) -> List[Dict[str, Any]]:
    """ns per call of variants that isolate each layer's cost (median of rounds)."""
    fd = sock.fileno()
    base_poller = core.Poller.__new__(core.Poller)  # the Cython class, no Python subclass
    base_poller._attach(fd, sock)
    variants = [
        ("C FULL_INFO loop", c_timer(lib.cb_full_info_loop, fd)),
        ("C MPTCP_INFO loop", c_timer(lib.cb_mptcp_info_loop, fd)),
        ("python call floor: loop1(id, fd)", loop1(id, fd)),
        ("mptcp.Poller(sock).poll()", loop0(poller.poll)),
        ("core.Poller.poll() (no subclass)", loop0(base_poller.poll)),
        ("core.full_info_errno(fd) (FULL_INFO, no arrays)", loop1(core.full_info_errno, fd)),
        ("mptcp.get_sub_ids(sock)", loop1(mptcp.get_sub_ids, sock)),
        ("mptcp.get_sub_ids(fd)", loop1(mptcp.get_sub_ids, fd)),
        ("core.sub_ids(fd)", loop1(core.sub_ids, fd)),
        ("mptcp.subflows(sock)", loop1(mptcp.subflows, sock)),
        ("mptcp.subflows(fd)", loop1(mptcp.subflows, fd)),
        ("core.subflows(fd)", loop1(core.subflows, fd)),
        ("mptcp.info(sock)", loop1(mptcp.info, sock)),
        ("mptcp.info(fd)", loop1(mptcp.info, fd)),
        ("core.info(fd)", loop1(core.info, fd)),
        ("core.info_errno(fd) (MPTCP_INFO, no record)", loop1(core.info_errno, fd)),
        ("sock.getsockopt(284, 1, 96)", loop_stdlib(sock)),
        ("sock.fileno()", loop0(sock.fileno)),
        ("core.fileno(sock) (the fd coercion)", loop1(core.fileno, sock)),
    ]
    samples: Dict[str, List[float]] = {name: [] for name, _ in variants}
    for _, run in variants:
        timed(run, max(calls // 10, 100))
    for _ in range(rounds):
        for name, run in variants:
            samples[name].append(1e9 / timed(run, calls))
    return [{"variant": name, "ns_per_call": statistics.median(samples[name])}
            for name, _ in variants]


# --------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------
def fmt_rate(r: float) -> str:
    return f"{r:,.0f}"


def print_report(meta: Dict[str, Any], pairs: List[Dict[str, Any]], blocks: int,
                 variants: Optional[List[Dict[str, Any]]]) -> None:
    print(f"mptcp read-path benchmark: kernel {meta['kernel']}, Python {meta['python']}, "
          f"{meta['cpus']} CPUs")
    so = meta["core_so"]
    print(f"library {meta['library']} (core sha256 {so['sha256_16']}, built {so['mtime']}); "
          f"load average before {meta['loadavg_before'][0]:.2f}")
    print(f"connection: {meta['sanity']['subflows']} subflows, ids {meta['sanity']['ids']}; "
          f"{meta['rounds']} interleaved rounds x {meta['calls']:,} calls per side; gc off while timing")
    print()
    hdr = (f"{'library call':<30} {'lib calls/s':>12} {'C loop':<11} {'C calls/s':>12} "
           f"{'ratio':>6} {'[min..max]':>13} {'target':>7}  result")
    print(hdr)
    print("-" * len(hdr))
    for p in pairs:
        t = p["target"]
        res = "info" if t is None else ("PASS" if p["pass"] else "FAIL")
        tgt = "-" if t is None else f">={t:.2f}"
        rng = f"[{min(p['ratios']):.2f}..{max(p['ratios']):.2f}]"
        print(f"{p['label']:<30} {fmt_rate(p['lib_median']):>12} {p['c_label']:<11} "
              f"{fmt_rate(p['c_median']):>12} {p['ratio_median']:>6.2f} {rng:>13} {tgt:>7}  {res}")
    print()
    res = "PASS" if blocks < ALLOC_TARGET else "FAIL"
    print(f"sys.getallocatedblocks() delta over {ALLOC_CALLS:,} poll() calls: {blocks:+d} "
          f"(target < {ALLOC_TARGET})  {res}")
    if variants:
        print()
        print("variants (median ns per call):")
        for v in variants:
            print(f"  {v['variant']:<50} {v['ns_per_call']:>8.0f} ns")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 3; default 7)")
    ap.add_argument("--calls", type=int, default=50_000, help="calls per side per round (default 50000)")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help=f"result file (default {DEFAULT_JSON})")
    ap.add_argument("--variants", choices=("auto", "always", "never"), default="auto",
                    help="time per-layer variants: when a target is missed (auto), always or never")
    args = ap.parse_args(argv)
    if args.rounds < 3:
        ap.error("--rounds must be at least 3")
    if args.calls < 1:
        ap.error("--calls must be positive")
    if os.geteuid() != 0:
        print("bench_read.py needs root (it builds network namespaces)", file=sys.stderr)
        return 2

    print(_which.describe(mptcp), flush=True)
    started = time.monotonic()
    lib = build_baseline()
    with Lab(endpoint=True) as lab, lab.sink_process(IPPROTO_MPTCP) as (port,):
        with open_connection(lab, port) as sock:
            if threading.active_count() != 1:
                raise RuntimeError(f"the measured process must have one Python thread, not "
                                   f"{threading.enumerate()}")
            fd = sock.fileno()
            poller = mptcp.Poller(sock)
            meta: Dict[str, Any] = {
                "kernel": platform.release(), "python": platform.python_version(),
                "cpus": os.cpu_count(), "library": os.path.dirname(mptcp.__file__),
                "core_so": core_fingerprint(), "loadavg_before": list(os.getloadavg()),
                "rounds": args.rounds, "calls": args.calls, "gc_during_timing": False,
                "sanity": sanity(lib, sock, poller),
            }
            c_full = c_timer(lib.cb_full_info_loop, fd)
            c_info = c_timer(lib.cb_mptcp_info_loop, fd)
            pairs: List[Dict[str, Any]] = [
                {"name": "poll", "label": "Poller.poll()", "lib": loop0(poller.poll),
                 "c_label": "FULL_INFO", "c": c_full, "target": 0.85},
                {"name": "poll_threaded", "label": "Poller.poll() +1 thread",
                 "lib": with_idle_thread(loop0(poller.poll)), "c_label": "FULL_INFO",
                 "c": c_full, "target": None},
                {"name": "get_sub_ids", "label": "mptcp.get_sub_ids(sock)",
                 "lib": loop1(mptcp.get_sub_ids, sock), "c_label": "FULL_INFO", "c": c_full,
                 "target": 0.7},
                {"name": "info", "label": "mptcp.info(sock)", "lib": loop1(mptcp.info, sock),
                 "c_label": "MPTCP_INFO", "c": c_info, "target": 0.55},
                {"name": "subflows", "label": "mptcp.subflows(sock) [2 sf]",
                 "lib": loop1(mptcp.subflows, sock), "c_label": "FULL_INFO", "c": c_full,
                 "target": 0.35},
                {"name": "stdlib_getsockopt", "label": "sock.getsockopt(284,1,96)",
                 "lib": loop_stdlib(sock), "c_label": "MPTCP_INFO", "c": c_info, "target": None},
            ]
            run_pairs(pairs, args.rounds, args.calls)
            blocks = alloc_delta(poller.poll)
            missed = any(p["pass"] is False for p in pairs) or blocks >= ALLOC_TARGET
            variants = None
            if args.variants == "always" or (args.variants == "auto" and missed):
                variants = run_variants(lib, sock, poller, max(args.calls // 2, 1), args.rounds)
            # The connection must still be the one we measured.
            if poller.poll() != 2:
                raise RuntimeError("the connection lost a subflow during the benchmark")
            poller.close()

    elapsed = time.monotonic() - started
    print_report(meta, pairs, blocks, variants)
    all_pass = all(p["pass"] is not False for p in pairs) and blocks < ALLOC_TARGET
    print()
    print(f"overall: {'PASS' if all_pass else 'FAIL'}  ({elapsed:.1f} s)")

    result = {
        "benchmark": "bench_read",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **meta,
        "elapsed_s": round(elapsed, 2),
        "pairs": [
            {k: p[k] for k in ("name", "label", "c_label", "target", "pass", "ratio_median",
                               "lib_median", "c_median", "ratios", "lib_rates", "c_rates")}
            for p in pairs
        ],
        "allocated_blocks": {"calls": ALLOC_CALLS, "delta": blocks, "target_lt": ALLOC_TARGET,
                             "pass": blocks < ALLOC_TARGET},
        "variants_ns_per_call": variants,
        "pass": all_pass,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent == DEFAULT_JSON.parent:
        (out.parent / ".keep").touch()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results written to {out}")
    return 0 if all_pass else 1


# ================================================================================
# Draft backend section (--draft / --draft-only)
# ================================================================================
# The draft-API backend's get_sub_ids / get_sub_tuple, measured by
# benchmarks/bench_draft.py: in a child process with the draft-kernel double
# (tests/draftkernel) in LD_PRELOAD and MPTCP_BACKEND=draft, against a C loop of the
# same getsockopts under the same double (each costs one real getsockopt plus the
# double's table lookup, on both sides). Printed here in this file's table style:
# calls/s per side and ratio = library calls/s / C calls/s (median of interleaved
# rounds; bench_draft reports the inverse, library time / C time). No target: the
# ratio is quoted for information. Needs gcc, not root.
#
#     python benchmarks/bench_read.py --draft         # read-path benchmark, then draft
#     python benchmarks/bench_read.py --draft-only    # draft section only
DRAFT_JSON = HERE / "results" / "bench_draft.json"


def _load_bench_draft() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_draft", HERE / "bench_draft.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {HERE / 'bench_draft.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_draft_section(rounds: int, calls: int, json_path: Optional[Path] = DRAFT_JSON) -> int:
    """Run bench_draft() (child under the double) and print its ratios as a table."""
    import contextlib
    import io

    print(_which.describe(mptcp), flush=True)
    started = time.monotonic()
    quiet = io.StringIO()  # bench_draft prints its own (inverse-ratio) table: keep ours only
    with contextlib.redirect_stdout(quiet):
        result = _load_bench_draft().bench_draft(rounds, calls, json_path)
    meta = result["meta"]
    print(f"draft backend read path under the draft-kernel double: kernel {meta['kernel']}, "
          f"Python {meta['python']}, {meta['machine']}")
    print(f"double {meta['double']}; MPTCP_BACKEND=draft; connection: 2 subflows (ids [1, 2]); "
          f"{meta['rounds']} interleaved rounds x {meta['calls']:,} calls per side; "
          "gc off while timing")
    print()
    hdr = (f"{'library call':<30} {'lib calls/s':>12} {'C loop':<27} {'C calls/s':>12} "
           f"{'ratio':>6} {'[min..max]':>13} {'target':>7}  result")
    print(hdr)
    print("-" * len(hdr))
    for p in result["pairs"]:
        rng = f"[{1 / p['ratio_max']:.2f}..{1 / p['ratio_min']:.2f}]"
        print(f"{p['name']:<30} {fmt_rate(1e9 / p['lib_ns']):>12} {p['c_calls']:<27} "
              f"{fmt_rate(1e9 / p['c_ns']):>12} {1 / p['ratio_median']:>6.2f} {rng:>13} "
              f"{'-':>7}  info")
    print()
    print(f"draft section: {time.monotonic() - started:.1f} s"
          + (f"; results written to {json_path}" if json_path is not None else ""))
    return 0


def main_with_draft(argv: Optional[List[str]] = None) -> int:
    """main() plus the draft section: --draft runs both, --draft-only just the draft one."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--draft", action="store_true")
    ap.add_argument("--draft-only", action="store_true")
    ap.add_argument("--draft-rounds", type=int, default=15)
    ap.add_argument("--draft-calls", type=int, default=20_000)
    ap.add_argument("--draft-json", default=str(DRAFT_JSON))
    args, rest = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    if "-h" in rest or "--help" in rest:
        print("draft section: --draft (after the read-path benchmark) or --draft-only; "
              "--draft-rounds N (15), --draft-calls N (20000), --draft-json PATH\n")
        return main(rest)  # argparse prints the rest and exits
    if args.draft_rounds < 1 or args.draft_calls < 1:
        ap.error("--draft-rounds and --draft-calls must be positive")
    status = 0
    if not args.draft_only:
        status = main(rest)
        if not args.draft:
            return status
        print()
        print("=" * 100)
        print()
    draft_status = run_draft_section(args.draft_rounds, args.draft_calls, Path(args.draft_json))
    return status or draft_status


if __name__ == "__main__":
    sys.exit(main_with_draft())
