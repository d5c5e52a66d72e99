"""Quant core speed: compiled (Cython) vs the plain-Python reference, side by side.

Run: ``python3 -m pytest benchmarks/test_bench_quant.py --benchmark-only``.
Groups: per-tick update of vol + features + fair price (called from Python), batch over
~1,000,000 ticks, one ladder build, one risk check. Ratios and ticks/s land in
``extra_info``. Targets (issue 2): per tick <= 0.3 us and >= 30x the reference; batch
>= 20 M ticks/s; ladder < 2 us; risk check < 0.3 us. No timed asserts here or in tests.
Data: real Binance dumps via hourmm_core.data.load_ticks when present, else its seeded
synthetic stand-in (labelled in extra_info["source"]; it measures code speed, not the market).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core import quant as q
from hourmm_core.quant import reference as R

N_TICK = 20_000          # ticks per round in the per-tick benchmark
N_REF_BATCH = 20_000     # the reference batch runs on a 20k slice (it is ~50-100x slower): compare
                         # extra_info["ticks_per_s"], not the raw times, across compiled/reference
HOUR = 3_600_000


@pytest.fixture(scope="module")
def ticks():
    from hourmm_core.data import load_first_hours
    d = load_first_hours(24)   # a real day (klines+bridge) when ../shared/data exists, else synthetic
    ts = np.ascontiguousarray(d.ts_ms, dtype=np.int64)
    px = np.ascontiguousarray(d.price, dtype=np.float64)
    if len(ts) > 1_000_000:
        ts, px = ts[:1_000_000], px[:1_000_000]
    return ts, px, d.source


def _t(benchmark, what: str = "min") -> float | None:
    """A timing statistic, or None under --benchmark-disable (the smoke run: code runs once)."""
    st = getattr(benchmark, "stats", None)
    return getattr(st.stats, what) if st is not None else None


def _rate(n: int, secs: float | None) -> int | None:
    return round(n / secs) if secs else None


def _us(secs: float | None, per: int = 1) -> float | None:
    return round(secs / per * 1e6, 4) if secs else None


def _per_tick_loop(mod, ts_list, px_list):
    ev = mod.EwmaVol((30.0, 120.0, 600.0), 1000, 1e-12)
    rf = mod.ReturnFeatures()
    fp = mod.FairPricer(0.0, 0.001)
    K = px_list[0]
    hour_end = ts_list[0] - ts_list[0] % HOUR + HOUR

    def run():
        for t, p in zip(ts_list, px_list):
            ev.update(t, p)
            rf.update(t, p)
            fp.update(t, p, K, hour_end, ev.sigma, ev.sigma_at(2))
        return fp.p
    return run


def _tick_pricer_loop(mod, ts_list, px_list):
    tp = mod.TickPricer((30.0, 120.0, 600.0), 1000, 1e-12, 0.0, 0.001)

    def run():
        for t, p in zip(ts_list, px_list):
            tp.update(t, p)
        return tp.p
    return run


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_per_tick_tick_pricer(benchmark, ticks, impl):
    benchmark.group = "quant per-tick: TickPricer.update (one call, 20k ticks/round)"
    ts, px, source = ticks
    ts_list, px_list = ts[:N_TICK].tolist(), px[:N_TICK].tolist()
    mod = q if impl == "compiled" else R
    p = benchmark.pedantic(lambda: _tick_pricer_loop(mod, ts_list, px_list)(),
                           rounds=10 if impl == "compiled" else 2, iterations=1)
    assert 0.0 < p < 1.0
    benchmark.extra_info.update({"source": source, "us_per_tick": _us(_t(benchmark), N_TICK), "target_us": 0.3})


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_per_tick_update_and_price(benchmark, ticks, impl):
    benchmark.group = "quant per-tick: 3 objects vol+features+FairPricer (20k ticks/round)"
    ts, px, source = ticks
    ts_list, px_list = ts[:N_TICK].tolist(), px[:N_TICK].tolist()
    mod = q if impl == "compiled" else R
    # fresh state each round so timestamps never go backwards
    p = benchmark.pedantic(lambda: _per_tick_loop(mod, ts_list, px_list)(),
                           rounds=10 if impl == "compiled" else 2, iterations=1)
    assert 0.0 < p < 1.0
    benchmark.extra_info.update({"source": source, "us_per_tick": _us(_t(benchmark), N_TICK), "target_us": 0.3})


@pytest.mark.parametrize("impl", ["compiled", "reference_20k_ticks"])
def test_batch_features_vol_price(benchmark, ticks, impl):
    benchmark.group = "quant batch: ewma_vol + features + fair_prob"
    ts, px, source = ticks
    if impl == "reference_20k_ticks":
        ts, px = ts[:N_REF_BATCH], px[:N_REF_BATCH]
    mod = q if impl == "compiled" else R

    def run():
        sig = mod.ewma_vol_batch(ts, px, (30.0, 120.0, 600.0), 1000, 1e-12)
        feat = mod.return_features_batch(ts, px)
        K = px / np.exp(feat[:, 4])                      # the hour's open implied by ret_hour
        tau = ((ts - ts % HOUR + HOUR) - ts) / 1000.0
        return mod.fair_prob_batch(px, K, tau, sig[:, 0], 0.0, 0.001)
    p = benchmark.pedantic(run, rounds=5 if impl == "compiled" else 1, iterations=1)
    assert p.shape == (len(ts),) and np.all((p >= 0.001) & (p <= 0.999))
    benchmark.extra_info.update({"source": source, "ticks": int(len(ts)), "ticks_per_s": _rate(len(ts), _t(benchmark)),
                                 "target_ticks_per_s": 20_000_000})


@pytest.mark.parametrize("impl", ["compiled", "compiled_out", "reference_20k_ticks"])
def test_batch_price_path_fused(benchmark, ticks, impl):
    benchmark.group = "quant batch: price_path_batch (vol+features+price, one pass)"
    ts, px, source = ticks
    if impl == "reference_20k_ticks":
        ts, px = ts[:N_REF_BATCH], px[:N_REF_BATCH]
    mod = R if impl == "reference_20k_ticks" else q
    kwargs = {}
    if impl == "compiled_out":  # a notebook sweep reusing its output buffers
        kwargs["out"] = (np.empty((len(ts), 3)), np.empty((len(ts), 7)), np.empty(len(ts)))
    sig, feat, p = benchmark.pedantic(mod.price_path_batch, args=(ts, px), kwargs=kwargs,
                                      rounds=1 if impl == "reference_20k_ticks" else 5, iterations=1)
    assert p.shape == (len(ts),) and sig.shape == (len(ts), 3) and feat.shape == (len(ts), 7)
    benchmark.extra_info.update({"source": source, "ticks": int(len(ts)), "ticks_per_s": _rate(len(ts), _t(benchmark)),
                                 "target_ticks_per_s": 20_000_000})


@pytest.mark.parametrize("impl", ["compiled", "compiled_out", "reference_20k_ticks"])
def test_batch_features_only(benchmark, ticks, impl):
    benchmark.group = "quant batch: return_features only"
    ts, px, source = ticks
    if impl == "reference_20k_ticks":
        ts, px = ts[:N_REF_BATCH], px[:N_REF_BATCH]
        out = benchmark.pedantic(R.return_features_batch, args=(ts, px), rounds=1, iterations=1)
    elif impl == "compiled_out":
        buf = np.empty((len(ts), 7))
        out = benchmark.pedantic(q.return_features_batch, args=(ts, px), kwargs={"out": buf}, rounds=3,
                                 iterations=1)
    else:
        out = benchmark.pedantic(q.return_features_batch, args=(ts, px), rounds=3, iterations=1)
    assert out.shape == (len(ts), 7)
    benchmark.extra_info.update({"source": source, "ticks": int(len(ts)),
                                 "ticks_per_s": _rate(len(ts), _t(benchmark))})


@pytest.mark.parametrize("impl", ["compiled", "reference_20k_ticks"])
def test_batch_vol_only(benchmark, ticks, impl):
    benchmark.group = "quant batch: ewma_vol only"
    ts, px, source = ticks
    if impl == "reference_20k_ticks":
        ts, px = ts[:N_REF_BATCH], px[:N_REF_BATCH]
    mod = q if impl == "compiled" else R
    out = benchmark.pedantic(mod.ewma_vol_batch, args=(ts, px, (30.0, 120.0, 600.0), 1000, 1e-12),
                             rounds=5 if impl == "compiled" else 1, iterations=1)
    assert out.shape == (len(ts), 3)
    benchmark.extra_info.update({"source": source, "ticks": int(len(ts)),
                                 "ticks_per_s": _rate(len(ts), _t(benchmark))})


@pytest.mark.parametrize("impl", ["compiled", "reference_20k_ticks"])
def test_batch_fair_prob_only(benchmark, ticks, impl):
    benchmark.group = "quant batch: fair_prob only"
    ts, px, source = ticks
    if impl == "reference_20k_ticks":
        ts, px = ts[:N_REF_BATCH], px[:N_REF_BATCH]
    mod = q if impl == "compiled" else R
    K = np.full(len(px), float(px[0]))
    tau = ((ts - ts % HOUR + HOUR) - ts) / 1000.0
    sig = np.full(len(px), 1e-4)
    p = benchmark.pedantic(mod.fair_prob_batch, args=(px, K, tau, sig, 0.0, 0.001),
                           rounds=5 if impl == "compiled" else 1, iterations=1)
    assert p.shape == (len(px),) and np.all((p >= 0.001) & (p <= 0.999))
    benchmark.extra_info.update({"source": source, "ticks": int(len(ts)),
                                 "ticks_per_s": _rate(len(ts), _t(benchmark))})


LADDER_ARGS = (0.57, 0.01, 40.0, 0.0, 0.55, 0.58)
LADDER_KW = dict(tick=0.01, min_size=5.0, n_levels=2, base_size=10.0, half_spread=0.02, level_step=0.01,
                 unc_mult=1.0, skew=0.02, max_order_size=100.0, max_position=500.0, capital_free=1000.0,
                 post_only=True, reduce_only=False, spread_mult=1.0, size_mult=1.0)


@pytest.mark.parametrize("impl", ["compiled", "compiled_reuse", "reference"])
def test_ladder_build(benchmark, impl):
    benchmark.group = "quant ladder build (2 levels)"
    if impl == "compiled":
        lad = benchmark(q.build_ladder, *LADDER_ARGS, **LADDER_KW)
    elif impl == "compiled_reuse":
        out = q.Ladder()
        lad = benchmark(q.build_ladder, *LADDER_ARGS, out=out, **LADDER_KW)
    else:
        lad = benchmark(R.build_ladder, *LADDER_ARGS, **LADDER_KW)
    assert lad.count == 4
    benchmark.extra_info.update({"us": _us(_t(benchmark, "median")), "target_us": 2.0})


RISK_ARGS = (0, 0, 0, 0.55, 10.0, 0.57, 40.0, 0.0, 2, 150.0, 120, 100.0, 500.0, 1000.0, 4, 0.15, 500)


@pytest.mark.parametrize("impl", ["compiled", "compiled_checker", "reference"])
def test_risk_check(benchmark, impl):
    benchmark.group = "quant risk check (one order)"
    if impl == "compiled":
        code = benchmark(q.check_order, *RISK_ARGS)
    elif impl == "compiled_checker":
        chk = q.RiskChecker(100.0, 500.0, 1000.0, 4, 0.15, 500)
        code = benchmark(chk.check, *RISK_ARGS[:11])
    else:
        code = benchmark(R.check_order, *RISK_ARGS)
    assert code == 0
    benchmark.extra_info.update({"us": _us(_t(benchmark, "median")), "target_us": 0.3})


def test_pricer_single_call(benchmark):
    benchmark.group = "quant digital_prob (one call)"
    p = benchmark(q.digital_prob, 60_100.0, 60_000.0, 900.0, 1e-4, 0.0, 0.001)
    assert 0.5 < p < 1.0 and math.isfinite(p)
