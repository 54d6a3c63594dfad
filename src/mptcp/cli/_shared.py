"""What the subcommands share: argument types, JSON forms, human-readable numbers,
and SIGTERM/SIGHUP ending a command the way Ctrl-C does."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any, NoReturn, Optional

__all__ = ["token_arg", "positive_float", "port_arg", "jsonable", "human_bytes", "opt",
           "Stop", "stop_on_signals", "UsageError", "one_line_errors"]


class UsageError(Exception):
    """A command's arguments are wrong in a way argparse cannot see: one line on
    stderr, exit status 2."""


def token_arg(text: str) -> int:
    """A connection token in hex, as ``ls``, ``ss`` and ``ip mptcp monitor`` print it."""
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hexadecimal token") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"token {text} does not fit in 32 bits")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def jsonable(value: Any) -> Any:
    """Records as dicts, tuples as lists, enums as plain ints."""
    if hasattr(value, "_asdict"):
        return {k: jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def human_bytes(n: Optional[float], suffix: str = "") -> str:
    """``1.5 MiB`` style; ``-`` for None."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            text = f"{value:.0f}" if unit == "B" else f"{value:.1f}"
            return f"{text} {unit}{suffix}"
        value /= 1024
    return f"{value:.1f} TiB{suffix}"  # pragma: no cover


def opt(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


class Stop(Exception):
    """SIGTERM/SIGHUP: end the command like Ctrl-C does."""


def _raise_stop(signum: int, frame: Optional[FrameType]) -> None:
    raise Stop()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Stop` inside the block."""
    old = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (a script reads it; ``--help`` has the rest)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # Left over, they would reach the top-level parser's multi-line error.
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make a subcommand's parser report usage errors on one line (argparse has no
    per-subcommand parser class; the error method is all that differs)."""
    parser.__class__ = _OneLineParser
    return parser
