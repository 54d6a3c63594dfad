"""``mptcp monitor``: the path manager's event stream, one line (or JSON object) per
event, like ``ip mptcp monitor``.

The command asks for a receive buffer of :data:`DEFAULT_RCVBUF` bytes (``--rcvbuf``
to change it) where the library keeps the kernel's default: a process that writes
every event to a pipe or a terminal reads slower than ``ip mptcp monitor``, and at
about 1,200 connections a second (5,000 events a second) the kernel's default
(``net.core.rmem_default``, 208 KiB here) overflowed. ``benchmarks/bench_events.py
--command`` measures it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .._addr import hostport
from ._shared import Stop, jsonable, positive_int, stop_on_signals, token_arg

__all__ = ["add_parser", "run", "event_json", "event_line", "DEFAULT_RCVBUF", "lost_message"]

#: The receive buffer the command asks for (bytes; the kernel doubles it).
DEFAULT_RCVBUF = 4 * 2**20


def add_parser(sub: Any) -> None:
    mon = sub.add_parser("monitor", help="the path manager's event stream, like 'ip mptcp monitor'")
    mon.add_argument("--json", action="store_true", help="one JSON object per event")
    mon.add_argument("--token", type=token_arg,
                     help="only this connection's events (hex, with or without 0x, as "
                          "'mptcp ls', ss and 'ip mptcp monitor' print it)")
    mon.add_argument("--rcvbuf", type=positive_int, default=DEFAULT_RCVBUF, metavar="BYTES",
                     help="receive buffer for events, in bytes (default "
                          f"{DEFAULT_RCVBUF // 2**20} MiB); a larger one loses fewer events "
                          "in bursts")
    mon.set_defaults(func=run)


def event_json(ev: Any) -> dict[str, Any]:
    """An :class:`mptcp.Event` as a JSON-ready dict (``type`` by name, the token as
    8 hex digits, tuples as lists)."""
    d: dict[str, Any] = jsonable(ev)
    d["type"] = getattr(ev.type, "name", int(ev.type))
    return d


def event_line(ev: Any) -> str:
    """One readable line for an :class:`mptcp.Event`: its type, then the fields it carries."""
    parts = [f"{getattr(ev.type, 'name', f'UNKNOWN_{int(ev.type)}'):<16}"]
    for field, value in ev._asdict().items():
        if field == "type" or value is None:
            continue
        if field == "token":
            parts.append(f"token={value:08x}")
        elif field in ("local", "remote"):
            parts.append(f"{field}={hostport(value)}")
        elif isinstance(value, bool):
            parts.append(f"{field}={int(value)}")
        else:
            parts.append(f"{field}={value}")
    return " ".join(parts)


def lost_message(rcvbuf: int, losses: int) -> str:
    """What the command says when the kernel dropped events (in its own terms:
    ``--rcvbuf``, not the library's ``rcvbuf=``)."""
    return (f"the kernel dropped MPTCP events (ENOBUFS; {losses} time{'s' if losses != 1 else ''} "
            f"so far): the receive buffer ({rcvbuf} bytes) was full, so the event stream is "
            "incomplete. Monitoring goes on; pass a larger --rcvbuf, or write the output "
            "somewhere faster than this terminal")


def run(args: argparse.Namespace) -> int:
    import json

    from .. import EventsLostError, events

    out = sys.stdout
    try:
        with stop_on_signals(), events(token=args.token, rcvbuf=args.rcvbuf) as mon:
            while True:
                try:
                    # What is queued goes out in one write; the output is flushed
                    # before waiting, so every event still shows as it comes.
                    ev = mon.next(0)
                    if ev is None:
                        out.flush()
                        ev = mon.next()
                except EventsLostError:
                    # Never a silently shorter stream: mark the gap in the output too.
                    if args.json:
                        out.write(json.dumps({"type": "EVENTS_LOST", "losses": mon.losses}) + "\n")
                    else:
                        out.write(f"EVENTS_LOST      losses={mon.losses}\n")
                    out.flush()
                    print(f"mptcp monitor: {lost_message(mon.rcvbuf, mon.losses)}",
                          file=sys.stderr, flush=True)
                    continue
                if ev is None:
                    out.flush()
                    return 0
                out.write((json.dumps(event_json(ev)) if args.json else event_line(ev)) + "\n")
    except (KeyboardInterrupt, Stop):
        return 0
