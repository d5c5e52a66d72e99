"""The backtest trader's fair value on its decision grid: the compiled pricer on historical ticks.

What the live snapshot publishes, re-computed on research data: ``fair_up`` from container
A's shipped model (``params.fair_model == "seasonal"``, :func:`seasonal_fair`: the same
numbers as the streaming ``MinutePricer``) or the old digital ``fair_prob_batch`` with the
EWMA sigma of the primary half-life (``"ewma"``), and ``fair_unc`` as the disagreement
``|p - p(sigma_alt)|`` with the long half-life's sigma.
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
    if getattr(params, "fair_model", "ewma") == "seasonal":
        p = seasonal_fair(ts_ms, price, grid, S, K, hour_start + HOUR_MS)
        bad = ~np.isfinite(p)
        if bad.any():   # no closed bar yet (start of the data): the EWMA digital, as a live pricer warming up
            p[bad] = np.asarray(quant.fair_prob_batch(S, K, tau_s, sg, nu, pm), dtype=np.float64)[bad]
    else:
        p = np.asarray(quant.fair_prob_batch(S, K, tau_s, sg, nu, pm), dtype=np.float64)
    if two and sigma.shape[1] > 1:
        alt = np.asarray(quant.fair_prob_batch(S, K, tau_s, np.ascontiguousarray(sigma[idx, 1]), nu, pm),
                         dtype=np.float64)
        unc = np.abs(p - alt)
    else:
        unc = np.zeros_like(p)
    return grid, p, sg, unc


_SEASONAL_CACHE: dict[str, Any] = {}


def seasonal_fair(ts_ms: np.ndarray, price: np.ndarray, grid: np.ndarray, S: np.ndarray, K: np.ndarray,
                  hour_end_ms: int) -> np.ndarray:
    """Container A's shipped fair value (PRICER_MODEL=seasonal, configs/pricer.yaml) on ``grid``.

    1-minute bars of the ticks (close = last tick of the minute), the compiled
    ``minute_level_batch`` variance level after each closed bar, and ``minute_prob_batch``
    at each grid time with the level of the last bar closed by then (as the streaming
    ``MinutePricer`` of the live snapshot). Bars are cached per tick array.
    """
    from hourmm_core.config import PricerConfig

    key = (id(ts_ms), int(ts_ms.size), int(ts_ms[0]) if ts_ms.size else 0)
    c = _SEASONAL_CACHE.get("bars")
    if c is None or c[0] != key:
        cfg = _SEASONAL_CACHE.get("cfg")
        if cfg is None:
            cfg = _SEASONAL_CACHE["cfg"] = PricerConfig.from_env({})
        season = cfg.season()
        minute = ts_ms // 60_000
        last = np.flatnonzero(np.diff(minute, append=minute[-1] + 1) != 0)     # last tick of each minute
        open_ms = (minute[last] * 60_000).astype(np.int64)
        level = np.asarray(quant.minute_level_batch(open_ms, price[last].astype(np.float64), season,
                                                    float(cfg.pricer_halflife_min), float(cfg.pricer_var_prior)))
        c = (key, open_ms, level, season, float(cfg.pricer_var_scale), float(cfg.pricer_nu), float(cfg.pricer_p_min))
        _SEASONAL_CACHE["bars"] = c
    _, open_ms, level, season, vs, nu, pm = c
    j = np.searchsorted(open_ms + 60_000, grid, side="right") - 1          # last bar closed at or before t
    lv = np.where(j >= 0, level[np.maximum(j, 0)], np.nan)
    return np.asarray(quant.minute_prob_batch(S, K, grid, np.full(grid.shape, hour_end_ms, dtype=np.int64), lv,
                                              season, vs, nu, pm), dtype=np.float64)
