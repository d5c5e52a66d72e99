"""The issue-11 kline protocol: the shipped rest-of-hour model against rv60 on real 1m klines.

The points are exactly those of /work/shared/tools/score_predictions.py (every minute m = 1..59 of
every full UTC hour with 60 minutes of history, S = close of minute m-1, K = open of minute 0).
:func:`kline_report` scores const, rv60 (the tool's ``ref``), the old EWMA default and the shipped
seasonal model (``SeasonalParams`` = configs/pricer.yaml PRICER_*) on named spans, by minutes left,
with reliability curves and hour-bootstrap CIs; :func:`fit_season` fits the seasonal tables on a
training span only. ``hourmm calibrate`` (:mod:`hourmm_core.research.calibrate_cli`) runs it when
the data has 1m klines. Scores are :mod:`hourmm_core.research.calibration`'s.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.data import SOURCE_KLINES
from hourmm_core.quant.reference.pricer import season_table
from hourmm_core.research.calibration import (
    MINUTE_MS,
    PricerParams,
    _fmt_ms,
    _quant,
    bootstrap_by_hour,
    ece_bootstrap_by_hour,
    expected_calibration_error,
    perfect_forecaster_ece,
    reliability_curve,
    score_row,
    sigma_path,
)
from hourmm_core.safe_json import json_safe

# The evaluation every pricer tool shares (/work/shared/tools/score_predictions.py): for each full
# UTC hour H and minute m = 1..59, the prediction made at H + 60 m s with klines up to minute m-1
# closed: S = close of minute m-1, K = open of minute 0, tau = 3600 - 60 m s, y = close(59) >= K.
# A span [start, end) scores the hours H with start + 1 h <= H and H + 1 h <= end: exactly the
# points the score tool counts when given that span's files alone (it needs 60 prior minutes).
DEFAULT_TRAIN_SPAN = ("2025-04-15", "2025-06-01")
DEFAULT_VALID_SPAN = ("2025-06-01", "2025-07-01")
KLINE_MINUTE_BUCKETS: tuple[int, ...] = (0, 5, 10, 20, 30, 45, 59)


def _day_ms(s: str) -> int:
    return int(_dt.datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc).timestamp() * 1000)


@dataclass(frozen=True)
class KlinePoints:
    """Evaluation points over contiguous 1m klines (row indices into the kline arrays)."""

    hour_ms: np.ndarray
    minute: np.ndarray
    i0: np.ndarray
    j: np.ndarray
    S: np.ndarray
    K: np.ndarray
    y: np.ndarray

    def span(self, start_ms: int, end_ms: int) -> np.ndarray:
        return (self.hour_ms >= start_ms + HOUR_MS) & (self.hour_ms + HOUR_MS <= end_ms)


def kline_points(open_ms: np.ndarray, op: np.ndarray, close: np.ndarray) -> KlinePoints:
    """Every (hour, minute) point with 60 contiguous minutes before the hour and a full hour."""
    open_ms = np.asarray(open_ms, dtype=np.int64)
    n = open_ms.size
    first = np.flatnonzero(open_ms % HOUR_MS == 0)
    ok = []
    for i0 in first:
        if i0 < 60 or i0 + 60 > n:
            continue
        if open_ms[i0 + 59] - open_ms[i0 - 60] != 119 * MINUTE_MS:
            continue  # a gap inside the window: the outcome or the history would be wrong
        ok.append(i0)
    i0 = np.repeat(np.asarray(ok, dtype=np.int64), 59)
    m = np.tile(np.arange(1, 60, dtype=np.int64), len(ok))
    j = i0 + m - 1
    K = op[i0]
    return KlinePoints(open_ms[i0], m, i0, j, close[j], K, (close[i0 + 59] >= K).astype(np.float64))


def fit_season(open_ms: np.ndarray, close: np.ndarray, end_ms: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Hour-of-day and minute-of-hour variance factors from 1m returns of rows before ``end_ms``.

    Returns ``(hod[24], moh[60], var_prior)``: mean squared 1m log return by UTC hour and by
    minute of the hour, each over the overall mean, and the deseasonalised per-minute variance
    (the level the streaming model starts from). Only rows strictly before end_ms are read.
    """
    open_ms = np.asarray(open_ms, dtype=np.int64)
    n = int(np.searchsorted(open_ms, end_ms, side="left"))
    if n < 1441:
        raise ValueError("fit_season needs at least a day of 1m klines before end_ms")
    t = open_ms[1:n]
    r2 = np.diff(np.log(np.asarray(close[:n], dtype=np.float64))) ** 2
    keep = np.diff(open_ms[:n]) == MINUTE_MS
    t, r2 = t[keep], r2[keep]
    mod = (t // MINUTE_MS) % 1440
    g = float(r2.mean())
    hod = np.bincount(mod // 60, r2, 24) / np.maximum(np.bincount(mod // 60, None, 24), 1) / g
    moh = np.bincount(mod % 60, r2, 60) / np.maximum(np.bincount(mod % 60, None, 60), 1) / g
    season = season_table(hod, moh)
    var_prior = float(np.mean(r2 / season[mod]))
    return hod, moh, var_prior


@dataclass(frozen=True)
class SeasonalParams:
    """The shipped rest-of-hour model's knobs (configs/pricer.yaml PRICER_*)."""

    hod: tuple[float, ...]
    moh: tuple[float, ...]
    halflife_min: float = 60.0
    var_prior: float = 1e-7
    var_scale: float = 1.0
    nu: float = 0.0
    p_min: float = 0.001
    scale_window_h: int = 0          # > 0: the walk-forward adaptive scale replaces var_scale
    scale_prior_h: float = 72.0

    def season(self) -> np.ndarray:
        return season_table(self.hod, self.moh)

    @classmethod
    def from_config(cls, cfg: Any) -> "SeasonalParams":
        s = cfg.season()
        hod = tuple(float(x) for x in cfg.pricer_season_hod.split(",") if x.strip()) or (1.0,) * 24
        moh = tuple(float(x) for x in cfg.pricer_season_moh.split(",") if x.strip()) or (1.0,) * 60
        assert s.size == 1440
        return cls(hod, moh, float(cfg.pricer_halflife_min), float(cfg.pricer_var_prior),
                   float(cfg.pricer_var_scale), float(cfg.pricer_nu), float(cfg.pricer_p_min),
                   int(cfg.scale_window_h), float(cfg.pricer_scale_prior_hours))

    def to_config(self) -> dict[str, Any]:
        return {"PRICER_MODEL": "seasonal", "PRICER_HALFLIFE_MIN": self.halflife_min,
                "PRICER_VAR_PRIOR": float(f"{self.var_prior:.6g}"), "PRICER_VAR_SCALE": self.var_scale,
                "PRICER_SCALE_WINDOW_DAYS": self.scale_window_h // 24, "PRICER_SCALE_PRIOR_HOURS": self.scale_prior_h,
                "PRICER_SEASON_HOD": ",".join(f"{v:.4f}" for v in self.hod),
                "PRICER_SEASON_MOH": ",".join(f"{v:.4f}" for v in self.moh)}


def seasonal_predict(open_ms: np.ndarray, close: np.ndarray, pts: KlinePoints, prm: SeasonalParams,
                     op: np.ndarray | None = None) -> np.ndarray:
    """The shipped model at every point via the compiled batch API (level of the last closed bar).

    With the adaptive scale (``prm.scale_window_h`` > 0) the level and the scale in force come
    from ``minute_scale_batch`` (one streaming MinutePricer over the klines, ``op`` = the kline
    opens, needed for each hour's strike): causal, each hour uses only hours that ended before it,
    and the history is whatever precedes the hour in the klines passed in."""
    q = _quant()
    season = prm.season()
    ts = pts.hour_ms + pts.minute * MINUTE_MS
    if prm.scale_window_h > 0:
        if op is None:
            raise ValueError("seasonal_predict: the adaptive scale needs the kline opens (op)")
        lv, sc, _ = q.minute_scale_batch(open_ms, op, close, season, prm.halflife_min, prm.var_prior, prm.nu,
                                         prm.p_min, prm.scale_window_h, prm.scale_prior_h)
        # scale x level at the point == the streaming c_rest_var's (var_scale * level) bit for bit
        return np.asarray(q.minute_prob_batch(pts.S, pts.K, ts, pts.hour_ms + HOUR_MS,
                                              np.asarray(lv)[pts.j] * np.asarray(sc)[pts.j], season, 1.0,
                                              prm.nu, prm.p_min), dtype=np.float64)
    level = np.asarray(q.minute_level_batch(open_ms, close, season, prm.halflife_min, prm.var_prior))
    return np.asarray(q.minute_prob_batch(pts.S, pts.K, ts, pts.hour_ms + HOUR_MS, level[pts.j], season,
                                          prm.var_scale, prm.nu, prm.p_min), dtype=np.float64)


def adaptive_scale_by_hour(open_ms: np.ndarray, op: np.ndarray, close: np.ndarray,
                           prm: SeasonalParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hour_start_ms, scale, history hours) in force for every hour whose previous minute is in the
    klines: the scale after minute 59 of the hour before closed (``minute_scale_batch``)."""
    q = _quant()
    lv, sc, nh = q.minute_scale_batch(open_ms, op, close, prm.season(), prm.halflife_min, prm.var_prior, prm.nu,
                                      prm.p_min, prm.scale_window_h, prm.scale_prior_h)
    om = np.asarray(open_ms, dtype=np.int64)
    last = np.flatnonzero(om % HOUR_MS == HOUR_MS - MINUTE_MS)
    return om[last] + MINUTE_MS, np.asarray(sc)[last], np.asarray(nh)[last]


def hour_minute_variances(open_ms: np.ndarray, op: np.ndarray, close: np.ndarray, prm: SeasonalParams,
                          hours: np.ndarray) -> dict[str, np.ndarray]:
    """[len(hours), 60] per-minute log-return variances of full hours in the klines (for the ECE floor).

    ``forecast``: what the model believed at the hour's minute-1 point, minute by minute (level after
    minute 0 closed x scale in force x season of minute k; the sum over minutes 1..59 is the V it priced
    that point with); ``realised``: each real minute's squared log return (minute 0 from the hour's open)."""
    om = np.asarray(open_ms, dtype=np.int64)
    op, cl = np.asarray(op, dtype=np.float64), np.asarray(close, dtype=np.float64)
    hours = np.asarray(hours, dtype=np.int64)
    i0 = np.searchsorted(om, hours)
    if (hours.size == 0 or np.any(i0 < 1) or np.any(i0 + 59 >= om.size) or np.any(om[i0] != hours)
            or np.any(om[i0 + 59] - om[i0 - 1] != 60 * MINUTE_MS)):
        raise ValueError("hour_minute_variances: every hour needs its 60 minutes and the minute before in the klines")
    q = _quant()
    season = prm.season()
    if prm.scale_window_h > 0:
        lv, sc, _ = q.minute_scale_batch(om, op, cl, season, prm.halflife_min, prm.var_prior, prm.nu, prm.p_min,
                                         prm.scale_window_h, prm.scale_prior_h)
        lv_sc = np.asarray(lv)[i0] * np.asarray(sc)[i0]
    else:
        lv_sc = np.asarray(q.minute_level_batch(om, cl, season, prm.halflife_min, prm.var_prior))[i0] * prm.var_scale
    mod = ((hours // MINUTE_MS) % 1440)[:, None] + np.arange(60)[None, :]
    lc = np.log(cl)
    idx = i0[:, None] + np.arange(60)[None, :]
    r = lc[idx] - lc[idx - 1]
    r[:, 0] = lc[i0] - np.log(op[i0])
    return {"forecast": lv_sc[:, None] * season[mod], "realised": r ** 2}


def ece_context(p: np.ndarray, y: np.ndarray, hour_ms: np.ndarray, var_min: np.ndarray, reps: int = 200,
                seed: int = 7, n_bins: int = 10) -> dict[str, Any]:
    """A model's ECE next to the metric's noise on the same hours: its hour-bootstrap 95% interval and
    the ECE of a correct-by-construction forecaster (:func:`calibration.perfect_forecaster_ece`, synthetic
    Gaussian shocks with ``var_min``), with the share of its runs that score at least as badly."""
    ece = expected_calibration_error(p, y, n_bins)
    e = perfect_forecaster_ece(var_min, n_rep=reps, n_bins=n_bins, seed=seed)
    return {"ece": ece, "ece_hour_bootstrap_95": ece_bootstrap_by_hour(p, y, hour_ms, n_bins=n_bins),
            "perfect_median": float(np.median(e)), "perfect_p90": float(np.percentile(e, 90)),
            "perfect_share_le_0.01": float(np.mean(e <= 0.01)), "perfect_share_ge_model": float(np.mean(e >= ece)),
            "reps": int(reps), "hours": int(var_min.shape[0])}


def rv60_predict(close: np.ndarray, pts: KlinePoints) -> np.ndarray:
    """The score tool's ``ref`` row: Phi(ln(S/K) / (std(last 60 1m log returns)/sqrt 60 * sqrt tau))."""
    lc = np.log(np.asarray(close, dtype=np.float64))
    lr = np.diff(lc, prepend=lc[0])
    sig = np.std(sliding_window_view(lr, 60)[pts.j - 59], axis=1) / math.sqrt(60.0)
    tau = 3600.0 - 60.0 * pts.minute
    # the compiled normal digital without a clamp (p_min 0); sigma 0 settles like the tool's 1e-12 floor
    return np.asarray(_quant().fair_prob_batch(pts.S, pts.K, tau, sig, 0.0, 0.0), dtype=np.float64)


