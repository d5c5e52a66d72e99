"""The stray sweep: its open-orders GET runs without the cycle lock, the comparison under it.

A snapshot that arrives during the GET (8-18 ms on the shared box) is decided on at once; an
order whose POST was in flight during the GET (so the GET may show it before we know its id)
is never taken for a stray, because the comparison waits for the pass that posts it.

Fake executor (no sockets): the order of calls is what matters; fair values are synthetic.
"""
from __future__ import annotations

import asyncio

from hourmm_core.trading.order_manager import OrderState
from hourmm_core.trading.trader import Trader
from tests.unit.trading.test_fast_cancel import _Executor, _snap, _trader


class _SweepExecutor(_Executor):
    """+ open_orders held by the test: returns whatever ``venue`` holds when released."""

    def __init__(self) -> None:
        super().__init__()
        self.venue: list[str] = []
        self.get_hold = asyncio.Event()
        self.get_started = asyncio.Event()

    async def open_orders(self, market=None):
        self.get_started.set()
        await self.get_hold.wait()
        return [{"id": i} for i in self.venue]


def _setup(tmp_path) -> tuple[Trader, _SweepExecutor]:
    tr, _ex, _j = _trader(tmp_path)
    ex = _SweepExecutor()
    tr.executor = ex
    return tr, ex


async def test_the_get_does_not_hold_the_cycle_lock(tmp_path):
    tr, ex = _setup(tmp_path)
    ex.venue = ["not-ours"]
    sweep = asyncio.ensure_future(tr.sweep_strays())
    await ex.get_started.wait()
    assert not tr._cycle_lock.locked()
    _snap(tr, 1, 0.35)
    await tr.cycle()                    # a pass runs while the GET is out
    assert tr.cycles == 1 and any(o.state is OrderState.LIVE for o in tr.core.om.orders.values())
    ex.get_hold.set()
    assert await sweep == ["not-ours"]                       # what we do not manage is cancelled
    assert ("cancel", ("not-ours",)) in ex.log
    assert all(o.state is OrderState.LIVE for o in tr.core.om.orders.values())   # ours untouched


async def test_an_order_posted_during_the_get_is_not_a_stray(tmp_path):
    tr, ex = _setup(tmp_path)
    sweep = asyncio.ensure_future(tr.sweep_strays())
    await ex.get_started.wait()
    ex.post_hold = asyncio.Event()
    _snap(tr, 1, 0.35)
    pass_a = asyncio.ensure_future(tr.cycle())
    await ex.posted.wait()              # the pass's POST is in flight (its orders have no id yet) ...
    posted = [o for o in tr.core.om.orders.values() if o.state is OrderState.SENT]
    assert posted and all(o.order_id is None for o in posted)
    # ... and the venue has already booked them (as the fake's acks will say): the GET shows them
    ex.venue = [f"oid-{o.client_id}" for o in posted]
    ex.get_hold.set()
    for _ in range(50):                 # let the loop run (no I/O: deterministic)
        await asyncio.sleep(0)
    assert not sweep.done()             # the comparison waits for the pass in flight
    ex.post_hold.set()
    await pass_a
    assert await sweep == []
    assert not any(e[0] == "cancel" for e in ex.log)
    assert all(o.state is OrderState.LIVE for o in posted)
