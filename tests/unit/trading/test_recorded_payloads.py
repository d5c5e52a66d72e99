"""Start-up reconciliation reads the venue's REST payloads as recorded in tests/fixtures/polymarket
(GET /data/orders, GET /data/trades; see its README): our resting order is adopted with its fill,
and our maker fill in the trade history becomes inventory once."""
from __future__ import annotations

from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.reconcile import ReconcileReport, classify_orders, exchange_fills
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams
from hourmm_core.trading.types import BUY, UP
from tests.conftest import FIXTURE_IDS

CID = FIXTURE_IDS["CONDITION_ID"]
UP_TOKEN = "106853212325739234269605042620856745942429109258639927166403506431703417105118"
DN_TOKEN = "34549038436775387767555351401981287096280193432851657723404876503687402605441"
OWNER = "3f1c9e2a-5b7d-4e60-9a1b-2c8d4e6f8a01"
MARKET = MarketRef("btc-updown-5m-1780876500", CID, UP_TOKEN, DN_TOKEN, 1780876500000, 1780876800000)


def _core() -> DecisionCore:
    c = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
    c.set_market(MARKET)
    return c


def test_open_order_of_ours_is_adopted_with_its_fill(recorded):
    page = recorded("polymarket/http_open_orders.json")
    (o,) = page["data"]
    c, rep = _core(), ReconcileReport()
    strays = classify_orders(c, MARKET, page["data"], {o["id"]}, 0, rep)
    assert strays == [] and rep.adopted == [o["id"]] and not rep.errors
    mine = c.om.by_order_id(o["id"])
    assert mine is not None and (mine.token, mine.side, mine.price) == (UP, BUY, 0.43)
    assert (mine.filled, mine.remaining) == (5.0, 5.0)


def test_open_order_we_never_placed_is_a_stray(recorded):
    page = recorded("polymarket/http_open_orders.json")
    c, rep = _core(), ReconcileReport()
    assert classify_orders(c, MARKET, page["data"], set(), 0, rep) == [page["data"][0]["id"]]


def test_our_maker_fill_in_the_trade_history_counts_once(recorded):
    trades = recorded("polymarket/http_trades.json")["data"]
    c, rep = _core(), ReconcileReport()
    new = exchange_fills(c, MARKET, trades, OWNER, 7, rep)
    assert [(f.token, f.side, f.price, f.size) for f in new] == [(UP, BUY, 0.43, 5.0)] and not rep.errors
    assert c.om.yes_tokens == 5.0
    assert exchange_fills(c, MARKET, trades, OWNER, 8, rep) == [] and c.om.yes_tokens == 5.0
