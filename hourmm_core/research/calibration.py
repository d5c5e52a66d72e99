"""Pricer calibration: predicted P(close >= open) against what each hour actually did.

Why: the market maker quotes around the pricer's probability, so a pricer that
is over-confident (probabilities too far from 0.5) gets picked off and one that
is under-confident leaves edge on the table. This module replays history through
the *compiled* batch API (``ewma_vol_batch`` -> ``fair_prob_batch``), samples
each complete UTC hour every ``step_ms`` (default: each minute), and scores the
forecasts with proper scoring rules against the realized outcome, next to two
baselines that any real model has to beat:

* ``const_0.5`` - always 0.5 (knows nothing);
* ``const_sigma`` - the same pricer fed one long-run sigma (no vol estimator).

Units: ts in int ms UTC; sigma per sqrt(second) of log price; tau in seconds;
probabilities in [0, 1]. Outcome y = 1 when the hour's last trade >= its first
trade (Binance 1h candle close >= open).

Tuning (:func:`tune`) grids the estimator settings on a training span that ends
strictly before ``split_ms`` - it is handed arrays truncated at ``split_ms`` so it
cannot see the later span - and reports the score of the winner on the later,
unseen span.

This module is the tick protocol and the scores; the issue-11 kline protocol (the shipped
seasonal model against rv60 on score_predictions.py's points) is
:mod:`hourmm_core.research.kline_calibration`, and the ``hourmm calibrate`` command line that
runs either is :mod:`hourmm_core.research.calibrate_cli`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.safe_json import json_safe

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DEFAULT_MINUTE_BUCKETS: tuple[int, ...] = (0, 5, 10, 20, 30, 45, 60)
EPS = 1e-12


# --------------------------------------------------------------------------- metrics
def _check_py(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"predictions and outcomes must be 1-d and equal length, got {p.shape} and {y.shape}")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("predictions must be finite probabilities in [0, 1]")
    if y.size and not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError("outcomes must be 0 or 1")
    return p, y


def brier_score(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Mean squared error of probability forecasts p against 0/1 outcomes y (lower is better;
    0.25 is the score of always saying 0.5). NaN for no samples."""
    p, y = _check_py(np.asarray(p), np.asarray(y))
    if p.size == 0:
        return float("nan")
    return float(np.mean((p - y) ** 2))


def log_loss(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, eps: float = 1e-6) -> float:
    """Mean negative log-likelihood (nats) of 0/1 outcomes y under forecasts p.

    p is clipped to [eps, 1-eps] so one confident miss costs at most -ln(eps)
    instead of infinity (ln 2 = 0.693 is the score of always saying 0.5).
    """
    p, y = _check_py(np.asarray(p), np.asarray(y))
    if p.size == 0:
        return float("nan")
    q = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


@dataclass(frozen=True)
class ReliabilityCurve:
    """Predicted vs observed frequency by probability bucket.

    ``edges`` has n_bins+1 entries; per bin: ``count`` samples, their ``mean_pred``
    and the fraction that resolved Up, ``obs_freq`` (NaN where a bin is empty).
    A calibrated forecaster has obs_freq ~= mean_pred in every bin.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_pred: np.ndarray
    obs_freq: np.ndarray

    def rows(self) -> list[dict[str, float]]:
        return [
            {"lo": float(self.edges[i]), "hi": float(self.edges[i + 1]), "count": int(self.count[i]),
             "mean_pred": float(self.mean_pred[i]), "obs_freq": float(self.obs_freq[i])}
            for i in range(len(self.count))
        ]


def bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """The reliability bin of each forecast: ``n_bins`` equal-width buckets of [0, 1], bucket i is
    [i/n, (i+1)/n) and the last also holds p == 1 (one definition for the curve, ECE and its noise floor)."""
    return np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)


def reliability_curve(p: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                      n_bins: int = 10) -> ReliabilityCurve:
    """Bin forecasts into ``n_bins`` equal-width buckets of [0, 1]; bucket i is
    [i/n, (i+1)/n) and the last bucket also holds p == 1."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    p, y = _check_py(np.asarray(p), np.asarray(y))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = bin_index(p, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sp = np.bincount(idx, weights=p, minlength=n_bins)
    sy = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(count > 0, sp / np.maximum(count, 1), np.nan)
        obs = np.where(count > 0, sy / np.maximum(count, 1), np.nan)
    return ReliabilityCurve(edges, count, mean_pred, obs)


