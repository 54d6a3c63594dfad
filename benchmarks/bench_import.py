#!/usr/bin/env python3
"""Import cost: ``python -c "import mptcp"`` against ``python -c "import socket"``.

Both are fresh interpreters started the same way (same executable, environment and
``site``), rounds interleaved (socket, mptcp, socket, mptcp, ...), wall time from
``time.perf_counter_ns`` around each ``subprocess.run``. The figure that matters is
the difference of the medians: what ``import mptcp`` adds to a program that already
imports ``socket``. Target: at most 30 ms.

Also lists what ``import mptcp`` loads beyond ``import socket`` (from ``sys.modules``)
and fails if a module that must load lazily is among them (asyncio, the exporter's
prometheus_client, ipaddress, subprocess, ...), with ``-X importtime``'s biggest
entries for orientation.

    python benchmarks/bench_import.py [--rounds 40] [--json PATH]

Measures the ``mptcp`` that ``import mptcp`` finds with this interpreter and
environment (the installed package, or ``PYTHONPATH=src`` after an in-place build)
and says which; the interpreters start in ``benchmarks/``, so the current directory
cannot change which one is found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import _which

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_MS = 30.0
# Must not be imported by ``import mptcp``: each is loaded by the piece that needs it.
MUST_BE_LAZY = [
    "asyncio", "prometheus_client", "ipaddress", "subprocess", "concurrent.futures",
    "http.server", "json", "argparse", "ctypes", "mptcp.pm", "mptcp.diag", "mptcp._events",
    "mptcp._netlink", "mptcp._lab", "mptcp.cli", "mptcp.exporter",
]


def _env() -> Dict[str, str]:
    return dict(os.environ)


def _time_once(code: str, env: Dict[str, str]) -> float:
    t0 = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=HERE)
    return (time.perf_counter_ns() - t0) / 1e6


def _loaded(code: str, env: Dict[str, str]) -> List[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        env=env, check=True, capture_output=True, text=True, cwd=HERE).stdout
    return out.split()


def _importtime_top(env: Dict[str, str], n: int = 8) -> List[str]:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import socket; import mptcp"],
                         env=env, check=True, capture_output=True, text=True, cwd=HERE).stderr
    rows = []
    seen_socket = False
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        if name.strip() == "socket":
            seen_socket = True
            continue
        if seen_socket:
            rows.append((int(parts[1]), name))
    rows.sort(reverse=True)
    return [f"{us / 1000:7.2f} ms  {name}" for us, name in rows[:n]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args()
    print(_which.describe(_which.load()), flush=True)
    env = _env()

    import_socket, import_mptcp = "import socket", "import mptcp"
    for code in (import_socket, import_mptcp):  # warm the page cache and .pyc files
        _time_once(code, env)
    base: List[float] = []
    lib: List[float] = []
    for _ in range(args.rounds):
        base.append(_time_once(import_socket, env))
        lib.append(_time_once(import_mptcp, env))
    med_base, med_lib = statistics.median(base), statistics.median(lib)
    added = med_lib - med_base
    # Per-round differences, as a check that the medians' difference is not a fluke.
    med_pairs = statistics.median(b - a for a, b in zip(base, lib))

    extra = sorted(set(_loaded("import socket; import mptcp", env)) - set(_loaded("import socket", env)))
    eager = [m for m in MUST_BE_LAZY if m in extra]
    where = subprocess.run([sys.executable, "-c", "import mptcp; print(mptcp.__file__)"],
                           env=env, check=True, capture_output=True, text=True, cwd=HERE).stdout.strip()

    print(f"python {platform.python_version()} ({sys.executable}); mptcp from {where}")
    print(f"{args.rounds} interleaved rounds, wall time of a fresh interpreter:")
    print(f"  python -c 'import socket'  median {med_base:7.2f} ms  "
          f"(min {min(base):.2f}, max {max(base):.2f})")
    print(f"  python -c 'import mptcp'   median {med_lib:7.2f} ms  "
          f"(min {min(lib):.2f}, max {max(lib):.2f})")
    print(f"  added by mptcp: {added:.2f} ms (median of per-round differences {med_pairs:.2f} ms); "
          f"target <= {TARGET_MS:.0f} ms: {'ok' if added <= TARGET_MS else 'MISSED'}")
    print(f"modules `import mptcp` loads beyond `import socket` ({len(extra)}): {', '.join(extra)}")
    print("largest cumulative -X importtime entries after socket:")
    for row in _importtime_top(env):
        print("  " + row)
    if eager:
        print(f"loaded eagerly but must be lazy: {', '.join(eager)}")

    result = {
        "benchmark": "import", "python": platform.python_version(), "rounds": args.rounds,
        "median_ms": {"import socket": med_base, "import mptcp": med_lib},
        "added_ms": added, "median_pair_diff_ms": med_pairs, "target_ms": TARGET_MS,
        "extra_modules": extra, "eager_but_must_be_lazy": eager,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if added <= TARGET_MS and not eager else 1


if __name__ == "__main__":
    sys.exit(main())
