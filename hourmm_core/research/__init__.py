"""Research tools: pricer calibration, strategy backtests and parameter sweeps.

Everything here runs offline on historical ticks (``hourmm_core.data.load_ticks``)
through the same compiled quant core the live pricer uses, so a score measured
here is a score of the production code path. Units follow docs/DESIGN.md:
timestamps are int ms UTC, sigma is per sqrt(second) of log price, tau is in
seconds inside the pricer, probabilities are P(close >= open) of the hour.

Submodules are imported on demand (``hourmm_core.research.calibration`` etc.)
so that ``import hourmm_core.research`` never drags in matplotlib or Dask.

CLI entry points for ``hourmm_core.cli`` (``hourmm calibrate DATA`` /
``hourmm backtest DATA``): :func:`main_calibrate` and :func:`main_backtest`
take an argv list (without the sub-command) and return the process exit code.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["calibration", "kline_calibration", "calibrate_cli", "backtest", "sweep", "plots", "main_calibrate", "main_backtest"]


def main_calibrate(argv: Sequence[str] | None = None) -> int:
    """`hourmm calibrate [DATA] [options]`: prints the score table, writes PNG + HTML; exit code."""
    from hourmm_core.research import calibrate_cli

    return calibrate_cli.main(argv)


def main_backtest(argv: Sequence[str] | None = None) -> int:
    """`hourmm backtest [DATA] [options]`: per-hour PnL table, writes PNG + HTML + JSON; exit code."""
    from hourmm_core.research import backtest_cli

    return backtest_cli.main(argv)
