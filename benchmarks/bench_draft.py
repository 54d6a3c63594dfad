#!/usr/bin/env python3
"""Draft-backend read benchmark: ``get_sub_ids``/``get_sub_tuple`` against a C loop.

No draft-API kernel exists here, so both sides run against the LD_PRELOAD test
double (``tests/draftkernel/draft_double.c``), which answers each draft option with
one real ``getsockopt`` on the socket (its classification) plus its own table
lookup: both sides pay exactly the same double. Method as ``bench_read.py``:
a C loop (``gcc -O2``, compiled from the source
below) makes the same calls with the same buffer sizes on the same fd, rounds are
interleaved (C, library, C, library, ...), and the median of the per-round ratios
(library time per call / C time per call) is reported.

    python benchmarks/bench_draft.py [--rounds N] [--calls N] [--json PATH]

Pairs (library call vs C loop):

* ``_draft.get_sub_ids(fd)``    vs one GET_SUB_IDS (512-byte buffer)
* ``_draft.get_sub_tuple(fd, 1)`` vs GET_SUB_TUPLE (57 bytes) + GET_SUB_IDS (512):
  the library reads the tuple, then the status bits
* ``mptcp.get_sub_ids(sock)`` and ``mptcp.get_sub_tuple(sock, 1)`` (public layer,
  informational) vs the same C loops

The parent builds the double and the C loop, runs the measurement in a child with
``LD_PRELOAD`` and ``MPTCP_BACKEND=draft``, prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import _which

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_JSON = HERE / "results" / "bench_draft.json"

C_SOURCE = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* n x GET_SUB_IDS (66) with a 512-byte buffer; returns elapsed ns, -errno on error. */
int64_t loop_sub_ids(int fd, long n)
{
    uint8_t buf[512];
    socklen_t len;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        len = sizeof(buf);
        buf[0] = 0;
        if (getsockopt(fd, IPPROTO_TCP, 66, buf, &len) < 0)
            return -1;
    }
    return now_ns() - t0;
}

/* n x (GET_SUB_TUPLE (68) of id with 57 bytes + GET_SUB_IDS with 512 bytes). */
int64_t loop_sub_tuple(int fd, int id, long n)
{
    uint8_t tup[57], ids[512];
    socklen_t len;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        memset(tup, 0, sizeof(tup));
        tup[0] = (uint8_t)id;
        len = sizeof(tup);
        if (getsockopt(fd, IPPROTO_TCP, 68, tup, &len) < 0)
            return -1;
        len = sizeof(ids);
        ids[0] = 0;
        if (getsockopt(fd, IPPROTO_TCP, 66, ids, &len) < 0)
            return -1;
    }
    return now_ns() - t0;
}
"""


# --------------------------------------------------------------------------------
# Parent: build, spawn, report
# --------------------------------------------------------------------------------
def _pkg_root() -> str:
    """Where the mptcp that ``import mptcp`` finds lives: the child imports the same."""
    return str(Path(_which.load().__file__).resolve().parents[1])


def build_cloop(outdir: Path) -> Path:
    src = outdir / "draft_cloop.c"
    so = outdir / "draft_cloop.so"
    src.write_text(C_SOURCE)
    proc = subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-o", str(so),
                           str(src)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gcc failed building the C loop:\n{proc.stderr}")
    return so


