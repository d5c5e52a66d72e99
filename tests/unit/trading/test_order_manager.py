"""OrderManager: no churn within tolerance, MAX_OPEN_ORDERS, rate limit, states, fills."""
from hourmm_core.trading.order_manager import Fill, OrderManager, OrderState, TokenBucket
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Quote


def live(om: OrderManager, now: int = 0) -> None:
    """Ack every sent order (what the executor does after a successful POST)."""
    for i, o in enumerate(list(om.orders.values())):
        if o.state in (OrderState.INTENT, OrderState.SENT):
            om.on_sent(o, now)
            om.on_ack(o, f"x{o.client_id}", "live", now)


def test_place_then_keep_within_tolerance() -> None:
    om = OrderManager(price_tol=0.005, size_tol=0.2)
    want = [Quote(UP, BUY, 0.45, 5), Quote(DOWN, BUY, 0.50, 5)]
    r = om.plan(want, 0, 4)
    assert [a.kind for a in r.actions] == ["place", "place"]
    live(om)
    r2 = om.plan([Quote(UP, BUY, 0.45, 5.5), Quote(DOWN, BUY, 0.50, 4.5)], 100, 4)
    assert r2.actions == [] and r2.kept == 2
    r3 = om.plan([Quote(UP, BUY, 0.46, 5), Quote(DOWN, BUY, 0.50, 5)], 200, 4)
    assert [(a.kind, a.order.price) for a in r3.actions] == [("cancel", 0.45), ("place", 0.46)]


def test_max_open_orders_counts_cancels_as_freed() -> None:
    om = OrderManager()
    om.plan([Quote(UP, BUY, 0.40 + i / 100, 5) for i in range(4)], 0, 4)
    live(om)
    assert om.open_count == 4
    r = om.plan([Quote(UP, BUY, 0.30 + i / 100, 5) for i in range(6)], 10, 4)
    kinds = [a.kind for a in r.actions]
    assert kinds.count("cancel") == 4 and kinds.count("place") == 4 and r.deferred_slots == 2
    assert kinds.index("place") > max(i for i, k in enumerate(kinds) if k == "cancel")


def test_unacked_orders_block_slots_and_are_not_cancelled() -> None:
    om = OrderManager()
    om.plan([Quote(UP, BUY, 0.4, 5)], 0, 1)  # INTENT, no exchange id
    r = om.plan([Quote(UP, BUY, 0.3, 5)], 1, 1)
    assert r.actions == [] and r.deferred_slots == 1


def test_rate_limit_defers() -> None:
    om = OrderManager(rate_per_s=1.0, burst=2)
    r = om.plan([Quote(UP, BUY, 0.1 * i, 1) for i in range(1, 5)], 0, 10)
    assert len(r.actions) == 2 and r.deferred_rate == 2
    r = om.plan([Quote(UP, BUY, 0.1 * i, 1) for i in range(1, 5)], 1000, 10)
    assert len(r.actions) == 1


def test_token_bucket_refills_to_burst() -> None:
    b = TokenBucket(10, 3)
    assert all(b.take(0) for _ in range(3)) and not b.take(0)
    assert b.available(100) == 1 and b.available(10_000) == 3


def test_check_rejects_counted() -> None:
    om = OrderManager()
    r = om.plan([Quote(UP, BUY, 0.4, 500), Quote(UP, BUY, 0.3, 5)], 0, 4,
                check=lambda q: 1 if q.size > 100 else 0)
    assert len(r.actions) == 1 and r.rejected[0][1] == 1


