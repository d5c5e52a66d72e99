"""Executor call -> request at the venue: fast_wire (event loop, warm keep-alive, httptools framing) vs the library path
(py_clob_client_v2 in the executor's thread pool), interleaved in one run.

Run: ``python3 -m pytest benchmarks/test_bench_wire.py --benchmark-only``.

Against the loopback Polymarket simulator (agents off, so the venue's own loop is quiet).
Per round: place two orders (untimed set-up), then time ``Executor.cancel_many`` from the
call to the simulator's handler entry ("cancel on the wire") and to the reply; then the
same for a two-order ``place_many`` ("signed orders on the wire": signing + POST /orders).
Rounds alternate the two paths (library path = the executor with its hot-call table
emptied, i.e. what it did before fast_wire). p50/p99 and the lib/fast ratio in
``extra_info``. No timed asserts.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest


async def _measure(rounds: int) -> dict[str, Any]:
    from eth_account import Account

    from hourmm_core.config import Credentials
    from hourmm_core.polymarket.executor import Executor, OrderRequest
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig

    sim = PolymarketSim(SimConfig(hours=1, speed=60.0, seed=5, agents=False))
    seen: list[int] = []
    for name in ("h_cancel_many", "h_post_orders"):
        async def spy(request, _h=getattr(sim, name)):
            seen.append(time.perf_counter_ns())
            return await _h(request)
        setattr(sim, name, spy)
    await sim.start()
    a = Account.create()
    k = a.key.hex()
    ex = Executor(sim.urls["clob"], 137, Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1))
    out: dict[str, list[float]] = {f"{w}_{p}": [] for w in ("cancel_wire", "cancel_reply", "order_wire")
                                   for p in ("fast", "lib")}
    try:
        await ex.start()
        hot = ex._hot
        tok = sim.hours[0].up_token
        n = 0
        for i in range(rounds * 2):
            path = "fast" if i % 2 == 0 else "lib"
            ex._hot = hot if path == "fast" else {}
            n += 1
            t0 = time.perf_counter_ns()
            acks = await ex.place_many([OrderRequest(f"w{n}a", tok, "BUY", 0.01, 5.0),
                                        OrderRequest(f"w{n}b", tok, "BUY", 0.02, 5.0)])
            out[f"order_wire_{path}"].append((seen[-1] - t0) / 1e6)
            ids = [x.order_id for x in acks]
            t0 = time.perf_counter_ns()
            res = await ex.cancel_many(ids)
            t1 = time.perf_counter_ns()
            assert set(res.canceled) == set(ids)
            out[f"cancel_wire_{path}"].append((seen[-1] - t0) / 1e6)
            out[f"cancel_reply_{path}"].append((t1 - t0) / 1e6)
            for x in acks:
                ex.forget(x.client_key)
    finally:
        ex._hot = hot if "hot" in locals() else ex._hot
        await ex.close()
        await sim.stop()
    info: dict[str, Any] = {"rounds_per_path": rounds}
    for key, v in out.items():
        info[f"{key}_p50_ms"] = round(statistics.median(v), 3)
        info[f"{key}_p99_ms"] = round(sorted(v)[min(len(v) - 1, int(0.99 * len(v)))], 3)
    for w in ("cancel_wire", "cancel_reply", "order_wire"):
        info[f"{w}_lib_over_fast_p50"] = round(info[f"{w}_lib_p50_ms"] / info[f"{w}_fast_p50_ms"], 1)
    return info


@pytest.mark.benchmark(group="wire")
@pytest.mark.timeout(180)
def test_cancel_and_order_to_wire(benchmark):
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    rounds = 3 if getattr(benchmark, "disabled", False) else 40
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_measure(rounds))), rounds=1, iterations=1)
    benchmark.extra_info.update(res)
    assert res["cancel_wire_fast_p50_ms"] > 0 and res["cancel_wire_lib_p50_ms"] > 0
