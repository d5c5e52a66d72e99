"""Errors shared across the package (a leaf module: imports nothing from hourmm_core)."""
from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""
