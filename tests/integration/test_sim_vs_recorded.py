"""The simulators speak the venues' wire format: every payload kind recorded in tests/fixtures (the
venue's shape, see its README) is produced by the simulator with the same keys and JSON types.

A difference fails the test unless it is listed in KNOWN with a reason. The list must match exactly:
a simulator that starts sending a listed key (or stops sending one) fails too, so the list stays
true. Payload shapes only: the simulators run on synthetic ticks here (prices do not matter for a
shape); the recorded payloads carry the real values.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
import websockets
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import OrderArgsV2
from py_clob_client_v2.exceptions import PolyApiException

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.sim.binance_replay import BinanceReplayServer
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
from tests.conftest import sim_clob_client as _client
from tests.conftest import sim_fault

pytestmark = pytest.mark.timeout(240)

HOUR0 = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts
TICKS = synthetic_ticks(start_ms=HOUR0 - HOUR_MS, hours=3, seed=21)

# (fixture, difference) -> why it is accepted. Differences read "<path>: <what>".
_GAMMA_STATS = ("acceptingOrdersTimestamp", "bestAsk", "bestBid", "closedTime", "lastTradePrice", "liquidityClob",
                "makerBaseFee", "oneHourPriceChange", "rewardsMaxSpread", "rewardsMinSize", "spread", "takerBaseFee",
                "volumeClob")
_WHY_GAMMA = ("market statistics, rewards and legacy base fees the simulator does not compute; neither "
              "gamma.parse_market nor FeeSchedule.from_market reads them")
_WHY_WS_BOOK = ("the sim's WS book reuses its REST /book body (min_order_size, tick_size, neg_risk, "
                "last_trade_price); the venue's WS book has only market/asset_id/bids/asks/timestamp/hash; "
                "BookSet ignores the extra keys")
KNOWN: dict[tuple[str, str], str] = {
    **{("polymarket/gamma_events.json", f"[].markets[].{k}: missing in the sim"): _WHY_GAMMA for k in _GAMMA_STATS},
    **{("polymarket/gamma_markets.json", f"[].{k}: missing in the sim"): _WHY_GAMMA for k in _GAMMA_STATS},
    **{("polymarket/ws_market_book.json", f".{k}: sent by the sim only"): _WHY_WS_BOOK
       for k in ("last_trade_price", "min_order_size", "neg_risk", "tick_size")},
    ("polymarket/ws_user_trade.json", ".matchtime: sent by the sim only"):
        "the docs spell it both ways (market-data/websocket/user-channel.md: matchtime; api-reference/wss/user: "
        "match_time); the sim sends both; user_ws takes the time from timestamp (then last_update, matchtime)",
    ("polymarket/ws_user_trade.json", ".taker_fee: sent by the sim only"):
        "the fee the sim charged the taker, for the sim's reports; not a venue field, the trader does not read it",
    ("polymarket/http_trades.json", "data[].taker_fee: sent by the sim only"): "as in the user-channel trade",
    ("polymarket/http_trades.json", "data[].type: sent by the sim only"):
        "the sim's trade history rows carry the channel's type TRADE; reconcile ignores it",
}


def jtype(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


# objects keyed by ids (order id -> reason): only their values' types are compared
MAPS = {".not_canceled"}


def shape_diff(venue: Any, sim: Any, path: str = "") -> set[str]:
    """Differences in keys and JSON types (null matches anything: both sides may leave a field empty)."""
    if venue is None or sim is None:
        return set()
    tv, ts = jtype(venue), jtype(sim)
    if tv != ts:
        return {f"{path or '.'}: venue {tv}, sim {ts}"}
    out: set[str] = set()
    if tv == "object" and path in MAPS:
        if venue and sim:
            for v in sim.values():
                out |= shape_diff(next(iter(venue.values())), v, f"{path}{{}}")
    elif tv == "object":
        for k in venue:
            if k not in sim:
                out.add(f"{path}.{k}: missing in the sim")
            else:
                out |= shape_diff(venue[k], sim[k], f"{path}.{k}")
        out |= {f"{path}.{k}: sent by the sim only" for k in sim if k not in venue}
    elif tv == "array" and venue and sim:
        if all(isinstance(x, (dict, list)) for x in venue):      # a list of records: each like the first
            for x in sim:
                out |= shape_diff(venue[0], x, f"{path}[]")
        elif len(venue) != len(sim):                              # a positional row (klines)
            out.add(f"{path}: venue row of {len(venue)}, sim row of {len(sim)}")
        else:
            for i, (a, b) in enumerate(zip(venue, sim)):
                out |= shape_diff(a, b, f"{path}[{i}]")
    return out


class Checker:
    """Collects the shape differences of every payload, then compares them with KNOWN in one report."""

    def __init__(self, recorded) -> None:
        self.recorded = recorded
        self.seen: dict[str, set[str]] = {}

    def __call__(self, name: str, sim_payload: Any) -> None:
        self.seen[name] = shape_diff(self.recorded(name), sim_payload)

    def row(self, name: str, sim_row: Any) -> None:
        """One row of a paged list (``{"data": [...], "next_cursor", ...}``) against the recorded page's first."""
        self.seen[name] = shape_diff(self.recorded(name)["data"][0], sim_row, "data[]")

    def verify(self, prefix: str) -> None:
        got = {(n, d) for n, ds in self.seen.items() for d in ds}
        known = {k for k in KNOWN if k[0] in self.seen}
        assert {k[0] for k in KNOWN if k[0].startswith(prefix)} <= set(self.seen), "a listed payload was not checked"
        new, gone = sorted(got - known), sorted(known - got)
        assert not new and not gone, ("the simulator drifted from the venue:\n  " + "\n  ".join(map(str, new))
                                      + "\nlisted in KNOWN but no longer different (remove):\n  "
                                      + "\n  ".join(map(str, gone)))


