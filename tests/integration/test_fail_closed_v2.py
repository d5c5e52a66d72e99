"""Issue 13, V2 operations: unknown submit outcomes, the 425 restart window, and the trader's
fail-closed order gate (resync after user-WS reconnects, incomplete reconciliation, heartbeat).

Executor tests run against the loopback Polymarket simulator (real V2 client, real signatures);
the trader-gate tests use a recording executor (no sockets) so each gate is checked exactly.
Prices here are order-book levels, not market data.
"""
from __future__ import annotations

import asyncio
import dataclasses
import types

import pytest

from hourmm_core.clock import WallClock
from hourmm_core.config import TraderConfig
from hourmm_core.polymarket.executor import (
    POST_ONLY_WINDOW_MS,
    EngineRestarting,
    Executor,
    OrderRequest,
    Rejected,
    UnknownOutcome,
)
from hourmm_core.polymarket.trader_executor import TraderExecutor
from hourmm_core.sim.polymarket import server
from hourmm_core.trading import trader as trader_mod
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.order_manager import Action, Order, OrderState
from hourmm_core.trading.trader import PlaceResult, Trader
from tests.conftest import new_credentials as creds
from tests.conftest import sim_fault as fault

pytestmark = pytest.mark.timeout(120)


async def started(**kw):
    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    ex = Executor(sim.urls["clob"], 137, creds(), retry_backoff_s=0.01, **kw)
    await ex.start()
    return sim, ex


def resting(sim, hm) -> list[str]:
    return [o["id"] for o in sim.state()["open_orders"] if o.get("asset_id") == hm.up_token]


# ----------------------------------------------------------------------- unknown outcomes
async def test_placed_then_503_is_recovered_by_lookup_not_reposted() -> None:
    sim, ex = await started()
    try:
        hm = sim.hours[0]
        await fault(sim, {"place_then_503": 1})
        ack = await ex.place(OrderRequest("k1", hm.up_token, "BUY", 0.05, 10.0))
        assert ack.recovered and resting(sim, hm) == [ack.order_id]
        assert sim.requests["POST /order"] == 1 and sim.errors["fault_placed_then_503"] == 1
    finally:
        await ex.close()
        await sim.stop()


async def test_unknown_outcome_keeps_the_signed_orders_hash_and_resolves_later() -> None:
    sim, ex = await started()
    try:
        hm = sim.hours[0]
        # placed, then 503, and the venue stays down for the lookups and the re-posts as well
        await fault(sim, {"place_then_503": 1, "outage_after": 50})
        with pytest.raises(UnknownOutcome) as ei:
            await ex.place(OrderRequest("k2", hm.up_token, "BUY", 0.05, 10.0))
        oid = ei.value.order_id
        assert resting(sim, hm) == [oid]          # the id we kept IS the order on the book
        await fault(sim, {"rest_error": 503, "count": 0})
        sim.faults["rest_error_count"] = 0
        got = await ex.lookup_order(oid)
        assert got is not None and got["id"] == oid
        assert await ex.lookup_order("0x" + "ab" * 32) is None    # the exchange does not know it
        # the trader adapter reports it as unknown with that id, never as a plain reject
        await fault(sim, {"place_then_503": 1, "outage_after": 50})
        out = await TraderExecutor(ex).place(hm.up_token, "BUY", 0.04, 10.0, tick_size="0.01", neg_risk=False,
                                             post_only=True, client_id="k3")
        assert out.unknown and not out.ok and out.order_id in resting(sim, hm)
    finally:
        await ex.close()
        await sim.stop()


