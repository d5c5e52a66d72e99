"""OrderManager: a cancel requested before the POST's ack (by the signed order's hash).

Every order in which the four answers can arrive is played: the POST's reply (live ack,
matched ack, reject), the early cancel's answer (canceled / not_canceled) and the user
WebSocket's PLACEMENT / CANCELLATION / fill events. Pure logic, no I/O; the venue is stood in
for by the rules a real CLOB follows (an order is cancelled only if the cancel reaches it
after the POST; a cancel of an unknown hash is answered in ``not_canceled``). Prices are
arbitrary order-book levels (not market data).
"""
from __future__ import annotations

import itertools

import pytest

from hourmm_core.trading.order_manager import (
    EARLY_MISSED,
    EARLY_NONE,
    EARLY_SENT,
    Fill,
    OrderManager,
    OrderState,
)
from hourmm_core.trading.types import BUY, UP, Quote

HASH = "0xh1"


def sent_order(om: OrderManager, local_id: str | None = HASH):
    (a,) = om.plan([Quote(UP, BUY, 0.40, 10)], 0, 4).actions
    om.on_sent(a.order, 1, local_id)
    return a.order


def test_sent_order_with_a_hash_is_cancellable_before_the_ack() -> None:
    om = OrderManager()
    o = sent_order(om)
    assert o.state is OrderState.SENT and o.local_id == HASH and om.cancellable_before_ack(o)
    # a newer plan that no longer wants it lists it as unacked (no exchange id yet)
    r = om.plan([Quote(UP, BUY, 0.30, 10)], 2, 4, places=False)
    assert r.unacked == [o] and r.actions == []
    om.on_cancel_sent(o, 3)
    assert o.state is OrderState.CANCELLING and o.early == EARLY_SENT
    assert om.cancel_id(o) == HASH and om.by_order_id(HASH) is o
    assert not om.cancellable_before_ack(o)              # one early cancel per order
    # a CANCELLING order keeps no quote and is not listed again
    r = om.plan([Quote(UP, BUY, 0.40, 10)], 4, 4, places=False)
    assert r.unacked == [] and r.kept == 0


def test_without_a_hash_nothing_is_cancellable_before_the_ack() -> None:
    om = OrderManager()
    o = sent_order(om, None)
    assert not om.cancellable_before_ack(o)
    (a,) = om.plan([Quote(UP, BUY, 0.41, 10)], 0, 4).actions   # INTENT: not posted yet
    assert not om.cancellable_before_ack(a.order)


def test_a_missed_cancel_is_not_a_failure_and_the_live_ack_asks_for_a_recancel() -> None:
    # (a) the cancel reached the venue before the POST: "order not found"
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    got = om.on_cancel_failed(HASH, "order not found", 3)
    assert got is o and o.state is OrderState.CANCELLING and o.early == EARLY_MISSED
    assert not o.state.final                      # not "gone": the POST may still land
    assert not om.recancel_due(o)                 # no id yet: nothing to cancel again until the ack
    om.on_ack(o, HASH, "live", 4)
    assert o.state is OrderState.CANCELLING       # never booked LIVE meanwhile
    assert om.recancel_due(o)
    om.on_cancel_sent(o, 5)                       # the re-cancel, by its id: the usual rules
    assert o.early == EARLY_NONE and not om.recancel_due(o)
    om.on_cancelled(HASH, 6)
    assert o.state is OrderState.CANCELLED


def test_a_recancel_that_fails_follows_the_usual_rules() -> None:
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    om.on_cancel_failed(HASH, "order not found", 3)
    om.on_ack(o, HASH, "live", 4)
    om.on_cancel_sent(o, 5)
    om.on_cancel_failed(HASH, "internal error", 6)       # a real failure now: the order is working
    assert o.state is OrderState.LIVE and o.early == EARLY_NONE


def test_cancel_succeeds_before_the_post_reply_ack_does_not_book_live() -> None:
    # (b)
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    om.on_cancelled(HASH, 3)
    assert o.state is OrderState.CANCELLED
    om.on_ack(o, HASH, "live", 4)
    assert o.state is OrderState.CANCELLED and o.order_id == HASH and not om.recancel_due(o)
    assert om.open_count == 0 and om.reserved_capital() == 0.0


def test_ack_before_the_cancel_answer_waits_for_that_answer() -> None:
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    om.on_ack(o, HASH, "live", 3)
    assert o.state is OrderState.CANCELLING and not om.recancel_due(o)   # the answer is still due
    om.on_cancel_failed(HASH, "order not found", 4)   # it overtook the POST at the venue after all
    assert om.recancel_due(o)


def test_rejected_post_makes_the_cancel_answer_harmless() -> None:
    # (c), both orders of arrival
    for reject_first in (True, False):
        om = OrderManager()
        o = sent_order(om)
        om.on_cancel_sent(o, 2)
        if reject_first:
            om.on_reject(o, "could not insert order", 3)
            assert om.on_cancel_failed(HASH, "order not found", 4) is o
        else:
            om.on_cancel_failed(HASH, "order not found", 3)
            om.on_reject(o, "could not insert order", 4)
        assert o.state is OrderState.REJECTED and not om.recancel_due(o) and om.open_count == 0


