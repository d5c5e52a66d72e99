"""Start-up (and market-roll) reconciliation: make local state match the exchange before quoting.

Why: after a crash or restart the exchange may still hold our orders and we may hold
tokens. Quoting blind would double the exposure. Before the first quote:

1. Inventory: replay this market's fills from the journal, then add any of our fills
   in the exchange's trade history the journal missed (each fill de-duplicated by
   (trade id, order id), so nothing is counted twice; later user-WS replays neither).
2. Open orders from the exchange (REST): an order for the current market whose id the
   journal shows we placed (``ack`` event) is adopted and managed; anything else —
   another market, an unknown id, a token that is not this market's — is a *stray*
   and is cancelled.
3. The session phase is recomputed from ``now_ms`` (pure function of time), so a
   restart mid-FLATTEN resumes flattening.

Everything is reported in a :class:`ReconcileReport` and journaled by the trader.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.order_manager import Fill
from hourmm_core.trading.types import BUY, SELL

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    adopted: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    fills_replayed: int = 0
    fills_from_exchange: int = 0
    yes_tokens: float = 0.0
    no_tokens: float = 0.0
    phase: str = ""
    errors: list[str] = field(default_factory=list)
    complete: bool = True   # False: open orders or trades could not be read (the trader must not quote)

    def as_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "adopted": self.adopted, "strays": self.strays,
                "fills_replayed": self.fills_replayed,
                "fills_from_exchange": self.fills_from_exchange,
                "yes_tokens": self.yes_tokens, "no_tokens": self.no_tokens, "phase": self.phase,
                "errors": self.errors}


def _f(o: Mapping[str, Any], *keys: str, default: float = 0.0) -> float:
    for k in keys:
        v = o.get(k)
        if v is not None and v != "":
            try:
                return float(v)
            except (TypeError, ValueError):
                pass
    return default


def replay_fills(core: DecisionCore, fill_payloads: Iterable[Mapping[str, Any]]) -> int:
    """Apply journaled fills (payloads of ``fill`` events) to the order manager."""
    n = 0
    for p in fill_payloads:
        try:
            f = Fill(str(p["trade_id"]), p.get("order_id"), int(p["token"]), int(p["side"]),
                     float(p["price"]), float(p["size"]), int(p.get("ts_ms", 0)), float(p.get("fee", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("Reconcile: skipping malformed journaled fill %r (%s)", p, exc)
            continue
        if core.om.on_fill(f):
            n += 1
    return n


def exchange_fills(core: DecisionCore, market: MarketRef, trades: Iterable[Mapping[str, Any]],
                   api_key: str | None, now_ms: int, report: ReconcileReport) -> list[Fill]:
    """Our fills in the exchange's trade history (``GET /data/trades``) for this market, applied.

    The exchange is the source of truth for inventory: a fill the journal never saw (a
    crash between the fill and the journal write, or a lost journal) is counted here;
    fills already replayed from the journal are skipped by their (trade id, order id).
    Returns the fills that were new.
    """
    from hourmm_core.polymarket.user_ws import UserMsgError, parse_user_message

    own_ids = {o.order_id for o in core.om.orders.values() if o.order_id}
    new: list[Fill] = []
    for t in trades:
        try:
            tu = parse_user_message({**t, "event_type": "trade"}, now_ms)
        except (UserMsgError, TypeError) as exc:
            report.errors.append(f"trade not understood: {exc}"[:200])
            continue
        if tu is None or tu.status == "FAILED" or (tu.market and tu.market != market.condition_id):
            continue
        for f in tu.own_fills(api_key, own_ids):
            tok = market.token_index(f.asset_id)
            if tok is None:
                continue
            fill = Fill(f.trade_id, f.order_id, tok, BUY if f.side == "BUY" else SELL, f.price, f.size, now_ms)
            if core.om.on_fill(fill):
                new.append(fill)
    return new


def classify_orders(core: DecisionCore, market: MarketRef, open_orders: Iterable[Mapping[str, Any]],
                    our_ids: set[str], now_ms: int, report: ReconcileReport) -> list[str]:
    """Adopt our orders of this market; return the ids of strays to cancel."""
    strays: list[str] = []
    for o in open_orders:
        oid = str(o.get("id") or o.get("orderID") or o.get("order_id") or "")
        if not oid:
            report.errors.append(f"open order without id: {o!r}"[:200])
            continue
        tok = market.token_index(str(o.get("asset_id", "")))
        same_market = o.get("market") in (None, "", market.condition_id)
        side_s = str(o.get("side", "")).upper()
        if tok is None or not same_market or oid not in our_ids or side_s not in ("BUY", "SELL"):
            strays.append(oid)
            continue
        size = _f(o, "original_size", "size")
        matched = _f(o, "size_matched")
        core.om.adopt(oid, tok, BUY if side_s == "BUY" else SELL, _f(o, "price"), size, matched, now_ms)
        report.adopted.append(oid)
    report.strays = strays
    return strays
