"""Round-trip real V1 and V2 signed orders through hourmm_core.polymarket.clob_orders.

Orders are produced by the real client libraries (py_clob_client 0.34 = V1,
py_clob_client_v2 = V2): offline via their order builders and, for the wire
bodies, by ``create_order`` + ``post_order`` against a tiny aiohttp server on an
ephemeral 127.0.0.1 port that answers the market-parameter calls and records the
POST bodies. Keys are generated at runtime.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from py_clob_client.client import ClobClient as ClobClientV1
from py_clob_client.clob_types import (
    ApiCreds as ApiCredsV1,
)
from py_clob_client.clob_types import (
    CreateOrderOptions as CreateOrderOptionsV1,
)
from py_clob_client.clob_types import (
    OrderArgs as OrderArgsV1,
)
from py_clob_client.clob_types import (
    PartialCreateOrderOptions as PartialV1,
)
from py_clob_client.utilities import order_to_json as order_to_json_v1
from py_clob_client_v2.client import ClobClient as ClobClientV2
from py_clob_client_v2.clob_types import (
    ApiCreds as ApiCredsV2,
)
from py_clob_client_v2.clob_types import (
    CreateOrderOptions as CreateOrderOptionsV2,
)
from py_clob_client_v2.clob_types import (
    OrderArgsV2,
    PostOrdersV2Args,
)
from py_clob_client_v2.clob_types import (
    PartialCreateOrderOptions as PartialV2,
)
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

from hourmm_core.polymarket import clob_orders as co
from hourmm_core.polymarket.clob_orders import (
    OrderFormatError,
    OrderSignatureError,
    SignedOrder,
    parse_order_body,
    parse_orders_body,
    verify_order,
)

pytestmark = pytest.mark.timeout(60)

TOKEN_UP = str(2**255 + 12345)  # real token ids are ~77-digit uint256s
CHAIN = 137


def _creds(cls):
    return cls(api_key="test-key-" + Account.create().address[2:10], api_secret="c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
               api_passphrase="pp")


def _v2_body(sig_type: int = 0, *, side: str = "BUY", price: float = 0.55, size: float = 10.0,
             neg_risk: bool = False, tick: str = "0.01", order_type: str = "GTC",
             expiration: int = 0, chain: int = CHAIN) -> tuple[dict, Any, str]:
    acct = Account.create()
    funder = Account.create().address if sig_type in (1, 2, 3) else None
    client = ClobClientV2("http://127.0.0.1:9", chain, key=acct.key.hex(), signature_type=sig_type, funder=funder)
    args = OrderArgsV2(token_id=TOKEN_UP, price=price, size=size, side=side, expiration=expiration)
    signed = client.builder.build_order(args, CreateOrderOptionsV2(tick_size=tick, neg_risk=neg_risk), version=2)
    return order_to_json_v2(signed, "owner-key", order_type), acct, funder or acct.address


def _v1_body(sig_type: int = 0, *, side: str = "BUY", price: float = 0.42, size: float = 7.0,
             neg_risk: bool = False) -> tuple[dict, Any, str]:
    acct = Account.create()
    funder = Account.create().address if sig_type in (1, 2) else None
    client = ClobClientV1("http://127.0.0.1:9", chain_id=CHAIN, key=acct.key.hex(), signature_type=sig_type, funder=funder)
    args = OrderArgsV1(token_id=TOKEN_UP, price=price, size=size, side=side)
    signed = client.builder.create_order(args, CreateOrderOptionsV1(tick_size="0.01", neg_risk=neg_risk))
    return order_to_json_v1(signed, "owner-key", "GTC"), acct, funder or acct.address


# ---------------------------------------------------------------- offline round trips


@pytest.mark.parametrize("sig_type", [0, 1, 2])
@pytest.mark.parametrize("neg_risk", [False, True])
def test_v2_builder_orders_verify(sig_type: int, neg_risk: bool) -> None:
    body, acct, maker = _v2_body(sig_type, neg_risk=neg_risk)
    order = parse_order_body(body)
    assert order.version == 2
    assert order.signature_type == sig_type
    assert order.maker == maker and order.signer == acct.address
    assert order.taker is None and order.nonce is None and order.fee_rate_bps is None
    assert order.metadata == co.BYTES32_ZERO and order.builder == co.BYTES32_ZERO
    assert order.timestamp > 1_700_000_000_000  # ms
    v = verify_order(order, chain_id=CHAIN, neg_risk=neg_risk, expected_signer=acct.address)
    assert v.recovered == acct.address
    assert v.domain.neg_risk is neg_risk and v.domain.version == 2
    assert v.order_hash.startswith("0x") and len(v.order_hash) == 66
    # neg_risk unknown: both exchanges tried, the right one reported
    assert verify_order(order, chain_id=CHAIN).domain.neg_risk is neg_risk
    # wrong market flag -> different verifying contract -> invalid signature
    with pytest.raises(OrderSignatureError, match="invalid signature"):
        verify_order(order, chain_id=CHAIN, neg_risk=not neg_risk)


def test_v2_order_hash_matches_client_builder() -> None:
    acct = Account.create()
    client = ClobClientV2("http://127.0.0.1:9", CHAIN, key=acct.key.hex())
    signed = client.builder.build_order(
        OrderArgsV2(token_id=TOKEN_UP, price=0.3, size=5, side="SELL"),
        CreateOrderOptionsV2(tick_size="0.01", neg_risk=False), version=2)
    from py_clob_client_v2.config import get_contract_config
    from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2
    b = ExchangeOrderBuilderV2(get_contract_config(CHAIN).exchange_v2, CHAIN, client.signer)
    want = b.build_order_hash(b.build_order_typed_data(signed))
    v = verify_order(parse_order_body(order_to_json_v2(signed, "k", "GTC")), chain_id=CHAIN)
    assert v.order_hash == want


def test_v2_poly_1271_wrapped_signature() -> None:
    body, acct, wallet = _v2_body(3)
    order = parse_order_body(body)
    assert order.signature_type == 3 and order.maker == order.signer == wallet
    assert len(bytes.fromhex(order.signature[2:])) > 65
    v = verify_order(order, chain_id=CHAIN, neg_risk=False, expected_signer=acct.address)
    assert v.recovered == acct.address  # wallet owner EOA
    with pytest.raises(OrderSignatureError):
        verify_order(order, chain_id=CHAIN, expected_signer=Account.create().address)
    bad = copy.deepcopy(body)
    bad["order"]["takerAmount"] = str(int(bad["order"]["takerAmount"]) + 1)
    with pytest.raises(OrderSignatureError):
        verify_order(parse_order_body(bad), chain_id=CHAIN, expected_signer=acct.address)
    # POLY_1271 is V2-only
    v1ish = copy.deepcopy(body)
    for k in ("timestamp", "metadata", "builder"):
        v1ish["order"].pop(k)
    v1ish["order"].update(taker=co.ZERO_ADDRESS, nonce="0", feeRateBps="0")
    with pytest.raises(OrderFormatError, match="signatureType 3"):
        parse_order_body(v1ish)


@pytest.mark.parametrize("sig_type", [0, 1, 2])
@pytest.mark.parametrize("neg_risk", [False, True])
def test_v1_builder_orders_verify(sig_type: int, neg_risk: bool) -> None:
    body, acct, maker = _v1_body(sig_type, neg_risk=neg_risk)
    order = parse_order_body(body)
    assert order.version == 1
    assert order.timestamp is None and order.metadata is None
    assert order.taker == co.ZERO_ADDRESS and order.nonce == 0 and order.fee_rate_bps == 0
    assert order.maker == maker and order.signer == acct.address
    v = verify_order(order, chain_id=CHAIN, neg_risk=neg_risk, expected_signer=acct.address)
    assert v.recovered == acct.address and v.domain.version == 1
    with pytest.raises(OrderSignatureError, match="order_version_mismatch"):
        verify_order(order, chain_id=CHAIN, allowed_versions=(2,))


def test_v1_order_from_v2_package_verifies() -> None:
    acct = Account.create()
    client = ClobClientV2("http://127.0.0.1:9", CHAIN, key=acct.key.hex())
    signed = client.builder.build_order(
        OrderArgsV2(token_id=TOKEN_UP, price=0.61, size=3, side="BUY"),
        CreateOrderOptionsV2(tick_size="0.01", neg_risk=False), version=1)
    from py_clob_client_v2.order_utils.model.order_data_v1 import order_to_json_v1 as v2pkg_v1_json
    order = parse_order_body(v2pkg_v1_json(signed, "k", "GTC"))
    assert order.version == 1
    assert verify_order(order, chain_id=CHAIN, neg_risk=False).recovered == acct.address


@pytest.mark.parametrize(
    "side,price,size,maker_amt,taker_amt",
    [("BUY", 0.55, 10.0, 5_500_000, 10_000_000), ("SELL", 0.55, 10.0, 10_000_000, 5_500_000),
     ("BUY", 0.07, 123.45, 8_641_500, 123_450_000), ("SELL", 0.99, 5.0, 5_000_000, 4_950_000)],
)
def test_price_and_size_from_amounts(side: str, price: float, size: float, maker_amt: int, taker_amt: int) -> None:
    body, _, _ = _v2_body(side=side, price=price, size=size)
    order = parse_order_body(body)
    assert (order.maker_amount, order.taker_amount) == (maker_amt, taker_amt)
    assert order.side == side and order.is_buy is (side == "BUY")
    assert order.price == pytest.approx(price, abs=1e-12)
    assert order.size == pytest.approx(size, abs=1e-12)
    assert order.price_on_tick("0.01")
    assert not order.price_on_tick("0.1") or price in (0.1 * k for k in range(1, 10))


def test_tick_0001_price_on_grid() -> None:
    body, _, _ = _v2_body(price=0.123, size=20, tick="0.001")
    order = parse_order_body(body)
    assert order.price == pytest.approx(0.123)
    assert order.price_on_tick("0.001") and not order.price_on_tick("0.01")


# ---------------------------------------------------------------- tampering / wrong signer


@pytest.mark.parametrize("field,mutate", [
    ("makerAmount", lambda v: str(int(v) + 1)),
    ("takerAmount", lambda v: str(int(v) - 1)),
    ("tokenId", lambda v: str(int(v) + 1)),
    ("salt", lambda v: v + 1),
    ("side", lambda v: "SELL" if v == "BUY" else "BUY"),
    ("timestamp", lambda v: str(int(v) + 1)),
    ("expiration", lambda v: "1999999999"),
    ("metadata", lambda v: "0x" + "01" * 32),
    ("builder", lambda v: "0x" + "02" * 32),
])
def test_tampered_v2_order_rejected(field: str, mutate) -> None:
    body, acct, _ = _v2_body(1)
    ok = verify_order(parse_order_body(body), chain_id=CHAIN)
    assert ok.recovered == acct.address
    bad = copy.deepcopy(body)
    bad["order"][field] = mutate(bad["order"][field])
    if field == "expiration":
        # expiration is not part of the V2 signed struct: changing it must not
        # silently pass as a different order -> the struct is unchanged, so the
        # signature still verifies; record that behaviour explicitly.
        assert verify_order(parse_order_body(bad), chain_id=CHAIN).recovered == acct.address
        return
    with pytest.raises(OrderSignatureError, match="invalid signature"):
        verify_order(parse_order_body(bad), chain_id=CHAIN)


def test_tampered_v1_fee_rate_rejected() -> None:
    body, _, _ = _v1_body(0)
    bad = copy.deepcopy(body)
    bad["order"]["feeRateBps"] = "100"
    with pytest.raises(OrderSignatureError, match="invalid signature"):
        verify_order(parse_order_body(bad), chain_id=CHAIN)


def test_wrong_signer_rejected() -> None:
    body, acct, funder = _v2_body(2)
    other = Account.create().address
    bad = copy.deepcopy(body)
    bad["order"]["signer"] = other  # claims another signer; signature is acct's
    with pytest.raises(OrderSignatureError, match="invalid signature"):
        verify_order(parse_order_body(bad), chain_id=CHAIN)
    # right signature, but the API key belongs to someone else
    with pytest.raises(OrderSignatureError, match="API key"):
        verify_order(parse_order_body(body), chain_id=CHAIN, expected_signer=other)
    with pytest.raises(OrderSignatureError, match="funder"):
        verify_order(parse_order_body(body), chain_id=CHAIN, expected_maker=other)
    assert verify_order(parse_order_body(body), chain_id=CHAIN, expected_maker=funder.lower()).recovered == acct.address
    # signature made by a different key over the same order
    forged = copy.deepcopy(body)
    forged_body, _, _ = _v2_body(2)
    forged["order"]["signature"] = forged_body["order"]["signature"]
    with pytest.raises(OrderSignatureError):
        verify_order(parse_order_body(forged), chain_id=CHAIN)


def test_eoa_maker_must_equal_signer() -> None:
    body, _, _ = _v2_body(0)
    bad = copy.deepcopy(body)
    bad["order"]["maker"] = Account.create().address
    with pytest.raises(OrderSignatureError, match="maker must equal signer"):
        verify_order(parse_order_body(bad), chain_id=CHAIN)


def test_unknown_chain_rejected() -> None:
    body, _, _ = _v2_body(0)
    with pytest.raises(OrderSignatureError, match="chain id"):
        verify_order(parse_order_body(body), chain_id=1)


def test_amoy_chain_orders_verify() -> None:
    body, acct, _ = _v2_body(0, chain=80002, neg_risk=True)
    v = verify_order(parse_order_body(body), chain_id=80002)
    assert v.recovered == acct.address and v.domain.neg_risk
    with pytest.raises(OrderSignatureError):
        verify_order(parse_order_body(body), chain_id=CHAIN)


# ---------------------------------------------------------------- malformed input


def _good() -> dict:
    return _v2_body(0)[0]


def _set(path: str, value: Any):
    def f(b: dict) -> dict:
        b = copy.deepcopy(b)
        tgt = b
        keys = path.split(".")
        for k in keys[:-1]:
            tgt = tgt[k]
        if value is _DEL:
            tgt.pop(keys[-1])
        else:
            tgt[keys[-1]] = value
        return b
    return f


_DEL = object()


@pytest.mark.parametrize("mutate,match", [
    (lambda b: [b], "JSON object"),
    (_set("order", _DEL), "missing 'order'"),
    (_set("order", "x"), "missing 'order'"),
    (_set("owner", _DEL), "owner"),
    (_set("orderType", "IOC"), "orderType"),
    (_set("postOnly", "yes"), "booleans"),
    (lambda b: _set("orderType", "FOK")(_set("postOnly", True)(b)), "post-only"),
    (_set("orderType", "GTD"), "GTD orders need"),
    (_set("order.signature", _DEL), "missing field"),
    (_set("order.salt", -1), "salt"),
    (_set("order.salt", 1.5), "salt"),
    (_set("order.salt", True), "salt"),
    (_set("order.makerAmount", "12a"), "makerAmount"),
    (_set("order.makerAmount", "0"), "makerAmount must be > 0"),
    (_set("order.takerAmount", str(2**256)), "out of range"),
    (_set("order.tokenId", "0"), "tokenId"),
    (_set("order.side", 0), "side"),
    (_set("order.side", "buy"), "side"),
    (_set("order.signatureType", 4), "signatureType 4"),
    (_set("order.signatureType", "0"), None),  # numeric strings accepted
    (_set("order.maker", "0x1234"), "maker"),
    (_set("order.signer", "0x" + "zz" * 20), "signer is not hex"),
    (_set("order.metadata", "0x00"), "metadata"),
    (_set("order.builder", _DEL), "V2 order missing"),
    (_set("order.nonce", "0"), "mixes V1 fields"),
    (_set("order.signature", "0xabcd"), "65 bytes"),
    (_set("order.signature", "deadbeef"), "0x-prefixed"),
    (_set("order.signature", "0x" + "gg" * 65), "not hex"),
])
def test_malformed_orders(mutate, match) -> None:
    bad = mutate(_good())
    if match is None:
        assert parse_order_body(bad).signature_type == 0
        return
    with pytest.raises(OrderFormatError, match=match):
        parse_order_body(bad)


def test_neither_version_and_bad_json() -> None:
    b = _good()
    for k in ("timestamp", "metadata", "builder"):
        b["order"].pop(k)
    with pytest.raises(OrderFormatError, match="neither V2"):
        parse_order_body(b)
    with pytest.raises(OrderFormatError, match="not JSON"):
        parse_order_body(b'{"order": ')
    with pytest.raises(OrderFormatError, match="UTF-8"):
        parse_order_body(b"\xff\xfe")


def test_json_text_and_bytes_accepted() -> None:
    b = _good()
    s = json.dumps(b, separators=(",", ":"))
    assert parse_order_body(s) == parse_order_body(b) == parse_order_body(s.encode())


def test_orders_batch_keeps_good_orders() -> None:
    good1, good2 = _good(), _v1_body()[0]
    bad = _set("order.side", "HOLD")(_good())
    res = parse_orders_body(json.dumps([good1, bad, good2]))
    assert isinstance(res[0], SignedOrder) and res[0].version == 2
    assert isinstance(res[1], OrderFormatError) and res[1].index == 1 and "side" in res[1].error
    assert isinstance(res[2], SignedOrder) and res[2].version == 1
    with pytest.raises(OrderFormatError, match="JSON list"):
        parse_orders_body(good1)
    with pytest.raises(OrderFormatError, match="empty"):
        parse_orders_body([])
    with pytest.raises(OrderFormatError, match="too many"):
        parse_orders_body([good1] * 16)


# ---------------------------------------------------------------- real clients over loopback


class _FakeClob:
    """Just enough CLOB for create_order/post_order(s): market params + capture bodies."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.bodies: list[tuple[str, Any]] = []
        self.app = web.Application()
        self.app.add_routes([
            web.get("/version", self.h_version),
            web.get("/tick-size", self.h_tick),
            web.get("/neg-risk", self.h_neg),
            web.get("/fee-rate", self.h_fee),
            web.post("/order", self.h_order),
            web.post("/orders", self.h_orders),
        ])

    async def h_version(self, req):
        return web.json_response({"version": self.version})

    async def h_tick(self, req):
        assert req.query["token_id"] == TOKEN_UP
        return web.json_response({"minimum_tick_size": 0.01})

    async def h_neg(self, req):
        return web.json_response({"neg_risk": False})

    async def h_fee(self, req):
        return web.json_response({"base_fee": 0})

    def _reply_order(self, order: SignedOrder) -> dict:
        try:
            v = verify_order(order, chain_id=CHAIN, neg_risk=False)
        except co.ClobOrderError as exc:
            return {"success": False, "errorMsg": exc.error, "orderID": "", "status": ""}
        return {"success": True, "errorMsg": "", "orderID": v.order_hash, "status": "live",
                "makingAmount": "", "takingAmount": "", "transactionsHashes": [], "tradeIDs": []}

    def _reply(self, raw: Any) -> dict:
        try:
            order = parse_order_body(raw)
        except co.ClobOrderError as exc:
            return {"success": False, "errorMsg": exc.error, "orderID": "", "status": ""}
        return self._reply_order(order)

    async def h_order(self, req):
        raw = await req.read()
        self.bodies.append(("order", raw))
        r = self._reply(raw)
        return web.json_response(r, status=200 if r["success"] else 400)

    async def h_orders(self, req):
        raw = await req.read()
        self.bodies.append(("orders", raw))
        out = []
        for item in parse_orders_body(raw):
            if isinstance(item, co.ClobOrderError):
                out.append({"success": False, "errorMsg": item.error})
            else:
                out.append(self._reply_order(item))
        return web.json_response(out)


