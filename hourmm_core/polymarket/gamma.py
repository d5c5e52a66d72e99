"""Gamma API market discovery (public REST, aiohttp) -> frozen :class:`MarketInfo`.

``GET {GAMMA_URL}/events?slug=<slug>`` returns a JSON list of events; the hourly
"Bitcoin Up or Down" event has one market whose ``outcomes`` and ``clobTokenIds``
are JSON *strings* (``"[\\"Up\\", \\"Down\\"]"``). Both are validated: the Up token
is the one at the index of outcome "Up" (never assumed to be index 0).

Failure policy: a missing market (empty list, 404), a network error, a 5xx or a
malformed payload all make :meth:`GammaClient.discover` return ``None`` with a
counted, logged reason (``last_error``): the trader retries on its next tick and
never trades a market it could not fully validate. :func:`parse_market` itself raises
:class:`MarketParseError` naming the bad field, so tests and tools see exactly why.

Times: ``end_ms`` is the market's ``endDate`` (the hour end). ``start_ms`` is
``eventStartTime``/``startTime`` when present, else ``end_ms - 1h`` — Gamma's
``startDate`` is the *listing* time (often a day early) and is not used. Discovery
checks ``start_ms == hour_start_ms`` so the ambiguous fall-back "1am" slug (see
:mod:`hourmm_core.polymarket.slug`) never resolves to the wrong hour.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

import aiohttp

from hourmm_core import safe_json
from hourmm_core.fees import NO_FEES, FeeError, FeeSchedule
from hourmm_core.polymarket.slug import HOUR_MS, market_slug

log = logging.getLogger(__name__)


class MarketParseError(ValueError):
    """A Gamma payload is malformed; the message names the field."""


@dataclass(frozen=True)
class MarketInfo:
    """Everything the trader needs about one hourly market (immutable once discovered)."""

    slug: str
    question: str
    condition_id: str
    up_token_id: str
    down_token_id: str
    start_ms: int
    end_ms: int
    tick_size: float
    min_size: float
    neg_risk: bool
    accepting_orders: bool
    closed: bool
    fee: FeeSchedule = NO_FEES       # the market's fee schedule (Gamma ``feeSchedule``; none = fee-free)

    @property
    def token_ids(self) -> tuple[str, str]:
        """(Up, Down) — the order the quant core's token index 0/1 uses."""
        return (self.up_token_id, self.down_token_id)


def _json_list(raw: Any, field: str) -> list:
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str):
        raise MarketParseError(f"{field} must be a JSON string list, got {type(raw).__name__}")
    try:
        val = safe_json.loads(raw, max_bytes=1 << 16, what=field)
    except ValueError:
        raise MarketParseError(f"{field} is not valid JSON: {raw[:80]!r}") from None
    if not isinstance(val, list):
        raise MarketParseError(f"{field} must decode to a list")
    return val


def parse_iso_ms(raw: Any, field: str) -> int:
    """ISO-8601 (``2026-01-22T13:00:00Z``) or epoch ms/s -> ms UTC."""
    if isinstance(raw, bool) or raw is None or raw == "":
        raise MarketParseError(f"{field} is missing")
    if isinstance(raw, (int, float)):
        v = int(raw)
        return v * 1000 if v < 10_000_000_000 else v
    if not isinstance(raw, str):
        raise MarketParseError(f"{field} must be an ISO timestamp")
    s = raw.strip().replace("Z", "+00:00")
    if " " in s and "T" not in s:
        s = s.replace(" ", "T", 1)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise MarketParseError(f"{field}={raw!r} is not an ISO timestamp") from None
    if dt.tzinfo is None:
        raise MarketParseError(f"{field}={raw!r} has no timezone")
    return int(round(dt.timestamp() * 1000))


def _float(m: Mapping[str, Any], names: tuple[str, ...], default: float | None, field: str) -> float:
    for n in names:
        if n in m and m[n] not in (None, ""):
            try:
                v = float(m[n])
            except (TypeError, ValueError):
                raise MarketParseError(f"{n}={m[n]!r} is not a number") from None
            if not (v > 0):
                raise MarketParseError(f"{n}={m[n]!r} must be > 0")
            return v
    if default is None:
        raise MarketParseError(f"{field} is missing")
    return default


