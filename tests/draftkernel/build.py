"""Build the draft-API kernel test double and prepare environments that load it.

The double (``draft_double.c``) is an LD_PRELOAD object, so it must be in the
environment of a *new* process: use :func:`child_env` for subprocesses.

Run as a script to build and print the path: ``python tests/draftkernel/build.py``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "draft_double.c"
DEFAULT_OUTDIR = HERE / "_build"
SO_NAME = "draft_double.so"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-fPIC", "-shared"]
LIBS = ["-ldl", "-lpthread"]


class BuildError(RuntimeError):
    """The double could not be compiled."""


class CompilerNotFound(BuildError):
    """gcc is not installed: callers may skip (but not in CI)."""


def find_gcc() -> str | None:
    """Path of gcc (or $CC if set), None if missing."""
    return shutil.which(os.environ.get("CC", "gcc"))


def build_double(outdir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Compile the double into ``outdir`` (default ``tests/draftkernel/_build``).

    Rebuilds only when the source is newer than the cached object. Raises
    :class:`CompilerNotFound` without gcc, :class:`BuildError` (with gcc's
    output) if compilation fails.
    """
    return build_preload(SOURCE, SO_NAME, outdir)


def build_preload(source: pathlib.Path, so_name: str,
                  outdir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Compile one LD_PRELOAD object from ``source`` as ``outdir/so_name`` (cached)."""
    out = pathlib.Path(outdir) if outdir is not None else DEFAULT_OUTDIR
    out.mkdir(parents=True, exist_ok=True)
    so = out / so_name
    if so.exists() and so.stat().st_mtime >= source.stat().st_mtime:
        return so
    gcc = find_gcc()
    if gcc is None:
        raise CompilerNotFound(f"gcc not found: cannot build {source.name}")
    # Compile to a private name then rename: parallel test runs never load a
    # half-written object.
    fd, tmp = tempfile.mkstemp(prefix=f".{so_name}.", suffix=".so", dir=out)
    os.close(fd)
    try:
        proc = subprocess.run(
            [gcc, *CFLAGS, "-o", tmp, str(source), *LIBS],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"gcc failed ({proc.returncode}) building {source}:\n{proc.stderr}"
            )
        # mkstemp made it 0600; other users (non-root test runs) must load it.
        os.chmod(tmp, 0o755)
        os.replace(tmp, so)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return so


def child_env(
    so_path: str | os.PathLike[str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``os.environ`` plus the double in LD_PRELOAD, plus ``extra``.

    The double goes *after* existing LD_PRELOAD entries: AddressSanitizer's
    runtime must be the first preloaded object.
    """
    env = dict(os.environ)
    if extra:
        env.update(extra)
    so = str(pathlib.Path(so_path).resolve())
    existing = [p for p in env.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p]
    if so not in existing:
        existing.append(so)
    env["LD_PRELOAD"] = ":".join(existing)
    return env


if __name__ == "__main__":
    print(build_double())
