"""Watch MPTCP path-manager events: connections and subflows coming and going.

    python examples/watch_events.py [--count N] [--timeout S] [--asyncio]

As root (joining the ``mptcp_pm_events`` group needs CAP_NET_ADMIN), prints each
event of this network namespace as it happens, blocking or under asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, List, Optional, TextIO

import mptcp


def _line(ev: Any) -> str:
    name = ev.type.name if hasattr(ev.type, "name") else str(ev.type)
    token = f"{ev.token:#010x}" if ev.token is not None else "-"
    return f"{name:<16} token {token}  local {ev.local}  remote {ev.remote}"


def main(count: int = 10, timeout: Optional[float] = None, use_asyncio: bool = False,
         out: TextIO = sys.stdout, monitor: Any = None) -> List[Any]:
    """Print ``count`` events (fewer if ``timeout`` seconds pass with none); return them.

    ``monitor`` is an open ``mptcp.events()`` monitor to read from (closed here), so
    a caller can subscribe before it makes the traffic; by default one is opened.
    """
    mon = monitor if monitor is not None else mptcp.events()
    seen: List[Any] = []

    async def read_async() -> None:
        while len(seen) < count:
            ev = await mon.next_async(timeout)
            if ev is None:
                return
            seen.append(ev)
            print(_line(ev), file=out, flush=True)

    with mon:
        if use_asyncio:
            asyncio.run(read_async())
        else:
            while len(seen) < count:
                ev = mon.next(timeout)
                if ev is None:
                    break
                seen.append(ev)
                print(_line(ev), file=out, flush=True)
    return seen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--asyncio", action="store_true")
    args = parser.parse_args()
    main(args.count, args.timeout, args.asyncio)
