"""Strategy knobs for the hostile venue, the CTF merge through the decision core, and the
backtest evidence (markouts, sniper share, inventory, bootstrap CI) on a real BTC hour."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.evidence import bootstrap_ci
from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.order_manager import Fill
from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Phase, Schedule
from hourmm_core.trading.strategy import BookTop, MarketState, StrategyParams, desired_quotes, merge_size, move_width
from hourmm_core.trading.types import BUY, DOWN, SELL, UP
from tests.conftest import needs_real_data, real_minutes

LIM = Limits(1000.0, 500.0, 100.0, 8)


def st(**kw) -> MarketState:
    base = dict(fair_up=0.5, fair_unc=0.0, fresh=True, yes_tokens=0.0, no_tokens=0.0, up=BookTop(0.30, 0.70),
                down=BookTop(0.30, 0.70), phase=Phase.ACTIVE, mode=Mode.NORMAL, wind_progress=0.0, tick=0.01,
                min_size=5.0, ms_left=1_800_000.0)
    base.update(kw)
    return MarketState(**base)


def test_move_width_is_largest_near_the_strike_late_in_the_hour():
    early, late = move_width(0.5, 3_000_000, 1150), move_width(0.5, 60_000, 1150)
    assert late > 5 * early
    assert move_width(0.97, 60_000, 1150) < 0.2 * late          # far from the strike: small delta
    assert move_width(0.5, 60_000, 1150) == pytest.approx(0.3989 * math.sqrt(1150 / 60_000), rel=1e-3)
    p = StrategyParams(half_spread=0.01, unc_mult=0.0, move_mult=1.0, quote_levels=1)
    wide = desired_quotes(st(ms_left=60_000.0), p, LIM)
    narrow = desired_quotes(st(ms_left=3_000_000.0), p, LIM)
    bid = lambda qs: max(q.price for q in qs if q.token == UP and q.side == BUY)  # noqa: E731
    assert bid(wide) < bid(narrow)


def test_fast_move_pulls_the_stale_side():
    p = StrategyParams(quote_levels=1)
    both = desired_quotes(st(), p, LIM)
    up_move = desired_quotes(st(pull=1), p, LIM)             # fair jumped up: our asks (BUY Down) are stale
    down_move = desired_quotes(st(pull=-1), p, LIM)
    assert {q.token for q in both} == {UP, DOWN}
    assert [q.token for q in up_move] == [UP] and [q.token for q in down_move] == [DOWN]


def test_near_certain_outcome_only_sells():
    p = StrategyParams(extreme_cut=0.05)
    assert desired_quotes(st(fair_up=0.97), p, LIM) == []
    qs = desired_quotes(st(fair_up=0.97, yes_tokens=20.0), p, LIM)
    assert qs and all(q.side == SELL and q.reduce for q in qs)


def test_inventory_limit_caps_the_side_that_piles_up():
    p = StrategyParams(inv_limit=100.0, quote_size=10.0)
    qs = desired_quotes(st(no_tokens=97.0), p, LIM)
    assert not any(q.token == DOWN and q.side == BUY for q in qs)    # no room for 10 more Down
    assert any(q.token == DOWN and q.side == SELL for q in qs)


def test_merge_through_the_decision_core():
    assert merge_size(12.345, 7.0, StrategyParams(merge_min=1.0)) == 7.0
    assert merge_size(0.5, 7.0, StrategyParams(merge_min=1.0)) == 0.0
    assert merge_size(12.0, 7.0, StrategyParams()) == 0.0                 # off by default
    end = 10 * HOUR_MS
    c = DecisionCore(LIM, Schedule(600_000, 300_000, 60_000), StrategyParams(merge_min=1.0))
    c.set_market(MarketRef("s", "0xc", "up", "dn", end - HOUR_MS, end))
    for f in (c.risk.on_user_ws, c.risk.on_market_ws, c.risk.on_rest):
        f(True, 0)
    c.om.on_fill(Fill("t1", None, UP, BUY, 0.40, 10.0, end - 3_000_000))
    c.om.on_fill(Fill("t2", None, DOWN, BUY, 0.55, 6.0, end - 3_000_000))
    d = c.decide(end - 2_999_000, 0.5, 0.0, True, BookTop(0.3, 0.7), BookTop(0.3, 0.7))
    assert d.merge == 6.0
    # quotes were built on what is left after the merge: 4 Up (below the minimum: nothing to sell)
    assert not any(a.order.side == SELL and a.order.token == DOWN for a in d.actions)
    c.om.on_merge(6.0)
    assert (c.om.yes_tokens, c.om.no_tokens) == (4.0, 0.0) and c.om.cash == pytest.approx(-4.0 - 3.3 + 6.0)
    with pytest.raises(ValueError):
        c.om.on_merge(1.0)


def test_bootstrap_ci_covers_the_mean():
    x = np.random.default_rng(1).normal(2.0, 1.0, 400)
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.2)


@pytest.mark.timeout(600)
@needs_real_data()
def test_backtest_evidence_on_a_real_hour_against_snipers():
    """One real hour (1m closes of 2025-05-06 10:00 UTC), hostile flow, real fees, our knobs on."""
    from hourmm_core.research.backtest import BacktestParams, run_backtest
    from hourmm_core.research.evidence import summarize

    h0 = 1_746_525_600_000
    ts, px = real_minutes(h0 - HOUR_MS, h0 + HOUR_MS)
    p = BacktestParams().replace(move_mult=1.0, inv_limit=60.0, merge_min=1.0, extreme_cut=0.05,
                                 pull_move=0.02, max_open_orders=8)
    res = run_backtest((ts, px), p, start_ms=h0, end_ms=h0 + HOUR_MS, warmup_ms=0, keep_paths=True)
    assert not res.errors and len(res.hours) == 1
    h = res.hours[0]
    assert "ledger_mismatch" not in res.paths[0]["counters"]     # engine and ledger agree, fees included
    d = h.detail
    assert d["maker_volume"] + d["taker_volume"] == pytest.approx(h.volume)
    assert sum(d["by_taker"].values()) == pytest.approx(h.volume)
    assert max(d["max_up"], d["max_down"]) <= 60.0 + 100.0        # inv_limit + at most one level in flight
    assert not d["limit_breach"]
    ev = summarize(res.hours)
    assert set(ev["markout_fair"]) == {"5s", "30s", "60s"} and math.isfinite(ev["pnl_per_hour"])
    assert ev["fees"] == pytest.approx(h.fees) and h.fees >= 0


def test_book_anchor_pulls_the_quoting_fair_to_a_tight_mid():
    from hourmm_core.trading.strategy import quoting_fair

    p = StrategyParams(mid_weight=0.75)
    assert quoting_fair(st(fair_up=0.40, up=BookTop(0.49, 0.50)), p) == pytest.approx(0.25 * 0.40 + 0.75 * 0.495)
    assert quoting_fair(st(fair_up=0.40, up=BookTop(0.30, 0.70)), p) == 0.40     # wide book: ignored
    assert quoting_fair(st(fair_up=0.40, up=BookTop(None, 0.50)), p) == 0.40
    assert quoting_fair(st(fair_up=0.40, up=BookTop(0.49, 0.50)), StrategyParams()) == 0.40   # off by default
    qs = desired_quotes(st(fair_up=0.40, up=BookTop(0.49, 0.50), down=BookTop(0.50, 0.51)),
                        StrategyParams(mid_weight=1.0, half_spread=0.005, unc_mult=0.0, quote_levels=1), LIM)
    assert sorted((q.token, q.price) for q in qs) == [(UP, 0.49), (DOWN, 0.5)]   # joins both touches


@needs_real_data()
def test_backtest_fair_is_the_live_seasonal_pricer():
    """The backtest's fair (research/fair.py, batch) equals container A's streaming MinutePricer fed the
    same trades, on real 1m klines of 2025-05-06 (open and close of each minute as two trades)."""
    from hourmm_core import quant
    from hourmm_core.config import PricerConfig
    from hourmm_core.research.fair import fair_unc_path

    h0 = 1_746_525_600_000
    ts, px = real_minutes(h0 - 3 * HOUR_MS, h0 + HOUR_MS, close_offset_ms=59_000)
    cfg = PricerConfig.from_env({})
    mp = quant.MinutePricer(cfg.season(), cfg.pricer_halflife_min, cfg.pricer_var_prior, cfg.pricer_var_scale,
                            cfg.pricer_nu, cfg.pricer_p_min, cfg.scale_window_h, cfg.pricer_scale_prior_hours)
    if cfg.scale_window_h:          # the adaptive scale: container A's start-up klines (research/fair.py)
        from hourmm_core.research.fair import history_klines

        mp.warm_klines(*history_klines(int(ts[0]), cfg.scale_window_h), int(ts[0]))
    first = int(np.searchsorted(ts, h0))
    K = float(px[first])
    grid, batch, _, _ = fair_unc_path(ts, px, h0, first, None, None, 97_000, cfg=cfg)
    live = []
    i = 0
    for t in grid.tolist():
        while i < ts.size and ts[i] < t:          # a trade stamped at the instant arrives after it
            mp.on_trade(int(ts[i]), float(px[i]))
            i += 1
        live.append(mp.price(int(t), float(px[i - 1]), K, h0 + HOUR_MS) if i > first else math.nan)
    ok = np.isfinite(np.array(live))
    assert ok.sum() == grid.size - 1 and np.array_equal(ok, np.isfinite(batch))   # null only before the open
    assert np.ptp(batch[ok]) > 0.05
    np.testing.assert_allclose(batch[ok], np.array(live)[ok], atol=1e-9)
