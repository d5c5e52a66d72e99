"""Binance public market data: frame parsing/validation, combined-stream WS client, klines REST."""
from hourmm_core.binance.messages import (
    BookTicker, FrameError, FrameStats, Message, Trade, parse_book_ticker, parse_frame, parse_payload,
    parse_trade,
)
from hourmm_core.binance.rest import BinanceRestError, Kline, fetch_hour_open, fetch_klines, parse_kline
from hourmm_core.binance.ws_client import BinanceStreamClient, PriceGuard, backoff_delay, stream_url

__all__ = [
    "BinanceRestError", "BinanceStreamClient", "PriceGuard", "BookTicker", "FrameError", "FrameStats", "Kline", "Message",
    "Trade", "backoff_delay", "fetch_hour_open", "fetch_klines", "parse_book_ticker", "parse_frame",
    "parse_kline", "parse_payload", "parse_trade", "stream_url",
]
