"""The recorder without a kernel: the file formats both ways, bad files, the
schedule's late/skipped accounting, the writer that never blocks the sampler,
event attribution, the plot, and the command's usage errors."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import pytest

import mptcp
from mptcp import _recording, cli
from mptcp._recording import CsvWriter, Recording, Sampler, _Ticks
from mptcp._records import (Connection, DiagSubflow, Event, EventType, MPTCPInfo, RecordedEvent,
                            Sample, SubflowInfo)

ROOT = Path(__file__).resolve().parents[2]

# The documented columns (README, "Recording an experiment"): a change here is a change of the file format.
SAMPLE_COLUMNS = (
    "time,token,subflow,local,remote,loc_id,rem_id,backup,state,bytes_acked,bytes_received,"
    "bytes_sent,bytes_retrans,rtt_us,rttvar_us,min_rtt_us,cwnd,ssthresh,retrans,pacing_rate,"
    "delivery_rate,conn_subflows,conn_bytes_sent,conn_bytes_received,conn_bytes_acked,"
    "conn_bytes_retrans,conn_retransmits").split(",")
EVENT_COLUMNS = ("time,type,token,local,remote,loc_id,rem_id,backup,error,flags,if_index,"
                 "server_side,reset_reason,reset_flags,timeout,family").split(",")


def _sample(t: float, local: Any = ("10.0.1.2", 4000), **kw: Any) -> Sample:
    base = {name: None for name in Sample._fields}
    base.update(time=t, token=0x0A0B0C0D, local=local, remote=("10.0.1.1", 80), loc_id=0,
                rem_id=0, backup=False, state=1, bytes_acked=1000, rtt_us=120, cwnd=10)
    base.update(kw)
    return Sample(**base)


def _recording_with(samples: Sequence[Sample], events: Sequence[RecordedEvent] = (),
                    lost: Sequence[float] = ()) -> Recording:
    rec = Recording()
    rec.samples, rec.events, rec.events_lost = list(samples), list(events), list(lost)
    rec.interval, rec.kernel, rec.start_unix, rec.start_monotonic = 0.1, "6.18", 1.7e9, 100.0
    return rec


def _lines(path: Path) -> List[str]:
    return path.read_text().splitlines()


# ------------------------------------------------------------------ formats

def test_columns_are_the_documented_ones() -> None:
    assert list(Sample._fields) == SAMPLE_COLUMNS
    assert list(RecordedEvent._fields) == EVENT_COLUMNS
    assert RecordedEvent._fields[1:] == Event._fields
    readme = (ROOT / "README.md").read_text()
    doc = readme.split("\n## Recording an experiment\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \|", doc, re.M))
    names = {n.strip("`") for group in documented for n in group.split(", ")}
    assert set(SAMPLE_COLUMNS) | set(EVENT_COLUMNS) == names


def test_save_writes_plain_csv_and_reads_back_equal(tmp_path: Path) -> None:
    samples = [
        _sample(0.0, backup=True, state=1, conn_bytes_sent=5),
        _sample(0.0, local=("fd00:1::2", 4001), remote=("fd00:1::1", 80), backup=None,
                state=99, token=0x00000001),
        _sample(0.1, bytes_acked=2000, rtt_us=None),
    ]
    events = [RecordedEvent(0.05, EventType.SUB_ESTABLISHED, 0x0A0B0C0D, ("10.0.2.2", 4001),
                            ("10.0.2.1", 80), 1, 0, True, 0, None, 3, None),
              RecordedEvent(0.07, 42, None)]  # a type this library does not know
    rec = _recording_with(samples, events, lost=[0.06])
    rec.save(tmp_path / "run.csv")

    assert sorted(os.listdir(tmp_path)) == ["run.csv", "run.events.csv", "run.meta.json"]
    rows = list(csv.DictReader(open(tmp_path / "run.csv", newline="")))
    assert _lines(tmp_path / "run.csv")[0] == ",".join(SAMPLE_COLUMNS)
    assert len(rows) == 3 and not any(line.startswith("#") for line in _lines(tmp_path / "run.csv"))
    assert rows[0]["time"] == "0.000000" and rows[0]["token"] == "0a0b0c0d"
    assert rows[0]["subflow"] == "" and rows[0]["local"] == "10.0.1.2:4000"
    assert rows[0]["backup"] == "1" and rows[0]["state"] == "ESTABLISHED"
    assert rows[1]["token"] == "00000001" and rows[1]["local"] == "[fd00:1::2]:4001"
    assert rows[1]["backup"] == "" and rows[1]["state"] == "99"
    assert rows[2]["rtt_us"] == "" and rows[2]["bytes_acked"] == "2000"

    ev = list(csv.DictReader(open(tmp_path / "run.events.csv", newline="")))
    assert [e["type"] for e in ev] == ["SUB_ESTABLISHED", "EVENTS_LOST", "42"]  # by time
    assert ev[0]["backup"] == "1" and ev[0]["local"] == "10.0.2.2:4001" and ev[0]["if_index"] == "3"

    meta = json.loads((tmp_path / "run.meta.json").read_text())
    assert meta["interval"] == 0.1 and meta["kernel"] == "6.18" and meta["format"] == 1
    assert meta["rows"] == 3 and meta["samples"] == 2 and meta["events_lost"] == 1
    assert meta["start"].startswith("2023-11-14T")

    back = _recording.load(tmp_path / "run.csv")
    assert back.samples == samples and back.events == events and back.events_lost == [0.06]
    assert back.interval == 0.1 and back.kernel == "6.18" and back.start_monotonic == 100.0
    assert isinstance(back.events[0].type, EventType) and back.events[1].type == 42


def test_rows_map_the_kernel_fields(tmp_path: Path) -> None:
    # Every field gets a distinct value, so a crossed column cannot go unnoticed.
    sub = SubflowInfo(*range(1000, 1000 + len(SubflowInfo._fields)))._replace(
        id=None, local=("10.0.1.2", 1), remote=("10.0.1.1", 2), state=1, backup=True)
    diag = DiagSubflow(*[None] * len(DiagSubflow._fields))._replace(loc_id=7, rem_id=8, if_index=0)
    info = MPTCPInfo(*range(2000, 2000 + len(MPTCPInfo._fields)))
    conn = Connection(0xDEADBEEF, ("10.0.1.2", 1), ("10.0.1.1", 2), 1, info, [sub], [diag],
                      2, 0, 0, 12345)
    (row,) = _recording._rows_of(1.5, conn)
    assert row.time == 1.5 and row.token == 0xDEADBEEF and row.subflow is None
    assert (row.local, row.remote, row.loc_id, row.rem_id, row.backup, row.state) == \
        (sub.local, sub.remote, 7, 8, True, 1)
    for column, field in [("bytes_acked", "bytes_acked"), ("bytes_received", "bytes_received"),
                          ("bytes_sent", "bytes_sent"), ("bytes_retrans", "bytes_retrans"),
                          ("rtt_us", "rtt_us"), ("rttvar_us", "rttvar_us"),
                          ("min_rtt_us", "min_rtt_us"), ("cwnd", "snd_cwnd"),
                          ("ssthresh", "snd_ssthresh"), ("retrans", "total_retrans"),
                          ("pacing_rate", "pacing_rate"), ("delivery_rate", "delivery_rate")]:
        assert getattr(row, column) == getattr(sub, field), column
    for column in ("subflows", "bytes_sent", "bytes_received", "bytes_acked", "bytes_retrans",
                   "retransmits"):
        assert getattr(row, "conn_" + column) == getattr(info, column), column
    no_info = conn._replace(info=None)
    assert _recording._rows_of(0, no_info)[0].conn_bytes_acked is None


# ------------------------------------------------------------------ bad files

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _good_text(tmp_path: Path) -> str:
    _recording_with([_sample(0.0), _sample(0.1)]).save(tmp_path / "good.csv")
    return (tmp_path / "good.csv").read_text()


@pytest.mark.parametrize("damage,message", [
    (lambda text: "", "empty"),
    (lambda text: text[:-7], "last line is incomplete"),  # cut inside the last row
    (lambda text: text.rsplit(",", 5)[0] + "\n", "fields, not 27"),  # a short last row
    (lambda text: "a,b\n1,2\n", "not an mptcp recording: no column time"),
    (lambda text: text.replace("10.0.1.2:4000", "10.0.1.2", 1), "is not a valid local"),
    (lambda text: text.replace("0a0b0c0d", "zz", 1), "is not a valid token"),
    (lambda text: text.replace("\n0.100000,", "\n,", 1), "a row without a time"),
    (lambda text: text.replace("\n0.100000,", "\nnan,", 1), "is not a valid time"),
], ids=["empty", "cut-mid-row", "short-row", "foreign", "bad-address", "bad-token",
        "no-time", "nan-time"])
def test_load_rejects_damaged_files(tmp_path: Path, damage: Callable[[str], str],
                                    message: str) -> None:
    path = _write(tmp_path / "bad.csv", damage(_good_text(tmp_path)))
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        _recording.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_file_and_damaged_companions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _recording.load(tmp_path / "nothing.csv")
    good = _good_text(tmp_path)
    _write(tmp_path / "run.csv", good)
    _write(tmp_path / "run.meta.json", '{"interval": 0.1')
    with pytest.raises(ValueError, match="run.meta.json: not valid JSON"):
        _recording.load(tmp_path / "run.csv")
    os.remove(tmp_path / "run.meta.json")
    _write(tmp_path / "run.events.csv", ",".join(EVENT_COLUMNS) + "\n1.0,SUB_CLOSED")
    with pytest.raises(ValueError, match="run.events.csv: the last line is incomplete"):
        _recording.load(tmp_path / "run.csv")
    os.remove(tmp_path / "run.events.csv")
    rec = _recording.load(tmp_path / "run.csv")  # companions are optional
    assert len(rec.samples) == 2 and rec.events == [] and rec.interval is None
    lines = good.splitlines()
    _write(tmp_path / "run.csv", "\n".join([lines[0], lines[2], lines[1]]) + "\n")
    with pytest.raises(ValueError, match="out of time order"):
        _recording.load(tmp_path / "run.csv")


@pytest.mark.parametrize("meta", ['{"token": 1234}', '{"pids": "12"}', '{"pids": [true]}'])
def test_load_rejects_a_foreign_meta_file(tmp_path: Path, meta: str) -> None:
    _write(tmp_path / "run.csv", _good_text(tmp_path))
    _write(tmp_path / "run.meta.json", meta)
    with pytest.raises(ValueError, match="run.meta.json: not the meta file"):
        _recording.load(tmp_path / "run.csv")


def test_a_recording_killed_before_its_stop_counts_its_rows(tmp_path: Path) -> None:
    # The meta file written at the start says 0 samples; the rows are the truth.
    _write(tmp_path / "run.csv", _good_text(tmp_path))
    start = {"format": 1, "interval": 0.1, "complete": False, "duration": 0.0,
             "samples": 0, "rows": 0}
    _write(tmp_path / "run.meta.json", json.dumps(start))
    counts = _recording.load(tmp_path / "run.csv").counts()
    assert (counts["samples"], counts["rows"], counts["duration"]) == (2, 2, 0.1)
    _write(tmp_path / "run.meta.json", json.dumps({**start, "complete": True, "samples": 7,
                                                   "rows": 9, "late": 1}))
    counts = _recording.load(tmp_path / "run.csv").counts()
    assert (counts["samples"], counts["rows"], counts["late"]) == (7, 9, 1)  # the stop's


# ------------------------------------------------------------------ the schedule

def test_ticks_count_late_samples_and_skip_instead_of_bunching() -> None:
    t = _Ticks(0.1, first=10.0)
    t.taken(woke=10.001, done=10.002)  # on time
    assert (t.due, t.late, t.skipped) == (pytest.approx(10.1), 0, 0)
    t.taken(woke=10.16, done=10.161)  # woke 0.06 s after its tick: late
    assert (t.due, t.late, t.skipped) == (pytest.approx(10.2), 1, 0)
    t.taken(woke=10.2, done=10.53)  # a 0.33 s sample: 10.3 and 10.4 passed, 10.5 still fine
    assert (t.due, t.late, t.skipped) == (pytest.approx(10.5), 1, 2)
    t.taken(woke=10.5, done=10.56)  # 10.6 is only 0.04 s away: taken, not skipped
    assert (t.due, t.late, t.skipped) == (pytest.approx(10.6), 1, 2)
    # A 1 s stall (Ctrl-Z, fg): the sample counts as tick 11.6, the next is 11.7, not
    # a second sample at once.
    t.taken(woke=11.601, done=11.602)
    assert (t.due, t.late, t.skipped) == (pytest.approx(11.7), 2, 12)


class _FakeConns:
    """A connections() stand-in: n connections of two subflows, counters growing."""

    def __init__(self, n: int = 1, delay: float = 0.0) -> None:
        self.n, self.delay, self.calls = n, delay, 0
        self.closed = False  # the process closed its sockets: inodes read 0

    def conn(self, i: int) -> Connection:
        subs, diags = [], []
        for k in range(2):
            subs.append(SubflowInfo(*[None] * len(SubflowInfo._fields))._replace(
                local=(f"10.0.{k + 1}.2", 5000 + i), remote=(f"10.0.{k + 1}.1", 80), state=1,
                backup=k == 1, bytes_acked=1000 * self.calls))
            diags.append(DiagSubflow(*[None] * len(DiagSubflow._fields))._replace(if_index=0))
        return Connection(0x1000 + i, None, None, 1, None, subs, diags, 2, 0, 0,
                          0 if self.closed else 9000 + i)

    def __call__(self) -> List[Connection]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return [self.conn(i) for i in range(self.n)]


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.005)


def test_slow_sampling_is_counted_as_skipped_ticks() -> None:
    rec = Recording()
    source = _FakeConns(delay=0.33)  # each sample takes over three 0.1 s ticks
    sampler = Sampler(_recording._MemorySink(rec), 0.1, source=source)
    sampler.start()
    _wait(lambda: sampler.samples >= 3, "3 samples")
    sampler.stop()
    # After each 0.33 s sample, the ticks at +0.1 and +0.2 have passed (0.3 is taken).
    assert sampler.skipped >= 2 * (sampler.samples - 2)
    times = sorted({s.time for s in rec.samples})
    assert len(times) == sampler.samples and sampler.dropped == 0


# ------------------------------------------------------------------ the writer

class _BlockedFile(io.StringIO):
    """A file whose writes wait until the test opens the gate: a very slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.text = ""

    def write(self, s: str) -> int:
        if self.text:  # the header goes through; the rows wait
            self.gate.wait()
        self.text += s
        return len(s)

    def close(self) -> None:
        self.closed_text = self.text
        super().close()