async def _serve(fake: _FakeClob):
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


async def test_v2_client_posts_verifiable_orders() -> None:
    fake = _FakeClob(version=2)
    runner, url = await _serve(fake)
    try:
        acct = Account.create()
        creds = _creds(ApiCredsV2)
        client = ClobClientV2(url, CHAIN, key=acct.key.hex(), creds=creds, signature_type=0)
        loop = asyncio.get_running_loop()

        def place():
            o1 = client.create_order(OrderArgsV2(token_id=TOKEN_UP, price=0.47, size=12, side="BUY"),
                                     PartialV2(tick_size="0.01", neg_risk=False))
            r1 = client.post_order(o1, "GTC", post_only=True)
            o2 = client.create_order(OrderArgsV2(token_id=TOKEN_UP, price=0.53, size=12, side="SELL"),
                                     PartialV2(neg_risk=False))
            o3 = client.create_order(OrderArgsV2(token_id=TOKEN_UP, price=0.54, size=3, side="SELL"),
                                     PartialV2(neg_risk=False))
            r2 = client.post_orders([PostOrdersV2Args(order=o2, orderType="GTC"),
                                     PostOrdersV2Args(order=o3, orderType="GTC")])
            return r1, r2

        r1, r2 = await loop.run_in_executor(None, place)
        assert r1["success"] is True and r1["orderID"].startswith("0x")
        assert [r["success"] for r in r2] == [True, True]
        kind, raw = fake.bodies[0]
        assert kind == "order"
        order = parse_order_body(raw)
        assert order.version == 2 and order.post_only and order.owner == creds.api_key
        assert order.price == pytest.approx(0.47) and order.size == pytest.approx(12)
        assert verify_order(order, chain_id=CHAIN, neg_risk=False, expected_signer=acct.address,
                            allowed_versions=(2,)).order_hash == r1["orderID"]
        batch = parse_orders_body(fake.bodies[1][1])
        assert [o.side for o in batch] == ["SELL", "SELL"]
        assert [o.price for o in batch] == pytest.approx([0.53, 0.54])
        assert all(isinstance(o, SignedOrder) and o.version == 2 for o in batch)
    finally:
        await runner.cleanup()


