"""Container B speed: decision-loop cost and tick-to-order latency on loopback.

Run: ``python3 -m pytest benchmarks/test_bench_trader.py --benchmark-only``.

* ``decision`` group: one :meth:`DecisionCore.decide` (session -> risk -> strategy with
  the compiled ladder -> compiled pre-trade check per quote -> order diff), from a new
  snapshot to the list of actions. Target < 50 us. Two paths: *steady* (quotes already
  working, nothing to do — the common case at 50 Hz) and *requote* (fair moved: cancels
  + places). Each is also run with every compiled piece swapped for its plain-Python twin
  (ladder kernel, pre-trade check, order scans), side by side (ratio in ``extra_info``).
* ``latency`` group: the real Trader against the loopback Polymarket simulator and a
  real SnapshotServer, clock at 1x: snapshot publish time -> order handed to the
  executor (p50/p99 ms in ``extra_info``), polling at POLL_SNAPSHOT_HZ=50 vs WS push.
  The BTC path behind the simulator is the seeded synthetic stand-in unless real dumps
  exist (it measures code latency, not the market).
No timed asserts.
"""
from __future__ import annotations

import asyncio
import contextlib
import statistics
from typing import Any, Iterator

import pytest

from hourmm_core.quant import reference as R
from hourmm_core.trading import decision, order_manager, risk_engine, strategy
from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.order_manager import TokenBucket
from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Phase, Schedule
from hourmm_core.trading.strategy import BookTop, StrategyParams

END = 1_767_240_000_000
T = END - 2_000_000
UP, DN = BookTop(0.47, 0.53), BookTop(0.47, 0.53)


def _ref_quote_kernel(p: Any, lim: Any, tick: float, min_size: float) -> tuple:
    return p, lim, tick, min_size


def _ref_kernel_quotes(k: tuple, fair_up: float, fair_unc: float, yes: float, no: float, up: Any, wind: bool,
                       wind_progress: float, ms_left: float, held_cost: float, pull: int, reduce_only: bool) -> list:
    """The decision pass's compiled QuoteKernel call, answered by the readable strategy.ladder_quotes."""
    p, lim, tick, min_size = k
    s = strategy.MarketState(fair_up, fair_unc, True, yes, no, up, None, Phase.WIND_DOWN if wind else Phase.ACTIVE,
                             Mode.REDUCE_ONLY if reduce_only else Mode.NORMAL, wind_progress, tick, min_size,
                             False, held_cost, 0.0, ms_left, pull)
    return strategy.ladder_quotes(s, p, lim, reduce_only)


@contextlib.contextmanager
def impl(which: str) -> Iterator[None]:
    """Swap every compiled piece of the pass for its plain-Python twin (benchmark only): the
    ladder kernel (QuoteKernel -> strategy.ladder_quotes over reference quote_ladder), the
    pre-trade check (QuoteCheck over the reference check_order), and the order manager's scan and
    plan (quant/plan.pyx -> reference/plan.py)."""
    if which == "compiled":
        yield
        return
    swaps = [(strategy, "quote_ladder", R.quote_ladder), (strategy, "LadderSpec", R.LadderSpec),
             (risk_engine, "RiskChecker", R.RiskChecker), (decision, "quote_kernel", _ref_quote_kernel),
             (decision, "kernel_quotes", _ref_kernel_quotes), (order_manager, "plan_orders", R.plan_orders),
             (order_manager, "prune_order", R.prune_order),
             (order_manager, "order_aggregates", R.order_aggregates), (decision, "QuoteCheck", R.QuoteCheck),
             (risk_engine, "QuoteCheck", R.QuoteCheck)]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in swaps]
    for mod, name, new in swaps:
        setattr(mod, name, new)
    risk_engine._CHECKERS.clear()
    strategy._SPECS.clear()
    try:
        yield
    finally:
        for mod, name, old in saved:
            setattr(mod, name, old)
        risk_engine._CHECKERS.clear()
        strategy._SPECS.clear()


def make_core() -> DecisionCore:
    c = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams(quote_size=10.0))
    c.set_market(MarketRef("bench", "0xc", "u", "d", END - 3_600_000, END))
    for f in (c.risk.on_user_ws, c.risk.on_market_ws, c.risk.on_rest):
        f(True, 0)
    c.om.bucket = TokenBucket(1e9, 1e9)
    return c


def settle(c: DecisionCore, actions: list, t: int) -> None:
    """What the executor + user WS do, instantly: acks and cancel confirmations."""
    for a in actions:
        o = a.order
        if a.kind == "place":
            c.om.on_sent(o, t)
            c.om.on_ack(o, "x" + o.client_id, "live", t)
        else:
            c.om.on_cancel_sent(o, t)
            c.om.on_cancelled(o.order_id, t)
    c.om.prune(keep_final=20)


SPEED: dict[str, float] = {}


@pytest.mark.benchmark(group="decision")
@pytest.mark.parametrize("which", ["compiled", "reference"])
def test_decision_steady(benchmark: Any, which: str) -> None:
    with impl(which):
        c = make_core()
        settle(c, c.decide(T, 0.5, 0.005, True, UP, DN).actions, T)
        assert c.om.open_count == 4
        d = benchmark(c.decide, T + 1, 0.5, 0.005, True, UP, DN)
    assert d.actions == []  # nothing to do: quotes already working
    _record(benchmark, f"steady/{which}")