def test_a_blocked_writer_never_blocks_the_sampler() -> None:
    samples_out, events_out = _BlockedFile(), io.StringIO()
    writer = CsvWriter(samples_out, events_out, max_backlog_rows=10, flush_interval=0.05)
    sampler = Sampler(writer, 0.005, source=_FakeConns(n=2))  # 4 rows per sample
    sampler.start()
    # Rows count against the backlog until written: the sample stuck in write() and
    # one more fit in 10 rows; every later one must be refused while the sampler goes on.
    _wait(lambda: sampler.dropped >= 5, "refused samples")
    assert sampler.samples == 2
    samples_out.gate.set()
    sampler.stop()
    writer.close()
    written = samples_out.closed_text.splitlines()
    assert written[0] == ",".join(SAMPLE_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(samples_out.closed_text)))
    assert len(rows) == sampler.rows == writer.rows_written == 4 * sampler.samples
    assert len({r["time"] for r in rows}) == sampler.samples
    assert sampler.skipped >= sampler.dropped >= 5
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)
    assert writer.bytes_written == len(samples_out.closed_text) + len(",".join(EVENT_COLUMNS)) + 1


def test_writer_error_stops_writing_and_is_raised(tmp_path: Path) -> None:
    class Full(io.StringIO):
        def write(self, s: str) -> int:
            if self.getvalue():
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(s)

    writer = CsvWriter(Full(), io.StringIO())
    assert writer.sample([_sample(0.0)])
    _wait(lambda: writer.error is not None, "the write error")
    assert not writer.sample([_sample(0.1)])  # refused from then on
    with pytest.raises(OSError, match="No space left"):
        writer.close()


