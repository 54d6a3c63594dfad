"""``mptcp ls``: every MPTCP connection of the namespace with its subflows, like
``ss -tiM``; with ``-p``, the processes holding each connection's socket, like ``ss
-p`` (from ``/proc/PID/fd``: the ones this caller may read).

Also the subflows whose MPTCP socket is gone (``connections(orphans=True)``): ``ss
-tiM`` lists them, so ``ls`` does, under their token, marked ``gone``. A
connection that fell back to TCP is marked ``fallback``, as ``ss`` marks it, and a
device-bound address is shown as ``host%dev:port``, as ``ss`` shows it.
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence

from .._addr import hostport, token_hex
from ._shared import human_bytes, mptcp_disabled, opt, processes_json, processes_text

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run", "lines", "json_text", "FLAGS"]

#: Every option of ``ls``: the command parses exactly these without argparse.
FLAGS = ("--json", "--listening", "--processes")

#: inode -> the processes holding that socket (``mptcp._procs.Process`` records).
Owners = Mapping[int, Sequence[Any]]


def add_parser(sub: Any) -> None:
    ls = sub.add_parser("ls", help="MPTCP connections and their subflows, like 'ss -tiM'")
    ls.add_argument("--json", action="store_true",
                    help="a JSON list of connections mirroring mptcp.connections(orphans=True)"
                         " (tokens as 8 hex digits)")
    ls.add_argument("--listening", action="store_true", help="also list listening sockets")
    ls.add_argument("-p", "--processes", action="store_true",
                    help="the processes holding each connection, like 'ss -p' (those whose "
                         "/proc/PID/fd this user may read)")
    ls.set_defaults(func=run)


def json_text(conns: List[Any], owners: Optional[Owners] = None) -> str:
    """``conns`` (:class:`mptcp.Connection` records) as the JSON text ``ls --json``
    prints; with ``owners``, each connection also gets ``"processes"``."""
    from .. import Connection, DiagSubflow, MPTCPInfo, SubflowInfo
    from ._json import dumps_records, encoder

    nested = (MPTCPInfo, SubflowInfo, DiagSubflow)
    if owners is None:
        return dumps_records(conns, Connection, nested)
    import json

    enc = encoder(Connection, nested)
    # Each record's object, its closing brace replaced by one more key.
    return "[" + ",".join(
        enc(c)[:-1] + ',"processes":' + json.dumps(processes_json(owners.get(c.inode, ())),
                                                    separators=(",", ":")) + "}"
        for c in conns) + "]"


def run(args: argparse.Namespace) -> int:
    import gc

    from .. import connections

    # One snapshot, printed, and the process ends: thousands of fresh records are
    # not garbage, and collecting them would only cost time.
    gc.disable()
    conns = connections(listening=args.listening, orphans=True)
    owners: Optional[Owners] = None
    if args.processes:
        from .._procs import socket_owners

        owners = socket_owners({c.inode for c in conns if c.inode})
    out = sys.stdout
    if args.json:
        out.write(json_text(conns, owners) + "\n")
        if not conns:
            note = mptcp_disabled()
            if note:
                print(f"mptcp ls: {note}", file=sys.stderr)
        return 0
    text = "\n".join(lines(conns, owners))
    out.write(text + "\n")
    return 0


class _Devices:
    """Interface names by index, looked up once each (this namespace's, like ``ss``)."""

    def __init__(self) -> None:
        self._names: Dict[int, Optional[str]] = {}

    def name(self, index: int) -> Optional[str]:
        if not index:
            return None
        if index not in self._names:
            try:
                self._names[index] = socket.if_indextoname(index)
            except OSError:
                self._names[index] = str(index)  # gone meanwhile: the number, like ss
        return self._names[index]


def lines(conns: List[Any], owners: Optional[Owners] = None) -> Iterator[str]:
    """The text view: a line per connection (with ``owners``, ending in the
    processes holding it, as ``ss -p`` shows them), an indented line per subflow."""
    from .. import TCPState
    from .._records import state_name

    if not conns:
        note = mptcp_disabled()
        yield f"no MPTCP connections in this network namespace{': ' + note if note else ''}"
        return
    devs = _Devices()
    local = [hostport(c.local, devs.name(c.if_index)) for c in conns]
    remote = [hostport(c.remote) for c in conns]
    lw = max(max(map(len, local)), 5)
    rw = max(max(map(len, remote)), 6)
    yield f"{'TOKEN':<8}  {'STATE':<11}  {'LOCAL':<{lw}}  {'REMOTE':<{rw}}  SUBFLOWS"
    for c, loc, rem in zip(conns, local, remote):
        gone = c.state == TCPState.CLOSE  # connections(orphans=True): the MPTCP socket is gone
        notes = ""
        if gone:
            notes = "  gone (its MPTCP socket is closed; these subflows outlive it)"
        elif c.info is not None and c.info.fallback:
            notes = "  fallback"
        if owners is not None and owners.get(c.inode):
            notes += "  " + processes_text(owners[c.inode])
        yield (f"{token_hex(c.token):<8}  {state_name(c.state, '-'):<11}  {loc:<{lw}}  {rem:<{rw}}"
               f"  {len(c.subflows)}{notes}")
        for s, d in zip(c.subflows, c.subflow_diag):
            rtt = "-" if s.rtt_us is None else f"{s.rtt_us / 1000:.2f}ms"
            state = "" if s.state == TCPState.ESTABLISHED else f"  {state_name(s.state, '-')}"
            yield (f"  {'B' if s.backup else ' '} {hostport(s.local, devs.name(d.if_index))}"
                   f" -> {hostport(s.remote)}{state}"
                   f"  loc {opt(d.loc_id)} rem {opt(d.rem_id)}  rtt {rtt}  cwnd {opt(s.snd_cwnd)}"
                   f"  sent {human_bytes(s.bytes_sent)}  acked {human_bytes(s.bytes_acked)}"
                   f"  recv {human_bytes(s.bytes_received)}{'  backup' if s.backup else ''}")


