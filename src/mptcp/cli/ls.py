"""``mptcp ls``: every MPTCP connection of the namespace with its subflows, like
``ss -tiM``."""

from __future__ import annotations

import argparse
import json
from typing import Any, Iterator, List

from .._addr import hostport
from ._shared import human_bytes, jsonable, opt

__all__ = ["add_parser", "run", "lines"]


def add_parser(sub: Any) -> None:
    ls = sub.add_parser("ls", help="MPTCP connections and their subflows, like 'ss -tiM'")
    ls.add_argument("--json", action="store_true",
                    help="a JSON list of connections mirroring mptcp.connections()")
    ls.add_argument("--listening", action="store_true", help="also list listening sockets")
    ls.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import connections

    conns = connections(listening=args.listening)
    if args.json:
        print(json.dumps([jsonable(c) for c in conns]))
        return 0
    for line in lines(conns):
        print(line)
    return 0


def lines(conns: List[Any]) -> Iterator[str]:
    from .. import TCPState

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
                   f"  loc {opt(d.loc_id)} rem {opt(d.rem_id)}  rtt {rtt}  cwnd {opt(s.snd_cwnd)}"
                   f"  sent {human_bytes(s.bytes_sent)}  acked {human_bytes(s.bytes_acked)}"
                   f"  recv {human_bytes(s.bytes_received)}{'  backup' if s.backup else ''}")
