"""Matching engine of the Polymarket simulator: rules, complement matching, invariants (hypothesis)."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hourmm_core.fees import NO_FEES, FeeSchedule
from hourmm_core.sim.polymarket.engine import (
    ERR_BALANCE,
    ERR_FAK,
    ERR_FOK,
    ERR_NOT_ACCEPTING,
    ERR_POST_ONLY,
    EngineError,
    Exchange,
)

H = 3_600_000


def mk(fee: FeeSchedule = NO_FEES) -> Exchange:
    ex = Exchange(seed=1, fee=fee)
    ex.list_market("c1", "UP", "DN", 0, H)
    for o in ("a", "b", "c"):
        ex.deposit(o, 1000)
    return ex


def test_mint_buy_up_crosses_buy_down():
    ex = mk()
    r1 = ex.place("a", "UP", "BUY", 0.40, 10, now_ms=1)
    assert r1.ok and r1.status == "live"
    assert ex.book("DN")["asks"] == [(0.60, 10.0)]
    r2 = ex.place("b", "DN", "BUY", 0.62, 10, now_ms=2)
    assert r2.status == "matched" and r2.fills[0].kind == "mint"
    assert r2.fills[0].price == pytest.approx(0.60)   # maker price, improvement to taker
    assert ex.positions("a") == {"UP": 10.0} and ex.positions("b") == {"DN": 10.0}
    assert ex.balances("a")["usdc"] == pytest.approx(996.0)
    assert ex.balances("b")["usdc"] == pytest.approx(994.0)
    assert ex.pool_u() == 10 * 1_000_000
    ex.check_invariants()


def test_merge_and_transfer():
    ex = mk()
    ex.place("a", "UP", "BUY", 0.5, 10, now_ms=1)
    ex.place("b", "DN", "BUY", 0.5, 10, now_ms=2)        # mint 10 pairs
    ex.place("a", "UP", "SELL", 0.45, 5, now_ms=3)        # rests as ask
    r = ex.place("b", "DN", "SELL", 0.55, 5, now_ms=4)    # SELL Down at .55 == bid Up .45 -> merge
    assert r.status == "matched" and r.fills[0].kind == "merge"
    assert ex.positions("a")["UP"] == 5.0 and ex.positions("b")["DN"] == 5.0
    assert ex.pool_u() == 5 * 1_000_000
    ex.place("a", "UP", "SELL", 0.5, 5, now_ms=5)
    r = ex.place("c", "UP", "BUY", 0.5, 5, order_type="FOK", now_ms=6)
    assert r.status == "matched" and r.fills[0].kind == "transfer"
    assert ex.positions("c") == {"UP": 5.0}
    ex.check_invariants()


def test_rules_tick_min_size_post_only_balance_fok_fak_gtd():
    ex = mk()
    assert "breaks minimum tick size rule: 0.01" in ex.place("a", "UP", "BUY", 0.505, 10, now_ms=1).error_msg
    assert "lower than the minimum: 5" in ex.place("a", "UP", "BUY", 0.5, 4.99, now_ms=1).error_msg
    assert ex.place("a", "UP", "SELL", 0.5, 10, now_ms=1).error_msg == ERR_BALANCE
    assert ex.place("a", "UP", "BUY", 0.5, 2001, now_ms=1).error_msg == ERR_BALANCE
    assert ex.place("a", "UP", "BUY", 0.5, 10, now_ms=1).ok
    assert ex.place("b", "DN", "BUY", 0.5, 10, post_only=True, now_ms=2).error_msg == ERR_POST_ONLY
    assert ex.place("b", "DN", "BUY", 0.5, 11, order_type="FOK", now_ms=2).error_msg == ERR_FOK
    assert ex.place("b", "DN", "BUY", 0.4, 1, order_type="FAK", now_ms=2).error_msg == ERR_FAK
    r = ex.place("b", "DN", "BUY", 0.5, 15, order_type="FAK", now_ms=2)
    assert r.status == "matched" and sum(f.size for f in r.fills) == 10.0
    assert ex.open_orders("b") == []
    assert ex.place("c", "UP", "BUY", 0.3, 10, order_type="GTD", expiration_ms=5, now_ms=5).error_msg
    assert ex.place("c", "UP", "BUY", 0.3, 10, order_type="GTD", expiration_ms=100, now_ms=5).ok
    assert ex.balances("c")["usdc_available"] == pytest.approx(997.0)
    assert ex.advance(100) == 1 and ex.open_orders("c") == []
    assert ex.balances("c")["usdc_available"] == pytest.approx(1000.0)
    assert ex.place("c", "UP", "BUY", 0.3, 10, now_ms=H).error_msg == ERR_NOT_ACCEPTING
    with pytest.raises(EngineError):
        ex.book("nope")
    assert "unknown token" in ex.place("c", "nope", "BUY", 0.3, 10, now_ms=1).error_msg
    ex.check_invariants()


def test_fee_formula_taker_only():
    ex = mk(fee=FeeSchedule(rate=0.02))    # 2%
    ex.place("a", "UP", "BUY", 0.30, 10, now_ms=1)          # maker
    r = ex.place("b", "DN", "BUY", 0.70, 10, now_ms=2)       # taker buys Down at 0.70
    # fee = 10 shares * 0.02 * 0.7 * 0.3 = 0.042, charged to the taker only
    assert r.fills[0].taker_fee == pytest.approx(0.042)
    assert ex.balances("a")["usdc"] == pytest.approx(1000 - 3.0)
    assert ex.balances("b")["usdc"] == pytest.approx(1000 - 7.0 - 0.042)
    assert ex.fees_u == 42_000
    ex.check_invariants()


def test_fee_crypto_schedule_at_the_engine():
    ex = Exchange(seed=1, fee=FeeSchedule(rate=0.10, exponent=1))
    ex.list_market("c1", "UP", "DN", 0, H)
    ex.deposit("a", 100)
    ex.deposit("b", 100)
    ex.place("a", "UP", "BUY", 0.20, 10, now_ms=1)
    r = ex.place("b", "DN", "BUY", 0.80, 10, now_ms=2)
    # fee = 0.10 * (0.8 * 0.2) ** 1 * 10 = 0.16
    assert r.fills[0].taker_fee == pytest.approx(0.16)
    assert ex.balances("b")["usdc"] == pytest.approx(100 - 8.0 - 0.16)
    ex.check_invariants()


def test_cancel_paths_and_events():
    ex = mk()
    evs = []
    ex.add_listener(evs.append)
    ids = [ex.place("a", "UP", "BUY", p, 10, now_ms=1).order_id for p in (0.1, 0.2, 0.3)]
    ok, _ = ex.cancel("a", ids[0], 2)
    assert ok and ex.cancel("a", ids[0], 2) == (False, "order can't be found - already canceled or matched")
    assert ex.cancel("b", ids[1], 2)[0] is False
    out = ex.cancel_market("a", "c1", 3)
    assert sorted(out["canceled"]) == sorted(ids[1:])
    assert ex.balances("a")["usdc_available"] == pytest.approx(1000)
    kinds = [(e["event_type"], e.get("type")) for e in evs]
    assert kinds.count(("order", "CANCELLATION")) == 3
    assert any(e["event_type"] == "price_change" and e["changes"][0]["size"] == "0" for e in evs)


def test_settlement_pays_winner_exactly():
    ex = mk()
    ex.place("a", "UP", "BUY", 0.6, 10, now_ms=1)
    ex.place("b", "DN", "BUY", 0.4, 10, now_ms=2)
    ex.place("c", "UP", "BUY", 0.1, 10, now_ms=3)      # resting, must be released at stop
    paid = ex.resolve("c1", up_wins=False, now_ms=H)
    assert paid == {"b": 10.0}
    assert ex.balances("b")["usdc"] == pytest.approx(1006.0)
    assert ex.balances("a")["usdc"] == pytest.approx(994.0)
    assert ex.balances("c")["usdc_available"] == pytest.approx(1000.0)
    assert ex.positions("a") == {} and ex.pool_u() == 0
    with pytest.raises(EngineError):
        ex.resolve("c1", True)
    ex.check_invariants()


OWNERS = ["a", "b", "c"]
op_st = st.tuples(
    st.sampled_from(OWNERS), st.sampled_from(["UP", "DN"]), st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 99), st.integers(1, 40), st.sampled_from(["GTC", "GTC", "GTD", "FOK", "FAK"]),
    st.booleans(), st.integers(0, 9),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, min_size=1, max_size=60), fee=st.sampled_from([0.0, 0.01, 0.07, 0.1]),
       up_wins=st.booleans())
def test_invariants_random_flow(ops, fee, up_wins):
    ex = Exchange(seed=3, fee=FeeSchedule(rate=fee))
    ex.list_market("c1", "UP", "DN", 0, H, min_size=1.0)
    for o in OWNERS:
        ex.deposit(o, 200)
    start_total = {o: ex.balances(o)["usdc"] for o in OWNERS}
    t = 0
    for owner, tok, side, p, size, ot, post, action in ops:
        t += 10
        if action == 0:
            live = ex.open_orders(owner)
            if live:
                ex.cancel(owner, live[0].order_id, t)
        elif action == 1:
            ex.cancel_all(owner, t)
        else:
            r = ex.place(owner, tok, side, p / 100, float(size), order_type=ot, post_only=post and ot in ("GTC", "GTD"),
                         expiration_ms=t + 25 if ot == "GTD" else 0, now_ms=t)
            if r.ok:
                fee_sum = sum(f.taker_fee for f in r.fills)
                for f in r.fills:                                 # fees as specified
                    pr = f.price
                    exact = Fraction(round(f.size * 100), 100) * Fraction(fee).limit_denominator(10**6) \
                        * Fraction(round(pr * 10000), 10000) * Fraction(10000 - round(pr * 10000), 10000)
                    assert f.taker_fee == pytest.approx(math.floor(exact * 100_000) / 100_000, abs=1e-12)
                assert fee_sum >= 0
        ex.check_invariants()                                     # no crossed book, conservation
    paid = ex.resolve("c1", up_wins, now_ms=H)
    ex.check_invariants()
    total_after = sum(ex.balances(o)["usdc"] for o in OWNERS)
    assert total_after + ex.fees_u / 1e6 == pytest.approx(sum(start_total.values()), abs=1e-6)
    assert all(ex.positions(o) == {} for o in OWNERS)
    assert all(v > 0 for v in paid.values())
