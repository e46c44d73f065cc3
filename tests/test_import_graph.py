"""The core's modules import each other without cycles, read statically from the source.

A cycle hidden by an import inside a function still breaks whoever imports the
modules in the other order; the family engines (pruning, the shared block
capture, activation's calibration) import everything at module level.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sparsebench"
# engines that must not hide an import of the core inside a function
ENGINES = ("sparsebench.pruning", "sparsebench.lm.blocks", "sparsebench.families.pruning",
           "sparsebench.activation.greedy", "sparsebench.placement")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, known: set[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """(modules imported at module level, [(line, module) imported inside a function or class])."""
    top: set[str] = set()
    inner: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from pkg import sub` imports the submodule when one exists, else a name of pkg
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("sparsebench"):
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if node.col_offset == 0:
                top.add(name)
            else:
                inner.append((node.lineno, name))
    return top, inner


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_find_cycle_sees_a_cycle_through_three_modules():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_level_imports_of_the_core_have_no_cycle():
    mods = modules()
    known = set(mods)
    # a package's __init__ runs before its submodules: importing a.b imports a first, which is no cycle
    graph = {m: imports(p, known)[0] - {m} - parents(m) for m, p in mods.items()}
    assert find_cycle(graph) is None


def test_family_engines_import_the_core_at_module_level_only():
    mods = modules()
    hidden = [f"{m}:{line} imports {name}" for m, p in mods.items() if m.startswith(ENGINES)
              for line, name in imports(p, set(mods))[1]]
    assert not hidden, "imports inside functions: " + "; ".join(hidden)


def test_the_old_top_level_calibration_module_is_gone_and_the_engines_import_alone():
    assert not (PACKAGE / "calibration.py").exists()
    # each engine imported first, in a fresh interpreter: an import-order cycle would fail here
    code = "; ".join(f"import {m}" for m in ("sparsebench.lm.blocks",)) + "; import sparsebench.pruning.pipeline"
    for first in ("sparsebench.pruning.pipeline", "sparsebench.activation.greedy", "sparsebench.families.pruning"):
        subprocess.run([sys.executable, "-c", f"import {first}; {code}"], check=True, cwd=ROOT)
