"""User channel client (``<PM_WS_URL>/ws/user``): our own orders and fills.

Subscribe frame: ``{"auth": {"apiKey", "secret", "passphrase"}, "markets":
[condition_id], "type": "user"}``. The credentials are sent only in that frame;
they are never logged, and the frame is never echoed anywhere.

Messages are parsed into :class:`OrderUpdate` (``event_type == "order"``:
PLACEMENT / UPDATE / CANCELLATION) and :class:`TradeUpdate` (``event_type ==
"trade"``; the same trade id comes back as MATCHED, MINED, CONFIRMED, or
RETRYING/FAILED). ``TradeUpdate.is_new`` is True only the first time a trade id is
seen, so positions are counted once (and a later FAILED reverses it —
the caller's job). :meth:`TradeUpdate.own_fills` extracts *our* side of a trade,
whether we were the taker or one of the makers.

Losing this channel means we no longer see our fills: the caller (risk engine)
must escalate to HALT and cancel all; the ``on_state`` callback fires on loss.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Iterable, Mapping

from hourmm_core.polymarket.ws_base import WsClientBase

log = logging.getLogger(__name__)


class UserMsgError(ValueError):
    """A user-channel message is missing or has malformed fields."""


def _f(m: Mapping[str, Any], k: str, default: float | None = None) -> float:
    v = m.get(k)
    if v is None or v == "":
        if default is None:
            raise UserMsgError(f"{k} missing")
        return default
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise UserMsgError(f"{k}={v!r} is not a number") from None
    if x != x or x in (float("inf"), float("-inf")) or x < 0:
        raise UserMsgError(f"{k}={v!r} must be finite and >= 0")
    return x


def _s(m: Mapping[str, Any], k: str, required: bool = True) -> str:
    v = m.get(k)
    if isinstance(v, (int,)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or (required and not v):
        if required:
            raise UserMsgError(f"{k} missing")
        return ""
    return v


def _side(m: Mapping[str, Any], k: str = "side") -> str:
    v = str(m.get(k, "")).upper()
    if v not in ("BUY", "SELL"):
        raise UserMsgError(f"{k}={m.get(k)!r} must be BUY or SELL")
    return v


def _ts(m: Mapping[str, Any]) -> int:
    for k in ("timestamp", "last_update", "matchtime", "created_at"):
        v = m.get(k)
        if v not in (None, ""):
            try:
                x = int(float(v))
            except (TypeError, ValueError):
                raise UserMsgError(f"{k}={v!r} is not a timestamp") from None
            return x * 1000 if x < 10_000_000_000 else x
    return 0


@dataclass(frozen=True)
class OrderUpdate:
    order_id: str
    asset_id: str
    market: str
    side: str
    price: float
    original_size: float
    size_matched: float
    type: str            # PLACEMENT | UPDATE | CANCELLATION
    status: str
    ts_ms: int
    recv_ms: int

    @property
    def remaining(self) -> float:
        return max(0.0, self.original_size - self.size_matched)


@dataclass(frozen=True)
class Fill:
    """Our side of a trade."""

    trade_id: str
    order_id: str
    asset_id: str
    side: str
    price: float
    size: float
    liquidity: str       # MAKER | TAKER
    status: str


@dataclass(frozen=True)
class MakerOrder:
    order_id: str
    asset_id: str
    price: float
    matched_amount: float
    owner: str
    side: str            # "" when the server omits it


@dataclass(frozen=True)
class TradeUpdate:
    trade_id: str
    asset_id: str
    market: str
    side: str            # taker side
    price: float
    size: float
    status: str          # MATCHED | MINED | CONFIRMED | RETRYING | FAILED
    taker_order_id: str
    owner: str
    trader_side: str     # MAKER | TAKER | ""
    maker_orders: tuple[MakerOrder, ...]
    ts_ms: int
    recv_ms: int
    is_new: bool

    def own_fills(self, api_key: str | None = None, own_order_ids: Iterable[str] = ()) -> list[Fill]:
        """Our fills in this trade: matched by order id, or by our API key.

        Taker side by API key only when ``trader_side == "TAKER"``: the channel's ``owner``
        can be the *event* owner (us, also when we were a maker), and counting that as a
        taker fill would invent inventory. Maker sides match ``maker_orders[].owner``.
        """
        ids = set(own_order_ids)
        out: list[Fill] = []
        if self.taker_order_id in ids or (api_key and self.owner == api_key and self.trader_side == "TAKER"):
            out.append(Fill(self.trade_id, self.taker_order_id, self.asset_id, self.side, self.price,
                            self.size, "TAKER", self.status))
        for mo in self.maker_orders:
            if mo.order_id in ids or (api_key and mo.owner == api_key):
                side = mo.side or (self.side if mo.asset_id != self.asset_id
                                   else ("SELL" if self.side == "BUY" else "BUY"))
                out.append(Fill(self.trade_id, mo.order_id, mo.asset_id, side, mo.price,
                                mo.matched_amount, "MAKER", self.status))
        return out


def parse_user_message(m: Mapping[str, Any], recv_ms: int, seen: set[str] | None = None
                       ) -> OrderUpdate | TradeUpdate | None:
    """Parse one user-channel object; None for event types we do not use. Raises UserMsgError."""
    if not isinstance(m, Mapping):
        raise UserMsgError("message must be an object")
    et = m.get("event_type")
    if et == "order":
        return OrderUpdate(
            order_id=_s(m, "id"), asset_id=_s(m, "asset_id"), market=_s(m, "market", False),
            side=_side(m), price=_f(m, "price"), original_size=_f(m, "original_size"),
            size_matched=_f(m, "size_matched", 0.0), type=str(m.get("type", "")).upper(),
            status=str(m.get("status", "")).upper(), ts_ms=_ts(m), recv_ms=recv_ms)
    if et == "trade":
        makers = m.get("maker_orders") or []
        if not isinstance(makers, list):
            raise UserMsgError("maker_orders must be a list")
        mos = []
        for mo in makers:
            if not isinstance(mo, Mapping):
                raise UserMsgError("maker_orders entry must be an object")
            mside = str(mo.get("side", "")).upper()
            mos.append(MakerOrder(_s(mo, "order_id"), _s(mo, "asset_id"), _f(mo, "price"),
                                  _f(mo, "matched_amount"), _s(mo, "owner", False),
                                  mside if mside in ("BUY", "SELL") else ""))
        tid = _s(m, "id")
        tu = TradeUpdate(
            trade_id=tid, asset_id=_s(m, "asset_id"), market=_s(m, "market", False), side=_side(m),
            price=_f(m, "price"), size=_f(m, "size"), status=str(m.get("status", "")).upper(),
            taker_order_id=_s(m, "taker_order_id", False), owner=_s(m, "owner", False),
            trader_side=str(m.get("trader_side", "")).upper(), maker_orders=tuple(mos),
            ts_ms=_ts(m), recv_ms=recv_ms, is_new=True)
        if seen is not None:   # only a fully valid message marks the id as seen
            if tid in seen:
                tu = replace(tu, is_new=False)
            seen.add(tid)
        return tu
    return None


def user_ws_url(pm_ws_url: str) -> str:
    u = pm_ws_url.rstrip("/")
    return u if u.endswith("/ws/user") else u + "/ws/user"


class UserWsClient(WsClientBase):
    channel = "user"

    def __init__(self, pm_ws_url: str, api_key: str, api_secret: str, api_passphrase: str,
                 markets: Iterable[str] = (), *,
                 on_event: Callable[[OrderUpdate | TradeUpdate], "Awaitable[None] | None"] | None = None,
                 queue_events: bool = True, **kw: Any) -> None:
        super().__init__(user_ws_url(pm_ws_url), **kw)
        self._auth = {"apiKey": api_key, "secret": api_secret, "passphrase": api_passphrase}
        self.api_key = api_key
        self.markets: tuple[str, ...] = tuple(markets)
        self.on_event = on_event
        self.queue: asyncio.Queue[OrderUpdate | TradeUpdate] | None = asyncio.Queue() if queue_events else None
        self._seen_trades: set[str] = set()

    def __repr__(self) -> str:  # never show the auth block
        return f"UserWsClient(url={self.url!r}, markets={self.markets!r}, connected={self.connected})"

    subscribe_all: bool = False

    def subscribe_frame(self) -> dict | None:
        # No market yet: wait (the trader connects once discovery picked one, so the first
        # connection is the one it reconciles on). ``subscribe_all=True`` instead subscribes
        # with an empty list, which the venue treats as all of this API key's markets.
        if not self.markets and not self.subscribe_all:
            return None
        return {"auth": dict(self._auth), "markets": list(self.markets), "type": "user"}

    async def set_markets(self, markets: Iterable[str]) -> None:
        """Follow a new condition id (hour roll); reconnects with the new subscription."""
        new = tuple(markets)
        if new == self.markets:
            return
        self.markets = new
        if self.connected:
            await self.reconnect("market roll")

    async def on_disconnected(self, reason: str) -> None:
        (log.info if reason.startswith("planned: ") else log.warning)("WS user disconnected (%s)", reason)

    async def handle(self, msg: Any) -> None:
        items = msg if isinstance(msg, list) else [msg]
        now = self.clock.now_ms()
        for m in items:
            try:
                ev = parse_user_message(m, now, self._seen_trades)
            except UserMsgError as exc:
                kind = m.get("event_type") if isinstance(m, dict) else None
                self.count_bad(f"bad_{kind or 'message'}", str(exc))
                continue
            if ev is None:
                continue
            await self.deliver(ev)
        if len(self._seen_trades) > 100_000:   # bounded memory over long runs
            self._seen_trades.clear()
