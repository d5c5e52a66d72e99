"""``python -m runners.polymarket_trader`` as a real process: config errors, market-data-only mode, SIGTERM."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import REPO_ROOT as REPO
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(90)


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "CONTROL_", "HOURMM_", "MAX_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(kw)
    return env


@pytest.mark.parametrize("bad,name", [
    ({"PM_PRIVATE_KEY": "0x1234", "PM_FUNDER": "0x" + "1" * 40, "PM_SIGNATURE_TYPE": "1"}, "PM_PRIVATE_KEY"),
    ({"PM_PRIVATE_KEY": "0x" + "ab" * 32, "PM_FUNDER": "0x" + "1" * 40}, "PM_SIGNATURE_TYPE"),
    ({"PM_PRIVATE_KEY": "0x" + "ab" * 32, "PM_FUNDER": "nope", "PM_SIGNATURE_TYPE": "1"}, "PM_FUNDER"),
    ({"MAX_OPEN_ORDERS": "four"}, "MAX_OPEN_ORDERS"),
    ({"T_WIND_MS": "1000"}, "T_WIND_MS"),
])
def test_bad_settings_exit_2_naming_the_variable(bad: dict, name: str, tmp_path: Path) -> None:
    import subprocess

    p = subprocess.run([sys.executable, "-m", "runners.polymarket_trader"], cwd=REPO, capture_output=True, text=True,
                       env=_env(SQLITE_PATH=str(tmp_path / "j.db"), **bad), timeout=60)
    assert p.returncode == 2, p.stderr
    assert name in p.stderr
    assert "ab" * 32 not in p.stderr  # the key never reaches the log


async def _run_trader_against_sim(tmp_path: Path, extra: dict[str, str], until_key: str = "slug"
                                  ) -> tuple[int | None, dict | None, str, object]:
    """Start the sim in-process and the runner as a process; poll /status; SIGTERM."""
    from hourmm_core.clock import HOUR_MS, ScaledClock
    from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig

    H = 1_767_225_600_000 + 3 * HOUR_MS
    clock = ScaledClock(10.0, H + 60_000, time.time_ns() // 1_000_000)
    sim = PolymarketSim(SimConfig(speed=10.0, start_ms=H, hours=1, seed=2), clock=clock)
    await sim.start()
    port = free_port()
    u = sim.urls
    env = _env(GAMMA_URL=u["gamma"], CLOB_URL=u["clob"], PM_WS_URL=u["ws"], CONTROL_PORT=str(port),
               SNAPSHOT_URL="http://127.0.0.1:9/snapshot/latest", SQLITE_PATH=str(tmp_path / "j.db"),
               HOURMM_SIM_CLOCK=clock.to_env(), **extra)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runners.polymarket_trader", cwd=str(REPO),
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    status = None
    try:
        async with aiohttp.ClientSession() as s:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                try:
                    async with s.get(f"http://127.0.0.1:{port}/status") as r:
                        status = await r.json()
                        if status.get(until_key):
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        state = sim.state()
        await sim.stop()
    return proc.returncode, status, out.decode(), state


async def test_rest_auth_failure_at_start_halts(tmp_path: Path) -> None:
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    from eth_account import Account

    acct = Account.create()
    key = acct.key.hex()
    extra = {"PM_PRIVATE_KEY": key if key.startswith("0x") else "0x" + key, "PM_FUNDER": acct.address,
             "PM_SIGNATURE_TYPE": "1", "PM_API_KEY": "00000000-0000-0000-0000-000000000000",
             "PM_API_SECRET": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "PM_PASSPHRASE": "wrong-passphrase"}
    rc, status, text, state = await _run_trader_against_sim(tmp_path, extra)
    assert rc == 0, text[-2000:]
    assert status is not None and status["risk_mode"] == "HALT"
    assert status["halt_reason"] == "REST authentication failed" and status["open_orders"] == 0
    assert "ERROR | REST authentication failed" in text
    assert "wrong-passphrase" not in text and extra["PM_PRIVATE_KEY"][2:] not in text
    assert state["open_orders"] == []


async def test_market_data_only_then_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    rc, status, text, state = await _run_trader_against_sim(tmp_path, {})
    assert rc == 0, text[-2000:]
    assert status is not None and status["quoting_enabled"] is False and status["open_orders"] == 0
    assert status["health"]["binance_stale"] is True  # no container A running: stale, no quotes
    assert "market data only, quoting disabled" in text
    assert "GC settled after start-up: {'frozen': " in text   # runner wiring of gc_tuning.settle_gc
    assert f"Selected market: {status['slug']}" in text
    assert state["open_orders"] == []
    from hourmm_core.journal import Journal

    j = Journal(str(tmp_path / "j.db"), synchronous="NORMAL")
    try:
        starts, ends = j.events("startup"), j.events("shutdown")
        assert starts and starts[0].payload["quoting_enabled"] is False
        assert ends, "no clean shutdown row in the journal after SIGTERM"
        assert j.count("intent") == 0  # nothing was ever sent without credentials
    finally:
        j.close()