# -------------------------------------------------------------- 425: engine restart window
async def test_engine_restart_425_backs_off_then_post_only_window() -> None:
    sim, ex = await started()
    ex.clock = clock = _Clock()   # the window is venue time: the trader's clock, not the wall
    try:
        hm = sim.hours[0]
        await fault(sim, {"engine_restart": {"count_425": 2, "post_only_s": 600}})
        with pytest.raises(EngineRestarting):       # nothing placed, not retried in a hurry
            await ex.place(OrderRequest("r1", hm.up_token, "BUY", 0.05, 10.0))
        assert ex.engine_restarting and ex.restart_gate.remaining() > 0
        assert await ex.open_orders() == []         # waits, meets the second 425, waits again, succeeds
        assert sim.errors["fault_425"] == 2 and not ex.engine_restarting
        assert 1.0 <= ex.restart_gate.delays[0] <= 2.0 and 2.0 <= ex.restart_gate.delays[1] <= 4.0
        assert ex.post_only_window() == POST_ONLY_WINDOW_MS / 1000
        before = sim.requests["POST /order"]
        with pytest.raises(Rejected, match="post-only"):   # refused locally during the window
            await ex.place(OrderRequest("r2", hm.up_token, "BUY", 0.05, 10.0, post_only=False))
        assert sim.requests["POST /order"] == before
        ack = await ex.place(OrderRequest("r3", hm.up_token, "BUY", 0.05, 10.0, post_only=True))
        assert ack.success
        # 2 minutes later in the trader's clock the executor's window is over; the simulator's own
        # (600 s of its time, a client that ignores the window) still refuses the order
        clock.advance(POST_ONLY_WINDOW_MS)
        assert ex.post_only_window() == 0
        with pytest.raises(Rejected, match="post-only"):
            await ex.place(OrderRequest("r4", hm.up_token, "BUY", 0.06, 10.0, post_only=False))
        assert sim.errors["post_only_window_reject"] == 1
    finally:
        await ex.close()
        await sim.stop()


# ------------------------------------------------------------------ trader order gate
class _Venue:
    """Recording executor: open orders / trades can be made to fail; heartbeat state settable."""

    def __init__(self) -> None:
        self.places: list[str] = []
        self.cancels: list[list[str]] = []
        self.open_fail = False
        self.heartbeat_ok = True
        self.lookups: dict[str, dict | None] = {}
        self.unknown_next = False
        self.n_lookups = 0
        self.beats = 0
        self.heartbeat_fail_next = 0

    async def heartbeat(self) -> bool:
        self.beats += 1
        ok = self.heartbeat_ok
        if self.heartbeat_fail_next > 0:
            self.heartbeat_fail_next -= 1
            ok = False
        return ok

    async def place(self, token_id, side, price, size, *, tick_size, neg_risk, post_only, client_id):
        self.places.append(client_id)
        if self.unknown_next:
            self.unknown_next = False
            return PlaceResult(False, order_id="0xunknown", error="unknown outcome: HTTP 503", unknown=True)
        return PlaceResult(True, order_id=f"oid-{client_id}", status="live")

    async def cancel(self, ids):
        self.cancels.append(list(ids))
        return list(ids), {}

    async def cancel_all(self) -> bool:
        return True

    async def open_orders(self, market=None):
        if self.open_fail:
            raise ConnectionError("open orders: HTTP 503")
        return []

    async def trades(self, market=None):
        return []

    async def lookup_order(self, oid):
        self.n_lookups += 1
        return self.lookups.get(oid)


class _Clock:
    """The trader's clock, moved by hand: the gates' waits are in trader time (a simulator may
    run it 300x faster than the wall), so the tests step it instead of sleeping."""

    speed = 1.0

    def __init__(self) -> None:
        self.t = WallClock().now_ms()

    def now_ms(self) -> int:
        return self.t

    def advance(self, ms: int) -> int:
        self.t += ms
        return self.t


def _trader(tmp_path, venue, clock=None) -> Trader:
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    clock = clock or WallClock()
    tr = Trader(cfg, clock, None, executor=venue)
    now = clock.now_ms()
    hs = now - now % 3_600_000
    tr.core.set_market(MarketRef("s", "0xc", "up", "dn", hs, hs + 3_600_000, 0.01, 5.0, False))
    return tr


def _place_action(tr: Trader, cid: str) -> Action:
    o = Order(cid, 0, 0, 0.45, 5.0, False, 0)
    tr.core.om.orders[cid] = o
    return Action("place", o)


