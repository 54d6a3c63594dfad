"""``mptcp record``: sample every subflow's counters and the path manager's events
to CSV, optionally while running a command (:mod:`mptcp._recording` does the work).

Exits 0, or with ``-- COMMAND`` the command's own exit status (128 + N if a signal N
ended it, 124 if ``--duration`` ended it, as ``timeout`` does); its own failures
exit 1, usage errors 2 (one line on stderr).
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, List, Optional, TextIO

from .. import _recording
from .._procs import ProcessTreeSockets
from ._shared import Stop, human_bytes, positive_float, token_arg

if TYPE_CHECKING:
    from .._lab import Command

__all__ = ["add_parser", "run"]

#: Exit status when ``--duration`` ended the command (``timeout``'s).
TIMED_OUT = 124
#: Seconds between progress lines when stderr is not a terminal.
LOG_EVERY = 5.0
#: Seconds a command gets to exit after SIGTERM before it is killed.
KILL_AFTER = 5.0
#: Seconds a command gets to exit on the terminal's Ctrl-C (which reached it too)
#: before the recorder passes SIGINT on itself.
SIGINT_GRACE = 1.0


def add_parser(subparsers: Any) -> None:
    rec = subparsers.add_parser(
        "record", help="record every subflow's counters and the path manager's events to CSV",
        description="Sample every MPTCP connection of this network namespace (one sock_diag "
        "dump per sample) and record the path manager's events alongside, on one clock. "
        "With -- COMMAND: run it, record only its connections (and its children's), stop "
        "when it exits and exit with its status.")
    rec.add_argument("-o", "--output", metavar="FILE",
                     help="samples CSV (default mptcp-record-DATE-TIME.csv); the events go to "
                     "<stem>.events.csv, the metadata to <stem>.meta.json")
    rec.add_argument("--interval", type=positive_float, default=0.1, metavar="SECONDS",
                     help="seconds between samples (default 0.1; 0.01 works)")
    rec.add_argument("--duration", type=positive_float, metavar="SECONDS",
                     help="stop after this many seconds (a running COMMAND gets SIGTERM)")
    rec.add_argument("--token", type=token_arg,
                     help="only this connection (hex, as 'mptcp ls' and 'ss' print it)")
    rec.add_argument("-q", "--quiet", action="store_true",
                     help="no progress line and no summary on stderr")
    rec.add_argument("run", nargs="*", metavar="-- COMMAND [ARGS...]",
                     help="run COMMAND and record only its connections")
    rec.set_defaults(func=run)


class _Progress:
    """The progress line: rewritten in place on a terminal, else every LOG_EVERY s.

    Cosmetic: if stderr goes away (``mptcp record ... 2>&1 | head``) it falls
    silent, and the recording and the command carry on."""

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.last = -LOG_EVERY
        self.drawn = False

    def show(self, rec: _recording.Recording, path: str) -> None:
        if self.quiet:
            return
        p = rec.progress()
        if not self.tty and p.elapsed - self.last < LOG_EVERY:
            return
        self.last = p.elapsed
        line = (f"mptcp record: {p.elapsed:.1f} s, {p.samples} samples, {p.connections} "
                f"connection{'s' if p.connections != 1 else ''}, {p.rows} rows, "
                f"{human_bytes(p.bytes_written)} -> {path}")
        self._write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.drawn = self.tty

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):  # a closed pipe or stream
            self.quiet = True

    def summary(self, rec: _recording.Recording, path: str) -> None:
        if self.quiet:
            return
        p = rec.progress()
        events = f"{p.events} events"
        if rec.events_error:
            events = "no events"
        if p.events_lost:
            events += f" (the kernel dropped events {p.events_lost} times: gaps marked)"
        if p.events_unattributed:
            events += f" ({p.events_unattributed} of unattributable connections left out)"
        erase = "\r\x1b[K" if self.drawn else ""  # the progress line, on a terminal
        self._write(f"{erase}mptcp record: {p.rows} rows in {p.elapsed:.1f} s ({p.samples} "
                    f"samples, {p.late} late, {p.skipped} skipped), {events} -> {path}\n")


def _default_output() -> str:
    return datetime.datetime.now().strftime("mptcp-record-%Y%m%d-%H%M%S.csv")


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class _HeldSignals:
    """Raises SIGINT as KeyboardInterrupt and SIGTERM/SIGHUP as ``Stop(signum)``, except
    inside ``with held:``, whose end raises what arrived meanwhile: so a signal never
    lands between starting the command (or opening the files) and keeping its handle."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: Optional[int] = None

    def handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.depth:
            self.pending = self.pending or signum
            return
        self.raise_for(signum)

    @staticmethod
    def raise_for(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stop(signum)

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            self.raise_for(signum)


def run(args: argparse.Namespace) -> int:
    path = args.output or _default_output()
    command: List[str] = list(args.run)  # args.command is the subcommand's name
    if command[:1] == ["--"]:
        command = command[1:]
    held = _HeldSignals()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, held.handler) for sig in signals}
    try:
        return _record(args, path, command, _Progress(sys.stderr, args.quiet), held)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _record(args: argparse.Namespace, path: str, command: List[str], progress: _Progress,
            held: _HeldSignals) -> int:
    err = sys.stderr
    rec: Optional[_recording.Recording] = None
    proc: Optional[Command] = None
    status = 0
    crash: Optional[BaseException] = None
    try:
        try:
            with held:
                monitor, why = _recording.open_events(args.token)
                if why is not None:
                    print(f"mptcp record: recording samples only: {why}", file=err, flush=True)
                owners = ProcessTreeSockets() if command else None
                try:
                    rec = _recording.stream(path, args.interval, token=args.token, owners=owners,
                                            monitor=monitor, events_error=why,
                                            extra_meta={"command": command or None})
                except BaseException:
                    if monitor is not None:
                        monitor.close()
                    raise
                if command:
                    proc = _start(command, rec)
                    assert owners is not None
                    owners.add_root(proc.pid)
                    rec.write_meta()  # with the command's pid, should we be killed
            status = _run(rec, proc, args.duration, progress, path)
        except (KeyboardInterrupt, Stop) as stop:
            signum = stop.args[0] if isinstance(stop, Stop) else signal.SIGINT
            if proc is not None:
                # SIGTERM and SIGHUP came to us alone and are passed on, as timeout
                # does. Ctrl-C on a terminal reached the command too (one process
                # group): it gets a moment to exit before SIGINT is passed on, for a
                # SIGINT sent to this process alone.
                status = _exit_status(_reap(proc, signum) if isinstance(stop, Stop)
                                      else _reap(proc, signal.SIGINT, first_wait=SIGINT_GRACE))
            elif command:
                status = 128 + signum  # stopped before the command could start
        except Exception as unexpected:  # noqa: BLE001 - ended cleanly below, then raised
            crash = unexpected
        # Nothing may interrupt closing the files (cmd_record restores the handlers).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if crash is not None and proc is not None and proc.poll() is None:
            _reap(proc, signal.SIGTERM)
        if rec is None:
            if crash is not None:
                raise crash
            return status
        failure = rec.error
        try:
            rec.stop()
        except OSError as e:
            failure = failure or e
        if crash is not None:
            raise crash
        progress.summary(rec, path)
        if failure is not None:
            print(f"mptcp record: {failure}", file=err, flush=True)
            if proc is not None and proc.poll() is None:
                _reap(proc, signal.SIGTERM)
            return 1
        return status
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()


