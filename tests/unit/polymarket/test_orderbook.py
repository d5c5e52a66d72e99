"""Local L2 book: snapshot + deltas, resync on gaps/inconsistency."""
import pytest

from hourmm_core.polymarket.orderbook import BookError, BookSet, OrderBook

UP, DN = "111", "222"


def snap(asset, bids, asks, ts=1000, et="book"):
    return {"event_type": et, "asset_id": asset, "market": "0xc",
            "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks],
            "timestamp": str(ts), "hash": "h"}


def pc(changes, ts):
    return {"event_type": "price_change", "market": "0xc", "timestamp": str(ts),
            "price_changes": [dict(asset_id=a, price=p, size=s, side=sd, hash="x", **extra)
                              for a, p, s, sd, extra in changes]}


def test_no_top_before_snapshot():
    b = OrderBook(UP)
    assert b.top() is None and b.needs_resync
    # deltas before a snapshot are dropped
    assert b.apply_change("BUY", "0.5", "10", 1) is False


def test_snapshot_and_deltas():
    bs = BookSet([UP, DN])
    assert bs.apply(snap(UP, [("0.48", "30"), ("0.47", "10")], [("0.52", "20"), ("0.55", "5")])) == [UP]
    t = bs.get(UP).top()
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (0.48, 30.0, 0.52, 20.0)
    assert t.mid == pytest.approx(0.50)
    # new-schema delta with consistent best_bid/best_ask
    changed = bs.apply(pc([(UP, "0.49", "7", "BUY", {"best_bid": "0.49", "best_ask": "0.52"})], 1001))
    assert changed == [UP]
    assert bs.get(UP).top().bid == 0.49
    # remove level (size 0) -> best bid back to 0.48
    bs.apply(pc([(UP, "0.49", "0", "BUY", {"best_bid": "0.48", "best_ask": "0.52"})], 1002))
    assert bs.get(UP).top().bid == 0.48
    # ask side + "0.5"=="0.50" level identity
    bs.apply(pc([(UP, "0.50", "3", "SELL", {})], 1003))
    bs.apply(pc([(UP, "0.5", "4", "SELL", {})], 1004))
    assert bs.get(UP).levels("SELL", 2) == [(0.5, 4.0), (0.52, 20.0)]
    assert bs.get(UP).depth_at_or_better("BUY", 0.47) == 40.0
    assert bs.get(DN).top() is None  # DN never got a snapshot


def test_old_schema_changes_and_buys_sells():
    bs = BookSet([UP])
    bs.apply({"event_type": "book", "asset_id": UP, "buys": [{"price": ".40", "size": "1"}],
              "sells": [{"price": ".60", "size": "2"}], "timestamp": 5})
    bs.apply({"event_type": "price_change", "asset_id": UP, "timestamp": 6,
              "changes": [{"price": "0.45", "side": "BUY", "size": "9"},
                          {"price": "0.58", "side": "SELL", "size": "1"}]})
    t = bs.get(UP).top()
    assert (t.bid, t.ask) == (0.45, 0.58)


def test_best_mismatch_triggers_resync_until_next_snapshot():
    bs = BookSet([UP])
    bs.apply(snap(UP, [("0.48", "30")], [("0.52", "20")]))
    # exchange says best bid is 0.49 but we never saw that level -> we missed a message
    bs.apply(pc([(UP, "0.47", "5", "BUY", {"best_bid": "0.49", "best_ask": "0.52"})], 1001))
    b = bs.get(UP)
    assert b.needs_resync and "best_bid mismatch" in b.resync_reason
    assert b.top() is None and b.resyncs == 1
    # further deltas ignored, snapshot heals
    assert bs.apply(pc([(UP, "0.46", "5", "BUY", {})], 1002)) == []
    bs.apply(snap(UP, [("0.49", "1")], [("0.52", "20")], ts=1003))
    assert b.top().bid == 0.49


def test_timestamp_backwards_and_crossed_book():
    bs = BookSet([UP])
    bs.apply(snap(UP, [("0.48", "30")], [("0.52", "20")], ts=2000))
    # a delta from before the snapshot is already in it: skipped, book stays valid and unchanged
    assert bs.apply(pc([(UP, "0.48", "0", "BUY", {"best_bid": "0", "best_ask": "0.52"})], 1999)) == []
    assert bs.get(UP).valid and bs.get(UP).top().bid == 0.48 and bs.get(UP).stale_deltas == 1
    bs.apply(pc([(UP, "0.49", "1", "BUY", {})], 2005))
    bs.apply(pc([(UP, "0.47", "1", "BUY", {})], 2003))   # older than the last applied delta: gap/reorder
    assert bs.get(UP).needs_resync and "older" in bs.get(UP).resync_reason
    bs.apply(snap(UP, [("0.48", "30")], [("0.52", "20")], ts=2001))
    bs.apply(pc([(UP, "0.53", "1", "BUY", {})], 2002))
    assert bs.get(UP).needs_resync and "crossed" in bs.get(UP).resync_reason


