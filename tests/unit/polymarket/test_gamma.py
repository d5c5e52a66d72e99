"""Gamma discovery against a tiny real aiohttp server on 127.0.0.1 (real-shaped JSON)."""
import json
from datetime import datetime, timezone

import pytest
from aiohttp import web

from hourmm_core.polymarket.gamma import GammaClient, MarketDiscovery, MarketParseError, parse_market
from hourmm_core.polymarket.slug import market_slug

H = 3_600_000
HS = int(datetime(2026, 1, 22, 12, tzinfo=timezone.utc).timestamp() * 1000)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(hs, *, outcomes='["Up", "Down"]', tokens=None, **mk):
    tokens = tokens if tokens is not None else json.dumps([str(10**70 + hs), str(2 * 10**70 + hs)])
    m = {"id": "1", "question": "Bitcoin Up or Down - January 22, 7AM ET",
         "conditionId": "0x" + format(hs, "x").rjust(64, "0"), "slug": market_slug("bitcoin-up-or-down", hs),
         "startDate": iso(hs - 24 * H), "endDate": iso(hs + H), "eventStartTime": iso(hs),
         "outcomes": outcomes, "clobTokenIds": tokens, "active": True, "closed": False,
         "acceptingOrders": True, "orderPriceMinTickSize": 0.01, "orderMinSize": 5, "negRisk": False}
    m.update(mk)
    return {"id": "9", "slug": m["slug"], "title": m["question"], "endDate": m["endDate"], "markets": [m]}


def test_parse_real_shape():
    info = parse_market(event(HS))
    assert info.slug == "bitcoin-up-or-down-january-22-7am-et"
    assert info.start_ms == HS and info.end_ms == HS + H
    assert info.up_token_id == str(10**70 + HS) and info.down_token_id == str(2 * 10**70 + HS)
    assert info.tick_size == 0.01 and info.min_size == 5.0 and info.accepting_orders and not info.neg_risk
    assert info.token_ids == (info.up_token_id, info.down_token_id)


def test_outcome_order_decides_up_token():
    info = parse_market(event(HS, outcomes='["Down", "Up"]'))
    assert info.up_token_id == str(2 * 10**70 + HS)


def test_start_falls_back_to_end_minus_hour():
    ev = event(HS)
    del ev["markets"][0]["eventStartTime"]
    assert parse_market(ev).start_ms == HS


@pytest.mark.parametrize("patch,needle", [
    ({"outcomes": "[not json"}, "outcomes is not valid JSON"),
    ({"outcomes": '["Yes", "No"]'}, "Up/Down"),
    ({"outcomes": 5}, "outcomes must be"),
    ({"clobTokenIds": '["1"]'}, "expected 2"),
    ({"clobTokenIds": '["1", "abc"]'}, "decimal"),
    ({"clobTokenIds": '["7", "7"]'}, "identical"),
    ({"conditionId": None}, "conditionId"),
    ({"endDate": "tomorrow"}, "endDate"),
    ({"endDate": None}, "endDate"),
    ({"orderPriceMinTickSize": "x"}, "not a number"),
    ({"orderPriceMinTickSize": 0.02}, "tick size"),
    ({"acceptingOrders": "maybe"}, "boolean"),
])
def test_malformed_market_clear_error(patch, needle):
    with pytest.raises(MarketParseError, match=needle):
        parse_market(event(HS, **patch))


def test_malformed_event_shapes():
    with pytest.raises(MarketParseError, match="no markets"):
        parse_market({"slug": "x", "markets": []})
    with pytest.raises(MarketParseError):
        parse_market("x")  # type: ignore[arg-type]


class GammaServer:
    def __init__(self):
        self.events = {}
        self.markets = {}
        self.raw = {}
        self.hits = 0

    async def markets_handler(self, request):
        self.hits += 1
        m = self.markets.get(request.query.get("slug", ""))
        return web.json_response([m] if m else [])

    async def handler(self, request):
        self.hits += 1
        slug = request.query.get("slug", "")
        if slug in self.raw:
            status, body = self.raw[slug]
            return web.Response(status=status, text=body, content_type="application/json")
        ev = self.events.get(slug)
        return web.json_response([ev] if ev else [])

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/events", self.handler)
        app.router.add_get("/markets", self.markets_handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *a):
        await self.runner.cleanup()


