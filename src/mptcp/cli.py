"""The ``mptcp`` command (also ``python -m mptcp``).

Exit codes: 0 success, 1 runtime failure, 2 usage. Errors go to stderr as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional


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


def _endpoint_line(e: Any) -> str:
    d = e._asdict()
    return " ".join(f"{k} {v}" for k, v in d.items() if v is not None)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
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
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._errors import MPTCPError

    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("mptcp: interrupted", file=sys.stderr)
        return 130
    except (MPTCPError, OSError, RuntimeError, ValueError, TimeoutError) as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
