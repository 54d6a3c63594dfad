"""``mptcp plot``: draw a recording (:mod:`mptcp._plot`; needs ``mptcp[plot]``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Tuple

from ._shared import token_arg

__all__ = ["add_parser", "run"]


def _metrics_arg(text: str) -> Tuple[str, ...]:
    from .._plot import check_metrics

    try:
        return check_metrics([m.strip() for m in text.split(",") if m.strip()])
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _size_arg(text: str) -> Tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) == 0 \
            or int(height) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels (1200x800)")
    return int(width), int(height)


def add_parser(subparsers: Any) -> None:
    from .._plot import DEFAULT_METRICS, METRICS

    plot = subparsers.add_parser(
        "plot", help="draw a recording: one panel per metric, one line per subflow (needs "
        "'mptcp[plot]')",
        description="Draw a file written by 'mptcp record': one panel per metric over time, "
        "one colour per subflow (backup subflows dashed), subflow and address events as "
        "vertical markers.")
    plot.add_argument("file", metavar="FILE", help="the samples CSV written by 'mptcp record'")
    plot.add_argument("-o", "--output", metavar="OUT",
                      help="the picture, .png or .svg (default: FILE with .png)")
    plot.add_argument("--metrics", type=_metrics_arg, default=DEFAULT_METRICS,
                      help=f"comma-separated panels (default {','.join(DEFAULT_METRICS)}; "
                      f"known: {', '.join(METRICS)})")
    plot.add_argument("--token", type=token_arg, help="only this connection (hex)")
    plot.add_argument("--size", type=_size_arg, metavar="WIDTHxHEIGHT",
                      help="picture size in pixels (default 1200 wide, 260 per panel)")
    plot.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import plot
    from .._recording import load

    out = args.output or os.path.splitext(args.file)[0] + ".png"
    try:
        recording = load(args.file)
        fig = plot(recording, out, metrics=args.metrics, token=args.token,
                   size=args.size or (1200, 0))
    except ValueError as err:
        # A damaged file, or nothing to draw in it: a failure (1), not a usage error
        # (2; the arguments argparse checked are fine).
        print(f"mptcp plot: {err}", file=sys.stderr)
        return 1
    lines = sum(1 for line in fig.axes[0].get_lines() if str(line.get_gid()).startswith("subflow"))
    print(f"mptcp plot: {out}: {len(args.metrics)} panels, {lines} subflows")
    return 0


