"""Record what every subflow does over time: ``mptcp.record()`` and ``mptcp record``.

A recording is a series of samples and the path manager's events, on one clock:

* every ``interval`` seconds, ONE :func:`mptcp.connections` call (sock_diag) gives
  every MPTCP connection of the network namespace with its subflows'
  ``tcp_info`` counters; each subflow becomes one :class:`Sample` row;
* in between, the sampler waits on the ``mptcp_pm_events`` socket and timestamps
  each :class:`RecordedEvent` as it arrives (``time.monotonic``, like the samples).
  Events need CAP_NET_ADMIN; without it a recording has samples only and says why
  in :attr:`Recording.events_error`. When the kernel drops events (a full receive
  buffer) the gap is recorded (:attr:`Recording.events_lost`, an ``EVENTS_LOST``
  row in the events file), never hidden.

sock_diag has no subflow ids (the kernel reports them only through MPTCP_FULL_INFO
on the connection's own socket), so the ``subflow`` column is empty for the rows it
gives; a subflow is identified by its ``token``, ``local`` and ``remote``, and its
path manager address ids are in ``loc_id``/``rem_id``.

Files (the README's "Recording an experiment" documents the columns): ``FILE`` holds the samples as CSV, one
header row, one row per subflow per sample; ``<stem>.events.csv`` the events;
``<stem>.meta.json`` the start's wall-clock time, the interval, the kernel and the
counts of late and skipped samples.

The sampler never waits for the disk: :class:`CsvWriter` writes from its own
thread and refuses a sample when its backlog is full; the sampler counts it as
skipped. A tick the sampler could not take on time (it never bunches samples to
catch up) is skipped too; a sample taken more than half an interval after its
tick is counted as late.

This module is below the public layer: it imports only the records, errors, the
system view and the event monitor, never the package itself.
"""

from __future__ import annotations

import collections
import csv
import datetime
import io
import json
import math
import numbers
import os
import select
import threading
import time
from pathlib import Path
from typing import (Any, Callable, Deque, Dict, Iterable, List, NamedTuple, Optional, Protocol,
                    Sequence, TextIO, Tuple, Union)

from . import _args
from ._addr import hostport, parse_hostport, token_hex
from ._errors import EventsLostError, KernelTooOldError, MPTCPPermissionError
from ._events import EventMonitor, events
from ._procs import ProcessTreeSockets
from ._records import (Address, Connection, EventType, Progress, RecordedEvent, Sample,
                       TCPState, state_name)
from .diag import connections

__all__ = ["Recording", "CsvWriter", "Sampler", "record", "stream", "load", "open_events",
           "companion_paths", "FORMAT_VERSION", "EVENTS_LOST"]

#: Bumped when a column changes meaning; new columns are only ever appended.
FORMAT_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


#: The ``type`` written for a gap: the kernel dropped events there.
EVENTS_LOST = "EVENTS_LOST"

_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)


def _rows_of(t: float, c: Connection) -> List[Sample]:
    info = c.info
    if info is None:
        conn: Tuple[Optional[int], ...] = (None,) * 6
    else:
        conn = (info.subflows, info.bytes_sent, info.bytes_received, info.bytes_acked,
                info.bytes_retrans, info.retransmits)
    token = c.token
    return [_new(Sample, (t, token, s.id, s.local, s.remote, d.loc_id, d.rem_id, s.backup,
                          s.state, s.bytes_acked, s.bytes_received, s.bytes_sent,
                          s.bytes_retrans, s.rtt_us, s.rttvar_us, s.min_rtt_us, s.snd_cwnd,
                          s.snd_ssthresh, s.total_retrans, s.pacing_rate, s.delivery_rate)
                 + conn)
            for s, d in zip(c.subflows, c.subflow_diag)]


# -- CSV text, both ways ----------------------------------------------------------

def _flag(value: Optional[bool]) -> str:
    return "" if value is None else "1" if value else "0"


def _addr(value: Optional[Address]) -> str:
    return "" if value is None else hostport(value)


def _token_text(token: Optional[int]) -> str:
    return "" if token is None else token_hex(token)


def _sample_csv(s: Sample) -> Tuple[object, ...]:
    return (s.time, _token_text(s.token), s.subflow, _addr(s.local), _addr(s.remote), s.loc_id,
            s.rem_id, _flag(s.backup), state_name(s.state)) + s[9:]


def _event_type_text(etype: Union[EventType, int]) -> str:
    return etype.name if isinstance(etype, EventType) else str(int(etype))


def _event_csv(e: RecordedEvent) -> Tuple[object, ...]:
    return (e.time, _event_type_text(e.type), _token_text(e.token), _addr(e.local),
            _addr(e.remote), e.loc_id, e.rem_id, _flag(e.backup), e.error, e.flags, e.if_index,
            _flag(e.server_side), e.reset_reason, e.reset_flags, e.timeout, e.family)