# ------------------------------------------------------------------ events

class _FakeMonitor:
    """An EventMonitor stand-in: a readable eventfd while events wait."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.queue: List[Any] = []
        self.lock = threading.Lock()

    def put(self, item: Any) -> None:
        with self.lock:
            self.queue.append(item)
        os.eventfd_write(self.fd, 1)

    def fileno(self) -> int:
        return self.fd

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        with self.lock:
            if not self.queue:
                try:
                    os.eventfd_read(self.fd)
                except BlockingIOError:
                    pass
                return None
            item = self.queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]


class _Owners:
    """ProcessTreeSockets stand-in: owns the inodes in ``ours``."""

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours
        self.roots = {1}

    def owned(self, inodes: Any) -> set[int]:
        return set(inodes) & self.ours


def test_events_of_foreign_connections_are_left_out_in_order() -> None:
    rec = Recording()
    mon = _FakeMonitor()
    source = _FakeConns(n=2)  # tokens 0x1000 (inode 9000) and 0x1001 (inode 9001)
    sampler = Sampler(_recording._MemorySink(rec), 0.02, owners=_Owners({9000}),
                      monitor=mon, source=source)  # type: ignore[arg-type]
    mon.put(Event(EventType.CREATED, 0x1000))  # before any sample saw the connection
    mon.put(Event(EventType.CREATED, 0x1001))
    mon.put(Event(EventType.CREATED, 0x2000))  # never in a sample
    mon.put(mptcp.EventsLostError(errno.ENOBUFS, "lost"))
    mon.put(Event(EventType.LISTENER_CREATED))  # no token: nobody's
    sampler.start()
    _wait(lambda: sampler.samples >= 3, "samples")
    mon.put(Event(EventType.SUB_ESTABLISHED, 0x1000, ("10.0.2.2", 5000)))
    _wait(lambda: len(rec.events) == 2, "the second event")
    sampler.stop()
    os.close(mon.fd)
    assert [(e.type, e.token) for e in rec.events] == [
        (EventType.CREATED, 0x1000), (EventType.SUB_ESTABLISHED, 0x1000)]
    assert rec.events[0].time <= rec.events[1].time
    assert len(rec.events_lost) == 1 and sampler.events_lost == 1
    assert sampler.events_unattributed == 2  # 0x2000 and the listener's; 0x1001 is foreign
    assert {s.token for s in rec.samples} == {0x1000}


class _Calls:
    """A sink that keeps the order of what it was handed."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []

    def sample(self, rows: List[Sample]) -> bool:
        self.calls.append(("sample", len(rows)))
        return True

    def event(self, event: RecordedEvent) -> None:
        self.calls.append(("event", event.type, event.token))

    def events_lost(self, t: float) -> None:
        self.calls.append(("lost",))


