"""Research defaults from configs/research.yaml, overlaid by an optional user file.

Kept apart from hourmm_core.config: these are offline knobs (grids, sampling),
not the operator contract, so they are nested YAML rather than env variables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hourmm_core.config import CONFIG_DIR, read_yaml_mapping

RESEARCH_CONFIG_ENV = "HOURMM_RESEARCH_CONFIG"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(p: Path) -> dict[str, Any]:
    return read_yaml_mapping(p, "research config", "sections")


def load_research_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """configs/research.yaml, then ``path`` (or $HOURMM_RESEARCH_CONFIG) merged over it."""
    cfg: dict[str, Any] = {}
    default = CONFIG_DIR / "research.yaml"
    if default.exists():
        cfg = _read(default)
    extra = path or os.environ.get(RESEARCH_CONFIG_ENV, "").strip() or None
    if extra:
        cfg = _merge(cfg, _read(Path(extra)))
    return cfg
