"""Hour tracking and snapshot building on the compiled core (no sockets)."""
from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from hourmm_core.binance.messages import BookTicker, Trade
from hourmm_core.clock import HOUR_MS
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.pricing import HourTracker, SnapshotBuilder, iso_hour

quant = pytest.importorskip("hourmm_core.quant")

H0 = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts


def test_iso_hour_matches_guide():
    assert iso_hour(H0) == "2026-01-22T14:00:00Z"


def test_first_trade_is_open_only_when_connected_before_the_hour(caplog):
    opens = []
    h = HourTracker(on_open=lambda hs, p, src: opens.append((hs, p, src)))
    h.on_connect(H0 - 5_000)
    with caplog.at_level(logging.INFO):
        h.on_trade(H0 - 1_000, 49_990.0)  # previous hour: we joined it late -> klines needed
        assert h.needs_klines() == H0 - HOUR_MS and h.open_price is None
        h.on_trade(H0 + 3, 50_000.0)      # first trade of the new hour, we were connected
    assert h.hour_start_ms == H0 and h.open_price == 50_000.0 and h.open_source == "trade"
    assert "Hour 2026-01-22T14:00:00Z open price set: 50000.0" in caplog.text
    h.on_trade(H0 + 10, 50_100.0)
    assert h.open_price == 50_000.0 and opens == [(H0, 50_000.0, "trade")]
    h.on_trade(H0 - 2, 1.0)  # late frame of the closed hour: ignored
    assert h.hour_start_ms == H0 and h.open_price == 50_000.0


def test_mid_hour_start_and_reconnect_need_klines():
    h = HourTracker()
    h.on_connect(H0 + 600_000)
    h.on_trade(H0 + 600_010, 50_000.0)
    assert h.open_price is None and h.needs_klines() == H0
    assert not h.set_open_from_klines(H0 - HOUR_MS, 1.0)  # wrong hour
    assert not h.set_open_from_klines(H0, float("nan"))
    assert h.set_open_from_klines(H0, 49_950.5) and h.open_source == "klines"
    assert h.needs_klines() is None
    # disconnected across the boundary: the first trade seen after is not trusted
    h.on_disconnect()
    h.advance(H0 + HOUR_MS + 5)
    h.on_connect(H0 + HOUR_MS + 2_000)
    h.on_trade(H0 + HOUR_MS + 2_100, 50_500.0)
    assert h.open_price is None and h.needs_klines() == H0 + HOUR_MS
    # roll by the clock alone, connected throughout: the next trade is the open
    h.set_open_from_klines(H0 + HOUR_MS, 50_400.0)
    assert h.advance(H0 + 2 * HOUR_MS) and h.rolls == 2
    assert h.needs_klines() is None
    h.on_trade(H0 + 2 * HOUR_MS + 7, 50_600.0)
    assert h.open_price == 50_600.0


def _feed(builder: SnapshotBuilder, ticks, i0: int, i1: int) -> None:
    uid = 1
    for i in range(i0, i1):
        builder.on_message(BookTicker("BTCUSDT", uid, float(ticks.bid[i]), float(ticks.bid_qty[i]),
                                      float(ticks.ask[i]), float(ticks.ask_qty[i])), int(ticks.ts_ms[i]))
        uid += 1
        ts = int(ticks.ts_ms[i])
        builder.on_message(Trade("BTCUSDT", int(ticks.trade_id[i]), float(ticks.price[i]), float(ticks.qty[i]),
                                 ts, ts, bool(ticks.is_buyer_maker[i])), ts)


