"""Research throughput: calibration over the whole history, a one-month strategy backtest.

Sizes (a full benchmark run; ``--benchmark-disable`` smoke runs in CI use tiny sizes):

* calibration: the whole history from ``hourmm_core.data.load_ticks()`` when real
  Binance data is found (../shared/data: 1,848 hours of real 1m klines, ticks from the
  seeded bridge, ``binance-klines+bridge``); ``$HOURMM_BENCH_CAL_HOURS`` hours of it from the
  history's start when set, and in ``--benchmark-disable`` smoke runs (6 hours). Without real
  data: that many hours (default 240) of the seeded SYNTHETIC stand-in (labelled ``source``).
* backtest: ``$HOURMM_BENCH_BT_HOURS`` (default 720 = one month) consecutive hours
  via :func:`run_backtest_span` (chunked loading) from the start of the real history, the
  trader's DecisionCore against the simulator engine + agents, on all CPUs.

* backtest fast vs reference path: ``$HOURMM_BENCH_FAST_HOURS`` (default 6; 1 in smoke runs)
  real hours of 2025-05-22 with the shipped defaults, one process, the fast path
  (:func:`run_hour` ``fast=True``) benchmarked and the reference path (``fast=False``) timed in
  the same run, interleaved hour by hour: CPU seconds per hour of each and their ratio
  (``speedup_cpu``), plus a check that both gave the same PnL and fills. CPU seconds
  (``time.process_time``) per hour are hours per second per core; the 1-minute load average
  before and after goes into extra_info (the machine is shared).

* day loading: a backtest day's window (48 h; 2 in smoke runs) through ``load_prices`` vs
  ``load_ticks``, and a kline month parsed vs loaded from the parse cache, side by side.

Throughput goes into extra_info (ticks/s, hours/s) with the data source.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from hourmm_core.research import backtest as bt
from hourmm_core.research import calibration as cal


def _size(benchmark, env: str, full: int, smoke: int) -> int:
    if env in os.environ:
        return int(os.environ[env])
    return smoke if getattr(benchmark, "disabled", False) else full


@pytest.fixture(scope="module", autouse=True)
def _core():
    try:
        cal._quant()
    except ImportError as exc:
        pytest.skip(f"compiled core not built: {exc}")


@pytest.mark.timeout(1800)
def test_bench_calibration(benchmark):
    from hourmm_core import data

    hours = _size(benchmark, "HOURMM_BENCH_CAL_HOURS", 240, 6)
    real = data.find_data_dir() is not None
    span = data.history_span() if real else None
    whole = "HOURMM_BENCH_CAL_HOURS" not in os.environ and not getattr(benchmark, "disabled", False)
    if span is not None and not whole:
        ticks = data.load_ticks(span[0], min(span[1], span[0] + hours * 3_600_000))
    else:
        ticks = data.load_ticks(None, synthetic_hours=hours)  # real data: the whole history
    ts, price, source = cal.as_arrays(ticks)
    res = benchmark.pedantic(cal.calibrate, args=((ts, price, source),), rounds=1, iterations=1)
    assert res.n_hours > 0 and res.score("const_0.5").brier == pytest.approx(0.25)
    benchmark.extra_info.update({"source": source, "real_data_dir": real, "ticks": int(ts.size),
                                 "hours": res.n_hours})
    secs = benchmark.stats.stats.mean if benchmark.stats else None
    if secs:
        benchmark.extra_info.update({"ticks_per_s": ts.size / secs, "hours_per_s": res.n_hours / secs})


@pytest.mark.timeout(7200)  # a month takes ~15 min on 2 busy cores; the suite's 300 s default would kill it
def test_bench_backtest_month(benchmark):
    hours = _size(benchmark, "HOURMM_BENCH_BT_HOURS", 720, 2)
    workers = int(os.environ.get("HOURMM_BENCH_WORKERS", os.cpu_count() or 1))
    params = bt.BacktestParams()
    res = benchmark.pedantic(bt.run_backtest_span, args=(hours,),
                             kwargs={"params": params, "workers": workers},
                             rounds=1, iterations=1)
    assert len(res.hours) == hours and not res.errors, res.errors
    from hourmm_core import data
    if data.find_data_dir() is not None:
        assert res.source == data.SOURCE_KLINES_BRIDGE, res.source   # real klines, not the stand-in
    tot = res.totals()
    benchmark.extra_info.update({"source": res.source, "ticks": res.n_ticks, "hours": len(res.hours),
                                 "workers": workers, "decision_ms": params.decision_ms,
                                 "fills": tot["fills"], "pnl": tot["pnl"]})
    secs = benchmark.stats.stats.mean if benchmark.stats else None
    if secs:
        benchmark.extra_info.update({"ticks_per_s": res.n_ticks / secs, "hours_per_s": len(res.hours) / secs,
                                     "s_per_hour_per_worker": secs * workers / len(res.hours)})


def test_bench_backtest_fast_vs_reference(benchmark):
    """Hours per CPU second of the fast path and of the reference path, same real hours, same run."""
    from hourmm_core import data
    from hourmm_core.clock import HOUR_MS
    from hourmm_core.research import engine_backtest as eb
    from hourmm_core.research.backtest_cli import params_from_config
    from hourmm_core.research.settings import load_research_config

    hours = _size(benchmark, "HOURMM_BENCH_FAST_HOURS", 6, 1)
    day = 1_747_872_000_000 + 12 * HOUR_MS     # 2025-05-22 12:00Z (tuning window)
    if data.find_data_dir() is None:
        pytest.skip("needs the real klines (/work/shared/data)")
    t = data.load_ticks(day - HOUR_MS, day + hours * HOUR_MS, allow_synthetic=False)
    ts, price = np.asarray(t.ts_ms, dtype=np.int64), np.asarray(t.price, dtype=np.float64)
    params = params_from_config(load_research_config(None).get("backtest", {}))
    sigma = cal.sigma_path(ts, price, (params.halflife_s, params.halflife_alt_s), params.sample_ms)
    hs, first, last = cal.complete_hours(ts)
    jobs = [(h, a, b) for h, a, b in zip(hs.tolist(), first.tolist(), last.tolist()) if h >= day][:hours]
    cpu = {True: 0.0, False: 0.0}
    pnl = {True: [], False: []}

    def one(fast: bool, job) -> None:
        c0 = time.process_time()
        r, p = eb.run_hour(params, ts, price, *job, sigma, fast=fast)
        cpu[fast] += time.process_time() - c0
        pnl[fast].append((round(r.pnl, 6), round(r.fees, 6), r.n_fills))

    def fast_block() -> None:
        for job in jobs:
            one(False, job)      # reference first, interleaved hour by hour (same load for both)
            one(True, job)

    load0 = os.getloadavg()[0]
    benchmark.pedantic(fast_block, rounds=1, iterations=1)
    assert len(pnl[True]) == len(jobs) > 0
    assert pnl[True] == pnl[False], "fast and reference paths disagree"
    benchmark.extra_info.update({
        "source": t.source, "hours": len(jobs),
        "cpu_s_per_hour_fast": cpu[True] / len(jobs), "cpu_s_per_hour_reference": cpu[False] / len(jobs),
        "hours_per_cpu_s_fast": len(jobs) / cpu[True], "hours_per_cpu_s_reference": len(jobs) / cpu[False],
        "speedup_cpu": cpu[False] / cpu[True], "loadavg_1m_before_after": (load0, os.getloadavg()[0])})


def test_bench_sim_ids_compiled_vs_reference(benchmark):
    """The backtest engine's order ids (~12,000 per simulated hour): the compiled
    :func:`hourmm_core.sim.polymarket.wire.order_id` benchmarked, the plain-Python reference
    :func:`hourmm_core.sim.polymarket.orders.sim_id_ref` timed in the same run just before and just
    after it; CPU microseconds per id of each and their ratio go into extra_info, and both must give
    the same ids."""
    import random

    from hourmm_core.sim.polymarket.orders import sim_id_ref
    from hourmm_core.sim.polymarket.wire import id_head, order_id

    n = _size(benchmark, "HOURMM_BENCH_IDS", 20_000, 500)
    rng = random.Random(3)
    draws = [rng.random() for _ in range(n)]
    head = id_head("order", 0)
    cpu = {"compiled": 0.0, "reference": 0.0}
    out: dict[str, list[str]] = {}

    def reference() -> None:
        c0 = time.process_time()
        out["reference"] = [sim_id_ref("order", 0, i, d) for i, d in enumerate(draws)]
        cpu["reference"] += time.process_time() - c0

    def compiled() -> None:
        c0 = time.process_time()
        out["compiled"] = [order_id(head, i, d) for i, d in enumerate(draws)]
        cpu["compiled"] += time.process_time() - c0

    load0 = os.getloadavg()[0]
    reference()
    benchmark.pedantic(compiled, rounds=2, iterations=1)
    reference()
    assert out["compiled"] == out["reference"]
    benchmark.extra_info.update({"ids": n, "us_per_id_compiled": 1e6 * cpu["compiled"] / (2 * n),
                                 "us_per_id_reference": 1e6 * cpu["reference"] / (2 * n),
                                 "speedup_cpu": cpu["reference"] / max(cpu["compiled"], 1e-12),
                                 "loadavg_1m_before_after": (load0, os.getloadavg()[0])})


@pytest.mark.timeout(1800)
def test_bench_day_loading(benchmark, tmp_path, monkeypatch):
    """A backtest day's loading, side by side in one run: the price path the backtest loads
    (``load_prices``) vs the full ticks (``load_ticks``), and a kline month parsed (cache off) vs
    loaded from the parse cache (``HOURMM_CACHE_DIR``). CPU seconds, ratios and the load average in
    extra_info; the arrays must be equal."""
    from hourmm_core import data
    from hourmm_core.clock import HOUR_MS
    from hourmm_core.data import klines

    d = data.find_data_dir()
    may = d / "BTCUSDT-1m-2025-05.csv.gz" if d is not None else None
    if may is None or not may.exists():
        pytest.skip("needs the real klines (/work/shared/data)")
    hours = _size(benchmark, "HOURMM_BENCH_LOAD_HOURS", 48, 2)     # the day run's window: 24 h + 24 h warm-up
    a = 1_747_872_000_000 - 24 * HOUR_MS                             # 2025-05-21 00:00Z (tuning window)
    b = a + hours * HOUR_MS
    rounds = 1 if getattr(benchmark, "disabled", False) else 3
    cpu = {"ticks": [], "prices": [], "parse": [], "cached": []}

    def timed(key, fn, *args, **kw):
        c0 = time.process_time()
        out = fn(*args, **kw)
        cpu[key].append(time.process_time() - c0)
        return out

    monkeypatch.setenv("HOURMM_CACHE_DIR", str(tmp_path / "cache"))
    load0 = os.getloadavg()[0]
    for _ in range(rounds):       # interleaved, same load for both sides
        t = timed("ticks", data.load_ticks, a, b, data_dir=d)
        ts, px, _src = timed("prices", data.load_prices, a, b, data_dir=d)
        assert ts.tobytes() == t.ts_ms.tobytes() and px.tobytes() == t.price.tobytes()
        with monkeypatch.context() as m:
            m.setenv("HOURMM_CACHE_DIR", "off")
            rows = timed("parse", klines._parsed_rows, may)
        klines._parsed_rows(may)                               # writes the entry (first round)
        cached = timed("cached", klines._parsed_rows, may)
        assert cached[0].tobytes() == rows[0].tobytes() and cached[1] == rows[1]
    benchmark.pedantic(data.load_prices, args=(a, b), kwargs={"data_dir": d}, rounds=1, iterations=1)
    best = {k: min(v) for k, v in cpu.items()}
    benchmark.extra_info.update({
        "hours": hours, "ticks": int(len(ts)), "cpu_s_best": best,
        "speedup_prices_vs_ticks": best["ticks"] / best["prices"],
        "speedup_cached_vs_parse": best["parse"] / best["cached"],
        "loadavg_1m_before_after": (load0, os.getloadavg()[0])})
