"""Shared pytest set-up and test helpers for the whole suite (one copy each; tests import them
with ``from tests.conftest import new_key, wait_for, ...``).

Layout (mirrors the package; docs/DESIGN.md "Tests"):
- tests/unit/<package>/ : one module's behaviour, in process (small fake servers on 127.0.0.1 allowed);
- tests/integration/    : tests that start the simulators, the runners or other processes;
- tests/fixtures/       : recorded venue payloads (see tests/fixtures/README.md).

Every test under tests/integration/ is marked ``integration``, so ``pytest tests/unit`` or
``pytest -m "not integration"`` is the quick loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any, Callable

import aiohttp
import numpy as np
import pytest
from eth_account import Account
from py_clob_client_v2.client import ClobClient

from hourmm_core.config import Credentials
from hourmm_core.data import find_data_dir, load_klines

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
INTEGRATION = TESTS / "integration"
FIXTURES = TESTS / "fixtures"

# Real data (/work/shared/data, or $HOURMM_DATA_DIR): tests where prices matter run on slices of it.
REAL_DATA: Path = find_data_dir() or Path("/nonexistent/shared/data")
MAY_KLINES = "BTCUSDT-1m-2025-05.csv.gz"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------ keys (generated at run time)
def new_key() -> tuple[str, str]:
    """A fresh private key (0x-prefixed hex) and its address. Tests never hold a fixed key."""
    acct = Account.create()
    k = acct.key.hex()
    return (k if k.startswith("0x") else "0x" + k), acct.address


def new_credentials(signature_type: int = 1) -> Credentials:
    """Trader credentials for a fresh key that funds itself (guide type 1 with PM_FUNDER = own address)."""
    key, address = new_key()
    return Credentials(key, address, signature_type)


# ------------------------------------------------------------------ waiting on conditions
async def wait_for(pred: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll ``pred`` until it is truthy or ``timeout`` seconds pass; returns its last value
    (so ``assert await wait_for(...)`` fails with the condition unmet). No wall-clock assertion."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        v = pred()
        if v:
            return v
        await asyncio.sleep(interval)
    return pred()


async def until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """``wait_for`` that fails the test naming ``what`` when ``cond`` never becomes truthy."""
    v = await wait_for(cond, timeout=timeout)
    assert v, f"timed out waiting for {what}"
    return v


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a child process that must be told its port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the loopback simulators
async def sim_fault(sim: Any, body: dict) -> dict:
    """POST /_sim/fault to an in-process PolymarketSim; the reply (the active faults)."""
    async with aiohttp.ClientSession() as s:
        async with s.post(sim.urls["clob"] + "/_sim/fault", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def sim_clob_client(sim: Any, signature_type: int = 0) -> ClobClient:
    """The real ``py_clob_client_v2`` client on a fresh key, API creds derived at the simulator (which
    credits the wallet). Type 0 (EOA) funds itself; the other types get a separate funder address."""
    key, address = new_key()
    funder = address if signature_type == 0 else new_key()[1]
    c = ClobClient(sim.urls["clob"], 137, key=key, signature_type=signature_type, funder=funder)
    c.set_api_creds(await asyncio.to_thread(c.create_or_derive_api_key))
    return c


# ------------------------------------------------------------------ real data slices
def needs_real_data(*names: str) -> pytest.MarkDecorator:
    """Skip unless every named file exists under REAL_DATA (default: the May 2025 1m klines)."""
    names = names or (MAY_KLINES,)
    missing = [n for n in names if not (REAL_DATA / n).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"real data not found: {missing} under {REAL_DATA}")


def real_minutes(start_ms: int, end_ms: int, close_offset_ms: int | None = None,
                 min_minutes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Real BTCUSDT 1m klines with open_ms in [start_ms, end_ms) as a price path of two points a
    minute, in time order: the open at ``open_ms`` and the close at ``close_ms`` (or at
    ``open_ms + close_offset_ms``). Skips the test when fewer than ``min_minutes`` minutes exist."""
    k = load_klines(REAL_DATA)
    sel = (k["open_ms"] >= start_ms) & (k["open_ms"] < end_ms)
    if int(sel.sum()) < min_minutes:
        pytest.skip(f"real klines for [{start_ms}, {end_ms}) are not in {REAL_DATA}")
    opens = k["open_ms"][sel]
    closes = k["close_ms"][sel] if close_offset_ms is None else opens + close_offset_ms
    ts = np.stack([opens, closes], axis=1).ravel()
    px = np.stack([k["open"][sel], k["close"][sel]], axis=1).ravel()
    return ts.astype(np.int64), px.astype(np.float64)


def real_ticks(start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Real BTC ticks in [start_ms, end_ms) as the backtest loads them (REAL_DATA's 1m klines + the
    seeded bridge, :func:`hourmm_core.data.load_ticks`); skips the test when they are not there."""
    from hourmm_core import data

    try:
        t = data.load_ticks(start_ms, end_ms, data_dir=REAL_DATA, allow_synthetic=False)
    except FileNotFoundError:
        pytest.skip(f"real klines are not in {REAL_DATA}")
    if not len(t) or t.source == data.SOURCE_SYNTHETIC:
        pytest.skip(f"real klines are not in {REAL_DATA}")
    return np.asarray(t.ts_ms, dtype=np.int64), np.asarray(t.price, dtype=np.float64)


# ------------------------------------------------------------------ recorded venue payloads
# The fixtures name their 32-byte hex ids ({{CONDITION_ID}}, {{ORDER_HASH_1}}, ...) instead of holding
# literals: the values are made here at run time (random, the venue's 0x + 64 hex shape), once per
# session so every payload of one run refers to the same market and orders.
FIXTURE_IDS: dict[str, str] = {k: "0x" + os.urandom(32).hex()
                               for k in ("CONDITION_ID", "ORDER_HASH_1", "ORDER_HASH_2", "TX_HASH")}
@pytest.fixture(scope="session")
def recorded() -> Callable[[str], Any]:
    """Load a recorded venue payload: ``recorded("polymarket/ws_market_book.json")`` (a fresh copy each call)."""

    def load(name: str) -> Any:
        text = (FIXTURES / name).read_text()
        for token, value in FIXTURE_IDS.items():
            text = text.replace("{{" + token + "}}", value)
        return json.loads(text)

    return load
