"""The ``mptcp`` command (also ``python -m mptcp``): one module per subcommand.

Exit codes: 0 success, 1 runtime failure, 2 usage. Errors go to stderr as one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import demo, endpoint, exporter, ls, monitor, plot, record, sockopt, top
from ._shared import UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mptcp", description="See and steer Multipath TCP subflows.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_parser(sub)
    endpoint.add_parsers(sub)
    ls.add_parser(sub)
    monitor.add_parser(sub)
    top.add_parser(sub)
    sockopt.add_parser(sub)
    record.add_parser(sub)
    plot.add_parser(sub)
    exporter.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .._errors import MPTCPError

    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # mptcp._lab.LabTerminated (SIGTERM/SIGHUP while the demo's lab is open) carries signum
        signum = getattr(err, "signum", None)
        if isinstance(signum, int):
            print(f"mptcp {args.command}: {err}; namespaces removed", file=sys.stderr)
            return 128 + signum
        print("mptcp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mptcp monitor | head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except (MPTCPError, OSError, RuntimeError, ValueError, TimeoutError) as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return 1