@pytest.mark.timeout(30)
async def test_discovery_over_http():
    async with GammaServer() as srv:
        srv.events[market_slug("bitcoin-up-or-down", HS)] = event(HS)
        async with GammaClient(srv.url) as gc:
            info = await gc.discover("bitcoin-up-or-down", HS)
            assert info is not None and info.start_ms == HS
            # next hour not listed yet -> None, counted, not raised
            assert await gc.discover("bitcoin-up-or-down", HS + H) is None
            assert gc.errors["not_found"] == 1
            # malformed JSON body and 500 -> None with reason
            s2 = market_slug("bitcoin-up-or-down", HS + 2 * H)
            srv.raw[s2] = (200, "{oops")
            assert await gc.discover("bitcoin-up-or-down", HS + 2 * H) is None
            assert gc.errors["malformed"] == 1 and "non-JSON" in gc.last_error
            srv.raw[s2] = (500, "[]")
            assert await gc.discover("bitcoin-up-or-down", HS + 2 * H) is None
            assert gc.errors["unreachable"] == 1
            # payload malformed in a field
            srv.raw.pop(s2)
            srv.events[s2] = event(HS + 2 * H, clobTokenIds='["1"]')
            assert await gc.discover("bitcoin-up-or-down", HS + 2 * H) is None
            assert gc.errors["malformed"] == 2 and "expected 2" in gc.last_error


@pytest.mark.timeout(30)
async def test_fall_back_ambiguous_slug_checks_the_hour():
    first = int(datetime(2026, 11, 1, 5, tzinfo=timezone.utc).timestamp() * 1000)
    second = first + H
    assert market_slug("bitcoin-up-or-down", first) == market_slug("bitcoin-up-or-down", second)
    async with GammaServer() as srv:
        srv.events[market_slug("bitcoin-up-or-down", first)] = event(first)
        async with GammaClient(srv.url) as gc:
            assert (await gc.discover("bitcoin-up-or-down", first)).start_ms == first
            assert await gc.discover("bitcoin-up-or-down", second) is None
            assert gc.errors["wrong_hour"] == 1


@pytest.mark.timeout(30)
async def test_market_discovery_prefetches_next_and_rolls():
    async with GammaServer() as srv:
        srv.events[market_slug("bitcoin-up-or-down", HS)] = event(HS)
        async with GammaClient(srv.url) as gc:
            d = MarketDiscovery(gc, "bitcoin-up-or-down")
            cur = await d.refresh(HS + 10_000)
            assert cur.start_ms == HS and d.next is None
            srv.events[market_slug("bitcoin-up-or-down", HS + H)] = event(HS + H)
            hits = srv.hits
            await d.refresh(HS + 20_000)           # missing next retried only every next_retry_ms
            assert d.next is None and srv.hits == hits
            await d.refresh(HS + 26_000)
            assert d.next is not None and d.next.start_ms == HS + H
            hits = srv.hits
            cur = await d.refresh(HS + H + 5)      # roll: next becomes current without a request
            assert cur.start_ms == HS + H
            assert srv.hits == hits + 2            # only the new (unlisted) "next": /events + /markets
            # refresh with nothing missing makes no request at all
            srv.events[market_slug("bitcoin-up-or-down", HS + 2 * H)] = event(HS + 2 * H)
            await d.refresh(HS + H + 6)
            hits = srv.hits
            await d.refresh(HS + H + 7)
            assert srv.hits == hits


@pytest.mark.timeout(30)
async def test_not_yet_accepting_market_is_refetched():
    async with GammaServer() as srv:
        slug = market_slug("bitcoin-up-or-down", HS)
        srv.events[slug] = event(HS, acceptingOrders=False)
        srv.events[market_slug("bitcoin-up-or-down", HS + H)] = event(HS + H)
        async with GammaClient(srv.url) as gc:
            d = MarketDiscovery(gc, "bitcoin-up-or-down", refetch_ms=1000)
            assert not (await d.refresh(HS + 10)).accepting_orders
            srv.events[slug] = event(HS)                       # now open
            assert not (await d.refresh(HS + 500)).accepting_orders   # within refetch_ms: cached
            assert (await d.refresh(HS + 1500)).accepting_orders
            hits = srv.hits
            await d.refresh(HS + 5000)                          # accepting: no more refetches
            assert srv.hits == hits


@pytest.mark.timeout(30)
async def test_markets_endpoint_fallback():
    async with GammaServer() as srv:
        ev = event(HS)
        srv.markets[market_slug("bitcoin-up-or-down", HS)] = ev["markets"][0]   # /events lags
        async with GammaClient(srv.url) as gc:
            info = await gc.discover("bitcoin-up-or-down", HS)
            assert info is not None and info.up_token_id == str(10**70 + HS) and info.start_ms == HS
