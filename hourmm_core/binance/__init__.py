"""Binance public market data: frame parsing/validation, combined-stream WS client, klines REST.

The names are imported on first use (PEP 562): frame parsing (``messages``) is used by the backtest
through container A's snapshot code, which must not pull in the network clients (aiohttp, websockets).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hourmm_core.lazy import lazy_exports

_WHERE = {**dict.fromkeys(("BookTicker", "FrameError", "FrameStats", "Message", "Trade", "parse_book_ticker",
                           "parse_frame", "parse_payload", "parse_trade"), "messages"),
          **dict.fromkeys(("BinanceRestError", "Kline", "fetch_hour_open", "fetch_klines", "parse_kline"), "rest"),
          **dict.fromkeys(("BinanceStreamClient", "PriceGuard", "backoff_delay", "stream_url"), "ws_client")}

__all__ = [
    "BinanceRestError", "BinanceStreamClient", "PriceGuard", "BookTicker", "FrameError", "FrameStats", "Kline", "Message",
    "Trade", "backoff_delay", "fetch_hour_open", "fetch_klines", "parse_book_ticker", "parse_frame",
    "parse_kline", "parse_payload", "parse_trade", "stream_url",
]

if TYPE_CHECKING:
    from hourmm_core.binance.messages import (
        BookTicker, FrameError, FrameStats, Message, Trade, parse_book_ticker, parse_frame, parse_payload,
        parse_trade,
    )
    from hourmm_core.binance.rest import BinanceRestError, Kline, fetch_hour_open, fetch_klines, parse_kline
    from hourmm_core.binance.ws_client import BinanceStreamClient, PriceGuard, backoff_delay, stream_url


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