@pytest.mark.benchmark(group="decision")
@pytest.mark.parametrize("which", ["compiled", "reference"])
def test_decision_requote(benchmark: Any, which: str) -> None:
    """Fair moved 3 ticks: every quote is cancelled and replaced. Only decide() is timed;
    the executor's acks/cancel confirmations for the previous pass run in the (untimed) setup."""
    state: dict[str, Any] = {"i": 0, "last": None}
    with impl(which):
        c = make_core()

        def setup() -> tuple[tuple, dict]:
            if state["last"] is not None:
                settle(c, state["last"].actions, T + state["i"])
            state["i"] += 1
            fair = 0.50 if state["i"] % 2 else 0.53
            return (T + state["i"], fair, 0.005, True, UP, DN), {}

        def run(*args: Any) -> Any:
            d = c.decide(*args)
            state["last"] = d
            return d

        benchmark.pedantic(run, setup=setup, rounds=3000, iterations=1, warmup_rounds=50)
    d = state["last"]
    assert d is not None and any(a.kind == "place" for a in d.actions)
    _record(benchmark, f"requote/{which}")


def _record(benchmark: Any, key: str) -> None:
    st = getattr(benchmark, "stats", None)
    if st is None or not hasattr(st, "stats"):
        return
    med_us = st.stats.median * 1e6  # median: robust on a shared machine
    SPEED[key] = med_us
    benchmark.extra_info["mean_us"] = round(st.stats.mean * 1e6, 3)
    benchmark.extra_info["median_us"] = round(med_us, 3)
    benchmark.extra_info["target_us"] = 50
    path, which = key.split("/")
    other = SPEED.get(f"{path}/compiled")
    if which == "reference" and other:
        benchmark.extra_info["reference_over_compiled_median"] = round(med_us / other, 2)


# --------------------------------------------------------------------------- latency on loopback
async def _latency_run(push: bool, seconds: float, tmp: Any) -> dict[str, float]:
    import dataclasses
    import time

    from eth_account import Account

    from hourmm_core.clock import HOUR_MS, ScaledClock
    from hourmm_core.config import Credentials, TraderConfig
    from hourmm_core.journal import Journal
    from hourmm_core.polymarket.trader_executor import TraderExecutor
    from hourmm_core.pricing.server import SnapshotServer
    from hourmm_core.pricing.snapshot import Snapshot as PSnap
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
    from hourmm_core.trading.trader import Trader

    H = 1_767_225_600_000 + 3 * HOUR_MS
    clock = ScaledClock(1.0, H + 10 * 60_000, time.time_ns() // 1_000_000)
    sim = PolymarketSim(SimConfig(speed=1.0, start_ms=H, hours=1, seed=9), clock=clock)
    await sim.start()
    srv = SnapshotServer("127.0.0.1", 0, lambda: (False, 1))
    await srv.start()
    seq = 0

    def publish(fair: float) -> None:
        nonlocal seq
        seq += 1
        now = clock.now_ms()
        d = dict(schema_version=1, seq=seq, ts_ms=now, exchange_ts_ms=now, recv_ts_ms=now, symbol="BTCUSDT",
                 hour_start_ms=H, hour_end_ms=H + HOUR_MS, open_price=None, last_price=None, bid=None, ask=None,
                 mid=None, microprice=None, sigma=1e-4, sigmas={}, features={}, tau_ms=H + HOUR_MS - now,
                 fair_up=fair, fair_unc=0.0, stale=False, age_ms=0)
        srv.publish(PSnap(**d, json=PSnap.render(d)))

    acct = Account.create()
    key = acct.key.hex()
    creds = Credentials(key if key.startswith("0x") else "0x" + key, acct.address, 1)
    u = sim.urls
    env = {"GAMMA_URL": u["gamma"], "CLOB_URL": u["clob"], "PM_WS_URL": u["ws"],
           "SNAPSHOT_URL": srv.url + "/snapshot/latest", "SQLITE_PATH": str(tmp / f"j{int(push)}.db")}
    if push:
        env["SNAPSHOT_STREAM_URL"] = srv.url.replace("http", "ws") + "/snapshot/stream"
    cfg = dataclasses.replace(TraderConfig.from_env(env), control_port=0)
    ex = TraderExecutor.from_config(cfg.clob_url, cfg.chain_id, creds)
    await ex.start()
    tr = Trader(cfg, clock, creds, ex, journal=Journal(cfg.sqlite_path, synchronous="NORMAL"),
                housekeeping_s=1.0, discovery_every_s=0.5)
    tr.core.om.bucket = TokenBucket(1000.0, 1000.0)
    try:
        publish(0.5)
        await tr.start()
        t0 = time.monotonic()
        while tr.core.om.open_count == 0 and time.monotonic() - t0 < 10:
            publish(0.5)
            await asyncio.sleep(0.05)
        tr.latencies_ms.clear()
        i = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            i += 1
            publish(0.46 if i % 2 else 0.54)  # a move that forces every quote to be replaced
            await asyncio.sleep(0.25)
        lat = sorted(tr.latencies_ms)
    finally:
        await tr.stop()
        await srv.stop()
        await sim.stop()
    if not lat:
        return {"n": 0}
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return {"n": len(lat), "p50_ms": round(statistics.median(lat), 2), "p99_ms": round(q[98], 2),
            "max_ms": round(lat[-1], 2)}


@pytest.mark.benchmark(group="latency")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["poll", "push"])
def test_tick_to_order_latency(benchmark: Any, mode: str, tmp_path: Any) -> None:
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    seconds = 1.5 if getattr(benchmark, "disabled", False) else 6.0
    res: dict[str, float] = {}

    def run() -> None:
        res.update(asyncio.run(_latency_run(mode == "push", seconds, tmp_path)))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({"mode": mode, **res})
    assert res.get("n", 0) > 0, "no orders were placed in response to snapshots"