async def test_incomplete_reconciliation_stops_new_orders_until_a_complete_one(tmp_path) -> None:
    v = _Venue()
    clock = _Clock()
    tr = _trader(tmp_path, v, clock)
    try:
        v.open_fail = True
        rep = await tr.reconcile(clock.now_ms())
        assert not rep.complete and tr.place_block_reason() == "resync pending (reconciliation incomplete)"
        await tr._execute([_place_action(tr, "a1")], None)
        assert v.places == [] and tr.core.om.orders["a1"].state is OrderState.REJECTED
        await tr._maybe_resync(clock.now_ms())          # still failing: still stopped
        assert tr.place_block_reason() is not None and tr.resyncs == 1
        v.open_fail = False
        # retried every RESYNC_EVERY_MS of trader time, not on every pass
        await tr._maybe_resync(clock.advance(trader_mod.RESYNC_EVERY_MS - 1))
        assert tr.resyncs == 1 and tr.place_block_reason() is not None
        await tr._maybe_resync(clock.advance(1))
        assert tr.resyncs == 2 and tr.place_block_reason() is None
        await tr._execute([_place_action(tr, "a2")], None)
        assert v.places == ["a2"]
        tr.journal.flush()
        gates = [e.payload for e in tr.journal.events("order_gate")]
        assert [g["blocked"] for g in gates] == [True, False]
    finally:
        tr.journal.close()


async def test_user_ws_reconnect_resyncs_before_quoting_again(tmp_path) -> None:
    v = _Venue()
    tr = _trader(tmp_path, v)
    tr.user_ws = types.SimpleNamespace(connected=True, markets=("0xc",))   # the channel's state only
    try:
        await tr._on_user_state(True, "connected")
        assert tr.place_block_reason() == "resync pending (user WS (re)connected)"
        await tr._execute([_place_action(tr, "b1")], None)
        assert v.places == []
        # dropped again before the resync ran: it waits for the channel (a pass now would leave a
        # gap the channel never replays); nothing is read from the venue meanwhile
        tr.user_ws.connected = False
        await tr._maybe_resync(WallClock().now_ms())
        assert tr.resyncs == 0 and tr.place_block_reason() is not None
        tr.user_ws.connected = True
        await tr._maybe_resync(WallClock().now_ms())
        assert tr.resyncs == 1 and tr.place_block_reason() is None
        await tr._execute([_place_action(tr, "b2")], None)
        assert v.places == ["b2"]
        tr.journal.flush()
        assert [e.kind for e in tr.journal.events(("reconcile", "order_gate"))][-2:] == ["reconcile", "order_gate"]
    finally:
        tr.journal.close()


async def test_heartbeat_failure_stops_new_orders_until_a_fresh_ack(tmp_path) -> None:
    v = _Venue()
    tr = _trader(tmp_path, v)
    try:
        v.heartbeat_ok = False
        assert tr.place_block_reason() == "exchange heartbeat not acknowledged"
        await tr._execute([_place_action(tr, "c1")], None)
        assert v.places == []
        v.heartbeat_ok = True
        await tr._execute([_place_action(tr, "c2")], None)
        assert v.places == ["c2"]
    finally:
        tr.journal.close()


async def test_a_failed_heartbeat_is_retried_soon_not_a_whole_interval_later(tmp_path, monkeypatch) -> None:
    """New orders wait for a fresh ack and the venue cancels everything ~10 s after the last good
    beat: after a failure the next beat follows within HEARTBEAT_RETRY_S (doubling), not after a
    whole interval (made an hour long here, so only a retry can produce the second beat)."""
    monkeypatch.setattr(trader_mod, "HEARTBEAT_EVERY_S", 3600.0)
    v = _Venue()
    v.heartbeat_fail_next = 2
    tr = _trader(tmp_path, v)
    task = asyncio.create_task(tr._heartbeat_loop())
    try:
        async def beats(n: int) -> None:
            while v.beats < n:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(beats(3), 30)     # fail, fail, then the acked beat
        await asyncio.sleep(0.3)
        assert v.beats == 3                       # after an ack: back to the (hour-long) interval
    finally:
        task.cancel()
        tr.journal.close()