# --------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class HourlySamples:
    """Forecast points: one row per (complete hour, sample time).

    ``tick_idx`` is the index of the last tick at or before ``ts_ms`` within the
    hour (the price the pricer would have seen); ``S`` that price, ``K`` the hour's
    open, ``tau_s`` seconds to the hour's end, ``y`` 1.0 when close >= open.
    """

    ts_ms: np.ndarray
    hour_start_ms: np.ndarray
    tick_idx: np.ndarray
    S: np.ndarray
    K: np.ndarray
    tau_s: np.ndarray
    y: np.ndarray
    n_hours: int

    @property
    def minutes_left(self) -> np.ndarray:
        return self.tau_s / 60.0

    def subset(self, mask: np.ndarray) -> "HourlySamples":
        hours = int(np.unique(self.hour_start_ms[mask]).size)
        return HourlySamples(self.ts_ms[mask], self.hour_start_ms[mask], self.tick_idx[mask], self.S[mask],
                             self.K[mask], self.tau_s[mask], self.y[mask], hours)


def as_arrays(ticks: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Accept a ``TickData`` (``.ts_ms``, ``.price``, ``.source``) or a ``(ts_ms, price)`` pair.

    Returns sorted int64 ms timestamps, float64 prices and the data source label.
    Unsorted input is rejected rather than silently re-ordered: a shuffled file
    usually means a broken loader.
    """
    if isinstance(ticks, tuple) and len(ticks) in (2, 3):
        ts, price = ticks[0], ticks[1]
        source = str(ticks[2]) if len(ticks) == 3 else "arrays"
    else:
        ts, price = ticks.ts_ms, ticks.price
        source = str(getattr(ticks, "source", "unknown"))
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    price = np.ascontiguousarray(price, dtype=np.float64)
    if ts.shape != price.shape or ts.ndim != 1:
        raise ValueError(f"ts_ms and price must be 1-d and equal length, got {ts.shape} and {price.shape}")
    if ts.size and np.any(np.diff(ts) < 0):
        raise ValueError("tick timestamps must be non-decreasing")
    if price.size and (not np.all(np.isfinite(price)) or price.min() <= 0):
        raise ValueError("tick prices must be finite and > 0")
    return ts, price, source


def complete_hours(ts_ms: np.ndarray, edge_ms: int = 120_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hours fully covered by the data: (hour_start_ms, first_idx, last_idx).

    An hour counts when it has a tick within ``edge_ms`` of both its start and its
    end; otherwise its open or close would come from a gap in the data and the
    outcome would be wrong.
    """
    if ts_ms.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    hid = ts_ms // HOUR_MS
    starts = np.flatnonzero(np.r_[True, hid[1:] != hid[:-1]])
    ends = np.r_[starts[1:], ts_ms.size] - 1
    hs = hid[starts] * HOUR_MS
    ok = (ts_ms[starts] - hs < edge_ms) & (hs + HOUR_MS - ts_ms[ends] <= edge_ms)
    return hs[ok].astype(np.int64), starts[ok].astype(np.int64), ends[ok].astype(np.int64)


def hourly_samples(ts_ms: np.ndarray, price: np.ndarray, step_ms: int = MINUTE_MS,
                   edge_ms: int = 120_000, warmup_ms: int = HOUR_MS,
                   start_ms: int | None = None, end_ms: int | None = None) -> HourlySamples:
    """Sample every complete hour at hour_start + k*step_ms (k = 0 .. ceil(1h/step)-1).

    Hours starting before ``ts_ms[0] + warmup_ms`` are skipped so the volatility
    estimator has warmed up; ``start_ms``/``end_ms`` keep only hours fully inside
    [start_ms, end_ms). The first sample of an hour uses the opening tick (S == K).
    """
    if step_ms <= 0 or step_ms > HOUR_MS:
        raise ValueError("step_ms must be in (0, 3600000]")
    hs, first, last = complete_hours(ts_ms, edge_ms)
    if ts_ms.size:
        keep = hs >= ts_ms[0] + warmup_ms
        if start_ms is not None:
            keep &= hs >= start_ms
        if end_ms is not None:
            keep &= hs + HOUR_MS <= end_ms
        hs, first, last = hs[keep], first[keep], last[keep]
    offs = np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    m = offs.size
    t = (hs[:, None] + offs[None, :]).ravel()
    hour_rep = np.repeat(hs, m)
    first_rep = np.repeat(first, m)
    idx = np.searchsorted(ts_ms, t, side="right") - 1
    idx = np.maximum(idx, first_rep)
    K = np.repeat(price[first], m)
    y = np.repeat((price[last] >= price[first]).astype(np.float64), m)
    tau_s = (hour_rep + HOUR_MS - t) / 1000.0
    return HourlySamples(t, hour_rep, idx, price[idx], K, tau_s, y, int(hs.size))


def long_run_sigma(ts_ms: np.ndarray, price: np.ndarray, grid_ms: int = 1000) -> float:
    """One constant sigma (per sqrt second) for the whole span: realized variance of
    log returns on a ``grid_ms`` grid divided by elapsed seconds. Used as the
    no-estimator baseline; callers pass only training data to keep it honest."""
    if ts_ms.size < 2 or ts_ms[-1] <= ts_ms[0]:
        raise ValueError("need at least two ticks spanning some time to estimate sigma")
    grid = np.arange(ts_ms[0], ts_ms[-1] + 1, grid_ms, dtype=np.int64)
    idx = np.searchsorted(ts_ms, grid, side="right") - 1
    lp = np.log(price[idx])
    r = np.diff(lp)
    secs = (grid[-1] - grid[0]) / 1000.0
    if secs <= 0:
        raise ValueError("span too short for the sigma grid")
    return float(math.sqrt(float(np.sum(r * r)) / secs))


# --------------------------------------------------------------------------- pricer
@dataclass(frozen=True)
class PricerParams:
    """Estimator settings under calibration; mirror the PricerConfig env names.

    ``halflives_s[0]`` is the half-life whose sigma drives the pricer (the
    snapshot's ``sigma``), the others are published for context/uncertainty.
    """

    halflives_s: tuple[float, ...] = (30.0, 120.0, 600.0)
    sample_ms: int = 1000
    nu: float = 0.0
    p_min: float = 0.001
    var_floor: float = 1e-12

    def __post_init__(self) -> None:
        if not self.halflives_s or any(not (h > 0) for h in self.halflives_s):
            raise ValueError("halflives_s needs positive half-lives (seconds)")
        if self.sample_ms <= 0:
            raise ValueError("sample_ms must be > 0")
        if 0 < self.nu <= 2 or self.nu < 0:
            raise ValueError("nu must be 0 (normal) or > 2 (Student-t)")
        if not (0.0 <= self.p_min < 0.5):
            raise ValueError("p_min must be in [0, 0.5)")

    def to_config(self) -> dict[str, Any]:
        """The env/YAML keys of configs/pricer.yaml that these settings correspond to."""
        return {
            "VOL_HALFLIVES_S": ",".join(f"{h:g}" for h in self.halflives_s),
            "VOL_SAMPLE_MS": int(self.sample_ms),
            "PRICER_NU": float(self.nu),
            "PRICER_P_MIN": float(self.p_min),
        }

    @classmethod
    def from_config(cls, cfg: Any) -> "PricerParams":
        """From a ``hourmm_core.config.PricerConfig`` (the shipped defaults)."""
        return cls(tuple(cfg.halflives()), int(cfg.vol_sample_ms), float(cfg.pricer_nu),
                   float(cfg.pricer_p_min), float(cfg.vol_floor))


def _quant() -> Any:
    """The compiled core; a clear error (not a silent slow fallback) when unbuilt."""
    try:
        from hourmm_core import quant
        quant.ewma_vol_batch, quant.fair_prob_batch  # noqa: B018 - fail here if missing
    except (ImportError, AttributeError) as exc:
        raise ImportError(
            "hourmm_core.quant (compiled core) is not available: build it with "
            "`python3 setup.py build_ext --inplace` (" + str(exc) + ")") from exc
    return quant


def sigma_path(ts_ms: np.ndarray, price: np.ndarray, halflives_s: Sequence[float], sample_ms: int,
               var_floor: float = 1e-12) -> np.ndarray:
    """Per-tick EWMA sigma, shape (n_ticks, len(halflives_s)), from the compiled batch API."""
    q = _quant()
    return np.asarray(q.ewma_vol_batch(ts_ms, price, tuple(float(h) for h in halflives_s),
                                       int(sample_ms), float(var_floor)), dtype=np.float64)


def price_samples(s: HourlySamples, sigma: np.ndarray | float, nu: float, p_min: float) -> np.ndarray:
    """P(close >= open) at every sample via the compiled ``fair_prob_batch``.

    ``sigma`` is either one float (constant-sigma baseline) or a per-sample array.
    """
    q = _quant()
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), s.S.shape)
    return np.asarray(q.fair_prob_batch(np.ascontiguousarray(s.S), np.ascontiguousarray(s.K),
                                        np.ascontiguousarray(s.tau_s), np.ascontiguousarray(sig),
                                        float(nu), float(p_min)), dtype=np.float64)


