"""``mptcp demo``: a real two-path MPTCP transfer in private namespaces, steered live.

Builds a two-path lab, starts a transfer over path 1, opens a backup subflow over
path 2 with ``open_sub``, shows the subflows through the library (cross-checked
against ``ss``), takes path 1 down so traffic moves to the backup, verifies the
received bytes' SHA-256, and removes every namespace it made (also on Ctrl-C).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, TextIO, Tuple

import mptcp

from ._shared import positive_int

if TYPE_CHECKING:
    from .._lab import Lab
    from .._recording import Recording

__all__ = ["add_parser", "run", "missing_requirements", "MAX_SIZE_MIB"]

#: The largest ``--size``: the transfer is paced at about 4 MB/s to be watched.
MAX_SIZE_MIB = 4096


def _size(text: str) -> int:
    return positive_int(text, MAX_SIZE_MIB)


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="a live two-path MPTCP transfer in private namespaces (root)")
    demo.add_argument("--size", type=_size, default=24, metavar="MIB",
                      help=f"MiB to transfer, 1-{MAX_SIZE_MIB} (default 24)")
    demo.add_argument("--record", metavar="FILE",
                      help="record the transfer to FILE (CSV, as 'mptcp record' writes it)")
    demo.add_argument("--plot", metavar="OUT",
                      help="draw the recorded transfer to OUT (.png or .svg; needs 'mptcp[plot]')")
    demo.set_defaults(func=lambda args: run(sys.stdout, size_mib=args.size,
                                            record_to=args.record, plot_to=args.plot))

CHUNK = 64 * 1024


def missing_requirements() -> Optional[str]:
    """What this machine lacks for the demo, in one sentence, or None."""
    if os.geteuid() != 0:
        return "mptcp demo needs root (it creates network namespaces and veth pairs): run it as root"
    path = "/proc/sys/net/mptcp/enabled"
    if not os.path.exists(path):
        return "this kernel has no MPTCP (no /proc/sys/net/mptcp): Linux 5.6+ built with CONFIG_MPTCP is needed"
    with open(path) as f:
        if f.read().strip() != "1":
            return "MPTCP is disabled: run 'sysctl -w net.mptcp.enabled=1'"
    if not os.path.exists("/proc/sys/net/mptcp/pm_type") and not os.path.exists(
            "/proc/sys/net/mptcp/path_manager"):
        return "this kernel has no userspace path manager (Linux 5.19+ is needed for open_sub)"
    return None


class _Sender(threading.Thread):
    """Sends `total` bytes at a modest pace so the demo can be watched."""

    def __init__(self, sock: Any, total: int, pace: float) -> None:
        super().__init__(daemon=True)
        self.sock, self.total, self.pace = sock, total, pace
        self.sha = hashlib.sha256()
        self.sent = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while self.sent < self.total:
                chunk = os.urandom(min(CHUNK, self.total - self.sent))
                self.sock.sendall(chunk)
                self.sha.update(chunk)
                self.sent += len(chunk)
                time.sleep(self.pace)
            self.sock.shutdown(2 - 1)  # SHUT_WR: the server then reports its digest
        except BaseException as err:  # reported by the main thread
            self.error = err


def _table(lab: Lab, sock: Any) -> List[str]:
    rows = []
    subs: List[Any] = mptcp.subflows(sock)  # ids, tuples and counters are set on 6.5+
    for s in sorted(subs, key=lambda s: s.id):
        sf = lab.run_in(lab.client_ns, mptcp.get_sub_tuple, sock, s.id)
        rows.append(
            f"  id {s.id:<2} {s.local[0]:>10}:{s.local[1]:<5} -> {s.remote[0]}:{s.remote[1]:<5}"
            f" {'backup' if sf.backup else 'active':<6} rtt {s.rtt_us / 1000:6.2f} ms"
            f"  cwnd {s.snd_cwnd:<4} acked {s.bytes_acked / 2**20:7.2f} MiB"
        )
    return rows


def _watch(lab: Lab, sock: Any, out: TextIO, seconds: float, until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        print("\n".join(_table(lab, sock)), file=out, flush=True)
        print("", file=out, flush=True)
        if until():
            return
        time.sleep(0.5)


class _Recorder:
    """The demo's optional recording: started in the client's namespace, saved and
    drawn (with ``marks``: what the demo did, when) once the transfer is over."""

    def __init__(self, lab: Lab, out: TextIO, record_to: Optional[str],
                 plot_to: Optional[str]) -> None:
        self.out, self.record_to, self.plot_to = out, record_to, plot_to
        self.marks: List[Tuple[float, str]] = []
        self.rec: Optional[Recording] = None
        if record_to or plot_to:
            # The sampler thread lives in the namespace of the thread that starts it.
            self.rec = lab.run_in(lab.client_ns, mptcp.record, interval=0.1)
            print("recording the client's subflows every 0.1 s", file=out)

    def mark(self, text: str) -> None:
        if self.rec is not None and self.rec.start_monotonic is not None:
            self.marks.append((time.monotonic() - self.rec.start_monotonic, text))

    def __enter__(self) -> "_Recorder":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        rec = self.rec
        if rec is None:
            return
        rec.__exit__(exc_type, exc, tb)
        if exc is not None:
            return
        if rec.events_error:
            print(f"recording: {rec.events_error}", file=self.out)
        if self.record_to:
            rec.save(self.record_to)
            print(f"recorded {len(rec.samples)} rows and {len(rec.events)} events -> "
                  f"{self.record_to}", file=self.out)
        if self.plot_to:
            mptcp.plot(rec, self.plot_to, marks=self.marks)
            print(f"plot -> {self.plot_to}", file=self.out)


def run(out: TextIO, *, size_mib: int = 24, record_to: Optional[str] = None,
        plot_to: Optional[str] = None) -> int:
    """Run the demo; returns the process exit code.

    ``record_to`` saves a recording of the client's side (the files ``mptcp
    record`` writes); ``plot_to`` draws it, with the moment path 1 goes down marked.

    Raises ``ValueError`` for a ``size_mib`` outside 1-:data:`MAX_SIZE_MIB`, before
    any namespace is made.
    """
    if isinstance(size_mib, bool) or not isinstance(size_mib, int):
        raise TypeError(f"size_mib must be an int, not {type(size_mib).__name__}")
    if not 1 <= size_mib <= MAX_SIZE_MIB:
        raise ValueError(f"--size {size_mib} is outside 1-{MAX_SIZE_MIB} MiB")
    from .._lab import Lab

    problem = missing_requirements()
    if problem:
        raise SystemExit(f"mptcp demo: {problem}")
    if plot_to:
        from .._plot import require_matplotlib

        require_matplotlib()  # before the transfer, not after it
    with Lab(prefix="mptcpdemo", userspace_pm=True, endpoint=False) as lab, \
            _Recorder(lab, out, record_to, plot_to) as recorder:
        c1, c2 = lab.client_addrs["v4"]
        print(f"lab: client {lab.client_ns} ({c1}, {c2}) <-> server {lab.server_ns} "
              f"({', '.join(lab.server_addrs['v4'])}); client uses the userspace path manager",
              file=out)
        server = lab.start_server()
        sock = lab.connect(port=server.port, timeout=30)
        sender = _Sender(sock, size_mib * 2**20, pace=0.015)  # ~4 MB/s: slow enough to watch
        sender.start()
        lab.wait_for(lambda: (mptcp.info(sock).bytes_acked or 0) > 0, what="first data acked")

        s2 = lab.server_addrs["v4"][1]
        backup = lab.run_in(lab.client_ns, mptcp.open_sub, sock, local=c2,
                            remote=(s2, server.port), backup=True)
        print(f"open_sub -> {backup}", file=out)
        print("\nsubflows through the library (path 2 is a backup subflow):", file=out)
        _watch(lab, sock, out, 1.0, lambda: False)

        ours = sorted((s.local, s.remote) for s in mptcp.subflows(sock))
        theirs = sorted((s["local"], s["remote"]) for s in lab.ss_subflows(lab.client_ns)
                        if s["state"] == "ESTAB")
        if ours != theirs:
            raise RuntimeError(f"library and ss disagree: {ours} != {theirs}")
        print(f"cross-check with ss -tin: the same {len(ours)} subflow tuples", file=out)

        print("\ntaking path 1 down (ip link set c1 down): traffic moves to the backup", file=out)
        recorder.mark("path 1 down")
        lab.ip(lab.client_ns, "link", "set", "c1", "down")
        before = {s.id: s.bytes_acked for s in mptcp.subflows(sock)}
        _watch(lab, sock, out, 15.0, lambda: any(
            s.id == backup.id and (s.bytes_acked or 0) > (before.get(s.id) or 0) + 2**20
            for s in mptcp.subflows(sock)))

        nbytes, digest = server.wait_result(timeout=120)
        sender.join(5)
        if sender.error is not None:
            raise RuntimeError(f"sender failed: {sender.error}")
        sent = sender.sha.hexdigest()
        ok = nbytes == sender.sent and digest == sent
        print(f"received {nbytes} bytes, sha256 {digest[:16]}... "
              f"{'matches' if ok else 'DOES NOT MATCH'} what was sent", file=out)
        sock.close()
    print("namespaces removed", file=out)
    return 0 if ok else 1
