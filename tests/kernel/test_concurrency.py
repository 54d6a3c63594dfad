"""Threads: 8 pollers and a subflow churner on one connection; the GIL is released.

``MPTCP_CONCURRENCY_SECONDS`` (default 10) sets how long the pollers and the
churner run; CI may use fewer.
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
from mptcp.lab import Lab

SECONDS = float(os.environ.get("MPTCP_CONCURRENCY_SECONDS", "10"))
POLLERS = 8
DOCUMENTED = (mptcp.SubflowOpenError, mptcp.MPTCPTimeoutError, mptcp.SubflowNotFoundError)
TCP_CLOSE, TCP_LISTEN = 7, 10


def test_pollers_and_churn() -> None:
    """Runs in a child process: a crash of the interpreter is this test's failure
    (with the child's fault handler output), not the end of the whole session."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(mptcp.__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-X", "faulthandler", __file__], env=env,
                          capture_output=True, text=True, timeout=SECONDS + 120, check=False)
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
    for t in threads:
        t.start()
    stop.wait(SECONDS)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    assert not errors, errors
    print(f"\nconcurrency: {SECONDS:g} s, polls per thread {polls}, total {sum(polls)}, "
          f"churn {churn}, subflow counts seen {sorted(sizes)}")
    assert all(n > 100 for n in polls), polls
    assert churn["opened"] >= 3 and churn["closed"] >= 3, churn
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


def test_gil_released_in_poll_under_contention(ulab: Lab) -> None:
    """A pure-Python thread keeps a steady rate while 4 threads poll in the core."""
    srv = ulab.start_server(mode="echo")
    s = ulab.connect(port=srv.port)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    stop = threading.Event()
    count = [0]

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    def poll() -> None:
        with mptcp.Poller(s) as p:
            while not stop.is_set():
                p.poll()

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join()
    alone = count[0]
    stop.clear()
    count[0] = 0
    threads = [threading.Thread(target=spin)] + [threading.Thread(target=poll) for _ in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.3)
    stop.set()
    for th in threads:
        th.join()
    print(f"\nspin alone {alone}, spin with 4 pollers {count[0]}")
    assert count[0] > alone / 20  # it progresses, not starved
    s.close()


if __name__ == "__main__":
    with Lab(prefix="mptcp", userspace_pm=True, endpoint=False) as _lab:
        _pollers_and_churn(_lab)