def _lost_csv(t: float) -> Tuple[object, ...]:
    return (t, EVENTS_LOST) + (None,) * (len(RecordedEvent._fields) - 2)


# No cell can hold a comma, quote or line break (numbers, hex, host:port, enum names),
# so rows are formatted directly: twice as fast as the csv module, for the writer's
# sake at 100 samples a second. "None" can appear in no cell either (hex digits, IPv6
# text and enum names have no "N"), so it is the empty cell.
_COUNTERS_LINE = ",".join(["%s"] * (len(Sample._fields) - 9)) + "\n"
_EVENT_LINE = "%.6f," + ",".join(["%s"] * (len(RecordedEvent._fields) - 1)) + "\n"
# The text of a row's columns 2-9 (token .. state): the same every sample for a
# subflow, so it is formatted once.
_PREFIXES: Dict[Tuple[object, ...], str] = {}


def _sample_lines(samples: Iterable[Sample]) -> str:
    lines = []
    prefixes = _PREFIXES
    t, t_text = None, ""
    for s in samples:
        if s.time != t:  # the rows of one sample share their time: formatted once
            t = s.time
            t_text = "%.6f," % t
        key = s[1:9]
        prefix = prefixes.get(key)
        if prefix is None:
            if len(prefixes) > 100_000:
                prefixes.clear()
            prefix = prefixes[key] = ",".join(map(str, _sample_csv(s)[1:9])) + ","
        lines.append(t_text + prefix + _COUNTERS_LINE % s[9:])
    return "".join(lines).replace("None", "")


def _event_lines(rows: Iterable[Tuple[object, ...]]) -> str:
    return "".join([_EVENT_LINE % row for row in rows]).replace("None", "")


def _header(fields: Sequence[str]) -> str:
    return ",".join(fields) + "\n"


def _parse_state(text: str) -> int:
    return TCPState[text] if text in TCPState.__members__ else int(text)


def _parse_flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{text!r} is not 0 or 1")
    return text == "1"


def _parse_event_type(text: str) -> Union[EventType, int]:
    if text in EventType.__members__:
        return EventType[text]
    value = int(text)
    try:
        return EventType(value)
    except ValueError:
        return value


_Parser = Callable[[str], Any]
def _parse_time(text: str) -> float:
    t = float(text)
    if not math.isfinite(t):
        raise ValueError(f"{text} is not a time")
    return t


_SAMPLE_PARSERS: Dict[str, _Parser] = {
    **{name: int for name in Sample._fields},
    "time": _parse_time, "token": lambda text: int(text, 16), "local": parse_hostport,
    "remote": parse_hostport, "backup": _parse_flag, "state": _parse_state,
}
_EVENT_PARSERS: Dict[str, _Parser] = {
    **{name: int for name in RecordedEvent._fields},
    "time": _parse_time, "type": _parse_event_type, "token": lambda text: int(text, 16),
    "local": parse_hostport, "remote": parse_hostport, "backup": _parse_flag,
    "server_side": _parse_flag,
}


def _read_csv(path: Path, fields: Sequence[str], parsers: Dict[str, _Parser],
              what: str) -> List[Dict[str, Any]]:
    """Rows of a CSV file as dicts of parsed values (``None`` for empty cells).

    Raises ValueError naming the file and line for an empty, foreign or truncated
    file; OSError if it cannot be read.
    """
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if not text:
        raise ValueError(f"{path}: the file is empty (no header row): not a complete {what}")
    if not text.endswith("\n"):
        raise ValueError(f"{path}: the last line is incomplete: the {what} is truncated")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    missing = [name for name in fields if name not in header]
    if missing:
        raise ValueError(f"{path}: not an mptcp {what}: no column {', '.join(missing)}")
    index = [(name, header.index(name), parsers[name]) for name in fields]
    out = []
    for cells in reader:
        line = reader.line_num
        if len(cells) != len(header):
            raise ValueError(f"{path}: line {line} has {len(cells)} fields, not {len(header)}: "
                             f"the {what} is truncated or damaged")
        row: Dict[str, Any] = {}
        for name, i, parse in index:
            cell = cells[i]
            try:
                row[name] = None if cell == "" else parse(cell)
            except (ValueError, KeyError):
                raise ValueError(f"{path}: line {line}: {cell!r} is not a valid {name}") from None
        out.append(row)
    return out


def companion_paths(path: PathLike) -> Tuple[Path, Path, Path]:
    """The samples file and its two companions: ``(FILE, <stem>.events.csv,
    <stem>.meta.json)`` (``run.csv`` -> ``run.events.csv``, ``run.meta.json``)."""
    samples = Path(path)
    return samples, samples.with_suffix(".events.csv"), samples.with_suffix(".meta.json")