async def test_unknown_order_defers_its_cancel_and_is_resolved_by_lookup(tmp_path) -> None:
    v = _Venue()
    tr = _trader(tmp_path, v)
    try:
        v.unknown_next = True
        await tr._execute([_place_action(tr, "d1")], None)
        o = tr.core.om.orders["d1"]
        assert o.order_id == "0xunknown" and not o.state.final        # kept, not rejected
        assert tr.place_block_reason() == "1 order(s) with unknown submit outcome"
        # a cancel of it is deferred (never raced against its placement); nothing new is placed
        await tr._execute([Action("cancel", o), _place_action(tr, "d2")], None)
        assert v.cancels == [] and v.places == ["d1"]
        v.lookups["0xunknown"] = {"id": "0xunknown", "status": "LIVE", "size_matched": "0"}
        await tr._maybe_resync(WallClock().now_ms())
        assert tr._unknown == {} and tr.place_block_reason() is None and o.state is OrderState.LIVE
        await tr._execute([Action("cancel", o)], None)
        assert v.cancels == [["0xunknown"]]
        tr.journal.flush()
        kinds = [e.kind for e in tr.journal.events(("unknown", "unknown_resolved"))]
        assert kinds == ["unknown", "unknown_resolved"]
    finally:
        tr.journal.close()


async def test_unknown_order_the_exchange_never_saw_is_closed_after_grace(tmp_path) -> None:
    v = _Venue()
    clock = _Clock()
    tr = _trader(tmp_path, v, clock)
    try:
        v.unknown_next = True
        await tr._execute([_place_action(tr, "e1")], None)
        await tr._maybe_resync(clock.now_ms())                     # lookup: None, but within the grace
        assert v.n_lookups == 1 and "0xunknown" in tr._unknown
        await tr._maybe_resync(clock.now_ms())                     # lookups are paced in trader time
        assert v.n_lookups == 1
        await tr._maybe_resync(clock.advance(trader_mod.UNKNOWN_LOOKUP_MS))
        assert v.n_lookups == 2 and "0xunknown" in tr._unknown  # absent twice, grace not over yet
        await tr._maybe_resync(clock.advance(trader_mod.UNKNOWN_GRACE_MS))   # absent after the grace
        assert v.n_lookups == 3
        assert tr._unknown == {} and tr.core.om.orders["e1"].state.final
        tr.journal.flush()
        ev = tr.journal.events("unknown_resolved")[-1].payload
        assert ev["found"] is False
    finally:
        tr.journal.close()


# --------------------------------------------------------------- tick_size_change drops the book
async def test_tick_size_change_drops_the_book_until_a_fresh_snapshot() -> None:
    from hourmm_core.polymarket.market_ws import MarketWsClient

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    await sim.start()
    mws = None
    try:
        hm = sim.hours[0]
        mws = MarketWsClient(sim.urls["ws"], (hm.up_token, hm.down_token), clock=sim.clock,
                             backoff_initial_s=0.05, queue_events=False)
        seen: list[tuple[str, bool]] = []
        mws.on_event = lambda ev: seen.append((ev.kind, mws.books.books[hm.up_token].valid))
        mws.start()
        loop = asyncio.get_running_loop()

        async def until(cond, what):
            end = loop.time() + 30
            while not cond():
                assert loop.time() < end, what
                await asyncio.sleep(0.02)

        await until(lambda: mws.healthy, "first books")
        await fault(sim, {"tick_size": 0.001, "token_id": hm.up_token})
        await until(lambda: any(k == "tick_size_change" for k, _ in seen), "tick_size_change")
        # at the change the book was dropped (never quoted on the old grid) ...
        assert [v for k, v in seen if k == "tick_size_change"][0] is False
        assert "tick size changed" in (mws.books.books[hm.up_token].resync_reason or "") or mws.healthy
        # ... and a fresh snapshot (resubscribe) brings it back on the new grid
        await until(lambda: mws.healthy and mws.book_resyncs >= 1, "fresh book after the change")
        assert mws.books.books[hm.up_token].tick_size == 0.001
    finally:
        if mws is not None:
            await mws.stop()
        await sim.stop()


