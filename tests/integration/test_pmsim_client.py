"""The REAL Polymarket CLOB clients (py_clob_client_v2 and py_clob_client 0.34) against the sim on loopback.

Keys are generated at runtime (eth_account.Account.create()); the sync clients run in
threads (asyncio.to_thread) because the sim serves from this test's event loop.
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import websockets
from py_clob_client_v2 import ApiCreds, OpenOrderParams, OrderArgs, OrderPayload, OrderType, TradeParams
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import OrderMarketCancelParams
from py_clob_client_v2.exceptions import PolyApiException

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.sim.polymarket.agents import AgentConfig
from hourmm_core.sim.polymarket.auth import hmac_signature
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
from tests.conftest import new_key
from tests.conftest import sim_clob_client as _client

pytestmark = pytest.mark.timeout(90)

HOUR0 = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts
TICKS = synthetic_ticks(start_ms=HOUR0 - HOUR_MS, hours=4, seed=11)


def make_sim(**kw) -> PolymarketSim:
    agents = kw.pop("agents", False)
    cfg = SimConfig(start_ms=HOUR0 + 60_000, hours=2, seed=5, agents=agents, **kw)
    clock = ScaledClock(kw.get("speed", 1.0), HOUR0 + 60_000, time.time_ns() // 1_000_000)
    return PolymarketSim(cfg, ticks=TICKS, clock=clock)


async def _event(sim: PolymarketSim) -> dict:
    async with aiohttp.ClientSession() as s:
        slug = sim.hours[0].slug
        async with s.get(sim.urls["gamma"] + "/events", params={"slug": slug}) as r:
            assert r.status == 200
            evs = await r.json()
    assert len(evs) == 1 and evs[0]["slug"] == slug
    m = evs[0]["markets"][0]
    assert json.loads(m["outcomes"]) == ["Up", "Down"] and m["acceptingOrders"] is True
    up, down = json.loads(m["clobTokenIds"])
    return {"cid": m["conditionId"], "up": up, "down": down}


async def _recv_until(ws, pred, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("expected WS message not received")
        raw = await asyncio.wait_for(ws.recv(), left)
        if raw == "PONG":
            continue
        msg = json.loads(raw)
        for m in (msg if isinstance(msg, list) else [msg]):
            if pred(m):
                return m


async def test_full_flow_v2_client_rest_and_both_websockets():
    sim = make_sim()
    await sim.start()
    try:
        ev = await _event(sim)
        alice = await _client(sim)
        bob = await _client(sim)
        async with websockets.connect(sim.urls["ws"] + "/ws/market") as mws, \
                websockets.connect(sim.urls["ws"] + "/ws/user") as uws:
            await mws.send(json.dumps({"assets_ids": [ev["up"], ev["down"]], "type": "market"}))
            book = await _recv_until(mws, lambda m: m.get("event_type") == "book" and m["asset_id"] == ev["up"])
            assert book["bids"] == [] and book["market"] == ev["cid"]
            await mws.send("PING")
            assert await asyncio.wait_for(mws.recv(), 5) == "PONG"
            c = alice.creds
            await uws.send(json.dumps({"auth": {"apiKey": c.api_key, "secret": c.api_secret,
                                                "passphrase": c.api_passphrase},
                                       "markets": [ev["cid"]], "type": "user"}))
            await asyncio.sleep(0.1)

            order = await asyncio.to_thread(alice.create_order, OrderArgs(token_id=ev["up"], price=0.40, size=10,
                                                                          side="BUY"))
            resp = await asyncio.to_thread(alice.post_order, order, OrderType.GTC)
            assert resp["success"] is True and resp["status"] == "live"
            oid = resp["orderID"]
            opens = await asyncio.to_thread(alice.get_open_orders)
            assert [o["id"] for o in opens] == [oid] and opens[0]["price"] == "0.4"
            ob = await asyncio.to_thread(alice.get_order_book, ev["up"])
            assert ob["bids"][-1] == {"price": "0.4", "size": "10"}
            pc = await _recv_until(mws, lambda m: m.get("event_type") == "price_change")
            assert any(x["asset_id"] == ev["up"] and x["price"] == "0.4" and x["side"] == "BUY" and x["size"] == "10"
                       for x in pc["price_changes"])
            pl = await _recv_until(uws, lambda m: m.get("event_type") == "order")
            assert pl["type"] == "PLACEMENT" and pl["id"] == oid and pl["owner"] == c.api_key

            # Bob buys Down at 0.62: crosses Alice's Up bid at 0.40 by minting a pair (Bob pays 0.60).
            o2 = await asyncio.to_thread(bob.create_order, OrderArgs(token_id=ev["down"], price=0.62, size=10,
                                                                     side="BUY"))
            r2 = await asyncio.to_thread(bob.post_order, o2, OrderType.GTC)
            assert r2["status"] == "matched" and r2["tradeIDs"] and r2["transactionsHashes"]
            tr = await _recv_until(uws, lambda m: m.get("event_type") == "trade")
            assert tr["trader_side"] == "MAKER" and tr["maker_orders"][0]["order_id"] == oid
            upd = await _recv_until(uws, lambda m: m.get("event_type") == "order" and m["type"] == "UPDATE")
            assert upd["size_matched"] == "10" and upd["status"] == "MATCHED"
            ltp = await _recv_until(mws, lambda m: m.get("event_type") == "last_trade_price")
            assert ltp["asset_id"] == ev["down"] and ltp["price"] == "0.6"
            await _recv_until(uws, lambda m: m.get("event_type") == "trade" and m["status"] == "CONFIRMED")
            trades = await asyncio.to_thread(alice.get_trades, TradeParams(market=ev["cid"]))
            assert len(trades) == 1 and trades[0]["trader_side"] == "MAKER"
            mt = int(trades[0]["match_time"])
            assert len(await asyncio.to_thread(alice.get_trades, TradeParams(after=mt))) == 1   # inclusive
            assert await asyncio.to_thread(alice.get_trades, TradeParams(after=mt + 1)) == []
            bob_trades = await asyncio.to_thread(bob.get_trades)
            assert bob_trades[0]["trader_side"] == "TAKER" and bob_trades[0]["id"] == trades[0]["id"]
            assert sim.ex.positions(alice.get_address().lower()) == {ev["up"]: 10.0}
            assert sim.ex.balances(alice.get_address().lower())["usdc"] == pytest.approx(996.0)

            # cancel one, cancel by market, cancel all
            ids = []
            for p in (0.30, 0.31, 0.32):
                o = await asyncio.to_thread(alice.create_order, OrderArgs(token_id=ev["up"], price=p, size=5,
                                                                          side="BUY"))
                ids.append((await asyncio.to_thread(alice.post_order, o))["orderID"])
            r = await asyncio.to_thread(alice.cancel_order, OrderPayload(orderID=ids[0]))
            assert r["canceled"] == [ids[0]]
            cn = await _recv_until(uws, lambda m: m.get("type") == "CANCELLATION")
            assert cn["id"] == ids[0]
            r = await asyncio.to_thread(alice.cancel_market_orders, OrderMarketCancelParams(asset_id=ev["up"]))
            assert sorted(r["canceled"]) == sorted(ids[1:])
            o = await asyncio.to_thread(alice.create_order, OrderArgs(token_id=ev["up"], price=0.2, size=5, side="BUY"))
            oid3 = (await asyncio.to_thread(alice.post_order, o))["orderID"]
            r = await asyncio.to_thread(alice.cancel_all)
            assert r["canceled"] == [oid3]
            assert await asyncio.to_thread(alice.get_open_orders) == []
            one = await asyncio.to_thread(alice.get_order, oid3)
            assert one["status"] == "CANCELED"
        sim.ex.check_invariants()
    finally:
        await sim.stop()


async def test_rejections_post_only_balance_tick_and_bad_auth():
    sim = make_sim()
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.5, size=10, side="SELL"))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_order, o)
        assert ei.value.status_code == 400 and "not enough balance / allowance" in str(ei.value.error_msg)
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.5, size=10, side="BUY"))
        assert (await asyncio.to_thread(a.post_order, o))["status"] == "live"
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["down"], price=0.5, size=10, side="BUY"))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_order, o, OrderType.GTC, True)
        assert "crosses book" in str(ei.value.error_msg)
        # wrong secret -> 401 with the real shape
        bad = ClobClient(sim.urls["clob"], chain_id=137, key=a.signer.private_key,
                         creds=ApiCreds(a.creds.api_key, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=",
                                        a.creds.api_passphrase))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(bad.get_open_orders)
        assert ei.value.status_code == 401 and ei.value.error_msg == {"error": "Unauthorized/Invalid api key"}
        assert sim.errors["auth_l2"] >= 1
    finally:
        await sim.stop()


async def test_malformed_requests_get_400_with_clear_message():
    sim = make_sim()
    await sim.start()
    try:
        a = await _client(sim)
        k = a.creds
        base = sim.urls["clob"]

        def hdr(method: str, path: str, body: str) -> dict:
            ts = str(int(time.time()))
            return {"POLY_ADDRESS": a.get_address(), "POLY_API_KEY": k.api_key, "POLY_PASSPHRASE": k.api_passphrase,
                    "POLY_TIMESTAMP": ts, "POLY_SIGNATURE": hmac_signature(k.api_secret, ts, method, path, body)}
        async with aiohttp.ClientSession() as s:
            for body in ("not json", json.dumps({"order": {"maker": "x"}, "owner": k.api_key, "orderType": "GTC"})):
                async with s.post(base + "/order", data=body, headers=hdr("POST", "/order", body)) as r:
                    assert r.status == 400
                    assert (await r.json())["error"]
            body = json.dumps({"nope": 1})
            async with s.delete(base + "/order", data=body, headers=hdr("DELETE", "/order", body)) as r:
                assert r.status == 400 and "orderID" in (await r.json())["error"]
            async with s.get(base + "/book") as r:
                assert r.status == 400 and (await r.json()) == {"error": "Invalid token id"}
            async with s.get(base + "/book", params={"token_id": "123"}) as r:
                assert r.status == 404
            async with s.get(base + "/data/orders", headers=hdr("GET", "/data/orders", ""),
                             params={"next_cursor": "%%%"}) as r:
                assert r.status == 400
            async with s.post(base + "/_sim/fault", json={"bogus": 1}) as r:
                assert r.status == 400
            # a real signed order, then corrupted field by field: always a 4xx with a message, never a 500
            ev = await _event(sim)
            good = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.3, size=5, side="BUY"))
            from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2
            body0 = order_to_json_v2(good, k.api_key, "GTC")
            variants = [
                ("", "/order", "POST"), ("[]", "/order", "POST"), ("{}", "/order", "POST"),
                (json.dumps({**body0, "order": []}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "side": "HOLD"}}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "makerAmount": "-5"}}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "takerAmount": "9" * 90}}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "tokenId": "42"}}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "signature": "0x1234"}}), "/order", "POST"),
                (json.dumps({**body0, "order": {**body0["order"], "makerAmount": "1600000"}}), "/order", "POST"),
                (json.dumps({**body0, "owner": "someone-else"}), "/order", "POST"),
                (json.dumps({**body0, "orderType": "IOC"}), "/order", "POST"),
                (json.dumps([body0] * 16), "/orders", "POST"), ("{}", "/orders", "POST"),
                ('{"a": 1}', "/orders", "DELETE"), ("[]", "/cancel-market-orders", "DELETE"),
                ("{}", "/cancel-market-orders", "DELETE"), ("[1]", "/v1/heartbeats", "POST"),
            ]
            for body, path, method in variants:
                async with s.request(method, base + path, data=body, headers=hdr(method, path, body)) as r:
                    assert 400 <= r.status < 500, (path, body[:80], r.status)
                    err = (await r.json())["error"]
                    assert isinstance(err, str) and err, (path, body[:80])
            assert sim.errors["handler_exception"] == 0
            assert sim.ex.open_orders() == []
        assert sim.errors["bad_request"] + sim.errors["bad_order"] >= 3
    finally:
        await sim.stop()


async def test_heartbeat_lapse_cancels_orders():
    sim = make_sim(heartbeat_timeout_s=1.5)
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        hb = await asyncio.to_thread(a.post_heartbeat, "")
        hid = hb["heartbeat_id"]
        assert hid
        assert (await asyncio.to_thread(a.post_heartbeat, hid))["heartbeat_id"] == hid
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_heartbeat, "not-the-id")
        assert ei.value.status_code == 400 and ei.value.error_msg["heartbeat_id"] == hid
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.3, size=5, side="BUY"))
        await asyncio.to_thread(a.post_heartbeat, hid)
        await asyncio.to_thread(a.post_order, o)
        assert len(await asyncio.to_thread(a.get_open_orders)) == 1
        await asyncio.to_thread(a.post_heartbeat, hid)      # still alive
        assert len(await asyncio.to_thread(a.get_open_orders)) == 1
        assert sim.hb_cancels == 0
        await asyncio.sleep(2.5)                            # lapse
        assert await asyncio.to_thread(a.get_open_orders) == []
        assert sim.hb_cancels == 1
    finally:
        await sim.stop()


async def test_v1_legacy_client_unchanged():
    from py_clob_client.client import ClobClient as V1Client
    from py_clob_client.clob_types import OrderArgs as V1OrderArgs

    sim = make_sim(allowed_versions=(1, 2))    # legacy V1 structs only when asked for
    await sim.start()
    try:
        ev = await _event(sim)
        key, _ = new_key()
        c = V1Client(sim.urls["clob"], chain_id=137, key=key)
        creds = await asyncio.to_thread(c.create_or_derive_api_creds)
        c.set_api_creds(creds)
        o = await asyncio.to_thread(c.create_order, V1OrderArgs(token_id=ev["up"], price=0.45, size=6, side="BUY"))
        r = await asyncio.to_thread(c.post_order, o)
        assert r["success"] and r["status"] == "live"
        assert [x["id"] for x in await asyncio.to_thread(c.get_orders)] == [r["orderID"]]
        assert (await asyncio.to_thread(c.cancel, r["orderID"]))["canceled"] == [r["orderID"]]
    finally:
        await sim.stop()


async def test_background_taker_fills_an_aggressive_quote():
    cfg = AgentConfig(noise_takers_per_min=40.0, informed_per_min=10.0)
    sim = make_sim(agents=True, speed=60.0, agent_config=cfg)
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        await asyncio.sleep(0.2)
        fair = sim.agents.stats.last_fair[ev["cid"]]
        r = None
        for _ in range(10):     # the makers requote meanwhile: retry if our post-only quote would cross
            _, best_ask = sim.ex.best(ev["up"])
            # Up bid well above fair but below the best ask (post-only: it must rest as a maker quote);
            # Down buyers (noise and informed takers) will lift it.
            px = round(min(0.95, fair + 0.06, (best_ask or 1.0) - 0.02), 2)
            o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=px, size=5, side="BUY"))
            try:
                r = await asyncio.to_thread(a.post_order, o, OrderType.GTC, True)
                break
            except PolyApiException as e:
                assert "crosses book" in str(e.error_msg)
        assert r is not None and r["success"] and r["status"] == "live"
        deadline = time.monotonic() + 20
        trades = []
        while time.monotonic() < deadline and not trades:
            await asyncio.sleep(0.25)
            trades = await asyncio.to_thread(a.get_trades)
        assert trades, "no background taker filled the quote"
        assert trades[0]["trader_side"] == "MAKER"
        # the taker may sweep agent quotes too; ours is one of the maker orders of the trade
        assert r["orderID"] in [mo["order_id"] for mo in trades[0]["maker_orders"]]
        st = sim.state()
        assert st["agents"]["maker_quotes"] > 0
        sim.ex.check_invariants()
    finally:
        await sim.stop()


async def test_v2_only_mode_rejects_v1_orders_with_version_mismatch():
    from py_clob_client.client import ClobClient as V1Client
    from py_clob_client.clob_types import OrderArgs as V1OrderArgs

    sim = make_sim()     # the default is V2-only, like production
    await sim.start()
    try:
        ev = await _event(sim)
        c = V1Client(sim.urls["clob"], chain_id=137, key=new_key()[0])
        c.set_api_creds(await asyncio.to_thread(c.create_or_derive_api_creds))
        o = await asyncio.to_thread(c.create_order, V1OrderArgs(token_id=ev["up"], price=0.45, size=6, side="BUY"))
        with pytest.raises(Exception) as ei:
            await asyncio.to_thread(c.post_order, o)
        assert "order_version_mismatch" in str(ei.value)
        assert sim.ex.open_orders() == []
    finally:
        await sim.stop()


async def test_open_orders_paginate_with_next_cursor_until_LTE():
    sim = make_sim(page_size=2)
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        ids = []
        for p in (0.10, 0.11, 0.12, 0.13, 0.14):
            o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=p, size=5, side="BUY"))
            ids.append((await asyncio.to_thread(a.post_order, o))["orderID"])
        got = await asyncio.to_thread(a.get_open_orders)         # the client follows next_cursor to "LTE="
        assert [o["id"] for o in got] == ids
        first = await asyncio.to_thread(a.get_open_orders, None, True)
        assert len(first) == 2
        one = await asyncio.to_thread(a.get_open_orders, OpenOrderParams(id=ids[3]))
        assert [o["id"] for o in one] == [ids[3]]
    finally:
        await sim.stop()


async def test_market_order_fok_via_client_fills_at_the_book():
    from py_clob_client_v2 import MarketOrderArgs

    sim = make_sim()
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        b = await _client(sim)
        o = await asyncio.to_thread(b.create_order, OrderArgs(token_id=ev["down"], price=0.60, size=10, side="BUY"))
        assert (await asyncio.to_thread(b.post_order, o))["status"] == "live"     # = Up ask at 0.40
        mo = await asyncio.to_thread(a.create_market_order, MarketOrderArgs(token_id=ev["up"], amount=4.0, side="BUY",
                                                                            order_type=OrderType.FOK))
        r = await asyncio.to_thread(a.post_order, mo, OrderType.FOK)
        assert r["status"] == "matched" and float(r["takingAmount"]) == pytest.approx(10.0)
        assert sim.ex.positions(a.get_address().lower()) == {ev["up"]: 10.0}
        # nothing left to buy: a second FOK is killed with the real message
        mo = await asyncio.to_thread(a.create_market_order, MarketOrderArgs(token_id=ev["up"], amount=4.0, side="BUY",
                                                                            price=0.5, order_type=OrderType.FOK))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_order, mo, OrderType.FOK)
        assert "FOK" in str(ei.value.error_msg)
        sim.ex.check_invariants()
    finally:
        await sim.stop()


async def test_batch_post_orders_mixed_results_and_state_view():
    from py_clob_client_v2.clob_types import PostOrdersV2Args

    sim = make_sim()
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        good = [await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=p, size=5, side="BUY"))
                for p in (0.21, 0.22)]
        bad = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.5, size=5, side="SELL"))
        res = await asyncio.to_thread(a.post_orders, [PostOrdersV2Args(order=o) for o in good + [bad]])
        assert [r["success"] for r in res] == [True, True, False]
        assert res[2]["errorMsg"] == "not enough balance / allowance"
        st = sim.state()
        mine = [o for o in st["open_orders"] if o["owner"] == a.creds.api_key]
        assert sorted(o["id"] for o in mine) == sorted(r["orderID"] for r in res[:2])
        assert st["balances"][a.get_address().lower()]["usdc_available"] == pytest.approx(1000 - 0.21 * 5 - 0.22 * 5)
        assert st["markets"][0]["listed"] is True and st["markets"][0]["resolution"] is None
    finally:
        await sim.stop()


async def test_gtd_order_expires_one_minute_before_its_signed_expiration():
    sim = make_sim(speed=60.0)      # 1 wall second = 1 sim minute
    await sim.start()
    try:
        ev = await _event(sim)
        a = await _client(sim)
        now_s = sim.now_ms() // 1000
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.3, size=5, side="BUY",
                                                              expiration=now_s + 30))
        with pytest.raises(PolyApiException) as ei:          # inside the 60 s security threshold
            await asyncio.to_thread(a.post_order, o, OrderType.GTD)
        assert "invalid expiration" in str(ei.value.error_msg)
        exp = sim.now_ms() // 1000 + 60 + 120                 # live for ~2 sim minutes
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=ev["up"], price=0.3, size=5, side="BUY",
                                                              expiration=exp))
        r = await asyncio.to_thread(a.post_order, o, OrderType.GTD)
        assert r["status"] == "live"
        got = await asyncio.to_thread(a.get_order, r["orderID"])
        assert got["expiration"] == str(exp) and got["order_type"] == "GTD"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sim.ex.order(r["orderID"]).status == "LIVE":
            await asyncio.sleep(0.1)
        assert sim.ex.order(r["orderID"]).status == "CANCELED"
        assert sim.now_ms() >= (exp - 60) * 1000
        assert await asyncio.to_thread(a.get_open_orders) == []
    finally:
        await sim.stop()
