#!/usr/bin/env python3
"""Walk-forward (causal, adaptive) calibration of the seasonal pricer's variance scale (session 5).

The shipped model forecasts the rest-of-hour variance V (seasonal EWMA level, configs/pricer.yaml)
and prices p = Phi(ln(S/K) / sqrt(c V)) with a FIXED c = PRICER_VAR_SCALE (0.74, fitted on the whole
training span). The log-loss-best c differs by month (April 0.66, May 0.79, June ~1+). This script
asks whether c can be LEARNED FROM THE RECENT PAST instead: every candidate here predicts hour H with
parameters computed from hours that ended at or before H's start only (walk-forward), so its score
on the training span is out of sample for its adaptive part. The seasonal profile / half-life /
prior are the shipped ones (fitted on the training span), the same for every row.

Candidates (prior c0 = 1, the unbiased variance, used alone while there is no history):
  wf-ll D n0      c = argmin of the log loss of the previous D days' evaluation points over a grid,
                  shrunk toward c0 in log space with weight n0 hours: log c = (n log c^ + n0 log c0)/(n + n0)
  ew-ll H n0      the same with exponentially weighted past hours (half-life H days) instead of a
                  hard window (what a streaming core would keep: one decayed loss sum per grid value)
  wf-mom D        c = mean over the previous D days of z^2, z = ln(close_59 / S) / sqrt(V)
                  (realised / forecast rest-of-hour variance; optionally times a constant k)
  wf-robust D     c = (median |z| / 0.6745)^2 (robust moment: down-weights the tails the log loss
                  does not care about)
  ewma-ratio H    c = EWMA over past hours (half-life H hours) of realised hourly variance / the
                  hour's minute-1 forecast
  wf-slope D      logit recalibration p = sigmoid(a logit(p_1)), a fitted on the previous D days
  wf-t D          Student-t nu (variance matched) fitted on the previous D days, scale 1

Scoring span for the comparison: 2025-04-22..05-31 (the first week is burn-in for the windows),
reported as April 22-30 and May; also the whole span 04-15..05-31 (burn-in at the prior).
June is NOT read unless ``--june NAME`` is given, which scores June once for the named candidate
(and the fixed baselines) after the choice is written down (several names: comma-separated).

Run: PYTHONPATH=$PWD nice python3 examples/pricer_research_walkforward.py [--june NAME]
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.special import ndtr
from scipy.stats import t as student_t

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.data.binance_dumps import load_klines
from hourmm_core.research import calibration as cal
from hourmm_core.research import kline_calibration as kcal

D = kcal._day_ms
DATA = "/work/shared/data"
GRID = np.exp(np.linspace(np.log(0.35), np.log(2.0), 71))


def lossvec(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


class Setup:
    """Points, the shipped unscaled forecast V at each point, per-hour aggregates."""

    def __init__(self, june: bool) -> None:
        kl = load_klines(DATA)
        end = D("2025-07-01") if june else D("2025-06-01")
        keep = (kl["open_ms"] >= D("2025-04-15")) & (kl["open_ms"] < end)
        self.om, op, self.cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
        pts = kcal.kline_points(self.om, op, self.cl)
        self.pts = pts
        # the fixed-scale model (window 0): every candidate here rescales its unscaled V
        self.prm = kcal.SeasonalParams.from_config(PricerConfig.from_env({"PRICER_SCALE_WINDOW_DAYS": "0"}))
        season = self.prm.season()
        q = kcal._quant()
        level = np.asarray(q.minute_level_batch(self.om, self.cl, season, self.prm.halflife_min, self.prm.var_prior))
        ev = ((pts.hour_ms + pts.minute * 60000) // 60000) % 1440
        c = np.r_[0.0, np.cumsum(season)]
        self.V = level[pts.j] * (c[ev - ev % 60 + 60] - c[ev])
        self.x = np.log(pts.S / pts.K)
        self.y = pts.y
        # check: numpy p at the shipped scale == the compiled batch path
        p_ship = kcal.seasonal_predict(self.om, self.cl, pts, self.prm)
        mine = np.clip(ndtr(self.x / np.sqrt(self.prm.var_scale * self.V)), self.prm.p_min, 1 - self.prm.p_min)
        assert np.max(np.abs(mine - p_ship)) < 1e-12, np.max(np.abs(mine - p_ship))
        self.rv = kcal.rv60_predict(self.cl, pts)
        h0 = D("2025-04-15") // HOUR_MS
        self.hidx = (pts.hour_ms // HOUR_MS - h0).astype(np.int64)   # hour index from 04-15 00:00
        self.nh = int(self.hidx.max()) + 1
        self.zf = np.log(self.cl[pts.i0 + 59] / pts.S) / np.sqrt(self.V)   # standardised rest-of-hour return

    def per_hour(self, v: np.ndarray) -> np.ndarray:
        """sum over each hour's points (rows: hour index; works for 1-d and 2-d v)."""
        if v.ndim == 1:
            return np.bincount(self.hidx, v, self.nh)
        return np.stack([np.bincount(self.hidx, v[:, g], self.nh) for g in range(v.shape[1])], axis=1)

    def prob(self, c: np.ndarray) -> np.ndarray:
        return np.clip(ndtr(self.x / np.sqrt(c * self.V)), self.prm.p_min, 1 - self.prm.p_min)