def test_empty_side_reported_as_0_or_1_is_consistent():
    bs = BookSet([UP])
    bs.apply(snap(UP, [], [("0.52", "20")]))
    bs.apply(pc([(UP, "0.52", "0", "SELL", {"best_bid": "0", "best_ask": "1"})], 1001))
    t = bs.get(UP).top()
    assert t is not None and t.bid is None and t.ask is None and t.mid is None


def test_invalidate_all_on_reconnect():
    bs = BookSet([UP, DN])
    bs.apply(snap(UP, [("0.4", "1")], [("0.6", "1")]))
    bs.apply(snap(DN, [("0.4", "1")], [("0.6", "1")]))
    assert bs.all_valid
    bs.invalidate_all("reconnect")
    assert not bs.all_valid and bs.get(UP).top() is None


@pytest.mark.parametrize("msg", [
    {"event_type": "book", "asset_id": UP, "bids": [{"price": "x", "size": "1"}], "asks": []},
    {"event_type": "book", "asset_id": UP, "bids": [{"price": "1.5", "size": "1"}], "asks": []},
    {"event_type": "book", "asset_id": UP, "bids": [{"price": "0.5", "size": "-1"}], "asks": []},
    {"event_type": "book", "asset_id": UP, "bids": "nope", "asks": []},
    {"event_type": "book", "asset_id": UP},
    {"event_type": "book", "bids": [], "asks": []},
    {"event_type": "price_change", "asset_id": UP},
    {"event_type": "price_change", "price_changes": [{"asset_id": UP, "price": "0.5", "size": "1", "side": "UP"}]},
    {"event_type": "tick_size_change", "asset_id": UP, "new_tick_size": "abc"},
    "not a dict",
])
def test_malformed_messages_raise_bookerror_and_keep_state(msg):
    bs = BookSet([UP])
    bs.apply(snap(UP, [("0.48", "30")], [("0.52", "20")]))
    with pytest.raises(BookError):
        bs.apply(msg)  # type: ignore[arg-type]
    t = bs.get(UP).top()
    assert t is not None and (t.bid, t.ask) == (0.48, 0.52)


def test_unknown_asset_counted_and_tick_size_change():
    bs = BookSet([UP])
    assert bs.apply(snap("999", [("0.4", "1")], [])) == []
    assert bs.unknown_asset == 1
    bs.apply({"event_type": "tick_size_change", "asset_id": UP, "old_tick_size": "0.01", "new_tick_size": "0.001"})
    assert bs.get(UP).tick_size == 0.001
    bs.apply({"event_type": "last_trade_price", "asset_id": UP, "price": "0.51", "size": "3", "side": "BUY"})
    assert bs.get(UP).last_trade_price == 0.51


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 99), st.sampled_from([0, 0, 1, 5])),
                max_size=60))
def test_cached_top_matches_naive_recompute(ops):
    b = OrderBook(UP)
    b.apply_snapshot([{"price": "0.10", "size": "1"}], [{"price": "0.90", "size": "1"}], 1)
    bids, asks = {10: 1.0}, {90: 1.0}
    for i, (side, tick, size) in enumerate(ops):
        if b.needs_resync:
            break
        book = bids if side == "BUY" else asks
        b.apply_change(side, tick / 100, size, 2 + i)
        if size:
            book[tick] = float(size)
        else:
            book.pop(tick, None)
        if bids and asks and max(bids) >= min(asks):
            assert b.needs_resync and b.top() is None
            break
        t = b.top()
        assert t.bid == (max(bids) / 100 if bids else None)
        assert t.ask == (min(asks) / 100 if asks else None)
        assert t.bid_size == (bids[max(bids)] if bids else 0.0)


def test_best_prices_checked_after_whole_message():
    bs = BookSet([UP])
    bs.apply(snap(UP, [("0.48", "30"), ("0.47", "5")], [("0.52", "20")]))
    # two changes: remove 0.48 then add 0.46; best_bid (0.47) is the state after both
    msg = pc([(UP, "0.48", "0", "BUY", {"best_bid": "0.47", "best_ask": "0.52"}),
              (UP, "0.46", "3", "BUY", {"best_bid": "0.47", "best_ask": "0.52"})], 1001)
    assert bs.apply(msg) == [UP]
    assert bs.get(UP).valid and bs.get(UP).top().bid == 0.47


def test_malformed_second_entry_invalidates_partially_applied_book():
    bs = BookSet([UP])
    bs.apply(snap(UP, [("0.48", "30")], [("0.52", "20")]))
    msg = pc([(UP, "0.49", "1", "BUY", {}), (UP, "0.50", "x", "BUY", {})], 1001)
    with pytest.raises(BookError):
        bs.apply(msg)
    assert bs.get(UP).needs_resync and bs.get(UP).top() is None