def test_shape_diff_catches_keys_and_types():
    venue = {"a": "1", "b": [{"p": "0.5"}], "c": None, "row": [1, "2"]}
    assert shape_diff(venue, {"a": "1", "b": [{"p": "0.5"}], "c": 3, "row": [5, "x"]}) == set()
    assert shape_diff(venue, {"a": 1, "b": [{"p": "0.5", "q": 1}], "row": [5, "x", 0]}) == {
        ".a: venue string, sim number", ".b[].q: sent by the sim only", ".c: missing in the sim",
        ".row: venue row of 2, sim row of 3"}
    assert shape_diff({"not_canceled": {"0x1": "why"}}, {"not_canceled": {"0x2": "because"}}) == set()
    assert shape_diff({"not_canceled": {"0x1": "why"}}, {"not_canceled": {"0x2": 3}}) == {
        ".not_canceled{}: venue string, sim number"}


async def _collect(ws: Any, into: list[dict]) -> None:
    async for raw in ws:
        if raw in ("PONG", "pong"):
            continue
        msg = json.loads(raw)
        into.extend(m for m in (msg if isinstance(msg, list) else [msg]) if isinstance(m, dict))


async def _first(msgs: list[dict], pred, what: str, timeout: float = 20.0) -> dict:
    end = asyncio.get_running_loop().time() + timeout
    while True:
        for m in msgs:
            if pred(m):
                return m
        assert asyncio.get_running_loop().time() < end, f"the simulator never sent {what}: {msgs[-5:]}"
        await asyncio.sleep(0.05)


