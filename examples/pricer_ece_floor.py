#!/usr/bin/env python3
"""The ECE noise floor of the issue-11 protocol: what a CORRECT-BY-CONSTRUCTION forecaster scores.

ECE (10 equal-width bins) is a sum of absolute gaps, so it is positive even for a perfect forecaster,
and on the kline protocol the 59 points of an hour share one outcome: a month has ~720 independent
outcomes, not 42k. This script measures that floor with `calibration.perfect_forecaster_ece`:
simulated hours whose minute returns are Gaussian with known per-minute variances, the true
probability at every evaluation point, ECE against the simulated outcomes, many repetitions. The
shocks are synthetic (a property of the metric, not of the market); the variances are real:

  forecast   each hour's variances = the shipped model's forecast at minute 1 (scale x level x season),
             i.e. the volatility profile the shipped model believed in, hour by hour
  realised   each minute's variance = that real minute's squared log return (the realised profile:
             spikes, quiet minutes), so the p distribution has real fat-tailed shape

for the June file's hours (719, as the score tool counts them) and the training span's (1,127). Next to
it: the shipped model's real ECE, its hour-bootstrap 95% interval, the share of perfect-forecaster runs
that score at least as badly (a one-sided p-value of "the shipped model is calibrated"), and the floor
if the 59 points of an hour had independent outcomes (y ~ Bernoulli(p) per point: what the ECE would
be without the hour clustering).

Run: PYTHONPATH=$PWD nice python3 examples/pricer_ece_floor.py [--reps 1000]   (~1 min)
"""
from __future__ import annotations

import argparse

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.data.binance_dumps import load_klines
from hourmm_core.research import calibration as cal
from hourmm_core.research import kline_calibration as kcal

