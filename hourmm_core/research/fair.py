"""The backtest trader's fair value on its decision grid: exactly what container A publishes.

Container A (``pricing/snapshot.py`` ``SnapshotBuilder.from_config``) streams every trade
through the compiled core and, at a publish instant ``t``, prices with S = the last trade
before ``t`` (a trade stamped exactly at ``t`` arrives after it), K = the hour's open (its
first trade), tau = hour end - ``t``. This module recomputes that on the backtest's decision
grid from the same ticks, with the same model and parameters: ``snapshot.model_kwargs`` of a
``PricerConfig`` (configs/pricer.yaml and the ``PRICER_*`` env, so ``PRICER_MODEL=ewma``
selects the legacy digital here too). There is no second parameter path: the backtest's own
``params``/``sigma`` do not enter the fair value.

* ``model="seasonal"``: ``fair_up`` from the compiled ``minute_path_batch`` (the live
  ``MinutePricer`` streamed over the tick history before each grid instant);
* ``model="ewma"``: ``fair_up`` = the digital with the first EWMA half-life's sigma;
* either way ``fair_unc`` = |fair_up - the digital with the last half-life's sigma|.

With the adaptive variance scale (``PRICER_SCALE_WINDOW_DAYS`` > 0) container A starts from the
window's 1m klines fetched at start-up; here the stream is warmed the same way, with the real 1m
klines of the data dir (:func:`history_klines`, ``hourmm_core.data.kline_history``) from the
window's start to the first tick's minute (``minute_path_batch(..., warm=...)``, the same C
routine as ``MinutePricer.warm_klines``). No klines there (synthetic ticks): the prior scale, as
container A without history.

Where container A publishes ``fair_up: null`` (before the hour's first trade, so no open)
the path holds NaN. The streams start at the first tick of the arrays passed in (what container
A would publish had it been started there; tests/unit/research/test_fair_unify.py). Both streams are
causal, so they are computed once per tick array for every hour in it (one pass over the ticks,
not one per hour) and each hour reads its slice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from hourmm_core import quant
from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.data.binance_dumps import find_data_dir
from hourmm_core.data.klines import kline_history
from hourmm_core.pricing.snapshot import model_kwargs


def model_params(cfg: Any = None) -> dict[str, Any]:
    """Container A's model parameters (``SnapshotBuilder`` kwargs) from ``cfg`` (a
    ``PricerConfig``) or, by default, from the environment and configs/pricer.yaml."""
    return model_kwargs(PricerConfig.from_env() if cfg is None else cfg)


def _model_key(kw: dict[str, Any]) -> tuple:
    return tuple((k, np.asarray(v, dtype=np.float64).tobytes() if k == "season" else
                  (tuple(v) if isinstance(v, (list, tuple)) else v)) for k, v in sorted(kw.items()))


_PATHS: dict[str, Any] = {}
_HISTORY: dict[str, Any] = {}
_HISTORY_DIR: list[str | None] = [None]    # use_history_dir(); None: find_data_dir()


def use_history_dir(data_dir: str | os.PathLike[str] | None) -> None:
    """Where :func:`history_klines` reads container A's start-up klines: the data the backtest
    loads its ticks from (a dump file: its folder). None: ``find_data_dir()``. Why: the ticks of
    ``hourmm backtest DATA`` came from DATA while the fair value's warm-up read the default data
    folder, so the same command gave other results from another checkout."""
    if data_dir is None:
        _HISTORY_DIR[0] = None
        return
    d = Path(data_dir)
    _HISTORY_DIR[0] = str(d.parent if d.is_file() else d)


def history_klines(first_ms: int, window_h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Real 1m klines container A would fetch at a start at ``first_ms``: from the window's first
    hour minus one (its 60-minute history) to the minute before ``first_ms``. None when none."""
    if window_h <= 0:
        return None
    d = _HISTORY_DIR[0] or find_data_dir()
    start = first_ms - first_ms % HOUR_MS - (window_h + 1) * HOUR_MS
    stop = first_ms - first_ms % 60_000
    # only the files whose names' dates touch [start, stop) are read: the window's rows are the
    # same as in the whole history's (kline_history merges the same files for them)
    key = (str(d), start, stop)
    if _HISTORY.get("key") != key:
        kh = kline_history(d, "BTCUSDT", start, stop) if d is not None else None
        _HISTORY.clear()
        _HISTORY.update({"key": key, "kh": kh})
    kh = _HISTORY["kh"]
    if kh is None or not len(kh):
        return None
    w = kh.window(start, stop)
    if not len(w["open_ms"]):
        return None
    return (np.ascontiguousarray(w["open_ms"], dtype=np.int64), np.ascontiguousarray(w["open"], dtype=np.float64),
            np.ascontiguousarray(w["close"], dtype=np.float64))