# ------------------------------------------------------ cross-matched maker fills (Up vs Down)
async def test_cross_matched_maker_fill_is_attributed_to_our_token_live_and_in_reconcile() -> None:
    """Our BUY of Down rests; another client BUYs Up against it (a mint cross-match). The fill is
    ours, on the Down token, as a BUY at our price -- on the user channel and from REST trades."""
    from hourmm_core.polymarket.user_ws import TradeUpdate, UserWsClient
    from hourmm_core.trading.decision import DecisionCore
    from hourmm_core.trading.reconcile import ReconcileReport, exchange_fills
    from hourmm_core.trading.risk_engine import Limits
    from hourmm_core.trading.session import Schedule
    from hourmm_core.trading.strategy import StrategyParams
    from hourmm_core.trading.types import BUY, DOWN, UP

    sim, us = await started()
    them = Executor(sim.urls["clob"], 137, creds(), retry_backoff_s=0.01)
    await them.start()
    uws = None
    try:
        hm = sim.hours[0]
        key, secret, phrase = us.api_creds
        uws = UserWsClient(sim.urls["ws"], key, secret, phrase, [hm.condition_id], clock=sim.clock,
                           backoff_initial_s=0.05)
        uws.start()
        assert await uws.wait_connected(10)
        ours = await us.place(OrderRequest("m1", hm.down_token, "BUY", 0.40, 10.0))
        await them.place(OrderRequest("t1", hm.up_token, "BUY", 0.60, 10.0, post_only=False))
        tu = None
        while tu is None:
            ev = await asyncio.wait_for(uws.queue.get(), 20)
            if isinstance(ev, TradeUpdate):
                tu = ev
        fills = tu.own_fills(key, [ours.order_id])
        assert len(fills) == 1
        f = fills[0]
        assert (f.order_id, f.asset_id, f.side, f.price, f.size, f.liquidity) == \
            (ours.order_id, hm.down_token, "BUY", 0.40, 10.0, "MAKER")
        # reconciliation from the exchange's trade history: same attribution
        core = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
        core.set_market(MarketRef(hm.slug, hm.condition_id, hm.up_token, hm.down_token, hm.hour_ms,
                                  hm.hour_ms + 3_600_000))
        rep = ReconcileReport()
        new = exchange_fills(core, core.market, await us.trades(market=hm.condition_id), key, 0, rep)
        assert [(x.token, x.side, x.price, x.size) for x in new] == [(DOWN, BUY, 0.40, 10.0)]
        assert core.om.position(DOWN) == 10.0 and core.om.position(UP) == 0.0 and not rep.errors
        # without the maker side in the message the token still decides it (buy vs buy = cross)
        raw = dict((await us.trades(market=hm.condition_id))[0])
        raw["maker_orders"] = [{k: v for k, v in mo.items() if k != "side"} for mo in raw["maker_orders"]]
        core2 = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
        core2.set_market(core.market)
        new2 = exchange_fills(core2, core2.market, [raw], key, 0, ReconcileReport())
        assert [(x.token, x.side) for x in new2] == [(DOWN, BUY)]
    finally:
        if uws is not None:
            await uws.stop()
        await them.close()
        await us.close()
        await sim.stop()


# ------------------------------------------------- end to end: the trader against the simulator
@pytest.mark.timeout(150)
async def test_trader_keeps_an_unknown_order_and_resolves_it_against_the_sim(tmp_path) -> None:
    """Placed-then-503 while the venue stays down for the lookups: the trader keeps the order under
    its signed hash (no reject, no blind re-quote), then resolves it once the venue answers."""
    from tests.integration.test_trader import H, Harness, kinds

    h = Harness(tmp_path, 10.0, H + 10 * 60_000)
    await h.start()
    try:
        tr = await h.start_trader()
        await h.until(lambda: len(h.our_open_orders()) > 0 and tr.place_block_reason() is None)
        await fault(h.sim, {"place_then_503": 1, "outage_after": 12})
        await h.until(lambda: kinds(h.db, "unknown"), 60)
        unk = kinds(h.db, "unknown")[0]
        assert h.sim.ex.order(unk.order_id) is not None        # the kept id is the order on the book
        await h.until(lambda: any(e.order_id == unk.order_id for e in kinds(h.db, "unknown_resolved")), 60)
        assert not [e for e in kinds(h.db, "reject") if e.order_id == unk.order_id]
        res = next(e for e in kinds(h.db, "unknown_resolved") if e.order_id == unk.order_id)
        # no new order went out while its outcome was unknown (the gate held them back)
        assert not [e for e in kinds(h.db, "intent") if unk.id < e.id < res.id]
        await h.until(lambda: tr.place_block_reason() is None and len(h.our_open_orders()) > 0, 60)
    finally:
        await h.stop()
    assert not h.our_open_orders()      # nothing orphaned after the shutdown cancel
