"""The trader's cancel fast path and the last gate before places (issue 15 / issue 13).

* A snapshot that endangers resting quotes while a pass awaits its POST reply: the quotes
  are cancelled at once (the decision core's own cancel rule, ``decide(places=False)``),
  nothing is placed by the fast path, every row is journaled, and the next pass plans only
  once those cancels' outcomes are known.
* A plan whose cancels are in flight when the market WS drops (or the risk mode turns HALT)
  does not send its places afterwards.

Fake executor, market WS stub and a fixed clock (no sockets, no wall time): the order of
calls is what matters. The two fair values (0.35 -> 0.70) are synthetic: a jump is the shape
being tested.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from hourmm_core.config import TraderConfig
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.order_manager import Action, Order, OrderState
from hourmm_core.trading.snapshot_client import Snapshot
from hourmm_core.trading.trader import PlaceResult, Trader
from hourmm_core.trading.types import BUY, DOWN, UP

H = 1_767_225_600_000          # an hour start (ms UTC)
NOW = H + 10 * 60_000          # ten minutes into the hour: quoting phase


class _Clock:
    speed = 1.0

    def __init__(self, t: int) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t


class _Journal:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict, str | None]] = []

    def event(self, ts_ms: int, kind: str, payload: Any = None, *, market: str | None = None,
              order_id: str | None = None) -> None:
        self.rows.append((kind, payload, order_id))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.rows]

    def close(self) -> None:
        pass


class _Top:
    def __init__(self, bid: float, ask: float) -> None:
        self.bid, self.ask = bid, ask


class _Book:
    tick_size = 0.01

    def __init__(self, bid: float, ask: float) -> None:
        self._top = _Top(bid, ask)

    def top(self) -> _Top:
        return self._top


class _MarketWs:
    def __init__(self) -> None:
        self.connected = True
        self.bad_frames: dict[str, int] = {}
        self.books = {"up": _Book(0.34, 0.36), "dn": _Book(0.64, 0.66)}


class _UserWs:
    connected = True
    bad_frames: dict[str, int] = {}
    markets = ("0xc",)


class _Executor:
    """Records every call in order; a POST or a cancel can be held in flight by the test."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.post_hold: asyncio.Event | None = None
        self.cancel_hold: asyncio.Event | None = None
        self.posted = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def _post(self, cids: tuple[str, ...]) -> None:
        self.log.append(("post", cids))
        self.posted.set()
        if self.post_hold is not None:
            await self.post_hold.wait()
        self.log.append(("post_reply", cids))

    async def place(self, token_id, side, price, size, *, tick_size, neg_risk, post_only, client_id,
                    presigned=None):
        await self._post((client_id,))
        return PlaceResult(True, order_id=f"oid-{client_id}", status="live")

    async def place_many(self, orders, presigned=None):
        await self._post(tuple(o["client_id"] for o in orders))
        return [PlaceResult(True, order_id=f"oid-{o['client_id']}", status="live") for o in orders]

    async def cancel(self, ids):
        self.log.append(("cancel", tuple(ids)))
        self.cancelled.set()
        if self.cancel_hold is not None:
            await self.cancel_hold.wait()
        self.log.append(("cancel_reply", tuple(ids)))
        return list(ids), {}


def _trader(tmp_path) -> tuple[Trader, _Executor, _Journal]:
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    j = _Journal()
    ex = _Executor()
    tr = Trader(cfg, _Clock(NOW), None, executor=ex, journal=j)
    tr.core.quoting_enabled = True
    tr.core.set_market(MarketRef("s", "0xc", "up", "dn", H, H + 3_600_000, 0.01, 5.0, False))
    tr.market_ws = _MarketWs()
    tr.user_ws = _UserWs()
    h = tr.core.risk.health
    h.market_ws = h.user_ws = h.rest = True
    return tr, ex, j


