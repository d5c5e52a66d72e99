#!/usr/bin/env python3
"""Month-by-month stability of the rest-of-hour pricer candidates (log-loss gain over rv60).

Companion of examples/pricer_research.py, on the compiled batch API. Seasonality and var_prior are
fitted on 2025-04-15..2025-05-31 only (``fit_season``); every row prints the log-loss gain over the
score tool's rv60 on April (15-30), May, the whole training span, and June (validation), plus the
June ECE. Sections: (1) half-life x variance scale of the shipped family, (2) log-variance
("geometric") EWMA levels, (3) a short-term reversal term fitted on train.

Run: PYTHONPATH=$PWD python3 examples/pricer_research_months.py [DATA_DIR]
"""
from __future__ import annotations

import math
import sys

import numpy as np
from scipy.optimize import minimize
from scipy.signal import lfilter
from scipy.special import ndtr

from hourmm_core import quant as q
from hourmm_core.data.binance_dumps import load_klines
from hourmm_core.quant.reference.pricer import season_table
from hourmm_core.research import calibration as cal
from hourmm_core.research import kline_calibration as kcal

D = kcal._day_ms


def main(data: str = "/work/shared/data") -> None:
    kl = load_klines(data)
    keep = kl["open_ms"] >= D("2025-04-15")
    om, op, cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
    pts = kcal.kline_points(om, op, cl)
    y = pts.y
    masks = {"apr": pts.span(D("2025-04-15"), D("2025-05-01")), "may": pts.span(D("2025-05-01"), D("2025-06-01")),
             "train": pts.span(D("2025-04-15"), D("2025-06-01")), "jun": pts.span(D("2025-06-01"), D("2025-07-01"))}

    def ll(p, m):
        p = np.clip(p[m], 1e-6, 1 - 1e-6)
        return float(-np.mean(y[m] * np.log(p) + (1 - y[m]) * np.log(1 - p)))

    rv = kcal.rv60_predict(cl, pts)
    base = {k: ll(rv, m) for k, m in masks.items()}
    hod, moh, prior = kcal.fit_season(om, cl, D("2025-06-01"))
    S = season_table(hod, moh)
    x = np.log(pts.S / pts.K)
    ts = pts.hour_ms + pts.minute * 60_000
    mod = (ts // 60_000) % 1440
    cum = np.r_[0.0, np.cumsum(S)]
    rest = cum[mod - mod % 60 + 60] - cum[mod]          # season over minutes m..59

    def show(name, p):
        g = {k: 100 * (1 - ll(p, m) / base[k]) for k, m in masks.items()}
        e = cal.expected_calibration_error(p[masks["jun"]], y[masks["jun"]])
        print(f"{name:<42} apr {g['apr']:+.2f}% may {g['may']:+.2f}% train {g['train']:+.2f}% | "
              f"June {g['jun']:+.2f}% ECE {e:.4f}", flush=True)

    print("(1) arithmetic EWMA level (shipped family), variance scale sc")
    for hl in (30, 60, 120):
        V = q.minute_level_batch(om, cl, S, hl, prior)[pts.j] * rest
        for sc in (0.75, 0.85, 1.0):
            show(f"hodxmoh hl={hl} sc={sc}" + ("  <- shipped" if (hl, sc) == (60, 1.0) else ""),
                 ndtr(x / np.sqrt(V * sc)))

    print("(2) log-variance EWMA level, exp(EWMA log max(d, 1e-9))) x Gaussian constant e^1.2704")
    lr = np.diff(np.log(cl), prepend=np.log(cl[0]))
    lg = np.log(np.maximum(lr ** 2 / S[(om // 60_000) % 1440], 1e-9))
    for hl in (30, 60, 120):
        a = 1 - 0.5 ** (1 / hl)
        L = np.exp(lfilter([a], [1, -(1 - a)], lg) / lfilter([a], [1, -(1 - a)], np.ones_like(lg)))[pts.j]
        show(f"geo hl={hl}", ndtr(x / np.sqrt(L * math.exp(1.2704) * rest)))

    print("(3) reversal: p = Phi(a z + b r_k / sqrt(V)), a, b fitted on train")
    V = q.minute_level_batch(om, cl, S, 60, prior)[pts.j] * rest
    z = x / np.sqrt(V)
    c = np.r_[0.0, np.cumsum(lr)]
    tr = masks["train"]
    for k in (0, 1, 5):
        X = np.column_stack([z] + ([(c[pts.j + 1] - c[np.maximum(pts.j + 1 - k, pts.i0)]) / np.sqrt(V)] if k else []))

        def f(w):
            p = np.clip(ndtr(X[tr] @ w), 1e-6, 1 - 1e-6)
            return -np.mean(y[tr] * np.log(p) + (1 - y[tr]) * np.log(1 - p))
        w = minimize(f, np.r_[1.0, np.zeros(X.shape[1] - 1)], method="Nelder-Mead").x
        show(f"reversal k={k} w={np.round(w, 3).tolist()}", ndtr(X @ w))


if __name__ == "__main__":
    main(*sys.argv[1:])
