"""Cancel-first and batching on the order path.

* the trader sends the plan's cancels first (no signature needed) and only then the
  places, and hands several places to the executor as one batch;
* TraderExecutor.place_many posts them through the real py_clob_client_v2 wire format
  as one POST /orders (up to 15 per request) against the loopback Polymarket sim, with
  one outcome per order (a bad one does not sink its siblings).
"""
from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account

from hourmm_core.clock import WallClock
from hourmm_core.config import Credentials, TraderConfig
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.order_manager import Action, Order
from hourmm_core.trading.trader import PlaceResult, Trader


class _BatchExecutor:
    def __init__(self, fail_batch: bool = False) -> None:
        self.log: list[tuple] = []
        self.fail_batch = fail_batch

    async def cancel(self, ids):
        self.log.append(("cancel", tuple(ids)))
        return list(ids), {}

    async def place(self, *a, **kw):   # pragma: no cover - must not be used for a batch
        self.log.append(("place", kw["client_id"]))
        return PlaceResult(True, order_id="single", status="live")

    async def place_many(self, orders):
        self.log.append(("place_many", tuple(o["client_id"] for o in orders)))
        if self.fail_batch:
            raise ConnectionError("boom")
        return [PlaceResult(True, order_id=f"oid-{o['client_id']}", status="live") if i != 1
                else PlaceResult(False, error="invalid post-only order: order crosses book")
                for i, o in enumerate(orders)]


def _trader(tmp_path, ex) -> Trader:
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    tr = Trader(cfg, WallClock(), None, executor=ex)
    now = WallClock().now_ms()
    start = now - now % 3_600_000
    tr.core.set_market(MarketRef("s", "0xc", "up", "dn", start, start + 3_600_000, 0.01, 5.0, False))
    return tr


def _working(tr: Trader, cid: str, price: float) -> Order:
    om = tr.core.om
    o = Order(cid, 0, 0, price, 5.0, False, 0)
    om.orders[cid] = o
    om.on_sent(o, 1)
    om.on_ack(o, "old-" + cid, "live", 1)
    return o


async def test_cancels_go_first_then_one_batch_of_places(tmp_path):
    ex = _BatchExecutor()
    tr = _trader(tmp_path, ex)
    try:
        old = [_working(tr, f"w{i}", 0.40 + i / 100) for i in range(2)]
        new = [Order(f"n{i}", 0, 0, 0.30 + i / 100, 5.0, False, 2) for i in range(3)]
        for o in new:
            tr.core.om.orders[o.client_id] = o
        actions = [Action("place", new[0]), Action("cancel", old[0]), Action("place", new[1]),
                   Action("cancel", old[1]), Action("place", new[2])]
        await tr._execute(actions, None)
        assert ex.log[0] == ("cancel", ("old-w0", "old-w1"))            # every cancel before any place
        assert ex.log[1] == ("place_many", ("n0", "n1", "n2")) and len(ex.log) == 2
        assert new[0].order_id == "oid-n0" and new[2].order_id == "oid-n2"
        assert new[1].state.final and new[1].order_id is None           # its reject did not sink the others
    finally:
        tr.journal.close()


async def test_failed_batch_rejects_every_order_of_it(tmp_path):
    ex = _BatchExecutor(fail_batch=True)
    tr = _trader(tmp_path, ex)
    try:
        new = [Order(f"n{i}", 0, 0, 0.30 + i / 100, 5.0, False, 2) for i in range(2)]
        for o in new:
            tr.core.om.orders[o.client_id] = o
        await tr._execute([Action("place", o) for o in new], None)
        assert all(o.state.final and o.order_id is None for o in new)
        assert tr.core.risk.health.rest is False                       # a transport failure is a REST failure
    finally:
        tr.journal.close()


