"""Fill models for backtests: where our resting orders meet simulated counterparties.

The backtest loop (:func:`hourmm_core.research.backtest.run_hour`) talks to a
venue through four calls, all on simulated time (int ms UTC, never the wall
clock):

* ``place(ts_ms, quote) -> order_id | None`` (``None`` = rejected by the venue),
* ``cancel(ts_ms, order_id) -> bool``,
* ``advance(to_ms) -> list[Fill]`` (our fills between the last call and ``to_ms``),
* ``open_orders() -> dict[order_id, Quote]`` (remaining sizes).

Two implementations:

* :class:`EngineVenue` drives the Polymarket simulator's matching engine
  (``hourmm_core.sim.polymarket.engine.Exchange``) in-process, with its
  background agents supplying the other side - the same engine the loopback
  simulator serves over sockets.
* :class:`TakerFlowVenue` is a small self-contained model used when the engine
  is not available and in unit tests of the loop: Poisson taker arrivals whose
  reservation value is the fair value plus noise; a taker buyer lifts our asks
  priced at or below its value, a taker seller hits our bids at or above it.
  Every result produced with it says so (``fill_model`` in the notes).

Both enforce the venue's own rules: prices strictly inside (0, 1) on the tick
grid, post-only (a bid at or above the market's ask is refused), and a SELL
needs free tokens (Polymarket has no naked shorts; sells reserve the balance).
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from hourmm_core.clock import HOUR_MS

from .backtest import BUY, DOWN, SELL, UP, BacktestParams, Fill, Quote

TAKER_FLOW = "taker-flow"


class TakerFlowVenue:
    """Seeded taker flow against our resting orders (see module docstring).

    ``rate_per_s``: taker arrivals per second over both tokens and sides;
    ``noise``: sd of a taker's reservation value around fair (probability units;
    smaller = better-informed takers = more adverse selection);
    ``mean_size``: mean taker size in tokens (exponential);
    ``market_half_spread``: half-width of the rest of the book around fair, used
    for the post-only check.
    """

    name = TAKER_FLOW

    def __init__(self, hour_start_ms: int, grid_ts: np.ndarray, fair_up: np.ndarray, params: BacktestParams,
                 rate_per_s: float = 0.5, noise: float = 0.03, mean_size: float = 10.0,
                 market_half_spread: float = 0.01) -> None:
        if grid_ts.size == 0 or grid_ts.size != fair_up.size:
            raise ValueError("venue needs a non-empty fair-value path with one value per grid time")
        self.hour_start_ms = int(hour_start_ms)
        self.end_ms = self.hour_start_ms + HOUR_MS
        self.grid_ts = np.asarray(grid_ts, dtype=np.int64)
        self.fair_up = np.asarray(fair_up, dtype=np.float64)
        self.tick = float(params.tick_size)
        self.rate = float(rate_per_s)
        self.noise = float(noise)
        self.mean_size = float(mean_size)
        self.mhs = float(market_half_spread)
        self.rng = np.random.default_rng([int(params.seed), self.hour_start_ms // HOUR_MS])
        self.now = self.hour_start_ms
        self.orders: dict[str, list[Any]] = {}  # id -> [quote, remaining, seq]
        self.balance = [0.0, 0.0]
        self._ids = itertools.count(1)
        self.rejects: dict[str, int] = {}

    # ---------------------------------------------------------------- helpers
    def _fair(self, token: int, ts_ms: int) -> float:
        i = int(np.searchsorted(self.grid_ts, ts_ms, side="right")) - 1
        v = float(self.fair_up[max(i, 0)])
        return 1.0 - v if token == DOWN else v

    def _reject(self, why: str) -> None:
        self.rejects[why] = self.rejects.get(why, 0) + 1

    def _reserved_sell(self, token: int) -> float:
        return sum(r for q, r, _ in self.orders.values() if q.token == token and q.side == SELL)

    # ---------------------------------------------------------------- venue API
    def place(self, ts_ms: int, quote: Quote) -> str | None:
        """Accept a post-only limit order or refuse it (counted in ``rejects``)."""
        p, s = float(quote.price), float(quote.size)
        if not (0.0 < p < 1.0) or abs(p / self.tick - round(p / self.tick)) > 1e-6:
            self._reject("bad_price")
            return None
        if not (s > 0.0) or not math.isfinite(s):
            self._reject("bad_size")
            return None
        f = self._fair(quote.token, ts_ms)
        if quote.side == BUY and p >= f + self.mhs - 1e-12:
            self._reject("would_cross")
            return None
        if quote.side == SELL and p <= f - self.mhs + 1e-12:
            self._reject("would_cross")
            return None
        if quote.side == SELL and s > self.balance[quote.token] - self._reserved_sell(quote.token) + 1e-9:
            self._reject("insufficient_balance")
            return None
        oid = f"T{next(self._ids)}"
        self.orders[oid] = [quote, s, int(ts_ms)]
        return oid

    def cancel(self, ts_ms: int, order_id: str) -> bool:
        return self.orders.pop(order_id, None) is not None

    def open_orders(self) -> dict[str, Quote]:
        return {oid: Quote(q.token, q.side, q.price, rem) for oid, (q, rem, _) in self.orders.items()}

    def advance(self, to_ms: int) -> list[Fill]:
        """Takers arriving in (now, to_ms]; returns our (maker) fills in time order."""
        to_ms = min(int(to_ms), self.end_ms)
        fills: list[Fill] = []
        if to_ms <= self.now:
            return fills
        n = int(self.rng.poisson(self.rate * (to_ms - self.now) / 1000.0))
        times = np.sort(self.rng.integers(self.now + 1, to_ms + 1, size=n)) if n else np.zeros(0, np.int64)
        for t in times.tolist():
            token = int(self.rng.integers(0, 2))
            taker_buys = bool(self.rng.integers(0, 2))
            value = self._fair(token, t) + self.noise * float(self.rng.standard_normal())
            left = float(self.rng.exponential(self.mean_size))
            # our orders on the other side, best price first, then time priority
            if taker_buys:
                book = [(q.price, seq, oid) for oid, (q, rem, seq) in self.orders.items()
                        if q.token == token and q.side == SELL and q.price <= value]
                book.sort()
            else:
                book = [(-q.price, seq, oid) for oid, (q, rem, seq) in self.orders.items()
                        if q.token == token and q.side == BUY and q.price >= value]
                book.sort()
            for _, _, oid in book:
                if left <= 1e-9:
                    break
                q, rem, seq = self.orders[oid]
                take = min(rem, left)
                left -= take
                rem -= take
                fills.append(Fill(int(t), q.token, q.side, float(q.price), float(take), 0.0, True))
                self.balance[q.token] += take if q.side == BUY else -take
                if rem <= 1e-9:
                    del self.orders[oid]
                else:
                    self.orders[oid][1] = rem
        self.now = to_ms
        return fills
