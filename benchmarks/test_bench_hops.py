"""Tick-to-wire hop breakdown on loopback, with the real simulators and both containers.

Run: ``python3 -m pytest benchmarks/test_bench_hops.py --benchmark-only``.

Chain (one process, one event loop, clock at 1x; perf_counter_ns stamps from
benchmark-only wrappers, nothing in the product is changed to measure):

  frame   Binance replay frame handed to container A (``SnapshotBuilder.on_message`` entry)
  priced  the compiled core repriced (``on_message`` returned)
  pushed  snapshot published (``SnapshotServer.publish``)
  recv    container B holds it (``SnapshotClient.ingest`` of that seq, push stream)
  decided ``DecisionCore.decide`` returned the cancels/places for it
  cancel  a cancel reached the venue (sim ``DELETE /order(s)`` handler entry)
  order   a new signed order reached the venue (sim ``POST /order(s)`` handler entry)

The Binance path is a synthetic step path (flat with a 0.2 bp wiggle, then a 0.3 % jump
every 1.5 s, alternating up/down): real data has no jumps at known instants, and a jump is
what forces every quote to be cancelled and replaced (the sniper race). Each jump is one
sample; per hop p50/p99 in ``extra_info`` (ms). Modes: ``rate`` = the publisher's fixed
SNAPSHOT_PUBLISH_HZ=50 only; ``push`` = plus publish-on-significant-change
(PricerService(push_delta=0.002)). No timed asserts. Everything shares 2 busy cores, so
absolute figures are taken under load; compare modes within one run.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import numpy as np
import pytest

HOPS = ("frame->priced", "priced->pushed", "pushed->recv", "recv->decided", "decided->cancel", "decided->order",
        "frame->cancel", "frame->order")


def _step_ticks(t0_ms: int, seconds: float, every_ms: int = 1500, tick_ms: int = 20):
    from hourmm_core.data.ticks import TickData

    n = int(seconds * 1000 / tick_ms)
    ts = t0_ms + np.arange(n, dtype=np.int64) * tick_ms
    level = np.where(((ts - t0_ms) // every_ms) % 2 == 1, 1.003, 1.0)
    level[(ts - t0_ms) < 2 * every_ms] = 1.0                     # warm-up: flat
    wiggle = np.where(np.arange(n) % 2 == 0, 0.0, 2e-5)
    px = np.round(100_000.0 * level * (1.0 + wiggle), 2)
    q = np.full(n, 0.01)
    return TickData(ts_ms=ts, price=px, qty=q, is_buyer_maker=np.zeros(n, dtype=bool), bid=px - 0.01, ask=px + 0.01,
                    bid_qty=q, ask_qty=q, source="synthetic", bbo="synthetic")


async def _run(push: bool, seconds: float, tmp: Any) -> dict[str, Any]:
    from eth_account import Account

    from hourmm_core.clock import HOUR_MS, ScaledClock
    from hourmm_core.config import Credentials, PricerConfig, TraderConfig
    from hourmm_core.journal import Journal
    from hourmm_core.polymarket.executor import TraderExecutor
    from hourmm_core.pricing import PricerService
    from hourmm_core.sim.binance_replay import BinanceReplayServer
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
    from hourmm_core.trading.order_manager import TokenBucket
    from hourmm_core.trading.trader import Trader

    ev: dict[str, list] = {k: [] for k in ("frame", "pushed", "recv", "decided", "cancel", "order")}
    H = 1_767_225_600_000 + 3 * HOUR_MS
    start = H + 10 * 60_000
    clock = ScaledClock(1.0, start, time.time_ns() // 1_000_000)
    sim = PolymarketSim(SimConfig(speed=1.0, start_ms=H, hours=1, seed=9), clock=clock)
    for name, kind in (("h_cancel", "cancel"), ("h_cancel_many", "cancel"), ("h_post_order", "order"),
                       ("h_post_orders", "order")):
        async def spy(request, _h=getattr(sim, name), _k=kind):
            ev[_k].append(time.perf_counter_ns())
            return await _h(request)
        setattr(sim, name, spy)
    await sim.start()
    replay = BinanceReplayServer(_step_ticks(start + 300, seconds + 10), clock)
    await replay.start()
    pcfg = PricerConfig.from_env({"BINANCE_WS_URL": replay.ws_url, "BINANCE_REST_URL": replay.rest_url,
                                  "SNAPSHOT_PUBLISH_HZ": "50", "VOL_HALFLIVES_S": "0.5,1,2",
                                  "STALE_THRESHOLD_MS": "5000"})
    svc = PricerService(pcfg, clock, http_port=0, http_host="127.0.0.1", push_delta=0.002 if push else 0.0)
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

    acct = Account.create()
    key = acct.key.hex()
    creds = Credentials(key if key.startswith("0x") else "0x" + key, acct.address, 1)
    u = sim.urls
    env = {"GAMMA_URL": u["gamma"], "CLOB_URL": u["clob"], "PM_WS_URL": u["ws"],
           "SNAPSHOT_URL": svc.server.url + "/snapshot/latest",
           "SNAPSHOT_STREAM_URL": svc.server.url.replace("http", "ws") + "/snapshot/stream",
           "SQLITE_PATH": str(tmp / f"hops{int(push)}.db")}
    cfg = dataclasses.replace(TraderConfig.from_env(env), control_port=0)
    ex = TraderExecutor.from_config(cfg.clob_url, cfg.chain_id, creds)
    await ex.start()
    tr = Trader(cfg, clock, creds, ex, journal=Journal(cfg.sqlite_path, synchronous="NORMAL"),
                housekeeping_s=1.0, discovery_every_s=0.5)
    tr.core.om.bucket = TokenBucket(1000.0, 1000.0)
    orig_ingest = tr.snapshots.ingest

    async def ingest(payload):
        t = time.perf_counter_ns()
        snap = await orig_ingest(payload)
        if snap is not None:
            ev["recv"].append((t, snap.seq))
        return snap
    tr.snapshots.ingest = ingest
    orig_decide = tr.core.decide

    def decide(*a, **kw):
        d = orig_decide(*a, **kw)
        if d.actions:
            ev["decided"].append(time.perf_counter_ns())
        return d
    tr.core.decide = decide
    try:
        await tr.start()
        t_end = time.monotonic() + seconds + 4.0
        while time.monotonic() < t_end:
            await asyncio.sleep(0.1)
        placed = tr.core.om.n_fills, len(ev["order"])
    finally:
        await tr.stop()
        await svc.stop()
        await replay.stop()
        await sim.stop()
    return _hops(ev, placed)


def _first(xs, lo, hi, key=lambda x: x):
    for x in xs:
        v = key(x)
        if lo <= v < hi:
            return x
    return None


def _hops(ev: dict[str, list], placed: Any) -> dict[str, Any]:
    """One sample per price jump: follow it through each hop (first event after the previous one)."""
    frames = [f for f in ev["frame"] if f[2] is not None]
    jumps = [f for prev, f in zip(frames, frames[1:]) if abs(f[2] / prev[2] - 1.0) > 0.002]
    samples: dict[str, list[float]] = {h: [] for h in HOPS}
    for k, (t0, t1, _px) in enumerate(jumps):
        nxt = jumps[k + 1][0] if k + 1 < len(jumps) else 1 << 62
        pub = _first(ev["pushed"], t1, nxt, key=lambda x: x[0])
        if pub is None:
            continue
        rec = _first(ev["recv"], pub[0], nxt, key=lambda x: x[0])
        if rec is None or rec[1] < pub[1]:
            continue
        dec = _first(ev["decided"], rec[0], nxt)
        if dec is None:
            continue
        can = _first(ev["cancel"], dec, nxt)
        order = _first(ev["order"], dec, nxt)
        ms = 1e-6
        samples["frame->priced"].append((t1 - t0) * ms)
        samples["priced->pushed"].append((pub[0] - t1) * ms)
        samples["pushed->recv"].append((rec[0] - pub[0]) * ms)
        samples["recv->decided"].append((dec - rec[0]) * ms)
        if can is not None:
            samples["decided->cancel"].append((can - dec) * ms)
            samples["frame->cancel"].append((can - t0) * ms)
        if order is not None:
            samples["decided->order"].append((order - dec) * ms)
            samples["frame->order"].append((order - t0) * ms)
    out: dict[str, Any] = {"jumps": len(jumps), "samples": len(samples["frame->priced"])}
    for h, v in samples.items():
        if v:
            out[f"{h}_p50_ms"] = round(float(np.percentile(v, 50)), 3)
            out[f"{h}_p99_ms"] = round(float(np.percentile(v, 99)), 3)
            out[f"{h}_n"] = len(v)
    return out


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["rate", "push"])
def test_tick_to_wire_hops(benchmark, mode, tmp_path):
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    seconds = 6.0 if getattr(benchmark, "disabled", False) else 30.0
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_run(mode == "push", seconds, tmp_path))),
                       rounds=1, iterations=1)
    benchmark.extra_info.update({"mode": mode, **res})
    assert res["samples"] > 0, res
    assert res.get("frame->cancel_n", 0) + res.get("frame->order_n", 0) > 0, res
