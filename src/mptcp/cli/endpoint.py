"""``mptcp endpoint`` and ``mptcp limits``: the in-kernel path manager's endpoints and
limits, like ``ip mptcp endpoint`` and ``ip mptcp limits``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._shared import jsonable

__all__ = ["add_parsers", "run_endpoint", "run_limits", "endpoint_line"]


def add_parsers(sub: Any) -> None:
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
    ep.set_defaults(func=run_endpoint, json=False)

    lim = sub.add_parser("limits", help="path manager limits, like 'ip mptcp limits'")
    lim_sub = lim.add_subparsers(dest="action", required=True)
    lshow = lim_sub.add_parser("show")
    lshow.add_argument("--json", action="store_true")
    lset = lim_sub.add_parser("set")
    lset.add_argument("--subflows", type=int)
    lset.add_argument("--add-addr-accepted", type=int)
    lim.set_defaults(func=run_limits, json=False)


def endpoint_line(e: Any) -> str:
    d = e._asdict()
    return " ".join(f"{k} {v}" for k, v in d.items() if v is not None)


def run_endpoint(args: argparse.Namespace) -> int:
    from .. import PathManager

    with PathManager() as pm:
        if args.action == "show":
            eps = pm.endpoints()
            if args.json:
                print(json.dumps([jsonable(e) for e in eps]))
            for e in eps if not args.json else ():
                print(endpoint_line(e))
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


def run_limits(args: argparse.Namespace) -> int:
    from .. import PathManager

    with PathManager() as pm:
        if args.action == "set":
            pm.set_limits(subflows=args.subflows, add_addr_accepted=args.add_addr_accepted)
        else:
            limits = pm.limits()
            if args.json:
                print(json.dumps(jsonable(limits)))
            else:
                print(f"add_addr_accepted {limits.add_addr_accepted} subflows {limits.subflows}")
    return 0