def legacy_predict(open_ms: np.ndarray, close: np.ndarray, pts: KlinePoints, params: PricerParams) -> np.ndarray:
    """The old default (first EWMA half-life on the VOL_SAMPLE_MS grid) fed the minute closes as ticks."""
    ts = np.asarray(open_ms, dtype=np.int64) + (MINUTE_MS - 1)
    sig = sigma_path(ts, np.asarray(close, dtype=np.float64), params.halflives_s, params.sample_ms,
                     params.var_floor)[:, 0]
    q = _quant()
    tau = 3600.0 - 60.0 * pts.minute
    return np.asarray(q.fair_prob_batch(pts.S, pts.K, tau, sig[pts.j], params.nu, params.p_min))


@dataclass
class KlineReport:
    """Every model's scores on the named spans, by minutes left, plus reliability of the chosen one."""

    spans: dict[str, tuple[int, int]]
    chosen: str
    table: dict[str, dict[str, dict[str, Any]]]            # span -> model -> score row
    by_minutes_left: dict[str, list[dict[str, Any]]]       # span -> rows
    reliability: dict[str, dict[str, list[dict[str, float]]]]  # span -> model -> rows
    bootstrap: dict[str, dict[str, Any]]                   # span -> CIs of chosen - rv60
    params: dict[str, Any]
    points: KlinePoints = field(repr=False, default=None)  # type: ignore[assignment]
    predictions: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    ece_context: dict[str, dict[str, Any]] = field(default_factory=dict)   # span -> ece_context() of chosen


