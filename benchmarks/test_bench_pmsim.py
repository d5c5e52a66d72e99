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
