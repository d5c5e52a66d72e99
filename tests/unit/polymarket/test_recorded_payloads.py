"""Our Polymarket parsers accept each recorded venue payload (tests/fixtures/polymarket, see its README)
and read the right values out of it. Values in the fixtures are real (Gamma sample, L2 book sample)."""
from __future__ import annotations

import pytest

from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.polymarket.executor import Executor, OrderRequest, Rejected
from hourmm_core.polymarket.gamma import parse_market
from hourmm_core.polymarket.orderbook import BookSet, OrderBook
from hourmm_core.polymarket.user_ws import OrderUpdate, TradeUpdate, parse_user_message
from tests.conftest import FIXTURE_IDS, new_credentials

CID = FIXTURE_IDS["CONDITION_ID"]
UP = "106853212325739234269605042620856745942429109258639927166403506431703417105118"
DN = "34549038436775387767555351401981287096280193432851657723404876503687402605441"
OWNER = "3f1c9e2a-5b7d-4e60-9a1b-2c8d4e6f8a01"


@pytest.mark.parametrize("name", ["polymarket/gamma_events.json", "polymarket/gamma_markets.json"])
def test_gamma_event_and_market_parse(recorded, name):
    obj = recorded(name)
    assert isinstance(obj, list) and len(obj) == 1      # Gamma answers a slug query with a list
    mi = parse_market(obj[0])
    assert (mi.condition_id, mi.up_token_id, mi.down_token_id) == (CID, UP, DN)
    assert mi.slug == "btc-updown-5m-1780876500"
    assert (mi.start_ms, mi.end_ms) == (1780876500000, 1780876800000)   # eventStartTime / endDate (a 5-minute market)
    assert mi.tick_size == 0.001 and mi.min_size == 5.0
    assert mi.fee == CRYPTO_FEES                         # real schedule: 0.07, exponent 1, taker-only, rebate 0.2
    assert mi.closed is True and mi.accepting_orders is False


def test_gamma_outcome_order_decides_up_and_down(recorded):
    ev = recorded("polymarket/gamma_events.json")[0]
    m = ev["markets"][0]
    m["outcomes"] = '["Down", "Up"]'                      # the venue's order is authoritative
    mi = parse_market(ev)
    assert (mi.up_token_id, mi.down_token_id) == (DN, UP)


def test_ws_book_snapshot_builds_the_real_book(recorded):
    books = BookSet([UP, DN], 0.01)
    assert books.apply(recorded("polymarket/ws_market_book.json")) == [UP]
    top = books.get(UP).top()
    assert top is not None
    assert (top.bid, top.ask) == (0.43, 0.44)             # best LAST on both sides in the venue's order
    assert books.get(UP).levels("bid", 3) == [(0.43, 167.0), (0.42, 239.0), (0.41, 1387.0)]
    assert books.get(UP).levels("ask", 2) == [(0.44, 124.89), (0.45, 151.83)]


def test_rest_book_levels_parse_like_the_ws_snapshot(recorded):
    rest = recorded("polymarket/http_get_book.json")
    ws = recorded("polymarket/ws_market_book.json")
    assert rest["bids"] == ws["bids"] and rest["asks"] == ws["asks"]
    b = OrderBook(UP, float(rest["tick_size"]))
    b.apply_snapshot(rest["bids"], rest["asks"], rest["timestamp"], rest["hash"])
    assert b.top() is not None and (b.top().bid, b.top().ask) == (0.43, 0.44)
    assert b.ts_ms == 1790587021815


def test_price_change_applies_on_both_tokens_and_passes_the_best_price_check(recorded):
    books = BookSet([UP, DN], 0.01)
    books.apply(recorded("polymarket/ws_market_book.json"))
    up = recorded("polymarket/ws_market_book.json")
    mirror = lambda levels: [{"price": f"{1 - float(x['price']):.2f}", "size": x["size"]} for x in levels]  # noqa: E731
    books.apply({**up, "asset_id": DN, "bids": mirror(up["asks"]), "asks": mirror(up["bids"])})  # Down = mirror of Up
    assert (books.get(DN).top().bid, books.get(DN).top().ask) == (0.56, 0.57)
    changed = books.apply(recorded("polymarket/ws_market_price_change.json"))
    assert sorted(changed) == sorted([UP, DN])
    assert dict(books.get(UP).levels("bid", 10))[0.42] == 958.0
    assert dict(books.get(DN).levels("ask", 10))[0.58] == 958.0
    assert books.get(UP).top() is not None and books.get(DN).top() is not None   # best_bid/best_ask agreed


