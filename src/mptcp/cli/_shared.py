"""What the subcommands share: argument types, JSON forms, human-readable numbers,
and SIGTERM/SIGHUP ending a command the way Ctrl-C does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import FrameType
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["token_arg", "positive_float", "positive_int", "port_arg", "jsonable", "token_json",
           "TOKEN_FIELDS", "mptcp_disabled", "human_bytes", "opt", "Stop", "stop_on_signals",
           "UsageError", "processes_text", "processes_json"]


class UsageError(Exception):
    """A command's arguments are wrong in a way argparse cannot see (an option name
    only the library knows): one line on stderr, exit status 2."""


def _bad(message: str) -> Exception:
    # argparse is imported by whoever parses; not at start-up (``mptcp ls`` skips it)
    import argparse

    return argparse.ArgumentTypeError(message)


def token_arg(text: str) -> int:
    """A connection token in hex, with or without ``0x``: as ``mptcp ls`` (text and
    JSON), ``ss`` and ``ip mptcp monitor`` print it."""
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not digits or len(digits) > 8 or any(c not in _HEX for c in digits):
        if digits and len(digits) > 8 and all(c in _HEX for c in digits):
            raise _bad(
                f"token {text} has {len(digits)} hex digits; a token is 32 bits (at most 8)")
        raise _bad(
            f"{text!r} is not a token: 1 to 8 hex digits, with or without 0x, as 'mptcp ls' prints it")
    value = int(digits, 16)
    if value == 0:
        raise _bad("token 0 is no connection's token (they are 1-ffffffff)")
    return value


_HEX = frozenset("0123456789abcdefABCDEF")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise _bad(f"{text} must be a positive number of seconds")
    return value


def positive_int(text: str, maximum: int = 2**31 - 1) -> int:
    """A whole number from 1 to ``maximum`` (a C int by default)."""
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{text!r} is not a whole number") from None
    if not 1 <= value <= maximum:
        raise _bad(f"{value} is outside 1-{maximum}")
    return value


def port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{text!r} is not a port number") from None
    if not 0 <= value <= 0xFFFF:
        raise _bad(f"port {value} is outside 0-65535")
    return value


#: Fields that hold a connection token: in JSON as 8 hex digits, the text ``ss``
#: and ``ip mptcp monitor`` print (and ``--token`` takes), never a decimal number.
TOKEN_FIELDS = frozenset({"token", "token_rem"})


def token_json(token: Optional[int]) -> Optional[str]:
    """A token as JSON carries it: 8 hex digits, or None."""
    return None if token is None else f"{token:08x}"


def jsonable(value: Any) -> Any:
    """Records as dicts (tokens as hex text), tuples as lists, enums as plain ints."""
    if hasattr(value, "_asdict"):
        return {k: token_json(v) if k in TOKEN_FIELDS and isinstance(v, int) else jsonable(v)
                for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def mptcp_disabled() -> Optional[str]:
    """Why no MPTCP connection can exist in this network namespace, or None: MPTCP
    switched off by sysctl there, or a kernel without MPTCP."""
    try:
        with open("/proc/sys/net/mptcp/enabled") as f:
            value = f.read().strip()
    except FileNotFoundError:
        return "this kernel has no MPTCP (no /proc/sys/net/mptcp)"
    except OSError:
        return None
    if value == "0":
        return ("MPTCP is disabled in this network namespace (net.mptcp.enabled = 0; "
                "'sysctl -w net.mptcp.enabled=1' enables it)")
    return None


def processes_text(procs: Sequence[Any]) -> str:
    """The owners of a socket (:class:`mptcp._procs.Process`) as ``ss -p`` prints
    them, without the fd: ``users:(("iperf3",pid=1234))``; ``""`` for none."""
    if not procs:
        return ""
    return "users:(" + ",".join(f'("{p.name}",pid={p.pid})' for p in procs) + ")"


def processes_json(procs: Sequence[Any]) -> List[Dict[str, Any]]:
    """The owners of a socket as ``--json`` carries them: ``[{"pid": .., "name": ..}]``."""
    return [{"pid": p.pid, "name": p.name} for p in procs]


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


class Stop(BaseException):
    """SIGTERM/SIGHUP: end the command like Ctrl-C does.

    A ``BaseException``, like ``KeyboardInterrupt``: the signal can land inside
    code that handles ``Exception`` (socketserver catches it around each request
    the exporter serves, then goes on serving), and there it would be swallowed.
    """


def _raise_stop(signum: int, frame: Optional[FrameType]) -> None:
    raise Stop()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Stop` inside the block."""
    import signal  # only the long-running commands need it: not at start-up

    old = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