def _minute_path(ts: np.ndarray, px: np.ndarray, grid: np.ndarray, K: np.ndarray, end: np.ndarray,
                 kw: dict[str, Any]) -> np.ndarray:
    """``minute_path_batch`` with container A's model and, for the adaptive scale, its start-up klines."""
    W = int(kw.get("scale_window_h", 0))
    warm = history_klines(int(ts[0]), W) if W > 0 and ts.size else None
    return np.asarray(quant.minute_path_batch(ts, px, grid, K, end, kw["season"], float(kw["halflife_min"]),
                                              float(kw["var_prior"]), float(kw["var_scale"]), float(kw["nu"]),
                                              float(kw["p_min"]), W, float(kw.get("scale_prior_h", 72.0)), warm),
                      dtype=np.float64)


def _paths(ts: np.ndarray, px: np.ndarray, step_ms: int, kw: dict[str, Any]) -> dict[str, Any]:
    """Per tick array (cached): the EWMA sigmas after every tick and, for the seasonal model,
    ``minute_path_batch`` at every grid instant of every hour the ticks touch (K = that hour's
    first tick)."""
    key = (id(ts), id(px), int(ts.size), int(ts[0]), int(ts[-1]), int(step_ms), _model_key(kw))
    c = _PATHS.get("c")
    if c is not None and c["key"] == key:
        return c
    hl = tuple(float(h) for h in kw["halflives_s"])
    sig = np.asarray(quant.ewma_vol_batch(ts, px, hl, int(kw["sample_ms"]), float(kw["var_floor"])),
                     dtype=np.float64)
    h0 = int(ts[0]) - int(ts[0]) % HOUR_MS
    hours = np.arange(h0, int(ts[-1]) + 1, HOUR_MS, dtype=np.int64)
    first = np.searchsorted(ts, hours, side="left")
    offs = np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    p = None
    if kw["model"] != "ewma":
        K = np.where(first < ts.size, px[np.minimum(first, ts.size - 1)], np.nan)
        grid = (hours[:, None] + offs[None, :]).reshape(-1)
        p = _minute_path(ts, px, grid, np.repeat(K, offs.size), np.repeat(hours + HOUR_MS, offs.size),
                         kw).reshape(hours.size, offs.size)
    # the arrays are held so their ids (part of the key) cannot be reused by other arrays meanwhile
    c = {"key": key, "ts": ts, "px": px, "sig": sig, "h0": h0, "first": first, "n_grid": offs.size, "p": p}
    _PATHS["c"] = c
    return c


def fair_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: Any,
              sigma: np.ndarray, step_ms: int, cfg: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fair P(up) on the decision grid of one hour: (grid_ts, fair_up, sigma_at_grid)."""
    grid, p, sg, _ = fair_unc_path(ts_ms, price, hour_start, first, params, sigma, step_ms, cfg)
    return grid, p, sg


def fair_unc_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: Any,
                  sigma: np.ndarray, step_ms: int,
                  cfg: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid_ts, fair_up, sigma_at_grid, fair_unc): container A's ``fair_up`` / ``fair_unc``
    at ``hour_start + k * step_ms``. ``first`` is the index of the hour's first tick (its open).
    ``sigma_at_grid`` is the first EWMA half-life's sigma. ``params`` and ``sigma`` (the
    backtest's own estimator settings) are accepted for the callers' signature and not used:
    the model is container A's (``cfg``, default :func:`model_params`)."""
    kw = model_params(cfg)
    grid = hour_start + np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    end = hour_start + HOUR_MS
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    px = np.ascontiguousarray(price, dtype=np.float64)
    if not ts.size:
        nan = np.full(grid.shape, np.nan)
        return grid, nan, nan.copy(), nan.copy()
    c = _paths(ts, px, step_ms, kw)
    idx = np.searchsorted(ts, grid, side="left") - 1         # last tick strictly before each instant
    has_open = idx >= first
    ii = np.maximum(idx, 0)
    S = px[ii]
    K = np.full(grid.shape, float(px[first]))
    tau_s = (end - grid) / 1000.0
    nu, pm = float(kw["nu"]), float(kw["p_min"])
    sg = np.ascontiguousarray(c["sig"][ii, 0])
    sa = np.ascontiguousarray(c["sig"][ii, -1])
    p_alt = np.asarray(quant.fair_prob_batch(S, K, tau_s, sa, nu, pm), dtype=np.float64)
    h = (hour_start - c["h0"]) // HOUR_MS
    if kw["model"] == "ewma":
        p = np.asarray(quant.fair_prob_batch(S, K, tau_s, sg, nu, pm), dtype=np.float64)
    elif hour_start % HOUR_MS == 0 and 0 <= h < c["first"].size and int(c["first"][h]) == first:
        p = c["p"][h].copy()
    else:   # an hour not on the cached grid (or another strike): stream the ticks before it once
        j = int(np.searchsorted(ts, grid[-1], side="left"))
        p = _minute_path(ts[:j], px[:j], grid, K, np.full(grid.shape, end, dtype=np.int64), kw)
    p = np.where(has_open, p, np.nan)
    unc = np.where(has_open, np.abs(p - p_alt), np.nan)
    return grid, p, sg, unc