def test_a_held_connection_stays_held_and_a_gap_keeps_its_place() -> None:
    mon = _FakeMonitor()
    source = _FakeConns(n=1)  # token 0x1000, inode 9000: the command's
    sink = _Calls()
    sampler = Sampler(sink, 0.02, owners=_Owners({9000}), monitor=mon,  # type: ignore[arg-type]
                      source=source)
    mon.put(Event(EventType.CREATED, 0x1000))  # waits until a sample attributes it
    mon.put(mptcp.EventsLostError(errno.ENOBUFS, "lost"))  # so the gap waits behind it
    sampler.start()
    _wait(lambda: sampler.samples >= 2, "samples")
    source.closed = True  # the process closed its socket while the connection finishes
    n = sampler.samples
    _wait(lambda: sampler.samples >= n + 2, "samples with inode 0")
    mon.put(Event(EventType.CLOSED, 0x1000))
    _wait(lambda: ("event", EventType.CLOSED, 0x1000) in sink.calls, "CLOSED")
    sampler.stop()
    os.close(mon.fd)
    assert [c for c in sink.calls if c[0] != "sample"] == [
        ("event", EventType.CREATED, 0x1000), ("lost",), ("event", EventType.CLOSED, 0x1000)]
    assert sampler.events_unattributed == 0
    assert all(c[1] == 2 for c in sink.calls if c[0] == "sample")  # its rows, every time


