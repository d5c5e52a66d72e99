"""Strategy policy per phase/mode, ladder sanity, and the decision core pipeline."""
import pytest

from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.order_manager import Fill
from hourmm_core.trading.risk_engine import Exposure, Limits, Mode, Reason, check_quote
from hourmm_core.trading.session import Phase, Schedule
from hourmm_core.trading.strategy import BookTop, MarketState, StrategyParams, desired_quotes
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Quote

LIM = Limits(1000.0, 500.0, 100.0, 4)
P = StrategyParams()
UPB, DNB = BookTop(0.48, 0.52), BookTop(0.48, 0.52)


def st(**kw) -> MarketState:
    base = dict(fair_up=0.5, fair_unc=0.0, fresh=True, yes_tokens=0.0, no_tokens=0.0, up=UPB, down=DNB,
                phase=Phase.ACTIVE, mode=Mode.NORMAL, wind_progress=0.0, tick=0.01, min_size=5.0)
    base.update(kw)
    return MarketState(**base)


def test_active_two_sided_ladder_never_crosses() -> None:
    qs = desired_quotes(st(), P, LIM)
    assert len(qs) == 4
    up_bids = [q.price for q in qs if q.token == UP and q.side == BUY]
    dn_bids = [q.price for q in qs if q.token == DOWN and q.side == BUY]
    assert up_bids == [0.48, 0.47] and dn_bids == [0.48, 0.47]
    assert all(q.price < 0.52 for q in qs)  # post-only: below each token's best ask
    assert all(0 < q.price < 1 and q.size == 5.0 for q in qs)


def test_inventory_skew_and_sells_held_tokens() -> None:
    qs = desired_quotes(st(yes_tokens=100.0), P, LIM)
    sells = [q for q in qs if q.side == SELL]
    assert sells and all(q.token == UP and q.reduce for q in sells)
    assert qs[0].reduce  # reducing first
    flat = desired_quotes(st(), P, LIM)
    assert max(q.price for q in qs if q.token == UP and q.side == BUY) <= \
        max(q.price for q in flat if q.token == UP and q.side == BUY)


def test_wind_down_wider_and_smaller() -> None:
    qs = desired_quotes(st(phase=Phase.WIND_DOWN, wind_progress=0.5), StrategyParams(quote_size=10), LIM)
    assert qs and all(q.size == 5.0 for q in qs)
    assert max(q.price for q in qs if q.token == UP) <= 0.46


def test_flatten_sells_at_best_bid_even_when_stale() -> None:
    qs = desired_quotes(st(phase=Phase.FLATTEN, fresh=False, yes_tokens=12.0, no_tokens=3.0), P, LIM)
    assert qs == [Quote(UP, SELL, 0.48, 12.0, True)]  # 3 Down < min size: cannot be sold
    assert desired_quotes(st(mode=Mode.FLATTEN, yes_tokens=200.0), P, LIM)[0].size == 100.0


@pytest.mark.parametrize("kw", [dict(fresh=False), dict(phase=Phase.HARD_CUTOFF), dict(phase=Phase.IDLE),
                                dict(mode=Mode.HALT, yes_tokens=50.0), dict(up=None), dict(paused=True),
                                dict(fair_up=None)])
def test_no_quotes_cases(kw) -> None:
    assert desired_quotes(st(**kw), P, LIM) == []


def test_reduce_only_keeps_only_reducing() -> None:
    qs = desired_quotes(st(mode=Mode.REDUCE_ONLY, yes_tokens=20.0), P, LIM)
    assert qs and all(q.reduce and q.side == SELL for q in qs)
    assert desired_quotes(st(mode=Mode.REDUCE_ONLY), P, LIM) == []


