"""Venue-layer hot paths: book updates, user-message parsing, journal enqueue, slugs.

These run on every market-channel frame / fill / decision, so their cost adds to
tick-to-order latency. Pure Python (no compiled twin exists for this layer).
"""
from __future__ import annotations

import itertools

import pytest

from hourmm_core.journal import Journal
from hourmm_core.polymarket.orderbook import BookSet
from hourmm_core.polymarket.slug import market_slug
from hourmm_core.polymarket.user_ws import parse_user_message

UP, DN = "1" * 70, "2" * 70


def _snap(asset):
    return {"event_type": "book", "asset_id": asset, "timestamp": "1",
            "bids": [{"price": f"{p / 100:.2f}", "size": "100"} for p in range(1, 50)],
            "asks": [{"price": f"{p / 100:.2f}", "size": "100"} for p in range(51, 100)]}


def test_bench_book_snapshot(benchmark):
    bs = BookSet([UP, DN])
    msg = _snap(UP)
    benchmark(bs.apply, msg)
    assert bs.get(UP).top().bid == 0.49


def test_bench_price_change_with_consistency_check(benchmark):
    bs = BookSet([UP, DN])
    bs.apply(_snap(UP))
    ts = itertools.count(2)
    sizes = itertools.cycle(["5", "7", "9"])

    def step():
        bs.apply({"event_type": "price_change", "market": "0xc", "timestamp": next(ts),
                  "price_changes": [{"asset_id": UP, "price": "0.30", "size": next(sizes), "side": "BUY",
                                     "best_bid": "0.49", "best_ask": "0.51"}]})

    benchmark(step)
    assert bs.get(UP).valid and bs.get(UP).top().ask == 0.51


def test_bench_top_of_book(benchmark):
    bs = BookSet([UP])
    bs.apply(_snap(UP))
    t = benchmark(bs.get(UP).top)
    assert t.bid == 0.49 and t.ask == 0.51


def test_bench_parse_trade(benchmark):
    msg = {"event_type": "trade", "id": "t", "asset_id": UP, "market": "0xc", "side": "BUY", "price": "0.52",
           "size": "10", "status": "MATCHED", "taker_order_id": "0xt", "owner": "o", "trader_side": "TAKER",
           "timestamp": "1700000000", "maker_orders": [{"order_id": "0xm", "asset_id": UP, "price": "0.52",
                                                         "matched_amount": "10", "owner": "me"}]}
    t = benchmark(parse_user_message, msg, 1)
    assert t.own_fills("me")[0].size == 10.0


def test_bench_journal_enqueue(benchmark, tmp_path):
    j = Journal(str(tmp_path / "b.db"), synchronous="NORMAL")
    payload = {"token": 0, "side": 0, "price": 0.48, "size": 5.0, "client_id": "abc", "state": "SENT"}
    try:
        benchmark(j.event, 1, "intent", payload, market="m")
        assert j.flush(30)
        assert j.count("intent") >= 1
    finally:
        j.close()


@pytest.mark.parametrize("sync", ["NORMAL", "FULL"])
def test_bench_journal_durable_write(benchmark, tmp_path, sync):
    """enqueue + flush of one row: the cost of a durable (committed) journal write."""
    j = Journal(str(tmp_path / f"d{sync}.db"), synchronous=sync)

    def one():
        j.event(1, "ack", {"x": 1})
        return j.flush(30)

    try:
        assert benchmark(one)
    finally:
        j.close()


def test_bench_slug(benchmark):
    s = benchmark(market_slug, "bitcoin-up-or-down", 1_769_083_200_000)
    assert s.endswith("-et")


def test_bench_executor_place_cancel_loopback(benchmark):
    """Sign + POST /order + DELETE /order through py_clob_client_v2 against the loopback sim.

    The loop runs in a background thread so pytest-benchmark can time synchronous calls.
    """
    import asyncio
    import threading

    from eth_account import Account

    server = pytest.importorskip("hourmm_core.sim.polymarket.server")
    from hourmm_core.config import Credentials
    from hourmm_core.polymarket.executor import Executor, OrderRequest

    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    sim = server.PolymarketSim(server.SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    run(sim.start())
    a = Account.create()
    k = a.key.hex()
    ex = Executor(sim.urls["clob"], 137, Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1))
    run(ex.start())
    token = sim.hours[0].up_token
    n = itertools.count()

    async def one():
        ack = await ex.place(OrderRequest(f"b{next(n)}", token, "BUY", 0.05, 5.0))
        await ex.cancel(ack.order_id)
        ex.forget(ack.client_key)
        return ack

    try:
        ack = benchmark.pedantic(lambda: run(one()), rounds=30, iterations=1, warmup_rounds=2)
        assert ack.success
    finally:
        run(ex.close())
        run(sim.stop())
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)


def test_bench_executor_sign_and_hash(benchmark):
    """EIP-712 V2 order signing + local order-id hash (no network). coincurve makes this ~1.5 ms."""
    from eth_account import Account
    from eth_keys.backends import get_backend
    from py_clob_client_v2.client import ClobClient

    from hourmm_core.config import Credentials
    from hourmm_core.polymarket.executor import Executor, OrderRequest

    a = Account.create()
    k = a.key.hex()
    k = k if k.startswith("0x") else "0x" + k
    ex = Executor("http://127.0.0.1:1", 137, Credentials(k, a.address, 1))
    client = ClobClient("http://127.0.0.1:1", chain_id=137, key=k, signature_type=0, funder=a.address)
    client._ClobClient__cached_version = 2      # no GET /version: this measures signing only
    ex._client = client
    req = OrderRequest("b", "123", "BUY", 0.5, 5.0)
    signed, oid = benchmark(ex._sign, req)
    benchmark.extra_info["ecc_backend"] = type(get_backend()).__name__
    assert oid.startswith("0x") and len(oid) == 66 and signed.signature
