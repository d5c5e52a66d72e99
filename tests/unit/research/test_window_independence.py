"""An hour's backtest result depends on that hour, not on which other hours were loaded with it.

Real hours (2025-05-22 14:00Z, 2025-05-22 02:00Z, Binance 1-minute klines + the seeded bridge): each is backtested inside
windows that start 12 and 26 hours before it and end at its close or 3 hours after it. The
trader's fair value is warmed from the 28-day klines (window-free), the flow is seeded by the
hour's start and the agents' "true" vol is the hour's own (:meth:`PricePath.sigma_for`), so every
per-hour row and every fill must be the same. Before the agents' vol was per hour it was the
realized vol of the whole loaded array, and this hour gave +9.15 or +124.70 USDC depending on the
window.
"""
from __future__ import annotations

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.backtest import BacktestParams, run_backtest
from hourmm_core.sim.polymarket.agents import PricePath, realized_sigma
from tests.conftest import REAL_DATA, real_ticks

pytestmark = pytest.mark.timeout(900)

HOURS = (1_747_922_400_000, 1_747_872_000_000 + 2 * HOUR_MS)   # 2025-05-22 14:00Z (busy), 02:00Z (quiet)
# (hours loaded before, hours after): both windows give the trader's fair_unc EWMA (600 s half-life,
# column 1 of cal.sigma_path, warmed from the first loaded tick) over 53 half-lives, so its start
# has decayed below one ulp; with 1 hour before it differs in the last digits (a few risk rejects)
WINDOWS = ((12, 0), (26, 3))


_ticks = real_ticks


@pytest.mark.parametrize("hour", HOURS)
def test_an_hours_result_does_not_depend_on_the_loaded_window(hour: int) -> None:
    rows, fills, sigmas = [], [], []
    for before, after in WINDOWS:
        ts, px = _ticks(hour - before * HOUR_MS, hour + (1 + after) * HOUR_MS)
        res = run_backtest((ts, px), BacktestParams(), start_ms=hour, end_ms=hour + HOUR_MS, warmup_ms=0,
                           keep_paths=True)
        assert not res.errors and len(res.hours) == 1
        rows.append(res.hours[0].row())
        fills.append(res.paths[0]["fills"])
        sigmas.append(PricePath(type("T", (), {"ts_ms": ts, "price": px})()).sigma_for(hour))
    assert fills[0], "the hour must trade for the comparison to mean something"
    assert sigmas[0] == sigmas[1]
    assert fills[0] == fills[1]
    assert str(rows[0]) == str(rows[1])     # str: NaN-safe, every field


def test_sigma_for_is_the_hours_own_realized_vol_unless_fixed() -> None:
    """Synthetic on purpose: two hours of very different vol side by side (a shape, not a result)."""
    rng = np.random.default_rng(3)
    h0 = 10 * HOUR_MS
    ts = np.arange(h0, h0 + 2 * HOUR_MS, 500, dtype=np.int64)
    vol = np.where(ts < h0 + HOUR_MS, 2e-5, 2e-4)
    px = 60_000.0 * np.exp(np.cumsum(rng.standard_normal(ts.size) * vol))
    path = PricePath(type("T", (), {"ts_ms": ts, "price": px})())
    first = (ts < h0 + HOUR_MS)
    assert path.sigma_for(h0) == realized_sigma(ts[first], px[first])
    assert path.sigma_for(h0 + HOUR_MS) == realized_sigma(ts[~first], px[~first])
    assert path.sigma_for(h0 + HOUR_MS) > 5 * path.sigma_for(h0)
    assert path.sigma_for(h0 + 5 * HOUR_MS) == 5e-5          # no ticks: the documented fallback
    fixed = PricePath(type("T", (), {"ts_ms": ts, "price": px})(), sigma=6e-5)
    assert fixed.sigma_for(h0) == fixed.sigma_for(h0 + HOUR_MS) == 6e-5


def test_the_fair_warm_up_reads_the_data_the_ticks_come_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hourmm backtest DATA``: the fair value's 28-day kline warm-up must come from DATA too, not
    from the default data folder (a checkout elsewhere got other results before)."""
    from hourmm_core.research import fair
    from hourmm_core.research.backtest import run_backtest_span

    hour = HOURS[0]
    real_ticks(hour, hour + HOUR_MS)                     # skips without the real data
    fair.use_history_dir(None)
    want = run_backtest_span(1, start_ms=hour, data_dir=str(REAL_DATA))
    assert fair.history_klines(hour, 672) is not None
    monkeypatch.setattr(fair, "find_data_dir", lambda: None)     # no default data folder
    fair._HISTORY.clear()
    fair.use_history_dir(None)
    assert fair.history_klines(hour, 672) is None              # nothing to warm from by default ...
    got = run_backtest_span(1, start_ms=hour, data_dir=str(REAL_DATA))
    assert fair.history_klines(hour, 672) is not None          # ... but the run pointed it at DATA
    assert str(got.hours[0].row()) == str(want.hours[0].row())
    fair.use_history_dir(None)
    fair._HISTORY.clear()