async def test_v1_client_posts_verifiable_order_and_v2_only_rejects_it() -> None:
    fake = _FakeClob(version=1)
    runner, url = await _serve(fake)
    try:
        acct = Account.create()
        funder = Account.create().address
        client = ClobClientV1(url, chain_id=CHAIN, key=acct.key.hex(), creds=_creds(ApiCredsV1),
                              signature_type=1, funder=funder)
        loop = asyncio.get_running_loop()

        def place():
            o = client.create_order(OrderArgsV1(token_id=TOKEN_UP, price=0.31, size=9, side="SELL"),
                                    PartialV1(tick_size="0.01"))
            return client.post_order(o, "GTC")

        r = await loop.run_in_executor(None, place)
        assert r["success"] is True
        order = parse_order_body(fake.bodies[0][1])
        assert order.version == 1 and order.signature_type == 1
        assert order.maker == funder and order.signer == acct.address
        assert order.price == pytest.approx(0.31) and order.size == pytest.approx(9)
        assert verify_order(order, chain_id=CHAIN, neg_risk=False).recovered == acct.address
        with pytest.raises(OrderSignatureError, match="order_version_mismatch"):
            verify_order(order, chain_id=CHAIN, allowed_versions=(2,))
    finally:
        await runner.cleanup()


async def test_server_rejects_tampered_wire_body() -> None:
    fake = _FakeClob(version=2)
    runner, url = await _serve(fake)
    try:
        body, _, _ = _v2_body(0)
        body["order"]["makerAmount"] = str(int(body["order"]["makerAmount"]) * 2)
        import aiohttp
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/order", data=json.dumps(body)) as resp:
                assert resp.status == 400
                assert (await resp.json())["errorMsg"] == "invalid signature"
            async with s.post(url + "/order", data=b"{not json") as resp:
                assert resp.status == 400
                assert "not JSON" in (await resp.json())["errorMsg"]
    finally:
        await runner.cleanup()


