"""Every MPTCP connection of this network namespace, like ``ss -M`` but typed.

    python examples/connections.py

Uses sock_diag (Linux 5.9+), no privilege needed: each connection with its token,
addresses, counters and subflows (with the backup flag) grouped under it.
"""

from __future__ import annotations

import sys
from typing import Any, List, TextIO

import mptcp


def main(out: TextIO = sys.stdout) -> List[Any]:
    """Print the connections and their subflows; return the connections."""
    conns = mptcp.connections()
    for c in conns:
        sent = c.info.bytes_sent if c.info is not None else None
        print(f"{c.token:#010x}  {c.local} -> {c.remote}  sent {sent} B  "
              f"{len(c.subflows)} subflow(s)", file=out)
        for sf, diag in zip(c.subflows, c.subflow_diag):
            print(f"    {sf.local} -> {sf.remote}  rtt {sf.rtt_us} us  backup {sf.backup}  "
                  f"address ids {diag.loc_id}/{diag.rem_id}", file=out)
    if not conns:
        print("no MPTCP connections in this network namespace", file=out)
    return conns


if __name__ == "__main__":
    main()
