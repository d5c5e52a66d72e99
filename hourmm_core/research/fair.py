"""The backtest trader's fair value on its decision grid: the compiled pricer on historical ticks.

What the live snapshot publishes, re-computed on research data: ``fair_up`` from
``fair_prob_batch`` with the EWMA sigma of the primary half-life, and ``fair_unc`` as the
disagreement ``|p(sigma) - p(sigma_alt)|`` with the long half-life's sigma.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hourmm_core import quant
from hourmm_core.clock import HOUR_MS


def fair_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: Any,
              sigma: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fair P(up) on the decision grid of one hour: (grid_ts, fair_up, sigma_at_grid).

    Uses the compiled ``fair_prob_batch`` on the last tick at or before each grid
    time (never after), with the hour's first trade as the strike. ``sigma`` is
    per-tick sigma (per sqrt second); a 2-D array uses its first column. ``params``
    needs ``nu`` and ``p_min`` (a :class:`~hourmm_core.research.backtest.BacktestParams`).
    """
    grid, p, sg, _ = fair_unc_path(ts_ms, price, hour_start, first, params, sigma, step_ms)
    return grid, p, sg


def fair_unc_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: Any,
                  sigma: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid_ts, fair_up, sigma_at_grid, fair_unc) - ``fair_unc`` is what the live snapshot
    publishes: ``|p(sigma) - p(sigma_alt)|`` with sigma_alt the second column of a 2-D
    ``sigma`` (the long half-life), zeros when ``sigma`` is 1-D."""
    grid = hour_start + np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    idx = np.maximum(np.searchsorted(ts_ms, grid, side="right") - 1, first)
    S = np.ascontiguousarray(price[idx])
    K = np.full(S.shape, price[first])
    tau_s = (hour_start + HOUR_MS - grid) / 1000.0
    two = sigma.ndim == 2
    sg = np.ascontiguousarray(sigma[idx, 0] if two else sigma[idx])
    nu, pm = float(params.nu), float(params.p_min)
    p = np.asarray(quant.fair_prob_batch(S, K, tau_s, sg, nu, pm), dtype=np.float64)
    if two and sigma.shape[1] > 1:
        alt = np.asarray(quant.fair_prob_batch(S, K, tau_s, np.ascontiguousarray(sigma[idx, 1]), nu, pm),
                         dtype=np.float64)
        unc = np.abs(p - alt)
    else:
        unc = np.zeros_like(p)
    return grid, p, sg, unc