def _snap(tr: Trader, seq: int, fair_up: float) -> Snapshot:
    s = Snapshot(seq, NOW, H, H + 3_600_000, fair_up, 0.01, False)
    tr.snapshots.latest = s
    return s


def _endangered(tr: Trader, fair_up: float) -> set[str]:
    """Resting orders on the wrong side of the fair value (a taker gains by hitting them)."""
    out = set()
    for o in tr.core.om.orders.values():
        if o.order_id and o.state is OrderState.LIVE:
            f = fair_up if o.token == UP else 1.0 - fair_up
            if (o.price >= f) if o.side == BUY else (o.price <= f):
                out.add(o.order_id)
    return out


async def _quoting(tr: Trader) -> list[Order]:
    _snap(tr, 1, 0.35)
    await tr.cycle()
    live = [o for o in tr.core.om.orders.values() if o.state is OrderState.LIVE]
    assert any(o.token == DOWN and o.side == BUY for o in live), live   # the Down bids a jump up endangers
    return live


async def _post_in_flight(tr: Trader, ex: _Executor) -> "asyncio.Future[Any]":
    """Quotes resting at fair 0.35; one went away (as if the user WS said CANCELLATION), so the next
    pass re-places it only: that pass is returned with its POST held in flight."""
    live = await _quoting(tr)
    tr.core.om.on_cancelled(next(o for o in live if o.token == UP).order_id, NOW)
    ex.log.clear()
    ex.posted.clear()
    ex.post_hold = asyncio.Event()
    pass_a = asyncio.ensure_future(tr.cycle())
    await ex.posted.wait()
    return pass_a


async def test_a_jump_during_a_post_round_trip_cancels_the_endangered_quotes_at_once(tmp_path):
    tr, ex, j = _trader(tmp_path)
    pass_a = await _post_in_flight(tr, ex)
    assert tr._executing and ex.log == [("post", ex.log[0][1])]          # a POST in flight, nothing else
    at_risk = _endangered(tr, 0.70)
    assert at_risk
    n_rows = len(j.rows)
    await tr._on_snapshot(_snap(tr, 2, 0.70))                           # the stream hands over the jump
    kinds = [e[0] for e in ex.log]
    assert kinds == ["post", "cancel", "cancel_reply"], ex.log          # cancelled while the POST waits
    assert at_risk <= set(ex.log[1][1]) and tr.fast_cancels == len(ex.log[1][1])
    new = j.rows[n_rows:]
    assert new[0][0] == "decision" and new[0][1]["reason"] == "fast_cancel"
    assert [k for k, _, _ in new[1:]] == ["cancel"] * len(ex.log[1][1]) + ["cancel_ack"] * len(ex.log[1][1])
    assert all(tr.core.om.by_order_id(i).state is OrderState.CANCELLED for i in ex.log[1][1])
    assert not any(o.state is OrderState.INTENT for o in tr.core.om.orders.values())  # nothing planned to place
    ex.post_hold.set()
    await pass_a
    # the normal pass follows, on the new fair value: its places (if any) go out after the fast cancels
    ex.post_hold = None
    await tr.cycle()
    assert _endangered(tr, 0.70) == set()


async def test_the_next_pass_waits_for_the_fast_cancels_outcome(tmp_path):
    tr, ex, j = _trader(tmp_path)
    pass_a = await _post_in_flight(tr, ex)
    ex.cancel_hold = asyncio.Event()
    ex.cancelled.clear()
    fast = asyncio.ensure_future(tr._on_snapshot(_snap(tr, 2, 0.70)))
    await ex.cancelled.wait()                                           # the fast cancel is in flight
    ex.post_hold.set()
    await pass_a
    decided = []
    orig = tr.core.decide
    tr.core.decide = lambda *a, **kw: decided.append(1) or orig(*a, **kw)
    pass_b = asyncio.ensure_future(tr.cycle())
    for _ in range(50):                                                 # let the loop run (no I/O: deterministic)
        await asyncio.sleep(0)
    assert not pass_b.done() and decided == []                         # waits for the cancel's outcome
    ex.cancel_hold.set()
    await fast
    await pass_b
    assert decided == [1]
    kinds = [e[0] for e in ex.log]
    assert kinds.index("cancel_reply") < len(kinds) - 1 or kinds[-1] == "cancel_reply"


