"""TickData: one immutable, column-oriented container for a span of BTCUSDT trades.

Every consumer (replay server, calibration, backtests, benchmarks) reads the
same arrays, so the simulator and the research code see exactly the same path.
Each row is one trade, with the best bid/offer in force at that trade.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from hourmm_core.clock import HOUR_MS

SOURCE_BINANCE = "binance-trades"
SOURCE_SYNTHETIC = "synthetic"
#: ticks generated inside real Binance 1m klines by the seeded bridge (hourmm_core.data.bridge):
#: real OHLC/volume/trade count per minute, modelled path inside the minute
SOURCE_KLINES_BRIDGE = "binance-klines+bridge"


@dataclass(frozen=True)
class TickData:
    """Trades sorted by ``ts_ms`` (ms UTC), with the BBO in force at each trade.

    ``source`` says where the prices came from: ``"binance-trades"`` (real public
    dumps), ``"binance-klines+bridge"`` (real 1m klines, ticks inside each minute from the
    seeded bridge) or ``"synthetic"`` (seeded stand-in, never market data). ``bbo`` says
    how bid/ask were obtained: ``"bookTicker"`` (real quotes, latest at or before
    the trade), ``"derived"`` (from the trade and its aggressor side, see
    :func:`hourmm_core.data.binance_dumps.derive_bbo`), ``"bridge"`` (modelled spread) or
    ``"synthetic"``.
    Derived/unknown BBO quantities are NaN.
    """

    ts_ms: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    is_buyer_maker: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    source: str = SOURCE_BINANCE
    symbol: str = "BTCUSDT"
    bbo: str = "derived"
    trade_id: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        cols = ("price", "qty", "is_buyer_maker", "bid", "ask", "bid_qty", "ask_qty")
        for name in cols:
            if len(getattr(self, name)) != n:
                raise ValueError(f"TickData column {name} has {len(getattr(self, name))} rows, ts_ms has {n}")
        if self.trade_id is not None and len(self.trade_id) != n:
            raise ValueError("TickData trade_id length differs from ts_ms")
        if n > 1 and np.any(np.diff(self.ts_ms) < 0):
            raise ValueError("TickData.ts_ms must be sorted ascending")
        for name in ("ts_ms", "price", "qty", "is_buyer_maker", "bid", "ask", "bid_qty", "ask_qty"):
            arr = getattr(self, name)
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)

    def __len__(self) -> int:
        return int(len(self.ts_ms))

    @property
    def is_synthetic(self) -> bool:
        return self.source == SOURCE_SYNTHETIC

    @property
    def start_ms(self) -> int:
        """Timestamp of the first trade (ValueError when empty)."""
        if len(self) == 0:
            raise ValueError("empty TickData has no start")
        return int(self.ts_ms[0])

    @property
    def end_ms(self) -> int:
        """Timestamp of the last trade (inclusive)."""
        if len(self) == 0:
            raise ValueError("empty TickData has no end")
        return int(self.ts_ms[-1])

    def _take(self, sl: slice | np.ndarray) -> "TickData":
        return TickData(
            ts_ms=self.ts_ms[sl], price=self.price[sl], qty=self.qty[sl],
            is_buyer_maker=self.is_buyer_maker[sl], bid=self.bid[sl], ask=self.ask[sl],
            bid_qty=self.bid_qty[sl], ask_qty=self.ask_qty[sl], source=self.source,
            symbol=self.symbol, bbo=self.bbo,
            trade_id=None if self.trade_id is None else self.trade_id[sl],
        )

    def index_range(self, start_ms: int | None = None, end_ms: int | None = None) -> tuple[int, int]:
        """Row indices [i, j) of trades with start_ms <= ts < end_ms (binary search, no copy)."""
        i = 0 if start_ms is None else int(np.searchsorted(self.ts_ms, start_ms, side="left"))
        j = len(self) if end_ms is None else int(np.searchsorted(self.ts_ms, end_ms, side="left"))
        return i, max(i, j)

    def slice_time(self, start_ms: int | None = None, end_ms: int | None = None) -> "TickData":
        """Trades with start_ms <= ts_ms < end_ms (views, not copies)."""
        i, j = self.index_range(start_ms, end_ms)
        return self._take(slice(i, j))

    def hour(self, hour_start_ms: int) -> "TickData":
        """Trades of the UTC hour starting at ``hour_start_ms``."""
        return self.slice_time(hour_start_ms, hour_start_ms + HOUR_MS)

    def hour_starts(self) -> np.ndarray:
        """Distinct UTC hour starts (ms) that contain at least one trade, ascending."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.unique(self.ts_ms - self.ts_ms % HOUR_MS)

    def iter_hours(self) -> Iterator[tuple[int, "TickData"]]:
        """(hour_start_ms, trades of that hour) for every hour with trades."""
        for h in self.hour_starts():
            yield int(h), self.hour(int(h))

    def last_before(self, ts_ms: int) -> int:
        """Index of the last trade with ts <= ts_ms, or -1."""
        return int(np.searchsorted(self.ts_ms, ts_ms, side="right")) - 1
