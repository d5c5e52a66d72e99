"""Child processes for benchmarks/test_bench_hops.py (benchmark-only harness, not product code).

``python3 benchmarks/hops_procs.py venue  --start-ms S --wall0 W --sim-start H --out F``
    the loopback Polymarket simulator, stamping (perf_counter_ns) each cancel / order
    request as its handler is entered, and each order event of its matching engine (an order
    placed on / cancelled off / matched out of the book);
``python3 benchmarks/hops_procs.py pricer --start-ms S --wall0 W --out F [--push-delta D] [--every-ms E] [--double-ms M]``
    container A (PricerService) fed by the Binance replay of the synthetic step path,
    stamping each message in/priced and each publish. Publish-on-change (``push_delta`` D) is
    switched on for every other pair of jump intervals (:func:`mode_of`): the two modes (fixed-rate publish only /
    plus publish on change) alternate in one run, so they share the machine's load.

Each prints one JSON line with its URLs when ready and runs until stdin closes, then
writes its stamps to F. ``time.perf_counter_ns`` is CLOCK_MONOTONIC on Linux, shared by
all processes, so the parent can line the stamps up. Separate processes like production
(the venue's own work, e.g. verifying signatures in Python, must not stall our loop).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

WARMUP_MS = 5000   # quiet start: the trader discovers the market and quotes before the first jump


def gc_recorder(out: list) -> "callable":
    """Record every garbage collection of this process as (start_ns, stop_ns, generation) into
    ``out`` (perf_counter_ns, comparable across the bench's processes). Returns an undo callable."""
    t = [0]

    def cb(phase: str, info: dict) -> None:
        if phase == "start":
            t[0] = time.perf_counter_ns()
        else:
            out.append((t[0], time.perf_counter_ns(), info.get("generation")))
    gc.callbacks.append(cb)
    return lambda: gc.callbacks.remove(cb)


def jump_index(ts_ms: int, t0_ms: int, every_ms: int) -> int:
    """Which jump interval a tick belongs to (-1 = warm-up); jump k is the first tick of interval k."""
    return -1 if ts_ms - t0_ms < WARMUP_MS else int((ts_ms - t0_ms - WARMUP_MS) // every_ms)


def mode_of(k: int) -> int:
    """0 = fixed-rate publish only, 1 = plus publish on change; by pairs of jumps (up + down), so
    both modes see as many up as down jumps."""
    return (k // 2) % 2 if k >= 0 else 0


def step_ticks(t0_ms: int, seconds: float, every_ms: int = 4000, tick_ms: int = 20, double_ms: int = 0):
    """Seeded random walk (~1e-4 per sqrt(s), BTC-like) plus a 0.2 % level jump every ``every_ms``
    (alternating up/down across the open price) after WARMUP_MS of quiet start.

    ``double_ms`` > 0: in the jump intervals of mode 1 (:func:`mode_of`) the jump comes as two
    half-jumps ``double_ms`` apart (the jump's tick goes half way, one extra tick ``double_ms``
    later the rest): a second significant move while the trader still reacts to the first (its
    cancels / new orders in flight), which exercises the cancel fast path and the push token bucket."""
    from hourmm_core.data.ticks import TickData

    n = int(seconds * 1000 / tick_ms)
    ts = t0_ms + np.arange(n, dtype=np.int64) * tick_ms
    k = np.array([jump_index(int(t), t0_ms, every_ms) for t in ts])
    # around the hour's open (the strike): the fair value swings between ~0.35 and ~0.7, so both
    # sides keep quoting and every jump leaves the stale side of the ladder to be cancelled and replaced
    level = np.where(k < 0, 1.0, np.where(k % 2 == 0, 1.001, 0.999))
    walk = np.cumsum(np.random.default_rng(3).normal(0.0, 1e-4 * np.sqrt(tick_ms / 1000.0), n))
    if double_ms > 0:
        first = np.flatnonzero((k >= 0) & (np.diff(k, prepend=-1) != 0))       # the tick of each jump
        first = first[[mode_of(int(k[i])) == 1 for i in first]]
        prev = np.where(first > 0, level[np.maximum(first - 1, 0)], 1.0)
        full = level[first].copy()
        level = level.copy()
        level[first] = (prev + full) / 2.0                                     # half way ...
        ts = np.insert(ts, first + 1, ts[first] + double_ms)                   # ... the rest double_ms later
        level = np.insert(level, first + 1, full)
        walk = np.insert(walk, first + 1, walk[first])
        n = len(ts)
    px = np.round(100_000.0 * level * np.exp(walk), 2)
    q = np.full(n, 0.01)
    return TickData(ts_ms=ts, price=px, qty=q, is_buyer_maker=np.zeros(n, dtype=bool), bid=px - 0.01, ask=px + 0.01,
                    bid_qty=q, ask_qty=q, source="synthetic", bbo="synthetic")


def _settle(a: argparse.Namespace) -> None:
    """``--gc settle``: what the runners do once started (hourmm_core.gc_tuning.settle_gc); the venue
    simulator gets it too (the real venue is not a Python process with our GC pauses)."""
    if a.gc == "settle":
        from hourmm_core.gc_tuning import settle_gc
        settle_gc()


async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def venue(a: argparse.Namespace) -> dict:
    from hourmm_core.clock import ScaledClock
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig

    ev: dict[str, list] = {"cancel": [], "order": []}
    clock = ScaledClock(1.0, a.start_ms, a.wall0)
    sim = PolymarketSim(SimConfig(speed=1.0, start_ms=a.sim_start, hours=1, seed=9), clock=clock)
    for name, kind in (("h_cancel", "cancel"), ("h_cancel_many", "cancel"), ("h_post_order", "order"),
                       ("h_post_orders", "order")):
        async def spy(request, _h=getattr(sim, name), _k=kind):
            ev[_k].append(time.perf_counter_ns())
            return await _h(request)
        setattr(sim, name, spy)
    ev["book"] = []

    def on_event(e: dict) -> None:
        # our orders entering / leaving the book (the engine's own events, emitted as the state
        # changes): (perf_counter_ns, order id, event type, status); "how long an endangered quote
        # stayed on the book" is read from these (test_bench_hops.book_exits)
        if e.get("event_type") == "order":
            o = e.get("order") or {}
            ev["book"].append((time.perf_counter_ns(), o.get("id"), e.get("type"), o.get("status")))
    sim.ex.add_listener(on_event)
    if a.check_ab:
        # the A/B of the venue's order check (clob_orders.verify_order, run on every POSTed order):
        # in mode 0's jump intervals as before session 10 (eth-account's generic EIP-712 encoder and
        # Account._recover_hash), in mode 1 as now (the words concatenated, libsecp256k1 directly)
        from eth_account import Account

        from hourmm_core.polymarket import clob_orders

        fast_hash, fast_recover = clob_orders._v2_struct_hash, clob_orders._recover_ecdsa
        t0 = a.start_ms + 300

        def generic() -> bool:
            return mode_of(jump_index(clock.now_ms(), t0, a.every_ms)) == 0

        def struct_hash(order):
            if generic():
                raise ValueError("A/B mode 0: the generic encoder")
            return fast_hash(order)

        def recover(digest, sig):
            if not generic():
                return fast_recover(digest, sig)
            try:
                return Account._recover_hash(digest, signature=sig)
            except Exception:  # noqa: BLE001
                return None
        clob_orders._v2_struct_hash, clob_orders._recover_ecdsa = struct_hash, recover
    await sim.start()
    _settle(a)
    sim.faults["ack_delay_ms"] = a.ack_delay_ms   # > 0: every POST waits this long (a slow venue round trip)
    print(json.dumps({"urls": sim.urls, "up_token": sim.hours[0].up_token}), flush=True)
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
    t0 = a.start_ms + 300
    replay = BinanceReplayServer(step_ticks(t0, a.seconds, a.every_ms, double_ms=a.double_ms), clock)
    await replay.start()
    cfg = PricerConfig.from_env({"BINANCE_WS_URL": replay.ws_url, "BINANCE_REST_URL": replay.rest_url,
                                 "SNAPSHOT_PUBLISH_HZ": "50", "VOL_HALFLIVES_S": "0.5,1,2",
                                 "STALE_THRESHOLD_MS": "5000"})
    svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1", push_delta=0.0)
    b = svc.builder
    orig_on_message = b.on_message
    orig_svc_on_message = svc._on_message
    mode = [0]

    def svc_on_message(msg, recv_ms):
        # the mode of this jump interval (mode_of): publish on change or only at the fixed rate
        ts = getattr(msg, "trade_ms", None) or recv_ms
        mode[0] = mode_of(jump_index(int(ts), t0, a.every_ms))
        svc.push_delta = a.push_delta if mode[0] == 1 or a.always_push else 0.0
        orig_svc_on_message(msg, recv_ms)
    svc._on_message = svc_on_message
    svc.client._on_message = svc_on_message

    def on_message(msg, recv_ms):
        t_in = time.perf_counter_ns()
        orig_on_message(msg, recv_ms)
        ev["frame"].append((t_in, time.perf_counter_ns(), getattr(msg, "price", None), mode[0]))
    b.on_message = on_message
    orig_publish = svc.server.publish

    def publish(snap):
        orig_publish(snap)
        ev["pushed"].append((time.perf_counter_ns(), snap.seq))
    svc.server.publish = publish
    await svc.start()
    _settle(a)
    print(json.dumps({"url": svc.server.url}), flush=True)
    try:
        await _until_stdin_closes()
    finally:
        await svc.stop()
        await replay.stop()
    srv = svc.server
    ev["push_stats"] = {"on_change": svc.pushed_on_change, "deferred": svc.push_deferred, "sent": srv.push_sent,
                        "direct": srv.push_direct, "conflated": srv.push_conflated, "published": srv.published}
    return ev


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("venue", "pricer"))
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--wall0", type=int, required=True)
    p.add_argument("--sim-start", type=int, default=0)
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--push-delta", type=float, default=0.0)
    p.add_argument("--every-ms", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--ack-delay-ms", type=int, default=0)
    p.add_argument("--check-ab", action="store_true")   # venue: order check as before (mode 0) / now (1)
    p.add_argument("--always-push", action="store_true")   # publish on change in both modes (fast-path A/B)
    p.add_argument("--double-ms", type=int, default=0)      # mode 1 jumps as two half-jumps this far apart
    p.add_argument("--nice", type=int, default=0)    # scheduling priority of this process (HOPS_NICE)
    p.add_argument("--gc", choices=("settle", "off"), default="settle")   # off: CPython's default GC
    a = p.parse_args(argv)
    if a.nice:
        os.setpriority(os.PRIO_PROCESS, 0, a.nice)   # HOPS_NICE (negative needs root / CAP_SYS_NICE)
    gcs: list = []
    gc_recorder(gcs)
    ev = asyncio.run(venue(a) if a.role == "venue" else pricer(a))
    ev[f"gc_{a.role}"] = gcs
    Path(a.out).write_text(json.dumps(ev))
    return 0


if __name__ == "__main__":
    sys.exit(main())
