"""Reconciliation pieces: journal fill replay, exchange trade history, order classification."""
from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.reconcile import ReconcileReport, classify_orders, exchange_fills, replay_fills
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams
from hourmm_core.trading.types import BUY, DOWN, SELL, UP

M = MarketRef("slug", "0xcond", "111", "222", 0, 3_600_000)


def core() -> DecisionCore:
    c = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
    c.set_market(M)
    return c


def trade(tid: str, **kw) -> dict:
    t = {"id": tid, "market": "0xcond", "asset_id": "111", "side": "BUY", "price": "0.4", "size": "10",
         "status": "MATCHED", "taker_order_id": "t-" + tid, "owner": "other", "trader_side": "TAKER",
         "maker_orders": [], "match_time": "1"}
    t.update(kw)
    return t


def test_journal_then_exchange_no_double_count() -> None:
    c = core()
    n = replay_fills(c, [{"trade_id": "a", "order_id": "o1", "token": UP, "side": BUY, "price": 0.4, "size": 10},
                         {"trade_id": "bad"}])
    assert n == 1 and c.om.yes_tokens == 10
    rep = ReconcileReport()
    trades = [
        # the same fill, now seen in the exchange history: must not count twice
        trade("a", maker_orders=[{"order_id": "o1", "owner": "KEY", "asset_id": "111", "price": "0.4",
                                  "matched_amount": "10", "side": "BUY"}]),
        # a fill the journal missed: we were the taker selling Down
        trade("b", owner="KEY", asset_id="222", side="SELL", price="0.6", size="5", taker_order_id="o2"),
        # someone else's trade, a failed one, and another market's
        trade("c"), trade("d", owner="KEY", status="FAILED"), trade("e", owner="KEY", market="0xother"),
    ]
    new = exchange_fills(c, M, trades, "KEY", 5, rep)
    assert [(f.trade_id, f.token, f.side, f.size) for f in new] == [("b", DOWN, SELL, 5.0)]
    assert c.om.yes_tokens == 10 and c.om.no_tokens == -5
    assert exchange_fills(c, M, [{"id": 3}], "KEY", 6, rep) == [] and rep.errors


def test_classify_adopts_ours_cancels_strays() -> None:
    c = core()
    rep = ReconcileReport()
    orders = [
        {"id": "o1", "market": "0xcond", "asset_id": "111", "side": "BUY", "price": "0.4", "original_size": "10",
         "size_matched": "2"},
        {"id": "o2", "market": "0xcond", "asset_id": "111", "side": "BUY", "price": "0.4", "original_size": "10"},
        {"id": "o3", "market": "0xold", "asset_id": "999", "side": "SELL", "price": "0.6", "original_size": "5"},
        {"market": "0xcond"},
    ]
    strays = classify_orders(c, M, orders, {"o1", "o3"}, 0, rep)
    assert rep.adopted == ["o1"] and strays == ["o2", "o3"] and rep.errors
    o = c.om.by_order_id("o1")
    assert o is not None and o.filled == 2 and o.remaining == 8 and c.om.open_count == 1
