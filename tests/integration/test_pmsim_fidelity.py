"""Issue 13: simulator fidelity gaps found with the official client (py-clob-client-v2)."""
from __future__ import annotations

import asyncio
import re

import pytest
from eth_account import Account

from hourmm_core.sim.polymarket import clob_routes, server

pytestmark = pytest.mark.timeout(120)


async def test_markets_list_is_paginated_like_the_clob() -> None:
    from py_clob_client_v2.client import ClobClient

    sim = server.PolymarketSim(server.SimConfig(hours=3, speed=60.0, seed=5, agents=False))
    await sim.start()
    old = clob_routes.MARKETS_PAGE
    clob_routes.MARKETS_PAGE = 2
    try:
        c = ClobClient(sim.urls["clob"], 137)
        p1 = await asyncio.to_thread(c.get_markets)
        assert p1["count"] == 2 and p1["next_cursor"] not in ("LTE=", "")
        p2 = await asyncio.to_thread(c.get_markets, p1["next_cursor"])
        assert p2["next_cursor"] == "LTE="
        ids = [m["condition_id"] for m in p1["data"] + p2["data"]]
        assert sorted(ids) == sorted(h.condition_id for h in sim.hours) and len(set(ids)) == len(ids)
        assert (await asyncio.to_thread(c.get_markets, "LTE="))["data"] == []
        one = await asyncio.to_thread(c.get_market, ids[0])
        assert one == p1["data"][0]
    finally:
        clob_routes.MARKETS_PAGE = old
        await sim.stop()


async def test_last_trade_side_and_makers_look_like_the_venue() -> None:
    """Background agents trade; the last-trade side is set and makers show an API-key id + 0x address."""
    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=True))
    await sim.start()
    try:
        hm = sim.hours[0]
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while not any(t["market"] == hm.condition_id for t in sim.ex.trades_log):
            assert loop.time() < end, "no agent trade"
            await asyncio.sleep(0.1)
        from py_clob_client_v2.client import ClobClient
        c = ClobClient(sim.urls["clob"], 137)
        while True:   # the agents keep trading: compare with the trade that was last during both reads
            n = len(sim.ex.trades_log)
            last = [t for t in sim.ex.trades_log if t["market"] == hm.condition_id][-1]
            other = hm.down_token if last["asset_id"] == hm.up_token else hm.up_token
            got = await asyncio.to_thread(c.get_last_trade_price, last["asset_id"])
            got_other = await asyncio.to_thread(c.get_last_trade_price, other)
            if len(sim.ex.trades_log) == n:
                break
            assert loop.time() < end + 60, "the agents never paused between two reads"
        assert got["side"] == last["side"] in ("BUY", "SELL")
        assert got_other["side"] == ("SELL" if last["side"] == "BUY" else "BUY")
        view = sim._trade_view(last, None)
        uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        for mo in view["maker_orders"]:
            assert uuid_re.match(mo["owner"]), mo["owner"]
            assert re.match(r"^0x[0-9a-f]{40}$", mo["maker_address"]), mo["maker_address"]
        assert uuid_re.match(view["owner"]) and view["maker_address"].startswith("0x")
        # a real client's own address is kept as is
        a = Account.create().address
        assert sim._addr_of(a) == a
    finally:
        await sim.stop()


@pytest.mark.parametrize("path,combined", [("/stream", True), ("/ws", False)])
async def test_binance_replay_accepts_bare_endpoint_with_live_subscribe(path, combined) -> None:
    """binance-connector connects to a bare /stream or /ws and then SUBSCRIBEs (real tick sample)."""
    import json
    import os
    import time

    import websockets

    from hourmm_core.clock import ScaledClock
    from hourmm_core.data import load_ticks
    from hourmm_core.sim.binance_replay import BinanceReplayServer

    data = os.environ.get("HOURMM_DATA_DIR", "/work/shared/data")
    if not os.path.exists(os.path.join(data, "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz")):
        pytest.skip("real tick sample not available")
    ticks = load_ticks(data_dir=data, allow_synthetic=False)
    t0 = int(ticks.ts_ms[0])
    srv = BinanceReplayServer(ticks, ScaledClock(10.0, t0, time.time_ns() // 1_000_000))
    await srv.start()
    try:
        async with websockets.connect(srv.ws_url.rstrip("/") + path) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
            got_reply = got_trade = False
            while not (got_reply and got_trade):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg.get("id") == 1:
                    assert msg["result"] is None
                    got_reply = True
                    continue
                payload = msg["data"] if combined else msg
                assert ("stream" in msg) is combined and payload["e"] == "trade"
                got_trade = True
    finally:
        await srv.stop()