async def test_no_fast_path_without_a_pass_in_flight(tmp_path):
    tr, ex, j = _trader(tmp_path)
    await _quoting(tr)
    ex.log.clear()
    await tr._on_snapshot(_snap(tr, 2, 0.70))
    assert ex.log == [] and tr.fast_cancels == 0 and tr._wake.is_set()   # the decision loop handles it


def _held_plan(tr: Trader) -> tuple[Order, Order, list[Action]]:
    om = tr.core.om
    old = Order("w0", UP, BUY, 0.30, 5.0, False, 0)
    om.orders["w0"] = old
    om.on_sent(old, 1)
    om.on_ack(old, "old-w0", "live", 1)
    new = Order("n0", UP, BUY, 0.31, 5.0, False, 2)
    om.orders["n0"] = new
    return old, new, [Action("cancel", old), Action("place", new)]


async def test_places_decided_before_a_market_ws_drop_are_not_sent_after_it(tmp_path):
    tr, ex, j = _trader(tmp_path)
    old, new, actions = _held_plan(tr)
    ex.cancel_hold = asyncio.Event()
    run = asyncio.ensure_future(tr._execute(actions, None))
    await ex.cancelled.wait()                                           # the plan's cancel is in flight
    tr.market_ws.connected = False
    await tr._on_market_state(False, "test: connection lost")
    ex.cancel_hold.set()
    await run
    assert [e[0] for e in ex.log] == ["cancel", "cancel_reply"]          # the place never left
    assert new.state is OrderState.REJECTED and new.reason == "not sent: market WS down"
    assert old.state is OrderState.CANCELLED
    gate = [p for k, p, _ in j.rows if k == "order_gate"]
    assert gate == [{"blocked": True, "reason": "market WS down"}]


async def test_places_decided_before_a_halt_are_not_sent_after_it(tmp_path):
    tr, ex, j = _trader(tmp_path)
    old, new, actions = _held_plan(tr)
    ex.cancel_hold = asyncio.Event()
    run = asyncio.ensure_future(tr._execute(actions, None))
    await ex.cancelled.wait()
    tr.core.risk.halt("test: operator", NOW)
    ex.cancel_hold.set()
    await run
    assert [e[0] for e in ex.log] == ["cancel", "cancel_reply"]
    assert new.state is OrderState.REJECTED and new.reason == "not sent: risk mode HALT"


async def test_places_still_go_out_when_nothing_changed_during_the_cancel(tmp_path):
    tr, ex, j = _trader(tmp_path)
    old, new, actions = _held_plan(tr)
    await tr._execute(actions, None)
    assert [e[0] for e in ex.log] == ["cancel", "cancel_reply", "post", "post_reply"]
    assert new.state is OrderState.LIVE


async def test_a_failed_fast_cancel_is_not_repeated_while_the_same_pass_waits(tmp_path):
    """A venue in trouble is not hammered at the snapshot rate: after a failed fast cancel the fast
    path stays off until the pass in flight ends (the normal passes retry), then it is armed again."""
    tr, ex, j = _trader(tmp_path)
    pass_a = await _post_in_flight(tr, ex)

    async def failing_cancel(ids):
        ex.log.append(("cancel", tuple(ids)))
        return [], {i: "venue said no" for i in ids}
    ex.cancel = failing_cancel
    await tr._on_snapshot(_snap(tr, 2, 0.70))
    assert [e[0] for e in ex.log].count("cancel") == 1 and tr._fast_off
    assert [k for k, _, _ in j.rows].count("cancel_reject") >= 1
    await tr._on_snapshot(_snap(tr, 3, 0.71))                           # same pass still waiting: nothing sent
    assert [e[0] for e in ex.log].count("cancel") == 1
    ex.post_hold.set()
    await pass_a
    assert not tr._fast_off and not tr._fast_sent                       # armed again for the next pass