# -- the schedule -------------------------------------------------------------------

class _Ticks:
    """Tick k is due at ``first + k * interval``; a late sampler never bunches samples.

    A sample taken more than half an interval after its tick is late; one taken a
    whole interval or more after it counts as the last tick before the time it was
    taken (the ticks before are skipped). After each sample the next tick is the
    first one that can still be taken within half an interval of its time; the ones
    passed over are skipped.
    """

    def __init__(self, interval: float, first: float) -> None:
        self.interval = interval
        self.first = first
        self.k = 0
        self.late = 0
        self.skipped = 0

    @property
    def due(self) -> float:
        return self.first + self.k * self.interval

    def taken(self, woke: float, done: float) -> None:
        """The due tick was sampled from ``woke`` to ``done``: account, move on."""
        if woke - self.due > self.interval / 2:
            self.late += 1
        if woke - self.due >= self.interval:
            # After a stall (a stopped process, a long drain of events) the sample
            # belongs to the last tick before it, and the next tick is not due at once.
            current = math.floor((woke - self.first) / self.interval)
            self.skipped += current - self.k
            self.k = current
        self.k += 1
        behind = done - self.due
        if behind > self.interval / 2:
            passed = math.floor(behind / self.interval + 0.5)
            self.skipped += passed
            self.k += passed


# -- the sampler ----------------------------------------------------------------------

#: Seconds after which a connection no sample has seen is forgotten (its events
#: arrive within moments of its last sample).
_FORGET_AFTER = 60.0

class Sink(Protocol):
    """Where a :class:`Sampler` puts what it records (memory or files)."""

    def sample(self, rows: List[Sample]) -> bool:
        """Keep one sample's rows; False if they were dropped (counted as skipped)."""

    def event(self, event: RecordedEvent) -> None:
        """Keep one event (never dropped)."""

    def events_lost(self, t: float) -> None:
        """The kernel dropped events just before ``t``."""