async def test_place_many_against_sim_is_one_post_orders():
    server = pytest.importorskip("hourmm_core.sim.polymarket.server")
    from hourmm_core.polymarket.trader_executor import TraderExecutor

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    seen: list[str] = []
    for name in ("h_post_order", "h_post_orders", "h_cancel", "h_cancel_many"):   # count calls per endpoint
        async def spy(request, _h=getattr(sim, name), _n=name):
            seen.append(_n)
            return await _h(request)
        setattr(sim, name, spy)
    await sim.start()
    a = Account.create()
    k = a.key.hex()
    ex = TraderExecutor.from_config(sim.urls["clob"], 137, Credentials(k if k.startswith("0x") else "0x" + k,
                                                                        a.address, 1))
    try:
        await ex.start()
        up = sim.hours[0].up_token
        orders = [dict(token_id=up, side="BUY", price=0.01 * (i + 1), size=5.0, tick_size=0.01, neg_risk=False,
                       post_only=True, client_id=f"b{i}") for i in range(17)]
        orders[3]["price"] = 0.333                                     # off the tick grid: rejected alone
        seen.clear()
        out = await ex.place_many(orders)
        assert len(out) == 17
        assert not out[3].ok and all(o.ok and o.order_id for i, o in enumerate(out) if i != 3), out
        ids = {o.order_id for o in out if o.ok}
        assert ids <= {o["id"] for o in await ex.open_orders()}
        assert seen == ["h_post_orders", "h_post_orders"]               # 15 + 2, no single POST /order
        done, failed = await ex.cancel(sorted(ids))
        assert set(done) == ids and not failed
        assert seen[2:] == ["h_cancel_many"]                             # 16 cancels: one DELETE /orders
    finally:
        await ex.close()
        await sim.stop()


async def test_hot_calls_go_on_the_event_loop_and_map_errors_like_the_library():
    """Cancels, posts and signing run through fast_wire (no pool hop); HTTP errors keep their types."""
    server = pytest.importorskip("hourmm_core.sim.polymarket.server")
    from hourmm_core.polymarket.executor import AuthError, Executor, OrderRequest, Rejected, TransientError

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    a = Account.create()
    k = a.key.hex()
    ex = Executor(sim.urls["clob"], 137, Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1),
                  post_retries=0)
    try:
        await ex.start()
        assert ex._wire is not None and ex._hot
        up = sim.hours[0].up_token
        ack = await ex.place(OrderRequest("w1", up, "BUY", 0.02, 5.0))
        sent = ex._wire.sent
        assert ack.success and sent >= 1
        res = await ex.cancel_many([ack.order_id, "0xunknown"])
        assert res.canceled == (ack.order_id,) and "0xunknown" in res.not_canceled
        assert ex._wire.sent == sent + 1
        with pytest.raises(Rejected):                                   # HTTP 400 from the venue
            await ex.place(OrderRequest("w2", up, "BUY", 0.02, 1.0))    # below the minimum size
        import aiohttp
        async with aiohttp.ClientSession() as s:                        # 503 before the venue saw it
            async with s.post(sim.urls["clob"] + "/_sim/fault", json={"rest_error": 503, "count": 1}) as r:
                assert r.status == 200
        with pytest.raises(TransientError):
            await ex.cancel("0xwhatever")
        ex._client.creds.api_passphrase = "wrong"                       # HTTP 401 -> AuthError, REST not ok
        with pytest.raises(AuthError):
            await ex.cancel("0xwhatever")
        assert ex.rest_ok is False
    finally:
        await ex.close()
        await sim.stop()


async def test_orders_signed_ahead_post_under_their_own_hash_and_a_changed_order_is_signed_again():
    """Executor.presign (used while a cancel is in flight): the venue acks the order under the hash
    signed ahead; a request whose signed fields differ from the presigned one is signed afresh."""
    server = pytest.importorskip("hourmm_core.sim.polymarket.server")
    from hourmm_core.polymarket.executor import Executor, OrderRequest

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    a = Account.create()
    k = a.key.hex()
    ex = Executor(sim.urls["clob"], 137, Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1))
    try:
        await ex.start()
        up = sim.hours[0].up_token
        reqs = [OrderRequest(f"p{i}", up, "BUY", 0.01 * (i + 1), 5.0) for i in range(3)]
        pre = await ex.presign(reqs)
        assert all(p is not None and p.local_id.startswith("0x") for p in pre)
        moved = [reqs[0], reqs[1], dataclasses.replace(reqs[2], price=0.07)]   # the last one changed since
        acks = await ex.place_many(moved, pre)
        assert [x.order_id for x in acks[:2]] == [pre[0].local_id, pre[1].local_id]
        assert acks[2].order_id != pre[2].local_id and ex.stats["presigned_used"] == 2
        one = await ex.place(OrderRequest("p9", up, "BUY", 0.05, 5.0), (await ex.presign(
            [OrderRequest("p9", up, "BUY", 0.05, 5.0)]))[0])
        assert one.success and ex.stats["presigned_used"] == 3
        assert {x.order_id for x in acks} | {one.order_id} <= {o["id"] for o in await ex.open_orders()}
    finally:
        await ex.close()
        await sim.stop()
