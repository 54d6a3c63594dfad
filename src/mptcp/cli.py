"""The ``mptcp`` command (also ``python -m mptcp``).

Exit codes: 0 success, 1 runtime failure, 2 usage. Errors go to stderr as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from types import FrameType
from typing import Any, Iterator, List, Optional


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    return _demo.run(sys.stdout, size_mib=args.size)


def _cmd_endpoint(args: argparse.Namespace) -> int:
    from .pm import PathManager

    with PathManager() as pm:
        if args.action == "show":
            eps = pm.endpoints()
            if args.json:
                print(json.dumps([_jsonable(e) for e in eps]))
            for e in eps if not args.json else ():
                print(_endpoint_line(e))
        elif args.action == "add":
            pm.add_endpoint(args.addr, id=args.id, dev=args.dev, port=args.port,
                            signal="signal" in args.flags, subflow="subflow" in args.flags,
                            backup="backup" in args.flags, fullmesh="fullmesh" in args.flags)
        elif args.action == "del":
            pm.remove_endpoint(args.id)
        elif args.action == "change":
            pm.set_endpoint_flags(
                args.id,
                backup=True if "backup" in args.flags else False if "nobackup" in args.flags else None,
                fullmesh=True if "fullmesh" in args.flags else False if "nofullmesh" in args.flags else None,
            )
        elif args.action == "flush":
            pm.flush_endpoints()
    return 0


def _cmd_limits(args: argparse.Namespace) -> int:
    from .pm import PathManager

    with PathManager() as pm:
        if args.action == "set":
            pm.set_limits(subflows=args.subflows, add_addr_accepted=args.add_addr_accepted)
        else:
            limits = pm.limits()
            if args.json:
                print(json.dumps(_jsonable(limits)))
            else:
                print(f"add_addr_accepted {limits.add_addr_accepted} subflows {limits.subflows}")
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from .diag import connections

    conns = connections(listening=args.listening)
    if args.json:
        print(json.dumps([_jsonable(c) for c in conns]))
        return 0
    for line in _ls_lines(conns):
        print(line)
    return 0


def _ls_lines(conns: List[Any]) -> Iterator[str]:
    from ._top import hostport, human_bytes
    from ._records import TCPState

    if not conns:
        yield "no MPTCP connections in this network namespace"
        return
    lw = max(len(hostport(c.local)) for c in conns)
    rw = max(len(hostport(c.remote)) for c in conns)
    yield f"{'TOKEN':<8}  {'STATE':<11}  {'LOCAL':<{lw}}  {'REMOTE':<{rw}}  SUBFLOWS"
    for c in conns:
        try:
            state = TCPState(c.state).name
        except ValueError:
            state = str(c.state)
        token = "-" if c.token is None else f"{c.token:08x}"
        yield (f"{token:<8}  {state:<11}  {hostport(c.local):<{lw}}  {hostport(c.remote):<{rw}}"
               f"  {len(c.subflows)}")
        for s, d in zip(c.subflows, c.subflow_diag):
            rtt = "-" if s.rtt_us is None else f"{s.rtt_us / 1000:.2f}ms"
            yield (f"  {'B' if s.backup else ' '} {hostport(s.local)} -> {hostport(s.remote)}"
                   f"  loc {_opt(d.loc_id)} rem {_opt(d.rem_id)}  rtt {rtt}  cwnd {_opt(s.snd_cwnd)}"
                   f"  sent {human_bytes(s.bytes_sent)}  acked {human_bytes(s.bytes_acked)}"
                   f"  recv {human_bytes(s.bytes_received)}{'  backup' if s.backup else ''}")


def _opt(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def _token_arg(text: str) -> int:
    """A connection token in hex, as ``ls``, ``ss`` and ``ip mptcp monitor`` print it."""
    try:
        value = int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hexadecimal token") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"token {text} does not fit in 32 bits")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def _port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def event_json(ev: Any) -> dict[str, Any]:
    """An :class:`mptcp.Event` as a JSON-ready dict (``type`` by name, tuples as lists)."""
    d = {k: _jsonable(v) for k, v in ev._asdict().items()}
    d["type"] = getattr(ev.type, "name", int(ev.type))
    return d


def event_line(ev: Any) -> str:
    """One readable line for an :class:`mptcp.Event`: its type, then the fields it carries."""
    from ._top import hostport

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


class _Stop(Exception):
    """SIGTERM/SIGHUP: end the command like Ctrl-C does."""


def _raise_stop(signum: int, frame: Optional[FrameType]) -> None:
    raise _Stop()


def _cmd_monitor(args: argparse.Namespace) -> int:
    from ._errors import EventsLostError
    from ._events import events

    old = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with events(token=args.token) as mon:
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
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _cmd_top(args: argparse.Namespace) -> int:
    from . import _top

    return _top.run(args.interval, once=args.once, as_json=args.json)


def _cmd_exporter(args: argparse.Namespace) -> int:
    from . import exporter

    exporter.require_prometheus_client()  # RuntimeError naming the extra to install
    old = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        exporter.serve(args.port, args.address)
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0


def _endpoint_line(e: Any) -> str:
    d = e._asdict()
    return " ".join(f"{k} {v}" for k, v in d.items() if v is not None)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mptcp", description="See and steer Multipath TCP subflows.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a live two-path MPTCP transfer in private namespaces (root)")
    demo.add_argument("--size", type=int, default=24, help="MiB to transfer (default 24)")
    demo.set_defaults(func=_cmd_demo)

    ep = sub.add_parser("endpoint", help="in-kernel path manager endpoints, like 'ip mptcp endpoint'")
    ep_sub = ep.add_subparsers(dest="action", required=True)
    show = ep_sub.add_parser("show")
    show.add_argument("--json", action="store_true")
    add = ep_sub.add_parser("add")
    add.add_argument("addr")
    add.add_argument("--id", type=int)
    add.add_argument("--dev")
    add.add_argument("--port", type=int)
    add.add_argument("flags", nargs="*", choices=["signal", "subflow", "backup", "fullmesh"])
    dele = ep_sub.add_parser("del")
    dele.add_argument("id", type=int)
    change = ep_sub.add_parser("change")
    change.add_argument("id", type=int)
    change.add_argument("flags", nargs="+", choices=["backup", "nobackup", "fullmesh", "nofullmesh"])
    ep_sub.add_parser("flush")
    ep.set_defaults(func=_cmd_endpoint, json=False)

    lim = sub.add_parser("limits", help="path manager limits, like 'ip mptcp limits'")
    lim_sub = lim.add_subparsers(dest="action", required=True)
    lshow = lim_sub.add_parser("show")
    lshow.add_argument("--json", action="store_true")
    lset = lim_sub.add_parser("set")
    lset.add_argument("--subflows", type=int)
    lset.add_argument("--add-addr-accepted", type=int)
    lim.set_defaults(func=_cmd_limits, json=False)

    ls = sub.add_parser("ls", help="MPTCP connections and their subflows, like 'ss -tiM'")
    ls.add_argument("--json", action="store_true",
                    help="a JSON list of connections mirroring mptcp.connections()")
    ls.add_argument("--listening", action="store_true", help="also list listening sockets")
    ls.set_defaults(func=_cmd_ls)

    mon = sub.add_parser("monitor", help="the path manager's event stream, like 'ip mptcp monitor'")
    mon.add_argument("--json", action="store_true", help="one JSON object per event")
    mon.add_argument("--token", type=_token_arg,
                     help="only this connection's events (hex, as 'mptcp ls' prints it)")
    mon.set_defaults(func=_cmd_monitor)

    top = sub.add_parser("top", help="live per-subflow throughput and RTT, sorted by traffic")
    top.add_argument("--interval", type=_positive_float, default=1.0,
                     help="seconds between refreshes (default 1.0)")
    top.add_argument("--once", action="store_true",
                     help="print one snapshot (rates over one interval) and exit")
    top.add_argument("--json", action="store_true", help="snapshots as JSON, one per line")
    top.set_defaults(func=_cmd_top)

    exp = sub.add_parser("exporter", help="serve Prometheus metrics (needs 'mptcp[exporter]')")
    exp.add_argument("--port", type=_port_arg, required=True, help="TCP port (0 picks a free one)")
    exp.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    exp.set_defaults(func=_cmd_exporter)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._errors import MPTCPError

    try:
        return int(args.func(args))
    except KeyboardInterrupt as err:
        # mptcp.lab.LabTerminated (SIGTERM/SIGHUP while the demo's lab is open) carries signum
        signum = getattr(err, "signum", None)
        if isinstance(signum, int):
            print(f"mptcp {args.command}: {err}; namespaces removed", file=sys.stderr)
            return 128 + signum
        print("mptcp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mptcp monitor | head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except (MPTCPError, OSError, RuntimeError, ValueError, TimeoutError) as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