async def test_v2_client_follows_server_version() -> None:
    """GET /version decides the struct the V2 client signs: version 1 -> V1 orders."""
    fake = _FakeClob(version=1)
    runner, url = await _serve(fake)
    try:
        acct = Account.create()
        client = ClobClientV2(url, CHAIN, key=acct.key.hex(), creds=_creds(ApiCredsV2))
        loop = asyncio.get_running_loop()

        def place():
            o = client.create_order(OrderArgsV2(token_id=TOKEN_UP, price=0.2, size=6, side="BUY"),
                                    PartialV2(neg_risk=False))
            return client.post_order(o, "GTC")

        r = await loop.run_in_executor(None, place)
        order = parse_order_body(fake.bodies[0][1])
        assert order.version == 1 and r["success"] is True
        with pytest.raises(OrderSignatureError, match="order_version_mismatch"):
            verify_order(order, chain_id=CHAIN, allowed_versions=(2,))
    finally:
        await runner.cleanup()


def test_v2_digest_by_concatenation_is_the_eip712_encoders(monkeypatch):
    """verify_order hashes V2 orders by concatenating their 11 words (speed); the digest must be
    the one eth-account's generic EIP-712 encoder gives, for every signature type, both exchanges,
    both sides, random amounts / salts / timestamps and non-zero metadata / builder."""
    import random

    from eth_account.messages import encode_typed_data
    from eth_utils import keccak

    rnd = random.Random(20261202)
    n = 0
    for sig_type in (0, 1, 2, 3):
        for neg_risk in (False, True):
            for side in ("BUY", "SELL"):
                body, _acct, _maker = _v2_body(sig_type, side=side, neg_risk=neg_risk,
                                               price=rnd.choice((0.01, 0.37, 0.5, 0.99)),
                                               size=rnd.choice((5.0, 12.5, 1234.0)))
                so = parse_order_body(body)
                variants = [so, dataclasses.replace(so, salt=rnd.getrandbits(255), timestamp=rnd.getrandbits(44),
                                                    metadata="0x" + rnd.getrandbits(256).to_bytes(32, "big").hex(),
                                                    builder="0x" + rnd.getrandbits(256).to_bytes(32, "big").hex(),
                                                    maker_amount=rnd.getrandbits(64), taker_amount=rnd.getrandbits(64))]
                for o in variants:
                    for dom in co.exchange_domains(2, CHAIN):
                        msg = encode_typed_data(full_message=co.order_typed_data(o, dom))
                        want = keccak(b"\x19" + msg.version + msg.header + msg.body)
                        assert co._digest(o, dom)[1] == want
                        n += 1
    assert n == 4 * 2 * 2 * 2 * len(co.exchange_domains(2, CHAIN))
    # a field the concatenation does not cover (a short bytes32) is left to the generic encoder
    odd = dataclasses.replace(so, metadata="0x" + "ab" * 31)
    dom = co.exchange_domains(2, CHAIN)[0]
    with pytest.raises(ValueError):
        co._v2_struct_hash(odd)
    msg, digest = co._digest(odd, dom)
    assert msg is not None and digest == keccak(b"\x19" + msg.version + msg.header + msg.body)
    assert so.signature_type == 3   # the last order drawn: a POLY_1271 one; its check fails cleanly
    with pytest.raises(OrderSignatureError):
        verify_order(odd, chain_id=CHAIN)


