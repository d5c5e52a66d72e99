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

Throughput goes into extra_info (ticks/s, hours/s) with the data source.
"""
from __future__ import annotations

import os

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
