"""No import cycle in hourmm_core (module-level imports; a cycle hidden in a function still counts).

An AST scan, not an import: every ``import``/``from ... import`` of an hourmm_core module
is an edge, wherever it sits (module level or inside a function: a lazy import only hides a
cycle), except under ``if TYPE_CHECKING:`` (never executed). Importing ``a.b.c`` also runs
``a/__init__`` and ``a/b/__init__``, so those are edges too.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import hourmm_core

ROOT = Path(hourmm_core.__file__).resolve().parent
PKG = "hourmm_core"


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _type_checking_lines(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    for n in ast.walk(sub):
                        if hasattr(n, "lineno"):
                            skip.add(n.lineno)
    return skip


def _edges(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names)
    out: set[str] = set()
    for t in targets:
        if not t.startswith(PKG):
            continue
        parts = t.split(".")
        for i in range(1, len(parts) + 1):  # the module and every parent package it runs
            m = ".".join(parts[:i])
            if m in mods and m != name:
                out.add(m)
    return out


def find_cycles() -> list[list[str]]:
    mods = _modules()
    graph = {m: _edges(m, p, mods) for m, p in mods.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle:
    # drop edges from a submodule up to its own parent packages
    for m, es in graph.items():
        graph[m] = {e for e in es if not m.startswith(e + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan, iterative enough for a few hundred modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def test_no_import_cycle_in_hourmm_core():
    assert find_cycles() == [], "import cycle(s) in hourmm_core"


def test_the_scan_sees_a_cycle(tmp_path, monkeypatch):
    """The detector itself can fail: two modules importing each other inside functions."""
    pkg = tmp_path / PKG
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from hourmm_core import b\n")
    (pkg / "b.py").write_text("from hourmm_core.a import f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hourmm_core import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert find_cycles() == [["hourmm_core.a", "hourmm_core.b"]]
