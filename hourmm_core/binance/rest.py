"""Binance REST (public, no key): klines, used to recover the hour's open on a mid-hour start.

Klines arrive as arrays ``[open_time, "open", "high", "low", "close", "volume",
close_time, "quote_volume", trades, "taker_base", "taker_quote", "ignore"]``;
each row is validated and a malformed reply raises :class:`BinanceRestError`.
"""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from hourmm_core import safe_json

log = logging.getLogger(__name__)


class BinanceRestError(RuntimeError):
    """REST call failed or returned something that is not Binance's format."""


@dataclass(frozen=True, slots=True)
class Kline:
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_ms: int
    trades: int


def parse_kline(row: Any) -> Kline:
    """Validate one kline array row."""
    if not isinstance(row, list) or len(row) < 9:
        raise BinanceRestError(f"kline row is not an array of >= 9 fields: {row!r:.200}")
    try:
        k = Kline(int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]),
                  float(row[5]), int(row[6]), int(row[8]))
    except (TypeError, ValueError) as exc:
        raise BinanceRestError(f"kline row has a bad field ({exc}): {row!r:.200}") from None
    if not all(math.isfinite(x) and x > 0 for x in (k.open, k.high, k.low, k.close)) or k.low > k.high:
        raise BinanceRestError(f"kline prices out of range: {row!r:.200}")
    return k


async def fetch_klines(session: aiohttp.ClientSession, rest_url: str, symbol: str, interval: str = "1h",
                       start_ms: int | None = None, end_ms: int | None = None, limit: int = 1,
                       timeout_s: float = 5.0) -> list[Kline]:
    """GET /api/v3/klines -> validated rows (HTTP errors and bad bodies raise BinanceRestError)."""
    params: dict[str, str] = {"symbol": symbol.upper(), "interval": interval, "limit": str(limit)}
    if start_ms is not None:
        params["startTime"] = str(start_ms)
    if end_ms is not None:
        params["endTime"] = str(end_ms)
    url = f"{rest_url.rstrip('/')}/api/v3/klines"
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                body = (await resp.text())[:200]
                raise BinanceRestError(f"GET {url} -> HTTP {resp.status}: {body}")
            data = safe_json.loads(await resp.read(), what="klines reply")
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise BinanceRestError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, list):
        raise BinanceRestError(f"klines reply is not an array: {str(data)[:200]}")
    return [parse_kline(r) for r in data]


async def fetch_hour_open(session: aiohttp.ClientSession, rest_url: str, symbol: str,
                          hour_start_ms: int) -> float | None:
    """Open of the 1h candle starting at ``hour_start_ms``; None when that candle does not exist yet."""
    rows = await fetch_klines(session, rest_url, symbol, "1h", start_ms=hour_start_ms, limit=1)
    for k in rows:
        if k.open_ms == hour_start_ms:
            return k.open
    return None


async def fetch_minute_history(session: aiohttp.ClientSession, rest_url: str, symbol: str, start_ms: int,
                               end_ms: int, page: int = 1000, timeout_s: float = 5.0,
                               retries: int = 2) -> tuple[list[Kline], str | None]:
    """1m klines with ``start_ms <= open < end_ms``, paged ``page`` rows per GET (Binance's cap 1000).

    Returns ``(rows, error)``: the contiguous prefix fetched and, when a page still failed after
    ``retries`` retries, the error text (the caller decides what a partial history is worth; the
    pricer starts from what it has). Rows are strictly increasing in open time (a page that
    repeats or goes backwards ends the history there, with an error).
    """
    rows: list[Kline] = []
    nxt = int(start_ms)
    while nxt < end_ms:
        err: str | None = None
        for attempt in range(retries + 1):
            try:
                got = await fetch_klines(session, rest_url, symbol, "1m", start_ms=nxt, end_ms=int(end_ms) - 1,
                                         limit=page, timeout_s=timeout_s)
                err = None
                break
            except BinanceRestError as exc:
                err = str(exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        if err is not None:
            return rows, err
        got = [k for k in got if nxt <= k.open_ms < end_ms]
        if not got:
            return rows, None
        if any(b.open_ms <= a.open_ms for a, b in zip(got, got[1:])):
            return rows, "klines page not strictly increasing in open time"
        rows.extend(got)
        nxt = got[-1].open_ms + 60_000
    return rows, None
