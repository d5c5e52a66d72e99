"""Helpers shared by the tests that drive the loopback Polymarket simulator directly."""
from __future__ import annotations

import aiohttp
from eth_account import Account

from hourmm_core.config import Credentials


def creds() -> Credentials:
    """A fresh wallet per test (keys are generated at run time, never stored)."""
    a = Account.create()
    k = a.key.hex()
    return Credentials(k if k.startswith("0x") else "0x" + k, a.address, 1)


async def fault(sim, body: dict) -> None:
    """Inject a simulator fault (``POST /_sim/fault``); it must be accepted."""
    async with aiohttp.ClientSession() as s:
        async with s.post(sim.urls["clob"] + "/_sim/fault", json=body) as r:
            assert r.status == 200, await r.text()
