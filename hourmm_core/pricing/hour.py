"""Which hour we are pricing and what its open is (the strike of the Up/Down market).

Binance's 1 h candle opens at the first trade of the UTC hour. We may only take
the first trade *we* see as that open if we were connected before the hour
started (otherwise trades may have happened while we were away: a mid-hour
start or a reconnect across the boundary). In that case the open is unknown
until the klines REST call answers; :meth:`HourTracker.needs_klines` says which
hour to fetch. Pure logic, no I/O and no wall clock: times are passed in.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Callable

from hourmm_core.clock import HOUR_MS, hour_start_ms

log = logging.getLogger(__name__)


def iso_hour(ms: int) -> str:
    """2026-01-22T14:00:00Z style (the operator log format)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class HourTracker:
    """Tracks the current UTC hour and its open price; logs ``Hour <iso> open price set: <price>``."""

    def __init__(self, on_open: Callable[[int, float, str], None] | None = None) -> None:
        self.hour_start_ms: int | None = None
        self.open_price: float | None = None
        self.open_source: str | None = None  # "trade" | "klines"
        self.verified = False  # a trade-derived open confirmed against the 1 h kline
        self.corrections = 0
        self.session_start_ms: int | None = None
        self._on_open = on_open
        self.rolls = 0

    @property
    def hour_end_ms(self) -> int | None:
        return None if self.hour_start_ms is None else self.hour_start_ms + HOUR_MS

    def on_connect(self, now_ms: int) -> None:
        """A (re)connection: trades before ``now_ms`` may have been missed."""
        self.session_start_ms = now_ms

    def on_disconnect(self) -> None:
        self.session_start_ms = None

    def advance(self, now_ms: int) -> bool:
        """Roll to the hour containing ``now_ms`` if it is later; True when it rolled."""
        h = hour_start_ms(now_ms)
        if self.hour_start_ms is None or h > self.hour_start_ms:
            if self.hour_start_ms is not None:
                self.rolls += 1
                log.info("Hour %s ended; now pricing hour %s", iso_hour(self.hour_start_ms), iso_hour(h))
            self.hour_start_ms = h
            self.open_price = None
            self.open_source = None
            self.verified = False
            return True
        return False

    def on_trade(self, trade_ms: int, price: float) -> None:
        """Feed each trade in stream order; sets the open from the hour's first trade when trustworthy."""
        self.advance(trade_ms)
        if trade_ms < (self.hour_start_ms or 0):  # a late frame of an hour already closed
            return
        if self.open_price is None and self._first_trade_trusted():
            self._set_open(price, "trade")

    def _first_trade_trusted(self) -> bool:
        return self.session_start_ms is not None and self.hour_start_ms is not None \
            and self.session_start_ms <= self.hour_start_ms

    def needs_klines(self) -> int | None:
        """Hour start to fetch from /api/v3/klines, or None when the open is known / will come from a trade."""
        if self.hour_start_ms is None or self.open_price is not None or self._first_trade_trusted():
            return None
        return self.hour_start_ms

    def set_open_from_klines(self, hour_start: int, open_price: float) -> bool:
        """Apply a klines answer; ignored if the hour has moved on or the open is already set."""
        if hour_start != self.hour_start_ms or self.open_price is not None:
            return False
        if not (math.isfinite(open_price) and open_price > 0):
            log.warning("Ignoring klines open %r for hour %s", open_price, iso_hour(hour_start))
            return False
        self._set_open(open_price, "klines")
        return True

    def needs_verify(self) -> int | None:
        """Hour whose trade-derived open should be checked once against /api/v3/klines.

        Cheap insurance: a frame silently lost at the boundary would otherwise put the
        wrong strike under the whole hour.
        """
        if self.open_source == "trade" and not self.verified:
            return self.hour_start_ms
        return None

    def verify_from_klines(self, hour_start: int, open_price: float) -> bool:
        """Confirm (or correct, with a WARNING) the open taken from the first trade we saw."""
        if hour_start != self.hour_start_ms or self.open_source != "trade" or self.verified:
            return False
        self.verified = True
        if not (math.isfinite(open_price) and open_price > 0):
            return False
        if abs(open_price - (self.open_price or 0.0)) > 1e-9 * open_price:
            self.corrections += 1
            log.warning("Hour %s open price corrected from klines: %s -> %s (a frame was missed at the "
                        "boundary)", iso_hour(hour_start), self.open_price, float(open_price))
            self._set_open(open_price, "klines")
            self.verified = True
        return True

    def _set_open(self, price: float, source: str) -> None:
        self.open_price = float(price)
        self.open_source = source
        log.info("Hour %s open price set: %s", iso_hour(self.hour_start_ms), float(price))  # type: ignore[arg-type]
        if self._on_open is not None:
            self._on_open(self.hour_start_ms, self.open_price, source)  # type: ignore[arg-type]
