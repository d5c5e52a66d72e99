"""Polymarket sim: fault knobs, hourly lifecycle (close + resolve from the candle), gamma filters, CLI."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
import websockets
from py_clob_client_v2 import OrderArgs
from py_clob_client_v2.exceptions import PolyApiException

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.polymarket.gamma import parse_market
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
from tests.conftest import sim_clob_client as client
from tests.conftest import sim_fault as fault

pytestmark = pytest.mark.timeout(90)

HOUR0 = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts
TICKS = synthetic_ticks(start_ms=HOUR0 - HOUR_MS, hours=4, seed=13)


def make_sim(start_ms: int, speed: float = 1.0, hours: int = 2, **kw) -> PolymarketSim:
    cfg = SimConfig(start_ms=start_ms, hours=hours, seed=9, agents=kw.pop("agents", False), **kw)
    return PolymarketSim(cfg, ticks=TICKS, clock=ScaledClock(speed, start_ms, time.time_ns() // 1_000_000))


async def test_rest_faults_429_500_reject_ack_delay_and_clock_skew():
    sim = make_sim(HOUR0 + 60_000)
    await sim.start()
    try:
        hm = sim.hours[0]
        a = await client(sim)
        await fault(sim, {"rest_error": 429, "count": 1, "retry_after_s": 3})
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.urls["clob"] + "/time") as r:
                assert r.status == 429 and r.headers["Retry-After"] == "3"
            async with s.get(sim.urls["clob"] + "/time") as r:   # count exhausted
                assert r.status == 200
                t0 = await r.json()
        await fault(sim, {"rest_error": 500, "count": 1})
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.get_open_orders)
        assert ei.value.status_code == 500
        await fault(sim, {"clock_skew_ms": 3_600_000})
        t1 = await asyncio.to_thread(a.get_server_time)
        assert t1 - t0 >= 3599
        await fault(sim, {"reject_next": 1, "ack_delay_ms": 300})
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=hm.up_token, price=0.3, size=5, side="BUY"))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_order, o)
        assert "reject_next" in str(ei.value.error_msg)
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=hm.up_token, price=0.3, size=5, side="BUY"))
        t = time.monotonic()
        r = await asyncio.to_thread(a.post_order, o)
        assert r["status"] == "live" and time.monotonic() - t >= 0.3
        st = sim.state()
        assert st["errors"]["fault_429"] == 1 and st["errors"]["fault_500"] == 1 and st["errors"]["fault_reject"] == 1
    finally:
        await sim.stop()


async def test_ws_drop_and_tick_size_change():
    sim = make_sim(HOUR0 + 60_000)
    await sim.start()
    try:
        hm = sim.hours[0]
        async with websockets.connect(sim.urls["ws"] + "/ws/market") as mws:
            await mws.send(json.dumps({"assets_ids": [hm.up_token], "type": "market"}))
            first = json.loads(await asyncio.wait_for(mws.recv(), 5))
            assert first[0]["event_type"] == "book"
            await fault(sim, {"tick_size": 0.001, "token_id": hm.up_token})
            msg = json.loads(await asyncio.wait_for(mws.recv(), 5))
            assert msg["event_type"] == "tick_size_change" and msg["new_tick_size"] == "0.001"
            assert msg["old_tick_size"] == "0.01"
            res = await fault(sim, {"drop_ws": "market"})
            assert res["applied"]["drop_ws"] == 1
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(5):
                    await asyncio.wait_for(mws.recv(), 5)
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.urls["clob"] + "/tick-size", params={"token_id": hm.up_token}) as r:
                assert (await r.json())["minimum_tick_size"] == 0.001
        # user channel with bad credentials is refused and closed
        async with websockets.connect(sim.urls["ws"] + "/ws/user") as uws:
            await uws.send(json.dumps({"auth": {"apiKey": "x", "secret": "y", "passphrase": "z"}, "type": "user",
                                       "markets": []}))
            err = json.loads(await asyncio.wait_for(uws.recv(), 5))
            assert err == {"error": "Unauthorized/Invalid api key"}
    finally:
        await sim.stop()


async def test_hour_end_closes_and_resolves_from_the_candle():
    # Start 8 s of sim time (4 s wall at speed 2) before the first market's end: room for the client calls.
    sim = make_sim(HOUR0 + HOUR_MS - 8000, speed=2.0)
    await sim.start()
    try:
        hm = sim.hours[0]
        a = await client(sim)
        addr = a.get_address().lower()
        # Buy 10 Up at 0.5 against a Down buyer (second wallet): both hold tokens into settlement.
        b = await client(sim)
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=hm.up_token, price=0.5, size=10, side="BUY"))
        await asyncio.to_thread(a.post_order, o)
        o = await asyncio.to_thread(b.create_order, OrderArgs(token_id=hm.down_token, price=0.5, size=10, side="BUY"))
        assert (await asyncio.to_thread(b.post_order, o))["status"] == "matched"
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=hm.up_token, price=0.2, size=10, side="BUY"))
        await asyncio.to_thread(a.post_order, o)
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.urls["gamma"] + "/markets", params={"slug": hm.slug}) as r:
                mk = (await r.json())[0]
            info = parse_market(mk)      # the trader's own Gamma parser accepts the sim's market
            assert info.condition_id == hm.condition_id and info.up_token_id == hm.up_token
            assert info.end_ms == hm.hour_ms + HOUR_MS and info.accepting_orders
            deadline = time.monotonic() + 15
            while hm.condition_id not in sim.resolutions and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            res = sim.resolutions[hm.condition_id]
            assert res["resolved"] is True
            up_wins = TICKS.slice_time(hm.hour_ms, hm.hour_ms + HOUR_MS).price[-1] >= \
                TICKS.slice_time(hm.hour_ms, hm.hour_ms + HOUR_MS).price[0]
            assert res["up_wins"] == bool(up_wins)
            assert sim.ex.open_orders(addr) == []
            bal = sim.ex.balances(addr)["usdc"]
            assert bal == pytest.approx(1000 - 5 + (10 if up_wins else 0))
            async with s.get(sim.urls["gamma"] + "/events", params={"slug": hm.slug}) as r:
                ev = (await r.json())[0]
            assert ev["closed"] is True and ev["markets"][0]["acceptingOrders"] is False
            assert json.loads(ev["markets"][0]["outcomePrices"]) == (["1", "0"] if up_wins else ["0", "1"])
            async with s.get(sim.urls["gamma"] + "/events", params={"closed": "false"}) as r:
                assert [e["slug"] for e in await r.json()] == [sim.hours[1].slug]
        o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=hm.up_token, price=0.2, size=10, side="BUY"))
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(a.post_order, o)
        assert "not accepting orders" in str(ei.value.error_msg)
        sim.ex.check_invariants()
    finally:
        await sim.stop()


async def test_markets_listed_two_hours_ahead_only():
    # hours: [H0-3h (current), H0-2h, H0-1h, H0]; H0 starts in 2 h + 30 s, so it is not listed yet.
    sim = make_sim(HOUR0 - 2 * HOUR_MS - 30_000, hours=4)
    await sim.start()
    try:
        assert sim.hours[-1].hour_ms == HOUR0
        async with aiohttp.ClientSession() as s:
            async with s.get(sim.urls["gamma"] + "/events", params={"slug": sim.hours[-1].slug}) as r:
                assert await r.json() == []
            async with s.get(sim.urls["gamma"] + "/events") as r:
                assert [e["slug"] for e in await r.json()] == [h.slug for h in sim.hours[:3]]
            async with s.get(sim.urls["clob"] + "/book", params={"token_id": sim.hours[-1].up_token}) as r:
                assert r.status == 404
    finally:
        await sim.stop()


def test_cli_prints_one_ready_line():
    p = subprocess.Popen([sys.executable, "-m", "hourmm_core.sim.polymarket", "--port", "0", "--hours", "1",
                          "--start-ms", str(HOUR0 + 1000), "--seed", "4", "--no-agents"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        assert line.startswith("READY gamma=http://127.0.0.1:") and " clob=http://127.0.0.1:" in line
        assert " ws=ws://127.0.0.1:" in line
        clob = line.split("clob=")[1].split()[0]
        import urllib.request
        with urllib.request.urlopen(clob + "/version", timeout=5) as r:
            assert json.loads(r.read()) == {"version": 2}
    finally:
        p.terminate()
        p.wait(10)
    assert "SYNTHETIC" in p.stderr.read()


async def test_auto_tick_size_change_near_the_edge():
    sim = make_sim(HOUR0 + 60_000)
    await sim.start()
    try:
        hm = sim.hours[0]
        async with websockets.connect(sim.urls["ws"] + "/ws/market") as mws:
            await mws.send(json.dumps({"assets_ids": [hm.down_token], "type": "market"}))
            await asyncio.wait_for(mws.recv(), 5)                     # initial book
            sim.ex.deposit("x", 100)
            assert sim.ex.place("x", hm.up_token, "BUY", 0.97, 5, now_ms=sim.now_ms()).ok
            assert sim.ex.place("x", hm.down_token, "BUY", 0.02, 5, now_ms=sim.now_ms()).ok   # Up ask 0.98
            deadline = time.monotonic() + 5
            msg = {}
            while msg.get("event_type") != "tick_size_change" and time.monotonic() < deadline:
                raw = json.loads(await asyncio.wait_for(mws.recv(), 5))
                msg = raw if isinstance(raw, dict) else {}
            assert msg["asset_id"] == hm.down_token and msg["new_tick_size"] == "0.001"
        assert sim.ex.markets[hm.condition_id].tick_size == 0.001
        # a 0.001-grid price is now valid, and the old 0.01 grid still is
        assert sim.ex.place("x", hm.up_token, "BUY", 0.955, 5, now_ms=sim.now_ms()).ok
    finally:
        await sim.stop()


async def test_ws_bad_frames_are_answered_and_user_market_filter_applies():
    sim = make_sim(HOUR0 + 60_000)
    await sim.start()
    try:
        h0, h1 = sim.hours
        a = await client(sim)
        c = a.creds
        async with websockets.connect(sim.urls["ws"] + "/ws/market") as mws, \
                websockets.connect(sim.urls["ws"] + "/ws/user") as uws:
            for junk in ("{not json", "[1, 2]", json.dumps({"assets_ids": "nope"})):
                await mws.send(junk)
                assert "error" in json.loads(await asyncio.wait_for(mws.recv(), 5))
            await mws.send("PING")
            assert await asyncio.wait_for(mws.recv(), 5) == "PONG"      # still connected
            # user channel filtered to the SECOND hour's market: orders on the first are not sent
            await uws.send(json.dumps({"auth": {"apiKey": c.api_key, "secret": c.api_secret,
                                                "passphrase": c.api_passphrase},
                                       "markets": [h1.condition_id], "type": "user"}))
            await asyncio.sleep(0.1)
            o = await asyncio.to_thread(a.create_order, OrderArgs(token_id=h0.up_token, price=0.3, size=5, side="BUY"))
            await asyncio.to_thread(a.post_order, o)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(uws.recv(), 0.5)
            await uws.send(json.dumps({"operation": "subscribe", "markets": [h0.condition_id]}))
            await asyncio.sleep(0.1)
            await asyncio.to_thread(a.cancel_all)
            msg = json.loads(await asyncio.wait_for(uws.recv(), 5))
            assert msg["event_type"] == "order" and msg["type"] == "CANCELLATION" and msg["market"] == h0.condition_id
        st = sim.state()
        assert st["errors"]["ws_market_bad_json"] == 1 and st["errors"]["ws_market_bad_msg"] == 1
        assert st["errors"]["ws_market_bad_sub"] == 1
    finally:
        await sim.stop()
