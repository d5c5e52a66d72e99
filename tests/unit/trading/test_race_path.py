"""The trader's race path (issue 15): nothing waits in front of a cancel or a POST on our side.

* the replacement orders are signed while the plan's cancel is in flight, and still posted
  only after every cancel succeeded (a failed cancel drops them: fail closed, issue 13);
* the journal rows of a race section are written after the request went out, in the
  order they were made.

Fake executors (no sockets): what matters is the order of calls, not the venue.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from hourmm_core.clock import WallClock
from hourmm_core.config import TraderConfig
from hourmm_core.trading.decision import MarketRef
from hourmm_core.trading.order_manager import Action, Order, OrderState
from hourmm_core.trading.trader import PlaceResult, Trader


class _SpyJournal:
    """Journal stand-in: records (kind, order_id) as the trader hands rows over."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None]] = []

    def event(self, ts_ms: int, kind: str, payload: Any = None, *, market: str | None = None,
              order_id: str | None = None) -> None:
        assert isinstance(payload, dict)
        self.rows.append((kind, order_id))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.rows]

    def close(self) -> None:
        pass


class _RaceExecutor:
    """Cancel whose reply arrives only when the test says so; records every call in order."""

    def __init__(self, journal: _SpyJournal, cancel_ok: bool = True) -> None:
        self.log: list[Any] = []
        self.j = journal
        self.cancel_ok = cancel_ok
        self.reply = asyncio.Event()

    async def cancel(self, ids):
        self.log.append(("cancel", tuple(ids), tuple(self.j.kinds())))   # what the journal had at send time
        await self.reply.wait()                                           # the request is in flight
        self.log.append(("cancel_reply",))
        if self.cancel_ok:
            return list(ids), {}
        return [], {i: "venue said no" for i in ids}

    async def presign(self, orders):
        self.log.append(("presign", tuple(o["client_id"] for o in orders), tuple(self.j.kinds())))
        self.reply.set()      # the cancel's reply lands while (after) we sign
        return [f"signed-{o['client_id']}" for o in orders]

    async def place(self, token_id, side, price, size, *, tick_size, neg_risk, post_only, client_id,
                    presigned=None):
        self.log.append(("place", client_id, presigned, tuple(self.j.kinds())))
        return PlaceResult(True, order_id=f"oid-{client_id}", status="live")

    async def place_many(self, orders, presigned=None):
        self.log.append(("place_many", tuple(o["client_id"] for o in orders), tuple(presigned or ()),
                         tuple(self.j.kinds())))
        return [PlaceResult(True, order_id=f"oid-{o['client_id']}", status="live") for o in orders]


def _trader(tmp_path, cancel_ok: bool = True) -> tuple[Trader, _RaceExecutor, _SpyJournal]:
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0)
    j = _SpyJournal()
    ex = _RaceExecutor(j, cancel_ok)
    tr = Trader(cfg, WallClock(), None, executor=ex, journal=j)
    now = WallClock().now_ms()
    start = now - now % 3_600_000
    tr.core.set_market(MarketRef("s", "0xc", "up", "dn", start, start + 3_600_000, 0.01, 5.0, False))
    return tr, ex, j


def _plan(tr: Trader, n_new: int) -> tuple[Order, list[Order], list[Action]]:
    om = tr.core.om
    old = Order("w0", 0, 0, 0.40, 5.0, False, 0)
    om.orders["w0"] = old
    om.on_sent(old, 1)
    om.on_ack(old, "old-w0", "live", 1)
    new = [Order(f"n{i}", 0, 0, 0.30 + i / 100, 5.0, False, 2) for i in range(n_new)]
    for o in new:
        om.orders[o.client_id] = o
    return old, new, [Action("cancel", old)] + [Action("place", o) for o in new]


async def test_replacements_are_signed_while_the_cancel_is_in_flight_and_posted_after_it(tmp_path):
    for n in (1, 2):
        tr, ex, j = _trader(tmp_path)
        old, new, actions = _plan(tr, n)
        await tr._execute(actions, None)
        kinds = [e[0] for e in ex.log]
        assert kinds == ["cancel", "presign", "cancel_reply", "place" if n == 1 else "place_many"], ex.log
        ids = tuple(o.client_id for o in new)
        assert ex.log[1][1] == ids                                        # signed ahead: exactly the plan's places
        if n == 1:
            assert ex.log[3][2] == "signed-n0"                            # ... and those signatures were posted
        else:
            assert ex.log[3][2] == tuple(f"signed-{i}" for i in ids)
        assert old.state is OrderState.CANCELLED and all(o.order_id == f"oid-{o.client_id}" for o in new)


async def test_a_failed_cancel_drops_the_orders_signed_ahead(tmp_path):
    tr, ex, j = _trader(tmp_path, cancel_ok=False)
    old, new, actions = _plan(tr, 2)
    await tr._execute(actions, None)
    assert [e[0] for e in ex.log] == ["cancel", "presign", "cancel_reply"]   # signed, never posted
    assert all(o.state is OrderState.REJECTED and o.order_id is None for o in new)
    assert not old.state.final                                              # still live: nothing placed next to it
    assert j.kinds() == ["cancel", "cancel_reject"]


async def test_journal_rows_follow_the_request_and_keep_their_order(tmp_path):
    tr, ex, j = _trader(tmp_path)
    old, new, actions = _plan(tr, 2)
    await tr._execute(actions, None)
    assert ex.log[0][2] == ()                              # nothing serialised in front of the cancel
    assert ex.log[1][2] == ()                              # nor in front of signing the replacements
    assert ex.log[3][3] == ()                              # nor any row in front of the POST
    assert j.kinds() == ["cancel", "cancel_ack", "intent", "intent", "ack", "ack"]
    assert j.rows[0][1] == "old-w0" and j.rows[-1][1] == "oid-n1"


async def test_without_replacements_the_rows_go_out_during_the_cancel_round_trip(tmp_path):
    """A cancel-only plan: its rows are written once the DELETE is out (before its reply)."""
    tr, ex, j = _trader(tmp_path)
    old, _new, actions = _plan(tr, 0)
    seen: list[list[str]] = []

    async def reply_later():
        seen.append(j.kinds())        # runs after the cancel is written, before its reply
        ex.reply.set()
    # queued before the pass starts: runs (as a task, one loop pass later) after the rows held in
    # front of the DELETE were released and before its reply
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(reply_later()))
    await tr._execute(actions, None)
    assert seen == [["cancel"]], seen
    assert j.kinds() == ["cancel", "cancel_ack"] and old.state is OrderState.CANCELLED
