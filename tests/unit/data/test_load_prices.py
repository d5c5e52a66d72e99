"""``load_prices`` / ``bridge_prices``: the price path of ``load_ticks`` / ``bridge_klines``, bit for
bit, without the bridge's sides, sizes and BBO (what the strategy backtest reads)."""
from __future__ import annotations

import numpy as np
import pytest

from hourmm_core import data as hd
from hourmm_core.clock import HOUR_MS
from hourmm_core.data.bridge import BridgeParams, bridge_klines, bridge_prices
from tests.conftest import REAL_DATA, needs_real_data

DAY = 1_747_872_000_000          # 2025-05-22T00:00Z (tuning span)


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@needs_real_data()
@pytest.mark.parametrize("start,hours,seed,cap", [(DAY - 24 * HOUR_MS, 48, 7, None), (DAY + 5 * HOUR_MS, 3, 3, 40),
                                                  (DAY + 13 * HOUR_MS, 1, 11, 300)])
def test_bridge_prices_is_bridge_klines_path(start: int, hours: int, seed: int, cap: int | None) -> None:
    k = hd.kline_history(REAL_DATA, "BTCUSDT", start, start + hours * HOUR_MS).window(start, start + hours * HOUR_MS)
    assert len(k["open_ms"]) == hours * 60
    p = BridgeParams() if cap is None else BridgeParams(max_ticks_per_minute=cap)
    ticks = bridge_klines(k, seed=seed, params=p)
    ts, px = bridge_prices(k, seed=seed, params=p)
    assert len(ts) > hours * 60 * 4
    _same(ts, ticks.ts_ms)
    _same(px, ticks.price)
    other = bridge_prices(k, seed=seed + 1, params=p)[1]          # the seed matters (the test can fail)
    assert other.shape != px.shape or not np.array_equal(other, px)


def test_bridge_prices_of_no_klines() -> None:
    k = {f: np.zeros(0) for f in ("open_ms", "open", "high", "low", "close", "volume", "count", "taker_buy_volume")}
    ts, px = bridge_prices(k)
    assert ts.dtype == np.int64 and len(ts) == len(px) == 0


@needs_real_data()
def test_load_prices_is_load_ticks_path_bridged() -> None:
    a, b = DAY - 24 * HOUR_MS, DAY + 2 * HOUR_MS
    t = hd.load_ticks(a, b, data_dir=REAL_DATA)
    ts, px, source = hd.load_prices(a, b, data_dir=REAL_DATA)
    assert source == t.source == hd.SOURCE_KLINES_BRIDGE
    _same(ts, t.ts_ms)
    _same(px, t.price)
    assert not ts.flags.writeable and not px.flags.writeable


@needs_real_data("BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz")
def test_load_prices_of_real_trades() -> None:
    a = 1_723_161_300_000            # 2024-08-08T23:55Z: inside the real trade sample
    t = hd.load_ticks(a, a + 5 * 60_000, data_dir=REAL_DATA)
    assert t.source == hd.SOURCE_BINANCE and len(t) > 100
    ts, px, source = hd.load_prices(a, a + 5 * 60_000, data_dir=REAL_DATA)
    assert source == hd.SOURCE_BINANCE
    _same(ts, t.ts_ms)
    _same(px, t.price)
