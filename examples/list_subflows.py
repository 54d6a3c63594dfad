"""List the subflows of one MPTCP connection, with the connection's own counters.

    python examples/list_subflows.py HOST PORT

connects to HOST:PORT over MPTCP, sends a little data and prints what
``mptcp.info`` and ``mptcp.subflows`` say (Linux 5.16+; subflow ids need 6.5+).
``main(sock)`` does the printing for any connected MPTCP socket.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any, List, TextIO

import mptcp


def main(sock: Any, out: TextIO = sys.stdout) -> List[mptcp.SubflowInfo]:
    """Print the connection and its subflows; return the subflows."""
    info = mptcp.info(sock)
    print(f"token {info.token:#010x}  subflows {info.subflows_total}  "
          f"sent {info.bytes_sent} B  acked {info.bytes_acked} B  fallback {info.fallback}",
          file=out)
    subs = mptcp.subflows(sock)
    for sf in subs:
        local = "%s:%d" % sf.local if sf.local else "?"
        remote = "%s:%d" % sf.remote if sf.remote else "?"
        state = mptcp.TCPState(sf.state).name if sf.state else "?"
        print(f"  id {sf.id}  {local} -> {remote}  {state}  rtt {sf.rtt_us} us  "
              f"cwnd {sf.snd_cwnd}  acked {sf.bytes_acked} B", file=out)
    return subs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as s:
        s.connect((args.host, args.port))
        s.sendall(b"hello")
        main(s)
