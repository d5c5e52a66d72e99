"""Research defaults from configs/research.yaml, overlaid by an optional user file.

Kept apart from hourmm_core.config: these are offline knobs (grids, sampling),
not the operator contract, so they are nested YAML rather than env variables.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hourmm_core.config import CONFIG_DIR, ConfigError

RESEARCH_CONFIG_ENV = "HOURMM_RESEARCH_CONFIG"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(p: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"research config {p} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"research config {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"research config {p} must hold a mapping of sections")
    return data


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
