"""The package's shape: each folder (or module) is a layer, and imports point down.

Walks every module of ``src/mptcp`` with ``ast`` and resolves each import statement
(also the ones inside functions; not the ones under ``if TYPE_CHECKING:``) to a
module of the package. Importing the package itself (``import mptcp``,
``from .. import connections``) is importing the public layer. The test fails on an
import of a higher layer, on a cycle, and on a module no layer claims.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "mptcp"
if not (PKG / "__init__.py").exists():  # pragma: no cover - a test run outside the checkout
    pytest.skip("no source tree next to the tests", allow_module_level=True)

# Lowest first. A module belongs to the layer of its first path component.
LAYERS: list[tuple[str, set[str]]] = [
    ("core", {"_mptcp"}),
    ("base", {"_version", "_errors", "_addr", "_records", "_args"}),
    ("netlink", {"_netlink"}),
    ("backends", {"_backends"}),
    ("features", {"pm", "diag", "_events", "_procs", "_recording", "_plot"}),
    ("public", {"_api", "__init__"}),
    ("commands", {"cli", "exporter", "_lab", "__main__"}),
]
RANK = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def is_package(name: str) -> bool:
    return name == "__init__" or (PKG.joinpath(*name.split(".")) / "__init__.py").exists()


def exists(name: str) -> bool:
    if name == "_mptcp":
        return True  # the compiled core (src/_mptcp.pyx)
    base = PKG.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    skip.add(id(sub))
    return skip


def imports_of(path: Path) -> set[str]:
    """The package modules (``__init__`` for the package itself) ``path`` imports."""
    me = module_name(path)
    here = me.split(".") if is_package(me) and me != "__init__" else me.split(".")[:-1]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mptcp" or alias.name.startswith("mptcp."):
                    rest = alias.name[len("mptcp."):] if "." in alias.name else ""
                    found.add(rest or "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                if node.level - 1 > len(here):
                    raise AssertionError(f"{path}: import beyond the package")
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "mptcp" or node.module.startswith("mptcp.")):
                parts = node.module.split(".")[1:]
            else:
                continue
            target = ".".join(parts)
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                if exists(sub):
                    found.add(sub)  # `from . import _args`: the submodule
                else:
                    found.add(target or "__init__")  # a name from a module or the package
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PKG.rglob("*.py"))}


def layer(name: str) -> int:
    return RANK[name.split(".")[0]]


def test_every_module_has_a_layer() -> None:
    unclaimed = sorted(m for m in graph() if m.split(".")[0] not in RANK)
    assert not unclaimed, f"modules no layer claims (add them to LAYERS): {unclaimed}"


def test_imports_point_down() -> None:
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
              for m, targets in graph().items() for t in sorted(targets)
              if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    g = graph()
    # Importing a.b.c runs a/__init__ and a/b/__init__ first: those are imported
    # too, unless the importer already sits inside them.
    for m, targets in g.items():
        for t in list(targets):
            parts = t.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent != m and not m.startswith(parent + "."):
                    targets.add(parent)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_walker_sees_upward_imports(tmp_path: Path) -> None:
    # The checks above would pass vacuously if imports were not resolved.
    g = graph()
    assert "_records" in g["_netlink.mptcp_pm"] and "_mptcp" in g["_records"]
    assert "__init__" in g["cli.ls"]  # `from .. import connections`: the public package
    assert "_backends.upstream.read" in g["pm"]


def test_import_mptcp_loads_no_feature_module() -> None:
    code = ("import sys, mptcp\n"
            "print(' '.join(m for m in sys.modules if m.startswith('mptcp.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    lazy = {"mptcp.pm", "mptcp._events", "mptcp.diag", "mptcp._netlink", "mptcp.cli",
            "mptcp.exporter", "mptcp._lab", "mptcp._backends.draft",
            "mptcp._backends.upstream.control"}
    assert not lazy & set(out), sorted(lazy & set(out))


# The library never starts a process. The namespace lab runs `ip` and `ss` (for the
# demo, the tests and the benchmarks) and, as `_lab.Command`, the user's command of
# `mptcp record -- COMMAND` (as `timeout` and `time` do): that module and no other.
MAY_SPAWN = {"_lab"}
_SPAWN_CALLS = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp",
                "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp",
                "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle"}


def spawns(source: str) -> bool:
    """Whether the code imports subprocess or calls an os function that starts a process."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("subprocess", "pty")
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module in ("subprocess", "pty"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in _SPAWN_CALLS for a in node.names):
            return True
        if (isinstance(node, ast.Attribute) and node.attr in _SPAWN_CALLS
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            return True
    return False


def test_only_the_lab_starts_processes() -> None:
    assert spawns("import subprocess") and spawns("import os\nos.execvp('ip', ['ip'])")
    assert spawns("from os import posix_spawn") and not spawns("import os\nos.getpid()")
    found = {module_name(p) for p in sorted(PKG.rglob("*.py")) if spawns(p.read_text())}
    assert found <= MAY_SPAWN, sorted(found - MAY_SPAWN)
