"""Backtest bookkeeping: fees, settlement arithmetic, conservation, adverse selection."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES, fill_fee
from hourmm_core.research import backtest as bt
from hourmm_core.research.ledger import HourLedger
from hourmm_core.trading.types import BUY, DOWN, SELL, UP
from hourmm_core.trading.types import Fill as TradeFill

_ids = iter(range(10**9))


def Fill(ts_ms, token, side, price, size, fee=0.0, maker=True):  # noqa: N802 - reads like the type
    """Our fill (the trader's Fill type) in the ledger tests' argument order."""
    return TradeFill(f"t{next(_ids)}", None, token, side, price, size, ts_ms, fee, maker)

H0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def test_settlement_arithmetic_up_wins_and_down_wins():
    for up_won, expected_payout in ((True, 10.0), (False, 4.0)):
        led = HourLedger(H0)
        led.apply(Fill(H0 + 1000, UP, BUY, 0.40, 10.0, fee=0.05))
        led.apply(Fill(H0 + 2000, DOWN, BUY, 0.55, 4.0, fee=0.0))
        assert led.cash == pytest.approx(-(0.40 * 10 + 0.05) - 0.55 * 4)
        payout = led.settle(up_won)
        assert payout == expected_payout
        assert led.pnl == pytest.approx(expected_payout - 4.05 - 2.2)
        with pytest.raises(RuntimeError):
            led.settle(up_won)
        with pytest.raises(RuntimeError):
            led.apply(Fill(H0 + 3000, UP, BUY, 0.5, 1.0))


def test_complete_set_is_riskless_minus_fees():
    # buying one Up and one Down costs 1 and always pays 1: PnL is -(fees) either way
    for up_won in (True, False):
        led = HourLedger(H0)
        led.apply(Fill(H0, UP, BUY, 0.37, 20.0, fee=0.1))
        led.apply(Fill(H0 + 1, DOWN, BUY, 0.63, 20.0, fee=0.2))
        led.settle(up_won)
        assert led.pnl == pytest.approx(-0.3)


def test_cannot_sell_what_we_do_not_hold():
    led = HourLedger(H0)
    led.apply(Fill(H0, UP, BUY, 0.5, 3.0))
    with pytest.raises(ValueError):
        led.apply(Fill(H0 + 1, UP, SELL, 0.5, 3.5))
    led.apply(Fill(H0 + 2, UP, SELL, 0.6, 3.0))
    assert led.pos == [0.0, 0.0]
    led.settle(True)
    assert led.pnl == pytest.approx(0.3)


def test_bad_fills_rejected():
    for kw in ({"token": 2}, {"side": 5}, {"price": 1.0}, {"price": 0.0}, {"size": 0.0}, {"fee": -1.0}):
        base = {"ts_ms": H0, "token": UP, "side": BUY, "price": 0.5, "size": 1.0, "fee": 0.0}
        base.update(kw)
        with pytest.raises(ValueError):
            HourLedger(H0).apply(Fill(**base))


fills_strategy = st.lists(
    st.tuples(st.sampled_from([UP, DOWN]), st.sampled_from([BUY, SELL]),
              st.integers(1, 99), st.integers(1, 50)),
    min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(fills_strategy, st.booleans())
def test_conservation(raw, up_won):
    """Money in = money out: PnL equals sum of sells - buys - fees + winning tokens held,
    and token holdings equal buys - sells per token, whatever the fill sequence."""
    led = HourLedger(H0)
    bought = [0.0, 0.0]
    sold = [0.0, 0.0]
    cash = 0.0
    fees = 0.0
    for i, (tok, side, cents, size) in enumerate(raw):
        price = cents / 100.0
        if side == SELL and size > led.pos[tok]:
            continue
        fee = fill_fee(price, size, (i % 2 == 0), CRYPTO_FEES)
        led.apply(Fill(H0 + i, tok, side, price, float(size), fee=fee, maker=(i % 2 == 0)))
        (bought if side == BUY else sold)[tok] += size
        cash += (price * size if side == SELL else -price * size) - fee
        fees += fee
    held = [bought[k] - sold[k] for k in (UP, DOWN)]
    assert led.pos == pytest.approx(held)
    assert all(p >= 0 for p in led.pos)
    assert led.fees == pytest.approx(fees)
    payout = led.settle(up_won)
    assert payout == pytest.approx(held[UP] if up_won else held[DOWN])
    assert led.pnl == pytest.approx(cash + payout)
    assert led.volume == pytest.approx(sum(bought) + sum(sold))


def test_markouts_sign_convention():
    ts = H0 + np.arange(0, 60_000, 1000, dtype=np.int64)
    fair = np.full(ts.size, 0.50)
    fair[ts >= H0 + 10_000] = 0.45  # fair drops 10 s in
    # we bought Up at 0.49 at t=6s: 5 s later (t=11s) fair is 0.45 -> picked off
    f_up = Fill(H0 + 6000, UP, BUY, 0.49, 10.0)
    m = bt.markouts([f_up], ts, fair)
    assert m["adverse_5s"] == pytest.approx(-0.05)
    assert m["markout_5s"] == pytest.approx(0.45 - 0.49)
    # buying Down at the same time gains: Down fair goes 0.50 -> 0.55
    f_dn = Fill(H0 + 6000, DOWN, BUY, 0.49, 10.0)
    m2 = bt.markouts([f_dn], ts, fair)
    assert m2["adverse_5s"] == pytest.approx(0.05) and m2["markout_30s"] == pytest.approx(0.06)
    # selling Up before the drop is good for us
    m3 = bt.markouts([Fill(H0 + 6000, UP, SELL, 0.51, 1.0)], ts, fair)
    assert m3["adverse_5s"] == pytest.approx(0.05)
    # size weighting: 10 picked-off + 30 winning
    m4 = bt.markouts([f_up, Fill(H0 + 6000, DOWN, BUY, 0.49, 30.0)], ts, fair)
    assert m4["adverse_5s"] == pytest.approx((10 * -0.05 + 30 * 0.05) / 40)
    assert all(math.isnan(v) for v in bt.markouts([], ts, fair).values())


def test_hour_result_row():
    led = HourLedger(H0)
    led.apply(Fill(H0 + 1000, UP, BUY, 0.45, 10.0, fee=0.1))
    led.apply(Fill(H0 + 5000, DOWN, BUY, 0.50, 4.0))
    ts = H0 + np.arange(0, HOUR_MS, 1000, dtype=np.int64)
    fair = np.linspace(0.5, 0.9, ts.size)
    r = bt.hour_result(led, 100.0, 101.0, ts, fair)
    assert r.up_won and r.settlement == 10.0 and r.up_at_close == 10.0 and r.down_at_close == 4.0
    assert r.pnl == pytest.approx(10.0 - 4.5 - 0.1 - 2.0)
    assert r.max_abs_net_up == 10.0 and r.n_fills == 2 and r.volume == 14.0
    flat = bt.hour_result(HourLedger(H0), 100.0, 100.0, ts, fair)
    assert flat.up_won and flat.pnl == 0.0 and math.isnan(flat.markout_5s)