class Sampler:
    """The sampling loop: one :func:`connections` call per tick, events in between.

    Runs in its own thread (:meth:`start`), in the network namespace of the thread
    that calls :meth:`start`. Counters (``samples``, ``late``, ``skipped``, ...) may
    be read from other threads while it runs.

    Parameters
    ----------
    sink
        Receives the rows of each sample and each event.
    interval
        Seconds between samples (> 0).
    token
        Only this connection (and its events).
    owners
        Only the connections whose socket this process tree holds; their events
        are kept once a sample has attributed their token (events of connections
        that no sample saw, and events of no connection, are left out and counted
        in ``events_unattributed``).
    monitor
        An open event monitor to read between samples, or None for samples only.
    source, clock
        :func:`connections` and ``time.monotonic`` (tests replace them).
    start
        The recording's time zero on ``clock`` (default: now).
    """

    def __init__(self, sink: Sink, interval: float, *, token: Optional[int] = None,
                 owners: Optional[ProcessTreeSockets] = None,
                 monitor: Optional[EventMonitor] = None,
                 source: Callable[[], List[Connection]] = connections,
                 clock: Callable[[], float] = time.monotonic,
                 start: Optional[float] = None) -> None:
        self.interval = _args.interval(interval)
        self.token = _args.optional_token(token)
        self._sink = sink
        self._owners = owners
        self._monitor = monitor
        self._source = source
        self._clock = clock
        self.start_time = clock() if start is None else start
        self._ticks = _Ticks(self.interval, self.start_time)
        self._attributed: Dict[int, bool] = {}  # token -> held by `owners`
        self._last_seen: Dict[int, float] = {}  # token -> when a sample last had it
        # Events waiting for their connection to be attributed, in arrival order; a
        # float is a gap (the kernel dropped events there), kept in that order too.
        self._pending: Deque[Union[RecordedEvent, float]] = collections.deque()
        self._attribution_wait = max(1.0, 3 * self.interval)
        self._stopping = False
        self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._poll = select.poll()
        self._poll.register(self._wake_fd, select.POLLIN)
        if monitor is not None:
            self._poll.register(monitor.fileno(), select.POLLIN)
        self._thread: Optional[threading.Thread] = None
        self.samples = 0
        """Samples kept by the sink."""
        self.dropped = 0
        """Samples taken but refused by the sink (its backlog was full)."""
        self.connections = 0
        """Connections in the last sample (after filtering)."""
        self.rows = 0
        """Rows kept by the sink."""
        self.events = 0
        """Events kept."""
        self.events_lost = 0
        """Times the kernel reported dropped events."""
        self.events_unattributed = 0
        """Events left out because no sample saw their connection, or they have
        none (``owners`` only)."""
        self.error: Optional[BaseException] = None
        """What ended the loop early (a failing :func:`connections`), or None."""

    @property
    def late(self) -> int:
        """Samples taken more than half an interval after their tick."""
        return self._ticks.late

    @property
    def skipped(self) -> int:
        """Ticks without a sample in the sink: passed over, or refused by it."""
        return self._ticks.skipped + self.dropped

    def now(self) -> float:
        """Seconds since the recording's start, on the samples' clock (to the microsecond)."""
        return round(self._clock() - self.start_time, 6)

    def start(self) -> None:
        """Start sampling in a new thread (in the calling thread's network namespace)."""
        if self._thread is not None:
            raise RuntimeError("the sampler was already started")
        self._thread = threading.Thread(target=self._run, name="mptcp-record", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the loop after one last sample (the state at the stop); wait for it.

        Idempotent. Also works when the sampler was never started (it then only
        takes the last sample).
        """
        if not self._stopping:
            self._stopping = True
            os.eventfd_write(self._wake_fd, 1)
        if self._thread is None:
            self._thread = threading.current_thread()
            self._finish()
        elif self._thread is not threading.current_thread():
            self._thread.join()
        if self._wake_fd >= 0:
            os.close(self._wake_fd)
            self._wake_fd = -1

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop

    def _run(self) -> None:
        try:
            ticks = self._ticks
            while not self._stopping:
                self._wait_until(ticks.due)
                if self._stopping:
                    break
                woke = self._clock()
                self._sample()
                ticks.taken(woke, self._clock())
        except BaseException as err:  # handed to the thread that stops us
            self.error = err
        self._finish()

    def _finish(self) -> None:
        if self.error is None:
            try:
                self._drain_events()
                self._sample()
                self._drain_events()
            except BaseException as err:
                self.error = err
        self._release_events(final=True)

    def _wait_until(self, deadline: float) -> None:
        while not self._stopping:
            left = deadline - self._clock()
            if left <= 0:
                return
            for fd, _ in self._poll.poll(math.ceil(left * 1000)):
                if fd != self._wake_fd:
                    self._drain_events()

    def _sample(self) -> None:
        before = self._clock()
        conns = self._source()
        # Microseconds, as the file keeps them: a recording reads back equal.
        t = round((before + self._clock()) / 2 - self.start_time, 6)
        if self.token is not None:
            conns = [c for c in conns if c.token == self.token]
        if self._owners is not None:
            conns = self._attribute(conns, before)
        rows = [row for c in conns for row in _rows_of(t, c)]
        self.connections = len(conns)
        if self._sink.sample(rows):
            self.samples += 1
            self.rows += len(rows)
        else:
            self.dropped += 1
        self._release_events()

    def _attribute(self, conns: List[Connection], now: float) -> List[Connection]:
        """The connections the process tree holds. Once held, a connection stays the
        tree's (its inode reads 0 after the process closed it while it finishes, and
        before accept() handed it over: 0 says nothing). Tokens not seen for a minute
        are forgotten, so the table stays the size of the present."""
        assert self._owners is not None
        ours = self._owners.owned(c.inode for c in conns if c.inode)
        attributed, seen = self._attributed, self._last_seen
        for c in conns:
            if c.token is None:
                continue
            seen[c.token] = now
            if c.inode and not attributed.get(c.token):
                attributed[c.token] = c.inode in ours
        if len(seen) > len(conns):
            forget = [t for t, when in seen.items() if now - when > _FORGET_AFTER]
            for t in forget:
                del seen[t]
                attributed.pop(t, None)
        return [c for c in conns if c.token is not None and attributed.get(c.token)]

    # -- events

    def _drain_events(self) -> None:
        mon = self._monitor
        if mon is None:
            return
        while True:
            try:
                ev = mon.next(timeout=0)
            except EventsLostError:
                self.events_lost += 1
                self._pending.append(self.now())  # after the events that came before it
                self._release_events()
                continue
            if ev is None:
                return
            self._pending.append(RecordedEvent(self.now(), *ev))
            self._release_events()

    def _release_events(self, final: bool = False) -> None:
        """Hand pending events to the sink in arrival order, once attributable."""
        pending = self._pending
        while pending:
            ev = pending[0]
            if isinstance(ev, float):
                pending.popleft()
                self._sink.events_lost(ev)
                continue
            keep: Optional[bool] = True
            if self._owners is not None:
                keep = None if ev.token is None else self._attributed.get(ev.token)
                if keep is None and ev.token is not None and not final \
                        and self.now() - ev.time < self._attribution_wait:
                    return  # its connection has not been in a sample yet
            pending.popleft()
            if keep:
                self.events += 1
                self._sink.event(ev)
            elif keep is None:  # no connection (a listener's event), or none seen
                self.events_unattributed += 1


def open_events(token: Optional[int] = None) -> Tuple[Optional[EventMonitor], Optional[str]]:
    """An event monitor for a recording, or ``(None, why not)``.

    A missing CAP_NET_ADMIN or a kernel without the events group is not an error
    for a recording (it then has samples only); any other failure is raised.
    """
    try:
        return events(token=token), None
    except (MPTCPPermissionError, KernelTooOldError) as err:
        return None, f"events not recorded: {err.strerror or err}"


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)  # a reader never sees half a file


# -- the sinks: memory and files ------------------------------------------------------

class _MemorySink:
    def __init__(self, rec: "Recording") -> None:
        self._rec = rec

    def sample(self, rows: List[Sample]) -> bool:
        self._rec.samples.extend(rows)
        return True

    def event(self, event: RecordedEvent) -> None:
        self._rec.events.append(event)

    def events_lost(self, t: float) -> None:
        self._rec.events_lost.append(t)


class CsvWriter:
    """Writes samples and events as CSV from its own thread, so the sampler never
    waits for the disk.

    Headers are written at once. :meth:`sample` refuses a sample (returns False)
    while more than ``max_backlog_rows`` rows wait to be written; events are never
    refused. Each sample is written whole, with one ``write`` call, and the files
    are flushed every ``flush_interval`` seconds and on :meth:`close`.

    The thread wakes every ``WAKE`` seconds and writes what is queued, not once per
    sample: at 10 or 100 samples a second the wake-ups (a thread switch and the GIL
    handed over each time) cost more than the writing. It is woken at once when the
    backlog reaches half of ``max_backlog_rows``, and on :meth:`close`.

    Parameters
    ----------
    samples_out, events_out
        Text files opened for writing (with ``newline=""``); closed by :meth:`close`.
    max_backlog_rows
        Rows that may wait for the writer before samples are refused.
    flush_interval
        Seconds between flushes, so readers see the files grow.
    """

    WAKE = 0.25

    def __init__(self, samples_out: TextIO, events_out: TextIO, *,
                 max_backlog_rows: int = 100_000, flush_interval: float = 1.0) -> None:
        self._samples_out = samples_out
        self._events_out = events_out
        self._max_backlog = max_backlog_rows
        self._flush_interval = flush_interval
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: Deque[Tuple[str, Any]] = collections.deque()
        self._backlog = 0
        self._closing = False
        self.rows_written = 0
        """Sample rows written so far."""
        self.bytes_written = 0
        """Bytes written to both files so far (headers included)."""
        self.error: Optional[OSError] = None
        """The write error that stopped the writer, or None."""
        self._write(samples_out, _header(Sample._fields))
        self._write(events_out, _header(RecordedEvent._fields))
        self._thread = threading.Thread(target=self._run, name="mptcp-record-writer", daemon=True)
        self._thread.start()

    # the Sink protocol (called from the sampler's thread)

    def sample(self, rows: List[Sample]) -> bool:
        with self._lock:
            if self.error is not None or self._closing:
                return False
            if self._backlog and self._backlog + len(rows) > self._max_backlog:
                return False
            self._backlog += len(rows)
            self._queue.append(("sample", rows))
            if self._backlog * 2 >= self._max_backlog:
                self._ready.notify()
        return True

    def event(self, event: RecordedEvent) -> None:
        self._put(("event", event))

    def events_lost(self, t: float) -> None:
        self._put(("lost", t))

    def _put(self, item: Tuple[str, Any]) -> None:
        with self._lock:
            self._queue.append(item)

    @property
    def backlog(self) -> int:
        """Sample rows waiting to be written."""
        return self._backlog

    def close(self) -> None:
        """Write what is queued, flush and close both files. Idempotent.

        Raises
        ------
        OSError
            The first write error, if one stopped the writer.
        """
        with self._lock:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        for f in (self._samples_out, self._events_out):
            if not f.closed:
                try:
                    f.close()
                except OSError as err:
                    self.error = self.error or err
        if self.error is not None:
            raise self.error

    def _write(self, f: TextIO, text: str) -> None:
        f.write(text)
        self.bytes_written += len(text)  # ASCII: characters are bytes

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            with self._lock:
                if not self._closing and self._backlog * 2 < self._max_backlog:
                    self._ready.wait(min(self.WAKE, self._flush_interval))
                items, self._queue = self._queue, collections.deque()
                done = self._closing and not items
            try:
                for kind, payload in items:
                    if kind == "sample":
                        if self.error is None:
                            self._write(self._samples_out,
                                        _sample_lines(payload))
                            self.rows_written += len(payload)
                        with self._lock:
                            self._backlog -= len(payload)
                    elif self.error is None:
                        row = _event_csv(payload) if kind == "event" else _lost_csv(payload)
                        self._write(self._events_out, _event_lines([row]))
                if self.error is None and (done or time.monotonic() - last_flush
                                           >= self._flush_interval):
                    self._samples_out.flush()
                    self._events_out.flush()
                    last_flush = time.monotonic()
            except OSError as err:
                self.error = err
            if done:
                return


# -- recordings -------------------------------------------------------------------------

class Recording:
    """Samples and events recorded by :func:`record`, or read back by :func:`load`.

    Attributes
    ----------
    samples : list of Sample
        One per subflow per sample, in time order (grows while recording).
    events : list of RecordedEvent
        In arrival order.
    events_lost : list of float
        Times at which the kernel reported dropped events (gaps in ``events``).
    events_error : str or None
        Why there are no events (no CAP_NET_ADMIN, no events group), else None.
    interval, token
        What was asked for (``interval`` is None for a file without its meta file).
    start_unix : float or None
        Wall-clock time (``time.time()``) of time zero.
    start_monotonic : float or None
        ``time.monotonic()`` at time zero (one clock for every process of the host).
    kernel : str or None
        The kernel release that was recorded.
    """

    def __init__(self) -> None:
        self.samples: List[Sample] = []
        self.events: List[RecordedEvent] = []
        self.events_lost: List[float] = []
        self.events_error: Optional[str] = None
        self.interval: Optional[float] = None
        self.token: Optional[int] = None
        self._owners: Optional[ProcessTreeSockets] = None
        self._loaded_pids: Optional[Tuple[int, ...]] = None
        self.start_unix: Optional[float] = None
        self.start_monotonic: Optional[float] = None
        self.kernel: Optional[str] = None
        self.path: Optional[Path] = None
        """The samples file a streaming recording writes (``mptcp record``), else None."""
        self.extra_meta: Dict[str, Any] = {}
        """More keys for the meta file (the command line, for ``mptcp record``)."""
        self._counts: Dict[str, Any] = {}
        self._complete = False  # stopped (the meta file's counts are final)
        self._bytes_written = 0
        self._sampler: Optional[Sampler] = None
        self._writer: Optional[CsvWriter] = None
        self._monitor: Optional[EventMonitor] = None

    @property
    def running(self) -> bool:
        """Whether the recording is still sampling."""
        return self._sampler is not None and self._sampler.running

    @property
    def pids(self) -> Optional[Tuple[int, ...]]:
        """The processes whose trees are recorded (None: every connection)."""
        if self._owners is not None:
            return tuple(sorted(self._owners.roots))  # the command's pid joins after the start
        return self._loaded_pids

    @property
    def late(self) -> int:
        """Samples taken more than half an interval after their tick."""
        return int(self.counts()["late"])

    @property
    def skipped(self) -> int:
        """Ticks without a sample: the sampler was still busy, or the writer's backlog full."""
        return int(self.counts()["skipped"])

    @property
    def error(self) -> Optional[BaseException]:
        """What stopped the sampler or the writer early (while running), or None."""
        if self._sampler is not None and self._sampler.error is not None:
            return self._sampler.error
        return None if self._writer is None else self._writer.error

    def progress(self) -> Progress:
        """Counters of a running (or stopped) recording."""
        c = self.counts()
        sampler = self._sampler
        return Progress(
            elapsed=sampler.now() if sampler is not None else float(c["duration"]),
            samples=c["samples"], connections=0 if sampler is None else sampler.connections,
            rows=c["rows"],
            bytes_written=self._bytes_written if self._writer is None else self._writer.bytes_written,
            late=c["late"], skipped=c["skipped"], events=c["events_recorded"],
            events_lost=c["events_lost"], events_unattributed=c["events_unattributed"])

    def counts(self) -> Dict[str, Any]:
        """Duration, samples, rows, late, skipped and event counts (the meta file's)."""
        sampler = self._sampler
        if sampler is None:
            return self._counts or {
                "duration": self.samples[-1].time if self.samples else 0.0,
                "samples": len({s.time for s in self.samples}), "rows": len(self.samples),
                "late": 0, "skipped": 0, "events_recorded": len(self.events),
                "events_lost": len(self.events_lost), "events_unattributed": 0}
        return {"duration": round(sampler.now(), 6), "samples": sampler.samples,
                "rows": sampler.rows, "late": sampler.late, "skipped": sampler.skipped,
                "events_recorded": sampler.events, "events_lost": sampler.events_lost,
                "events_unattributed": sampler.events_unattributed}

    def meta(self) -> Dict[str, Any]:
        """The content of the ``.meta.json`` file."""
        start = None
        if self.start_unix is not None:
            start = datetime.datetime.fromtimestamp(self.start_unix).astimezone().isoformat(
                timespec="milliseconds")
        return {
            "format": FORMAT_VERSION, "start": start, "start_unix": self.start_unix,
            "start_monotonic": self.start_monotonic, "interval": self.interval,
            "kernel": self.kernel, "token": _token_text(self.token) or None,
            "pids": None if self.pids is None else sorted(self.pids),
            "events": self.events_error or "recorded", "complete": self._complete,
            **self.counts(), **self.extra_meta,
        }

    def stop(self) -> None:
        """Take one last sample, stop sampling, close the event monitor (and, when
        streaming, write what is queued and close the files). Idempotent.

        Raises
        ------
        MPTCPError
            What :func:`connections` raised if it failed during the recording
            (what was recorded up to then is kept).
        OSError
            Writing the files failed (streaming recordings).
        """
        sampler = self._sampler
        if sampler is None:
            return
        # If this wait is interrupted (a second Ctrl-C), nothing is closed yet under
        # the running sampler, and stop() can be called again.
        sampler.stop()
        self._counts = self.counts()  # the sampler's, final
        self._sampler = None
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        self._complete = True
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            finally:
                self._bytes_written = writer.bytes_written
                self.write_meta()
        if sampler.error is not None:
            raise sampler.error

    close = stop

    def write_meta(self) -> None:
        """Write the meta file of a recording that streams to files now (``mptcp
        record`` does once its command runs, so that a killed recording still
        names it). Raises OSError."""
        assert self.path is not None
        _write_json(companion_paths(self.path)[2], self.meta())

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.stop()
            return
        try:  # the body's exception matters more than ours
            self.stop()
        except Exception:
            pass

    def save(self, path: PathLike) -> None:
        """Write the samples to ``path`` (CSV), the events to ``<stem>.events.csv``
        and the metadata to ``<stem>.meta.json``.

        Raises
        ------
        RuntimeError
            The recording streams to files already (``mptcp record``).
        OSError
            A file could not be written.
        """
        if self.path is not None:
            raise RuntimeError(f"this recording was written to {self.path} as it ran")
        samples_path, events_path, meta_path = companion_paths(path)
        with open(samples_path, "w", newline="", encoding="utf-8") as f:
            f.write(_header(Sample._fields))
            f.write(_sample_lines(list(self.samples)))
        rows = [(e.time, _event_csv(e)) for e in list(self.events)]
        rows += [(t, _lost_csv(t)) for t in list(self.events_lost)]
        rows.sort(key=lambda r: r[0])
        with open(events_path, "w", newline="", encoding="utf-8") as f:
            f.write(_header(RecordedEvent._fields))
            f.write(_event_lines(row for _, row in rows))
        _write_json(meta_path, self.meta())

    def __repr__(self) -> str:
        state = "recording" if self.running else "stopped"
        return (f"<mptcp.Recording {state}: {len(self.samples)} rows, {len(self.events)} events,"
                f" interval={self.interval}>")


