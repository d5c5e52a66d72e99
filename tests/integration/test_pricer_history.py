"""Container A's start-up history for the adaptive variance scale, against the loopback Binance.

The real client pages /api/v3/klines from the replay server, which serves real 1m klines of
history before its first replayed row (``history=``, what ``--history-days`` loads) and candles of
the replayed rows after it. The warmed pricer must be exactly a MinutePricer fed the same klines
and then the same live trades; without history the service keeps pricing from the prior with a
WARNING naming the hours it has (never a crash).
"""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from hourmm_core.binance.rest import parse_kline
from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.config import PricerConfig
from hourmm_core.data import load_ticks, synthetic_ticks
from hourmm_core.data.klines import kline_history
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.sim.binance_replay import BinanceReplayServer

quant = pytest.importorskip("hourmm_core.quant")
from hourmm_core.pricing import PricerService  # noqa: E402
from tests.conftest import needs_real_data, until  # noqa: E402

pytestmark = pytest.mark.timeout(90)
H0 = 1_746_540_000_000          # 2025-05-06 14:00 UTC (real klines)
W_DAYS = 2




async def _run(ticks, history, speed: float, start_ms: int, **env: str):
    clock = ScaledClock(speed, start_ms, time.time_ns() // 1_000_000)
    replay = BinanceReplayServer(ticks, clock, history=history)
    await replay.start()
    cfg = PricerConfig.from_env({"BINANCE_WS_URL": replay.ws_url, "BINANCE_REST_URL": replay.rest_url,
                                 "STALE_THRESHOLD_MS": "2000", **env})
    svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1")
    await svc.start()
    return replay, svc


@needs_real_data()
async def test_history_from_the_replay_warms_the_scale_exactly(caplog):
    ticks = load_ticks(H0, H0 + 40 * 60_000)
    assert not ticks.is_synthetic
    kh = kline_history(None, "BTCUSDT", H0 - (24 * W_DAYS + 2) * HOUR_MS, H0)
    history = kh.window(H0 - (24 * W_DAYS + 2) * HOUR_MS, H0)
    with caplog.at_level(logging.INFO):
        replay, svc = await _run(ticks, history, 120.0, H0 + 12 * 60_000, PRICER_SCALE_WINDOW_DAYS=str(W_DAYS),
                                 PRICER_SCALE_PRIOR_HOURS="24")
        try:
            await until(lambda: svc.history_state != "pending", what="history loaded")
            assert svc.history_state == "loaded"
            b = svc.builder
            # the warmed pricer == one fed the replay's own klines (paged here too) up to the cut
            now0 = svc.history_start_ms + (24 * W_DAYS + 1) * HOUR_MS
            rows = [parse_kline(r) for r in replay.klines("1m", svc.history_start_ms, None, 1000)]
            while rows[-1].open_ms + 60_000 < svc.history_cut_ms:
                more = [parse_kline(r) for r in replay.klines("1m", rows[-1].open_ms + 60_000, None, 1000)]
                rows += more
            om = np.array([k.open_ms for k in rows])
            op, cl = np.array([k.open for k in rows]), np.array([k.close for k in rows])
            assert om[0] == svc.history_start_ms and np.all(np.diff(om) == 60_000)   # 3 pages, no gap
            assert om.size > 2000 and svc.history_start_ms < H0 <= now0
            # the scale in force = the batch routine over the real klines before H0 (its last hour close)
            k0 = int(np.searchsorted(om, H0))
            _, sc, nh = quant.minute_scale_batch(om[:k0], op[:k0], cl[:k0], b._minute_args[0], 60.0,
                                                 b._minute_args[2], 0.0, 0.001, 24 * W_DAYS, 24.0)
            assert b.minute.var_scale == sc[-1] and b.minute.scale_hours == nh[-1] == 24 * W_DAYS
            assert b.minute.var_scale != 1.0
            await until(lambda: replay.state()["finished"], 30, "replay finished")
            await until(lambda: b.last_trade_id == int(ticks.trade_id[-1]), 5, "last trade")
            await asyncio.sleep(0.1)
            snap = b.snapshot(svc.clock.now_ms())
            # the live model: warmed with the same klines before the cut, the cut minute's open, then
            # every trade the service saw (from its first)
            mp = quant.MinutePricer(*b._minute_args)
            kc = int(np.searchsorted(om, svc.history_cut_ms))
            mp.warm_klines(om[:kc], op[:kc], cl[:kc], svc.history_cut_ms)
            if kc < om.size and om[kc] == svc.history_cut_ms:
                mp.on_trade(int(om[kc]), float(op[kc]))
            i0 = int(np.searchsorted(ticks.trade_id, b.first_trade_id))
            for t_, p_ in zip(ticks.ts_ms[i0:].tolist(), ticks.price[i0:].tolist()):
                mp.on_trade(t_, p_)
            p = mp.price(snap.ts_ms, float(ticks.price[-1]), float(snap.open_price), H0 + HOUR_MS)
            assert snap.fair_up == pytest.approx(p, abs=1e-12)
            metrics = svc._metrics()
            got = {name: v for name, _, v, _ in metrics}
            assert got["hourmm_pricer_var_scale"] == b.minute.var_scale
            assert got["hourmm_pricer_scale_history_hours"] == 24 * W_DAYS and got["hourmm_pricer_history_klines"] > 2000
        finally:
            await svc.stop()
            await replay.stop()
    assert "Pricer history: " in caplog.text and "from 48 hours of history" in caplog.text


async def test_no_history_warns_and_prices_from_the_prior(caplog):
    """Synthetic replay without history before its first row (a shape real Binance never has):
    the service keeps pricing, scale = the prior 1, and one WARNING says how many hours it has."""
    ticks = synthetic_ticks(hours=1, seed=5)
    h0 = DEFAULT_SYNTHETIC_START_MS
    with caplog.at_level(logging.INFO):
        replay, svc = await _run(ticks, None, 120.0, h0 + 10 * 60_000, PRICER_SCALE_WINDOW_DAYS="28")
        try:
            await until(lambda: svc.history_state != "pending", what="history attempted")
            assert svc.history_state == "partial"          # only the replayed rows' 10 minutes
            await until(lambda: svc.builder.trades > 20 and svc.server.latest is not None
                        and svc.server.latest.fair_up is not None, what="priced")
            assert svc.builder.minute.var_scale == 1.0 and svc.builder.minute.scale_hours == 0
        finally:
            await svc.stop()
            await replay.stop()
    warn = [r for r in caplog.records if r.levelno == logging.WARNING and "Pricer history" in r.getMessage()]
    assert len(warn) == 1 and "from 0 hours of history" in warn[0].getMessage()


async def test_unreachable_rest_warns_and_never_stops_the_loop(caplog):
    """BINANCE_REST_URL pointing nowhere: the history fails after its retries, WARNING, prices on."""
    ticks = synthetic_ticks(hours=1, seed=6)
    h0 = DEFAULT_SYNTHETIC_START_MS
    with caplog.at_level(logging.INFO):
        clock = ScaledClock(60.0, h0 + 5 * 60_000, time.time_ns() // 1_000_000)
        replay = BinanceReplayServer(ticks, clock)
        await replay.start()
        cfg = PricerConfig.from_env({"BINANCE_WS_URL": replay.ws_url, "BINANCE_REST_URL": "http://127.0.0.1:9",
                                     "PRICER_SCALE_WINDOW_DAYS": "28"})
        svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1")
        await svc.start()
        try:
            await until(lambda: svc.history_state != "pending", what="history given up")
            assert svc.history_state == "none"
            await until(lambda: svc.builder.trades > 20, what="trades")
            assert svc.builder.minute.var_scale == 1.0 and all(not t.done() for t in svc._tasks[:3])
        finally:
            await svc.stop()
            await replay.stop()
    assert "Pricer history: 0 1m klines (GET " in caplog.text


@needs_real_data()
def test_replay_cli_serves_28_days_and_the_runner_loads_them():
    """The replay CLI (what `hourmm sim` starts) serves --history-days 28 of real 1m klines before its
    start through /api/v3/klines paging, and the real container A runner (shipped config: 28-day
    window) loads all of them: INFO "Pricer history: ... (complete)", scale from 672 hours in /metrics."""
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import REPO_ROOT, free_port

    start = 1_747_922_400_000                    # 2025-05-22 14:00 UTC: 28 days of history from 04-24
    wall = time.time_ns() // 1_000_000
    env = {**os.environ, "HOURMM_SIM_CLOCK": f"60,{start + 60_000},{wall}", "PYTHONUNBUFFERED": "1"}
    replay = subprocess.Popen([sys.executable, "-m", "hourmm_core.sim.binance_replay", "--port", "0", "--hours", "1",
                               "--start-ms", str(start)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    pricer = None
    try:
        line = replay.stdout.readline().strip()
        assert line.startswith("READY ws=ws://127.0.0.1:"), line
        ws_url, rest_url = line.split()[1][3:], line.split()[2][5:]
        port = free_port()
        penv = {**env, "BINANCE_WS_URL": ws_url, "BINANCE_REST_URL": rest_url, "HTTP_PORT": str(port),
                "HTTP_HOST": "127.0.0.1", "STALE_THRESHOLD_MS": "30000", "LOG_LEVEL": "INFO"}
        penv.pop("PRICER_SCALE_WINDOW_DAYS", None)
        pricer = subprocess.Popen([sys.executable, "-m", "runners.binance_pricer"], cwd=REPO_ROOT, env=penv,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0, metrics = time.monotonic(), {}
        while time.monotonic() - t0 < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                metrics = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
                           if ln.startswith("hourmm_pricer_") and " " in ln}
                if metrics.get("hourmm_pricer_history_klines", 0) > 0:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert metrics.get("hourmm_pricer_history_klines", 0) >= 673 * 60, metrics
        assert metrics["hourmm_pricer_scale_history_hours"] == 672 and metrics["hourmm_pricer_scale_window_hours"] == 672
        assert 0.35 <= metrics["hourmm_pricer_var_scale"] <= 2.0 and metrics["hourmm_pricer_var_scale"] != 1.0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            assert set(json.loads(r.read())) == {"healthy", "has_snapshot", "stale", "seq", "age_ms"}
    finally:
        for p in (pricer, replay):
            if p is not None:
                p.terminate()
        logs = pricer.communicate(timeout=20)[1] if pricer is not None else ""
        replay.communicate(timeout=20)
    assert "Pricer history: " in logs and "(complete)" in logs and "from 672 hours of history" in logs, logs[-2000:]