def predict(ts_ms: np.ndarray, price: np.ndarray, s: HourlySamples, params: PricerParams) -> np.ndarray:
    """Pricer forecasts at the samples with the given estimator settings (causal: the
    sigma at a sample uses only ticks up to that sample's tick)."""
    sig = sigma_path(ts_ms, price, params.halflives_s, params.sample_ms, params.var_floor)
    return price_samples(s, sig[s.tick_idx, 0], params.nu, params.p_min)


# --------------------------------------------------------------------------- report
@dataclass(frozen=True)
class ModelScore:
    name: str
    n: int
    brier: float
    log_loss: float


@dataclass
class CalibrationResult:
    """Everything the CLI prints and plots. ``source`` says where the ticks came from
    ("synthetic" means the seeded stand-in, never market data)."""

    source: str
    params: PricerParams
    const_sigma: float
    n_hours: int
    n_samples: int
    span_ms: tuple[int, int]
    scores: list[ModelScore]
    reliability: dict[str, ReliabilityCurve]
    by_minutes_left: list[dict[str, Any]]
    predictions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    outcomes: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    tuning: "TuneResult | None" = None

    def score(self, name: str) -> ModelScore:
        for sc in self.scores:
            if sc.name == name:
                return sc
        raise KeyError(name)


def score_by_minutes_left(preds: Mapping[str, np.ndarray], y: np.ndarray, minutes_left: np.ndarray,
                          edges: Sequence[int] = DEFAULT_MINUTE_BUCKETS) -> list[dict[str, Any]]:
    """Brier and log loss per model in buckets of minutes left (lo, hi]; the
    pricer should beat the 0.5 baseline more and more as the hour runs out."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (minutes_left > lo) & (minutes_left <= hi)
        row: dict[str, Any] = {"minutes_left": f"({lo},{hi}]", "n": int(m.sum())}
        for name, p in preds.items():
            row[f"{name}.brier"] = brier_score(p[m], y[m])
            row[f"{name}.log_loss"] = log_loss(p[m], y[m])
        rows.append(row)
    return rows


def evaluate(ts_ms: np.ndarray, price: np.ndarray, samples: HourlySamples, params: PricerParams,
             const_sigma: float, n_bins: int = 10, source: str = "unknown") -> CalibrationResult:
    """Score the pricer and both baselines on ``samples``."""
    y = samples.y
    preds = {
        "pricer": predict(ts_ms, price, samples, params),
        "const_sigma": price_samples(samples, const_sigma, params.nu, params.p_min),
        "const_0.5": np.full(y.shape, 0.5),
    }
    scores = [ModelScore(k, int(y.size), brier_score(v, y), log_loss(v, y)) for k, v in preds.items()]
    rel = {k: reliability_curve(v, y, n_bins) for k, v in preds.items()}
    span = (int(samples.ts_ms.min()), int(samples.ts_ms.max())) if y.size else (0, 0)
    return CalibrationResult(source, params, const_sigma, samples.n_hours, int(y.size), span, scores, rel,
                             score_by_minutes_left(preds, y, samples.minutes_left), preds, y)


def calibrate(ticks: Any, params: PricerParams | None = None, step_ms: int = MINUTE_MS,
              n_bins: int = 10, warmup_ms: int = HOUR_MS) -> CalibrationResult:
    """Calibrate on the whole history: ``ticks`` is a TickData or (ts_ms, price).

    The constant-sigma baseline uses the long-run sigma of the same history (an
    in-sample advantage for the baseline, which makes beating it meaningful).
    """
    ts, price, source = as_arrays(ticks)
    params = params or PricerParams()
    s = hourly_samples(ts, price, step_ms=step_ms, warmup_ms=warmup_ms)
    if s.n_hours == 0:
        raise ValueError("no complete hours after warm-up in the data: need at least ~2 hours of ticks")
    return evaluate(ts, price, s, params, long_run_sigma(ts, price), n_bins, source)


# --------------------------------------------------------------------------- tuning
@dataclass(frozen=True)
class TuneGrid:
    """Candidate estimator settings. ``halflife_s`` is the pricer's half-life
    (first entry of VOL_HALFLIVES_S); the others are kept as context columns."""

    halflife_s: tuple[float, ...] = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
    sample_ms: tuple[int, ...] = (250, 1000, 5000)
    nu: tuple[float, ...] = (0.0, 4.0, 8.0)
    context_halflives_s: tuple[float, ...] = (30.0, 120.0, 600.0)
    p_min: float = 0.001

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "TuneGrid":
        kw: dict[str, Any] = {}
        for k in ("halflife_s", "sample_ms", "nu", "context_halflives_s"):
            if k in m:
                conv = int if k == "sample_ms" else float
                kw[k] = tuple(conv(v) for v in m[k])
        if "p_min" in m:
            kw["p_min"] = float(m["p_min"])
        return cls(**kw)

    def size(self) -> int:
        return len(self.halflife_s) * len(self.sample_ms) * len(self.nu)


@dataclass
class TuneResult:
    """Winner on the training span and its score on the unseen test span."""

    best: PricerParams
    metric: str
    split_ms: int
    train_hours: int
    test_hours: int
    table: list[dict[str, Any]]
    test: CalibrationResult
    default_test: ModelScore


def _params_for(hl: float, sample_ms: int, nu: float, grid: TuneGrid) -> PricerParams:
    rest = tuple(h for h in grid.context_halflives_s if h != hl)
    return PricerParams((hl,) + rest, sample_ms, nu, grid.p_min)


def grid_scores(ts_ms: np.ndarray, price: np.ndarray, samples: HourlySamples, grid: TuneGrid) -> list[dict[str, Any]]:
    """Score every grid point on ``samples`` (one vol pass per sampling grid)."""
    rows = []
    for sm in grid.sample_ms:
        sig = sigma_path(ts_ms, price, grid.halflife_s, sm)
        for j, hl in enumerate(grid.halflife_s):
            sg = sig[samples.tick_idx, j]
            for nu in grid.nu:
                p = price_samples(samples, sg, nu, grid.p_min)
                rows.append({"halflife_s": hl, "sample_ms": sm, "nu": nu,
                             "brier": brier_score(p, samples.y), "log_loss": log_loss(p, samples.y),
                             "n": int(samples.y.size)})
    return rows


def tune(ticks: Any, split_ms: int | None = None, train_frac: float = 0.7, grid: TuneGrid | None = None,
         metric: str = "log_loss", step_ms: int = MINUTE_MS, n_bins: int = 10,
         default: PricerParams | None = None, warmup_ms: int = HOUR_MS) -> TuneResult:
    """Grid-search the estimator on hours ending before ``split_ms``; score on hours after.

    ``split_ms`` defaults to the hour boundary at ``train_frac`` of the span. The
    search is given arrays truncated to ts < split_ms, so nothing in the later span
    (not even its volatility) can influence the choice. The test evaluation then
    runs causally over the full series (the estimator may warm up on the training
    ticks, as it would live) and scores only hours starting at or after split_ms.
    """
    if metric not in ("log_loss", "brier"):
        raise ValueError("metric must be 'log_loss' or 'brier'")
    ts, price, source = as_arrays(ticks)
    grid = grid or TuneGrid()
    if ts.size < 2:
        raise ValueError("not enough ticks to tune")
    if split_ms is None:
        raw = int(ts[0] + (ts[-1] - ts[0]) * train_frac)
        split_ms = raw - raw % HOUR_MS
    n_train = int(np.searchsorted(ts, split_ms, side="left"))
    tr_ts, tr_px = ts[:n_train], price[:n_train]
    train = hourly_samples(tr_ts, tr_px, step_ms=step_ms, warmup_ms=warmup_ms, end_ms=split_ms)
    if train.n_hours == 0:
        raise ValueError(f"no complete training hours before split {split_ms}")
    table = grid_scores(tr_ts, tr_px, train, grid)
    best_row = min(table, key=lambda r: (r[metric], r["halflife_s"], r["sample_ms"], r["nu"]))
    best = _params_for(best_row["halflife_s"], best_row["sample_ms"], best_row["nu"], grid)
    test_s = hourly_samples(ts, price, step_ms=step_ms, warmup_ms=warmup_ms, start_ms=split_ms)
    if test_s.n_hours == 0:
        raise ValueError(f"no complete test hours after split {split_ms}")
    const = long_run_sigma(tr_ts, tr_px)  # baseline sigma also from training data only
    test = evaluate(ts, price, test_s, best, const, n_bins, source)
    default = default or PricerParams()
    pd = predict(ts, price, test_s, default)
    default_test = ModelScore("shipped_default", int(test_s.y.size), brier_score(pd, test_s.y),
                              log_loss(pd, test_s.y))
    res = TuneResult(best, metric, int(split_ms), train.n_hours, test_s.n_hours, table, test, default_test)
    test.tuning = res
    return res


# --------------------------------------------------------------------------- scores shared by both protocols
def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins: sum_b |sum p - sum y| / n."""
    rc = reliability_curve(p, y, n_bins)
    if not y.size:
        return float("nan")
    gaps = np.where(rc.count > 0, np.abs(rc.mean_pred - rc.obs_freq) * rc.count, 0.0)
    return float(gaps.sum() / y.size)