def kline_report(kl: Mapping[str, np.ndarray], seasonal: SeasonalParams, legacy: PricerParams | None = None,
                 spans: Mapping[str, tuple[int, int]] | None = None, n_bins: int = 10,
                 ece_floor_reps: int = 0) -> KlineReport:
    """Score const, rv60, the old default and the shipped seasonal model on each span.

    ``ece_floor_reps`` > 0 adds, per span, the seasonal model's :func:`ece_context` (its ECE's
    hour-bootstrap interval and the perfect-forecaster floor on the span's hours)."""
    open_ms = np.asarray(kl["open_ms"], dtype=np.int64)
    op, close = np.asarray(kl["open"], dtype=np.float64), np.asarray(kl["close"], dtype=np.float64)
    if open_ms.size < 121:
        raise ValueError("need at least two hours of 1m klines")
    pts = kline_points(open_ms, op, close)
    if pts.y.size == 0:
        raise ValueError("no full hours with 60 minutes of history in the klines")
    spans = dict(spans or {"train": tuple(map(_day_ms, DEFAULT_TRAIN_SPAN)),
                           "valid": tuple(map(_day_ms, DEFAULT_VALID_SPAN))})
    preds = {"const": np.full(pts.y.size, 0.5), "rv60": rv60_predict(close, pts),
             "legacy_ewma": legacy_predict(open_ms, close, pts, legacy or PricerParams()),
             "seasonal": seasonal_predict(open_ms, close, pts, seasonal, op)}
    if seasonal.scale_window_h > 0:   # the fixed-scale model next to the adaptive one, same points
        preds["seasonal_fixed"] = seasonal_predict(open_ms, close, pts, replace(seasonal, scale_window_h=0))
    table, bml, rel, boot, ctx = {}, {}, {}, {}, {}
    left = 60 - pts.minute
    for name, (a, b) in spans.items():
        m = pts.span(a, b)
        if not m.any():
            continue
        y = pts.y[m]
        table[name] = {k: score_row(v[m], y, n_bins) for k, v in preds.items()}
        rows = []
        for lo, hi in zip(KLINE_MINUTE_BUCKETS[:-1], KLINE_MINUTE_BUCKETS[1:]):
            mm = m & (left > lo) & (left <= hi)
            row: dict[str, Any] = {"minutes_left": f"({lo},{hi}]", "n": int(mm.sum())}
            for k, v in preds.items():
                sr = score_row(v[mm], pts.y[mm], n_bins)
                row.update({f"{k}.brier": sr["brier"], f"{k}.logloss": sr["logloss"], f"{k}.ece": sr["ece"]})
            rows.append(row)
        bml[name] = rows
        rel[name] = {k: reliability_curve(preds[k][m], y, n_bins).rows() for k in ("rv60", "seasonal")}
        boot[name] = bootstrap_by_hour(preds["seasonal"][m], preds["rv60"][m], y, pts.hour_ms[m])
        if ece_floor_reps > 0:
            v = hour_minute_variances(open_ms, op, close, seasonal, np.unique(pts.hour_ms[m]))["forecast"]
            ctx[name] = ece_context(preds["seasonal"][m], y, pts.hour_ms[m], v, ece_floor_reps, n_bins=n_bins)
    return KlineReport({k: (int(a), int(b)) for k, (a, b) in spans.items()}, "seasonal", table, bml, rel, boot,
                       seasonal.to_config(), pts, preds, ctx)


