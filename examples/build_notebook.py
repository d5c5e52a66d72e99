"""Build examples/research_example.ipynb from the percent-format script next to it.

Why a script: the .py file is what CI runs, so it is the source of truth; the
notebook is generated from it (cells split on ``# %%``; ``# %% [markdown]``
cells have their leading ``# `` stripped) and never edited by hand. Uses plain
JSON (nbformat 4.5 layout) so nbformat/jupytext need not be installed.

    python examples/build_notebook.py [SRC.py] [DST.ipynb]
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def split_cells(text: str) -> list[dict[str, Any]]:
    """Percent-format script -> notebook cells (header comment block before the first cell is dropped)."""
    cells: list[tuple[str, list[str]]] = []
    kind, buf = None, []
    for line in text.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, buf))
            kind, buf = ("markdown" if "[markdown]" in line else "code"), []
            continue
        if kind is None:
            continue
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else ("" if line.strip() == "#" else line)
        buf.append(line)
    if kind is not None:
        cells.append((kind, buf))
    out = []
    for i, (k, lines) in enumerate(cells):
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        src = [ln + "\n" for ln in lines]
        src[-1] = src[-1].rstrip("\n")
        cid = hashlib.sha1(f"{i}:{k}:{''.join(src)}".encode()).hexdigest()[:8]
        cell: dict[str, Any] = {"cell_type": k, "id": cid, "metadata": {}, "source": src}
        if k == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return out


def build(src: Path, dst: Path) -> Path:
    """Write the notebook; returns its path."""
    nb = {
        "cells": split_cells(src.read_text()),
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    dst.write_text(json.dumps(nb, indent=1) + "\n")
    return dst


def main(argv: list[str] | None = None) -> int:
    a = list(sys.argv[1:] if argv is None else argv)
    src = Path(a[0]) if a else HERE / "research_example.py"
    dst = Path(a[1]) if len(a) > 1 else src.with_suffix(".ipynb")
    print(build(src, dst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
