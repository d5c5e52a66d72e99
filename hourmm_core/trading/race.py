"""The trader's race path: one plan's requests on the wire, cancels first (container B).

Why a module of its own: :class:`hourmm_core.trading.trader.Trader` wires feeds, discovery,
reconciliation and the loops; this is the part a sniper race is won or lost in, with its own
rules (issue 13's fail-closed ones and issue 15's speed ones), tested on its own
(tests/unit/trading/test_race_path.py, test_fast_cancel.py):

* cancels first (no signature needed), the replacement orders signed while the cancel is in
  flight (presign), the journal rows held until the request bytes are written;
* places only if no cancel of the same plan failed on an open order (:func:`places_allowed`),
  none is deferred (an order with an unknown submit outcome is never cancelled blind), and the
  last gate (market WS up, not HALT, no resync pending) still allows them;
* last look before places (:meth:`RacePath._recheck`): a newer snapshot that arrived during the
  cancel round trip is decided on again; a changed plan stops these places;
* cancel fast path (:meth:`RacePath.fast_cancel`): while a pass awaits its replies, what a
  decision on the latest snapshot cancels is cancelled at once (nothing placed there); the
  next pass waits for those cancels' outcomes;
* cancel before the ack (``cancel_in_flight``): the orders that decision would cancel but whose
  POST is still awaiting its reply (``PlanResult.unacked``) are cancelled by the signed order's
  hash (the venue's order id, known at signing: every place is signed before its POST is
  written); a venue that did not have them yet answers ``not_canceled``, which fails nothing,
  and an order acked live after such a miss is cancelled again at once
  (:meth:`OrderManager.recancel_due`; the states are in order_manager's docstring).

:class:`RacePath` is a mixin of :class:`Trader`: it uses the trader's decision core
(``self.core``), executor, snapshot client, clock, journal helpers (``_j``, ``_jhold_open``,
``_jrelease``, ``_decision_row``, ``_journal_changes``, ``_order_payload``), fail-closed state
(``_unknown``, ``place_block_reason``, ``_rest_failure``) and these fields, set by Trader.__init__:
``_executing``, ``_fast``, ``fast_cancels``, ``_fast_sent``, ``_fast_off``, ``recheck_places``,
``rechecks_dropped``, ``latencies_ms``, ``cancel_in_flight``, ``early_cancels``, ``recancels``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from hourmm_core.trading.decision import Decision, MarketRef, places_allowed, post_only_for
from hourmm_core.trading.order_manager import Action, Order
from hourmm_core.trading.snapshot_client import Snapshot
from hourmm_core.trading.types import SIDE_NAMES, PlaceResult

log = logging.getLogger("hourmm_core.trading.trader")   # same logger (and log lines) as before the split


class RacePath:
    """Sending one plan (cancels first), the last look before places and the cancel fast path."""

    # provided by Trader (see the module docstring)
    core: Any
    executor: Any
    snapshots: Any
    clock: Any

    async def fast_cancel(self) -> list[str]:
        """Cancel fast path: while a pass awaits its replies, cancel at once what a decision on
        the latest snapshot cancels (:meth:`DecisionCore.decide` with ``places=False``: the same
        rule, so "endangered" has one definition); nothing is placed here. The next pass runs as
        usual once the one in flight is done, after these cancels' outcomes are known (it waits
        for them), so its places still follow every cancel in front of them (issue 13).
        Returns the order ids sent for cancelling."""
        if (self.executor is None or self.core.market is None or not self.core.quoting_enabled
                or self._fast is not None or self._fast_off):
            return []
        _d, sent = await self._cancels_for_latest("fast_cancel")
        return sent

    async def _cancels_for_latest(self, reason: str) -> tuple[Decision, list[str]]:
        """The fast path's work: decide on the latest snapshot with ``places=False`` and send that
        plan's cancels at once (journaled as a ``decision`` row with ``reason``). Returns the
        decision and the order ids sent for cancelling."""
        core = self.core
        now = self.clock.now_ms()
        snap = self.snapshots.latest
        fresh = self.fresh_for_market(now)
        up, down = self._tops()
        d = core.decide(now, snap.fair_up if snap else None, snap.fair_unc if snap else None, fresh, up, down,
                        places=False)
        # orders whose submit outcome is unknown are never cancelled blind (see _execute_plan);
        # an order is tried once per pass in flight (a venue in trouble is not hammered at the
        # snapshot rate while that pass waits: the normal passes retry)
        cancels = [a.order for a in d.actions if a.kind == "cancel" and a.order.order_id
                   and a.order.order_id not in self._unknown and a.order.order_id not in self._fast_sent]
        if self.cancel_in_flight and d.plan is not None and d.plan.unacked:
            # their POST is awaiting its reply: cancelled by the signed order's hash
            ok = core.om.cancellable_before_ack
            early = [o for o in d.plan.unacked if ok(o) and o.local_id not in self._fast_sent]
            if early:
                cancels += early
                self.early_cancels += len(early)
        if not cancels:
            self._journal_changes(d.phase_change, d.mode_changes)
            return d, []
        fut = self._fast = asyncio.get_running_loop().create_future()
        self._jhold_open()   # race section: the rows follow the request
        try:
            self._journal_changes(d.phase_change, d.mode_changes)
            self._j("decision", self._decision_row(reason, fresh, d.quotes, [],
                                                   [Action("cancel", o) for o in cancels]))
            self.fast_cancels += len(cancels)
            self._fast_sent.update(o.order_id or o.local_id for o in cancels)
            failed, ahead = await self._send_cancels(cancels)
            await ahead
            if failed:
                self._fast_off = True
        finally:
            self._jrelease()
            self._fast = None
            fut.set_result(None)
        return d, [o.order_id or o.local_id for o in cancels]   # type: ignore[misc]

    async def _recheck(self, places: list[Order], snap: Snapshot | None) -> str | None:
        """Last look before a plan's places are sent: when a newer snapshot arrived during the
        plan's cancel round trip (a second move), the decision core is asked again on it
        (``places=False``, as in the fast path). If that plan would cancel any of these places
        (they no longer match its quotes) or any resting order, or stops quoting, the places are
        not sent (returns why): the new plan's cancels go out at once, and the next pass, which
        waits for their outcome, places what the newer snapshot wants. Without this, the stale
        places would be posted and could only be cancelled after their POST reply."""
        if self._fast is not None:
            await self._fast          # a fast cancel in flight (a newer snapshot): its outcome first
        if self._fast_off:
            return "a fast cancel of this pass failed"
        latest = self.snapshots.latest
        if snap is None or latest is None or latest.seq == snap.seq:
            return None
        d, sent = await self._cancels_for_latest("recheck")
        if d.cancel_all:
            return "the latest snapshot stops quoting"
        mine = {id(o) for o in places}
        if sent or any(a.kind == "cancel" for a in d.actions) or any(
                id(o) in mine for o in (d.plan.unacked if d.plan else ())):
            return "a newer snapshot changed the plan"
        return None

    async def _send_cancels(self, cancels: list[Order], presign: Any = None, place_args: list[dict[str, Any]] | None = None,
                            hold_outcomes: bool = False) -> tuple[list[Order | None], "asyncio.Future[Any]"]:
        """Send one plan's cancels and book their outcomes. Returns the orders whose cancel
        failed (for :func:`places_allowed`) and the future of :meth:`_after_write` (the held
        journal rows, then ``place_args`` signed with ``presign`` while the cancel is in flight).
        ``hold_outcomes``: the outcome rows wait for the replacement POST to be written."""
        om = self.core.om
        now = self.clock.now_ms()
        ids: list[str] = []
        for o in cancels:
            om.on_cancel_sent(o, now)
            oid = om.cancel_id(o)
            ids.append(oid)   # type: ignore[arg-type]
            self._j("cancel", {**self._order_payload(o), "before_ack": True} if o.early else self._order_payload(o),
                    order_id=oid)
        # runs once this coroutine yields, i.e. once the cancel request is written: the held
        # journal rows, then the replacement orders signed while the cancel is in flight
        # (nothing is sent: they go out only if every cancel succeeded)
        ahead = asyncio.ensure_future(self._after_write(presign, place_args or []))
        try:
            done, failed = await self.executor.cancel(ids)  # type: ignore[union-attr,misc]
        except Exception as exc:  # noqa: BLE001
            done, failed = [], {oid: f"{type(exc).__name__}: {exc}" for oid in ids}
            self._rest_failure(exc)
        if hold_outcomes:
            self._jhold_open()
        failed_cancels: list[Order | None] = []
        now = self.clock.now_ms()
        for oid in done:
            om.on_cancelled(oid, now)
            self._j("cancel_ack", {}, order_id=oid)
        due: list[Order] = []
        for oid, why in failed.items():
            o = om.on_cancel_failed(oid, str(why), now)
            if o is not None and o.early:
                # a cancel before the ack the venue answered not_canceled: missed, not failed (it
                # may not have had the order yet); the ack decides, or it is re-cancelled now if
                # the ack is already in
                self._j("cancel_reject", {"error": str(why), "state": o.state.value, "before_ack": True},
                        order_id=oid)
                if om.recancel_due(o):
                    due.append(o)
                continue
            self._j("cancel_reject", {"error": str(why), "state": o.state.value if o else None}, order_id=oid)
            failed_cancels.append(o)
        if due:
            await self._recancel(due)
        return failed_cancels, ahead

    async def _recancel(self, orders: list[Order]) -> None:
        """Cancel again at once, by their ids, orders whose cancel before the ack missed and that
        are now acked (:meth:`OrderManager.recancel_due`): a normal cancel, its outcome booked by
        the usual rules. An order whose submit outcome is unknown is never cancelled blind: it is
        booked as working and the plans cancel it once it is resolved."""
        om = self.core.om
        now = self.clock.now_ms()
        send = []
        for o in orders:
            if not om.recancel_due(o):
                continue
            if o.order_id in self._unknown:
                om.release_early(o, now)
            else:
                send.append(o)
        if not send:
            return
        self.recancels += len(send)
        _failed, ahead = await self._send_cancels(send)
        await ahead


    async def _execute(self, actions: list[Action], snap: Snapshot | None) -> None:
        """Cancels first; the places only if every cancel succeeded (:func:`places_allowed`)
        and nothing blocks new orders (:meth:`place_block_reason`)."""
        outer = self._jhold is None   # called outside a cycle's race section: hold and release here
        if outer:
            self._jhold = []
        try:
            await self._execute_plan(actions, snap)
        finally:
            if outer:
                self._jrelease()

    async def _execute_plan(self, actions: list[Action], snap: Snapshot | None) -> None:
        assert self.executor is not None
        core, om = self.core, self.core.om
        m = core.market
        assert m is not None
        cancels = [a.order for a in actions if a.kind == "cancel" and a.order.order_id]
        places = [a.order for a in actions if a.kind == "place"]
        failed_cancels: list[Order | None] = []
        deferred = [o for o in cancels if o.order_id in self._unknown]
        if deferred:
            # a cancel of an order whose submit outcome is unknown could race its placement;
            # it is sent once the order is resolved (and nothing new is placed meanwhile)
            cancels = [o for o in cancels if o.order_id not in self._unknown]
        presign = getattr(self.executor, "presign", None)
        ahead: asyncio.Future[list[Any]] | None = None
        if cancels:
            # the cancel outcome rows wait until the replacement POST is written
            failed_cancels, ahead = await self._send_cancels(
                cancels, presign if places and not deferred else None, [self._place_args(o, m) for o in places],
                hold_outcomes=bool(places))
        presigned = await self._presigned(ahead)
        if not places:
            return
        if deferred or not places_allowed(failed_cancels):
            now = self.clock.now_ms()
            why = "a cancel of the same plan is deferred (unknown order)" if deferred else \
                "a cancel of the same plan failed"
            for o in places:
                om.on_reject(o, f"not sent: {why}", now)
            return
        stale = await self._recheck(places, snap) if self.recheck_places else None
        if stale:
            now = self.clock.now_ms()
            for o in places:
                om.on_reject(o, f"not sent: {stale}", now)
            self.rechecks_dropped += 1
            self._j("recheck", {"reason": stale, "not_sent": [o.client_id for o in places]})
            self._wake.set()   # the next pass places what the newer snapshot wants
            return
        blocked = self.place_block_reason()
        if blocked != self._blocked_reason:
            if blocked:
                log.warning("New orders stopped: %s", blocked)
            else:
                log.info("New orders allowed again")
            self._j("order_gate", {"blocked": blocked is not None, "reason": blocked})
            self._blocked_reason = blocked
        if blocked:
            now = self.clock.now_ms()
            for o in places:
                om.on_reject(o, f"not sent: {blocked}", now)
            return
        post_only = post_only_for(core.session.phase, core.risk.mode)
        if presigned is None and presign is not None and self.cancel_in_flight:
            # signed here rather than inside place(): the same work, but each order's hash (its
            # venue id) is known before its POST is written, so it can be cancelled while in flight
            try:
                presigned = list(await presign([self._place_args(o, m) for o in places]))
            except Exception:  # noqa: BLE001 - only a speed-up: place() signs them then
                log.debug("signing ahead of the POST failed", exc_info=True)
                presigned = None
        place_many = getattr(self.executor, "place_many", None)
        if place_many is not None and len(places) > 1:   # speed: one signed batch, one round trip
            await self._place_batch(place_many, places, m, post_only, snap, presigned)
        elif len(places) == 1:   # awaited inline: gather would wrap it in a task (one loop pass later)
            await self._place(places[0], m, post_only, snap, presigned[0] if presigned else None)
        else:
            await asyncio.gather(*(self._place(o, m, post_only, snap, presigned[i] if presigned else None)
                                   for i, o in enumerate(places)))

    @staticmethod
    def _place_args(o: Order, m: MarketRef) -> dict[str, Any]:
        """The order's signed fields, for :meth:`Executor.presign` (post_only is not signed)."""
        return dict(token_id=m.token_id(o.token), side=SIDE_NAMES[o.side], price=o.price, size=o.size,
                    tick_size=m.tick_size, neg_risk=m.neg_risk, post_only=True, client_id=o.client_id)

    async def _after_write(self, presign: Any, args: list[dict[str, Any]]) -> list[Any] | None:
        """Scheduled just before a race-critical request is awaited, so it runs once that request's
        bytes are written (the executor writes before it first yields): the held journal rows, or
        (a cancel with replacements) the replacement orders signed while the cancel is in flight.
        In that case the rows stay held and are written right after the POST (or at the end of
        the pass if nothing is posted), still in call order: serialising them (~50 us a row) and
        waking the journal's writer thread would otherwise sit between the cancel's reply and
        the POST whenever signing + rows outlast the cancel's round trip."""
        if presign is None or not args:
            self._jrelease()
            return None
        return list(await presign(args))

    @staticmethod
    async def _presigned(ahead: "asyncio.Future[list[Any] | None] | None") -> list[Any] | None:
        """The orders signed ahead, or None (then they are signed at placement, as before)."""
        if ahead is None:
            return None
        try:
            return await ahead
        except Exception:  # noqa: BLE001 - presigning is only a speed-up; placement signs again
            log.debug("presigning failed", exc_info=True)
            return None

    def _order_args(self, o: Order, m: MarketRef, post_only: bool, snap: Snapshot | None,
                    presigned: Any = None) -> dict[str, Any]:
        """Book the order as sent (state, its hash if signed ahead, latency sample, intent row);
        the executor's arguments."""
        now = self.clock.now_ms()
        self.core.om.on_sent(o, now, getattr(presigned, "local_id", None))
        if snap is not None:
            self.latencies_ms.append(float(now - snap.ts_ms))
        self._j("intent", {**self._order_payload(o), "post_only": post_only})
        return {**self._place_args(o, m), "post_only": post_only}

    async def _place_batch(self, place_many: Any, places: list[Order], m: MarketRef, post_only: bool,
                           snap: Snapshot | None, presigned: list[Any] | None = None) -> None:
        self._jhold_open()   # the intent rows wait until the POST is written
        args = [self._order_args(o, m, post_only, snap, presigned[i] if presigned else None)
                for i, o in enumerate(places)]
        ahead = asyncio.ensure_future(self._after_write(None, []))
        try:
            results = list(await (place_many(args, presigned=presigned) if presigned else place_many(args)))
            if len(results) != len(places):
                raise RuntimeError(f"place_many returned {len(results)} results for {len(places)} orders")
        except Exception as exc:  # noqa: BLE001
            results = [PlaceResult(False, error=f"{type(exc).__name__}: {exc}")] * len(places)
            self._rest_failure(exc)
        await ahead
        for o, res in zip(places, results):
            self._on_place_result(o, res)
        due = [o for o in places if self.core.om.recancel_due(o)]
        if due:
            await self._recancel(due)

    async def _place(self, o: Order, m: MarketRef, post_only: bool, snap: Snapshot | None,
                     presigned: Any = None) -> None:
        self._jhold_open()   # the intent row waits until the POST is written
        kw = self._order_args(o, m, post_only, snap, presigned)
        if presigned is not None:
            kw["presigned"] = presigned
        ahead = asyncio.ensure_future(self._after_write(None, []))
        try:
            res = await self.executor.place(kw.pop("token_id"), kw.pop("side"), kw.pop("price"),  # type: ignore[union-attr]
                                            kw.pop("size"), **kw)
        except Exception as exc:  # noqa: BLE001
            res = PlaceResult(False, error=f"{type(exc).__name__}: {exc}")
            self._rest_failure(exc)
        await ahead
        self._on_place_result(o, res)
        if self.core.om.recancel_due(o):
            await self._recancel([o])

    def _on_place_result(self, o: Order, res: Any) -> None:
        om = self.core.om
        now = self.clock.now_ms()
        if res.ok and res.order_id:
            om.on_ack(o, res.order_id, res.status, now)
            self.core.risk.health.rest = True
            self._j("ack", {**self._order_payload(o), "status": res.status}, order_id=res.order_id)
        elif getattr(res, "unknown", False) and res.order_id:
            # may rest on the book: tracked (and counted against limits) under the hash of the
            # signed order, never treated as rejected; resolved from the user WS, a lookup or trades
            om.on_ack(o, res.order_id, "unknown", now)
            self._unknown[res.order_id] = now
            self._j("unknown", {**self._order_payload(o), "error": res.error}, order_id=res.order_id)
            log.warning("Order outcome unknown, kept as %s: %s %s", res.order_id, o.describe(), res.error)
        else:
            om.on_reject(o, res.error or "rejected", now)
            self._j("reject", {**self._order_payload(o), "error": res.error}, order_id=res.order_id)
            log.warning("Order rejected: %s %s", o.describe(), res.error)
            if getattr(res, "rate_limited", False):
                # the venue said 429: empty our bucket so nothing is sent for its Retry-After (>= 1 s)
                wait_s = max(1.0, float(getattr(res, "retry_after_s", 0.0) or 0.0))
                om.bucket.tokens = min(om.bucket.tokens, -om.bucket.rate * wait_s)
            if res.auth_failed:
                ch = self.core.risk.on_rest(False, now, auth_failed=True)
                self._journal_changes(None, [ch] if ch else [])
                self._wake.set()
