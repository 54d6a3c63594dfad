"""Open a backup subflow, make it a normal one, and close it (userspace path manager).

    python examples/open_close_subflow.py HOST PORT LOCAL_ADDR

As root, in a network namespace whose path manager is the userspace one
(``sysctl net.mptcp.pm_type=1``, Linux 5.19+; ids need 6.5+): connects to
HOST:PORT, opens a second subflow from LOCAL_ADDR as a backup with ``open_sub``,
flips it to normal priority with ``set_sub_prio`` and closes it with
``close_sub``. ``main(sock, local)`` does the steering on any MPTCP connection.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any, Optional, TextIO, Tuple

import mptcp


def main(sock: Any, local: str, remote: Optional[Tuple[str, int]] = None,
         out: TextIO = sys.stdout) -> mptcp.Subflow:
    """Open, reprioritise and close one subflow; return it as opened."""
    print(f"before: subflow ids {mptcp.get_sub_ids(sock)}", file=out)
    new = mptcp.open_sub(sock, local=local, remote=remote, backup=True, timeout=5.0)
    print(f"opened: id {new.id} {new.local} -> {new.remote} backup={new.backup}", file=out)
    try:
        mptcp.set_sub_prio(sock, new.id, backup=False)
        print(f"now:    {mptcp.get_sub_tuple(sock, new.id)}", file=out)
    finally:
        mptcp.close_sub(sock, new.id)
    print(f"after:  subflow ids {mptcp.get_sub_ids(sock)}", file=out)
    # The same, scoped: ``with mptcp.subflow(sock, local=local) as sf: ...``
    return new


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("local", help="a local address for the new subflow")
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as s:
        s.connect((args.host, args.port))
        s.sendall(b"hello")  # subflows join a connection once data has flowed
        main(s, args.local)
