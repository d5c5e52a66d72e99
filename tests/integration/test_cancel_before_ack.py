"""Cancel by hash while the POST is in flight (issue 15), against the loopback Polymarket simulator.

The trader's cancel fast path, on a snapshot that arrives while a pass awaits its POST reply,
cancels the orders being posted by the signed order's hash (the venue's order id). What the
venue does with the two requests decides the case (``VenueHold`` holds the POST in the
simulator, before or after it is processed, until the test lets it go):

(a) the cancel reaches the venue before the POST: answered ``not_canceled`` (unknown hash).
    That is not a failed cancel (no fail-closed rule trips); the POST then books the order
    live, and the trader cancels it again at once, by its id.
(b) the venue processed the POST, the cancel hits the order before the POST's reply is back:
    the ack must not book the order LIVE.
(c) the POST is rejected: the cancel's answer is harmless.
(d) the user WebSocket runs throughout (PLACEMENT / CANCELLATION events arrive in whatever
    order the sockets deliver them): no early-cancelled order is ever booked LIVE, and the
    end state matches the venue.

Real V2 client (py_clob_client_v2 signing, the executor's wire), real simulator, real user WS;
the market WS books and the snapshots are stubs (fair 0.35 -> 0.70: a synthetic jump, the shape
under test). Everything waits on events and conditions, never on elapsed time.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.config import TraderConfig
from hourmm_core.polymarket.trader_executor import TraderExecutor
from hourmm_core.polymarket.user_ws import UserWsClient
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.order_manager import EARLY_MISSED, EARLY_NONE, OrderState
from hourmm_core.trading.snapshot_client import Snapshot
from hourmm_core.trading.trader import Trader
from tests.conftest import new_credentials, until
from tests.conftest import sim_fault as fault

pytestmark = pytest.mark.timeout(120)

H = 1_767_225_600_000 + 3 * HOUR_MS   # an hour of the (synthetic) replay window
NOW = H + 10 * 60_000                # ten minutes in: quoting phase


class VenueHold:
    """Holds the simulator's POST /order(s) handling: ``mode`` "before" (the request waits before
    the venue processes it) or "after" (processed, its reply held); None = pass through."""

    def __init__(self, sim: PolymarketSim) -> None:
        self.mode: str | None = None
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        for name in ("h_post_order", "h_post_orders"):
            setattr(sim, name, self._wrap(getattr(sim, name)))   # before sim.start(): the routes use these

    def _wrap(self, handler: Any) -> Any:
        async def held(request: Any) -> Any:
            mode = self.mode
            if mode == "before":
                self.entered.set()
                await self.release.wait()
            resp = await handler(request)
            if mode == "after":
                self.entered.set()
                await self.release.wait()
            return resp
        return held


class _Journal:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Any, str | None]] = []

    def event(self, ts_ms: int, kind: str, payload: Any = None, *, market: str | None = None,
              order_id: str | None = None) -> None:
        self.rows.append((kind, payload, order_id))

    def of(self, kind: str) -> list[tuple[Any, str | None]]:
        return [(p, oid) for k, p, oid in self.rows if k == kind]

    def close(self) -> None:
        pass


class _Book:
    tick_size = 0.01

    def __init__(self, bid: float, ask: float) -> None:
        self._top = type("Top", (), {"bid": bid, "ask": ask})()

    def top(self) -> Any:
        return self._top


class _MarketWs:
    connected = True
    bad_frames: dict[str, int] = {}

    def __init__(self, up: str, down: str) -> None:
        self.books = {up: _Book(0.34, 0.36), down: _Book(0.64, 0.66)}


class Venue:
    """Simulator + one Trader on its real executor and user WS (market WS and snapshots stubbed)."""

    def __init__(self, tmp_path: Any, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.clock = ScaledClock(1.0, NOW, time.time_ns() // 1_000_000)
        self.sim = PolymarketSim(SimConfig(speed=1.0, start_ms=H, hours=1, seed=5, agents=False,
                                           heartbeat_timeout_s=3600.0), clock=self.clock)
        self.hold = VenueHold(self.sim)
        self.tmp = tmp_path
        self.seq = 0
        self.booked_live: list[str] = []   # early-cancelled orders the trader ever booked LIVE/PARTIAL

    async def start(self) -> Trader:
        await self.sim.start()
        hm = self.sim.hours[0]
        self.hm = hm
        u = self.sim.urls
        cfg = dataclasses.replace(TraderConfig.from_env({"CLOB_URL": u["clob"], "PM_WS_URL": u["ws"],
                                                         "SQLITE_PATH": str(self.tmp / "j.db"), **self.env}),
                                  control_port=0)
        creds = new_credentials()
        ex = TraderExecutor.from_config(cfg.clob_url, cfg.chain_id, creds)
        await ex.start()
        assert await ex.heartbeat()            # the dead-man switch acknowledged: new orders allowed
        self.j = _Journal()
        tr = self.tr = Trader(cfg, self.clock, creds, executor=ex, journal=self.j)
        tr.core.set_market(MarketRef(hm.slug, hm.condition_id, hm.up_token, hm.down_token, H, H + HOUR_MS,
                                     0.01, 5.0, False))
        tr.market_ws = _MarketWs(hm.up_token, hm.down_token)
        key, secret, phrase = ex.api_creds
        # the real user channel; no state callback (its connect would request a resync: not under test)
        self.uws = UserWsClient(u["ws"], key, secret, phrase, [hm.condition_id], clock=self.clock,
                                on_event=tr._on_user_event, queue_events=False)
        tr.user_ws = self.uws
        self.uws.start()
        await until(lambda: self.uws.connected, what="user WS connected")
        h = tr.core.risk.health
        h.market_ws = h.user_ws = h.rest = True
        self._spy()
        return tr

    def _spy(self) -> None:
        """Record any early-cancelled order booked LIVE / PARTIAL by an ack or a user-WS event."""
        om = self.tr.core.om

        def check(o: Any) -> None:
            if o is not None and o.local_id and o.early != EARLY_NONE and o.state in (OrderState.LIVE,
                                                                                       OrderState.PARTIAL):
                self.booked_live.append(o.local_id)
        for name in ("on_ack", "on_order_update", "on_fill"):
            orig = getattr(om, name)

            def w(*a: Any, _orig: Any = orig, **kw: Any) -> Any:
                r = _orig(*a, **kw)
                for o in om.orders.values():
                    check(o)
                return r
            setattr(om, name, w)

    def snap(self, fair_up: float) -> Snapshot:
        self.seq += 1
        s = Snapshot(self.seq, self.clock.now_ms(), H, H + HOUR_MS, fair_up, 0.01, False)
        self.tr.snapshots.latest = s
        return s

    def venue_status(self, oid: str) -> str | None:
        o = self.sim.ex.orders.get(oid)
        return None if o is None else o.status

    def ours_open_on_venue(self) -> list[str]:
        return [o["id"] for o in self.sim.state()["open_orders"]]

    async def stop(self) -> None:
        with_exc = []
        for c in (self.uws.stop(), self.tr.executor.close(), self.sim.stop()):
            try:
                await c
            except Exception as e:  # noqa: BLE001
                with_exc.append(e)
        assert not with_exc, with_exc

    async def pass_with_post_held(self, mode: str) -> tuple["asyncio.Task[Any]", list[Any]]:
        """The first pass (fair 0.35) places the quotes; its POST is held at the venue (``mode``).
        Returns the pass and the orders being posted (SENT, their hashes known)."""
        self.hold.mode = mode
        self.snap(0.35)
        pass_a = asyncio.ensure_future(self.tr.cycle())
        await self.hold.entered.wait()
        sent = [o for o in self.tr.core.om.orders.values() if o.state is OrderState.SENT]
        assert sent and all(o.local_id and o.order_id is None for o in sent), sent
        return pass_a, sent

    async def jump(self) -> list[Any]:
        """The snapshot that endangers the quotes, handed over while the POST is in flight: the
        fast path cancels the orders being posted, by their hashes. Returns those orders."""
        tr = self.tr
        assert tr._executing
        before = tr.early_cancels
        await tr._on_snapshot(self.snap(0.70))
        early = [o for o in tr.core.om.orders.values() if o.early != EARLY_NONE]
        assert early and all(any(p.get("before_ack") for p, oid in self.j.of("cancel") if oid == o.local_id)
                             for o in early)
        assert early and tr.early_cancels - before == len(early)
        return early


@pytest.mark.parametrize("max_open", ["1", "4"])
async def test_cancel_overtakes_the_post_then_the_live_order_is_cancelled_again(tmp_path, max_open) -> None:
    """(a) + (d); one order (POST /order) or a batch (POST /orders)"""
    v = Venue(tmp_path, {"MAX_OPEN_ORDERS": max_open})
    tr = await v.start()
    try:
        pass_a, sent = await v.pass_with_post_held("before")
        assert (len(sent) == 1) == (max_open == "1")
        early = await v.jump()
        assert set(map(id, early)) == set(map(id, sent))     # all of the 0.35 quotes are stale at 0.70
        for o in early:     # the venue did not know the hashes yet: missed, not failed, not gone
            assert o.state is OrderState.CANCELLING and o.early == EARLY_MISSED and o.order_id is None
            assert v.venue_status(o.local_id) is None
        rejects = {oid: p for p, oid in v.j.of("cancel_reject")}
        assert all(rejects[o.local_id]["before_ack"] for o in early)
        assert not tr._fast_off                  # no failed-cancel rule tripped
        posts = v.sim.requests["POST /order"] + v.sim.requests["POST /orders"]
        v.hold.release.set()
        await pass_a                             # acked live -> cancelled again at once, in the same pass
        assert tr.recancels == len(early)
        for o in early:
            assert o.order_id == o.local_id and o.state is OrderState.CANCELLED and o.early == EARLY_NONE
            assert v.venue_status(o.order_id) == "CANCELED"
        acks = [oid for _p, oid in v.j.of("cancel_ack")]
        assert all(acks.count(o.order_id) == 1 for o in early)
        assert v.ours_open_on_venue() == [] and tr.core.om.open_count == 0
        assert posts == v.sim.requests["POST /order"] + v.sim.requests["POST /orders"]   # nothing re-posted
        # (d) the user channel's PLACEMENT and CANCELLATION of each order arrive in their own time
        await until(lambda: all(any(p["type"] == "CANCELLATION" for p, oid in v.j.of("order_update")
                                    if oid == o.order_id) for o in early), what="user-WS cancellations")
        assert v.booked_live == []
        assert all(o.state is OrderState.CANCELLED for o in early) and tr.core.om.yes_tokens == 0
    finally:
        await v.stop()


async def test_cancel_hits_the_order_before_the_post_reply_ack_does_not_book_it_live(tmp_path) -> None:
    """(b) + (d)"""
    v = Venue(tmp_path)
    tr = await v.start()
    try:
        pass_a, sent = await v.pass_with_post_held("after")
        assert all(v.venue_status(o.local_id) == "LIVE" for o in sent)   # on the book, reply not back
        early = await v.jump()
        for o in early:
            assert o.state is OrderState.CANCELLED and v.venue_status(o.local_id) == "CANCELED"
        v.hold.release.set()
        await pass_a
        for o in early:          # the ack recorded the id and nothing else
            assert o.order_id == o.local_id and o.state is OrderState.CANCELLED
        assert tr.recancels == 0 and v.ours_open_on_venue() == [] and tr.core.om.open_count == 0
        assert [p["status"] for p, oid in v.j.of("ack") if oid in {o.order_id for o in early}] == \
            ["live"] * len(early)
        await until(lambda: all(any(p["type"] == "CANCELLATION" for p, oid in v.j.of("order_update")
                                    if oid == o.order_id) for o in early), what="user-WS cancellations")
        assert v.booked_live == []
    finally:
        await v.stop()


async def test_rejected_post_makes_the_missed_cancel_harmless(tmp_path) -> None:
    """(c)"""
    v = Venue(tmp_path)
    tr = await v.start()
    try:
        await fault(v.sim, {"reject_next": 100})
        pass_a, sent = await v.pass_with_post_held("before")
        early = await v.jump()
        assert all(o.early == EARLY_MISSED for o in early) and not tr._fast_off
        n_cancel_requests = sum(n for k, n in v.sim.requests.items() if k.startswith("DELETE"))
        v.hold.release.set()
        await pass_a
        for o in early:
            assert o.state is OrderState.REJECTED and v.venue_status(o.local_id) is None
        assert tr.recancels == 0
        assert sum(n for k, n in v.sim.requests.items() if k.startswith("DELETE")) == n_cancel_requests
        assert v.ours_open_on_venue() == [] and tr.core.om.open_count == 0
    finally:
        await v.stop()


async def test_without_cancel_in_flight_the_orders_being_posted_wait_for_their_ack(tmp_path) -> None:
    """The switch (``cancel_in_flight=False``, what main did before): the fast path leaves the
    orders being posted alone, they are booked LIVE on the ack, and only a later pass cancels them."""
    v = Venue(tmp_path)
    tr = await v.start()
    tr.cancel_in_flight = False
    try:
        v.hold.mode = "before"
        v.snap(0.35)
        pass_a = asyncio.ensure_future(tr.cycle())
        await v.hold.entered.wait()
        sent = [o for o in tr.core.om.orders.values() if o.state is OrderState.SENT]
        assert sent and all(o.local_id is None for o in sent)      # signed inside place(), as before
        await tr._on_snapshot(v.snap(0.70))
        assert tr.early_cancels == 0 and all(o.state is OrderState.SENT for o in sent)
        v.hold.release.set()
        await pass_a
        assert all(o.state is OrderState.LIVE for o in sent) and sorted(v.ours_open_on_venue()) == \
            sorted(o.order_id for o in sent)
        await tr.cycle()        # the next pass cancels them
        assert all(o.state is OrderState.CANCELLED or o.state is OrderState.FILLED for o in sent)
    finally:
        await v.stop()