def _begin(interval: float, token: Optional[int], owners: Optional[ProcessTreeSockets],
           monitor: Optional[EventMonitor], events_error: Optional[str],
           writer: Optional[CsvWriter], rec: Recording) -> Recording:
    rec.interval, rec.token, rec._owners = interval, token, owners
    rec.kernel = os.uname().release
    rec._monitor, rec.events_error = monitor, events_error
    rec._writer = writer
    rec.start_unix, rec.start_monotonic = time.time(), time.monotonic()
    sink: Sink = _MemorySink(rec) if writer is None else writer
    if rec.path is not None:
        rec.write_meta()  # when it began, even if it is killed
    rec._sampler = Sampler(sink, interval, token=token, owners=owners, monitor=monitor,
                           start=rec.start_monotonic)
    rec._sampler.start()
    return rec


def record(interval: float = 0.1, token: Optional[int] = None,
           pids: Optional[Iterable[int]] = None) -> Recording:
    """Start recording every MPTCP connection of this network namespace.

    Sampling starts at once, in a background thread that lives in the calling
    thread's network namespace, and ends with :meth:`Recording.stop` or at the end
    of a ``with`` block::

        with mptcp.record(interval=0.05) as rec:
            run_experiment()
        rec.save("run.csv")
        mptcp.plot(rec, "run.png")

    Parameters
    ----------
    interval
        Seconds between samples (> 0; 0.01 works). Each sample is one
        :func:`mptcp.connections` call.
    token
        Record only the connection with this local token (and its events).
    pids
        Record only the connections whose socket is held by these processes or
        their descendants (found through ``/proc/PID/fd``, which the caller must
        be allowed to read).

    Returns
    -------
    Recording
        Running; a context manager.

    Raises
    ------
    TypeError, ValueError
        A bad ``interval``, ``token`` or ``pids``.
    MPTCPError
        The event monitor could not be opened for another reason than a missing
        capability or kernel support (those set :attr:`Recording.events_error`).

    Notes
    -----
    Minimum kernel: 5.9 for the samples (sock_diag), 5.12 for the events
    (``mptcp_pm_events``, which needs CAP_NET_ADMIN).
    """
    interval = _args.interval(interval)
    token = _args.optional_token(token)
    rec = Recording()
    owners = None if pids is None else ProcessTreeSockets(_args.pids(pids))
    monitor, why = open_events(token)
    try:
        return _begin(interval, token, owners, monitor, why, None, rec)
    except BaseException:
        if monitor is not None:
            monitor.close()
        raise


