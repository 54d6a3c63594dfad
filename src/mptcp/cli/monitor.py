"""``mptcp monitor``: the path manager's event stream, one line (or JSON object) per
event, like ``ip mptcp monitor``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._addr import hostport
from ._shared import Stop, jsonable, stop_on_signals, token_arg

__all__ = ["add_parser", "run", "event_json", "event_line"]


def add_parser(sub: Any) -> None:
    mon = sub.add_parser("monitor", help="the path manager's event stream, like 'ip mptcp monitor'")
    mon.add_argument("--json", action="store_true", help="one JSON object per event")
    mon.add_argument("--token", type=token_arg,
                     help="only this connection's events (hex, as 'mptcp ls' prints it)")
    mon.set_defaults(func=run)


def event_json(ev: Any) -> dict[str, Any]:
    """An :class:`mptcp.Event` as a JSON-ready dict (``type`` by name, tuples as lists)."""
    d = {k: jsonable(v) for k, v in ev._asdict().items()}
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


def run(args: argparse.Namespace) -> int:
    from .. import EventsLostError, events

    try:
        with stop_on_signals(), events(token=args.token) as mon:
            while True:
                try:
                    ev = mon.next()
                except EventsLostError as err:
                    # Never a silently shorter stream: mark the gap in the output too.
                    if args.json:
                        print(json.dumps({"type": "EVENTS_LOST", "losses": mon.losses}), flush=True)
                    else:
                        print(f"EVENTS_LOST      losses={mon.losses}", flush=True)
                    print(f"mptcp monitor: {err}", file=sys.stderr, flush=True)
                    continue
                if ev is None:
                    return 0
                print(json.dumps(event_json(ev)) if args.json else event_line(ev), flush=True)
    except (KeyboardInterrupt, Stop):
        return 0
