"""The command's argparse parser class: a usage error is one line on stderr and exit
status 2, for the top level and every subcommand (their parsers inherit the class),
so a script that runs ``mptcp`` reads one line; ``--help`` has the rest."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # Words a subcommand leaves over are its error, named after it ("mptcp
        # record: unrecognized arguments"), not the top level's.
        parsed, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed, extra