def test_unknown_submit_outcome_releases_a_missed_cancel_to_the_plans() -> None:
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    om.on_cancel_failed(HASH, "order not found", 3)
    om.on_ack(o, HASH, "unknown", 4)
    assert om.recancel_due(o)
    om.release_early(o, 5)        # the trader: never cancelled blind while its outcome is unknown
    assert o.state is OrderState.LIVE and o.early == EARLY_NONE
    r = om.plan([Quote(UP, BUY, 0.30, 10)], 6, 4, places=False)
    assert [a.order for a in r.actions] == [o]   # the plans cancel it like any working order


def test_a_fill_before_the_ack_counts_once() -> None:
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    assert om.on_fill(Fill("t1", HASH, UP, BUY, 0.40, 4, 3))
    assert o.filled == 4 and o.state is OrderState.CANCELLING and om.yes_tokens == 4
    om.on_ack(o, HASH, "live", 4)
    assert o.filled == 4 and om.yes_tokens == 4   # not counted again at the ack


# ------------------------------------------------------------- every order of arrival (d)
VENUE_CASES = {
    # name: (the venue's outcome of the POST, the early cancel's answer, the user-WS events)
    "cancel_overtook_post": ("live", "not_canceled", ["PLACEMENT"]),
    "cancel_hit_the_order": ("live", "canceled", ["PLACEMENT", "CANCELLATION"]),
    "cancel_after_a_fill": ("live", "canceled", ["PLACEMENT", "FILL4", "CANCELLATION"]),
    "post_rejected": ("reject", "not_canceled", []),
    "fully_matched": ("matched", "not_canceled", ["FILL10"]),
}


def _replay(case: str, order: tuple[str, ...]) -> tuple[OrderManager, object, bool]:
    post, answer, ws = VENUE_CASES[case]
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    recancelled = False
    t = 3
    for ev in order:
        t += 1
        if ev == "ack":
            if post == "reject":
                om.on_reject(o, "could not insert order", t)
            else:
                om.on_ack(o, HASH, post, t)
        elif ev == "answer":
            if answer == "canceled":
                om.on_cancelled(HASH, t)
            else:
                om.on_cancel_failed(HASH, "order can't be found - already canceled or matched"
                                    if post == "matched" else "order not found", t)
        elif ev.startswith("FILL"):
            om.on_fill(Fill(f"t{t}", HASH, UP, BUY, 0.40, float(ev[4:]), t))
        else:
            om.on_order_update(HASH, None, ev, t)
        if om.recancel_due(o):        # what the trader does at once: a normal cancel by the id
            recancelled = True
            om.on_cancel_sent(o, t)
            if post == "matched":
                om.on_cancel_failed(HASH, "order can't be found - already canceled or matched", t)
            else:
                om.on_cancelled(HASH, t)
    return om, o, recancelled


@pytest.mark.parametrize("case", sorted(VENUE_CASES))
def test_every_order_of_arrival_ends_consistent(case: str) -> None:
    post, answer, ws = VENUE_CASES[case]
    events = ["ack", "answer", *ws]
    n = 0
    for order in itertools.permutations(events):
        # all permutations, the acausal ones included (e.g. a CANCELLATION before the PLACEMENT):
        # a superset of what the venue and the network can produce
        om, o, recancelled = _replay(case, order)
        n += 1
        assert o.state.final, (order, o.state)
        assert not om.recancel_due(o)
        if post == "reject":
            assert o.state is OrderState.REJECTED and not recancelled
        elif post == "matched":
            # a cancel answered "already ... matched" before the fill arrived books it CANCELLED
            # (the usual rule); the fill still counts, once
            assert o.state in (OrderState.FILLED, OrderState.CANCELLED) and o.filled == 10
            assert om.yes_tokens == 10
        else:
            assert o.state is OrderState.CANCELLED
            assert recancelled == (answer == "not_canceled")   # only a missed cancel is repeated
            assert om.yes_tokens == (4 if "FILL4" in ws else 0)
        assert om.open_count == 0
    assert n >= 2


def test_an_ack_saying_cancelled_after_a_missed_early_cancel_needs_no_recancel() -> None:
    # the early cancel overtook the POST (missed); the POST's outcome was then recovered with the
    # venue's status "canceled" (e.g. a cancel-all meanwhile): the order is final, nothing to re-send
    om = OrderManager()
    o = sent_order(om)
    om.on_cancel_sent(o, 2)
    om.on_cancel_failed(HASH, "order not found", 3)
    assert o.early == EARLY_MISSED and o.state is OrderState.CANCELLING
    om.on_ack(o, HASH, "canceled", 4)
    assert o.state is OrderState.CANCELLED and not om.recancel_due(o)