def test_state_machine_and_fills() -> None:
    om = OrderManager()
    (a,) = om.plan([Quote(UP, BUY, 0.40, 10)], 0, 4).actions
    o = a.order
    assert o.state is OrderState.INTENT
    om.on_sent(o, 1)
    assert o.state is OrderState.SENT
    om.on_ack(o, "oid1", "live", 2)
    assert o.state is OrderState.LIVE and om.reserved_capital() == 4.0
    assert om.on_fill(Fill("t1", "oid1", UP, BUY, 0.40, 4, 3))
    assert not om.on_fill(Fill("t1", "oid1", UP, BUY, 0.40, 4, 3))  # replay ignored
    assert o.state is OrderState.PARTIAL and om.yes_tokens == 4
    om.on_order_update("oid1", 4.0, "UPDATE", 4)  # WS order update after the trade: no double count
    assert o.filled == 4
    assert abs(om.reserved_capital() - (1.6 + 0.4 * 6)) < 1e-9
    om.on_fill(Fill("t2", "oid1", UP, BUY, 0.40, 6, 5))
    assert o.state is OrderState.FILLED and om.yes_tokens == 10 and om.open_count == 0
    # sell half back: cost basis scales down, cash flows in
    om.on_fill(Fill("t3", None, UP, SELL, 0.50, 5, 6))
    assert om.yes_tokens == 5 and abs(om.cost[UP] - 2.0) < 1e-9
    assert abs(om.pnl(0.5) - (-4.0 + 2.5 + 2.5)) < 1e-9


def test_reject_and_cancel_paths() -> None:
    om = OrderManager()
    a, b = om.plan([Quote(UP, BUY, 0.4, 5), Quote(DOWN, BUY, 0.5, 5)], 0, 4).actions
    om.on_reject(a.order, "not enough balance", 1)
    assert a.order.state is OrderState.REJECTED and a.order.reason
    om.on_ack(b.order, "ob", "live", 1)
    om.on_cancel_sent(b.order, 2)
    assert b.order.state is OrderState.CANCELLING
    assert om.cancel_all_actions() == []  # already cancelling
    om.on_cancel_failed("ob", "temporary error", 3)
    assert b.order.state is OrderState.LIVE
    assert [x.order.order_id for x in om.cancel_all_actions()] == ["ob"]
    om.on_cancelled("ob", 4)
    assert b.order.state is OrderState.CANCELLED and om.open_count == 0


def test_cancel_failed_not_found_is_final() -> None:
    om = OrderManager()
    (a,) = om.plan([Quote(UP, BUY, 0.4, 5)], 0, 4).actions
    om.on_ack(a.order, "o1", "live", 0)
    om.on_cancel_failed("o1", "order not found or already canceled", 1)
    assert a.order.state is OrderState.CANCELLED


def test_ws_cancellation_and_matched_ack() -> None:
    om = OrderManager()
    a, b = om.plan([Quote(UP, BUY, 0.4, 5), Quote(UP, SELL, 0.6, 5, reduce=True)], 0, 4).actions
    om.on_ack(a.order, "o1", "live", 0)
    om.on_order_update("o1", 0.0, "CANCELLATION", 1)
    assert a.order.state is OrderState.CANCELLED
    om.on_fill(Fill("t9", "o2", UP, SELL, 0.6, 5, 1))  # fill seen before the ack
    om.on_ack(b.order, "o2", "matched", 2)
    assert b.order.filled == 5 and b.order.state is OrderState.FILLED  # early fill attached at ack
    assert om.yes_tokens == -5 and om.n_fills == 1  # inventory counted once


def test_adopt_and_invalid_fill() -> None:
    om = OrderManager()
    o = om.adopt("ext1", DOWN, BUY, 0.3, 10, 2, 0)
    assert o.state is OrderState.PARTIAL and om.adopt("ext1", DOWN, BUY, 0.3, 10, 2, 0) is o
    assert not om.on_fill(Fill("bad", "ext1", DOWN, BUY, 1.5, 1, 0))
    assert om.no_tokens == 0


