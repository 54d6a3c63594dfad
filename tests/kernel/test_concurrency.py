"""Threads: 8 pollers and a subflow churner on one connection; the GIL is released.

``MPTCP_CONCURRENCY_SECONDS`` (default 10) sets how long the pollers and the
churner run at least; CI may use fewer. They run on, for at most ``CHURN_GRACE``
seconds more, until the churner has opened and closed ``CHURN_CYCLES`` subflows,
a poller has seen both subflow counts and every poller has polled 100 times: the
churner's rate depends on how the GIL is shared (130-290 cycles in 3 s with the
normal build here, 1-20 with the AddressSanitizer build), so counts, not a time,
say whether the pollers saw the churn.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time


import mptcp
from mptcp._lab import Lab

SECONDS = float(os.environ.get("MPTCP_CONCURRENCY_SECONDS", "10"))
POLLERS = 8
CHURN_CYCLES = 3
CHURN_GRACE = 60.0
DOCUMENTED = (mptcp.SubflowOpenError, mptcp.MPTCPTimeoutError, mptcp.SubflowNotFoundError)
TCP_CLOSE, TCP_LISTEN = 7, 10


def test_pollers_and_churn() -> None:
    """Runs in a child process: a crash of the interpreter is this test's failure
    (with the child's fault handler output), not the end of the whole session."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(mptcp.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-X", "faulthandler", __file__], env=env,
                          capture_output=True, text=True, check=False,
                          timeout=SECONDS + CHURN_GRACE + 120)
    print(proc.stdout)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-6000:]}"
    assert "concurrency:" in proc.stdout


def _pollers_and_churn(ulab: Lab) -> None:
    srv = ulab.start_server(mode="echo")
    s = ulab.connect(port=srv.port)
    s.sendall(b"hello")
    assert s.recv(5) == b"hello"
    stop = threading.Event()
    errors: list[BaseException] = []
    polls = [0] * POLLERS
    sizes: set[int] = set()
    churn = {"opened": 0, "closed": 0, "refused": 0}
    c2 = ulab.client_addrs["v4"][1]
    s2 = ulab.server_addrs["v4"][1]

    def poller(k: int) -> None:
        try:
            with mptcp.Poller(s) as p:
                while not stop.is_set():
                    n = p.poll()
                    # one snapshot, read three ways: they must agree
                    views = [p[i] for i in range(len(p))]
                    snap = p.snapshot()
                    assert n == len(p) == len(snap) == len(views), (n, len(p), len(snap))
                    ids = [r.id for r in snap]
                    assert ids == [v.id for v in views]
                    assert len(set(ids)) == n and all(r.state not in (TCP_CLOSE, TCP_LISTEN)
                                                      for r in snap)
                    assert all(r.local is not None and r.remote is not None for r in snap)
                    if k == 0 and polls[0] % 64 == 0:
                        # the other read paths, also internally consistent
                        subs = mptcp.subflows(s)
                        assert len({r.id for r in subs}) == len(subs)
                        got = mptcp.get_sub_ids(s)
                        assert got == sorted(set(got))
                        sizes.add(len(subs))
                    polls[k] += 1
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
            stop.set()

    def churner() -> None:
        try:
            while not stop.is_set():
                try:
                    sf = ulab.run_in(ulab.client_ns, mptcp.open_sub, s, local=c2, remote=s2,
                                     timeout=2)
                    churn["opened"] += 1
                    ulab.run_in(ulab.client_ns, mptcp.close_sub, s, sf.id)
                    churn["closed"] += 1
                except DOCUMENTED:
                    churn["refused"] += 1
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
            stop.set()

    def talker() -> None:  # keep data moving while all this happens
        try:
            while not stop.is_set():
                s.sendall(b"x" * 1000)
                got = 0
                while got < 1000:
                    got += len(s.recv(1000 - got))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)
            stop.set()

    threads = [threading.Thread(target=poller, args=(k,)) for k in range(POLLERS)]
    threads += [threading.Thread(target=churner), threading.Thread(target=talker)]
    start = time.monotonic()
    for t in threads:
        t.start()
    stop.wait(SECONDS)
    grace_end = time.monotonic() + CHURN_GRACE
    while (not stop.is_set() and time.monotonic() < grace_end
           and (churn["closed"] < CHURN_CYCLES or len(sizes) < 2 or min(polls) <= 100)):
        stop.wait(0.05)
    elapsed = time.monotonic() - start
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    assert not errors, errors
    print(f"\nconcurrency: {elapsed:.1f} s, polls per thread {polls}, total {sum(polls)}, "
          f"churn {churn}, subflow counts seen {sorted(sizes)}")
    assert all(n > 100 for n in polls), polls
    assert churn["opened"] >= CHURN_CYCLES and churn["closed"] >= CHURN_CYCLES, churn
    assert {1, 2} <= sizes or len(sizes) >= 2, sizes  # the pollers saw the churn
    s.sendall(b"end")
    assert s.recv(3) == b"end"
    s.close()


