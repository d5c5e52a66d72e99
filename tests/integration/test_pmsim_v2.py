"""CLOB V2 surfaces of the loopback sim with the REAL py_clob_client_v2 (production is V2-only).

Covers what the other sim tests do not: every V2 signature type (EOA, POLY_PROXY,
POLY_GNOSIS_SAFE, POLY_1271 deposit wallet) signed by the client and verified by
the sim in V2-only mode, market orders (which go through /markets-by-token and
/clob-markets), batch post-only, cancel by id list, balance-allowance, and our
Executor trading through a POLY_1271 wallet. Keys are generated at runtime.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import (
    AssetType,
    BalanceAllowanceParams,
    MarketOrderArgsV2,
    OrderArgsV2,
    PartialCreateOrderOptions,
    PostOrdersV2Args,
)
from py_clob_client_v2.exceptions import PolyApiException

from hourmm_core.clock import HOUR_MS, ScaledClock
from hourmm_core.config import ConfigError, Credentials
from hourmm_core.data import synthetic_ticks
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.polymarket import clob_orders
from hourmm_core.polymarket.executor import Executor, OrderRequest, resolve_signature_type
from hourmm_core.sim.polymarket.server import PolymarketSim, SimConfig
from tests.conftest import new_key, sim_clob_client

pytestmark = pytest.mark.timeout(90)

HOUR0 = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts
TICKS = synthetic_ticks(start_ms=HOUR0 - HOUR_MS, hours=3, seed=21)


def _sim() -> PolymarketSim:
    cfg = SimConfig(start_ms=HOUR0 + 60_000, hours=1, seed=9, agents=False, allowed_versions=(2,))
    return PolymarketSim(cfg, ticks=TICKS, clock=ScaledClock(1.0, HOUR0 + 60_000, time.time_ns() // 1_000_000))


async def _client(sim: PolymarketSim, sig_type: int) -> tuple[ClobClient, str, str]:
    c = await sim_clob_client(sim, sig_type)
    return c, c.get_address(), c.builder.funder


@pytest.mark.parametrize("sig_type", [0, 1, 2, 3])
async def test_every_v2_signature_type_trades_on_v2_only_sim(sig_type: int) -> None:
    sim = _sim()
    await sim.start()
    try:
        hm = sim.hours[0]
        c, signer, funder = await _client(sim, sig_type)
        order = await asyncio.to_thread(c.create_order, OrderArgsV2(token_id=hm.up_token, price=0.31, size=6,
                                                                    side="BUY"))
        assert order.signatureType == sig_type and order.maker == funder
        assert order.signer == (funder if sig_type == 3 else signer)
        r = await asyncio.to_thread(c.post_order, order, "GTC", True)
        assert r["success"] is True and r["status"] == "live"
        st = sim.state()
        assert st["order_versions"] == {"v2": 1, f"sigtype{sig_type}": 1} and st["allowed_versions"] == [2]
        opens = await asyncio.to_thread(c.get_open_orders)
        assert [o["id"] for o in opens] == [r["orderID"]]
        assert opens[0]["maker_address"] == funder.lower()  # funds live at the funder
        bal = await asyncio.to_thread(c.get_balance_allowance,
                                      BalanceAllowanceParams(asset_type=AssetType.COLLATERAL))
        assert int(bal["balance"]) > 0
        # cancel by id list (DELETE /orders)
        res = await asyncio.to_thread(c.cancel_orders, [r["orderID"]])
        assert res["canceled"] == [r["orderID"]]
        assert await asyncio.to_thread(c.get_open_orders) == []
    finally:
        await sim.stop()


async def test_v2_only_sim_answers_version_2_and_v1_signed_orders_mismatch() -> None:
    sim = _sim()
    await sim.start()
    try:
        hm = sim.hours[0]
        c, _, _ = await _client(sim, 0)
        assert await asyncio.to_thread(c.get_version) == 2
        # force the legacy struct: the V2-only sim must refuse it with the text the client reacts to
        v1 = await asyncio.to_thread(c.create_order, OrderArgsV2(token_id=hm.up_token, price=0.2, size=5, side="BUY"),
                                     PartialCreateOrderOptions(version=1))
        assert not hasattr(v1, "timestamp")
        with pytest.raises(PolyApiException) as ei:
            await asyncio.to_thread(c.post_order, v1, "GTC")
        assert ei.value.status_code == 400 and "order_version_mismatch" in str(ei.value.error_msg)
    finally:
        await sim.stop()


async def test_market_order_uses_clob_market_info_and_fills() -> None:
    sim = _sim()
    await sim.start()
    try:
        hm = sim.hours[0]
        maker, _, _ = await _client(sim, 0)
        taker, _, _ = await _client(sim, 1)
        info = await asyncio.to_thread(taker.get_clob_market_info, hm.condition_id)
        assert {t["t"] for t in info["t"]} == {hm.up_token, hm.down_token}
        assert float(info["mts"]) == 0.01 and "fd" in info
        # the sim's markets carry the venue's crypto fee schedule (hourmm_core.fees.CRYPTO_FEES)
        assert info["fd"] == {"r": 0.07, "e": 1, "to": True}
        assert await asyncio.to_thread(taker.get_fee_exponent, hm.up_token) == 1
        ask = await asyncio.to_thread(maker.create_order, OrderArgsV2(token_id=hm.down_token, price=0.4, size=20,
                                                                      side="BUY"))
        assert (await asyncio.to_thread(maker.post_order, ask, "GTC", True))["status"] == "live"
        # BUY Up for 3 USDC at up to 0.65: crosses the Down bid at 0.40 (= Up ask 0.60) by minting
        mo = await asyncio.to_thread(taker.create_market_order,
                                     MarketOrderArgsV2(token_id=hm.up_token, amount=3.0, side="BUY", price=0.65))
        order = clob_orders.parse_order_body(clob_orders_json(mo, taker))
        assert order.version == 2 and order.collateral_units == 3_000_000
        r = await asyncio.to_thread(taker.post_order, mo, "FAK")
        assert r["success"] is True and r["status"] == "matched"
        assert r["transactionsHashes"], "matched replies must carry hashes or the client polls for 30 s"
        trades = await asyncio.to_thread(taker.get_trades)
        assert len(trades) == 1 and trades[0]["trader_side"] == "TAKER"
        assert float(trades[0]["price"]) == pytest.approx(0.6)
        sim.ex.check_invariants()
    finally:
        await sim.stop()


def clob_orders_json(signed, client: ClobClient) -> dict:
    from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

    return order_to_json_v2(signed, client.creds.api_key, "FAK")


async def test_batch_post_only_rejects_only_the_crossing_order() -> None:
    sim = _sim()
    await sim.start()
    try:
        hm = sim.hours[0]
        a, _, _ = await _client(sim, 0)
        resting = await asyncio.to_thread(a.create_order, OrderArgsV2(token_id=hm.up_token, price=0.55, size=5,
                                                                      side="BUY"))
        assert (await asyncio.to_thread(a.post_order, resting, "GTC", True))["success"]
        b, _, _ = await _client(sim, 2)
        cross = await asyncio.to_thread(b.create_order, OrderArgsV2(token_id=hm.down_token, price=0.5, size=5,
                                                                    side="BUY"))   # = Up ask 0.50 < bid 0.55
        quiet = await asyncio.to_thread(b.create_order, OrderArgsV2(token_id=hm.down_token, price=0.4, size=5,
                                                                    side="BUY"))
        res = await asyncio.to_thread(b.post_orders, [PostOrdersV2Args(order=cross, orderType="GTC"),
                                                      PostOrdersV2Args(order=quiet, orderType="GTC")], True)
        assert [x["success"] for x in res] == [False, True]
        assert "post-only" in res[0]["errorMsg"].lower() or "cross" in res[0]["errorMsg"].lower()
        assert [o["id"] for o in await asyncio.to_thread(b.get_open_orders)] == [res[1]["orderID"]]
    finally:
        await sim.stop()


def test_pm_signature_type_3_maps_to_poly_1271() -> None:
    a, w = Account.create().address, Account.create().address
    assert resolve_signature_type(3, a, w)[0] == 3
    with pytest.raises(ConfigError, match="POLY_1271"):
        resolve_signature_type(3, a, a)
    with pytest.raises(ConfigError, match="0, 1, 2 or 3"):
        resolve_signature_type(4, a, w)
    key, _ = new_key()
    creds = Credentials.from_env({"PM_PRIVATE_KEY": key, "PM_FUNDER": w, "PM_SIGNATURE_TYPE": "3"})
    assert creds is not None and creds.signature_type == 3
    with pytest.raises(ConfigError, match="PM_SIGNATURE_TYPE"):
        Credentials.from_env({"PM_PRIVATE_KEY": key, "PM_FUNDER": w, "PM_SIGNATURE_TYPE": "4"})


async def test_executor_trades_through_a_poly_1271_deposit_wallet() -> None:
    sim = _sim()
    await sim.start()
    ex = None
    try:
        hm = sim.hours[0]
        wallet = new_key()[1]
        ex = Executor(sim.urls["clob"], 137, Credentials(new_key()[0], wallet, 3), retry_backoff_s=0.05)
        assert ex.signature_type == 3
        await ex.start()
        ack = await ex.place(OrderRequest("w1", hm.up_token, "BUY", 0.12, 8.0))
        assert ack.success and ack.order_id.startswith("0x")
        opens = await ex.open_orders(market=hm.condition_id)
        assert [o["id"] for o in opens] == [ack.order_id]   # local EIP-712 hash == exchange order id
        assert opens[0]["maker_address"] == wallet.lower()
        assert await ex.heartbeat()
        await ex.cancel_all()
        assert await ex.open_orders() == []
    finally:
        if ex is not None:
            await ex.close()
        await sim.stop()