# ------------------------------------------------------------------ record() arguments

@pytest.mark.parametrize("kwargs,error", [
    ({"interval": 0}, ValueError), ({"interval": -1}, ValueError),
    ({"interval": float("nan")}, ValueError), ({"interval": "0.1"}, TypeError),
    ({"token": -1}, ValueError), ({"token": 1 << 32}, ValueError), ({"token": "ab"}, TypeError),
    ({"pids": [0]}, ValueError), ({"pids": ["1"]}, TypeError),
])
def test_record_checks_its_arguments_first(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        mptcp.record(**kwargs)


def test_public_names() -> None:
    assert mptcp.record is _recording.record and mptcp.Recording is Recording
    assert mptcp.Sample is Sample and mptcp.RecordedEvent is RecordedEvent
    for name in ("record", "Recording", "Sample", "RecordedEvent", "plot"):
        assert name in mptcp.__all__
    assert Sample.__module__ == RecordedEvent.__module__ == "mptcp"


# ------------------------------------------------------------------ the command's usage

def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit:
        code = int(exit.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["record", "--interval", "0"], "must be a positive number of seconds"),
    (["record", "--interval", "-0.5"], "must be a positive number of seconds"),
    (["record", "--interval", "fast"], "is not a number"),
    (["record", "--duration", "0"], "must be a positive number of seconds"),
    (["record", "--token", "xyz"], "is not a token"),
    (["record", "--no-such-option"], "unrecognized arguments"),
    (["plot", "run.csv", "--metrics", "throughput,latency"], "unknown metric 'latency'"),
    (["plot", "run.csv", "--size", "big"], "is not WIDTHxHEIGHT"),
    (["plot"], "the following arguments are required: FILE"),
])
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    code, err = _main(capsys, *argv)
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err
    assert err.startswith(f"mptcp {argv[0]}: ")


