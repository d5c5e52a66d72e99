"""Bug 4 (issue 13): HTTP 429 backs off, honouring Retry-After (capped), exponential + jitter without it.

Against the loopback Polymarket simulator's 429 fault; the simulator counts every CLOB
REST attempt, so the tests count attempts, never elapsed time.
"""
import asyncio

import pytest

from hourmm_core.polymarket.executor import Executor, OrderRequest, RateGate, RateLimited, parse_retry_after
from hourmm_core.polymarket.trader_executor import TraderExecutor
from hourmm_core.sim.polymarket import server
from tests.conftest import new_credentials as creds
from tests.conftest import sim_fault as fault

pytestmark = pytest.mark.timeout(120)


async def started():
    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    ex = Executor(sim.urls["clob"], 137, creds())
    await ex.start()
    return sim, ex


async def test_cancel_honours_retry_after_and_places_do_not_hammer() -> None:
    sim, ex = await started()
    try:
        hm = sim.hours[0]
        ack = await ex.place(OrderRequest("q1", hm.up_token, "BUY", 0.02, 10.0))
        await fault(sim, {"rest_error": 429, "count": 3, "retry_after_s": 1})
        before = dict(sim.requests)
        cancel = asyncio.create_task(ex.cancel(ack.order_id))
        while ex.rate_gate.hits < 1:   # the first 429 closed the gate
            await asyncio.sleep(0.01)
        # while it is closed a place is refused locally: nothing reaches the venue
        with pytest.raises(RateLimited):
            await ex.place(OrderRequest("q2", hm.up_token, "BUY", 0.03, 10.0))
        out = TraderExecutor(ex)
        res = await out.place(hm.up_token, "BUY", 0.03, 10.0, tick_size="0.01", neg_risk=False, post_only=True,
                              client_id="q3")
        assert res.rate_limited and not res.ok and res.retry_after_s > 0
        got = await cancel
        assert got.canceled == (ack.order_id,)
        sent = {k: v - before.get(k, 0) for k, v in sim.requests.items() if v != before.get(k, 0)}
        assert sent == {"DELETE /order": 4}, sent      # 3 x 429 + the one that worked, no place sent
        assert ex.rate_gate.delays == [1.0, 1.0, 1.0]   # Retry-After honoured each time
        assert sim.errors["fault_429"] == 3
    finally:
        await ex.close()
        await sim.stop()


async def test_no_retry_after_means_exponential_jittered_backoff_for_reads_and_heartbeat() -> None:
    sim, ex = await started()
    try:
        await fault(sim, {"rest_error": 429, "count": 3, "retry_after_s": None})
        before = dict(sim.requests)
        assert await ex.open_orders() == []             # the stray sweep's read: retried after each wait
        sent = {k: v - before.get(k, 0) for k, v in sim.requests.items() if v != before.get(k, 0)}
        assert sent == {"GET /data/orders": 4}, sent
        d = ex.rate_gate.delays
        assert len(d) == 3 and 0.25 <= d[0] <= 0.5 and 0.5 <= d[1] <= 1.0 and 1.0 <= d[2] <= 2.0, d
        # heartbeat: a 429 fails the beat, and the next beat waits for the gate instead of hammering
        await fault(sim, {"rest_error": 429, "count": 1, "retry_after_s": 0.5})
        before = dict(sim.requests)
        assert await ex.heartbeat() is False and not ex.heartbeat_ok
        assert ex.rate_gate.remaining() > 0
        assert await ex.heartbeat() is True
        sent = {k: v - before.get(k, 0) for k, v in sim.requests.items() if v != before.get(k, 0)}
        assert sent == {"POST /v1/heartbeats": 2}, sent
        assert ex.rate_gate.delays[-1] == 0.5
    finally:
        await ex.close()
        await sim.stop()


async def test_retry_after_is_capped_and_parsed_strictly() -> None:
    g = RateGate(cap_s=30.0, seed=1)
    assert g.on_429(3600.0) == 30.0
    assert g.on_429(2.0) == 2.0
    assert [parse_retry_after(v) for v in ("1", " 2.5 ", "-1", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT",
                                           None)] == [1.0, 2.5, None, None, None, None, None]
    g.on_success()
    assert g.streak == 0