# --------------------------------------------------------------------------------
# The GIL is released while a thread is blocked inside the core
# --------------------------------------------------------------------------------
_GIL_CHILD = r"""
import json, socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
import mptcp
from mptcp import _mptcp as core
assert mptcp.backend() == "draft", mptcp.backend()
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
lst.bind(("127.0.0.1", 0)); lst.listen()
cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
cli.connect(lst.getsockname()); srv, _ = lst.accept()
out = {}
def blocked():
    t = time.monotonic()
    out["ids"] = mptcp.get_sub_ids(cli)   # one MPTCP_GET_SUB_IDS getsockopt: sleeps in libc
    out["blocked_s"] = time.monotonic() - t
t = threading.Thread(target=blocked)
t.start()
time.sleep(0.05)                          # the other thread is now inside the getsockopt
ticks = 0
start = time.monotonic()
while t.is_alive():                       # pure Python, needs the GIL for every bytecode
    ticks += 1
out["ticks"] = ticks
out["busy_s"] = time.monotonic() - start
print(json.dumps(out))
"""


def test_gil_released_in_core_getsockopt(tmp_path: pathlib.Path) -> None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "draftkernel"))
    try:
        from build import build_double, child_env  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    so = build_double()
    src = str(pathlib.Path(mptcp.__file__).resolve().parents[1])
    env = child_env(so, {"MPTCP_BACKEND": "draft", "DRAFT_DOUBLE_SLEEP_MS": "1000"})
    proc = subprocess.run([sys.executable, "-c", _GIL_CHILD, src], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    print(f"\nGIL: blocked in core {out['blocked_s']:.3f} s; the Python thread counted "
          f"{out['ticks']} iterations in {out['busy_s']:.3f} s meanwhile")
    assert out["ids"] == [1]
    assert out["blocked_s"] >= 0.95  # really inside the sleeping getsockopt
    # Had the core held the GIL, the loop could not run while the call sleeps.
    assert out["busy_s"] >= 0.8 and out["ticks"] > 100_000, out


# The poll sleeps in getsockopt (LD_PRELOAD shim slow_full_info.c) inside the core,
# first with no other Python thread, then while the main thread spins.
_SLOW_POLL_CHILD = r"""
import json, socket, sys, threading, time
sys.path.insert(0, sys.argv[1])
import mptcp
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
sock.connect((sys.argv[2], int(sys.argv[3])))
out = {"threads_at_start": threading.active_count()}
t0 = time.monotonic()
poller = mptcp.Poller(sock)            # polls once: the only thread, GIL kept
out["n_alone"] = poller.poll()
out["alone_s"] = time.monotonic() - t0
window = {}
def poll():
    window["in"] = time.monotonic()
    window["n"] = poller.poll()
    window["out"] = time.monotonic()
t = threading.Thread(target=poll)
stamps = []
ticks = 0
t.start()
while t.is_alive():                    # pure Python: runs only while it holds the GIL
    ticks += 1
    if ticks % 256 == 0:
        stamps.append(time.monotonic())
t.join()
# Stamps well inside the sleeping call (50 ms margins): none if the GIL were held.
inside = [x for x in stamps if window["in"] + 0.05 < x < window["out"] - 0.05]
out.update(n_threaded=window["n"], threaded_s=window["out"] - window["in"],
           stamps_inside=len(inside), inside_span_s=(max(inside) - min(inside)) if inside else 0)
print(json.dumps(out))
"""


def test_gil_released_in_poll_only_when_another_thread_exists(ulab: Lab) -> None:
    """Poller.poll works while it is the only Python thread (it keeps the GIL then:
    tests/unit/test_gil_policy.py) and releases the GIL as soon as another thread
    exists, though the Poller was made before that thread: the check is per call."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "draftkernel"))
    try:
        from build import build_preload, child_env
    finally:
        sys.path.pop(0)
    so = build_preload(pathlib.Path(__file__).resolve().parent / "slow_full_info.c",
                       "slow_full_info.so")
    srv = ulab.start_server()
    src = str(pathlib.Path(mptcp.__file__).resolve().parents[1])
    env = child_env(so, {"SLOW_FULL_INFO_MS": "400"})
    proc = subprocess.run(["ip", "netns", "exec", ulab.client_ns, sys.executable, "-c",
                           _SLOW_POLL_CHILD, src, ulab.server_addrs["v4"][0], str(srv.port)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    print(f"\nslow poll: alone {out['alone_s']:.3f} s; with a spinning thread "
          f"{out['threaded_s']:.3f} s, {out['stamps_inside']} spinner stamps inside it "
          f"spanning {out['inside_span_s']:.3f} s")
    assert out["threads_at_start"] == 1
    assert out["n_alone"] == 1 and out["n_threaded"] == 1
    assert out["alone_s"] >= 0.75          # at least two sleeping calls (construction, poll)
    assert out["threaded_s"] >= 0.39       # really inside the sleeping getsockopt
    assert out["stamps_inside"] >= 50 and out["inside_span_s"] >= 0.25, out


if __name__ == "__main__":
    with Lab(prefix="mptcp", userspace_pm=True, endpoint=False) as _lab:
        _pollers_and_churn(_lab)
