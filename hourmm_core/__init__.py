"""HourMM core library: compiled quant core, venue clients, journal, config and simulators.

``import hourmm_core`` fails with instructions when the Cython extension has not
been built: there is deliberately no silent fallback to the slow reference code.
"""
from __future__ import annotations

__version__ = "0.1.0"
