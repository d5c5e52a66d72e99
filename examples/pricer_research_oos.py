#!/usr/bin/env python3
"""Out-of-sample (April <-> May) study of calibration / robustness changes to the seasonal pricer.

Every candidate's free parameter(s) AND the seasonal profile are fitted on one training month and
scored on the other (fit April 15-30 -> score May, fit May -> score April 15-30). June is not read
unless ``--june`` is given (it is given once, for the final choice; nothing is fitted on June:
with ``--june`` the parameters are fitted on the whole training span 2025-04-15..05-31 and June is
only scored, and only for rv60, the previous default and the final choice). Every row: log-loss gain over the score tool's rv60 on the held-out month, Brier,
ECE (10 bins).

Run: PYTHONPATH=$PWD python3 examples/pricer_research_oos.py [DATA_DIR] [--june | --fit-scale | --loo-weeks]
(``--fit-scale``: the shipped PRICER_VAR_SCALE, fitted on 2025-04-15..05-31 through the model's batch path;
``--loo-weeks``: leave-one-week-out cross-validation of the scale on the training span.)
"""
from __future__ import annotations

import gzip
import math
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtr
from scipy.stats import t as student_t

from hourmm_core.quant.reference.pricer import season_table
from hourmm_core.research import calibration as cal
from hourmm_core.research import kline_calibration as kcal

D = kcal._day_ms
FILES = ("BTCUSDT-1m-2025-04.csv.gz", "BTCUSDT-1m-2025-05.csv.gz", "BTCUSDT-1m-2025-06.csv.gz")


def load(data: Path):
    a = np.concatenate([np.loadtxt(gzip.open(data / f, "rt"), delimiter=",", usecols=(0, 1, 4, 5, 7, 8))
                        for f in FILES])
    a = a[np.argsort(a[:, 0])]
    return a[:, 0].astype(np.int64), a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5]


def ewma(x, hl):
    a = 1.0 - 0.5 ** (1.0 / hl)
    return lfilter([a], [1, -(1 - a)], x) / lfilter([a], [1, -(1 - a)], np.ones_like(x))


