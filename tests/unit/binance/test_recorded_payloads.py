"""Our Binance parsers accept the recorded payloads (tests/fixtures/binance, see its README): the first
trade / bookTicker of the real spot recordings in /work/shared/data and three real 1-minute klines."""
from __future__ import annotations

import json

import pytest

from hourmm_core.binance.messages import BookTicker, FrameError, Trade, parse_frame
from hourmm_core.binance.rest import BinanceRestError, parse_kline


def test_combined_trade_frame(recorded):
    t = parse_frame(json.dumps(recorded("binance/ws_combined_trade.json")))
    assert isinstance(t, Trade)
    assert (t.symbol, t.trade_id, t.price, t.qty) == ("BTCUSDT", 3735683259, 61837.63, 0.02)
    assert (t.trade_ms, t.event_ms, t.is_buyer_maker) == (1723161255342, 1723161255342, True)


def test_combined_book_ticker_frame(recorded):
    b = parse_frame(json.dumps(recorded("binance/ws_combined_bookticker.json")))
    assert isinstance(b, BookTicker)
    assert (b.update_id, b.bid, b.bid_qty, b.ask, b.ask_qty) == (50093239212, 61837.63, 3.78826, 61837.64, 1.54698)
    assert b.event_ms is None                            # spot bookTicker carries no event time


def test_raw_payloads_without_the_envelope(recorded):
    assert isinstance(parse_frame(json.dumps(recorded("binance/ws_combined_trade.json")["data"])), Trade)
    assert isinstance(parse_frame(json.dumps(recorded("binance/ws_combined_bookticker.json")["data"])), BookTicker)


def test_trade_with_the_maker_flag_as_a_string_is_refused(recorded):
    f = recorded("binance/ws_combined_trade.json")
    f["data"]["m"] = "true"
    with pytest.raises(FrameError):
        parse_frame(json.dumps(f))


def test_klines_rows(recorded):
    rows = recorded("binance/rest_klines.json")
    ks = [parse_kline(r) for r in rows]
    assert [k.open_ms for k in ks] == [1746057600000, 1746057660000, 1746057720000]
    assert (ks[0].open, ks[0].high, ks[0].low, ks[0].close, ks[0].trades) == (94172.0, 94177.96, 94130.43, 94147.3, 2480)
    assert all(k.close_ms == k.open_ms + 59_999 for k in ks)
    bad = list(rows[0])
    bad[2] = "not-a-price"
    with pytest.raises(BinanceRestError):
        parse_kline(bad)