def test_token_accepts_0x(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["record", "--token", "0x0A0B0C0D", "--", "true", "-x"])
    assert args.token == 0x0A0B0C0D and args.run == ["true", "-x"]
    assert cli.build_parser().parse_args(["plot", "f", "--token", "a0b"]).token == 0xA0B


# ------------------------------------------------------------------ plot

def _two_subflow_recording() -> Recording:
    """Subflow A (path 1) carries 100 Mbit/s until 1 s, then B (backup) does."""
    samples = []
    acked = {"A": 0, "B": 0}
    for i in range(21):
        t = round(i * 0.1, 6)
        for name, local, backup in (("A", ("10.0.1.2", 4000), False),
                                    ("B", ("10.0.2.2", 4001), True)):
            if i > 0 and ((name == "A") == (t <= 1.0)):
                acked[name] += 1_250_000  # per 0.1 s: 100 Mbit/s
            samples.append(_sample(t, local=local, backup=backup, bytes_acked=acked[name],
                                   bytes_received=0, rtt_us=200 if name == "A" else 400,
                                   cwnd=20 if name == "A" else 40))
    events = [RecordedEvent(0.3, EventType.SUB_ESTABLISHED, 0x0A0B0C0D, ("10.0.2.2", 4001)),
              RecordedEvent(1.5, EventType.SUB_CLOSED, 0x0A0B0C0D, ("10.0.1.2", 4000)),
              RecordedEvent(1.6, EventType.CREATED, 0x0A0B0C0D)]  # not a marked type
    return _recording_with(samples, events, lost=[1.7])


@pytest.fixture
def mpl() -> Any:
    return pytest.importorskip("matplotlib", reason="the plot extra is not installed")


def _subflow_lines(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if str(line.get_gid()).startswith("subflow ")]


def test_plot_draws_a_line_per_subflow_per_panel(tmp_path: Path, mpl: Any) -> None:
    import matplotlib.image

    out = tmp_path / "run.png"
    fig = mptcp.plot(_two_subflow_recording(), out, size=(900, 700))
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (700, 900)
    rgb = pixels[..., :3]
    ink = (rgb < 0.9).any(axis=2).mean()  # not white
    assert 0.03 < ink < 0.6 and rgb.std() > 0.05
    assert len(fig.axes) == 3
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("Throughput") and titles[1] == "Smoothed RTT"
    for ax in fig.axes:
        lines = _subflow_lines(ax)
        assert sorted(line.get_label() for line in lines) == [
            "10.0.1.2:4000 -> 10.0.1.1:80", "10.0.2.2:4001 -> 10.0.1.1:80 (backup)"]
        styles = {line.get_label(): line.get_linestyle() for line in lines}
        assert styles["10.0.2.2:4001 -> 10.0.1.1:80 (backup)"] == "--"
        assert styles["10.0.1.2:4000 -> 10.0.1.1:80"] == "-"
        markers = sorted((line.get_xdata()[0], line.get_gid()) for line in ax.get_lines()
                         if str(line.get_gid()).startswith("event "))
        assert markers == [(0.3, "event SUB_ESTABLISHED"), (1.5, "event SUB_CLOSED"),
                           (1.7, "event EVENTS_LOST")]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "subflow up 10.0.2.2" in texts and "subflow closed 10.0.1.2" in texts
    # Throughput from the byte deltas, in Mbit/s: A before 1 s, B after.
    a, b = sorted(_subflow_lines(fig.axes[0]), key=lambda line: line.get_label())
    assert list(a.get_ydata()[1:11]) == pytest.approx([100.0] * 10)
    assert list(a.get_ydata()[11:]) == pytest.approx([0.0] * 10)
    assert list(b.get_ydata()[11:]) == pytest.approx([100.0] * 10)
    assert list(fig.axes[1].get_lines()[0].get_ydata()[:1]) == [pytest.approx(0.2)]  # ms


