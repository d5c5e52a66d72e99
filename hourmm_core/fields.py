"""``setting(...)``: a dataclass field read from an environment variable, with its range.

A leaf module (imports nothing from hourmm_core) so every component can declare its own
config fields next to the code that uses them (``StrategyParams``, ``Limits``,
``Schedule``) and :func:`hourmm_core.config.from_settings` reads, parses and range-checks
them: one definition per knob, env names as the operator guide has them.
"""
from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any, lo: float | None = None, hi: float | None = None,
            choices: tuple | None = None, env: str | None = None) -> Any:
    """Declare a dataclass field read from the env var of the same (upper-case) name."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "env": env})
