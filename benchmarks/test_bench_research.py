"""Research throughput: calibration over the loaded history, a month-long backtest.

Sizing: the whole history from hourmm_core.data.load_ticks() when real Binance
dumps are found; otherwise the seeded synthetic stand-in of
$HOURMM_BENCH_HOURS hours (default 48; 720 = one month). Throughput goes into
extra_info (ticks/s, hours/s) together with the data source.
"""
from __future__ import annotations

import os

import pytest

from hourmm_core.research import backtest as bt
from hourmm_core.research import calibration as cal


def _hours() -> int:
    return int(os.environ.get("HOURMM_BENCH_HOURS", "48"))


@pytest.fixture(scope="module")
def history():
    try:
        cal._quant()
    except ImportError as exc:
        pytest.skip(f"compiled core not built: {exc}")
    try:
        ticks = cal.load_history(None, _hours())
    except ImportError as exc:
        pytest.skip(f"data module not available: {exc}")
    return cal.as_arrays(ticks)


def test_bench_calibration(benchmark, history):
    ts, price, source = history
    res = benchmark.pedantic(cal.calibrate, args=((ts, price, source),), rounds=1, iterations=1)
    assert res.n_hours > 0 and res.score("const_0.5").brier == pytest.approx(0.25)
    secs = benchmark.stats.stats.mean if benchmark.stats else None
    benchmark.extra_info.update({"source": source, "ticks": int(ts.size), "hours": res.n_hours})
    if secs:
        benchmark.extra_info.update({"ticks_per_s": ts.size / secs, "hours_per_s": res.n_hours / secs})


def test_bench_backtest(benchmark, history):
    ts, price, source = history
    try:
        comps = bt.default_components()
    except ImportError as exc:
        pytest.skip(str(exc))
    res = benchmark.pedantic(bt.run_backtest, args=((ts, price, source),), kwargs={"components": comps},
                             rounds=1, iterations=1)
    assert len(res.hours) > 0
    secs = benchmark.stats.stats.mean if benchmark.stats else None
    benchmark.extra_info.update({"source": source, "ticks": res.n_ticks, "hours": len(res.hours)})
    if secs:
        benchmark.extra_info.update({"ticks_per_s": res.n_ticks / secs, "hours_per_s": len(res.hours) / secs})