def score_row(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    return {"brier": brier_score(p, y), "logloss": log_loss(p, y), "ece": expected_calibration_error(p, y, n_bins),
            "n": int(y.size)}


def bootstrap_by_hour(p: np.ndarray, base: np.ndarray, y: np.ndarray, hour: np.ndarray, n: int = 500,
                      seed: int = 0) -> dict[str, list[float]]:
    """95% CIs (hour-block bootstrap) of the Brier and log-loss differences p - base."""
    rng = np.random.default_rng(seed)
    _, inv = np.unique(hour, return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    if k == 0:
        return {"brier_diff": [math.nan, math.nan], "logloss_diff": [math.nan, math.nan]}
    cnt = np.bincount(inv, minlength=k)
    def per_hour(v):
        return np.bincount(inv, v, k)
    qp, qb = np.clip(p, 1e-6, 1 - 1e-6), np.clip(base, 1e-6, 1 - 1e-6)
    db = per_hour((p - y) ** 2 - (base - y) ** 2)
    dl = per_hour(-(y * np.log(qp) + (1 - y) * np.log(1 - qp)) + (y * np.log(qb) + (1 - y) * np.log(1 - qb)))
    bb, bl = [], []
    for _ in range(n):
        idx = rng.integers(0, k, k)
        c = cnt[idx].sum()
        bb.append(db[idx].sum() / c)
        bl.append(dl[idx].sum() / c)
    return {"brier_diff": [float(x) for x in np.percentile(bb, [2.5, 97.5])],
            "logloss_diff": [float(x) for x in np.percentile(bl, [2.5, 97.5])]}


def ece_bootstrap_by_hour(p: np.ndarray, y: np.ndarray, hour: np.ndarray, n: int = 500, seed: int = 0,
                          n_bins: int = 10) -> list[float]:
    """95% interval (hour-block bootstrap percentiles) of the ECE itself.

    Whole hours are resampled (their points share one outcome). ECE is a sum of absolute bin gaps, so
    the resampled values sit above the metric's sampling centre: read the interval as the spread one
    month of hours gives, next to :func:`perfect_forecaster_ece` (what a correct model scores)."""
    p, y = _check_py(np.asarray(p), np.asarray(y))
    _, inv = np.unique(np.asarray(hour), return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    if k == 0:
        return [math.nan, math.nan]
    b = bin_index(p, n_bins)
    cell = inv * n_bins + b                     # per-hour, per-bin sums: a draw only reweights hours
    c = np.bincount(cell, None, k * n_bins).reshape(k, n_bins)
    sp = np.bincount(cell, p, k * n_bins).reshape(k, n_bins)
    sy = np.bincount(cell, y, k * n_bins).reshape(k, n_bins)
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for i in range(n):
        w = np.bincount(rng.integers(0, k, k), minlength=k).astype(np.float64)
        out[i] = np.abs(w @ sp - w @ sy).sum() / (w @ c).sum()
    return [float(x) for x in np.percentile(out, [2.5, 97.5])]


def perfect_forecaster_bins(var_min: np.ndarray, n_rep: int = 1000, n_bins: int = 10, seed: int = 0,
                            chunk: int = 25, minutes: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Reliability bins of a forecaster that is correct BY CONSTRUCTION, on simulated hours.

    ``var_min[h, k]`` is the variance of minute k's log return in hour h (k = 0..59). Each repetition
    draws every minute's return as N(0, var_min[h, k]) (synthetic shocks: this measures the metric, not
    a market), and scores the kline protocol's points: at minute m = 1..59, x = sum of returns 0..m-1
    (S = close of minute m-1, K = the hour's open), the forecaster knows the rest-of-hour variance and
    says p = Phi(x / sqrt(sum of var_min[h, m:])), exactly P(sum of all 60 returns >= 0 | x); y =
    (sum of all 60 >= 0), shared by the hour's 59 points. Its expected calibration gap is 0 in every
    bin, so whatever gap it shows is sampling noise of ``len(var_min)`` hours. ``minutes`` (values in
    1..59) scores only those points of each hour (a minutes-left bucket); the draws do not depend on it.
    Returns ``count``, ``sum_p``, ``sum_y``: arrays [n_rep, n_bins] (bins as :func:`reliability_curve`)."""
    from scipy.special import ndtr

    v = np.asarray(var_min, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 60 or v.shape[0] < 1:
        raise ValueError("var_min must be [hours, 60] per-minute variances")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("var_min must be finite and >= 0")
    if n_rep < 1 or n_bins < 1:
        raise ValueError("n_rep and n_bins must be >= 1")
    cols = np.arange(59) if minutes is None else np.asarray(minutes, dtype=np.int64) - 1
    if cols.size == 0 or cols.min() < 0 or cols.max() > 58:
        raise ValueError("minutes must be values in 1..59")
    nh = v.shape[0]
    rest = np.cumsum(v[:, ::-1], axis=1)[:, ::-1][:, 1:]     # [h, m-1] = sum of var over minutes m..59
    sd = np.sqrt(rest)
    rng = np.random.default_rng(seed)
    out = {k: np.empty((n_rep, n_bins)) for k in ("count", "sum_p", "sum_y")}
    for a in range(0, n_rep, chunk):
        r = min(chunk, n_rep - a)
        x = np.cumsum(rng.standard_normal((r, nh, 60)) * np.sqrt(v), axis=2)
        y = np.broadcast_to((x[:, :, 59:] >= 0.0).astype(np.float64), (r, nh, 59))
        xm = x[:, :, :59]                                       # minute m = 1..59: returns 0..m-1
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(sd > 0, ndtr(xm / np.where(sd > 0, sd, 1.0)), (xm >= 0.0).astype(np.float64))
        p, y = p[:, :, cols], y[:, :, cols]
        b = bin_index(p, n_bins)
        cell = (np.arange(r)[:, None, None] * n_bins + b).ravel()
        out["count"][a:a + r] = np.bincount(cell, None, r * n_bins).reshape(r, n_bins)
        out["sum_p"][a:a + r] = np.bincount(cell, p.ravel(), r * n_bins).reshape(r, n_bins)
        out["sum_y"][a:a + r] = np.bincount(cell, y.ravel(), r * n_bins).reshape(r, n_bins)
    return out


def perfect_forecaster_ece(var_min: np.ndarray, n_rep: int = 1000, n_bins: int = 10, seed: int = 0,
                           chunk: int = 25, minutes: Sequence[int] | None = None) -> np.ndarray:
    """ECE of the correct-by-construction forecaster of :func:`perfect_forecaster_bins`, one value per
    repetition: the floor below which one span's ECE says nothing about calibration."""
    b = perfect_forecaster_bins(var_min, n_rep, n_bins, seed, chunk, minutes)
    return np.abs(b["sum_p"] - b["sum_y"]).sum(axis=1) / b["count"].sum(axis=1)


# --------------------------------------------------------------------------- text + CLI
def _fmt_ms(ms: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def format_table(res: CalibrationResult) -> str:
    """Plain-text report: data source, span, scores per model and by minutes left."""
    lines = [
        f"data source: {res.source}" + ("  (SYNTHETIC stand-in, not market data)" if res.source == "synthetic" else ""),
        f"span: {_fmt_ms(res.span_ms[0])} .. {_fmt_ms(res.span_ms[1])}  hours={res.n_hours}  samples={res.n_samples}",
        f"pricer: halflives_s={','.join(f'{h:g}' for h in res.params.halflives_s)} "
        f"sample_ms={res.params.sample_ms} nu={res.params.nu:g}  const_sigma={res.const_sigma:.3e}/sqrt(s)",
        "",
        f"{'model':<16}{'n':>9}{'brier':>10}{'log_loss':>10}",
    ]
    for sc in res.scores:
        lines.append(f"{sc.name:<16}{sc.n:>9}{sc.brier:>10.4f}{sc.log_loss:>10.4f}")
    lines += ["", "by minutes left (brier / log_loss):"]
    names = [sc.name for sc in res.scores]
    lines.append(f"{'min left':<10}{'n':>8}" + "".join(f"{n:>22}" for n in names))
    for row in res.by_minutes_left:
        cells = "".join(f"{row[n + '.brier']:>11.4f}/{row[n + '.log_loss']:<10.4f}" for n in names)
        lines.append(f"{row['minutes_left']:<10}{row['n']:>8}{cells}")
    if res.tuning is not None:
        t = res.tuning
        lines += ["", f"tuning: train hours={t.train_hours} (before {_fmt_ms(t.split_ms)}), "
                      f"test hours={t.test_hours}, metric={t.metric}, grid points={len(t.table)}",
                  f"tuned: {t.best.to_config()}",
                  f"test span: tuned pricer {t.metric}="
                  f"{res.score('pricer').log_loss if t.metric == 'log_loss' else res.score('pricer').brier:.4f}"
                  f"  shipped default {t.metric}="
                  f"{t.default_test.log_loss if t.metric == 'log_loss' else t.default_test.brier:.4f}"]
    return "\n".join(lines)


def result_json(res: CalibrationResult) -> dict[str, Any]:
    """JSON-safe summary (no per-sample arrays); NaN becomes null."""
    out: dict[str, Any] = {
        "source": res.source, "params": asdict(res.params), "const_sigma": res.const_sigma,
        "n_hours": res.n_hours, "n_samples": res.n_samples, "span_ms": list(res.span_ms),
        "scores": [asdict(s) for s in res.scores],
        "reliability": {k: v.rows() for k, v in res.reliability.items()},
        "by_minutes_left": res.by_minutes_left,
    }
    if res.tuning is not None:
        t = res.tuning
        out["tuning"] = {"best": t.best.to_config(), "metric": t.metric, "split_ms": t.split_ms,
                         "train_hours": t.train_hours, "test_hours": t.test_hours,
                         "shipped_default_test": asdict(t.default_test), "grid": t.table}
    return json_safe(out)


def write_tuned_config(path: str | Path, best: PricerParams, note: str = "") -> Path:
    """Write the tuned settings as a flat UPPER_CASE YAML overlay (usable as
    HOURMM_CONFIG, or to paste into configs/pricer.yaml)."""
    import yaml

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = "# tuned by `hourmm calibrate --tune`" + (f": {note}" if note else "") + "\n"
    p.write_text(header + yaml.safe_dump(best.to_config(), sort_keys=True))
    return p


def load_history(data: str | None, synthetic_hours: int | None = None) -> Any:
    """Ticks via the data module: real dumps when found, else the labelled synthetic path."""
    from hourmm_core import data as hdata

    kwargs: dict[str, Any] = {}
    if synthetic_hours is not None:
        kwargs["synthetic_hours"] = synthetic_hours
    try:
        return hdata.load_ticks(data, **kwargs)
    except TypeError:
        if kwargs:  # data module without that knob: make our own seeded synthetic ticks
            return hdata.synthetic_ticks(hours=synthetic_hours)
        raise
