"""``mptcp exporter``: serve Prometheus metrics (:mod:`mptcp.exporter`)."""

from __future__ import annotations

import argparse
from typing import Any

from ._shared import Stop, port_arg, stop_on_signals

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    exp = sub.add_parser("exporter", help="serve Prometheus metrics (needs 'mptcp[exporter]')")
    exp.add_argument("--port", type=port_arg, required=True, help="TCP port (0 picks a free one)")
    exp.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    exp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import exporter

    exporter.require_prometheus_client()  # RuntimeError naming the extra to install
    try:
        with stop_on_signals():
            exporter.serve(args.port, args.address)
    except (KeyboardInterrupt, Stop):
        return 0
    return 0
