"""``mptcp top``: a live, per-subflow view of every MPTCP connection in the namespace.

Standard library only. Each refresh takes one :func:`mptcp.connections` snapshot;
with ``-p`` each row also names the processes holding the connection (``/proc``,
scanned only when a connection appears: :class:`mptcp._procs.SocketOwners`);
throughput is the difference of a subflow's ``tcp_info`` byte counters
(``bytes_acked`` for what it sent, ``bytes_received`` for what it received) between
two snapshots, divided by the time between them. Rows are sorted by traffic.

On a terminal the view redraws in place (alternate screen, plain ANSI escapes, the
terminal in cbreak mode so ``q`` is read at once) and restores the terminal on
``q``, Ctrl-C, SIGTERM or SIGHUP. Without a terminal it prints one frame per
interval, like ``top -b``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, TextIO, Tuple

from .._addr import hostport, token_hex
from .._records import Address
from ._shared import (Stop, human_bytes, opt, positive_float, processes_json, processes_text,
                      stop_on_signals, token_json)

__all__ = ["add_parser", "SubflowRate", "Sampler", "render", "run"]


def add_parser(sub: Any) -> None:
    top = sub.add_parser("top", help="live per-subflow throughput and RTT, sorted by traffic")
    top.add_argument("--interval", type=positive_float, default=1.0,
                     help="seconds between refreshes (default 1.0)")
    top.add_argument("--once", action="store_true",
                     help="print one snapshot (rates over one interval) and exit")
    top.add_argument("--json", action="store_true", help="snapshots as JSON, one per line")
    top.add_argument("-p", "--processes", action="store_true",
                     help="the processes holding each connection, like 'ss -p'")
    top.set_defaults(func=lambda args: run(args.interval, once=args.once, as_json=args.json,
                                           processes=args.processes))

# Alternate screen + hidden cursor, and back.
_ENTER = "\x1b[?1049h\x1b[?25l"
_LEAVE = "\x1b[?25h\x1b[?1049l"
_HOME = "\x1b[H"
_EOL = "\x1b[K"
_BELOW = "\x1b[J"


class SubflowRate(NamedTuple):
    """One subflow in a ``mptcp top`` snapshot.

    ``tx_rate``/``rx_rate`` are bytes per second over the last interval
    (``bytes_acked``/``bytes_received`` deltas), ``None`` for a subflow first seen
    in this snapshot. ``fallback`` is True when the subflow's connection fell back
    to plain TCP (``MPTCPInfo.fallback``; ``None`` if the kernel did not say).
    ``processes`` holds the processes holding the connection's socket
    (``mptcp._procs.Process``) when the sampler looks them up, else ``None``.
    """

    token: Optional[int]
    local: Optional[Address]
    remote: Optional[Address]
    backup: Optional[bool]
    loc_id: Optional[int]
    rem_id: Optional[int]
    rtt_us: Optional[int]
    snd_cwnd: Optional[int]
    bytes_acked: Optional[int]
    bytes_received: Optional[int]
    tx_rate: Optional[float]
    rx_rate: Optional[float]
    fallback: Optional[bool] = None
    processes: Optional[Tuple[Any, ...]] = None


_Key = Tuple[Optional[int], Optional[Address], Optional[Address]]


def _rate(now: Optional[int], before: Optional[int], dt: float) -> Optional[float]:
    if now is None or before is None or dt <= 0 or now < before:
        return None
    return (now - before) / dt


def _traffic(r: SubflowRate) -> float:
    return (r.tx_rate or 0.0) + (r.rx_rate or 0.0)


class Sampler:
    """Takes :func:`mptcp.connections` snapshots and turns counters into rates.

    Parameters
    ----------
    source
        Returns the connections to show; :func:`mptcp.connections` by default.
    clock
        A monotonic clock in seconds.
    processes
        Also look up the processes holding each connection.
    """

    def __init__(self, source: Optional[Callable[[], List[Any]]] = None,
                 clock: Callable[[], float] = time.monotonic, processes: bool = False) -> None:
        if source is None:
            from .. import connections

            source = connections
        self._source = source
        self._clock = clock
        self._owners: Optional[Any] = None
        if processes:
            from .._procs import SocketOwners

            self._owners = SocketOwners()
        self._prev: Dict[_Key, Tuple[Optional[int], Optional[int]]] = {}
        self._prev_t: Optional[float] = None
        self.connections = 0
        """How many connections the last snapshot had."""
        self.elapsed = 0.0
        """Seconds between the last two snapshots (0 after the first)."""

    def sample(self) -> List[SubflowRate]:
        """One snapshot: every subflow with its rates, busiest first.

        Raises what :func:`mptcp.connections` raises.
        """
        conns = self._source()
        now = self._clock()
        dt = 0.0 if self._prev_t is None else now - self._prev_t
        seen: Dict[_Key, Tuple[Optional[int], Optional[int]]] = {}
        rows: List[SubflowRate] = []
        owners = None if self._owners is None else self._owners.owners(c.inode for c in conns)
        for c in conns:
            fallback = None if c.info is None else c.info.fallback
            procs = None if owners is None else owners.get(c.inode, ())
            for s, d in zip(c.subflows, c.subflow_diag):
                key: _Key = (c.token, s.local, s.remote)
                before = self._prev.get(key)
                seen[key] = (s.bytes_acked, s.bytes_received)
                rows.append(SubflowRate(
                    c.token, s.local, s.remote, s.backup, d.loc_id, d.rem_id, s.rtt_us,
                    s.snd_cwnd, s.bytes_acked, s.bytes_received,
                    None if before is None else _rate(s.bytes_acked, before[0], dt),
                    None if before is None else _rate(s.bytes_received, before[1], dt),
                    fallback, procs,
                ))
        self._prev = seen
        self._prev_t = now
        self.connections = len(conns)
        self.elapsed = dt
        rows.sort(key=lambda r: (-_traffic(r), r.token or 0, r.local or ("", 0)))
        return rows


def _ms(us: Optional[int]) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def render(rows: List[SubflowRate], connections: int, interval: float,
           width: int = 200, height: int = 0) -> List[str]:
    """The text frame for ``rows``: a title, a header and one line per subflow.

    Lines are cut to ``width``; with ``height > 0`` at most ``height`` lines.
    """
    lw = max([len(hostport(r.local)) for r in rows] + [5])
    rw = max([len(hostport(r.remote)) for r in rows] + [6])
    title = (f"mptcp top - {connections} connection{'s' if connections != 1 else ''}, "
             f"{len(rows)} subflow{'s' if len(rows) != 1 else ''} - every {interval:g}s"
             " - B = backup, F = fallback to TCP - q quits")
    header = (f"{'TOKEN':<8}  {'LOCAL':<{lw}}  {'REMOTE':<{rw}}  BF  {'IDS':<7}"
              f"  {'TX/s':>12}  {'RX/s':>12}  {'RTT ms':>8}  {'CWND':>6}")
    if any(r.processes is not None for r in rows):
        header += "  PROCESS"
    lines = [title, header]
    for r in rows:
        token = token_hex(r.token)
        mark = ("B" if r.backup else " ") + ("F" if r.fallback else " ")
        ids = f"{opt(r.loc_id)}/{opt(r.rem_id)}"
        lines.append(
            f"{token:<8}  {hostport(r.local):<{lw}}  {hostport(r.remote):<{rw}}  {mark}  {ids:<7}"
            f"  {human_bytes(r.tx_rate, '/s'):>12}  {human_bytes(r.rx_rate, '/s'):>12}"
            f"  {_ms(r.rtt_us):>8}  {opt(r.snd_cwnd):>6}"
            f"{'  ' + processes_text(r.processes) if r.processes else ''}"
            f"{'  fallback' if r.fallback else ''}")
    if height > 0:
        lines = lines[:height]
    return [line[:width] for line in lines]


def snapshot_json(rows: List[SubflowRate], connections: int, elapsed: float) -> Dict[str, Any]:
    """The ``--json`` form of one snapshot."""
    return {
        "interval": elapsed,
        "connections": connections,
        "subflows": [
            {**_row_json(r),
             "token": token_json(r.token),
             "local": None if r.local is None else list(r.local),
             "remote": None if r.remote is None else list(r.remote)}
            for r in rows
        ],
    }


def _row_json(r: SubflowRate) -> Dict[str, Any]:
    row = r._asdict()
    procs = row.pop("processes")
    if procs is not None:  # only with -p: the default JSON stays as it was
        row["processes"] = processes_json(procs)
    return row


def _write_sample(sampler: Sampler, interval: float, as_json: bool, out: TextIO,
                  gap: str) -> None:
    rows = sampler.sample()
    if as_json:
        import json

        out.write(json.dumps(snapshot_json(rows, sampler.connections, sampler.elapsed)) + "\n")
    else:
        out.write("\n".join(render(rows, sampler.connections, interval, width=10_000)) + gap)
    out.flush()


def _once(sampler: Sampler, interval: float, as_json: bool, out: TextIO) -> int:
    sampler.sample()
    time.sleep(interval)
    _write_sample(sampler, interval, as_json, out, "\n")
    return 0


def _batch(sampler: Sampler, interval: float, as_json: bool, out: TextIO) -> int:
    sampler.sample()
    while True:
        time.sleep(interval)
        _write_sample(sampler, interval, as_json, out, "\n\n")


def _live(sampler: Sampler, interval: float, fd_in: int, out: TextIO) -> int:
    import select
    import termios
    import tty

    saved = termios.tcgetattr(fd_in)
    try:
        # cbreak keeps ISIG: Ctrl-C still raises SIGINT (KeyboardInterrupt).
        tty.setcbreak(fd_in, termios.TCSANOW)
        out.write(_ENTER)
        out.flush()
        rows = sampler.sample()  # the first frame shows tuples; rates need a second
        while True:
            try:
                size = os.get_terminal_size(out.fileno())
                # A fresh pty can report 0x0.
                width, height = size.columns or 80, size.lines or 24
            except OSError:
                width, height = 80, 24
            frame = render(rows, sampler.connections, interval, width=width, height=height)
            # Overwrite in place (no full clear, so no flicker), then clear the rest.
            out.write(_HOME + "".join(line + _EOL + "\n" for line in frame[:-1])
                      + (frame[-1] + _EOL if frame else "") + _BELOW)
            out.flush()
            deadline = time.monotonic() + interval
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([fd_in], [], [], left)
                if ready:
                    data = os.read(fd_in, 64)
                    if not data or b"q" in data or b"Q" in data:
                        return 0
            rows = sampler.sample()
    finally:
        out.write(_LEAVE)
        out.flush()
        termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)


def run(interval: float = 1.0, *, once: bool = False, as_json: bool = False,
        processes: bool = False, out: Optional[TextIO] = None,
        inp: Optional[TextIO] = None) -> int:
    """Run ``mptcp top``; returns the exit status.

    Parameters
    ----------
    interval
        Seconds between refreshes (> 0).
    once
        Print one snapshot (rates over one ``interval``) and return.
    as_json
        Print snapshots as JSON objects (one per line) instead of text.
    processes
        Name the processes holding each connection (``-p``).
    out, inp
        The output and keyboard streams (``sys.stdout``/``sys.stdin``).

    Returns
    -------
    int
        0 when quit with ``q``, Ctrl-C, SIGTERM or SIGHUP.

    Raises
    ------
    ValueError
        ``interval`` is not positive.
    MPTCPError
        :func:`mptcp.connections` failed.
    """
    if not interval > 0:
        raise ValueError(f"--interval must be > 0 seconds, not {interval}")
    out = sys.stdout if out is None else out
    inp = sys.stdin if inp is None else inp
    sampler = Sampler(processes=processes)
    try:
        with stop_on_signals():
            if once:
                return _once(sampler, interval, as_json, out)
            interactive = not as_json and out.isatty() and inp.isatty()
            if not interactive:
                return _batch(sampler, interval, as_json, out)
            return _live(sampler, interval, inp.fileno(), out)
    except (KeyboardInterrupt, Stop):
        return 0
