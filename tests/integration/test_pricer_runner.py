"""Container A end to end against the loopback Binance (real sockets, ephemeral ports).

In-process for the behaviours (the PricerService the runner starts), plus the real
runner and replay CLIs as subprocesses for start-up, log lines and bad settings.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import numpy as np
import pytest
import websockets

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.config import PricerConfig
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.sim.binance_replay import BinanceReplayServer

quant = pytest.importorskip("hourmm_core.quant")
from hourmm_core.pricing import PricerService  # noqa: E402
from tests.conftest import REPO_ROOT as REPO  # noqa: E402
from tests.conftest import free_port, until  # noqa: E402

H0 = DEFAULT_SYNTHETIC_START_MS
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ticks():
    return synthetic_ticks(hours=2, seed=21)




class Stack:
    """Replay server + pricer service on one scaled clock."""

    def __init__(self, ticks, speed: float, sim_start: int, **env: str) -> None:
        self.clock = ScaledClock(speed, sim_start, time.time_ns() // 1_000_000)
        self.replay = BinanceReplayServer(ticks, self.clock)
        self.env = env

    async def __aenter__(self) -> "Stack":
        await self.replay.start()
        settings = {"BINANCE_WS_URL": self.replay.ws_url, "BINANCE_REST_URL": self.replay.rest_url,
                    "STALE_THRESHOLD_MS": "2000", **self.env}
        self.cfg = PricerConfig.from_env(settings)
        self.svc = PricerService(self.cfg, self.clock, http_port=0, http_host="127.0.0.1")
        await self.svc.start()
        self.http = aiohttp.ClientSession()
        self.url = self.svc.server.url
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.close()
        await self.svc.stop()
        await self.replay.stop()

    async def get(self, path: str):
        async with self.http.get(self.url + path) as r:
            return r.status, (await r.json() if "json" in r.content_type else await r.text())

    async def fault(self, **body):
        async with self.http.post(self.replay.rest_url + "/_sim/fault", json=body) as r:
            assert r.status == 200
            return await r.json()


async def test_snapshots_at_rate_with_rising_seq_and_push(ticks):
    async with Stack(ticks, 60.0, H0 + 60_000, SNAPSHOT_PUBLISH_HZ="40") as st:
        await until(lambda: st.svc.builder.trades > 10, what="trades")
        _, s1 = await st.get("/snapshot/latest")
        t0 = time.monotonic()
        push1 = st.svc.pushed_on_change
        # Wait for 40 more snapshots (a condition, not a time window: a loaded box only delays
        # it); the configured 40 Hz is an upper bound that load can never push the rate above.
        await until(lambda: st.svc.server.latest is not None and st.svc.server.latest.seq >= s1["seq"] + 40,
                    60, "40 more snapshots")
        _, s2 = await st.get("/snapshot/latest")
        dt = time.monotonic() - t0
        # publishes on significant change (SNAPSHOT_PUSH_DELTA, on by default) come on top of the
        # fixed rate; the fixed-rate publisher itself is never faster than configured
        pushes = st.svc.pushed_on_change - push1
        assert s2["seq"] - s1["seq"] >= 40
        assert (s2["seq"] - s1["seq"] - pushes - 1) / dt <= 1.2 * 40, (dt, pushes)
        assert s2["ts_ms"] > s1["ts_ms"] and s2["schema_version"] == 1
        # push channel: snapshots arrive with strictly increasing seq
        async with websockets.connect(st.url.replace("http", "ws") + "/snapshot/stream", close_timeout=0.5) as ws:
            seqs = [json.loads(await asyncio.wait_for(ws.recv(), 2))["seq"] for _ in range(20)]
        assert all(b > a for a, b in zip(seqs, seqs[1:]))
        code, h = await st.get("/health")
        assert code == 200 and set(h) == {"healthy", "has_snapshot", "stale", "seq", "age_ms"}
        assert h["has_snapshot"] is True and h["seq"] >= s2["seq"]
        code, m = await st.get("/metrics")
        assert "hourmm_pricer_snapshots_published_total" in m and 'hourmm_binance_frames_total{kind="trade"}' in m


async def test_fair_equals_core_on_replayed_path_and_mid_hour_klines_open(ticks, caplog):
    part = ticks.slice_time(None, H0 + 25 * 60_000)  # the feed ends at 14:25 so the path is fixed
    with caplog.at_level(logging.INFO):
        # the fixed-scale model (PRICER_SCALE_WINDOW_DAYS=0): a fresh MinutePricer on the same trades;
        # the shipped adaptive scale's start-up history is checked the same way in test_pricer_history.py
        async with Stack(part, 300.0, H0 + 15 * 60_000, PRICER_SCALE_WINDOW_DAYS="0") as st:  # start mid-hour
            await until(lambda: st.replay.state()["finished"], 15, "replay finished")
            await until(lambda: st.svc.builder.last_trade_id == int(part.trade_id[-1]), 5, "last trade")
            await asyncio.sleep(0.1)
            _, snap = await st.get("/snapshot/latest")
            b = st.svc.builder
            assert b.hour.open_source == "klines" and snap["open_price"] == part.price[0]
            i0 = int(np.searchsorted(part.trade_id, b.first_trade_id))
            ts, px = part.ts_ms[i0:], part.price[i0:]
            assert part.ts_ms[i0] >= H0 + 15 * 60_000 - 1000  # history before the start was not streamed
            sig = quant.ewma_vol_batch(ts, px, (30.0, 120.0, 600.0), 1000, 1e-12)[-1]
            assert snap["sigmas"]["30s"] == pytest.approx(sig[0], rel=1e-12)
            tau = snap["tau_ms"] / 1000.0
            assert snap["tau_ms"] == H0 + HOUR_MS - snap["ts_ms"]
            # the shipped model (configs/pricer.yaml): the same trades through a fresh MinutePricer
            cfg = st.svc.cfg
            assert cfg.pricer_model == "seasonal"
            mp = quant.MinutePricer(cfg.season(), cfg.pricer_halflife_min, cfg.pricer_var_prior,
                                    cfg.pricer_var_scale, cfg.pricer_nu, cfg.pricer_p_min)
            for t_, p_ in zip(ts.tolist(), px.tolist()):
                mp.on_trade(t_, p_)
            p = mp.price(snap["ts_ms"], float(px[-1]), float(part.price[0]), H0 + HOUR_MS)
            assert mp.n_returns >= 5
            assert snap["last_price"] == px[-1]
            assert snap["fair_up"] == pytest.approx(p, abs=1e-12)
            assert snap["sigma"] == pytest.approx(math.sqrt(mp.var_rest / tau), rel=1e-12)
            p_alt = quant.digital_prob(float(px[-1]), float(part.price[0]), tau, float(sig[2]), 0.0, 0.001)
            assert snap["fair_unc"] == pytest.approx(abs(p - p_alt), abs=1e-12)
    assert "Hour 2026-01-22T14:00:00Z open price set: " + str(float(part.price[0])) in caplog.text
    assert "Container A started" in caplog.text and "Connected to Binance for BTCUSDT" in caplog.text


async def test_stale_raised_on_pause_and_cleared(ticks, caplog):
    with caplog.at_level(logging.INFO):
        # STALE_THRESHOLD_MS is wall-clock ms (500, the default); the pause is 2 simulated minutes = 2 s wall
        async with Stack(ticks, 60.0, H0 + 60_000, STALE_THRESHOLD_MS="500") as st:
            await until(lambda: st.svc.builder.trades > 20 and not st.svc.stale, what="fresh")
            # a loaded CI machine can starve the replay for > 500 ms wall outside the pause too: that is
            # a genuine stale episode, so count episodes from here and require the pause's to be among them
            before = st.svc.stale_episodes
            await st.fault(pause_ms=120_000)
            await until(lambda: st.svc.stale, 5, "stale")
            code, h = await st.get("/health")
            assert h["stale"] is True and h["healthy"] is False and h["age_ms"] > 500
            assert code == 503   # plain HTTP monitors see "not healthy" from the status code
            _, snap = await st.get("/snapshot/latest")
            assert snap["stale"] is True
            await until(lambda: not st.svc.stale, 8, "fresh again")
            code, h = await st.get("/health")
            assert h["healthy"] is True and code == 200
            assert st.svc.stale_episodes >= before + 1
    # one WARNING per episode, no more (the log is not flooded while a feed stays stale)
    assert caplog.text.count("Binance stale beyond threshold") == st.svc.stale_episodes


async def test_reconnect_after_drop_and_malformed_survived(ticks):
    async with Stack(ticks, 60.0, H0 + 60_000) as st:
        await until(lambda: st.svc.builder.trades > 20, what="trades")
        await st.fault(malformed=6, out_of_order=2)
        await until(lambda: st.svc.client.stats.bad_total >= 8, 5, "bad frames counted")
        r = await st.fault(drop_connections=True)
        assert r["dropped"] == 1
        await until(lambda: st.svc.client.connects >= 2, 10, "reconnect")
        n = st.svc.builder.trades
        await until(lambda: st.svc.builder.trades > n + 20, 5, "trades after reconnect")
        _, m = await st.get("/metrics")
        assert 'hourmm_binance_bad_frames_total{kind="out_of_order"} 2' in m
        assert "hourmm_binance_connects_total 2" in m
        await until(lambda: st.svc.server.latest.fair_up is not None, 5, "vol warm-up")
        _, snap = await st.get("/snapshot/latest")
        assert snap["fair_up"] is not None and snap["open_price"] == ticks.price[0]


async def test_hour_boundary_rolls_open(ticks, caplog):
    with caplog.at_level(logging.INFO):
        async with Stack(ticks, 300.0, H0 + HOUR_MS - 90_000) as st:
            await until(lambda: st.svc.builder.hour.hour_start_ms == H0 + HOUR_MS
                        and st.svc.builder.hour.open_price is not None, 10, "roll")
            h1 = ticks.hour(H0 + HOUR_MS)
            assert st.svc.builder.hour.open_price == h1.price[0]
            assert st.svc.builder.hour.open_source == "trade"
            await asyncio.sleep(0.1)
            _, snap = await st.get("/snapshot/latest")
            assert snap["hour_start_ms"] == H0 + HOUR_MS and snap["open_price"] == h1.price[0]
            assert snap["hour_end_ms"] == H0 + 2 * HOUR_MS
            await until(lambda: st.svc.builder.hour.verified, 5, "open verified against klines")
            assert st.svc.builder.hour.corrections == 0
    assert f"Hour 2026-01-22T15:00:00Z open price set: {float(h1.price[0])}" in caplog.text


async def test_open_missed_at_boundary_is_corrected_from_klines(ticks, caplog):
    """The feed stalls across the hour (frames lost, connection up): the first trade we see is
    not the open; the one-per-hour klines check corrects it."""
    with caplog.at_level(logging.INFO):
        async with Stack(ticks, 300.0, H0 + HOUR_MS - 40_000) as st:
            await st.fault(pause_ms=100_000)
            await until(lambda: st.svc.builder.hour.hour_start_ms == H0 + HOUR_MS
                        and st.svc.builder.hour.verified, 10, "roll + verify")
            h1 = ticks.hour(H0 + HOUR_MS)
            assert st.replay.state()["rows_skipped_paused"] > 0
            assert st.svc.builder.hour.open_price == h1.price[0]
            assert st.svc.builder.hour.corrections == 1
    assert "open price corrected from klines" in caplog.text


# ------------------------------------------------------------------ real processes

def test_runner_rejects_bad_settings():
    for var, val in (("HTTP_PORT", "eighty"), ("STALE_THRESHOLD_MS", "0"), ("SNAPSHOT_PUBLISH_HZ", "nan"),
                     ("BINANCE_SYMBOL", "btc/usdt"), ("LOG_LEVEL", "LOUD"), ("HOURMM_SIM_CLOCK", "fast")):
        env = {**os.environ, var: val}
        p = subprocess.run([sys.executable, "-m", "runners.binance_pricer"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0, var
        assert var in p.stderr, (var, p.stderr)


@pytest.mark.timeout(90)
def test_runner_and_replay_cli_as_processes():
    wall = time.time_ns() // 1_000_000
    env = {**os.environ, "HOURMM_SIM_CLOCK": f"60,{H0 + 120_000},{wall}", "PYTHONUNBUFFERED": "1"}
    env.pop("HOURMM_DATA_DIR", None)
    replay = subprocess.Popen([sys.executable, "-m", "hourmm_core.sim.binance_replay", "--port", "0",
                               "--hours", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    pricer = None
    try:
        line = replay.stdout.readline().strip()
        assert line.startswith("READY ws=ws://127.0.0.1:"), line
        ws_url = line.split()[1][3:]
        rest_url = line.split()[2][5:]
        port = free_port()
        penv = {**env, "BINANCE_WS_URL": ws_url, "BINANCE_REST_URL": rest_url, "HTTP_PORT": str(port),
                "HTTP_HOST": "127.0.0.1", "STALE_THRESHOLD_MS": "30000"}
        pricer = subprocess.Popen([sys.executable, "-m", "runners.binance_pricer"], cwd=REPO, env=penv,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import urllib.request
        t0 = time.monotonic()
        health = None
        while time.monotonic() - t0 < 30:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    health = json.loads(r.read())
                if health["healthy"]:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot/latest", timeout=1) as r:
                        snap = json.loads(r.read())
                    if snap["fair_up"] is not None:
                        break
            except OSError:
                pass
            time.sleep(0.1)
        assert health is not None and health["healthy"] is True, health
        assert snap["open_price"] is not None and 0 < snap["fair_up"] < 1
        pricer.send_signal(signal.SIGTERM)
        _, err = pricer.communicate(timeout=20)
        assert pricer.returncode == 0, err
        assert "INFO | Container A started" in err
        assert "INFO | Connected to Binance for BTCUSDT" in err
        assert "INFO | GC settled after start-up: {'frozen': " in err   # runner wiring of gc_tuning.settle_gc
        assert "INFO | Hour 2026-01-22T14:00:00Z open price set: " in err
    finally:
        for p in (pricer, replay):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    assert "SYNTHETIC" in replay.stderr.read()


def test_runner_exits_nonzero_when_port_taken():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        env = {**os.environ, "HTTP_PORT": str(s.getsockname()[1]), "HTTP_HOST": "127.0.0.1",
               "BINANCE_WS_URL": "ws://127.0.0.1:1"}
        p = subprocess.run([sys.executable, "-m", "runners.binance_pricer"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "address already in use" in p.stderr