def test_signature_recovery_is_eth_accounts():
    """_recover_ecdsa takes the common signature shape straight to libsecp256k1; for every shape
    (valid, high-s, v 0/1/27/28/29/37/38, r or s 0 or >= n, garbage, wrong length) it must give what
    eth-account's Account._recover_hash gives (an exception there = None)."""
    import random

    rnd = random.Random(1202)
    n_curve = co._SECP256K1_N

    def ref(digest, sig):
        try:
            return Account._recover_hash(digest, signature=sig)
        except Exception:  # noqa: BLE001
            return None

    cases = []
    for _ in range(12):
        acct = Account.create()
        digest = rnd.getrandbits(256).to_bytes(32, "big")
        signed = Account._sign_hash(digest, acct.key) if hasattr(Account, "_sign_hash") else \
            Account.unsafe_sign_hash(digest, acct.key)
        sig = bytes(signed.signature)
        r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
        cases.append((digest, sig, acct.address))
        cases.append((digest, r + (n_curve - s).to_bytes(32, "big") + bytes((55 - v,)), None))   # high-s twin
        for vv in (0, 1, 29, 37, 38):
            cases.append((digest, sig[:64] + bytes((vv,)), None))
        cases.append((digest, bytes(32) + sig[32:], None))                                   # r = 0
        cases.append((digest, sig[:32] + n_curve.to_bytes(32, "big") + sig[64:], None))     # s = n
        cases.append((digest, rnd.getrandbits(512).to_bytes(64, "big") + bytes((27,)), None))
        cases.append((digest, sig[:64], None))
        cases.append((digest, sig + b"\x00", None))
    recovered = 0
    for digest, sig, who in cases:
        got = co._recover_ecdsa(digest, sig)
        assert got == ref(digest, sig), (sig.hex(), got)
        if who is not None:
            assert got == who
            recovered += 1
    assert recovered == 12
