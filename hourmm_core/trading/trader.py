"""The async Trader of container B: wires discovery, feeds, decision core, executor, journal.

Why here and not in the runner: the runner only builds settings/clock/logging and calls
:meth:`Trader.run`; everything testable lives in the library (tests run a Trader
in-process against the loopback simulators).

Loop structure (one asyncio task each):

* snapshot intake (poll or push) -> wakes the decision loop on every new seq;
* market WS (books) and user WS (own orders, fills) -> update state, wake the loop;
  user WS lost -> HALT + cancel-all (``WS user disconnected - escalating to HALT``);
* decision loop: on every wake (or a housekeeping tick) run Risk -> Strategy ->
  OrderManager (:class:`DecisionCore`) and execute the actions (cancels first, places
  only if every cancel succeeded), journaling every intent/ack/reject/cancel;
* discovery: current + next hour's market through Gamma (``Selected market: <slug>``);
  at the hour end the pre-discovered next market becomes current (the roll);
* control plane (operator), heartbeat (dead-man switch, when the executor has one),
  and a state row in the journal's ``snapshots`` table every few seconds.

Without credentials the trader runs market data only (books, snapshots, status) with
quoting disabled, and says so at start-up.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
from typing import Any, Callable, Protocol

from hourmm_core.clock import Clock
from hourmm_core.config import Credentials, TraderConfig
from hourmm_core.trading.control_plane import ControlPlane
from hourmm_core.trading.decision import Decision, DecisionCore, MarketRef
from hourmm_core.trading.order_manager import Action, Fill, Order
from hourmm_core.trading.race import RacePath
from hourmm_core.trading.reconcile import ReconcileReport, classify_orders, exchange_fills, replay_fills
from hourmm_core.trading.risk_engine import Mode, ModeChange
from hourmm_core.trading.session import Phase, PhaseChange
from hourmm_core.trading.snapshot_client import Snapshot, SnapshotClient
from hourmm_core.trading.strategy import BookTop
from hourmm_core.trading.types import BUY, SELL, SIDE_NAMES, TOKEN_NAMES, PlaceResult

log = logging.getLogger(__name__)


# Both in the trader's clock (ms): the venue's time, which a simulator may run faster than the wall.
UNKNOWN_GRACE_MS = 5_000      # an unknown order the exchange still does not know after this is "never placed"
UNKNOWN_LOOKUP_MS = 500       # unknown orders are looked up at most this often (and once per pass)
RESYNC_EVERY_MS = 1_000       # retry of an incomplete reconciliation
# The exchange heartbeat is a network dead-man switch (the venue's 10 s are wall seconds): wall time.
HEARTBEAT_EVERY_S = 5.0
HEARTBEAT_RETRY_S = 0.25      # first retry after a failed beat (doubling up to HEARTBEAT_EVERY_S)


class Executor(Protocol):
    """What the trader needs from the venue executor (hourmm_core.polymarket.executor)."""

    async def place(self, token_id: str, side: str, price: float, size: float, *,
                    tick_size: float, neg_risk: bool, post_only: bool, client_id: str) -> PlaceResult: ...
    async def cancel(self, order_ids: list[str]) -> tuple[list[str], dict[str, str]]: ...
    async def cancel_all(self) -> bool: ...
    async def open_orders(self) -> list[dict[str, Any]]: ...


class Trader(RacePath):
    """Container B. ``await Trader(...).run()`` until :meth:`stop` (or SIGTERM in the runner)."""

    def __init__(self, cfg: TraderConfig, clock: Clock, creds: Credentials | None,
                 executor: Executor | None = None, journal: Any = None,
                 housekeeping_s: float = 0.05, discovery_every_s: float = 1.0,
                 state_every_s: float = 2.0, sweep_every_s: float = 10.0) -> None:
        self.cfg = cfg
        self.clock = clock
        self.creds = creds
        self.executor = executor
        self.housekeeping_s = housekeeping_s
        self.discovery_every_s = discovery_every_s
        self.state_every_s = state_every_s
        self.sweep_every_s = sweep_every_s
        self.core = DecisionCore(cfg.limits, cfg.schedule, cfg.strategy, cfg.requote_price_tol, cfg.requote_size_tol)
        self.core.on_control = self._on_control
        self.core.status_hook = self._status_extras
        self.core.quoting_enabled = creds is not None and executor is not None
        if journal is None:
            from hourmm_core.journal import Journal
            journal = Journal(cfg.sqlite_path)
        self.journal = journal
        self.snapshots = SnapshotClient(cfg.snapshot_url, clock, cfg.poll_snapshot_hz, cfg.snapshot_stream_url,
                                        cfg.snapshot_max_age_ms, on_snapshot=self._on_snapshot)
        self.control = ControlPlane(self.core, cfg.control_host, cfg.control_port, cfg.control_token,
                                    journal=self._journal_control)
        self.market_ws: Any = None
        self.user_ws: Any = None
        self.discovery: Any = None
        self._gamma: Any = None
        self._wake = asyncio.Event()
        self._cycle_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._reconciled_for: str | None = None
        self._last_cancel_all_key: tuple[str, str] | None = None
        self.cycles = 0
        self._planned_user_reconnect = False
        self._stopping = False
        self._hour_mismatch_logged = False
        self._nonce = format(random.getrandbits(32), "08x")
        self.last_decision: Decision | None = None
        # fail closed: new orders wait for these (cancels never do)
        self._resync_needed: str | None = None     # reason: user-WS reconnect, incomplete reconciliation
        self._resync_next_ms = 0
        self._resync_req = 0                        # bumped by every resync request
        self._unknown: dict[str, int] = {}         # order id -> trader-clock ms it became unknown
        self._unknown_absent: dict[str, int] = {}  # order id -> lookups in a row the exchange did not know it
        self._unknown_next_ms = 0
        self._blocked_reason: str | None = None    # last reason journaled (transitions only)
        self.resyncs = 0
        bind = getattr(executor, "bind_clock", None)
        if bind is not None:
            bind(clock)   # venue-time windows (post-only after an engine restart) in this clock
        self.latencies_ms: list[float] = []   # snapshot ts -> order action sent (sim ms), for benchmarks
        self._jhold: list[tuple[int, str, dict[str, Any], str | None, str | None]] | None = None
        self._executing = False                        # a pass is awaiting its requests (cancel fast path)
        self._fast: asyncio.Future[None] | None = None  # the cancel fast path's requests in flight
        self.fast_cancels = 0                          # cancels sent by the fast path (status, tests)
        self._fast_sent: set[str] = set()              # ... during the pass in flight (each order once)
        self._fast_off = False                         # a fast cancel failed: off until that pass ends
        self.recheck_places = True                     # last look at a newer snapshot before places (_recheck)
        self.rechecks_dropped = 0                      # plans whose places the last look stopped (status, bench)
        self.cancel_in_flight = True                   # cancel by hash orders whose POST awaits its reply (race)
        self.early_cancels = 0                         # ... sent (status, bench)
        self.recancels = 0                             # ... missed, acked live, cancelled again at once

    # ------------------------------------------------------------------ journal helpers
    def _j(self, kind: str, payload: "dict[str, Any] | Callable[[], dict[str, Any]]",
           order_id: str | None = None) -> None:
        """One journal row, stamped now. ``payload`` may be a function returning it, built only when
        the row is written (after the request in a race section) from values it captured now."""
        m = self.core.market
        row = (self.clock.now_ms(), kind, payload, m.slug if m else None, order_id)
        if self._jhold is not None:
            self._jhold.append(row)   # race section: written right after the request bytes left
            return
        self._jwrite(row)

    def _jwrite(self, row: tuple[int, str, Any, str | None, str | None]) -> None:
        ts, kind, payload, market, order_id = row
        try:
            if callable(payload):   # formatted late (off the race path) from values taken at call time
                payload = payload()
            self.journal.event(ts, kind, payload, market=market, order_id=order_id)
        except Exception:  # the journal must never take the trader down
            log.exception("journal write failed (%s)", kind)

    def _jhold_open(self) -> None:
        """Start holding journal rows (a race section) unless a hold is already open."""
        if self._jhold is None:
            self._jhold = []

    def _jrelease(self) -> None:
        """Write the rows held during a race section, in call order with their own timestamps.

        Why hold them: serialising a row (scrub + JSON + redaction) costs ~0.1 ms on the loop,
        and a decision with four cancels journals five rows before the cancel could be sent.
        The rows are fresh dicts of plain values, so writing them a few hundred microseconds
        later records exactly the same thing."""
        rows, self._jhold = self._jhold, None
        for row in rows or ():
            self._jwrite(row)

    def _decision_row(self, reason: str, fresh: bool, quotes: list[Any], rejected: list[tuple[Any, int]],
                      actions: list[Action]) -> "Callable[[], dict[str, Any]]":
        """The ``decision`` row's payload, formatted when it is written (after the request in a
        race section: ~5 us per order description was spent before the cancel went out). Takes
        now what may change meanwhile (fair value, phase, mode, each order's state/filled/id);
        quotes are immutable."""
        core = self.core
        fair, phase, mode = core.fair_up, core.session.phase.value, core.risk.mode.value
        acts = [(a.kind, a.order, a.order.mark()) for a in actions]

        def payload() -> dict[str, Any]:
            return {"reason": reason, "fair_up": fair, "fresh": fresh, "phase": phase, "mode": mode,
                    "quotes": [q.describe() for q in quotes],
                    "rejected": [(q.describe(), int(c)) for q, c in rejected],
                    "actions": [f"{k} {o.describe(at)}" for k, o, at in acts]}
        return payload

    def _journal_control(self, kind: str, payload: dict[str, Any]) -> None:
        self._j(kind, payload)

    def _order_payload(self, o: Order) -> dict[str, Any]:
        return {"client_id": o.client_id, "token": o.token, "token_name": TOKEN_NAMES[o.token],
                "side": SIDE_NAMES[o.side], "price": o.price, "size": o.size, "state": o.state.value,
                "filled": o.filled, "reduce": o.reduce}

    def _journal_changes(self, ph: PhaseChange | None, modes: list[ModeChange]) -> None:
        if ph is not None:
            log.info("Session phase %s -> %s", ph.old.value, ph.new.value)
            self._j("phase", {"old": ph.old.value, "new": ph.new.value, "hour_end_ms": ph.hour_end_ms})
        for ch in modes:
            log.info("Risk mode %s -> %s (%s)", ch.old.value, ch.new.value, ch.reason)
            self._j("mode", {"old": ch.old.value, "new": ch.new.value, "reason": ch.reason})

    def _status_extras(self) -> dict[str, Any]:
        """Feed details for /status (beyond the guide's keys): ages, errors, dead-man switch."""
        now = self.clock.now_ms()
        snap = self.snapshots.latest
        age = self.snapshots.age_wall_ms(now)
        out: dict[str, Any] = {
            "now_ms": now,
            "snapshot": {"seq": snap.seq if snap else None, "age_ms": None if age is None else round(age, 1),
                         "errors": dict(self.snapshots.errors),
                         "transport": "push" if self.cfg.snapshot_stream_url else "poll"},
            "heartbeat_ok": getattr(self.executor, "heartbeat_ok", None),
            "cycles": self.cycles,
        }
        for name, ws in (("market_ws", self.market_ws), ("user_ws", self.user_ws)):
            if ws is not None:
                out[f"{name}_bad_frames"] = dict(ws.bad_frames)
        return out

    # ------------------------------------------------------------------ feed callbacks
    async def _on_snapshot(self, snap: Snapshot) -> None:
        self._wake.set()
        if self._executing and self._fast is None:
            # a pass is awaiting its replies (a POST round trip): the decision loop would see this
            # snapshot only after it; the quotes it endangers are cancelled now
            await self.fast_cancel()

    async def _on_control(self, what: str) -> None:
        await self.cycle(f"control:{what}")

    async def _on_market_state(self, up: bool, reason: str) -> None:
        ch = self.core.risk.on_market_ws(up, self.clock.now_ms())
        self._journal_changes(None, [ch] if ch else [])
        self._j("ws", {"channel": "market", "connected": up, "reason": reason})
        self._wake.set()

    async def _on_market_event(self, ev: Any) -> None:
        if ev.kind in ("book", "price_change", "resync", "tick_size_change"):
            self._wake.set()

    async def _on_user_state(self, up: bool, reason: str) -> None:
        now = self.clock.now_ms()
        if self._stopping:
            return
        if not up and self._planned_user_reconnect:
            # our own resubscribe on the market roll: not a loss of the channel, but no
            # quoting until it is back (fills would be invisible meanwhile)
            self.core.risk.health.user_ws = False
            self._j("ws", {"channel": "user", "connected": False, "reason": f"planned: {reason}"})
            self._wake.set()
            return
        if up:
            self._planned_user_reconnect = False
            # the user channel does not replay what it missed: refresh open orders and recent
            # trades from REST before quoting again
            self._need_resync("user WS (re)connected")
        ch = self.core.risk.on_user_ws(up, now)
        self._journal_changes(None, [ch] if ch else [])
        self._j("ws", {"channel": "user", "connected": up, "reason": reason})
        if ch is not None and ch.new is Mode.HALT:
            await self.cycle("user ws lost")
        else:
            self._wake.set()

    async def _on_user_event(self, ev: Any) -> None:
        from hourmm_core.polymarket.user_ws import OrderUpdate, TradeUpdate

        m = self.core.market
        now = self.clock.now_ms()
        om = self.core.om
        if isinstance(ev, OrderUpdate):
            self._resolve_unknown(ev.order_id, f"user WS {ev.type or ev.status}")
            o = om.on_order_update(ev.order_id, ev.size_matched, ev.type if ev.type == "CANCELLATION" else ev.status, now)
            if o is not None:
                self._j("order_update", {"type": ev.type, "status": ev.status, "size_matched": ev.size_matched,
                                         **self._order_payload(o)}, order_id=ev.order_id)
            self._wake.set()
            return
        if not isinstance(ev, TradeUpdate) or m is None:
            return
        ids = [o.order_id for o in om.orders.values() if o.order_id]
        api_key = getattr(self.user_ws, "api_key", None)
        for f in ev.own_fills(api_key, ids):
            self._resolve_unknown(f.order_id, "user WS trade")
            tok = m.token_index(f.asset_id)
            if tok is None:
                continue
            if ev.status == "FAILED":
                undone = om.reverse_fill(f.trade_id, f.order_id, tok, BUY if f.side == "BUY" else SELL, f.price,
                                         f.size, now)
                log.warning("Trade %s FAILED on chain; fill %s", f.trade_id, "reversed" if undone else "was not counted")
                self._j("trade_failed", {"trade_id": f.trade_id, "order_id": f.order_id, "reversed": undone,
                                         "yes_tokens": om.yes_tokens, "no_tokens": om.no_tokens}, order_id=f.order_id)
                continue
            fill = Fill(f.trade_id, f.order_id, tok, BUY if f.side == "BUY" else SELL, f.price, f.size, now)
            if om.on_fill(fill):
                log.info("Fill %s %g %s @ %g (%s)", f.side, f.size, TOKEN_NAMES[tok], f.price, f.liquidity)
                self._j("fill", {"trade_id": f.trade_id, "order_id": f.order_id, "token": tok, "side": fill.side,
                                 "price": f.price, "size": f.size, "ts_ms": now, "liquidity": f.liquidity,
                                 "status": f.status, "yes_tokens": om.yes_tokens, "no_tokens": om.no_tokens},
                        order_id=f.order_id)
        self._wake.set()

    # ------------------------------------------------------------------ decision + execution
    def _tops(self) -> tuple[BookTop | None, BookTop | None]:
        m = self.core.market
        if m is None or self.market_ws is None or not self.market_ws.connected:
            return None, None
        out = []
        for tid in (m.up_token_id, m.down_token_id):
            b = self.market_ws.books.get(tid)
            t = b.top() if b is not None else None
            out.append(None if t is None else BookTop(t.bid, t.ask))
            if b is not None and tid == m.up_token_id and b.tick_size != m.tick_size and b.tick_size > 0:
                self._tick_changed(m, float(b.tick_size))
        return out[0], out[1]

    def _tick_changed(self, m: MarketRef, tick: float) -> None:
        """The venue changed the tick (``tick_size_change``): price on the new grid from now on."""
        log.info("Tick size of %s changed %g -> %g", m.slug, m.tick_size, tick)
        self._j("tick_size", {"old": m.tick_size, "new": tick})
        self.core.market = dataclasses.replace(m, tick_size=tick)

    def fresh_for_market(self, now: int) -> bool:
        """Fresh snapshot *of the hour being traded*: around the roll container A may still
        price the previous hour (or already the next); its fair value must not be used."""
        if not self.snapshots.fresh(now):
            return False
        m = self.core.market
        snap = self.snapshots.latest
        if m is not None and snap is not None and snap.hour_end_ms != m.end_ms:
            if not self._hour_mismatch_logged:
                self._hour_mismatch_logged = True
                log.warning("Snapshot prices the hour ending %d, market %s ends %d: not quoting off it",
                            snap.hour_end_ms, m.slug, m.end_ms)
            return False
        self._hour_mismatch_logged = False
        return True

    async def cycle(self, reason: str = "tick") -> Decision | None:
        """One decision + execution pass (serialised)."""
        async with self._cycle_lock:
            if self._fast is not None:
                await self._fast   # the fast path's cancels first: this pass plans on their outcome
            now = self.clock.now_ms()
            await self._maybe_roll(now)
            await self._maybe_resync(now)
            snap = self.snapshots.latest
            fresh = self.fresh_for_market(now)
            up, down = self._tops()
            core = self.core
            if core.market is not None and self.user_ws is None:
                core.risk.health.user_ws = False
            d = core.decide(now, snap.fair_up if snap else None, snap.fair_unc if snap else None, fresh, up, down)
            self.cycles += 1
            self.last_decision = d
            if d.actions and not d.cancel_all and self.executor is not None:
                self._jhold = []   # race section: journal rows wait until the first request is on the wire
            try:
                self._journal_changes(d.phase_change, d.mode_changes)
                if d.plan is not None and (d.actions or d.plan.rejected):
                    self._j("decision", self._decision_row(reason, fresh, d.quotes, d.plan.rejected, d.actions))
                if d.cancel_all:
                    await self._cancel_all_if_needed(d)
                else:
                    self._last_cancel_all_key = None  # a later HALT / cut-off cancels everything again
                if d.actions:
                    self._executing = True
                    try:
                        await self._execute(d.actions, snap)
                    finally:
                        self._executing = self._fast_off = False
                        self._fast_sent.clear()
            finally:
                self._jrelease()
            return d

    async def _cancel_all_if_needed(self, d: Decision) -> None:
        """Venue-wide cancel-all once per HALT / cutoff episode (belt and braces)."""
        core = self.core
        if self.executor is None or core.market is None:
            return
        key = (core.market.slug, core.risk.mode.value if core.risk.mode is Mode.HALT else core.session.phase.value)
        severe = core.risk.mode is Mode.HALT or core.session.phase in (Phase.HARD_CUTOFF, Phase.ENDED)
        if not severe or key == self._last_cancel_all_key:
            return
        if not core.om.open_orders() and core.session.phase is not Phase.HARD_CUTOFF and core.risk.mode is not Mode.HALT:
            return
        self._last_cancel_all_key = key
        try:
            ok = await self.executor.cancel_all()
        except Exception as exc:  # noqa: BLE001 - any venue failure is logged, never fatal
            ok = False
            log.error("Cancel-all failed: %s", exc)
        if ok:
            now = self.clock.now_ms()
            for o in core.om.open_orders():
                if o.order_id:
                    core.om.on_cancelled(o.order_id, now)
            d.actions = [a for a in d.actions if a.kind != "cancel"]
        else:
            log.error("Cancel-all failed")
            self._last_cancel_all_key = None
        self._j("cancel_all", {"ok": ok, "reason": key[1]})

    # ------------------------------------------------------------------ fail-closed gates
    def place_block_reason(self) -> str | None:
        """Why new orders may not be sent now (None = they may). Cancels are never blocked.

        Checked right before a plan's places go out, i.e. after its cancels' round trip: a
        market-WS loss or a HALT during that round trip stops places decided before it (a
        decision now would plan none: no book, no quotes)."""
        if self.market_ws is not None and not self.market_ws.connected:
            return "market WS down"
        if self.core.risk.mode is Mode.HALT:
            return "risk mode HALT"
        if self._resync_needed:
            return f"resync pending ({self._resync_needed})"
        if self._unknown:
            return f"{len(self._unknown)} order(s) with unknown submit outcome"
        hb = getattr(self.executor, "heartbeat_ok", None)
        if hb is False and getattr(self.executor, "heartbeat", None) is not None:
            return "exchange heartbeat not acknowledged"
        return None

    def _need_resync(self, why: str) -> None:
        if self.executor is None:
            return
        self._resync_needed = why
        self._resync_req += 1
        self._resync_next_ms = 0
        self._wake.set()

    def _user_ws_settled(self) -> bool:
        """False while our user channel is down or a planned reconnect of it is under way: a
        reconciliation then would leave a gap (events before the channel is back are not
        replayed), and the (re)connect requests one of its own. True without a user channel."""
        if self.user_ws is None:
            return True
        return bool(self.user_ws.connected) and not self._planned_user_reconnect

    async def _maybe_resync(self, now: int) -> None:
        """Pending resync: reconcile open orders + trades with the exchange, once the user
        channel is up (an incomplete one is retried every RESYNC_EVERY_MS of trader time)."""
        if self._unknown:
            await self._check_unknown(now)
        if not self._resync_needed or self.core.market is None or self.executor is None:
            return
        if now < self._resync_next_ms or not self._user_ws_settled():
            return
        self._resync_next_ms = now + RESYNC_EVERY_MS
        why = self._resync_needed
        rep = await self.reconcile(now)
        self.resyncs += 1
        if rep.complete:
            log.info("Resynced with the exchange after: %s", why)
        else:
            log.warning("Resync incomplete (%s): new orders stay stopped", "; ".join(rep.errors)[:300])

    def _resolve_unknown(self, order_id: str | None, how: str, found: bool = True) -> None:
        if order_id and self._unknown.pop(order_id, None) is not None:
            self._unknown_absent.pop(order_id, None)
            log.info("Unknown order %s resolved (%s)", order_id, how)
            self._j("unknown_resolved", {"how": how, "found": found}, order_id=order_id)
            self._wake.set()

    async def _check_unknown(self, now: int) -> None:
        """Look up unknown orders (at most every UNKNOWN_LOOKUP_MS of trader time): found ->
        managed; unknown to the exchange in two lookups, the last one UNKNOWN_GRACE_MS or more
        after it became unknown -> never placed. Lookup errors leave them unknown (fail closed)."""
        if now < self._unknown_next_ms:
            return
        self._unknown_next_ms = now + UNKNOWN_LOOKUP_MS
        lookup = getattr(self.executor, "lookup_order", None)
        if lookup is None:
            return
        for oid, since in list(self._unknown.items()):
            try:
                o = await lookup(oid)
            except Exception as exc:  # noqa: BLE001
                log.debug("Unknown order %s lookup failed: %s", oid, exc)
                continue
            if o is not None:
                st = str(o.get("status", "")).upper()
                matched = o.get("size_matched")
                try:
                    matched_f = float(matched) if matched not in (None, "") else None
                except (TypeError, ValueError):
                    matched_f = None
                self.core.om.on_order_update(oid, matched_f, st, now)
                self._resolve_unknown(oid, f"lookup: {st.lower() or 'found'}")
                if matched_f:
                    self._need_resync("unknown order had fills")   # fetch its trades
            else:
                absent = self._unknown_absent[oid] = self._unknown_absent.get(oid, 0) + 1
                if absent < 2 or now - since < UNKNOWN_GRACE_MS:
                    continue
                self.core.om.on_cancelled(oid, now)
                self._resolve_unknown(oid, "lookup: not on the exchange", found=False)

    def _rest_failure(self, exc: BaseException) -> None:
        now = self.clock.now_ms()
        auth = bool(getattr(exc, "auth_failed", False)) or type(exc).__name__ == "AuthError"
        ch = self.core.risk.on_rest(False, now, auth_failed=auth)
        self._journal_changes(None, [ch] if ch else [])

    # ------------------------------------------------------------------ market selection / roll
    async def _maybe_roll(self, now: int) -> None:
        core = self.core
        if self.discovery is None:
            return
        cur = self.discovery.current
        hs = now - now % 3_600_000
        if cur is not None and cur.start_ms != hs:
            cur = None
        if cur is None and self.discovery.next is not None and self.discovery.next.start_ms == hs:
            self.discovery.current, self.discovery.next = self.discovery.next, None
            cur = self.discovery.current
        if cur is None:
            if core.market is not None and now >= core.market.end_ms:
                await self._select(None, now)
            return
        if core.market is None or core.market.slug != cur.slug:
            await self._select(cur, now)

    async def _select(self, info: Any, now: int) -> None:
        core = self.core
        old = core.market
        if old is not None and core.om.open_orders() and self.executor is not None:
            await self._execute(core.om.cancel_all_actions(), None)  # leftovers of the old hour
        if old is not None:
            self._j("market_end", {"slug": old.slug, "yes_tokens": core.om.yes_tokens, "no_tokens": core.om.no_tokens,
                                   "cash": core.om.cash, "fills": core.om.n_fills, "volume": core.om.volume})
        ref = MarketRef.from_info(info) if info is not None else None
        core.set_market(ref)
        if ref is not None:
            core.om._prefix = f"{self._nonce}-{ref.start_ms // 1000}-"  # unique across restarts and hours
        self._last_cancel_all_key = None
        if ref is None:
            return
        log.info("Selected market: %s", ref.slug)
        self._j("market", {"slug": ref.slug, "condition_id": ref.condition_id, "up": ref.up_token_id,
                           "down": ref.down_token_id, "start_ms": ref.start_ms, "end_ms": ref.end_ms,
                           "tick_size": ref.tick_size, "min_size": ref.min_size})
        if self.market_ws is not None:
            await self.market_ws.set_tokens(ref.token_ids if hasattr(ref, "token_ids") else
                                            (ref.up_token_id, ref.down_token_id), ref.tick_size)
        if self.user_ws is not None:
            if self.user_ws.connected and tuple(self.user_ws.markets) != (ref.condition_id,):
                self._planned_user_reconnect = True   # set_markets reconnects only on a change
            await self.user_ws.set_markets([ref.condition_id])
        if self.user_ws is not None and self.executor is not None:
            # one reconciliation, once the user channel follows the new market: one made now
            # would be repeated as soon as it is back (it does not replay what it missed), and
            # new orders wait for it either way
            self._need_resync(f"market {ref.slug} selected")
        else:
            await self.reconcile(now)

    async def reconcile(self, now: int) -> ReconcileReport:
        """Journal fills -> inventory; exchange open orders -> adopt ours, cancel strays."""
        core = self.core
        m = core.market
        rep = ReconcileReport()
        if m is None:
            return rep
        req = self._resync_req   # a complete pass satisfies every resync requested before it began
        loop = asyncio.get_running_loop()
        fills = await loop.run_in_executor(None, lambda: self.journal.events("fill", market=m.slug))
        rep.fills_replayed = replay_fills(core, [e.payload for e in fills if isinstance(e.payload, dict)])
        if self.executor is not None:
            acks = await loop.run_in_executor(None, lambda: self.journal.events("ack", market=m.slug)
                                              + self.journal.events("unknown", market=m.slug))
            ours = {e.order_id for e in acks if e.order_id}
            # + the orders this process manages (a resync runs mid-session: an ack journaled a
            # moment ago may not be committed yet, and must never make our own order a "stray")
            # (and one we already consider final but the exchange still shows is a stray)
            ours |= {o.order_id for o in core.om.orders.values() if o.order_id and not o.state.final}
            ours -= {o.order_id for o in core.om.orders.values() if o.order_id and o.state.final}
            try:
                orders = await self.executor.open_orders()
            except Exception as exc:  # noqa: BLE001
                rep.errors.append(f"open orders: {exc}")
                rep.complete = False
                self._rest_failure(exc)
                orders = []
            strays = classify_orders(core, m, orders, ours, now, rep)
            trades_fn = getattr(self.executor, "trades", None)
            if trades_fn is not None:
                try:
                    trades = await trades_fn(m.condition_id)
                    api_key = getattr(self.executor, "api_key", None)
                    for f in exchange_fills(core, m, trades, api_key, now, rep):
                        rep.fills_from_exchange += 1
                        self._j("fill", {"trade_id": f.trade_id, "order_id": f.order_id, "token": f.token,
                                         "side": f.side, "price": f.price, "size": f.size, "ts_ms": now,
                                         "source": "reconcile"}, order_id=f.order_id)
                except Exception as exc:  # noqa: BLE001
                    rep.errors.append(f"trades: {exc}")
                    rep.complete = False
            for oid in rep.adopted:
                self._resolve_unknown(oid, "open orders")
            if strays:
                try:
                    done, failed = await self.executor.cancel(strays)
                    if failed:
                        rep.errors.append(f"stray cancels failed: {failed}")
                except Exception as exc:  # noqa: BLE001
                    rep.errors.append(f"stray cancel: {exc}")
        rep.yes_tokens, rep.no_tokens = core.om.yes_tokens, core.om.no_tokens
        rep.phase = core.session.schedule.phase_at(now, m.end_ms, m.start_ms).value  # journaled by the next cycle
        log.info("Reconciled %s: adopted %d order(s), cancelled %d stray(s), inventory Up=%g Down=%g, phase %s",
                 m.slug, len(rep.adopted), len(rep.strays), rep.yes_tokens, rep.no_tokens, rep.phase)
        self._j("reconcile", rep.as_dict())
        if not rep.complete:
            # never quote from a partial picture of our own orders and fills
            self._resync_needed = "reconciliation incomplete"
        elif self._resync_req == req:
            self._resync_needed = None
        return rep

    # ------------------------------------------------------------------ loops
    async def _decision_loop(self) -> None:
        while not self._stop.is_set():
            try:   # asyncio.timeout, not wait_for: no task per wake-up, one loop pass less per snapshot
                async with asyncio.timeout(self.housekeeping_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.cycle()
            except Exception:  # noqa: BLE001 - one bad pass must not stop trading safety
                log.exception("decision cycle failed")

    async def _discovery_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.discovery.refresh(self.clock.now_ms())
            except Exception:  # noqa: BLE001
                log.exception("market discovery failed (will retry)")
            self._wake.set()
            # only the next hour missing: no hurry (Gamma lists hourly markets well ahead)
            relaxed = self.discovery.current is not None and self.discovery.next is None
            await asyncio.sleep(max(self.discovery_every_s, 5.0) if relaxed else self.discovery_every_s)

    async def _state_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.state_every_s)
            # final orders are kept only for late fills/lookups; without pruning every decision
            # pass scans an ever-growing order table (backtests measured ~30x slower hours)
            self.core.om.prune(keep_final=200)
            try:
                self.journal.snapshot(self.clock.now_ms(), self.core.status())
            except Exception:  # noqa: BLE001
                log.exception("journal snapshot failed")

    async def sweep_strays(self) -> list[str]:
        """Cancel venue orders of this market we do not manage (or believe final).

        Catches the rare order whose POST outcome stayed unknown but that did reach the
        exchange. The open-orders GET runs without the cycle lock (it takes 8-18 ms: a snapshot
        arriving meanwhile is decided on at once); the comparison runs under it, i.e. once no
        POST of ours is in flight, and every POST sent before it has been answered: an order the
        GET saw has its id booked by then (ack, or the hash of an unknown outcome or of a cancel
        before the ack), so an order being placed can never be mistaken for a stray. An order the
        GET saw open that became final meanwhile is cancelled again (answered not_canceled).
        """
        m = self.core.market
        if self.executor is None or m is None:
            return []
        try:
            orders = await self.executor.open_orders(m.condition_id)  # type: ignore[call-arg]
        except Exception as exc:  # noqa: BLE001
            log.warning("Stray sweep: open orders failed: %s", exc)
            return []
        async with self._cycle_lock:
            if self.core.market is not m:
                return []     # the market rolled during the GET: the next sweep looks again
            strays = []
            for o in orders:
                oid = str(o.get("id") or "")
                mine = self.core.om.by_order_id(oid)
                if oid and (mine is None or mine.state.final):
                    strays.append(oid)
            if not strays:
                return []
            log.warning("Cancelling %d order(s) on the venue we do not manage: %s", len(strays), strays)
            try:
                done, failed = await self.executor.cancel(strays)
            except Exception as exc:  # noqa: BLE001
                done, failed = [], {"_": str(exc)}
            self._j("stray_cancel", {"ids": strays, "cancelled": list(done), "failed": failed})
            return list(done)

    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.sweep_every_s)
            try:
                await self.sweep_strays()
            except Exception:  # noqa: BLE001
                log.exception("stray sweep failed")

    async def _heartbeat_loop(self) -> None:
        hb = getattr(self.executor, "heartbeat", None)
        if hb is None:
            return
        retry_s = HEARTBEAT_RETRY_S
        while not self._stop.is_set():
            try:
                ok = await hb()
            except Exception as exc:  # noqa: BLE001
                log.warning("Heartbeat failed: %s", exc)
                ok = False
            if ok is False:
                # new orders wait for a fresh ack, and the venue cancels everything ~10 s after the
                # last good beat: retry soon (doubling), not a whole interval later
                await asyncio.sleep(retry_s)
                retry_s = min(HEARTBEAT_EVERY_S, retry_s * 2)
                continue
            retry_s = HEARTBEAT_RETRY_S
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        from hourmm_core.polymarket.gamma import GammaClient, MarketDiscovery
        from hourmm_core.polymarket.market_ws import MarketWsClient

        cfg = self.cfg
        self._j("startup", {"quoting_enabled": self.core.quoting_enabled, "slug_base": cfg.market_slug,
                            "limits": self.core.risk.limits.as_dict(), "speed": self.clock.speed})
        if not self.core.quoting_enabled:
            log.warning("No Polymarket credentials (PM_PRIVATE_KEY, PM_FUNDER, PM_SIGNATURE_TYPE): "
                        "market data only, quoting disabled")
        await self.control.start()
        self.core.extra_status["control_port"] = self.control.port
        self._gamma = GammaClient(cfg.gamma_url)
        self.discovery = MarketDiscovery(self._gamma, cfg.market_slug)
        self.market_ws = MarketWsClient(cfg.pm_ws_url, clock=self.clock, on_state=self._on_market_state,
                                        on_event=self._on_market_event, queue_events=False)
        self.market_ws.start()
        if self.core.quoting_enabled:
            key, secret, phrase = self._api_creds()
            from hourmm_core.polymarket.user_ws import UserWsClient
            self.user_ws = UserWsClient(cfg.pm_ws_url, key, secret, phrase, clock=self.clock,
                                        on_state=self._on_user_state, on_event=self._on_user_event,
                                        queue_events=False)
            self.user_ws.start()
            self.core.risk.health.rest = True
        await self.snapshots.start()
        self._tasks = [asyncio.create_task(c, name=n) for n, c in (
            ("discovery", self._discovery_loop()), ("decision", self._decision_loop()),
            ("state", self._state_loop()), ("heartbeat", self._heartbeat_loop()), ("sweep", self._sweep_loop()))]

    def _api_creds(self) -> tuple[str, str, str]:
        ex = self.executor
        c = getattr(ex, "api_creds", None)
        if c is not None:
            return (getattr(c, "api_key", None) or c[0], getattr(c, "api_secret", None) or c[1],
                    getattr(c, "api_passphrase", None) or c[2])
        assert self.creds is not None and self.creds.api_key
        return self.creds.api_key, self.creds.api_secret or "", self.creds.api_passphrase or ""

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self, cancel_orders: bool = True) -> None:
        """Cancel our orders, stop every task, flush and close the journal.

        ``cancel_orders=False`` leaves the orders on the exchange (what a crash does; tests
        use it to exercise start-up reconciliation).
        """
        if self._stopping:
            return
        self._stop.set()
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if cancel_orders and self.executor is not None and self.core.market is not None:
            async with self._cycle_lock:
                try:
                    ok = await self.executor.cancel_all()
                except Exception as exc:  # noqa: BLE001
                    ok = False
                    log.error("Cancel-all failed: %s", exc)
                self._j("cancel_all", {"ok": ok, "reason": "shutdown"})
        for c in (self.snapshots, self.market_ws, self.user_ws, self.control):
            if c is not None:
                with contextlib.suppress(Exception):
                    await c.stop()
        if self._gamma is not None:
            await self._gamma.close()
        self._j("shutdown", {"status": self.core.status()})
        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(None, self.journal.close)
        if self.executor is not None and hasattr(self.executor, "close"):
            with contextlib.suppress(Exception):
                r = self.executor.close()
                if asyncio.iscoroutine(r):
                    await r

    async def run(self, install_signals: bool = False, on_started: Callable[[], Any] | None = None) -> None:
        """Start, run until stopped (SIGTERM/SIGINT when ``install_signals``), then stop cleanly.
        ``on_started`` is called once everything is started (the runner settles the GC there)."""
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        if on_started is not None:
            on_started()
        try:
            await self._stop.wait()
        finally:
            await self.stop()
