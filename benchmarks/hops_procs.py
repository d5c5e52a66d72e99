"""Child processes for benchmarks/test_bench_hops.py (benchmark-only harness, not product code).

``python3 benchmarks/hops_procs.py venue  --start-ms S --wall0 W --sim-start H --out F``
    the loopback Polymarket simulator, stamping (perf_counter_ns) each cancel / order
    request as its handler is entered;
``python3 benchmarks/hops_procs.py pricer --start-ms S --wall0 W --out F [--push-delta D]``
    container A (PricerService) fed by the Binance replay of the synthetic step path,
    stamping each message in/priced and each publish.

Each prints one JSON line with its URLs when ready and runs until stdin closes, then
writes its stamps to F. ``time.perf_counter_ns`` is CLOCK_MONOTONIC on Linux, shared by
all processes, so the parent can line the stamps up. Separate processes like production
(the venue's own work, e.g. verifying signatures in Python, must not stall our loop).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np


def step_ticks(t0_ms: int, seconds: float, every_ms: int = 4000, tick_ms: int = 20):
    """Seeded random walk (~1e-4 per sqrt(s), BTC-like) plus a 0.3 % level jump every ``every_ms``
    (alternating up/down, after 2 quiet intervals of warm-up)."""
    from hourmm_core.data.ticks import TickData

    n = int(seconds * 1000 / tick_ms)
    ts = t0_ms + np.arange(n, dtype=np.int64) * tick_ms
    level = np.where(((ts - t0_ms) // every_ms) % 2 == 1, 1.003, 1.0)
    level[(ts - t0_ms) < 2 * every_ms] = 1.0
    walk = np.cumsum(np.random.default_rng(3).normal(0.0, 1e-4 * np.sqrt(tick_ms / 1000.0), n))
    px = np.round(100_000.0 * level * np.exp(walk), 2)
    q = np.full(n, 0.01)
    return TickData(ts_ms=ts, price=px, qty=q, is_buyer_maker=np.zeros(n, dtype=bool), bid=px - 0.01, ask=px + 0.01,
                    bid_qty=q, ask_qty=q, source="synthetic", bbo="synthetic")


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def venue(a: argparse.Namespace) -> dict:
    from hourmm_core.clock import ScaledClock
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig

    ev: dict[str, list[int]] = {"cancel": [], "order": []}
    clock = ScaledClock(1.0, a.start_ms, a.wall0)
    sim = PolymarketSim(SimConfig(speed=1.0, start_ms=a.sim_start, hours=1, seed=9), clock=clock)
    for name, kind in (("h_cancel", "cancel"), ("h_cancel_many", "cancel"), ("h_post_order", "order"),
                       ("h_post_orders", "order")):
        async def spy(request, _h=getattr(sim, name), _k=kind):
            ev[_k].append(time.perf_counter_ns())
            return await _h(request)
        setattr(sim, name, spy)
    await sim.start()
    print(json.dumps({"urls": sim.urls}), flush=True)
    try:
        await _until_stdin_closes()
    finally:
        await sim.stop()
    return ev


async def pricer(a: argparse.Namespace) -> dict:
    from hourmm_core.clock import ScaledClock
    from hourmm_core.config import PricerConfig
    from hourmm_core.pricing import PricerService
    from hourmm_core.sim.binance_replay import BinanceReplayServer

    ev: dict[str, list] = {"frame": [], "pushed": []}
    clock = ScaledClock(1.0, a.start_ms, a.wall0)
    replay = BinanceReplayServer(step_ticks(a.start_ms + 300, a.seconds), clock)
    await replay.start()
    cfg = PricerConfig.from_env({"BINANCE_WS_URL": replay.ws_url, "BINANCE_REST_URL": replay.rest_url,
                                 "SNAPSHOT_PUBLISH_HZ": "50", "VOL_HALFLIVES_S": "0.5,1,2",
                                 "STALE_THRESHOLD_MS": "5000"})
    svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1", push_delta=a.push_delta)
    b = svc.builder
    orig_on_message = b.on_message

    def on_message(msg, recv_ms):
        t0 = time.perf_counter_ns()
        orig_on_message(msg, recv_ms)
        ev["frame"].append((t0, time.perf_counter_ns(), getattr(msg, "price", None)))
    b.on_message = on_message
    orig_publish = svc.server.publish

    def publish(snap):
        orig_publish(snap)
        ev["pushed"].append((time.perf_counter_ns(), snap.seq))
    svc.server.publish = publish
    await svc.start()
    print(json.dumps({"url": svc.server.url}), flush=True)
    try:
        await _until_stdin_closes()
    finally:
        await svc.stop()
        await replay.stop()
    return ev


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("venue", "pricer"))
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--wall0", type=int, required=True)
    p.add_argument("--sim-start", type=int, default=0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--push-delta", type=float, default=0.0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    ev = asyncio.run(venue(a) if a.role == "venue" else pricer(a))
    Path(a.out).write_text(json.dumps(ev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
