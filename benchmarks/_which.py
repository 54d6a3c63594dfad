"""Which ``mptcp`` a benchmark measures: the one ``import mptcp`` finds.

The benchmarks never put ``src/`` on ``sys.path`` themselves: ``src/mptcp`` has no
compiled core until one is built there, and importing it then fails half-way. They
measure the installed package (``pip install .``), or the working tree when asked
explicitly with ``PYTHONPATH=src`` after ``python setup.py build_ext --inplace``.
Each prints the line :func:`describe` returns before it measures anything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def load() -> ModuleType:
    """``import mptcp``, or exit with a message saying how to make one importable."""
    try:
        import mptcp
        from mptcp import _mptcp  # noqa: F401  (the compiled core)
    except ImportError as err:
        sys.exit(f"{Path(sys.argv[0]).name}: cannot import mptcp ({err}). Install it "
                 "(pip install .) or build the core in place and point PYTHONPATH at src "
                 "(python setup.py build_ext --inplace; PYTHONPATH=src python ...)")
    return mptcp


def describe(mptcp: ModuleType) -> str:
    """``measuring mptcp VERSION from PATH (installed|working tree)``."""
    path = Path(mptcp.__file__).resolve().parent
    where = "the working tree" if REPO in path.parents else "installed"
    return f"measuring mptcp {mptcp.__version__} from {path} ({where}), python {sys.version.split()[0]}"


def announce() -> ModuleType:
    """:func:`load`, then print :func:`describe` (flushed, so it comes first)."""
    mptcp = load()
    print(describe(mptcp), flush=True)
    return mptcp
