"""``mptcp sockopt``: read or set one socket option of one subflow of any MPTCP
connection of the namespace, by token and the subflow's addresses as ``mptcp ls``
prints them (the upstream kernel, through BPF: root or CAP_BPF + CAP_PERFMON)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._addr import parse_hostport, token_hex
from ._shared import UsageError, token_arg

__all__ = ["add_parser", "run", "hostport_arg"]


def hostport_arg(text: str) -> tuple[str, int]:
    """``10.0.1.2:5000``, ``10.0.2.2%c2:5000`` (as ``ss`` and ``ls`` print a device
    binding) or ``[fd00::1]:5000`` -> (host, port)."""
    try:
        return parse_hostport(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parser(sub: Any) -> None:
    so = sub.add_parser("sockopt", help="one subflow's socket options (mark, congestion, ...)")
    so_sub = so.add_subparsers(dest="action", required=True)
    lst = so_sub.add_parser("list", help="the options one subflow can have on its own")
    lst.add_argument("--json", action="store_true")
    for action in ("get", "set"):
        p = so_sub.add_parser(action, help=f"{action} one option of one subflow")
        p.add_argument("token", type=token_arg, help="the connection (hex, as 'mptcp ls' prints it)")
        p.add_argument("local", type=hostport_arg, help="the subflow's local host:port")
        p.add_argument("remote", type=hostport_arg, help="the subflow's remote host:port")
        p.add_argument("option", help="e.g. mark, congestion, priority, user-timeout, maxseg "
                                      "('mptcp sockopt list' shows them all)")
        if action == "set":
            p.add_argument("value", help="an integer (0x... for hex) or, for congestion and "
                                         "bindtodevice, a name")
        p.add_argument("--json", action="store_true")
    so.set_defaults(func=run)


def _option(name: str) -> Any:
    import mptcp

    options = mptcp.subflow_options()
    want = name.lower().replace("_", "-")
    for opt in options:
        if want in (opt.name, opt.constant.lower().replace("_", "-")):
            return opt
    raise UsageError(f"no option {name!r}; one of: {', '.join(o.name for o in options)}")


def _value(opt: Any, text: str) -> Any:
    if opt.kind == "bytes":
        return text.encode()
    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"{opt.name} takes an integer, not {text!r}") from None


def _shown(opt: Any, value: Any) -> Any:
    return value.rstrip(b"\0").decode(errors="replace") if isinstance(value, bytes) else value


def run(args: argparse.Namespace) -> int:
    import mptcp

    if args.action == "list":
        options = mptcp.subflow_options()
        if args.json:
            print(json.dumps([o._asdict() for o in options]))
        else:
            for o in options:
                can = "/".join(w for w, ok in (("get", o.get), ("set", o.set)) if ok)
                print(f"{o.name:<22} {o.constant:<26} {o.kind:<5} {can:<7} {o.note}")
        return 0
    opt = _option(args.option)
    if args.action == "set":
        value = _value(opt, args.value)
        mptcp.set_subflow_sockopt(args.token, args.local, args.remote, opt.level, opt.optname, value)
    else:
        value = mptcp.get_subflow_sockopt(args.token, args.local, args.remote, opt.level,
                                          opt.optname, 16 if opt.kind == "bytes" else None)
    if args.json:
        print(json.dumps({"token": token_hex(args.token), "local": list(args.local),
                          "remote": list(args.remote), "option": opt.name,
                          "value": _shown(opt, value)}))
    elif args.action == "get":
        print(_shown(opt, value))
    return 0