def _start(command: List[str], rec: _recording.Recording) -> Command:
    from .._lab import Command  # the package's one module that starts processes

    try:
        return Command(command)
    except OSError as err:
        rec.stop()
        raise RuntimeError(f"cannot run {command[0]!r}: {err.strerror or err}") from None


def _run(rec: _recording.Recording, proc: Optional[Command],
         duration: Optional[float], progress: _Progress, path: str) -> int:
    """Wait for the command, the duration or a failure; return the exit status."""
    started = time.monotonic()
    while rec.error is None:
        progress.show(rec, path)
        left = 0.2 if duration is None else min(0.2, started + duration - time.monotonic())
        if left <= 0:
            if proc is None:
                return 0
            _reap(proc, signal.SIGTERM)
            return TIMED_OUT
        if proc is None:
            time.sleep(left)
            continue
        code = proc.wait(left)
        if code is not None:
            return _exit_status(code)
    code = None if proc is None else proc.poll()
    if code is not None:
        return _exit_status(code)
    return 1


def _reap(proc: Command, signum: Optional[int] = None, first_wait: float = 0.0) -> int:
    """Wait ``first_wait`` seconds for the command to exit, then send ``signum`` (if
    any) and wait: SIGTERM after KILL_AFTER seconds, SIGKILL after as many again or on
    a second Ctrl-C/SIGTERM."""
    try:
        code = proc.wait(first_wait) if first_wait else None
        if code is not None:
            return code
        for sig in (signum, signal.SIGTERM):
            if sig is not None and proc.poll() is None:
                proc.send_signal(sig)
            code = proc.wait(KILL_AFTER)
            if code is not None:
                return code
    except (KeyboardInterrupt, Stop):
        pass
    return proc.kill()