def window_sum(H: np.ndarray, hours: int) -> np.ndarray:
    """row h = sum of rows h-hours .. h-1 (strictly before h)."""
    C = np.concatenate([np.zeros((1,) + H.shape[1:]), np.cumsum(H, axis=0)])
    h = np.arange(H.shape[0])
    return C[h] - C[np.maximum(h - hours, 0)]


def ew_sum(H: np.ndarray, hl_hours: float) -> np.ndarray:
    """row h = sum_{k<h} w^(h-1-k) H[k] (decayed once per hour, strictly before h)."""
    w = 0.5 ** (1.0 / hl_hours)
    out = np.zeros_like(H, dtype=np.float64)
    acc = np.zeros(H.shape[1:])
    for h in range(H.shape[0]):
        out[h] = acc
        acc = acc * w + H[h]
    return out


def fit_from_loss(S: np.ndarray, n: np.ndarray, n0: float, c0: float = 1.0) -> np.ndarray:
    """per hour: grid argmin of the summed loss, shrunk toward c0 (log space, n0 pseudo-hours)."""
    chat = GRID[np.argmin(S, axis=1)]
    ok = n > 0
    lc = np.where(ok, (n * np.log(chat) + n0 * np.log(c0)) / np.maximum(n + n0, 1e-12), np.log(c0))
    return np.exp(lc)


def main(june_name: str | None = None) -> None:
    st = Setup(june=june_name is not None)
    y, hid = st.y, st.hidx
    nhp = st.per_hour(np.ones_like(y))                    # points per hour (59 or 0)
    has = (nhp > 0).astype(float)
    print("per-hour log-loss matrix ...", flush=True)
    Lg = np.stack([lossvec(st.prob(np.full(y.size, c)), y) for c in GRID], axis=1)
    HL = st.per_hour(Lg)                                   # [hours, grid]
    cands: dict[str, np.ndarray] = {}                      # name -> p at every point
    scal: dict[str, np.ndarray] = {}                       # name -> c per hour (where it is a scale)
    cands["rv60"] = st.rv
    for c in (0.74, 1.0):
        cands[f"fixed {c}"] = st.prob(np.full(y.size, c))
    # (a) walk-forward log-loss fit, hard window and exponential weights
    for Dd in (3, 7, 14, 28):
        S = window_sum(HL, Dd * 24)
        n = window_sum(has, Dd * 24)
        for n0 in (0, 24, 72):
            ch = fit_from_loss(S, n, n0)
            scal[f"wf-ll D={Dd} n0={n0}"] = ch
    for hd in (2, 5, 10, 20):
        S = ew_sum(HL, hd * 24)
        n = ew_sum(has, hd * 24)
        for n0 in (0, 24, 72):
            scal[f"ew-ll hl={hd}d n0={n0}"] = fit_from_loss(S, n, n0)
    # (b) moment estimates: realised / forecast rest-of-hour variance
    z2h = st.per_hour(st.zf ** 2)
    for Dd in (3, 7, 14, 28):
        S, n = window_sum(z2h, Dd * 24), window_sum(nhp, Dd * 24)
        scal[f"wf-mom D={Dd}"] = np.where(n > 0, S / np.maximum(n, 1), 1.0)
    # realised hourly variance / minute-1 forecast, EWMA over hours
    m1 = st.pts.minute == 1
    ratio = np.zeros(st.nh)
    ratio[hid[m1]] = st.zf[m1] ** 2
    for hh in (24, 72, 168, 336):
        S, n = ew_sum(ratio, hh), ew_sum(has, hh)
        scal[f"ewma-ratio hl={hh}h"] = np.where(n > 0, S / np.maximum(n, 1e-12), 1.0)
    # robust moment: (median |z| / 0.6745)^2 over the window's points
    order_h = np.argsort(hid, kind="stable")
    az = np.abs(st.zf[order_h])
    hstart = np.r_[0, np.cumsum(nhp.astype(int))]
    for Dd in (7, 14, 28, 0):          # 0 = expanding window (all past hours)
        out = np.ones(st.nh)
        for h in range(st.nh):
            a, b = hstart[max(h - Dd * 24, 0) if Dd else 0], hstart[h]
            if b - a >= 59 * 24:
                out[h] = (np.median(az[a:b]) / 0.6745) ** 2
        scal[f"wf-robust D={Dd or 'expanding'}"] = out
    # the same from each hour's minute-1 point only (one, nearly independent, z per hour)
    z1h = np.full(st.nh, np.nan)
    z1h[hid[m1]] = np.abs(st.zf[m1])
    for Dd in (14, 28):
        out = np.ones(st.nh)
        for h in range(24, st.nh):
            w = z1h[max(h - Dd * 24, 0):h]
            out[h] = (np.nanmedian(w) / 0.6745) ** 2
        scal[f"wf-robust-m1 D={Dd}"] = out
    # expanding window (all past hours): the honest walk-forward version of a fixed fitted scale
    S, n = window_sum(HL, st.nh), window_sum(has, st.nh)
    for n0 in (0, 72):
        scal[f"wf-ll expanding n0={n0}"] = fit_from_loss(S, n, n0)
    # a fixed sharpness k times the walk-forward level-bias estimate (k = 0.74 is in-sample)
    for Dd in (14, 28):
        S, n = window_sum(z2h, Dd * 24), window_sum(nhp, Dd * 24)
        scal[f"0.74 x wf-mom D={Dd}"] = 0.74 * np.where(n > 0, S / np.maximum(n, 1), 1.0)
    for Dd in (14, 28):
        r = scal[f"wf-robust D={Dd}"]
        for n0 in (72, 168):
            n = window_sum(has, Dd * 24)
            scal[f"wf-robust D={Dd} n0={n0}"] = np.exp(n * np.log(r) / (n + n0))
    for k, ch in scal.items():
        cands[k] = st.prob(ch[hid])
    # (c) logit slope and Student-t nu, walk-forward
    p1 = st.prob(np.full(y.size, 1.0))
    lg = np.log(p1 / (1 - p1))
    AG = np.linspace(0.7, 1.6, 46)
    HA = st.per_hour(np.stack([lossvec(1 / (1 + np.exp(-a * lg)), y) for a in AG], axis=1))
    for Dd in (7, 14, 28):
        S, n = window_sum(HA, Dd * 24), window_sum(has, Dd * 24)
        a = np.where(n > 0, AG[np.argmin(S, axis=1)], 1.0)
        cands[f"wf-slope D={Dd}"] = 1 / (1 + np.exp(-a[hid] * lg))
    NU = np.array([3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0, 50.0, 1e6])
    z1 = st.x / np.sqrt(st.V)
    PT = [np.clip(student_t.cdf(z1 / np.sqrt((nu - 2) / nu), nu), 1e-3, 1 - 1e-3) if nu < 1e5 else p1 for nu in NU]
    HT = st.per_hour(np.stack([lossvec(p, y) for p in PT], axis=1))
    for Dd in (7, 14, 28):
        S, n = window_sum(HT, Dd * 24), window_sum(has, Dd * 24)
        gi = np.where(n > 0, np.argmin(S, axis=1), len(NU) - 1)
        P = np.stack(PT, axis=1)
        cands[f"wf-t D={Dd}"] = P[np.arange(y.size), gi[hid]]

    spans = {"apr15-30": (D("2025-04-15"), D("2025-05-01")), "apr22-30": (D("2025-04-22"), D("2025-05-01")), "may": (D("2025-05-01"), D("2025-06-01")),
             "wf span 04-22..05-31": (D("2025-04-22"), D("2025-06-01")),
             "train 04-15..05-31": (D("2025-04-15"), D("2025-06-01"))}
    if june_name is not None:
        spans = {"june": (D("2025-06-01"), D("2025-07-01"))}
        keepn = {"rv60", "fixed 0.74", "fixed 1.0", *june_name.split(",")}
        cands = {k: v for k, v in cands.items() if k in keepn}
    masks = {k: (st.pts.hour_ms >= a) & (st.pts.hour_ms + HOUR_MS <= b) for k, (a, b) in spans.items()}
    res = {}
    for name, p in cands.items():
        row = {}
        for sn, m in masks.items():
            b = cal.brier_score(p[m], y[m])
            ll_ = cal.log_loss(p[m], y[m])
            e = cal.expected_calibration_error(p[m], y[m])
            row[sn] = (b, ll_, e)
        res[name] = row
    base = res["rv60"]
    print(f"\n{'candidate':<26}" + "".join(f"| {sn:<33}" for sn in masks))
    for name, row in res.items():
        s = f"{name:<26}"
        for sn in masks:
            b, ll_, e = row[sn]
            g = 100 * (1 - ll_ / base[sn][1])
            s += f"| {b:.5f} {ll_:.5f} {e:.4f} {g:+.2f}% "
        extra = ""
        if name in scal:
            for sn in list(masks)[:3:2] if june_name is None else list(masks):
                ch = scal[name][np.unique(hid[masks[sn]])]
                extra += f" {sn} c {ch.min():.2f}..{ch.max():.2f}"
        print(s + extra, flush=True)
    # hour-bootstrap CIs of the log-loss difference vs the fixed scales on the walk-forward span
    sn = list(masks)[3] if june_name is None else "june"
    m = masks[sn]
    print(f"\nhour-bootstrap 95% CI of log-loss difference on {sn} (negative = candidate better)")
    for name in cands:
        if name == "rv60":
            continue
        cis = []
        for ref in ("fixed 0.74", "fixed 1.0", "rv60"):
            ci = cal.bootstrap_by_hour(cands[name][m], cands[ref][m], y[m], st.pts.hour_ms[m])
            cis.append(f"vs {ref}: {ci['logloss_diff'][0]:+.5f}..{ci['logloss_diff'][1]:+.5f}")
        print(f"{name:<26} " + "  ".join(cis))


if __name__ == "__main__":
    j = None
    if "--june" in sys.argv:
        j = sys.argv[sys.argv.index("--june") + 1]
    main(j)