DATA = "/work/shared/data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=1000)
    a = ap.parse_args()
    kl = load_klines(DATA)
    cfg = PricerConfig.from_env()
    prm = kcal.SeasonalParams.from_config(cfg)
    rep = kcal.kline_report(kl, prm, cal.PricerParams.from_config(cfg))
    pts, p = rep.points, rep.predictions["seasonal"]
    print(f"shipped model: {rep.params}"[:160])
    print(f"{'span':<7}{'hours':>6} {'profile':<10}{'perfect ECE median':>19}{'90th':>8}{'95th':>8}"
          f"{'P(perfect<=0.01)':>17}{'shipped ECE':>12}{'P(perfect >= shipped)':>23}  shipped hour-bootstrap 95%"
          "  iid-outcome floor median/90th")
    for span in ("train", "valid"):
        m = pts.span(*rep.spans[span])
        hours = np.unique(pts.hour_ms[m])
        e_ship = cal.expected_calibration_error(p[m], pts.y[m])
        ci = cal.ece_bootstrap_by_hour(p[m], pts.y[m], pts.hour_ms[m], n=1000)
        rng = np.random.default_rng(1)
        iid = np.array([cal.expected_calibration_error(p[m], (rng.random(int(m.sum())) < p[m]).astype(float))
                        for _ in range(200)])
        for name, v in kcal.hour_minute_variances(kl["open_ms"], kl["open"], kl["close"], prm, hours).items():
            e = cal.perfect_forecaster_ece(v, n_rep=a.reps, seed=7)
            q50, q90, q95 = np.percentile(e, [50, 90, 95])
            print(f"{span:<7}{hours.size:>6} {name:<10}{q50:>19.4f}{q90:>8.4f}{q95:>8.4f}"
                  f"{float(np.mean(e <= 0.01)):>17.3f}{e_ship:>12.4f}"
                  f"{float(np.mean(e >= e_ship)):>23.3f}  [{ci[0]:.4f}, {ci[1]:.4f}]"
                  f"  {np.median(iid):.4f}/{np.percentile(iid, 90):.4f}", flush=True)
        # June ECE of rv60 for context
        rv = rep.predictions["rv60"][m]
        rci = cal.ece_bootstrap_by_hour(rv, pts.y[m], pts.hour_ms[m], n=1000)
        print(f"{'':<7}rv60: ECE {cal.expected_calibration_error(rv, pts.y[m]):.4f}, hour-bootstrap 95% "
              f"[{rci[0]:.4f}, {rci[1]:.4f}]")
    print(f"(hours of {HOUR_MS // 60_000} minutes, 59 points each; {a.reps} repetitions per row)")
    # how many hours a perfect forecaster needs before "ECE <= 0.01" is likely: June's hours repeated k times
    m = pts.span(*rep.spans["valid"])
    vj = kcal.hour_minute_variances(kl["open_ms"], kl["open"], kl["close"], prm, np.unique(pts.hour_ms[m]))["forecast"]
    print("\nperfect forecaster on June's hours repeated k times: hours, ECE median / 90th pct, P(ECE <= 0.01)")
    for k in (1, 2, 4, 8):
        e = cal.perfect_forecaster_ece(np.tile(vj, (k, 1)), n_rep=max(a.reps // (4 * k), 25), seed=7)
        print(f"  k={k}: {k * vj.shape[0]:>5} h  {np.median(e):.4f} / {np.percentile(e, 90):.4f}  {np.mean(e <= 0.01):.2f}",
              flush=True)
    # the reliability bins: each real gap (outcome rate - mean p) next to the perfect forecaster's 5-95% band
    print("\nreliability bins of the shipped model: n, mean p, outcome rate, gap | perfect forecaster's gap 5th..95th pct"
          " (forecast variances, same hours)")
    for span in ("train", "valid"):
        m = pts.span(*rep.spans[span])
        hours = np.unique(pts.hour_ms[m])
        v = kcal.hour_minute_variances(kl["open_ms"], kl["open"], kl["close"], prm, hours)["forecast"]
        sim = cal.perfect_forecaster_bins(v, n_rep=max(a.reps // 4, 1), seed=7)
        with np.errstate(invalid="ignore", divide="ignore"):
            sg = (sim["sum_y"] - sim["sum_p"]) / sim["count"]
        rc = cal.reliability_curve(p[m], pts.y[m])
        for b in range(10):
            if not rc.count[b]:
                continue
            lo, hi = np.nanpercentile(sg[:, b], [5, 95])
            g = rc.obs_freq[b] - rc.mean_pred[b]
            print(f"{span:<7}{rc.edges[b]:.1f}-{rc.edges[b + 1]:.1f} {rc.count[b]:>6} {rc.mean_pred[b]:.3f} {rc.obs_freq[b]:.3f}"
                  f" {g:+.3f} | {lo:+.3f}..{hi:+.3f}{'  outside' if not lo <= g <= hi else ''}", flush=True)
    # by minutes left: the shipped model's ECE per bucket next to the floor on the same hours and minutes
    left = 60 - pts.minute
    print("\nby minutes left: ECE of the shipped model | rv60 | perfect forecaster (forecast variances) median / 90th pct")
    for span in ("train", "valid"):
        m = pts.span(*rep.spans[span])
        hours = np.unique(pts.hour_ms[m])
        v = kcal.hour_minute_variances(kl["open_ms"], kl["open"], kl["close"], prm, hours)["forecast"]
        for lo, hi in zip(kcal.KLINE_MINUTE_BUCKETS[:-1], kcal.KLINE_MINUTE_BUCKETS[1:]):
            mm = m & (left > lo) & (left <= hi)
            e = cal.perfect_forecaster_ece(v, n_rep=max(a.reps // 4, 1), seed=7, minutes=range(60 - hi, 60 - lo))
            print(f"{span:<7}({lo},{hi}]{'':<3}{int(mm.sum()):>7}  {cal.expected_calibration_error(p[mm], pts.y[mm]):.4f}"
                  f" | {cal.expected_calibration_error(rep.predictions['rv60'][mm], pts.y[mm]):.4f}"
                  f" | {np.median(e):.4f} / {np.percentile(e, 90):.4f}", flush=True)


if __name__ == "__main__":
    main()