def _bool(m: Mapping[str, Any], name: str, default: bool) -> bool:
    v = m.get(name, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if v is None:
        return default
    raise MarketParseError(f"{name}={v!r} is not a boolean")


def parse_market(event: Mapping[str, Any], slug: str | None = None) -> MarketInfo:
    """Validate one Gamma event (with its ``markets``) or a bare market object."""
    if not isinstance(event, Mapping):
        raise MarketParseError("event must be a JSON object")
    if "markets" in event:
        mkts = event["markets"]
        if not isinstance(mkts, list) or not mkts:
            raise MarketParseError("event has no markets")
        if not isinstance(mkts[0], Mapping):
            raise MarketParseError("markets[0] must be an object")
        m: Mapping[str, Any] = mkts[0]
    else:
        m = event
    cid = m.get("conditionId", m.get("condition_id"))
    if not isinstance(cid, str) or not cid.startswith("0x") or len(cid) < 4:
        raise MarketParseError(f"conditionId={cid!r} must be a 0x-prefixed hex string")
    outcomes = _json_list(m.get("outcomes"), "outcomes")
    tokens = _json_list(m.get("clobTokenIds"), "clobTokenIds")
    if len(outcomes) != 2 or len(tokens) != 2:
        raise MarketParseError(f"expected 2 outcomes and 2 clobTokenIds, got {len(outcomes)} and {len(tokens)}")
    names = [str(o).strip().lower() for o in outcomes]
    if sorted(names) != ["down", "up"]:
        raise MarketParseError(f"outcomes must be Up/Down, got {outcomes!r}")
    for t in tokens:
        if not isinstance(t, str) or not t.isdigit():
            raise MarketParseError(f"clobTokenIds entry {t!r} must be a decimal string")
    if tokens[0] == tokens[1]:
        raise MarketParseError("clobTokenIds are identical")
    up = tokens[names.index("up")]
    down = tokens[names.index("down")]
    end_raw = m.get("endDate", m.get("end_date_iso", event.get("endDate")))
    end_ms = parse_iso_ms(end_raw, "endDate")
    start_raw = m.get("eventStartTime", event.get("eventStartTime", event.get("startTime")))
    start_ms = parse_iso_ms(start_raw, "eventStartTime") if start_raw not in (None, "") else end_ms - HOUR_MS
    if end_ms <= start_ms:
        raise MarketParseError(f"endDate {end_raw!r} is not after the start")
    tick = _float(m, ("orderPriceMinTickSize", "minimum_tick_size"), 0.01, "orderPriceMinTickSize")
    if tick not in (0.1, 0.01, 0.001, 0.0001):
        raise MarketParseError(f"orderPriceMinTickSize={tick} is not a Polymarket tick size")
    min_size = _float(m, ("orderMinSize", "minimum_order_size"), 5.0, "orderMinSize")
    s = slug or event.get("slug") or m.get("slug")
    if not isinstance(s, str) or not s:
        raise MarketParseError("slug is missing")
    try:
        fee = FeeSchedule.from_market(m)
    except FeeError as exc:
        raise MarketParseError(f"feeSchedule: {exc}") from None
    return MarketInfo(
        slug=s,
        question=str(m.get("question", event.get("title", ""))),
        condition_id=cid,
        up_token_id=up,
        down_token_id=down,
        start_ms=start_ms,
        end_ms=end_ms,
        tick_size=tick,
        min_size=min_size,
        neg_risk=_bool(m, "negRisk", _bool(event, "negRisk", False)),
        accepting_orders=_bool(m, "acceptingOrders", False),
        closed=_bool(m, "closed", False),
        fee=fee,
    )


class GammaClient:
    """Async Gamma client. Owns an aiohttp session unless one is given."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None,
                 timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None

    async def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> "GammaClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _fail(self, kind: str, msg: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.last_error = msg
        # once per kind at WARNING, then DEBUG: a retry loop must not flood the log
        (log.warning if self.errors[kind] == 1 else log.debug)("Gamma %s: %s", kind, msg)

    async def fetch_event(self, slug: str) -> dict | None:
        """Raw event JSON for ``slug``; None when absent. Raises aiohttp/asyncio errors and
        MarketParseError for a non-JSON or wrongly shaped body.

        Falls back to ``GET /markets?slug=`` (hourly events and their single market share the
        slug) when ``/events`` has nothing, so one lagging Gamma index does not cost an hour.
        """
        ev = await self._get_first("/events", slug)
        if ev is None:
            ev = await self._get_first("/markets", slug)
        return ev

    async def _get_first(self, path: str, slug: str) -> dict | None:
        sess = await self._sess()
        async with sess.get(f"{self.base_url}{path}", params={"slug": slug}, timeout=self.timeout) as r:
            if r.status == 404:
                return None
            if r.status >= 400:
                raise aiohttp.ClientResponseError(r.request_info, r.history, status=r.status,
                                                  message=f"HTTP {r.status}")
            try:
                data = safe_json.loads(await r.read(), what="Gamma reply")
            except ValueError:
                raise MarketParseError("Gamma returned a non-JSON body") from None
        if isinstance(data, list):
            if not data:
                return None
            data = data[0]
        if not isinstance(data, dict):
            raise MarketParseError(f"Gamma {path} must return a list of objects")
        return data

    async def market_by_slug(self, slug: str, hour_start_ms: int | None = None) -> MarketInfo | None:
        """Fetch and validate; None (with ``last_error``) on any failure."""
        try:
            ev = await self.fetch_event(slug)
        except MarketParseError as exc:
            self._fail("malformed", f"{slug}: {exc}")
            return None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self._fail("unreachable", f"{slug}: {type(exc).__name__}: {exc}")
            return None
        if ev is None:
            self._fail("not_found", f"{slug}: not listed (yet)")
            return None
        try:
            info = parse_market(ev, slug)
        except MarketParseError as exc:
            self._fail("malformed", f"{slug}: {exc}")
            return None
        if hour_start_ms is not None and info.start_ms != hour_start_ms:
            self._fail("wrong_hour", f"{slug}: market starts at {info.start_ms}, expected {hour_start_ms}")
            return None
        return info

    async def discover(self, base: str, hour_start_ms: int) -> MarketInfo | None:
        """The market of the hour starting at ``hour_start_ms`` (None: retry later)."""
        return await self.market_by_slug(market_slug(base, hour_start_ms), hour_start_ms)


class MarketDiscovery:
    """Tracks the current hour's market and pre-discovers the next one.

    ``await refresh(now_ms)`` is cheap when nothing is missing; call it every few
    seconds. On the roll, the pre-discovered next market becomes current without a
    request, so the new hour's quoting is not delayed by Gamma latency.
    """

    def __init__(self, client: GammaClient, base: str, refetch_ms: int = 5_000,
                 next_retry_ms: int = 15_000) -> None:
        self.client = client
        self.base = base
        self.refetch_ms = refetch_ms
        self.next_retry_ms = next_retry_ms
        self._next_tried_ms: int | None = None
        self.current: MarketInfo | None = None
        self.next: MarketInfo | None = None
        self._cur_fetched_ms = 0

    async def refresh(self, now_ms: int) -> MarketInfo | None:
        """Current hour's market (None: not found yet, retry on the next call).

        A current market that is listed but not yet ``accepting_orders`` is re-fetched every
        ``refetch_ms`` so the flag cannot stay stale for the whole hour; a failed re-fetch
        keeps the last good info.
        """
        hs = now_ms - now_ms % HOUR_MS
        if self.current is not None and self.current.start_ms != hs:
            self.current = None
        if self.current is None and self.next is not None and self.next.start_ms == hs:
            self.current, self.next = self.next, None
            self._cur_fetched_ms = now_ms
        if self.next is not None and self.next.start_ms != hs + HOUR_MS:
            self.next = None
        if self.current is None:
            self.current = await self.client.discover(self.base, hs)
            self._cur_fetched_ms = now_ms
        elif (not self.current.accepting_orders and not self.current.closed
              and now_ms - self._cur_fetched_ms >= self.refetch_ms):
            self._cur_fetched_ms = now_ms
            fresh = await self.client.discover(self.base, hs)
            if fresh is not None:
                self.current = fresh
        if self.next is None and (self._next_tried_ms is None or now_ms - self._next_tried_ms >= self.next_retry_ms
                                  or now_ms < self._next_tried_ms):
            # the next hour is not urgent: a missing one is retried every next_retry_ms, not every call
            self._next_tried_ms = now_ms
            self.next = await self.client.discover(self.base, hs + HOUR_MS)
        if self.next is not None:
            self._next_tried_ms = None
        return self.current