def test_check_quote_reasons() -> None:
    ex = lambda **k: Exposure(**{**dict(yes_tokens=0, no_tokens=0, open_buy_up=0, open_buy_down=0,
                                        open_sell_up=0, open_sell_down=0, reserved_capital=0, open_orders=0), **k})
    c = lambda q, mode=Mode.NORMAL, e=None, fresh=True, unwind=False: check_quote(q, mode, LIM, e or ex(), 0.5, fresh, 0.15,
                                                                              0.01, 5.0, unwind)
    assert c(Quote(UP, BUY, 0.48, 5)) == Reason.OK
    assert c(Quote(UP, BUY, 0.48, 5), mode=Mode.HALT) == Reason.MODE_HALT
    assert c(Quote(UP, BUY, 0.48, 101)) == Reason.ORDER_SIZE
    assert c(Quote(UP, BUY, 0.48, 5), e=ex(open_orders=4)) == Reason.OPEN_ORDERS
    assert c(Quote(UP, BUY, 0.48, 5), mode=Mode.REDUCE_ONLY) == Reason.MODE_REDUCE_ONLY
    assert c(Quote(UP, BUY, 0.48, 5), fresh=False) == Reason.STALE
    assert c(Quote(UP, BUY, 0.20, 5)) == Reason.PRICE_BAND
    assert c(Quote(UP, BUY, 0.48, 50), e=ex(yes_tokens=460)) == Reason.POSITION
    assert c(Quote(UP, BUY, 0.48, 50), e=ex(reserved_capital=990)) == Reason.CAPITAL
    assert c(Quote(UP, SELL, 0.48, 5), e=ex(yes_tokens=4)) == Reason.POSITION
    assert c(Quote(UP, SELL, 0.30, 5), mode=Mode.FLATTEN, fresh=False, e=ex(yes_tokens=5), unwind=True) == Reason.OK
    assert c(Quote(UP, SELL, 0.30, 5), e=ex(yes_tokens=5)) == Reason.PRICE_BAND  # not unwinding: band applies
    assert c(Quote(UP, SELL, 0.55, 5), e=ex(yes_tokens=8, open_sell_up=5)) == Reason.POSITION  # no oversell
    assert c(Quote(UP, BUY, 1.0, 5)) == Reason.BAD_PRICE
    assert c(Quote(UP, BUY, 0.485, 5)) == Reason.BAD_PRICE  # off the tick grid
    assert c(Quote(UP, BUY, 0.48, 4)) == Reason.BAD_SIZE  # below the venue minimum
    e = ex()
    for _ in range(4):
        assert c(Quote(UP, BUY, 0.48, 5), e=e) == Reason.OK
    assert c(Quote(UP, BUY, 0.48, 5), e=e) == Reason.OPEN_ORDERS  # accumulates within a plan


END = 1_700_002_800_000


def core() -> DecisionCore:
    c = DecisionCore(LIM, Schedule(), P)
    c.set_market(MarketRef("s", "0xcond", "up", "dn", END - 3_600_000, END))
    for f in (c.risk.on_user_ws, c.risk.on_market_ws, c.risk.on_rest):
        f(True, 0)
    return c


def ack_all(c: DecisionCore, actions, now: int) -> None:
    for a in actions:
        if a.kind == "place":
            c.om.on_sent(a.order, now)
            c.om.on_ack(a.order, "x" + a.order.client_id, "live", now)
        else:
            c.om.on_cancel_sent(a.order, now)
            c.om.on_cancelled(a.order.order_id, now)


def test_decision_core_full_hour_flow() -> None:
    c = core()
    t = END - 3_000_000
    d = c.decide(t, 0.5, 0.0, True, UPB, DNB)
    assert d.phase_change.new is Phase.ACTIVE and len(d.actions) == 4
    ack_all(c, d.actions, t)
    assert c.decide(t + 20, 0.5, 0.0, True, UPB, DNB).actions == []  # no churn
    d = c.decide(t + 40, 0.5, 0.0, False, UPB, DNB)  # stale -> cancel all quotes
    assert [a.kind for a in d.actions] == ["cancel"] * 4 and d.mode_changes[0].new is Mode.REDUCE_ONLY
    ack_all(c, d.actions, t + 40)
    c.om.on_fill(Fill("t1", None, UP, BUY, 0.48, 10, t + 50))
    d = c.decide(END - 200_000, 0.5, 0.0, False, UPB, DNB)  # FLATTEN while stale: still gets out
    assert d.phase_change.new is Phase.FLATTEN
    assert [(a.kind, a.order.side, a.order.size) for a in d.actions] == [("place", SELL, 10.0)]
    ack_all(c, d.actions, END - 200_000)
    d = c.decide(END - 30_000, 0.5, 0.0, True, UPB, DNB)  # HARD_CUTOFF: cancel all
    assert d.cancel_all and [a.kind for a in d.actions] == ["cancel"]
    st_ = c.status()
    assert st_["session_state"] == "HARD_CUTOFF" and st_["positions"] == {"yes_tokens": 10.0, "no_tokens": 0.0}


def test_decision_core_halt_cancels_everything() -> None:
    c = core()
    t = END - 3_000_000
    ack_all(c, c.decide(t, 0.5, 0.0, True, UPB, DNB).actions, t)
    c.risk.on_user_ws(False, t + 1)
    d = c.decide(t + 2, 0.5, 0.0, True, UPB, DNB)
    assert d.cancel_all and len(d.actions) == 4 and c.status()["risk_mode"] == "HALT"


def test_flatten_splits_and_walks_through_the_bid() -> None:
    qs = desired_quotes(st(phase=Phase.FLATTEN, yes_tokens=250.0), P, LIM)
    assert [(q.size, q.price) for q in qs] == [(100.0, 0.48), (100.0, 0.48), (50.0, 0.48)]
    late = desired_quotes(st(phase=Phase.FLATTEN, yes_tokens=20.0, flatten_progress=1.0), P, LIM)
    assert late == [Quote(UP, SELL, 0.43, 20.0, True)]  # 5 ticks through the best bid near the cut-off
    assert len(desired_quotes(st(phase=Phase.FLATTEN, yes_tokens=900.0), P, LIM)) == 4  # MAX_OPEN_ORDERS
