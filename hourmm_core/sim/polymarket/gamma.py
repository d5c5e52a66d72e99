"""Hourly market catalog of the simulator and its Gamma API representation (pure, no I/O).

Why a module: the Gamma surface is what the trader's discovery parses
(:func:`hourmm_core.polymarket.gamma.parse_market`), so its shape lives in one place:
events ``{id, slug, title, startDate, endDate, startTime, closed, active, negRisk,
markets: [...]}`` and markets ``{conditionId, question, slug, clobTokenIds (JSON
string), outcomes (JSON string '["Up", "Down"]'), outcomePrices (JSON string),
startDate, endDate, eventStartTime, acceptingOrders, closed, active,
orderPriceMinTickSize, orderMinSize, negRisk, enableOrderBook, feeType,
feeSchedule {rate, exponent, takerOnly, rebateRate}}`` like the real API.
Ids are derived from (seed, hour) so a run is reproducible; token ids are 256-bit
decimal strings like Polymarket's.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hourmm_core.clock import HOUR_MS
from hourmm_core.polymarket.slug import ET, market_slug
from hourmm_core.sim.polymarket.engine import Market, _fmt


def iso(ms: int) -> str:
    """ms UTC -> ``YYYY-MM-DDTHH:MM:SSZ`` (Gamma's date format)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class HourMarket:
    """Static metadata of one hourly market (the engine holds its trading state)."""

    hour_ms: int
    slug: str
    condition_id: str
    up_token: str
    down_token: str
    event_id: str
    market_id: str
    title: str


def make_hour(seed: int, hour_ms: int, base_slug: str = "bitcoin-up-or-down") -> HourMarket:
    """Catalog entry for the market of the hour starting at ``hour_ms`` (ET slug and title)."""
    hx = lambda tag: hashlib.sha256(f"hourmm-sim:{seed}:{hour_ms}:{tag}".encode()).hexdigest()  # noqa: E731
    local = datetime.fromtimestamp(hour_ms / 1000, tz=timezone.utc).astimezone(ET)
    h12 = local.hour % 12 or 12
    title = f"Bitcoin Up or Down - {local.strftime('%B')} {local.day}, {h12}{'PM' if local.hour >= 12 else 'AM'} ET"
    return HourMarket(
        hour_ms=hour_ms, slug=market_slug(base_slug, hour_ms), condition_id="0x" + hx("condition"),
        up_token=str(int(hx("up"), 16)), down_token=str(int(hx("down"), 16)),
        event_id=str(100000 + (hour_ms // HOUR_MS) % 900000), market_id=str(500000 + (hour_ms // HOUR_MS) % 900000),
        title=title)


def market_json(hm: HourMarket, m: Market, resolution: dict[str, Any] | None, list_ahead_ms: int, now_ms: int,
                up_best: tuple[float | None, float | None]) -> dict[str, Any]:
    """One Gamma market object; ``outcomePrices`` = book mid before resolution, 1/0 after."""
    resolved = bool(resolution and resolution.get("resolved"))
    if resolved:
        prices = ["1", "0"] if resolution["up_wins"] else ["0", "1"]  # type: ignore[index]
    else:
        b, a = up_best
        mid = (b + a) / 2 if b is not None and a is not None else 0.5
        prices = [_fmt(round(mid, 4)), _fmt(round(1 - mid, 4))]
    return {
        "id": hm.market_id, "question": hm.title, "conditionId": hm.condition_id, "slug": hm.slug,
        "startDate": iso(hm.hour_ms - list_ahead_ms), "endDate": iso(hm.hour_ms + HOUR_MS),
        "eventStartTime": iso(hm.hour_ms),
        "outcomes": json.dumps(["Up", "Down"]), "outcomePrices": json.dumps(prices),
        "clobTokenIds": json.dumps([hm.up_token, hm.down_token]),
        "active": True, "closed": m.closed, "acceptingOrders": m.accepting and not m.closed and now_ms < m.end_ms,
        "enableOrderBook": True, "orderPriceMinTickSize": m.tick_size, "orderMinSize": m.min_size,
        "negRisk": m.neg_risk, "umaResolutionStatus": "resolved" if resolved else None,
        "feeType": "crypto_fees_v2" if m.fee.enabled else None, "feeSchedule": m.fee.as_gamma(),
    }


def event_json(hm: HourMarket, m: Market, market: dict[str, Any], list_ahead_ms: int) -> dict[str, Any]:
    """The Gamma event wrapping ``market`` (one market per hourly event)."""
    return {"id": hm.event_id, "slug": hm.slug, "title": hm.title, "ticker": hm.slug,
            "startDate": iso(hm.hour_ms - list_ahead_ms), "endDate": iso(hm.hour_ms + HOUR_MS),
            "startTime": iso(hm.hour_ms), "active": True, "closed": m.closed, "negRisk": m.neg_risk,
            "markets": [market]}
