#!/usr/bin/env python3
"""Pricer research on real 1m BTCUSDT klines: rest-of-hour variance forecasts vs rv60.

Evaluation protocol (issue 11, identical to /work/shared/tools/score_predictions.py):
for every full UTC hour H with >= 60 minutes of history before it and every minute
m = 1..59: S = close of minute m-1, K = open of minute 0, tau = 3600 - 60 m seconds,
y = close(minute 59) >= K. Baseline ``rv60``: Phi(ln(S/K) / (sigma sqrt(tau))),
sigma = std(last 60 one-minute log returns) / sqrt(60).

Spans: train = hours in 2025-04-15 .. 2025-05-31 (as the score tool sees the April+May
files: the first hour is skipped), validation = June (as the score tool sees the June
file alone: 2025-06-01 00:00 is skipped). Every parameter is fitted on train only.

Run:  PYTHONPATH=$PWD python3 examples/pricer_research.py [DATA_DIR] [--out out/pricer_research]
It prints one row per variant (train and June Brier / log loss / ECE) and writes
``variants.json``; docs/PRICER.md quotes this output.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtr
from scipy.stats import t as student_t

DATA = Path("/work/shared/data")
FILES = ("BTCUSDT-1m-2025-04.csv.gz", "BTCUSDT-1m-2025-05.csv.gz", "BTCUSDT-1m-2025-06.csv.gz")
JUNE_MS = 1748736000000  # 2025-06-01T00:00Z
HOUR = 3_600_000


def load(data_dir: Path):
    parts = [np.loadtxt(gzip.open(data_dir / f, "rt"), delimiter=",", usecols=(0, 1, 2, 3, 4)) for f in FILES]
    a = np.concatenate(parts)
    a = a[np.argsort(a[:, 0])]
    ts = a[:, 0].astype(np.int64)
    assert np.all(np.diff(ts) == 60000)
    return ts, a[:, 1], a[:, 2], a[:, 3], a[:, 4]


def points(ts, op, cl):
    """(i0, m, j) for every evaluation point; span label 0 = train, 1 = June (score-tool rules)."""
    first = np.nonzero(ts % HOUR == 0)[0]
    june0 = int(np.searchsorted(ts, JUNE_MS))
    rows = []
    for i0 in first:
        if i0 + 60 > len(ts):
            continue
        if ts[i0] < JUNE_MS:
            if i0 < 60:
                continue
            span = 0
        else:
            if i0 - june0 < 60:  # the June file alone has no history for its first hour
                continue
            span = 1
        for m in range(1, 60):
            rows.append((i0, m, i0 + m - 1, span))
    P = np.array(rows, dtype=np.int64)
    return P[:, 0], P[:, 1], P[:, 2], P[:, 3]


# ----------------------------------------------------------------------------- scores
def brier(p, y):
    return float(np.mean((p - y) ** 2))


def logloss(p, y):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ece(p, y, bins=10):
    idx = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    sp = np.bincount(idx, weights=p, minlength=bins)
    sy = np.bincount(idx, weights=y, minlength=bins)
    return float(np.sum(np.abs(sp - sy)) / len(p))


def boot_diff(a, b, y, hour, n=300, seed=0):
    """Hour-block bootstrap 95% CI of logloss(a) - logloss(b)."""
    rng = np.random.default_rng(seed)
    u, inv = np.unique(hour, return_inverse=True)
    la = -(y * np.log(np.clip(a, 1e-6, 1)) + (1 - y) * np.log(np.clip(1 - a, 1e-6, 1)))
    lb = -(y * np.log(np.clip(b, 1e-6, 1)) + (1 - y) * np.log(np.clip(1 - b, 1e-6, 1)))
    sa = np.bincount(inv, la); sb = np.bincount(inv, lb); cnt = np.bincount(inv)
    d = []
    for _ in range(n):
        k = rng.integers(0, len(u), len(u))
        d.append((sa[k].sum() - sb[k].sum()) / cnt[k].sum())
    return np.percentile(d, [2.5, 97.5])


# ----------------------------------------------------------------------------- features
def ewma(x, hl_min):
    """Causal EWMA (normalised weights, starting at x[0]) with half-life hl_min minutes."""
    a = 1.0 - 0.5 ** (1.0 / hl_min)
    num = lfilter([a], [1, -(1 - a)], x)
    den = lfilter([a], [1, -(1 - a)], np.ones_like(x))
    return num / den


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=str(DATA))
    ap.add_argument("--out", default="out/pricer_research")
    ap.add_argument("--rel", action="store_true")
    args = ap.parse_args()
    ts, op, hi, lo, cl = load(Path(args.data))
    lr = np.diff(np.log(cl), prepend=np.log(cl[0]))
    r2 = lr * lr
    i0, m, j, span = points(ts, op, cl)
    K = op[i0]; S = cl[j]; tau = 3600.0 - 60.0 * m; nleft = 60 - m
    y = (cl[i0 + 59] >= K).astype(float)
    x = np.log(S / K)
    tr, va = span == 0, span == 1
    train_end = int(np.searchsorted(ts, JUNE_MS))  # minute rows < June: the only rows any fit may use

    # rv60 exactly like the score tool (np.std of 60 returns)
    from numpy.lib.stride_tricks import sliding_window_view
    W = sliding_window_view(lr, 60)          # W[k] = lr[k .. k+59]
    sig_rv60 = np.std(W[j - 59], axis=1) / math.sqrt(60.0)
    p_rv60 = ndtr(x / np.maximum(sig_rv60 * np.sqrt(tau), 1e-12))

    results = {}

    def score(name, p, note=""):
        p = np.asarray(p, float)
        r = {"note": note}
        for lab, msk in (("train", tr), ("june", va)):
            r[lab] = {"brier": brier(p[msk], y[msk]), "logloss": logloss(p[msk], y[msk]),
                      "ece": ece(p[msk], y[msk]), "n": int(msk.sum())}
        results[name] = (r, p)
        print(f"{name:<44} train {r['train']['brier']:.5f} {r['train']['logloss']:.5f} {r['train']['ece']:.4f} | "
              f"june {r['june']['brier']:.5f} {r['june']['logloss']:.5f} {r['june']['ece']:.4f}", flush=True)
        return r

    score("const", np.full(len(y), 0.5))
    score("rv60", p_rv60, "score tool's ref")

    # ---- seasonality (minute-of-day profile of E[r^2]) learned on training rows only
    mod = ((ts // 60000) % 1440).astype(int)
    dow = ((ts // 86400000 + 3) % 7).astype(int)  # 0 = Monday
    trm = np.arange(len(ts)) < train_end
    trm[0] = False

    def season_profile(smooth_min=0, hod_only=False, weekday=False, shrink=0.0):
        base = np.bincount(mod[trm], r2[trm], 1440) / np.bincount(mod[trm], None, 1440)
        g = r2[trm].mean()
        if hod_only:
            h = (np.arange(1440) // 60)
            hv = np.bincount(h, base, 24) / 60
            prof = hv[h]
        else:
            prof = base
        if smooth_min:
            k = np.ones(2 * smooth_min + 1) / (2 * smooth_min + 1)
            prof = np.convolve(np.r_[prof[-smooth_min:], prof, prof[:smooth_min]], k, "valid")
        prof = prof / g
        prof = (1 - shrink) * prof + shrink
        s = prof[mod]
        if weekday:
            wk = np.array([r2[trm & (dow == d)].mean() for d in range(7)]) / g
            s = s * wk[dow]
        return s

    def rest_var(seas):
        """sum of season over minutes j+1 .. i0+59 (the remaining minutes)."""
        c = np.r_[0.0, np.cumsum(seas)]
        return c[i0 + 60] - c[j + 1]

    def price(var_rest, nu=0.0, scale=1.0, add=0.0, msk=None):
        xx = x if msk is None else x[msk]
        sd = np.sqrt(np.maximum(var_rest * scale + add, 1e-18))
        z = xx / sd
        if nu:
            p = student_t.cdf(z / math.sqrt((nu - 2) / nu), nu)
        else:
            p = ndtr(z)
        return np.clip(p, 1e-4, 1 - 1e-4)

    def fit_scale(var_rest, nu=0.0, add=0.0, grid=np.exp(np.linspace(-0.7, 0.7, 29))):
        best = min(grid, key=lambda c: logloss(price(var_rest[tr], nu, c, add, tr), y[tr]))
        return float(best)

    # rv60 variants: rest-of-hour variance = sigma_1m^2 * nleft
    v_rv60 = (sig_rv60 ** 2) * tau
    for nu in (0, 4, 6, 10):
        c = fit_scale(v_rv60, nu)
        score(f"rv60 nu={nu} scale={c:.3f}", price(v_rv60, nu, c))

    # EWMA of r^2 (per-minute variance) at various half-lives, flat forecast
    ew = {}
    for hl in (5, 15, 30, 60, 120, 240, 480, 1440):
        ew[hl] = ewma(r2, hl)
        v = ew[hl][j] * nleft
        c = fit_scale(v)
        score(f"ewma hl={hl}m scale={c:.3f}", price(v, 0, c))

    # deseasonalised EWMA with seasonal forecast
    for sm in (0, 5, 15):
        seas = season_profile(sm)
        d = r2 / seas
        for hl in (30, 60, 120, 240):
            lev = ewma(d, hl)[j]
            v = lev * rest_var(seas)
            c = fit_scale(v)
            score(f"seas(mod,sm={sm}) ewma hl={hl} scale={c:.3f}", price(v, 0, c))
    seas_h = season_profile(hod_only=True)
    for hl in (60, 120, 240):
        lev = ewma(r2 / seas_h, hl)[j]
        v = lev * rest_var(seas_h)
        c = fit_scale(v)
        score(f"seas(hod) ewma hl={hl} scale={c:.3f}", price(v, 0, c))

    # ---- diagnostics: forecast bias per span (realised rest-of-hour variance / forecast)
    real_rest = np.log(cl[i0 + 59] / S) ** 2
    for hl in (60, 240):
        v = ew[hl][j] * nleft
        print(f"bias ewma{hl}: train {real_rest[tr].mean() / v[tr].mean():.3f} june {real_rest[va].mean() / v[va].mean():.3f}")

    # ---- structured seasonality: hour-of-day x minute-of-hour (24 + 60 factors), optional weekday
    moh = mod % 60
    hod = mod // 60
    g = r2[trm].mean()
    hf = np.bincount(hod[trm], r2[trm], 24) / np.bincount(hod[trm], None, 24) / g
    mf = np.bincount(moh[trm], r2[trm], 60) / np.bincount(moh[trm], None, 60) / g
    wf = np.array([r2[trm & (dow == d)].mean() for d in range(7)]) / g
    print("minute-of-hour factors:", np.round(mf, 2).tolist())
    print("hour-of-day factors:", np.round(hf, 2).tolist())
    print("weekday factors:", np.round(wf, 2).tolist())
    variants = {"hodxmoh": hf[hod] * mf[moh], "hodxmoh+wd": hf[hod] * mf[moh] * wf[dow],
                "mod raw": season_profile(0), "mod raw+wd": season_profile(0, weekday=True)}
    absr = np.abs(lr)
    for sname, seas in variants.items():
        for hl in (60, 120, 240, 480):
            lev = ewma(r2 / seas, hl)[j]
            v = lev * rest_var(seas)
            c = fit_scale(v)
            score(f"{sname} ewma hl={hl} scale={c:.3f}", price(v, 0, c))
            score(f"{sname} ewma hl={hl} scale=1", price(v, 0, 1.0))
            # robust level: EWMA of |r| / sqrt(seas), sigma = mean|r| * sqrt(pi/2)
            lev_a = (ewma(absr / np.sqrt(seas), hl)[j]) ** 2 * (math.pi / 2)
            va_ = lev_a * rest_var(seas)
            c = fit_scale(va_)
            score(f"{sname} abs-ewma hl={hl} scale={c:.3f}", price(va_, 0, c))
            score(f"{sname} abs-ewma hl={hl} scale=1", price(va_, 0, 1.0))
    # Parkinson range estimator on 1m bars (deseasonalised with the hod x moh profile)
    park = np.log(hi / lo) ** 2 / (4 * math.log(2))
    seas = variants["hodxmoh"]
    for hl in (60, 120, 240):
        lev = ewma(park / seas, hl)[j]
        v = lev * rest_var(seas)
        c = fit_scale(v)
        score(f"parkinson hodxmoh hl={hl} scale={c:.3f}", price(v, 0, c))


    # ---- fat tails on the seasonal forecasts: variance-matched Student-t, scale 1 or fitted
    for sname in ("hodxmoh", "hodxmoh+wd"):
        seas = variants[sname]
        for hl in (120, 240):
            v = ewma(r2 / seas, hl)[j] * rest_var(seas)
            for nu in (3.5, 4, 5, 6, 8):
                score(f"{sname} ewma hl={hl} t nu={nu} scale=1", price(v, nu, 1.0))
                c = fit_scale(v, nu)
                score(f"{sname} ewma hl={hl} t nu={nu} scale={c:.3f}", price(v, nu, c))

    # ---- variance-forecast loss (QLIKE) against the realised rest-of-hour variance: the
    # selection criterion that is not the probability score itself
    c2 = np.r_[0.0, np.cumsum(r2)]
    rv_rest = c2[i0 + 60] - c2[j + 1]          # sum of r^2 over minutes m..59
    def qlike(F, msk):
        q = rv_rest[msk] / F[msk]
        return float(np.mean(q - np.log(np.maximum(q, 1e-12)) - 1))
    def mse_ratio(F, msk):
        return float(np.mean(rv_rest[msk]) / np.mean(F[msk]))
    seas = variants["hodxmoh"]
    cands = {"rv60": v_rv60}
    for hl in (30, 60, 120, 240, 480, 1440):
        cands[f"flat ewma {hl}"] = ew.get(hl, ewma(r2, hl))[j] * nleft
        cands[f"hodxmoh ewma {hl}"] = ewma(r2 / seas, hl)[j] * rest_var(seas)
        cands[f"hodxmoh abs {hl}"] = ewma(np.abs(lr) / np.sqrt(seas), hl)[j] ** 2 * math.pi / 2 * rest_var(seas)
        cands[f"mod raw ewma {hl}"] = ewma(r2 / variants["mod raw"], hl)[j] * rest_var(variants["mod raw"])
    L = {h: ewma(r2 / seas, h)[j] for h in (60, 360, 2880)}
    cands["hodxmoh HAR(60,360,2880) equal"] = (L[60] + L[360] + L[2880]) / 3 * rest_var(seas)
    cands["hodxmoh geo(60,1440)"] = np.sqrt(ewma(r2 / seas, 60)[j] * ewma(r2 / seas, 1440)[j]) * rest_var(seas)
    for k, F in cands.items():
        print(f"QLIKE {k:<36} train {qlike(F, tr):.4f} june {qlike(F, va):.4f}  RV/F train {mse_ratio(F, tr):.3f} june {mse_ratio(F, va):.3f}")
    for k in ("hodxmoh HAR(60,360,2880) equal", "hodxmoh geo(60,1440)"):
        score(k + " scale=1", price(cands[k], 0, 1.0))
    def rel(name):
        p = results[name][1]
        for lab, msk in (("train", tr), ("june", va)):
            pp, yy = p[msk], y[msk]
            idx = np.clip(np.floor(pp * 10).astype(int), 0, 9)
            n = np.bincount(idx, minlength=10)
            print(f"  {name} {lab}: " + " ".join(f"{np.sum(pp[idx == b]) / max(n[b], 1):.3f}/{np.sum(yy[idx == b]) / max(n[b], 1):.3f}({n[b]})" for b in range(10)))
    if "--rel" in sys.argv:
        rel("rv60"); rel("hodxmoh ewma hl=120 scale=1"); rel("const")
    json.dump({k: v[0] for k, v in results.items()}, open(Path(args.out).mkdir(parents=True, exist_ok=True) or
                                                          Path(args.out) / "variants.json", "w"), indent=1)


if __name__ == "__main__":
    main()
