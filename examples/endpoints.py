"""Manage the in-kernel path manager: limits and endpoints, like ``ip mptcp``.

    python examples/endpoints.py ADDR [--dev DEV]

As root: shows the limits, allows two extra subflows, adds ADDR as a ``subflow``
endpoint (optionally bound to DEV), marks it backup, lists the endpoints, and
removes it again. Reading endpoints and limits needs no privilege; changing them
needs CAP_NET_ADMIN in the network namespace.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, TextIO

import mptcp


def main(addr: str, dev: Optional[str] = None, out: TextIO = sys.stdout) -> List[Any]:
    """Add, change and remove one endpoint; return the endpoints while it existed."""
    with mptcp.PathManager() as pm:
        print(f"path manager: {pm.mode}; limits {pm.limits()}", file=out)
        before = pm.limits()
        pm.set_limits(subflows=max(before.subflows, 2))
        ep = pm.add_endpoint(addr, dev=dev, subflow=True)
        try:
            pm.set_endpoint_flags(ep.id, backup=True)
            listed = pm.endpoints()
            for e in listed:
                print(f"  id {e.id}  {e.addr}  {e.flags!r}  dev {e.dev}", file=out)
        finally:
            pm.remove_endpoint(ep.id)
            pm.set_limits(subflows=before.subflows)
        print(f"removed endpoint {ep.id}; limits back to {pm.limits()}", file=out)
        return listed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr")
    parser.add_argument("--dev")
    args = parser.parse_args()
    main(args.addr, args.dev)