def stream(path: PathLike, interval: float = 0.1, *, token: Optional[int] = None,
           owners: Optional[ProcessTreeSockets] = None,
           monitor: Optional[EventMonitor] = None, events_error: Optional[str] = None,
           extra_meta: Optional[Dict[str, Any]] = None,
           max_backlog_rows: int = 100_000) -> Recording:
    """Start a recording that writes its files as it runs (``mptcp record``).

    Like :func:`record`, but samples and events go to ``path`` and its companion
    files through a :class:`CsvWriter` instead of memory; the meta file is written
    at the start and again by :meth:`Recording.stop`.

    Parameters
    ----------
    path
        The samples file; the events and meta files go next to it.
    interval, token
        As for :func:`record`.
    owners
        Only the connections this process tree holds (roots may be added later:
        the command is started once the monitor has subscribed).
    monitor, events_error
        From :func:`open_events`, called by the caller first.
    extra_meta
        More keys for the meta file.
    max_backlog_rows
        Rows that may wait for the writer before samples are skipped.

    Returns
    -------
    Recording
        Running; its ``samples`` stay empty (they are in the file).

    Raises
    ------
    OSError
        A file could not be created.

    Notes
    -----
    Minimum kernel: as :func:`record`.
    """
    interval = _args.interval(interval)
    token = _args.optional_token(token)
    samples_path, events_path, _ = companion_paths(path)
    samples_out = open(samples_path, "w", newline="", encoding="utf-8")
    try:
        events_out = open(events_path, "w", newline="", encoding="utf-8")
    except BaseException:
        samples_out.close()
        raise
    writer = CsvWriter(samples_out, events_out, max_backlog_rows=max_backlog_rows)
    rec = Recording()
    rec.path = samples_path
    rec.extra_meta = dict(extra_meta or {})
    try:
        return _begin(interval, token, owners, monitor, events_error, writer, rec)
    except BaseException:
        writer.close()
        raise