def bench_draft(rounds: int = 15, calls: int = 20_000,
                json_path: Optional[Path] = DEFAULT_JSON) -> Dict[str, Any]:
    """Run the benchmark in a child under the double; print and return the results."""
    print(_which.describe(_which.load()), flush=True)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.draftkernel.build import build_double, child_env

    double = build_double()
    with tempfile.TemporaryDirectory(prefix="mptcp-bench-draft-") as tmp:
        cloop = build_cloop(Path(tmp))
        env = child_env(double, {"MPTCP_BACKEND": "draft"})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [_pkg_root(), env.get("PYTHONPATH", "")] if p)
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(cloop),
             "--rounds", str(rounds), "--calls", str(calls)],
            env=env, capture_output=True, text=True, check=False, timeout=1800,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child exited {proc.returncode}:\n{proc.stderr}")
    result: Dict[str, Any] = json.loads(proc.stdout)
    result["meta"].update({
        "double": str(double),
        "command": f"python {Path(__file__).relative_to(REPO)} --rounds {rounds} --calls {calls}",
    })
    print_report(result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {json_path}")
    return result


def print_report(result: Dict[str, Any]) -> None:
    meta = result["meta"]
    print(f"draft backend vs C loop under the draft double ({meta['rounds']} interleaved rounds "
          f"x {meta['calls']} calls; Python {meta['python']}, {meta['machine']})")
    print(f"{'library call':34} {'lib ns/call':>11} {'C ns/call':>10} {'median ratio':>13}")
    for p in result["pairs"]:
        print(f"{p['name']:34} {p['lib_ns']:11.0f} {p['c_ns']:10.0f} {p['ratio_median']:12.2f}x")


# --------------------------------------------------------------------------------
# Child: runs under LD_PRELOAD=draft_double.so
# --------------------------------------------------------------------------------
def _loop0(fn: Callable[..., Any], *args: Any) -> Callable[[int], int]:
    def run(n: int) -> int:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn(*args)
        return time.perf_counter_ns() - t0

    return run


def child(cloop_path: str, rounds: int, calls: int) -> Dict[str, Any]:
    import socket

    import mptcp
    from mptcp._backends import draft as _draft

    assert "draft_double" in os.environ.get("LD_PRELOAD", ""), "run through bench_draft()"
    assert mptcp.backend() == "draft", mptcp.backend()
    lib = ctypes.CDLL(cloop_path)
    lib.loop_sub_ids.restype = ctypes.c_int64
    lib.loop_sub_ids.argtypes = [ctypes.c_int, ctypes.c_long]
    lib.loop_sub_tuple.restype = ctypes.c_int64
    lib.loop_sub_tuple.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long]

    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    cli.connect(lst.getsockname())
    srv, _ = lst.accept()
    fd = cli.fileno()
    # Two subflows, as in bench_read: the initial one and one opened through the API.
    mptcp.open_sub(cli)
    assert _draft.get_sub_ids(fd) == [1, 2]
    assert _draft.get_sub_tuple(fd, 1).local == cli.getsockname()

    def c_ids(n: int) -> int:
        ns = int(lib.loop_sub_ids(fd, n))
        if ns < 0:
            raise OSError(ctypes.get_errno(), "C loop_sub_ids failed")
        return ns

    def c_tuple(n: int) -> int:
        ns = int(lib.loop_sub_tuple(fd, 1, n))
        if ns < 0:
            raise OSError(ctypes.get_errno(), "C loop_sub_tuple failed")
        return ns

    pairs: List[Dict[str, Any]] = [
        {"name": "_draft.get_sub_ids(fd)", "lib": _loop0(_draft.get_sub_ids, fd), "c": c_ids,
         "c_calls": "GET_SUB_IDS"},
        {"name": "_draft.get_sub_tuple(fd, 1)", "lib": _loop0(_draft.get_sub_tuple, fd, 1),
         "c": c_tuple, "c_calls": "GET_SUB_TUPLE + GET_SUB_IDS"},
        {"name": "mptcp.get_sub_ids(sock)", "lib": _loop0(mptcp.get_sub_ids, cli), "c": c_ids,
         "c_calls": "GET_SUB_IDS"},
        {"name": "mptcp.get_sub_tuple(sock, 1)", "lib": _loop0(mptcp.get_sub_tuple, cli, 1),
         "c": c_tuple, "c_calls": "GET_SUB_TUPLE + GET_SUB_IDS"},
    ]
    for p in pairs:  # warm up
        p["lib"](calls // 10)
        p["c"](calls // 10)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for p in pairs:
            p["ratios"], p["lib_samples"], p["c_samples"] = [], [], []
        for _ in range(rounds):
            for p in pairs:
                c_ns = p["c"](calls) / calls
                lib_ns = p["lib"](calls) / calls
                p["c_samples"].append(c_ns)
                p["lib_samples"].append(lib_ns)
                p["ratios"].append(lib_ns / c_ns)
    finally:
        if gc_was:
            gc.enable()
    out = []
    for p in pairs:
        out.append({
            "name": p["name"],
            "c_calls": p["c_calls"],
            "lib_ns": statistics.median(p["lib_samples"]),
            "c_ns": statistics.median(p["c_samples"]),
            "ratio_median": statistics.median(p["ratios"]),
            "ratio_min": min(p["ratios"]),
            "ratio_max": max(p["ratios"]),
        })
    srv.close()
    cli.close()
    lst.close()
    return {
        "meta": {
            "rounds": rounds,
            "calls": calls,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "pairs": out,
    }


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--child", metavar="CLOOP_SO", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        json.dump(child(args.child, args.rounds, args.calls), sys.stdout)
        return 0
    bench_draft(args.rounds, args.calls, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
