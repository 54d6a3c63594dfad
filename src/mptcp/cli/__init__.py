"""The ``mptcp`` command (also ``python -m mptcp``): one module per subcommand.

Exit status (the README's "The command" documents the same):

- 0: success; also ``monitor``, ``top`` and ``exporter`` stopped with Ctrl-C,
  SIGTERM or SIGHUP (their normal way to end), and a reader that went away
  (``mptcp monitor | head``).
- 1: a runtime failure: the kernel or the system refused (an ``OSError``, an
  ``MPTCPError``), a timeout, a missing extra.
- 2: a usage error, one line on stderr: argparse's (an unknown command, a malformed
  value), a name only the library knows (`mptcp sockopt get ... nonesuch`), and a
  ``ValueError``/``TypeError`` that the library's argument checks raised for a
  value the user gave (``mptcp endpoint del 300``: ids are 1-255). The library
  raises those two for bad arguments only, before any syscall (README, Errors),
  so one raised inside the library is the user's input; one raised anywhere else
  (the command's own code, the standard library) is a failure: 1 (a
  ``TypeError`` there is a bug, shown with its traceback).
- 130: interrupted (Ctrl-C, SIGINT) in any other command.
- 128+N: ``mptcp demo`` ended by signal N (SIGTERM 143, SIGHUP 129) while its
  namespaces were up; they are removed first.

Errors go to stderr as one line, ``mptcp COMMAND: what happened``.

Start-up is kept short (``mptcp ls`` is run in loops and by scripts): only the
chosen subcommand's module is imported, and each module imports what its work
needs when it runs.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, List, NoReturn, Optional

if TYPE_CHECKING:
    import argparse

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE",
           "EXIT_INTERRUPTED"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: subcommand -> the module of this package that defines it (its ``add_parser`` or
#: ``add_parsers``), in the order ``mptcp --help`` lists them.
COMMANDS = {
    "demo": "demo", "endpoint": "endpoint", "limits": "endpoint", "ls": "ls",
    "monitor": "monitor", "top": "top", "sockopt": "sockopt", "record": "record",
    "plot": "plot", "exporter": "exporter",
}

# Modules of the command layer: a ValueError raised in them is not the library's
# argument check.
_COMMAND_LAYER = ("mptcp.cli", "mptcp._lab", "mptcp.exporter", "mptcp.__main__")


def _module(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(f".{name}", __name__)


def _add(sub: Any, module: ModuleType) -> None:
    adder = getattr(module, "add_parsers", None) or module.add_parser
    adder(sub)


def _parser(only: Optional[str] = None) -> "argparse.ArgumentParser":
    from ._usage import OneLineParser

    parser = OneLineParser(prog="mptcp", description="See and steer Multipath TCP subflows.")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = None if only is None else COMMANDS[only]
    for command, module in COMMANDS.items():
        if command in sub.choices:
            continue  # defined with another command of its module
        if wanted is None or module == wanted:
            _add(sub, _module(module))
        else:
            # Not the command being run: a name for argparse's usage line only.
            sub.add_parser(command)
    return parser


def build_parser() -> "argparse.ArgumentParser":
    """The whole parser, every subcommand defined (``mptcp --help`` uses it)."""
    return _parser()


def _chosen(argv: List[str]) -> Optional[str]:
    # The top-level parser has no option but -h, so the first word is the command.
    if argv and argv[0] in COMMANDS:
        return argv[0]
    return None


def _from_argument_check(err: BaseException) -> bool:
    """Whether the library raised ``err`` (the innermost frame is in ``mptcp`` but
    not in the command layer)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.startswith("mptcp.") and not module.startswith(_COMMAND_LAYER)


def _quick(argv: List[str]) -> Optional[Any]:
    """``mptcp ls`` with its own flags only, parsed without argparse: importing it
    and building the parser were a tenth of the command's time. Anything else
    (``-h``, an abbreviation, a typo) goes through argparse, and a unit test keeps
    the two answers equal."""
    if not argv or argv[0] != "ls":
        return None
    from . import ls

    flags = argv[1:]
    if len(set(flags)) != len(flags) or not set(flags) <= set(ls.FLAGS):
        return None
    from types import SimpleNamespace

    return SimpleNamespace(command="ls", func=ls.run,
                           **{f[2:].replace("-", "_"): f in flags for f in ls.FLAGS})


# Commands that print one snapshot and end: run as the process itself, it ends at
# once, without the interpreter's teardown (freeing thousands of records took a
# sixth of 'mptcp ls --json' at 1,000 connections; benchmarks/bench_system.py).
_EXIT_AT_ONCE = frozenset({"ls"})


def _exit_at_once(status: int) -> NoReturn:
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(status)


def main(argv: Optional[List[str]] = None) -> int:
    process = argv is None  # the process's own command line, not a caller's list
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _quick(argv)
    if args is None:
        args = _parser(_chosen(argv)).parse_args(argv)
    from .._errors import MPTCPError
    from ._shared import UsageError

    try:
        status = int(args.func(args))
        if process and args.command in _EXIT_AT_ONCE:
            _exit_at_once(status)
        return status
    except UsageError as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as err:
        # mptcp._lab.LabTerminated (SIGTERM/SIGHUP while the demo's lab is open) carries signum
        signum = getattr(err, "signum", None)
        if isinstance(signum, int):
            print(f"mptcp {args.command}: {err}; namespaces removed", file=sys.stderr)
            return 128 + signum
        print("mptcp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`mptcp monitor | head`): stop quietly.
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except (ValueError, TypeError) as err:
        if _from_argument_check(err):
            print(f"mptcp {args.command}: {err}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(err, TypeError):
            raise  # a bug of the command itself: its traceback helps more than a line
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except (MPTCPError, OSError, RuntimeError, TimeoutError) as err:
        print(f"mptcp {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILURE
