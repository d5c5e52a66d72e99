#!/usr/bin/env python3
"""Session 6: new walk-forward candidates on top of the SHIPPED pricer (28-day walk-forward scale).

Base = the shipped model at every kline-protocol point: p = Phi(z), z = x / sd, x = ln(S/K),
sd = sqrt(c(H) V) (seasonal level x rest-of-hour season x the walk-forward scale in force; computed
by the compiled batch path, checked equal to `kline_calibration.seasonal_predict` first). Every
candidate changes the map from the information at the point to p, with parameter(s) fitted by log
loss on the evaluation points of hours that ENDED AT OR BEFORE the predicted hour's start (walk-forward;
no look-ahead), over a 28-day window (`D=28`) or all past hours (`exp`), shrunk toward the null
(= the shipped model) with n0 = 72 pseudo-hours (parameter averaging; the null alone with no history).
April 15-30 is warm-up, May 2025 is the walk-forward test (the decision rule is in docs/PRICER.md,
"Tried in session 6", written before any candidate was scored). Features use only klines closed at
the point (minutes <= m-1).

  imb k        taker-flow imbalance drift: p = Phi(z + b I_k sqrt(L) / sd), I_k = (2 taker-buy - volume)
               / volume over the last k minutes, sqrt(L) = the per-minute sd (level): a shift of b I_k
               per-minute sds in log price
  mom k        momentum (b > 0) / mean reversion (b < 0) of the last k minutes' return R_k:
               p = Phi((x + b R_k) / sd)
  ecdf         empirical CDF of the standardised rest-of-hour return zeta = ln(close_59 / S) / sd over
               the window's points (symmetrised, histogram 0.01 wide), shrunk toward Phi with 72 x 59
               pseudo-points: p = 1 - F(-z); `ecdf-tau` = one CDF per minutes-left bucket (<=10, 10-30, >30)
  taumap       logit(p') = a_b logit(p) + c_b per minutes-left bucket b (0-5, 5-10, 10-20, 20-30, 30-45, 45-59)
  tauscale     p = Phi(z / sqrt(k_b)) per minutes-left bucket (a sharpness per bucket on top of c(H))
  slope        one global logit slope a on top of the shipped p (session 5 tried it on the fixed-1 model)
  bias         one global logit intercept (the recent drift of the up-share)
  blend-rv60   logit(p') = w logit(p) + (1 - w) logit(p_rv60) (a forecast combination)
  volreg       a scale per regime of the level vs its 7-day median (low < 0.8 <= mid <= 1.25 < high)

Run: PYTHONPATH=$PWD nice python3 examples/pricer_research_candidates6.py            (train only, ~1 min)
     PYTHONPATH=$PWD nice python3 examples/pricer_research_candidates6.py --june     (adds June, once)
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.special import ndtr

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.data.binance_dumps import load_klines
from hourmm_core.research import calibration as cal
from hourmm_core.research import kline_calibration as kcal

D = kcal._day_ms
DATA = Path("/work/shared/data")
N0 = 72.0
P_MIN = 0.001


def lossvec(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(q) + (1 - y) * np.log(1 - q))


def clipp(p: np.ndarray) -> np.ndarray:
    return np.clip(p, P_MIN, 1 - P_MIN)


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def sigm(u: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-u))


def taker_volumes(open_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(volume, taker buy base volume) per kline row, read from the monthly dumps (column 9)."""
    rows = {}
    for f in sorted(DATA.glob("BTCUSDT-1m-2025-0*.csv.gz")):
        with gzip.open(f, "rt") as fh:
            a = np.loadtxt(fh, delimiter=",", usecols=(0, 5, 9))
        rows[f.name] = a
    a = np.concatenate(list(rows.values()))
    a = a[np.argsort(a[:, 0])]
    i = np.searchsorted(a[:, 0], open_ms)
    assert np.all(a[i, 0] == open_ms)
    return a[i, 1], a[i, 2]


class Setup:
    def __init__(self, june: bool) -> None:
        kl = load_klines(DATA)
        end = D("2025-07-01") if june else D("2025-06-01")
        keep = (kl["open_ms"] >= D("2025-04-15")) & (kl["open_ms"] < end)
        om, op, cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
        self.om, self.cl = om, cl
        pts = kcal.kline_points(om, op, cl)
        self.pts = pts
        prm = kcal.SeasonalParams.from_config(PricerConfig.from_env())
        assert prm.scale_window_h == 672, "the shipped model is the 28-day walk-forward scale"
        season = prm.season()
        lv, sc, _ = kcal._quant().minute_scale_batch(om, op, cl, season, prm.halflife_min, prm.var_prior, prm.nu,
                                                     prm.p_min, prm.scale_window_h, prm.scale_prior_h)
        lv, sc = np.asarray(lv), np.asarray(sc)
        ev = ((pts.hour_ms + pts.minute * 60000) // 60000) % 1440
        c = np.r_[0.0, np.cumsum(season)]
        self.level = lv[pts.j]
        self.sd = np.sqrt(lv[pts.j] * sc[pts.j] * (c[ev - ev % 60 + 60] - c[ev]))
        self.x = np.log(pts.S / pts.K)
        self.z = self.x / self.sd
        self.y = pts.y
        self.p0 = clipp(ndtr(self.z))
        ship = kcal.seasonal_predict(om, cl, pts, prm, op)
        assert np.max(np.abs(ship - self.p0)) < 1e-12, np.max(np.abs(ship - self.p0))
        self.rv = kcal.rv60_predict(cl, pts)
        h0 = D("2025-04-15") // HOUR_MS
        self.hidx = (pts.hour_ms // HOUR_MS - h0).astype(np.int64)
        self.nh = int(self.hidx.max()) + 1
        self.has = (np.bincount(self.hidx, None, self.nh) > 0).astype(float)
        self.left = 60 - pts.minute
        self.zeta = np.log(cl[pts.i0 + 59] / pts.S) / self.sd
        vol, tb = taker_volumes(om)
        self.vol, self.tb = vol, tb
        lc = np.log(cl)
        self.lc = lc

    def per_hour(self, L: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(self.hidx, L[:, g], self.nh) for g in range(L.shape[1])], axis=1)

    def imbalance(self, k: int) -> np.ndarray:
        cv, ct = np.r_[0.0, np.cumsum(self.vol)], np.r_[0.0, np.cumsum(self.tb)]
        j = self.pts.j
        v = cv[j + 1] - cv[j + 1 - k]
        t = ct[j + 1] - ct[j + 1 - k]
        return np.where(v > 0, (2 * t - v) / np.maximum(v, 1e-12), 0.0)

    def ret(self, k: int) -> np.ndarray:
        j = self.pts.j
        return self.lc[j] - self.lc[j - k]


def window_sum(H: np.ndarray, hours: int) -> np.ndarray:
    """row h = sum of rows h-hours .. h-1 (hours strictly before h); hours <= 0: all of them."""
    C = np.concatenate([np.zeros((1,) + H.shape[1:]), np.cumsum(H, axis=0)])
    h = np.arange(H.shape[0])
    return C[h] - (C[np.maximum(h - hours, 0)] if hours > 0 else 0.0)


def wf_grid(st: Setup, prob: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, null: float,
            window_h: int, mask: np.ndarray | None = None, log_space: bool = False) -> np.ndarray:
    """Walk-forward grid fit of one parameter (per hour), shrunk toward ``null`` with N0 pseudo-hours.

    ``prob(theta_per_point)`` gives p; ``mask`` restricts the fit (and the returned per-point params'
    use) to some points. Returns the per-point parameter in force."""
    m = np.ones(st.y.size, bool) if mask is None else mask
    L = np.zeros((st.y.size, grid.size))
    for g, th in enumerate(grid):
        L[:, g] = np.where(m, lossvec(prob(np.full(st.y.size, th)), st.y), 0.0)
    HL = st.per_hour(L)
    has = (np.bincount(st.hidx[m], None, st.nh) > 0).astype(float)
    S, n = window_sum(HL, window_h), window_sum(has, window_h)
    hat = grid[np.argmin(S, axis=1)]
    if log_space:
        th = np.exp((n * np.log(hat) + N0 * np.log(null)) / (n + N0))
    else:
        th = (n * hat + N0 * null) / (n + N0)
    return th[st.hidx]


def wf_ecdf(st: Setup, window_h: int, groups: np.ndarray) -> np.ndarray:
    """p = 1 - F(-z), F = the window's symmetrised histogram CDF of zeta (per group), shrunk to Phi."""
    edges = np.linspace(-10, 10, 2001)
    mid = edges[:-1]
    p = np.empty(st.y.size)
    for g in np.unique(groups):
        m = groups == g
        zz = np.clip(st.zeta[m], -9.999, 9.999)
        b1 = np.searchsorted(edges, zz, side="right") - 1
        b2 = np.searchsorted(edges, -zz, side="right") - 1
        H = np.zeros((st.nh, 2000))
        np.add.at(H, (st.hidx[m], b1), 0.5)
        np.add.at(H, (st.hidx[m], b2), 0.5)
        W = window_sum(H, window_h)
        N = W.sum(axis=1)
        CDF = np.cumsum(W, axis=1)                                # P(zeta < right edge of bin)
        hh = st.hidx[m]
        u = -st.z[m]                                              # y = 1  <=>  zeta >= -z
        k = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, 1999)
        frac = np.clip((u - mid[k]) / 0.01, 0, 1)
        below = (CDF[hh, k] - W[hh, k]) + frac * W[hh, k]          # linear within the bin
        n0pts = N0 * 59 * (m.sum() / st.y.size)
        F = (below + n0pts * ndtr(u)) / (N[hh] + n0pts)
        p[m] = clipp(1 - F)
    return p


def candidates(st: Setup) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"rv60": st.rv, "shipped": st.p0}
    wins = {"D=28": 672, "exp": 0}
    B = np.linspace(-3, 3, 61)
    for k in (1, 5, 15, 60):
        imb = st.imbalance(k) * np.sqrt(st.level) / st.sd
        for wn, w in wins.items():
            b = wf_grid(st, lambda t, imb=imb: clipp(ndtr(st.z + t * imb)), B, 0.0, w)
            out[f"imb k={k} {wn}"] = clipp(ndtr(st.z + b * imb))
    BM = np.linspace(-0.5, 0.5, 51)
    for k in (1, 5, 15, 60):
        R = st.ret(k)
        for wn, w in wins.items():
            b = wf_grid(st, lambda t, R=R: clipp(ndtr((st.x + t * R) / st.sd)), BM, 0.0, w)
            out[f"mom k={k} {wn}"] = clipp(ndtr((st.x + b * R) / st.sd))
    for wn, w in wins.items():
        out[f"ecdf {wn}"] = wf_ecdf(st, w, np.zeros(st.y.size, int))
        out[f"ecdf-tau {wn}"] = wf_ecdf(st, w, np.digitize(st.left, [10.5, 30.5]))
    buckets = np.digitize(st.left, [5.5, 10.5, 20.5, 30.5, 45.5])
    lg0 = logit(st.p0)
    A = np.exp(np.linspace(np.log(0.6), np.log(1.6), 31))
    Cg = np.linspace(-0.3, 0.3, 31)
    KS = np.exp(np.linspace(np.log(0.5), np.log(2.0), 41))
    for wn, w in wins.items():
        a = np.ones(st.y.size)
        cc = np.zeros(st.y.size)
        ks = np.ones(st.y.size)
        for bk in range(6):
            mb = buckets == bk
            ab = wf_grid(st, lambda t: sigm(t * lg0), A, 1.0, w, mb, log_space=True)
            cb = wf_grid(st, lambda t, ab=ab: sigm(ab * lg0 + t), Cg, 0.0, w, mb)   # intercept given slope
            kb = wf_grid(st, lambda t: clipp(ndtr(st.z / np.sqrt(t))), KS, 1.0, w, mb, log_space=True)
            a[mb], cc[mb], ks[mb] = ab[mb], cb[mb], kb[mb]
        out[f"taumap {wn}"] = clipp(sigm(a * lg0 + cc))
        out[f"tauscale {wn}"] = clipp(ndtr(st.z / np.sqrt(ks)))
        sl = wf_grid(st, lambda t: sigm(t * lg0), A, 1.0, w, log_space=True)
        out[f"slope {wn}"] = clipp(sigm(sl * lg0))
        bi = wf_grid(st, lambda t: sigm(lg0 + t), Cg, 0.0, w)
        out[f"bias {wn}"] = clipp(sigm(lg0 + bi))
        lr = logit(np.clip(st.rv, 1e-6, 1 - 1e-6))
        Wg = np.linspace(0, 1, 21)
        wb = wf_grid(st, lambda t: sigm(t * lg0 + (1 - t) * lr), Wg, 1.0, w)
        out[f"blend-rv60 {wn}"] = clipp(sigm(wb * lg0 + (1 - wb) * lr))
    # volatility regime: level vs its own trailing 7-day median (causal: rows before the point)
    lvl = st.level
    med = np.empty_like(lvl)
    hrs = st.hidx
    hl = np.array([np.median(lvl[hrs == h]) if np.any(hrs == h) else np.nan for h in range(st.nh)])
    for h in range(st.nh):
        w = hl[max(h - 168, 0):h]
        w = w[np.isfinite(w)]
        med[hrs == h] = np.median(w) if w.size else np.nan
    ratio = np.where(np.isfinite(med), lvl / med, 1.0)
    reg = np.digitize(ratio, [0.8, 1.25])
    for wn, w in wins.items():
        ks = np.ones(st.y.size)
        for r in range(3):
            mr = reg == r
            kr = wf_grid(st, lambda t: clipp(ndtr(st.z / np.sqrt(t))), KS, 1.0, w, mr, log_space=True)
            ks[mr] = kr[mr]
        out[f"volreg {wn}"] = clipp(ndtr(st.z / np.sqrt(ks)))
    return out


def main(june: bool) -> None:
    st = Setup(june)
    cands = candidates(st)
    spans = {"apr22-30": (D("2025-04-22"), D("2025-05-01")), "may": (D("2025-05-01"), D("2025-06-01"))}
    if june:
        spans["june"] = (D("2025-06-01"), D("2025-07-01"))
    masks = {k: (st.pts.hour_ms >= a) & (st.pts.hour_ms + HOUR_MS <= b) for k, (a, b) in spans.items()}
    y = st.y
    res: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, p in cands.items():
        res[name] = {sn: (cal.brier_score(p[m], y[m]), cal.log_loss(p[m], y[m]), cal.expected_calibration_error(p[m], y[m]))
                     for sn, m in masks.items()}
    mm = masks["may"]
    print(f"{'candidate':<22}" + "".join(f"| {sn + ' Brier / LL / ECE':<28}" for sn in masks)
          + "| May LL diff vs shipped (95% hour CI) | rule")
    for name, row in res.items():
        s = f"{name:<22}" + "".join(f"| {row[sn][0]:.5f} {row[sn][1]:.5f} {row[sn][2]:.4f} " for sn in masks)
        if name not in ("shipped", "rv60"):
            ci = cal.bootstrap_by_hour(cands[name][mm], cands["shipped"][mm], y[mm], st.pts.hour_ms[mm])["logloss_diff"]
            sh = res["shipped"]
            ok = (ci[1] < 0 and all(row[sn][0] <= sh[sn][0] and row[sn][1] <= sh[sn][1] and row[sn][2] <= sh[sn][2]
                                    for sn in ("may", "apr22-30")))
            s += f"| {ci[0]:+.5f}..{ci[1]:+.5f}          | {'PASS' if ok else 'fail'}"
        print(s, flush=True)


if __name__ == "__main__":
    main("--june" in sys.argv)
