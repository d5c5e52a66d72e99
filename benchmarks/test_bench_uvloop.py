"""Does uvloop help the race path? Executor call -> request bytes written / reply, asyncio vs uvloop.

Run: ``python3 -m pytest benchmarks/test_bench_uvloop.py --benchmark-only`` (skipped without
uvloop, an optional extra: ``pip install -e ".[bench]"``).

The venue simulator runs in its own process (benchmarks/hops_procs.py venue), the executor
in this one. Blocks of rounds alternate between the two event loops (a fresh loop and
executor per block, 6 blocks each), so both share the machine's load. Per round: a two-order
``place_many`` (sign + POST /orders) and a ``cancel_many`` of them; stamps: call -> bytes
written (``AsyncWire.on_sent``) and call -> reply. p50/p99 per loop and the asyncio/uvloop
ratio in ``extra_info``. No timed asserts.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent


async def _block(url: str, rounds: int, out: dict[str, list[float]], tag: str) -> None:
    from eth_account import Account

    from hourmm_core.config import Credentials
    from hourmm_core.polymarket.executor import Executor, OrderRequest

    a = Account.create()
    k = a.key.hex()
    ex = Executor(url, 137, Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1))
    sent: list[int] = []
    try:
        await ex.start()
        ex._wire.on_sent = lambda m, p: sent.append(time.perf_counter_ns())
        tok = out.setdefault("_token", [])[0]
        for n in range(rounds):
            t0 = time.perf_counter_ns()
            acks = await ex.place_many([OrderRequest(f"{tag}{n}a", tok, "BUY", 0.01, 5.0),
                                        OrderRequest(f"{tag}{n}b", tok, "BUY", 0.02, 5.0)])
            t1 = time.perf_counter_ns()
            out[f"order_sent_{tag}"].append((sent[-1] - t0) / 1e6)
            out[f"order_reply_{tag}"].append((t1 - t0) / 1e6)
            t0 = time.perf_counter_ns()
            await ex.cancel_many([x.order_id for x in acks])
            t1 = time.perf_counter_ns()
            out[f"cancel_sent_{tag}"].append((sent[-1] - t0) / 1e6)
            out[f"cancel_reply_{tag}"].append((t1 - t0) / 1e6)
            for x in acks:
                ex.forget(x.client_key)
    finally:
        await ex.close()


def _measure(blocks: int, rounds: int, runners: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    import json
    import subprocess
    import tempfile

    from hourmm_core.clock import HOUR_MS

    H = 1_767_225_600_000 + 3 * HOUR_MS
    out_file = Path(tempfile.mkdtemp()) / "venue.json"
    proc = subprocess.Popen([sys.executable, str(HERE / "hops_procs.py"), "venue", "--start-ms", str(H + 600_000),
                             "--wall0", str(time.time_ns() // 1_000_000), "--sim-start", str(H),
                             "--out", str(out_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())   # type: ignore[union-attr]
        url = info["urls"]["clob"]
        out: dict[str, list[float]] = {"_token": [info["up_token"]]}
        for w in ("order_sent", "order_reply", "cancel_sent", "cancel_reply"):
            for tag in runners:
                out[f"{w}_{tag}"] = []
        for b in range(blocks):
            for tag, run in runners.items():
                run(_block(url, rounds, out, tag))
    finally:
        proc.stdin.close()                          # type: ignore[union-attr]
        proc.wait(30)
    res: dict[str, Any] = {"blocks_per_loop": blocks, "rounds_per_block": rounds}
    for key, v in out.items():
        if key.startswith("_"):
            continue
        res[f"{key}_p50_ms"] = round(statistics.median(v), 3)
        res[f"{key}_p99_ms"] = round(sorted(v)[min(len(v) - 1, int(0.99 * len(v)))], 3)
    for w in ("order_sent", "order_reply", "cancel_sent", "cancel_reply"):
        res[f"{w}_asyncio_over_uvloop_p50"] = round(res[f"{w}_asyncio_p50_ms"] / res[f"{w}_uvloop_p50_ms"], 2)
    return res


@pytest.mark.benchmark(group="uvloop")
@pytest.mark.timeout(600)
def test_asyncio_vs_uvloop_on_the_race_path(benchmark):
    uvloop = pytest.importorskip("uvloop")
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    smoke = getattr(benchmark, "disabled", False)
    runners = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(_measure(1 if smoke else 6, 3 if smoke else 25, runners)),
                       rounds=1, iterations=1)
    benchmark.extra_info.update(res)
    print(res)
    assert res["cancel_sent_uvloop_p50_ms"] > 0 and res["cancel_sent_asyncio_p50_ms"] > 0
