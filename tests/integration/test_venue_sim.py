"""Venue layer end to end against H3's loopback Polymarket simulator (real sockets, real client).

Gamma discovery -> market WS books -> executor (py_clob_client_v2, V2 signatures verified by
the sim) -> user WS order/trade events -> cancels, heartbeat, dropped sockets, REST faults.
"""
import asyncio

import pytest

server = pytest.importorskip("hourmm_core.sim.polymarket.server")

from hourmm_core.polymarket.executor import Executor, OrderRequest, Rejected  # noqa: E402
from hourmm_core.polymarket.gamma import GammaClient  # noqa: E402
from hourmm_core.polymarket.market_ws import MarketWsClient  # noqa: E402
from hourmm_core.polymarket.user_ws import OrderUpdate, TradeUpdate, UserWsClient  # noqa: E402
from tests.conftest import new_credentials as creds  # noqa: E402
from tests.conftest import sim_fault as fault  # noqa: E402
from tests.conftest import wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(120)


async def test_full_venue_path_against_sim():
    sim = server.PolymarketSim(server.SimConfig(hours=2, speed=60.0, seed=3))
    await sim.start()
    ex = mws = uws = None
    try:
        u = sim.urls
        hm = sim.hours[0]
        async with GammaClient(u["gamma"]) as gc:
            info = await gc.discover("bitcoin-up-or-down", hm.hour_ms)
            assert info is not None, gc.last_error
            assert (info.condition_id, info.up_token_id, info.down_token_id) == (hm.condition_id, hm.up_token,
                                                                                  hm.down_token)
            assert info.end_ms == hm.hour_ms + 3_600_000 and info.accepting_orders
        mws = MarketWsClient(u["ws"], info.token_ids, clock=sim.clock, backoff_initial_s=0.05)
        mws.start()
        assert await wait_for(lambda: mws.healthy), (mws.last_error, mws.bad_frames)

        ex = Executor(u["clob"], 137, creds(), retry_backoff_s=0.05)
        await ex.start()
        key, secret, phrase = ex.api_creds
        uws = UserWsClient(u["ws"], key, secret, phrase, [info.condition_id], clock=sim.clock,
                           backoff_initial_s=0.05)
        uws.start()
        assert await uws.wait_connected(10)

        tick = str(info.tick_size if info.tick_size != 0.01 else "0.01")
        ack = await ex.place(OrderRequest("q1", info.up_token_id, "BUY", 0.02, 10.0, tick_size=tick,
                                          neg_risk=info.neg_risk))
        assert ack.success and not ack.recovered
        ev = await asyncio.wait_for(uws.queue.get(), 10)
        assert isinstance(ev, OrderUpdate) and ev.order_id == ack.order_id and ev.type == "PLACEMENT"
        assert await wait_for(lambda: mws.books.get(info.up_token_id).bids.get(20_000, 0) >= 10.0)
        assert ack.order_id in {o["id"] for o in await ex.open_orders(market=info.condition_id)}
        assert await ex.heartbeat() and ex.heartbeat_ok

        res = await ex.cancel(ack.order_id)
        assert res.canceled == (ack.order_id,)
        ev = await asyncio.wait_for(uws.queue.get(), 10)
        assert isinstance(ev, OrderUpdate) and ev.type == "CANCELLATION"

        # post-only that would cross is rejected by the exchange, not silently filled
        b = mws.books.get(info.up_token_id)
        top = b.top()
        assert top is not None and top.ask is not None, (b.resync_reason, b.resyncs, b.snapshots)
        with pytest.raises(Rejected):
            await ex.place(OrderRequest("q2", info.up_token_id, "BUY", top.ask, 5.0, tick_size=tick))

        # a taker order that crosses: fill arrives on the user channel as our own fill
        take = await ex.place(OrderRequest("q3", info.up_token_id, "BUY", top.ask, 5.0, tick_size=tick,
                                           post_only=False))
        assert take.success

        async def own_fill():
            while True:
                e = await uws.queue.get()
                if isinstance(e, TradeUpdate):
                    fs = e.own_fills(key, {take.order_id})
                    if fs:
                        return e, fs
        tr, fills = await asyncio.wait_for(own_fill(), 10)
        assert tr.is_new and sum(f.size for f in fills) > 0 and fills[0].side == "BUY"
        # positions and collateral as the exchange sees them (start-up reconciliation input)
        got = sum(f.size for f in fills)
        pos = await ex.balance(info.up_token_id)
        assert got - 1e-6 <= pos <= 5.0 + 1e-6      # the rest of the 5 may have filled since
        assert await ex.balance(info.down_token_id) == 0.0
        cash = await ex.balance()
        assert 0 < cash < sim.cfg.fund_usdc

        # ambiguous POST (503 before the exchange saw it): retried with the same signed order once
        await fault(sim, {"rest_error": 503, "count": 1})
        a2 = await ex.place(OrderRequest("q4", info.up_token_id, "BUY", 0.03, 5.0, tick_size=tick))
        assert a2.success and ex.stats.get("post_ambiguous", 0) >= 1
        live = [o for o in await ex.open_orders(market=info.condition_id) if o["id"] == a2.order_id]
        assert len(live) == 1

        # sockets dropped by the venue: both clients reconnect, books resync from fresh snapshots
        c_m, c_u = mws.connects, uws.connects
        await fault(sim, {"drop_ws": "all"})
        assert await wait_for(lambda: mws.connects > c_m and uws.connects > c_u and mws.healthy, 15)
        assert mws.disconnects >= 1 and uws.disconnects >= 1

        out = await ex.cancel_all()
        assert a2.order_id in out.canceled
        assert await ex.open_orders(market=info.condition_id) == []
        assert not mws.bad_frames and not uws.bad_frames, (mws.bad_frames, uws.bad_frames)
    finally:
        for c in (uws, mws):
            if c is not None:
                await c.stop()
        if ex is not None:
            await ex.close()
        await sim.stop()
