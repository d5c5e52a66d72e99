"""Start-up (and market-roll) reconciliation: make local state match the exchange before quoting.

Why: after a crash or restart the exchange may still hold our orders and we may hold
tokens. Quoting blind would double the exposure. Before the first quote:

1. Inventory: replay this market's fills from the journal (each fill de-duplicated by
   trade id, so a later user-WS replay of the same trade is not counted twice).
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
    yes_tokens: float = 0.0
    no_tokens: float = 0.0
    phase: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"adopted": self.adopted, "strays": self.strays, "fills_replayed": self.fills_replayed,
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
