"""Hostile venue: latency snipers, the calibrated touch makers, the CTF merge.

Prices come from real BTCUSDT 1m klines (../shared/data) where price matters; the
sniper timing tests place one hand-made stale order (a shape real data cannot give on
demand) on a real price path.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.engine import EngineError, Exchange
from tests.conftest import REAL_DATA as DATA
from tests.conftest import needs_real_data

H0 = 1_746_489_600_000            # 2025-05-06 00:00 UTC (tuning span)
needs_data = needs_real_data()


def kline_path(h0: int = H0, hours: int = 1) -> PricePath:
    """Real 1m closes (one point a minute) around ``hours`` hours from ``h0``."""
    from hourmm_core.data import load_klines

    k = load_klines(DATA)
    sel = (k["open_ms"] >= h0 - HOUR_MS) & (k["open_ms"] < h0 + hours * HOUR_MS)
    ts = np.concatenate([[h0 - HOUR_MS], k["close_ms"][sel] + 1])
    px = np.concatenate([[k["open"][sel][0]], k["close"][sel]])
    return PricePath(SimpleNamespace(ts_ms=ts.astype(np.int64), price=px), sigma=6e-5)


def _market(ex: Exchange):
    return ex.list_market("c", "UP", "DN", H0, H0 + HOUR_MS)


def _stale_setup(reaction: float):
    path = kline_path()
    ex = Exchange(fee=CRYPTO_FEES)
    m = _market(ex)
    cfg = AgentConfig(n_makers=0, noise_takers_per_min=0.0, informed_per_min=0.0,
                      sniper_reaction_ms=(reaction, reaction))
    ag = BackgroundAgents(ex, path, seed=1, config=cfg)
    ex.deposit("me", 1000.0)
    t = H0 + 30 * 60_000
    fair = path.fair_up(H0, t)
    # an Up ask 10 cents below fair: stale by far more than the 0.07 p(1-p) fee
    ask = round(max(0.01, round(fair, 2) - 0.10), 2)
    ex.deposit("me", 0.0)
    r = ex.place("me", "DN", "BUY", round(1 - ask, 2), 10.0, post_only=True, now_ms=t)
    assert r.ok and r.status == "live", r.error_msg
    return ex, m, ag, t, r.order_id


@needs_data
def test_sniper_takes_a_stale_quote_after_its_reaction_time():
    ex, m, ag, t, oid = _stale_setup(120.0)
    assert ag.sniper.scan(t, [m]) == 1
    assert ag.sniper.next_due() == t + 120
    assert ag.sniper.fire_due(t + 119) == 0 and ex.order(oid).status == "LIVE"   # not yet
    assert ag.sniper.fire_due(t + 120) == 1
    assert ex.order(oid).status == "MATCHED"
    tr = ex.trades("me")[-1]
    assert tr["owner"] == "agent-sniper" and float(tr["taker_fee"]) > 0
    ex.check_invariants()


@needs_data
def test_cancel_faster_than_the_sniper_escapes():
    ex, m, ag, t, oid = _stale_setup(200.0)
    ag.sniper.scan(t, [m])
    ok, _ = ex.cancel("me", oid, t + 150)      # our cancel lands first
    assert ok
    assert ag.sniper.fire_due(t + 200) == 0 and ag.sniper.misses == 1
    assert ex.trades("me") == []


@needs_data
def test_fresh_quote_within_the_fee_is_left_alone():
    path = kline_path()
    ex = Exchange(fee=CRYPTO_FEES)
    m = _market(ex)
    ag = BackgroundAgents(ex, path, seed=1, config=AgentConfig(n_makers=0, noise_takers_per_min=0.0,
                                                               informed_per_min=0.0))
    ex.deposit("me", 1000.0)
    t = H0 + 30 * 60_000
    fair = path.fair_up(H0, t)
    # bid one cent under fair: a taker selling Up there gains <= 0.01, less than its fee at p ~ 0.5
    bid = np.floor((fair - 0.005) * 100) / 100
    assert 0.2 < fair < 0.8
    r = ex.place("me", "UP", "BUY", float(bid), 10.0, post_only=True, now_ms=t)
    assert r.ok
    assert ag.sniper.scan(t, [m]) == 0


@needs_data
def test_calibrated_book_matches_the_real_15_minute_books():
    from hourmm_core.sim.polymarket.calibration import real_book_stats, sim_venue_stats

    real = real_book_stats(DATA / "polymarket")
    assert real["spread_median"] == pytest.approx(0.01) and 100 < real["touch_median"] < 160
    p = kline_path()
    sim = sim_venue_stats(p.ts, p.px, [H0])
    assert sim["spread_median"] == pytest.approx(real["spread_median"], abs=1e-9)
    assert sim["touch_median"] == pytest.approx(real["touch_median"], rel=0.5)
    assert sim["depth5_median"] == pytest.approx(real["depth5_median"], rel=0.3)
    assert 10_000 < sim["volume_per_hour"] < 200_000 and sim["trades_per_hour"] > 500


def test_merge_burns_pairs_for_one_usdc_each():
    ex = Exchange()
    ex.list_market("c", "UP", "DN", 0, HOUR_MS)
    ex.deposit("a", 100.0)
    ex.deposit("b", 100.0)
    ex.place("a", "UP", "BUY", 0.40, 10.0, now_ms=1)
    ex.place("b", "DN", "BUY", 0.60, 10.0, now_ms=2)        # mint 10 pairs
    ex.place("b", "UP", "BUY", 0.40, 7.0, now_ms=3)         # b: also bids Up ...
    ex.place("a", "DN", "BUY", 0.60, 7.0, now_ms=4)         # ... a buys Down: a holds 10 Up + 7 Down
    assert ex.positions("a") == {"UP": 10.0, "DN": 7.0}
    usdc = ex.balances("a")["usdc"]
    assert ex.merge("a", "c", 3.5, now_ms=5) == 3.5          # no venue minimum
    assert ex.positions("a") == {"UP": 6.5, "DN": 3.5} and ex.balances("a")["usdc"] == pytest.approx(usdc + 3.5)
    ex.check_invariants()
    with pytest.raises(EngineError):
        ex.merge("a", "c", 4.0, now_ms=6)                    # only 3.5 Down left
    assert ex.place("a", "UP", "SELL", 0.9, 6.5, now_ms=7).status == "live"   # Up reserved by a resting sell
    with pytest.raises(EngineError):
        ex.merge("a", "c", 1.0, now_ms=8)
    ex.check_invariants()
