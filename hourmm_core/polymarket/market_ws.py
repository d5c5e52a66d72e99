"""Market channel client (``<PM_WS_URL>/ws/market``): keeps the local books of the current tokens.

Subscribe frame: ``{"assets_ids": [up, down], "type": "market"}``. The server
answers with ``book`` snapshots (one object or a list of them), then
``price_change`` / ``tick_size_change`` / ``last_trade_price`` events. Every
(re)connect invalidates all books first, so nothing is quoted against a book that
may have missed deltas while the socket was down; the fresh snapshots heal them.

Consumers either pass ``on_event`` (called in the reader task — keep it fast) or
read :class:`MarketEvent` items from ``queue``.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from hourmm_core.polymarket.orderbook import BookError, BookSet
from hourmm_core.polymarket.ws_base import WsClientBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketEvent:
    """Something changed in the market channel.

    kind: ``book`` | ``price_change`` | ``tick_size_change`` | ``last_trade_price`` |
    ``resync`` (books invalidated: reconnect or roll) | other server event types.
    """

    kind: str
    asset_ids: tuple[str, ...]
    recv_ms: int
    raw: Any = None


def market_ws_url(pm_ws_url: str) -> str:
    """``wss://host`` -> ``wss://host/ws/market`` (idempotent)."""
    u = pm_ws_url.rstrip("/")
    return u if u.endswith("/ws/market") else u + "/ws/market"


class MarketWsClient(WsClientBase):
    channel = "market"

    def __init__(self, pm_ws_url: str, token_ids: Iterable[str] = (), *, tick_size: float = 0.01,
                 on_event: Callable[[MarketEvent], "Awaitable[None] | None"] | None = None,
                 queue_events: bool = True, **kw: Any) -> None:
        super().__init__(market_ws_url(pm_ws_url), **kw)
        self.token_ids: tuple[str, ...] = tuple(token_ids)
        self.books = BookSet(self.token_ids, tick_size)
        self.on_event = on_event
        self.queue: asyncio.Queue[MarketEvent] | None = asyncio.Queue() if queue_events else None
        self._resync_after = 0.0
        self.book_resyncs = 0

    def subscribe_frame(self) -> dict | None:
        if not self.token_ids:
            return None
        return {"assets_ids": list(self.token_ids), "type": "market"}

    @property
    def healthy(self) -> bool:
        """Connected and every tracked book has a fresh snapshot."""
        return self.connected and self.books.all_valid

    async def set_tokens(self, token_ids: Iterable[str], tick_size: float = 0.01) -> None:
        """Switch to a new market's tokens (hour roll): new books, immediate resubscribe."""
        new = tuple(token_ids)
        if new == self.token_ids:
            return
        self.token_ids = new
        self.books.reset(new, tick_size)
        await self.deliver(MarketEvent("resync", new, self.clock.now_ms(), "roll"))
        if self.connected:
            await self.reconnect("market roll")

    async def on_connected(self) -> None:
        self.books.invalidate_all("reconnect")
        await self.deliver(MarketEvent("resync", self.token_ids, self.clock.now_ms(), "connected"))

    async def on_disconnected(self, reason: str) -> None:
        self.books.invalidate_all(f"disconnected: {reason}")
        (log.info if reason.startswith("planned: ") else log.warning)("WS market disconnected (%s)", reason)
        await self.deliver(MarketEvent("resync", self.token_ids, self.clock.now_ms(), reason))

    async def handle(self, msg: Any) -> None:
        items = msg if isinstance(msg, list) else [msg]
        now = self.clock.now_ms()
        was_valid = {t for t, b in self.books.books.items() if b.valid}
        try:
            await self._handle_items(items, now)
        finally:
            # a book that was good and is not any more (tick_size_change, hash mismatch, crossed
            # delta) stays dropped until a fresh snapshot: resubscribe to get one
            lost = [t for t in was_valid if t in self.books.books and not self.books.books[t].valid]
            if lost and self.connected:
                t = asyncio.get_running_loop().time()
                if t >= self._resync_after:
                    self._resync_after = t + 1.0
                    self.book_resyncs += 1
                    reason = self.books.books[lost[0]].resync_reason or "book invalid"
                    log.info("Market WS: book dropped (%s); resubscribing for a fresh snapshot", reason)
                    await self.reconnect(f"book resync: {reason}")

    async def _handle_items(self, items: list, now: int) -> None:
        for m in items:
            if not isinstance(m, dict):
                self.count_bad("not_object", repr(m))
                continue
            kind = m.get("event_type")
            if not isinstance(kind, str):
                self.count_bad("no_event_type", repr(m)[:200])
                continue
            try:
                changed = self.books.apply(m)
            except BookError as exc:
                self.count_bad(f"bad_{kind}", str(exc))
                continue
            ids = tuple(changed) if changed else ((m["asset_id"],) if isinstance(m.get("asset_id"), str) else ())
            await self.deliver(MarketEvent(kind, ids, now, m))

