"""Research tools: pricer calibration, strategy backtests and parameter sweeps.

Everything here runs offline on historical ticks (``hourmm_core.data.load_ticks``)
through the same compiled quant core the live pricer uses, so a score measured
here is a score of the production code path. Units follow docs/DESIGN.md:
timestamps are int ms UTC, sigma is per sqrt(second) of log price, tau is in
seconds inside the pricer, probabilities are P(close >= open) of the hour.

Submodules are imported on demand (``hourmm_core.research.calibration`` etc.)
so that ``import hourmm_core.research`` never drags in matplotlib or Dask.
"""
from __future__ import annotations

__all__ = ["calibration", "backtest", "sweep", "plots"]