def test_failed_trade_is_reversed_once() -> None:
    om = OrderManager()
    assert om.on_fill(Fill("t1", "o1", UP, BUY, 0.4, 10, 0))
    assert not om.reverse_fill("t-unknown", "o1", UP, BUY, 0.4, 10, 1)
    assert om.reverse_fill("t1", "o1", UP, BUY, 0.4, 10, 1)
    assert not om.reverse_fill("t1", "o1", UP, BUY, 0.4, 10, 2)  # a replayed FAILED does not undo twice
    assert om.yes_tokens == 0 and abs(om.cash) < 1e-12


def test_prune_bounds_final_orders_and_keeps_open_ones_and_inventory() -> None:
    om = OrderManager(price_tol=0.0, size_tol=0.0)
    for k in range(60):  # churn: every pass moves the price, cancelling the previous quote
        r = om.plan([Quote(UP, BUY, 0.30 + (k % 20) / 100, 5)], k * 10, 4)
        live(om, k * 10)
        for a in r.actions:
            if a.kind == "cancel":
                om.on_cancel_sent(a.order, k * 10)
                om.on_cancelled(a.order.order_id, k * 10)
    live_one = om.open_orders()
    assert len(live_one) == 1
    om.on_fill(Fill("t1", live_one[0].order_id, UP, BUY, live_one[0].price, 5.0, 700))
    before = (om.yes_tokens, om.no_tokens)
    n_final = sum(1 for o in om.orders.values() if o.state.final)
    assert n_final > 10
    om.prune(keep_final=10)
    assert sum(1 for o in om.orders.values() if o.state.final) == 10
    assert all(o.client_id in om.orders for o in live_one if not o.state.final)
    assert (om.yes_tokens, om.no_tokens) == before


def test_bucket_spend_is_k_takes_to_the_bit():
    """plan() spends its tokens in one call per kind of action: the same floats as one take() each."""
    from hourmm_core.trading.order_manager import TokenBucket

    for rate, burst, t1, k in ((10.0, 20.0, 1_234, 7), (3.3, 5.0, 777, 9), (1e9, 1e9, 5, 3), (0.7, 2.0, 2_100, 4)):
        a, b = TokenBucket(rate, burst), TokenBucket(rate, burst)
        for bk in (a, b):
            bk.take(0, 1)
            bk.take(0, 1)
        ok = [a.take(t1) for _ in range(k)]
        b.spend(t1, k)
        assert a.tokens == b.tokens and a.last_ms == b.last_ms
        assert sum(ok) <= k


def test_ack_of_an_order_the_venue_already_cancelled_is_final() -> None:
    # the executor's recovered path (an ambiguous POST, then the order found on the venue)
    # reports the venue's status, which can be "canceled" (e.g. cancelled by the venue or by a
    # cancel-all meanwhile): that order is not working and must not be booked LIVE
    om = OrderManager()
    a, b, c = om.plan([Quote(UP, BUY, 0.4, 5), Quote(UP, BUY, 0.38, 5), Quote(DOWN, BUY, 0.5, 5)], 0, 4).actions
    for o in (a.order, b.order, c.order):
        om.on_sent(o, 0)
    om.on_ack(a.order, "o1", "canceled", 1)
    assert a.order.state is OrderState.CANCELLED and om.by_order_id("o1") is a.order
    om.on_fill(Fill("t1", "o2", UP, BUY, 0.38, 5, 1))   # filled in full, then reported cancelled
    om.on_ack(b.order, "o2", "CANCELLED", 2)
    assert b.order.state is OrderState.FILLED
    om.on_fill(Fill("t2", "o3", DOWN, BUY, 0.5, 2, 1))  # a partial fill, then cancelled
    om.on_ack(c.order, "o3", "Canceled", 2)
    assert c.order.state is OrderState.CANCELLED and c.order.filled == 2
    assert om.working_count == 0 and om.open_buy_notional() == 0.0
    # "live" (and the other working statuses) still book the order working
    (d,) = om.plan([Quote(UP, BUY, 0.3, 5)], 3, 4).actions
    om.on_sent(d.order, 3)
    om.on_ack(d.order, "o4", "delayed", 4)
    assert d.order.state is OrderState.LIVE
