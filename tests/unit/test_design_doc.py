"""docs/DESIGN.md names only things that exist: every file or folder of its layout block and every
repository path it quotes. (A renamed or deleted module must take its doc line with it.)"""
from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

DESIGN = REPO_ROOT / "docs" / "DESIGN.md"


def layout_entries() -> list[str]:
    """Paths of the layout block's tree lines: ``quant/`` then ``  vol.pyx/.pxd`` -> hourmm_core/quant/vol.pyx."""
    text = DESIGN.read_text()
    block = text[text.index("```\nhourmm_core/") + 4:]
    block = block[:block.index("```")]
    out, stack = [], []          # stack of (indent, folder)
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or len(m.group(1)) > 24:          # continuation lines sit in the description column
            continue
        indent, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        base = "/".join(f for _, f in stack)
        path = f"{base}/{name}" if base else name
        if name.endswith("/"):
            stack.append((indent, name.rstrip("/")))
        out.append(path.split("/.")[0].rstrip("/"))   # "vol.pyx/.pxd" -> "vol.pyx"
    return out


def test_layout_block_names_existing_files():
    entries = layout_entries()
    assert len(entries) > 30 and "hourmm_core/quant/vol.pyx" in entries and "runners/binance_pricer.py" in entries
    missing = [p for p in entries if not (REPO_ROOT / p).exists()]
    assert not missing, f"docs/DESIGN.md layout names files that do not exist: {missing}"


def test_quoted_repository_paths_exist():
    quoted = set(re.findall(r"`((?:hourmm_core|runners|tests|docs|configs|benchmarks|deploy)/[\w./-]+)`",
                            DESIGN.read_text()))
    assert quoted, "no quoted paths found: the pattern is wrong"
    missing = sorted(p for p in quoted if not (REPO_ROOT / p.rstrip("/")).exists())
    assert not missing, f"docs/DESIGN.md quotes paths that do not exist: {missing}"