async def _jump_pass_with_cancel_held(tr: Trader, ex: _Executor) -> "asyncio.Future[Any]":
    """Quotes resting at fair 0.35; a jump to 0.70: the pass cancels the endangered quotes and
    plans replacements; returned with its cancel held in flight (replacements not sent yet)."""
    await _quoting(tr)
    ex.log.clear()
    ex.cancelled.clear()
    ex.cancel_hold = asyncio.Event()
    _snap(tr, 2, 0.70)
    pass_a = asyncio.ensure_future(tr.cycle())
    await ex.cancelled.wait()
    assert [e[0] for e in ex.log] == ["cancel"]
    return pass_a


async def test_a_second_move_during_the_cancel_stops_the_stale_replacements(tmp_path):
    """Two close moves (synthetic 0.35 -> 0.70 -> 0.85): the second snapshot lands while the first
    pass's cancel is in flight. That pass's replacements (quoted for 0.70) are not posted; the next
    pass places for 0.85. Nothing is posted before every cancel in front of it is answered."""
    tr, ex, j = _trader(tmp_path)
    pass_a = await _jump_pass_with_cancel_held(tr, ex)
    planned = [o for o in tr.core.om.orders.values() if o.state is OrderState.INTENT]
    assert planned                                                      # replacements waiting for the cancel
    _snap(tr, 3, 0.85)                                                  # the second move arrives meanwhile
    ex.cancel_hold.set()
    await pass_a
    assert "post" not in [e[0] for e in ex.log], ex.log                 # the stale replacements never left
    assert all(o.state is OrderState.REJECTED and o.reason == "not sent: a newer snapshot changed the plan"
               for o in planned)
    rows = [p for k, p, _ in j.rows if k == "recheck"]
    assert rows == [{"reason": "a newer snapshot changed the plan", "not_sent": [o.client_id for o in planned]}]
    assert tr._wake.is_set() and tr.rechecks_dropped == 1               # the next pass is due at once
    ex.cancel_hold = None
    ex.log.clear()
    await tr.cycle()
    kinds = [e[0] for e in ex.log]
    i = kinds.index("post")
    assert kinds[:i].count("cancel") == kinds[:i].count("cancel_reply")   # every cancel answered first
    assert _endangered(tr, 0.85) == set()                               # quoting for the latest fair value
    for o in tr.core.om.orders.values():
        if o.state is OrderState.LIVE:
            f = 0.85 if o.token == UP else 0.15
            assert (o.price < f) if o.side == BUY else (o.price > f)


async def test_a_newer_snapshot_that_wants_the_same_quotes_lets_them_go(tmp_path):
    tr, ex, j = _trader(tmp_path)
    pass_a = await _jump_pass_with_cancel_held(tr, ex)
    planned = [o for o in tr.core.om.orders.values() if o.state is OrderState.INTENT]
    _snap(tr, 3, 0.70)                                                  # a new seq, same fair value
    ex.cancel_hold.set()
    await pass_a
    kinds = [e[0] for e in ex.log]
    assert kinds[:2] == ["cancel", "cancel_reply"] and "post" in kinds
    assert all(o.state is OrderState.LIVE for o in planned)
    assert not [k for k, _, _ in j.rows if k == "recheck"]


async def test_the_recheck_can_be_switched_off(tmp_path):
    tr, ex, j = _trader(tmp_path)
    tr.recheck_places = False
    pass_a = await _jump_pass_with_cancel_held(tr, ex)
    _snap(tr, 3, 0.85)
    ex.cancel_hold.set()
    await pass_a
    assert "post" in [e[0] for e in ex.log]                             # the old behaviour: posted anyway