def _check_type(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value


def load(path: PathLike) -> Recording:
    """Read a recording back from its files: the samples CSV, and the events and
    meta files next to it when they exist.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        A file is empty, truncated or not an mptcp recording (the message names
        the file and the line).
    """
    samples_path, events_path, meta_path = companion_paths(path)
    rec = Recording()
    rec._complete = True  # read back, not running
    rec.samples = [Sample(**row) for row in
                   _read_csv(samples_path, Sample._fields, _SAMPLE_PARSERS, "recording")]
    if any(s.time is None for s in rec.samples):
        raise ValueError(f"{samples_path}: a row without a time: the file is damaged")
    if events_path.exists():
        parsers = {**_EVENT_PARSERS,
                   "type": lambda text: text if text == EVENTS_LOST else _parse_event_type(text)}
        for row in _read_csv(events_path, RecordedEvent._fields, parsers, "events file"):
            if row["type"] == EVENTS_LOST:
                rec.events_lost.append(row["time"])
            elif row["type"] is None or row["time"] is None:
                raise ValueError(f"{events_path}: an event without a time or type")
            else:
                rec.events.append(RecordedEvent(**row))
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err}): the file is damaged") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path}: not the meta file of an mptcp recording")
        try:
            rec.interval = meta.get("interval")
            rec.start_unix = meta.get("start_unix")
            rec.start_monotonic = meta.get("start_monotonic")
            rec.kernel = meta.get("kernel")
            token = meta.get("token")
            rec.token = None if token is None else int(_check_type(token, str), 16)
            pids = meta.get("pids")
            if pids is not None:
                rec._loaded_pids = tuple(_check_type(pid, int) for pid in _check_type(pids, list))
        except (TypeError, ValueError):
            raise ValueError(f"{meta_path}: not the meta file of an mptcp recording") from None
        if meta.get("events", "recorded") != "recorded":
            rec.events_error = str(meta["events"])
        # The counts at the stop are the file's; a recording killed before it kept the
        # start's (all 0): then they are counted from the rows.
        if meta.get("complete") is True:
            rec._counts = {k: meta.get(k, v) for k, v in rec.counts().items()}
    if rec.samples and any(b.time < a.time for a, b in zip(rec.samples, rec.samples[1:])):
        raise ValueError(f"{samples_path}: samples are out of time order: not an mptcp recording")
    return rec