def write_predictions(path: str | Path, rep: KlineReport, model: str | None = None) -> Path:
    """Rows ``hour_ms,minute,p`` for every point (score with score_predictions.py --project)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pr = rep.predictions[model or rep.chosen]
    with p.open("w") as fh:
        fh.write("hour_ms,minute,p\n")
        for h, m, v in zip(rep.points.hour_ms.tolist(), rep.points.minute.tolist(), pr.tolist()):
            fh.write(f"{h},{m},{v:.17g}\n")
    return p


def format_kline_report(rep: KlineReport) -> str:
    wd = rep.params.get("PRICER_SCALE_WINDOW_DAYS", 0)
    scale = (f"adaptive scale: window {wd} d, prior {rep.params['PRICER_SCALE_PRIOR_HOURS']:g} h "
             f"(seasonal_fixed: var_scale={rep.params['PRICER_VAR_SCALE']})" if wd else
             f"var_scale={rep.params['PRICER_VAR_SCALE']}")
    lines = [f"chosen model: {rep.chosen}  params: halflife_min={rep.params['PRICER_HALFLIFE_MIN']} {scale}"]
    for name, models in rep.table.items():
        a, b = rep.spans[name]
        lines += ["", f"span {name}: {_fmt_ms(a)} .. {_fmt_ms(b)}",
                  f"{'model':<14}{'n':>8}{'brier':>10}{'logloss':>10}{'ece':>9}"]
        for k, r in models.items():
            lines.append(f"{k:<14}{r['n']:>8}{r['brier']:>10.5f}{r['logloss']:>10.5f}{r['ece']:>9.4f}")
        ci = rep.bootstrap.get(name, {})
        if ci:
            lines.append(f"seasonal - rv60, 95% hour-bootstrap CI: brier {ci['brier_diff'][0]:+.5f}..{ci['brier_diff'][1]:+.5f}"
                         f"  logloss {ci['logloss_diff'][0]:+.5f}..{ci['logloss_diff'][1]:+.5f}")
        cx = rep.ece_context.get(name)
        if cx:
            lo, hi = cx["ece_hour_bootstrap_95"]
            lines.append(f"seasonal ECE {cx['ece']:.4f} (hour-bootstrap 95% {lo:.4f}..{hi:.4f}); a perfect forecaster on "
                         f"these {cx['hours']} hours ({cx['reps']} runs, synthetic Gaussian minutes with the model's "
                         f"variances) scores median {cx['perfect_median']:.4f}, 90th pct {cx['perfect_p90']:.4f}, "
                         f"<= 0.01 in {100 * cx['perfect_share_le_0.01']:.0f}% of runs, >= ours in "
                         f"{100 * cx['perfect_share_ge_model']:.0f}%")
        lines.append("by minutes left (brier / logloss / ece):  rv60 | seasonal")
        for row in rep.by_minutes_left[name]:
            lines.append(f"  {row['minutes_left']:<9}{row['n']:>7}  {row['rv60.brier']:.4f}/{row['rv60.logloss']:.4f}"
                         f"/{row['rv60.ece']:.4f} | {row['seasonal.brier']:.4f}/{row['seasonal.logloss']:.4f}"
                         f"/{row['seasonal.ece']:.4f}")
    return "\n".join(lines)


def kline_result_json(rep: KlineReport) -> dict[str, Any]:
    return json_safe({"protocol": "klines (score_predictions.py points)", "chosen": rep.chosen, "params": rep.params,
                  "spans": {k: {"start_ms": a, "end_ms": b, "start": _fmt_ms(a), "end": _fmt_ms(b)}
                            for k, (a, b) in rep.spans.items()},
                  "table": rep.table, "by_minutes_left": rep.by_minutes_left, "reliability": rep.reliability,
                  "bootstrap_vs_rv60": rep.bootstrap, "ece_context": rep.ece_context})


def _span(s: str) -> tuple[int, int]:
    try:
        a, b = s.split(":")
        return _day_ms(a), _day_ms(b)
    except ValueError:
        raise ValueError(f"span {s!r} must be YYYY-MM-DD:YYYY-MM-DD") from None


def main_klines(args: argparse.Namespace, kl: Mapping[str, np.ndarray]) -> int:
    """The issue-11 table: const, rv60, the old EWMA default and the shipped model, train and validation."""
    cfg = PricerConfig.from_env()
    rep = kline_report(kl, SeasonalParams.from_config(cfg), PricerParams.from_config(cfg),
                       {"train": _span(args.train_span), "valid": _span(args.valid_span)}, int(args.bins or 10),
                       ece_floor_reps=int(getattr(args, "ece_floor", 0) or 0))
    text = (f"data source: {SOURCE_KLINES} (real 1m klines of {args.data}, scored on minute closes: "
            f"no ticks, no bridge)\n" + format_kline_report(rep))
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"source": SOURCE_KLINES, **kline_result_json(rep)}, indent=1))
    if args.predictions:
        print(f"predictions: {write_predictions(args.predictions, rep)} ({rep.points.y.size} rows)")
    return 0
