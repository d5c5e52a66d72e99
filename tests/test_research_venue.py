"""TakerFlowVenue: the self-contained fill model's venue rules and fill semantics."""
from __future__ import annotations

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.backtest import BUY, DOWN, SELL, UP, BacktestParams, Components, HourLedger, Quote
from hourmm_core.research.venues import TakerFlowVenue

H0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def _venue(fair: float = 0.5, **kw) -> TakerFlowVenue:
    grid = H0 + np.arange(0, HOUR_MS, 1000, dtype=np.int64)
    return TakerFlowVenue(H0, grid, np.full(grid.size, fair), BacktestParams(seed=3), **kw)


def test_venue_rules_reject_bad_orders():
    v = _venue()
    assert v.place(H0, Quote(UP, BUY, 0.0, 5.0)) is None           # outside (0, 1)
    assert v.place(H0, Quote(UP, BUY, 0.455, 5.0)) is None         # off the 0.01 grid
    assert v.place(H0, Quote(UP, BUY, 0.45, 0.0)) is None          # no size
    assert v.place(H0, Quote(UP, BUY, 0.51, 5.0)) is None          # post-only: crosses the market ask
    assert v.place(H0, Quote(DOWN, SELL, 0.55, 5.0)) is None       # no tokens to sell
    assert v.rejects == {"bad_price": 2, "bad_size": 1, "would_cross": 1, "insufficient_balance": 1}
    oid = v.place(H0, Quote(UP, BUY, 0.45, 5.0))
    assert oid is not None and v.open_orders()[oid].size == 5.0
    assert v.cancel(H0 + 1, oid) and not v.cancel(H0 + 2, oid) and v.open_orders() == {}


def test_fills_at_our_price_and_only_when_value_crosses():
    v = _venue(rate_per_s=5.0, noise=0.05)
    far = v.place(H0, Quote(UP, BUY, 0.01, 5.0))        # takers (value ~0.5 +- 0.05) never sell this low
    near = v.place(H0, Quote(UP, BUY, 0.49, 1e6))       # huge: never fully filled
    fills = v.advance(H0 + 600_000)
    assert fills, "5 takers/s for 10 min must hit a bid 1 tick under fair"
    assert all(f.price == 0.49 and f.token == UP and f.side == BUY and f.maker for f in fills)
    assert all(H0 < f.ts_ms <= H0 + 600_000 for f in fills)
    assert [f.ts_ms for f in fills] == sorted(f.ts_ms for f in fills)
    oo = v.open_orders()
    assert oo[far].size == 5.0 and oo[near].size == pytest.approx(1e6 - sum(f.size for f in fills))
    # bought tokens can now be sold (balance follows fills); more than held cannot
    held = v.balance[UP]
    assert held == pytest.approx(sum(f.size for f in fills))
    assert v.place(H0 + 600_000, Quote(UP, SELL, 0.55, held + 1.0)) is None
    assert v.place(H0 + 600_000, Quote(UP, SELL, 0.55, held)) is not None


def test_same_seed_same_fills_and_ledger_never_oversells():
    def run() -> list:
        v = _venue(rate_per_s=2.0)
        led = HourLedger(H0)
        out = []
        for t in range(H0, H0 + HOUR_MS, 10_000):
            for oid in list(v.open_orders()):
                v.cancel(t, oid)
            v.place(t, Quote(UP, BUY, 0.48, 5.0))
            v.place(t, Quote(DOWN, BUY, 0.48, 5.0))
            for tok in (UP, DOWN):
                if led.pos[tok] >= 1.0:
                    v.place(t, Quote(tok, SELL, 0.52, led.pos[tok]))
            for f in v.advance(t + 10_000):
                led.apply(f)  # raises if the venue let us sell what we do not hold
                out.append((f.ts_ms, f.token, f.side, f.price, round(f.size, 9)))
        return out

    a, b = run(), run()
    assert a == b and len(a) > 10
    assert {s for _, _, s, _, _ in a} == {BUY, SELL}


class _BuyBothBelowFair(Components):
    """A researcher's own strategy plugged into the generic loop: bid both tokens below fair."""

    def new_venue(self, hour_start_ms, grid_ts, fair_up, params):
        return TakerFlowVenue(hour_start_ms, grid_ts, fair_up, params, rate_per_s=1.0)

    def desired_quotes(self, state, params):
        if state.phase != "ACTIVE":
            return []
        out = []
        for tok, f in ((UP, state.fair_up), (DOWN, 1.0 - state.fair_up)):
            px = round(int((f - params.half_spread) / params.tick_size) * params.tick_size, 2)
            if 0.0 < px < 1.0 and state.pos_up + state.pos_down < params.max_position_size:
                out.append(Quote(tok, BUY, px, params.quote_size))
        return out

    def risk_check(self, quote, state, params):
        return 4 if quote.size > params.max_order_size else 0


def test_generic_loop_with_a_custom_strategy():
    from hourmm_core import data
    from hourmm_core.research import backtest as bt

    ticks = data.synthetic_ticks(hours=3, seed=2)
    p = bt.BacktestParams(decision_ms=5000, max_position_size=200.0)
    res = bt.run_backtest(ticks, p, components=_BuyBothBelowFair(), keep_paths=True, max_hours=1)
    assert res.notes == ["components: _BuyBothBelowFair"]
    h, path = res.hours[0], res.paths[0]
    assert h.n_fills > 0 and h.n_orders > 0
    # only buys: cash spent = notional; settlement pays the winning side
    assert h.cash_flow == pytest.approx(-h.notional - h.fees)
    assert h.pnl == pytest.approx(h.cash_flow + (h.up_at_close if h.up_won else h.down_at_close))
    assert h.up_at_close + h.down_at_close <= 200.0 + p.quote_size * 2
    # nothing rests after WIND_DOWN starts: inventory is constant from then on
    end = h.hour_start_ms + HOUR_MS
    late = [u + d for t, u, d in zip(path["ts_ms"], path["pos_up"], path["pos_down"]) if t >= end - p.t_wind_ms + 5000]
    assert late and max(late) == min(late)


class _BreaksOnSecondHour(_BuyBothBelowFair):
    def run_hour(self, params, ts_ms, price, hour_start, first, last, sigma):
        if (hour_start // HOUR_MS) % 2:
            raise ValueError("broken data in this hour")
        return super().run_hour(params, ts_ms, price, hour_start, first, last, sigma)


def test_a_failing_hour_is_reported_not_fatal(caplog):
    from hourmm_core import data
    from hourmm_core.research import backtest as bt

    ticks = data.synthetic_ticks(hours=4, seed=2)
    res = bt.run_backtest(ticks, bt.BacktestParams(decision_ms=10000), components=_BreaksOnSecondHour(),
                          max_hours=2)
    assert len(res.hours) == 1 and len(res.errors) == 1
    (h, msg), = res.errors.items()
    assert (h // HOUR_MS) % 2 == 1 and "broken data" in msg
    assert res.totals()["failed_hours"] == 1
    assert "FAILED hour" in bt.format_backtest(res) and bt.result_json(res)["errors"]
    assert any("failed" in r.message for r in caplog.records)