def test_price_change_with_a_disagreeing_best_price_forces_a_resync(recorded):
    books = BookSet([UP], 0.01)
    books.apply(recorded("polymarket/ws_market_book.json"))
    pc = recorded("polymarket/ws_market_price_change.json")
    pc["price_changes"] = pc["price_changes"][:1]
    pc["price_changes"][0]["best_bid"] = "0.45"          # the venue says 0.45, our book says 0.43
    books.apply(pc)
    assert books.get(UP).top() is None                   # never quote on a book that disagrees with the venue


def test_last_trade_price_and_tick_size_change(recorded):
    books = BookSet([UP], 0.01)
    books.apply(recorded("polymarket/ws_market_book.json"))
    books.apply(recorded("polymarket/ws_market_last_trade_price.json"))
    assert books.get(UP).last_trade_price == 0.44
    books.apply(recorded("polymarket/ws_market_tick_size_change.json"))
    assert books.get(UP).tick_size == 0.001


@pytest.mark.parametrize("name,typ,status,matched", [
    ("polymarket/ws_user_order_placement.json", "PLACEMENT", "LIVE", 0.0),
    ("polymarket/ws_user_order_update.json", "UPDATE", "MATCHED", 10.0),
    ("polymarket/ws_user_order_cancellation.json", "CANCELLATION", "CANCELED", 0.0),
])
def test_user_order_messages(recorded, name, typ, status, matched):
    u = parse_user_message(recorded(name), recv_ms=1)
    assert isinstance(u, OrderUpdate)
    assert (u.type, u.status, u.asset_id, u.market, u.side) == (typ, status, UP, CID, "BUY")
    assert (u.price, u.original_size, u.size_matched) == (0.43, 10.0, matched)
    assert u.ts_ms > 1_700_000_000_000                   # ms timestamps kept as ms


def test_user_trade_gives_our_maker_fill_once(recorded):
    seen: set[str] = set()
    msg = recorded("polymarket/ws_user_trade.json")
    t = parse_user_message(msg, recv_ms=1, seen=seen)
    assert isinstance(t, TradeUpdate) and t.is_new and t.status == "MATCHED" and t.trader_side == "MAKER"
    fills = t.own_fills(api_key=OWNER)
    assert len(fills) == 1
    f = fills[0]
    assert (f.liquidity, f.side, f.price, f.size, f.asset_id) == ("MAKER", "BUY", 0.43, 10.0, UP)
    msg["status"] = "CONFIRMED"                          # the same trade again, later status
    again = parse_user_message(msg, recv_ms=2, seen=seen)
    assert again.is_new is False


@pytest.fixture
def executor():
    return Executor("http://127.0.0.1:9", 137, new_credentials())   # never started: no network


def _req(price: float = 0.43) -> OrderRequest:
    return OrderRequest("ck-1", UP, "BUY", price, 10.0)


@pytest.mark.parametrize("name,status", [("polymarket/http_post_order_live.json", "live"),
                                         ("polymarket/http_post_order_matched.json", "matched")])
def test_post_order_replies_become_acks(recorded, executor, name, status):
    res = recorded(name)
    ack = executor._ack(_req(), res["orderID"], res)
    assert ack.success and ack.status == status and ack.order_id == res["orderID"]


def test_post_order_error_body_is_a_typed_rejection(recorded, executor):
    with pytest.raises(Rejected, match="crosses book"):
        executor._ack(_req(), "0xlocal", recorded("polymarket/http_post_order_error.json"))


def test_cancel_reply(recorded):
    res = recorded("polymarket/http_cancel.json")
    cr = Executor._cancel_result(res)
    assert cr.canceled == tuple(res["canceled"]) and cr.not_canceled == res["not_canceled"]