def test_snapshot_matches_core_batch_functions():
    t = synthetic_ticks(hours=1, seed=5)
    b = SnapshotBuilder("BTCUSDT", (30.0, 120.0, 600.0), 1000, 1e-12, 0.0, 0.001, stale_threshold_ms=500)
    b.on_connect(H0 - 1)
    n = int(np.searchsorted(t.ts_ms, H0 + 20 * 60_000))
    _feed(b, t, 0, n)
    now = int(t.ts_ms[n - 1]) + 100
    s = b.snapshot(now)
    assert s.schema_version == 1 and s.seq == 1 and s.open_price == t.price[0]
    sig = quant.ewma_vol_batch(t.ts_ms[:n], t.price[:n], (30.0, 120.0, 600.0), 1000, 1e-12)[-1]
    assert s.sigma == pytest.approx(sig[0], rel=1e-12)
    assert s.sigmas["600s"] == pytest.approx(sig[2], rel=1e-12)
    tau = (H0 + HOUR_MS - now) / 1000.0
    assert s.tau_ms == H0 + HOUR_MS - now
    p = quant.digital_prob(float(t.price[n - 1]), float(t.price[0]), tau, sig[0], 0.0, 0.001)
    p_alt = quant.digital_prob(float(t.price[n - 1]), float(t.price[0]), tau, sig[2], 0.0, 0.001)
    assert s.fair_up == pytest.approx(p, abs=1e-15)
    assert s.fair_unc == pytest.approx(abs(p - p_alt), abs=1e-15)
    f = quant.return_features_batch(t.ts_ms[:n], t.price[:n])[-1]
    assert s.features["ret_hour"] == pytest.approx(f[4], rel=1e-9)
    assert s.features["ret_1m"] == pytest.approx(f[2], rel=1e-9)
    assert s.bid == t.bid[n - 1] and s.mid == pytest.approx(0.5 * (t.bid[n - 1] + t.ask[n - 1]))
    bq, aq = t.bid_qty[n - 1], t.ask_qty[n - 1]
    assert s.microprice == pytest.approx((t.bid[n - 1] * aq + t.ask[n - 1] * bq) / (bq + aq))
    assert s.age_ms == 100 and s.stale is False
    d = json.loads(s.json)
    assert d == s.to_dict()
    assert set(d) == {"schema_version", "seq", "ts_ms", "exchange_ts_ms", "recv_ts_ms", "symbol", "hour_start_ms",
                      "hour_end_ms", "open_price", "last_price", "bid", "ask", "mid", "microprice", "sigma",
                      "sigmas", "features", "tau_ms", "fair_up", "fair_unc", "stale", "age_ms"}
    assert b.snapshot(now + 1000).stale is True and b.seq == 2
    fast = SnapshotBuilder("BTCUSDT", stale_threshold_ms=500, speed=60.0)  # simulator: age in wall ms
    fast.on_message(Trade("BTCUSDT", 1, 50_000.0, 0.1, H0, H0, False), H0)
    s60 = fast.snapshot(H0 + 6_000)
    assert s60.age_ms == 100 and s60.stale is False and fast.snapshot(H0 + 60_000).stale is True


def test_no_fair_without_open_or_data_and_json_is_strict():
    b = SnapshotBuilder("BTCUSDT")
    s = b.snapshot(H0 + 5)
    assert s.fair_up is None and s.stale and s.age_ms is None and s.last_price is None
    assert s.sigma is None and all(v is None for v in s.features.values())
    json.loads(s.json)  # no NaN tokens
    b.on_connect(H0 + 1_000)  # mid-hour: open unknown until klines
    b.on_message(Trade("BTCUSDT", 1, 50_000.0, 0.1, H0 + 1_100, H0 + 1_100, False), H0 + 1_100)
    s = b.snapshot(H0 + 1_200)
    assert s.open_price is None and s.fair_up is None and s.last_price == 50_000.0
    b.hour.set_open_from_klines(H0, 49_000.0)
    for k in range(1, 120):  # warm the vol up
        ts = H0 + 1_100 + k * 500
        b.on_message(Trade("BTCUSDT", 1 + k, 50_000.0 + (k % 3), 0.1, ts, ts, False), ts)
    s = b.snapshot(ts + 10)
    assert s.open_price == 49_000.0 and s.fair_up is not None and 0.5 < s.fair_up <= 0.999
    # late (backwards) trade is clamped, never fed backwards into the core
    b.on_message(Trade("BTCUSDT", 500, 50_000.0, 0.1, ts - 10_000, ts - 10_000, False), ts)
    assert b.late_trades == 1 and b.vol.n_bad == 0
    assert not math.isnan(b.snapshot(ts + 20).fair_up)


def test_trade_open_verified_and_corrected_from_klines(caplog):
    h = HourTracker()
    h.on_connect(H0 - 10)
    h.on_trade(H0 + 50, 50_010.0)  # we missed the true first trade (50_000.0)
    assert h.needs_verify() == H0
    with caplog.at_level(logging.WARNING):
        assert h.verify_from_klines(H0, 50_000.0)
    assert h.open_price == 50_000.0 and h.corrections == 1 and h.needs_verify() is None
    assert "open price corrected from klines: 50010.0 -> 50000.0" in caplog.text
    h.advance(H0 + HOUR_MS)
    h.on_trade(H0 + HOUR_MS + 1, 50_100.0)
    assert h.verify_from_klines(H0 + HOUR_MS, 50_100.0) and h.corrections == 1  # agreed: unchanged
    assert h.open_price == 50_100.0 and h.open_source == "trade"