async def test_polymarket_sim_payloads_match_the_recorded_venue(recorded):
    check = Checker(recorded)
    cfg = SimConfig(start_ms=HOUR0 + 60_000, hours=1, seed=9, agents=False)
    sim = PolymarketSim(cfg, ticks=TICKS, clock=ScaledClock(1.0, HOUR0 + 60_000, time.time_ns() // 1_000_000))
    await sim.start()
    tasks: list[asyncio.Task] = []
    try:
        u, hm = sim.urls, sim.hours[0]
        up, down, cid = hm.up_token, hm.down_token, hm.condition_id
        async with aiohttp.ClientSession() as s:
            for path, name in (("/events", "polymarket/gamma_events.json"), ("/markets", "polymarket/gamma_markets.json")):
                async with s.get(u["gamma"] + path, params={"slug": hm.slug}) as r:
                    assert r.status == 200
                    check(name, await r.json())

        market_msgs: list[dict] = []
        user_msgs: list[dict] = []
        mws = await websockets.connect(u["ws"] + "/ws/market")
        await mws.send(json.dumps({"assets_ids": [up, down], "type": "market"}))
        tasks.append(asyncio.create_task(_collect(mws, market_msgs)))

        maker = await _client(sim)
        taker = await _client(sim)
        creds = maker.creds
        uws = await websockets.connect(u["ws"] + "/ws/user")
        await uws.send(json.dumps({"auth": {"apiKey": creds.api_key, "secret": creds.api_secret,
                                            "passphrase": creds.api_passphrase}, "markets": [cid], "type": "user"}))
        tasks.append(asyncio.create_task(_collect(uws, user_msgs)))
        await _first(market_msgs, lambda m: m.get("event_type") == "book", "a book snapshot")

        def order(c: ClobClient, token: str, price: float, size: float = 10) -> Any:
            return c.create_order(OrderArgsV2(token_id=token, price=price, size=size, side="BUY"))

        # the maker rests a bid on each token: Up 0.43, and Down 0.55 (= an Up ask at 0.45)
        bid = await asyncio.to_thread(maker.post_order, await asyncio.to_thread(order, maker, up, 0.43), "GTC", True)
        check("polymarket/http_post_order_live.json", bid)
        ask = await asyncio.to_thread(maker.post_order, await asyncio.to_thread(order, maker, down, 0.55), "GTC", True)
        assert ask["success"]
        check("polymarket/ws_user_order_placement.json", await _first(
            user_msgs, lambda m: m.get("event_type") == "order" and m.get("type") == "PLACEMENT", "PLACEMENT"))
        check("polymarket/ws_market_price_change.json", await _first(
            market_msgs, lambda m: m.get("event_type") == "price_change", "price_change"))
        async with aiohttp.ClientSession() as s:
            async with s.get(u["clob"] + "/book", params={"token_id": up}) as r:
                book = await r.json()
        assert book["bids"] and book["asks"], book
        check("polymarket/http_get_book.json", book)

        # a post-only order that would cross is refused with the venue's error body
        with pytest.raises(PolyApiException) as exc:
            await asyncio.to_thread(taker.post_order, await asyncio.to_thread(order, taker, up, 0.45, 5), "GTC", True)
        assert exc.value.status_code == 400
        check("polymarket/http_post_order_error.json", exc.value.error_msg)

        # the taker sells 5 Up at 0.43 (buys Down at 0.57) into the maker's bid of 10: a trade for both
        hit = await asyncio.to_thread(taker.post_order, await asyncio.to_thread(order, taker, down, 0.57, 5), "GTC", False)
        assert hit["success"] and hit["status"] == "matched", hit
        check("polymarket/http_post_order_matched.json", hit)
        check("polymarket/ws_user_trade.json", await _first(
            user_msgs, lambda m: m.get("event_type") == "trade", "a trade"))
        check("polymarket/ws_user_order_update.json", await _first(
            user_msgs, lambda m: m.get("event_type") == "order" and m.get("type") == "UPDATE", "UPDATE"))
        check("polymarket/ws_market_last_trade_price.json", await _first(
            market_msgs, lambda m: m.get("event_type") == "last_trade_price", "last_trade_price"))
        # start-up reconciliation reads these two (the client walks the pages: compare one row each)
        opens = await asyncio.to_thread(maker.get_open_orders)
        assert {o["id"] for o in opens} == {bid["orderID"], ask["orderID"]}, opens
        check.row("polymarket/http_open_orders.json", next(o for o in opens if o["id"] == bid["orderID"]))
        trades = await asyncio.to_thread(maker.get_trades)
        assert trades, "the maker's trade is not in its history"
        check.row("polymarket/http_trades.json", trades[0])
        check("polymarket/ws_market_book.json", await _first(   # sent after the trade, like the venue
            market_msgs, lambda m: m.get("event_type") == "book" and m.get("bids") and m.get("asks"), "a two-sided book"))

        unknown = "0x" + "ab" * 32
        res = await asyncio.to_thread(maker.cancel_orders, [ask["orderID"], unknown])
        assert res["canceled"] == [ask["orderID"]] and unknown in res["not_canceled"], res
        check("polymarket/http_cancel.json", res)
        check("polymarket/ws_user_order_cancellation.json", await _first(
            user_msgs, lambda m: m.get("event_type") == "order" and m.get("type") == "CANCELLATION", "CANCELLATION"))

        await sim_fault(sim, {"tick_size": 0.001, "token_id": up})
        check("polymarket/ws_market_tick_size_change.json", await _first(
            market_msgs, lambda m: m.get("event_type") == "tick_size_change", "tick_size_change"))
        check.verify("polymarket/")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sim.stop()


async def test_binance_replay_payloads_match_the_recorded_venue(recorded):
    check = Checker(recorded)
    clk = ScaledClock(60.0, HOUR0 + 10 * 60_000, time.time_ns() // 1_000_000)
    srv = BinanceReplayServer(TICKS, clk)
    await srv.start()
    try:
        async with websockets.connect(srv.ws_url + "/stream?streams=btcusdt@trade/btcusdt@bookTicker") as ws:
            got: dict[str, dict] = {}
            while len(got) < 2:
                f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                got.setdefault(f["stream"], f)
        check("binance/ws_combined_trade.json", got["btcusdt@trade"])
        check("binance/ws_combined_bookticker.json", got["btcusdt@bookTicker"])
        async with aiohttp.ClientSession() as s:
            async with s.get(srv.rest_url + "/api/v3/klines",
                             params={"symbol": "BTCUSDT", "interval": "1m", "limit": "3"}) as r:
                rows = await r.json()
        assert len(rows) == 3
        check("binance/rest_klines.json", rows)
        check.verify("binance/")
    finally:
        await srv.stop()
