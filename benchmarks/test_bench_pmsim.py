"""Polymarket sim throughput: matching engine operations and one simulated hour of background agents.

The engine is pure Python (no compiled twin); these numbers say how many order
operations per second an in-process backtest can push through it. Throughput goes
into ``extra_info``. Run: ``pytest benchmarks/test_bench_pmsim.py --benchmark-only``.
"""
from __future__ import annotations

import random

from hourmm_core.clock import HOUR_MS
from hourmm_core.data import synthetic_ticks
from hourmm_core.sim.polymarket.agents import BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.engine import Exchange

H0 = 1_769_090_400_000


def _deep_book(n_orders: int = 400) -> Exchange:
    ex = Exchange(seed=1)
    ex.list_market("c", "UP", "DN", H0, H0 + HOUR_MS)
    rng = random.Random(1)
    for i in range(20):
        ex.deposit(f"m{i}", 1e9)
    for k in range(n_orders):
        o = f"m{k % 20}"
        if k % 2:
            ex.place(o, "UP", "BUY", rng.randint(1, 49) / 100, rng.randint(5, 50), now_ms=H0 + k)
        else:
            ex.place(o, "DN", "BUY", rng.randint(1, 49) / 100, rng.randint(5, 50), now_ms=H0 + k)
    return ex


def test_bench_place_cancel_resting(benchmark):
    ex = _deep_book()
    ex.deposit("me", 1e9)
    t = [H0 + 10_000]

    def run():
        for i in range(100):
            t[0] += 1
            r = ex.place("me", "UP", "BUY", 0.30 + (i % 10) / 100, 10, now_ms=t[0])
            ex.cancel("me", r.order_id, t[0])

    benchmark(run)
    if benchmark.stats:  # None under --benchmark-disable (the CI smoke run)
        benchmark.extra_info["ops_per_s"] = 200 / benchmark.stats.stats.mean
    ex.check_invariants()


def test_bench_sweeping_taker(benchmark):
    def setup():
        ex = _deep_book()
        ex.deposit("taker", 1e9)
        return (ex,), {}

    def run(ex):
        # FAK that sweeps the whole Down side of the book (= every Up bid) by minting pairs
        ex.place("taker", "DN", "BUY", 0.99, 5000, order_type="FAK", now_ms=H0 + 50_000)

    benchmark.pedantic(run, setup=setup, rounds=20)
    benchmark.extra_info["orders_in_book"] = 400


def test_bench_agents_one_hour(benchmark):
    ticks = synthetic_ticks(start_ms=H0, hours=1, seed=3)
    path = PricePath(ticks)

    def run():
        ex = Exchange(seed=2)
        m = ex.list_market("c", "UP", "DN", H0, H0 + HOUR_MS)
        ag = BackgroundAgents(ex, path, seed=2)
        for t in range(H0, H0 + HOUR_MS, 1000):    # 1 s sim steps
            ag.step(t, [m])
        return ag.stats

    stats = benchmark.pedantic(run, rounds=3)
    benchmark.extra_info.update(steps=3600, maker_quotes=stats.maker_quotes, noise_trades=stats.noise_trades,
                                informed_trades=stats.informed_trades, data_source=ticks.source)
    assert stats.maker_quotes > 0


def test_bench_rest_post_and_cancel_roundtrip(benchmark):
    """Real py_clob_client_v2 -> sim over loopback: sign + POST /order + DELETE /order (sim in a thread)."""
    import asyncio
    import threading
    import time as _time

    from eth_account import Account
    from py_clob_client_v2 import OrderArgs, OrderPayload
    from py_clob_client_v2.client import ClobClient

    from hourmm_core.clock import ScaledClock
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig

    ticks = synthetic_ticks(start_ms=H0, hours=2, seed=3)
    loop = asyncio.new_event_loop()
    sim = PolymarketSim(SimConfig(start_ms=H0 + 60_000, hours=1, agents=False), ticks=ticks,
                        clock=ScaledClock(1.0, H0 + 60_000, _time.time_ns() // 1_000_000))
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(10)
    try:
        k = Account.create().key.hex()
        c = ClobClient(sim.urls["clob"], chain_id=137, key=k if k.startswith("0x") else "0x" + k)
        c.set_api_creds(c.create_or_derive_api_key())
        tok = sim.hours[0].up_token

        def run():
            o = c.create_order(OrderArgs(token_id=tok, price=0.3, size=5, side="BUY"))
            r = c.post_order(o)
            c.cancel_order(OrderPayload(orderID=r["orderID"]))

        benchmark.pedantic(run, rounds=30, warmup_rounds=2)
        benchmark.extra_info["note"] = "sign + POST /order + DELETE /order, loopback HTTP/1.1"
        assert sim.ex.open_orders() == []
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)