def ll(p, y):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def main(data: str = "/work/shared/data", june: bool = False) -> None:
    om, op, cl, vol, qv, cnt = load(Path(data))
    pts = kcal.kline_points(om, op, cl)
    y = pts.y
    x = np.log(pts.S / pts.K)
    lr = np.diff(np.log(cl), prepend=np.log(cl[0]))
    r2 = lr * lr
    mod = (om // 60_000) % 1440
    ev_mod = ((pts.hour_ms + pts.minute * 60_000) // 60_000) % 1440
    rv = kcal.rv60_predict(cl, pts)
    months = {"apr": (D("2025-04-15"), D("2025-05-01")), "may": (D("2025-05-01"), D("2025-06-01")),
              "train": (D("2025-04-15"), D("2025-06-01")), "jun": (D("2025-06-01"), D("2025-07-01"))}
    pmask = {k: pts.span(*v) for k, v in months.items()}
    folds = [("train", "jun")] if june else [("apr", "may"), ("may", "apr")]

    def season_of(fit, x2):
        """hod x moh factors of series x2 (r^2 or counts) from rows of the fit span only."""
        a, b = months[fit]
        rows = (om >= a) & (om < b)
        rows[0] = False
        g = x2[rows].mean()
        hod = np.bincount(mod[rows] // 60, x2[rows], 24) / np.bincount(mod[rows] // 60, None, 24) / g
        moh = np.bincount(mod[rows] % 60, x2[rows], 60) / np.bincount(mod[rows] % 60, None, 60) / g
        return season_table(hod, moh)

    def rest(S):
        c = np.r_[0.0, np.cumsum(S)]
        return c[ev_mod - ev_mod % 60 + 60] - c[ev_mod]

    rows_out = {}
    for fit, test in folds:
        fm, tm = pmask[fit], pmask[test]
        S = season_of(fit, r2)
        R = rest(S)
        d = r2 / S[mod]
        L = {h: ewma(d, h)[pts.j] for h in (15, 30, 60, 120, 240, 480, 1440)}
        base_test = ll(rv[tm], y[tm])

        def show(name, p, prm=""):
            g = 100 * (1 - ll(p[tm], y[tm]) / base_test)
            e = cal.expected_calibration_error(p[tm], y[tm])
            b = cal.brier_score(p[tm], y[tm])
            rows_out.setdefault(name, {})[test] = (g, b, e, prm)
            print(f"fit {fit:<5} -> {test:<4} {name:<40} {prm:<22} LL gain {g:+.2f}%  Brier {b:.5f}  ECE {e:.4f}",
                  flush=True)

        def pick(grid, make):
            """the grid value with the best fit-span log loss"""
            return min(grid, key=lambda v: ll(make(v)[fm], y[fm]))

        norm = lambda V: ndtr(x / np.sqrt(np.maximum(V, 1e-18)))  # noqa: E731
        show("rv60", rv)
        show("shipped hl=60 sc=1 normal", norm(L[60] * R))
        h = pick((15, 30, 60, 120, 240, 480), lambda h: norm(L[h] * R))
        show("half-life fitted", norm(L[h] * R), f"hl={h}")
        grid_sc = np.round(np.exp(np.linspace(-0.5, 0.3, 33)), 4)
        sc = pick(np.round(np.arange(0.50, 1.2001, 0.01), 2), lambda c: norm(c * L[60] * R))
        show("variance scale fitted (hl=60)", norm(sc * L[60] * R), f"sc={sc}")
        if june:        # the final choice only: June is scored once, for it and the baselines
            continue

        def tdist(nu, V):
            z = x / np.sqrt(V)
            return student_t.cdf(z / math.sqrt((nu - 2) / nu), nu)
        nu = pick((3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0, 50.0), lambda n: tdist(n, L[60] * R))
        show("Student-t nu fitted (hl=60, sc=1)", tdist(nu, L[60] * R), f"nu={nu}")
        # blends with a longer / shorter level
        for other in (15, 240, 1440):
            w = pick(np.linspace(0, 1, 21), lambda w: norm((w * L[60] + (1 - w) * L[other]) * R))
            show(f"blend w*L60 + (1-w)*L{other}", norm((w * L[60] + (1 - w) * L[other]) * R), f"w={w:.2f}")
        # geometric blend
        w = pick(np.linspace(0, 1, 21), lambda w: norm(L[60] ** w * L[1440] ** (1 - w) * R))
        show("geo blend L60^w L1440^(1-w)", norm(L[60] ** w * L[1440] ** (1 - w) * R), f"w={w:.2f}")
        # seasonal shrinkage: season^a (renormalised to the same mean)
        def shrunk(a):
            Sa = S ** a
            Sa = Sa * S.mean() / Sa.mean()
            return norm(ewma(r2 / Sa[mod], 60)[pts.j] * rest(Sa))
        a = pick((0.0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25), shrunk)
        show("season shrink s^a", shrunk(a), f"a={a}")
        # additive variance (K noise / jump floor): V + c * L60 (in per-minute units)
        c = pick((0.0, 0.25, 0.5, 1.0, 2.0), lambda c: norm(L[60] * (R + c)))
        show("floor V + c*L", norm(L[60] * (R + c)), f"c={c}")
        # trade count driven: level x (short / long deseasonalised count)^b
        Sc = season_of(fit, cnt)
        dc = cnt / Sc[mod]
        for hs, hlng in ((15, 240), (30, 1440), (60, 1440)):
            ratio = ewma(dc, hs)[pts.j] / ewma(dc, hlng)[pts.j]
            b = pick(np.linspace(-0.5, 2.0, 26), lambda b: norm(L[60] * ratio ** b * R))
            show(f"count surprise L60*(C{hs}/C{hlng})^b", norm(L[60] * ratio ** b * R), f"b={b:.1f}")
            b = pick(np.linspace(-0.5, 2.0, 26), lambda b: norm(L[240] * ratio ** b * R))
            show(f"count surprise L240*(C{hs}/C{hlng})^b", norm(L[240] * ratio ** b * R), f"b={b:.1f}")
        # count-only level: variance per trade (EWMA r2 / EWMA count, long) x recent count (short)
        for hs in (15, 60):
            vpt = ewma(r2, 1440)[pts.j] / ewma(cnt, 1440)[pts.j]
            Lc = vpt * ewma(cnt / Sc[mod], hs)[pts.j]          # deseasonalised by the count season
            # forecast with the r2 season over the rest of the hour
            k = pick(np.round(np.exp(np.linspace(-0.7, 0.7, 29)), 4), lambda k: norm(k * Lc * R))
            show(f"count level vpt1440*C{hs} (scale fit)", norm(k * Lc * R), f"k={k}")
        # empirical standardised final-return CDF (symmetrised), fitted on the fit span
        V60 = L[60] * R
        zf = np.log(cl[pts.i0 + 59] / pts.S) / np.sqrt(V60)
        zz = np.sort(np.r_[zf[fm], -zf[fm]])

        def emp(z):
            return np.searchsorted(zz, z, side="right") / zz.size
        pe = np.clip(emp(x / np.sqrt(V60)), 1e-4, 1 - 1e-4)
        show("empirical z CDF (hl=60)", pe, f"n={zz.size}")
        # combination: fitted scale + fitted hl
        best = min(((h, c) for h in (30, 60, 120, 240) for c in grid_sc[::2]),
                   key=lambda hc: ll(norm(hc[1] * L[hc[0]] * R)[fm], y[fm]))
        show("hl + scale fitted", norm(best[1] * L[best[0]] * R), f"hl={best[0]} sc={best[1]}")
        # Platt-style p-map: p = Phi(a z) (same as scale) -- and logit calibration of the shipped p
        p0 = norm(L[60] * R)
        lg = np.log(np.clip(p0, 1e-9, 1 - 1e-9) / np.clip(1 - p0, 1e-9, 1))
        a_ = pick(np.linspace(0.8, 1.3, 26), lambda a: 1 / (1 + np.exp(-a * lg)))
        show("logit slope a*logit(p)", 1 / (1 + np.exp(-a_ * lg)), f"a={a_:.2f}")
        # two-parameter refinements of the variance scale
        nl = 60.0 - pts.minute
        best = min(((c, g) for c in grid_sc[::2] for g in (-0.2, -0.1, 0.0, 0.1, 0.2)),
                   key=lambda cg: ll(norm(cg[0] * (nl / 30.0) ** cg[1] * L[60] * R)[fm], y[fm]))
        show("scale c*(left/30)^g", norm(best[0] * (nl / 30.0) ** best[1] * L[60] * R), f"c={best[0]} g={best[1]}")
        best = min(((c, n) for c in grid_sc[::2] for n in (6.0, 10.0, 20.0, 50.0)),
                   key=lambda cn: ll(tdist(cn[1], cn[0] * L[60] * R)[fm], y[fm]))
        show("scale + Student-t", tdist(best[1], best[0] * L[60] * R), f"sc={best[0]} nu={best[1]}")

        def shrunk_sc(a, c):
            Sa = S ** a
            Sa = Sa * S.mean() / Sa.mean()
            return norm(c * ewma(r2 / Sa[mod], 60)[pts.j] * rest(Sa))
        best = min(((a, c) for a in (0.5, 0.75, 1.0) for c in grid_sc[::2]),
                   key=lambda ac: ll(shrunk_sc(*ac)[fm], y[fm]))
        show("season shrink + scale", shrunk_sc(*best), f"a={best[0]} sc={best[1]}")
    if not june:
        print("\nsummary (held-out LL gain vs rv60 / ECE): April(fit May) | May(fit April)")
        for name, r in rows_out.items():
            a, m = r.get("apr"), r.get("may")
            print(f"{name:<42} apr {a[0]:+.2f}% {a[2]:.4f} {a[3]:<18} | may {m[0]:+.2f}% {m[2]:.4f} {m[3]}")


def loo_weeks(data: str = "/work/shared/data") -> None:
    """Leave-one-week-out CV of the variance scale on the training span (season and scale fitted on
    the other weeks, scored on the held-out week; June not read)."""
    from hourmm_core.data.binance_dumps import load_klines

    kl = load_klines(data)
    keep = (kl["open_ms"] >= D("2025-04-15")) & (kl["open_ms"] < D("2025-06-01"))
    om, op, cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
    pts = kcal.kline_points(om, op, cl); y = pts.y
    x = np.log(pts.S / pts.K)
    lr = np.diff(np.log(cl), prepend=np.log(cl[0])); r2 = lr * lr; r2[0] = np.nan
    mod = (om // 60000) % 1440
    ev = ((pts.hour_ms + pts.minute * 60000) // 60000) % 1440
    rv = kcal.rv60_predict(cl, pts)
    def ll(p, m):  # noqa: F811
        p = np.clip(p[m], 1e-6, 1 - 1e-6); return float(-np.mean(y[m] * np.log(p) + (1 - y[m]) * np.log(1 - p)))
    def ewma(v, hl):  # noqa: F811
        a = 1 - 0.5 ** (1 / hl); return lfilter([a], [1, -(1 - a)], v) / lfilter([a], [1, -(1 - a)], np.ones_like(v))
    week = (pts.hour_ms - D("2025-04-15")) // (7 * 86400000)
    wrow = (om - D("2025-04-15")) // (7 * 86400000)
    grid = np.round(np.arange(0.5, 1.2001, 0.02), 2)
    rows = []
    for w in np.unique(week):
        fitrows = (wrow != w) & np.isfinite(r2)
        g = r2[fitrows].mean()
        hod = np.bincount(mod[fitrows] // 60, r2[fitrows], 24) / np.bincount(mod[fitrows] // 60, None, 24) / g
        moh = np.bincount(mod[fitrows] % 60, r2[fitrows], 60) / np.bincount(mod[fitrows] % 60, None, 60) / g
        S = season_table(hod, moh); c = np.r_[0, np.cumsum(S)]; R = c[ev - ev % 60 + 60] - c[ev]
        L = ewma(np.nan_to_num(r2) / S[mod], 60)[pts.j]
        fm, tm = week != w, week == w
        sc = grid[int(np.argmin([ll(ndtr(x / np.sqrt(s * L * R)), fm) for s in grid]))]
        b = ll(rv, tm); g1 = 100 * (1 - ll(ndtr(x / np.sqrt(L * R)), tm) / b); gs = 100 * (1 - ll(ndtr(x / np.sqrt(sc * L * R)), tm) / b)
        best = grid[int(np.argmin([ll(ndtr(x / np.sqrt(s * L * R)), tm) for s in grid]))]
        rows.append((int(w), int(tm.sum() // 59), sc, g1, gs, best))
        print(f"week {w} ({tm.sum() // 59} h): fitted scale {sc:.2f}  held-out LL gain vs rv60: scale 1 {g1:+.2f}%  fitted {gs:+.2f}%  (week's own best {best:.2f})")
    print("fitted scale wins", sum(r[4] > r[3] for r in rows), "of", len(rows), "weeks; mean gain scale 1 %+.2f%%, fitted %+.2f%%" % (np.mean([r[3] for r in rows]), np.mean([r[4] for r in rows])))


def fit_shipped_scale(data: str = "/work/shared/data") -> float:
    """PRICER_VAR_SCALE fitted on the training span only (2025-04-15..05-31 log loss), through the
    shipped model's own batch path (configs/pricer.yaml season, prior, half-life)."""
    import dataclasses

    from hourmm_core.config import PricerConfig
    from hourmm_core.data.binance_dumps import load_klines

    kl = load_klines(data)
    keep = (kl["open_ms"] >= D("2025-04-15")) & (kl["open_ms"] < D("2025-06-01"))
    om, op, cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
    pts = kcal.kline_points(om, op, cl)
    prm = kcal.SeasonalParams.from_config(PricerConfig.from_env({"PRICER_VAR_SCALE": "1.0",
                                                                 "PRICER_SCALE_WINDOW_DAYS": "0"}))
    grid = np.round(np.arange(0.50, 1.2001, 0.01), 2)
    lls = [ll(kcal.seasonal_predict(om, cl, pts, dataclasses.replace(prm, var_scale=float(c))), pts.y) for c in grid]
    best = float(grid[int(np.argmin(lls))])
    print(f"train-fitted PRICER_VAR_SCALE = {best} (train log loss {min(lls):.5f}; scale 1: {lls[50]:.5f})")
    return best


if __name__ == "__main__":
    if "--loo-weeks" in sys.argv:
        loo_weeks(*[a for a in sys.argv[1:] if not a.startswith("--")])
        raise SystemExit(0)
    if "--fit-scale" in sys.argv:
        fit_shipped_scale(*[a for a in sys.argv[1:] if not a.startswith("--")])
        raise SystemExit(0)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(*args, june="--june" in sys.argv)
