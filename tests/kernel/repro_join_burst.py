"""Reproduce a kernel bug: a subflow joining during a burst corrupts the stream.

Found on this machine's kernel (6.18.44): a 1 MiB ``sendall`` on a fresh MPTCP
connection whose client has an in-kernel ``subflow`` endpoint (the second subflow
joins while the burst is in flight) reaches the server with the right length and
wrong bytes in about one transfer in five; the damage always starts at the same
stream offset (88,752 here) and spans a few KB holding data from about 800 bytes
further on. With the join completed before the burst, or with no endpoint (one
subflow), no transfer was ever damaged. Only plain sockets carry the data; the
package's namespace lab just builds the two namespaces.

    python tests/kernel/repro_join_burst.py [--runs N]

Prints both cases' counts; exits 1 if a burst was damaged (the bug is present),
0 if none was (as root, on a kernel with MPTCP).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time

from mptcp._lab import Lab

MIB = 1 << 20
SOL_MPTCP, MPTCP_INFO = 284, 1


def extra_subflows(sock: socket.socket) -> int:
    return sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 96)[0]


def transfer(lab: Lab, join_first: bool) -> tuple[int, int | None]:
    """(bytes received, first damaged offset or None) of one 1 MiB transfer."""
    listener = lab.socket(lab.server_ns, socket.AF_INET, socket.SOCK_STREAM, 262)
    listener.bind(("0.0.0.0", 0))
    listener.listen(1)
    got = bytearray()

    def serve() -> None:
        conn, _ = listener.accept()
        buf = bytearray(256 * 1024)
        with conn:
            while n := conn.recv_into(buf):
                got.extend(buf[:n])

    server = threading.Thread(target=serve)
    server.start()
    payload = os.urandom(MIB)
    with lab.connect(port=listener.getsockname()[1], timeout=5) as sock:
        if join_first:
            sock.sendall(payload[:1024])
            deadline = time.monotonic() + 5
            while extra_subflows(sock) < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            sock.sendall(payload[1024:])
        else:
            sock.sendall(payload)
    server.join(10)
    listener.close()
    damaged = next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b), None)
    return len(got), damaged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="transfers per case (default 50)")
    args = parser.parse_args()
    damaged = {"join during the burst": 0, "join before the burst": 0}
    offsets = set()
    for _ in range(args.runs):
        with Lab(prefix="mptcp-repro") as lab:
            for case, join_first in (("join during the burst", False),
                                     ("join before the burst", True)):
                n, at = transfer(lab, join_first)
                if n != MIB or at is not None:
                    damaged[case] += 1
                    offsets.add(at)
    for case, count in damaged.items():
        print(f"{case}: {count} of {args.runs} transfers damaged")
    if offsets:
        print(f"first damaged offset(s): {sorted(o for o in offsets if o is not None)}")
    print(f"kernel {os.uname().release}")
    return 1 if damaged["join during the burst"] else 0


if __name__ == "__main__":
    sys.exit(main())
