"""Tick-to-wire hop breakdown on loopback, with the real simulators and both containers.

Run: ``python3 -m pytest benchmarks/test_bench_hops.py --benchmark-only``.

Chain (three processes like production: container A = Binance replay + PricerService,
container B = the Trader in this process, the venue = the Polymarket simulator; clock at
1x; perf_counter_ns stamps (CLOCK_MONOTONIC, shared by the processes) from
benchmark-only wrappers, see benchmarks/hops_procs.py; nothing in the product is changed
to measure):

  frame   Binance replay frame handed to container A (``SnapshotBuilder.on_message`` entry)
  priced  the compiled core repriced (``on_message`` returned)
  pushed  snapshot published (``SnapshotServer.publish``)
  recv    container B holds it (``SnapshotClient.ingest`` of that seq, push stream)
  decided ``DecisionCore.decide`` returned the cancels/places for it
  cancel  a cancel reached the venue (sim ``DELETE /order(s)`` handler entry)
  order   a new signed order reached the venue (sim ``POST /order(s)`` handler entry)

The Binance path is synthetic: a seeded BTC-like random walk plus a 0.3 % jump every 4 s,
alternating up/down (real data has no jumps at known instants, and a jump is what forces
every quote to be cancelled and replaced: the sniper race; short vol half-lives 0.5/1/2 s so
the estimate is calm again before the next jump). Each jump is one
sample; per hop p50/p99 in ``extra_info`` (ms). Modes: ``rate`` = the publisher's fixed
SNAPSHOT_PUBLISH_HZ=50 only; ``push`` = plus publish-on-significant-change
(PricerService(push_delta=0.002)). No timed asserts. Everything shares 2 busy cores, so
absolute figures are taken under load; compare modes within one run.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REACT_MS = 100.0     # a decision later than this after the snapshot is not a reaction to it
HOPS = ("frame->priced", "priced->pushed", "pushed->recv", "recv->decided", "decided->cancel", "decided->order",
        "frame->cancel", "frame->order")


async def _child(args: list[str]) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(HERE / "hops_procs.py"), *args,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)      # type: ignore[union-attr]
    if not line:
        raise RuntimeError(f"hops child {args[0]} did not start")
    return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.stdin.close()                                              # type: ignore[union-attr]
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()


async def _run(push: bool, seconds: float, tmp: Any) -> dict[str, Any]:
    from eth_account import Account

    from hourmm_core.clock import HOUR_MS, ScaledClock
    from hourmm_core.config import Credentials, TraderConfig
    from hourmm_core.journal import Journal
    from hourmm_core.polymarket.trader_executor import TraderExecutor
    from hourmm_core.trading.order_manager import TokenBucket
    from hourmm_core.trading.trader import Trader

    H = 1_767_225_600_000 + 3 * HOUR_MS
    start = H + 10 * 60_000
    wall0 = time.time_ns() // 1_000_000
    clock = ScaledClock(1.0, start, wall0)
    common = ["--start-ms", str(start), "--wall0", str(wall0), "--seconds", str(seconds + 20)]
    vout, pout = tmp / f"venue{int(push)}.json", tmp / f"pricer{int(push)}.json"
    venue, vinfo = await _child(["venue", *common, "--sim-start", str(H), "--out", str(vout)])
    pricer = None
    try:
        pricer, pinfo = await _child(["pricer", *common, "--push-delta", "0.002" if push else "0",
                                      "--out", str(pout)])
        ev: dict[str, list] = {"recv": [], "decided": []}
        acct = Account.create()
        key = acct.key.hex()
        creds = Credentials(key if key.startswith("0x") else "0x" + key, acct.address, 1)
        u = vinfo["urls"]
        env = {"GAMMA_URL": u["gamma"], "CLOB_URL": u["clob"], "PM_WS_URL": u["ws"],
               "SNAPSHOT_URL": pinfo["url"] + "/snapshot/latest",
               "SNAPSHOT_STREAM_URL": pinfo["url"].replace("http", "ws") + "/snapshot/stream",
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
            await asyncio.sleep(seconds + 3.0)
        finally:
            await tr.stop()
    finally:
        if pricer is not None:
            await _stop(pricer)
        await _stop(venue)
    ev.update(json.loads(vout.read_text()))
    ev.update(json.loads(pout.read_text()))
    return _hops(ev)


def _first(xs, lo, hi, key=lambda x: x):
    for x in xs:
        v = key(x)
        if lo <= v < hi:
            return x
    return None


def _hops(ev: dict[str, list]) -> dict[str, Any]:
    """One sample per price jump: follow it through each hop (first event after the previous one)."""
    frames = [f for f in ev["frame"] if f[2] is not None]
    jumps = [f for prev, f in zip(frames, frames[1:]) if abs(f[2] / prev[2] - 1.0) > 0.0025]
    samples: dict[str, list[float]] = {h: [] for h in HOPS}
    no_reaction = 0
    for k, (t0, t1, _px) in enumerate(jumps):
        nxt = jumps[k + 1][0] if k + 1 < len(jumps) else 1 << 62
        pub = _first(ev["pushed"], t1, nxt, key=lambda x: x[0])
        if pub is None:
            continue
        rec = next((r for r in ev["recv"] if pub[0] <= r[0] < nxt and r[1] >= pub[1]), None)
        if rec is None:
            continue
        dec = _first(ev["decided"], rec[0], min(nxt, rec[0] + int(REACT_MS * 1e6)))
        if dec is None:
            no_reaction += 1
            continue
        # this decision's own requests: before the next decision (cycles are serialised, so the
        # next decide() runs only after this one's cancels and places were sent)
        end = min(nxt, next((d for d in ev["decided"] if d > dec), 1 << 62))
        can = _first(ev["cancel"], dec, end)
        order = _first(ev["order"], dec, end)
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
    out: dict[str, Any] = {"jumps": len(jumps), "samples": len(samples["frame->priced"]),
                           "no_reaction_within_100ms": no_reaction}
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
    smoke = getattr(benchmark, "disabled", False)
    if smoke and mode == "rate":
        pytest.skip("smoke run (--benchmark-disable): the push mode exercises the same harness")
    seconds = 14.0 if smoke else 44.0
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_run(mode == "push", seconds, tmp_path))),
                       rounds=1, iterations=1)
    benchmark.extra_info.update({"mode": mode, **res})
    assert res["samples"] > 0, res
    assert res.get("frame->cancel_n", 0) + res.get("frame->order_n", 0) > 0, res