def test_plot_from_a_file_to_svg_with_chosen_metrics_and_token(tmp_path: Path, mpl: Any) -> None:
    rec = _two_subflow_recording()
    rec.samples += [_sample(2.1, token=0x99, local=("10.0.9.2", 1))]
    rec.save(tmp_path / "run.csv")
    fig = mptcp.plot(tmp_path / "run.csv", tmp_path / "run.svg", metrics=["cwnd", "retrans"],
                     token=0x0A0B0C0D)
    assert (tmp_path / "run.svg").read_text().lstrip().startswith("<?xml")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["Congestion window", "Retransmissions"]
    assert all(len(_subflow_lines(ax)) == 2 for ax in fig.axes)
    everything = mptcp.plot(tmp_path / "run.csv", tmp_path / "all.png")
    labels = [line.get_label() for line in _subflow_lines(everything.axes[0])]
    assert len(labels) == 3 and all(re.match(r"[0-9a-f]{8} ", label) for label in labels)


def test_plot_keeps_the_busiest_subflows(tmp_path: Path, mpl: Any) -> None:
    from mptcp._plot import MAX_SUBFLOWS

    samples = [_sample(t, local=("10.0.1.2", 1000 + i), bytes_acked=int(t * 10) * i)
               for t in (0.0, 0.1) for i in range(MAX_SUBFLOWS + 3)]
    fig = mptcp.plot(_recording_with(samples), tmp_path / "many.png")
    ports = sorted(int(line.get_label().split(" ")[0].rsplit(":")[1])
                   for line in _subflow_lines(fig.axes[0]))
    assert ports == [1000 + i for i in range(3, MAX_SUBFLOWS + 3)]
    assert f"{MAX_SUBFLOWS} busiest of {MAX_SUBFLOWS + 3} subflows" in fig._suptitle.get_text()


def test_plot_errors(tmp_path: Path, mpl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _two_subflow_recording()
    with pytest.raises(ValueError, match="unknown metric 'latency': choose from throughput"):
        mptcp.plot(rec, tmp_path / "x.png", metrics=("throughput", "latency"))
    with pytest.raises(ValueError, match="no samples of connection 00000099"):
        mptcp.plot(rec, tmp_path / "x.png", token=0x99)
    with pytest.raises(ValueError, match="use .png or .svg"):
        mptcp.plot(rec, tmp_path / "x.nope")
    with pytest.raises(FileNotFoundError):
        mptcp.plot(tmp_path / "missing.csv", tmp_path / "x.png")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(RuntimeError, match=re.escape('pip install "mptcp[plot]"')) as info:
        mptcp.plot(rec, tmp_path / "x.png")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.png").exists()


def test_plot_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], mpl: Any) -> None:
    _two_subflow_recording().save(tmp_path / "run.csv")
    code = cli.main(["plot", str(tmp_path / "run.csv"), "--size", "800x600"])
    assert code == 0 and (tmp_path / "run.png").exists()
    assert "2 subflows" in capsys.readouterr().out
    (tmp_path / "cut.csv").write_text((tmp_path / "run.csv").read_text()[:-3])
    code, err = _main(capsys, "plot", str(tmp_path / "cut.csv"))
    assert code == 1 and len(err.splitlines()) == 1 and "truncated" in err
    code, err = _main(capsys, "plot", str(tmp_path / "none.csv"))
    assert code == 1 and len(err.splitlines()) == 1 and "No such file" in err
