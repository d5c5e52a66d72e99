"""Executor with the real py_clob_client_v2 over loopback against a small scripted CLOB.

The server verifies what the client really sends: L1 headers for key derivation, the
L2 HMAC on every trading call, and the EIP-712 V2 order signature (via
hourmm_core.polymarket.clob_orders, an independent implementation), so the executor's
locally computed order id is checked against the exchange's.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets

import pytest
from aiohttp import web
from eth_account import Account

from hourmm_core.config import Credentials
from hourmm_core.polymarket.clob_orders import parse_and_verify
from hourmm_core.polymarket.executor import (
    AuthError,
    Executor,
    OrderRequest,
    RateLimited,
    Rejected,
    TransientError,
    resolve_signature_type,
)

pytestmark = pytest.mark.timeout(60)
TOKEN = "7" * 70
CHAIN = 137


class Clob:
    def __init__(self):
        self.key = "k-" + secrets.token_hex(8)
        self.secret = base64.urlsafe_b64encode(os.urandom(32)).decode()
        self.passphrase = "p-" + secrets.token_hex(8)
        self.orders = {}          # id -> order dict
        self.posts = 0
        self.fail_next_post = None   # (status, body, store_first)
        self.hb = 0
        self.derive_calls = 0
        self.bad_auth = False
        self.seen_bodies = []
        self.fail_lookups = 0
        self.match_next = False
        self.trade_polls = 0

    def _l2(self, request, body: str):
        h = request.headers
        if self.bad_auth or h.get("POLY_API_KEY") != self.key or h.get("POLY_PASSPHRASE") != self.passphrase:
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Unauthorized/Invalid api key"}),
                                       content_type="application/json")
        msg = f"{h['POLY_TIMESTAMP']}{request.method}{request.path}{body}"
        want = base64.urlsafe_b64encode(hmac.new(base64.urlsafe_b64decode(self.secret), msg.encode(),
                                                 hashlib.sha256).digest()).decode()
        if h.get("POLY_SIGNATURE") != want:
            raise web.HTTPUnauthorized(text=json.dumps({"error": "bad hmac"}), content_type="application/json")

    async def version(self, r):
        return web.json_response({"version": 2})

    async def tick(self, r):
        return web.json_response({"minimum_tick_size": 0.01})

    async def derive(self, r):
        self.derive_calls += 1
        if not r.headers.get("POLY_SIGNATURE") or not r.headers.get("POLY_ADDRESS"):
            return web.json_response({"error": "no L1"}, status=401)
        return web.json_response({"apiKey": self.key, "secret": self.secret, "passphrase": self.passphrase})

    async def post_order(self, r):
        body = await r.text()
        self._l2(r, body)
        self.posts += 1
        self.seen_bodies.append(body)
        try:
            v = parse_and_verify(body, chain_id=CHAIN, neg_risk=False, allowed_versions=(2,))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        payload = json.loads(body)
        if v.order_hash in self.orders:
            return web.json_response({"error": "order already exists"}, status=400)
        store = True
        if self.fail_next_post is not None:
            status, rbody, store = self.fail_next_post
            self.fail_next_post = None
            if store:
                self.orders[v.order_hash] = self._order(v, payload)
            return web.json_response(rbody, status=status)
        if payload["orderType"] not in ("GTC", "GTD"):
            return web.json_response({"error": "unsupported"}, status=400)
        self.orders[v.order_hash] = self._order(v, payload)
        if self.match_next:   # matched, trade not yet mined: tradeIDs without transactionsHashes
            self.match_next = False
            self.orders[v.order_hash]["status"] = "MATCHED"
            return web.json_response({"success": True, "errorMsg": "", "orderID": v.order_hash,
                                      "status": "matched", "tradeIDs": ["t-unmined"], "transactionsHashes": []})
        return web.json_response({"success": True, "errorMsg": "", "orderID": v.order_hash, "status": "live",
                                  "postOnly": payload.get("postOnly")})

    def _order(self, v, payload):
        o = v.order
        return {"id": v.order_hash, "status": "LIVE", "asset_id": o.token_id, "market": "0xc",
                "side": "BUY" if o.is_buy else "SELL", "price": str(o.price), "original_size": str(o.size),
                "size_matched": "0", "owner": self.key, "order_type": payload["orderType"],
                "post_only": payload.get("postOnly")}

    async def post_orders(self, r):
        body = await r.text()
        self._l2(r, body)
        out = []
        for item in json.loads(body):
            v = parse_and_verify(item, chain_id=CHAIN, neg_risk=False)
            self.orders[v.order_hash] = self._order(v, item)
            out.append({"success": True, "orderID": v.order_hash, "status": "live"})
        return web.json_response(out)

    def _lookup_fault(self):
        if self.fail_lookups > 0:
            self.fail_lookups -= 1
            raise web.HTTPServiceUnavailable(text=json.dumps({"error": "busy"}), content_type="application/json")

    async def get_orders(self, r):
        self._l2(r, "")
        if self.fail_lookups > 0 and r.query.get("asset_id"):
            self._lookup_fault()
        data = [o for o in self.orders.values() if o["status"] == "LIVE"
                and r.query.get("asset_id", o["asset_id"]) == o["asset_id"]]
        return web.json_response({"data": data, "next_cursor": "LTE=", "limit": 100, "count": len(data)})

    async def get_order(self, r):
        self._l2(r, "")
        self._lookup_fault()
        o = self.orders.get(r.match_info["oid"])
        return web.json_response(o if o else None)

    async def cancel(self, r):
        body = await r.text()
        self._l2(r, body)
        oid = json.loads(body)["orderID"]
        if oid in self.orders and self.orders[oid]["status"] == "LIVE":
            self.orders[oid]["status"] = "CANCELED"
            return web.json_response({"canceled": [oid], "not_canceled": {}})
        return web.json_response({"canceled": [], "not_canceled": {oid: "order not found"}})

    async def cancel_many(self, r):
        body = await r.text()
        self._l2(r, body)
        done, nc = [], {}
        for oid in json.loads(body):
            if oid in self.orders and self.orders[oid]["status"] == "LIVE":
                self.orders[oid]["status"] = "CANCELED"
                done.append(oid)
            else:
                nc[oid] = "order not found"
        return web.json_response({"canceled": done, "not_canceled": nc})

    async def cancel_all(self, r):
        self._l2(r, "")
        ids = [k for k, o in self.orders.items() if o["status"] == "LIVE"]
        for k in ids:
            self.orders[k]["status"] = "CANCELED"
        return web.json_response({"canceled": ids, "not_canceled": {}})

    async def cancel_market(self, r):
        body = await r.text()
        self._l2(r, body)
        aid = json.loads(body).get("asset_id")
        ids = [k for k, o in self.orders.items() if o["status"] == "LIVE" and o["asset_id"] == aid]
        for k in ids:
            self.orders[k]["status"] = "CANCELED"
        return web.json_response({"canceled": ids, "not_canceled": {}})

    async def trades(self, r):
        self._l2(r, "")
        self.trade_polls += 1
        return web.json_response({"data": [{"id": "t1", "status": "MATCHED"}], "next_cursor": "LTE="})

    async def heartbeat(self, r):
        body = await r.text()
        self._l2(r, body)
        self.hb += 1
        return web.json_response({"status": "ok", "heartbeat_id": "hb-1"})

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/version", self.version)
        app.router.add_get("/tick-size", self.tick)
        app.router.add_post("/auth/api-key", self.derive)
        app.router.add_get("/auth/derive-api-key", self.derive)
        app.router.add_post("/order", self.post_order)
        app.router.add_post("/orders", self.post_orders)
        app.router.add_delete("/order", self.cancel)
        app.router.add_delete("/orders", self.cancel_many)
        app.router.add_delete("/cancel-all", self.cancel_all)
        app.router.add_delete("/cancel-market-orders", self.cancel_market)
        app.router.add_get("/data/orders", self.get_orders)
        app.router.add_get("/data/order/{oid}", self.get_order)
        app.router.add_get("/data/trades", self.trades)
        app.router.add_post("/v1/heartbeats", self.heartbeat)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *a):
        await self.runner.cleanup()


def eoa_creds(sig_type=1, **api):
    acct = Account.create()
    return Credentials(acct.key.hex() if acct.key.hex().startswith("0x") else "0x" + acct.key.hex(),
                       acct.address, sig_type, **api)


def req(key, price=0.45, size=10.0, side="BUY", **kw):
    return OrderRequest(client_key=key, token_id=TOKEN, side=side, price=price, size=size, **kw)


def test_signature_type_mapping():
    a = Account.create().address
    b = Account.create().address
    assert resolve_signature_type(1, a, a)[0] == 0     # guide: 1 = EOA
    assert resolve_signature_type(1, a, b)[0] == 1     # funder differs -> Polymarket proxy
    assert resolve_signature_type(2, a, b)[0] == 2
    assert resolve_signature_type(0, a, a)[0] == 0
    for bad in ((0, a, b), (2, a, a), (5, a, b)):
        with pytest.raises(ValueError):
            resolve_signature_type(*bad)


async def test_derive_place_cancel_heartbeat_no_secret_leak(caplog):
    caplog.set_level(logging.DEBUG)
    async with Clob() as clob:
        creds = eoa_creds()
        ex = Executor(clob.url, CHAIN, creds, retry_backoff_s=0.01)
        try:
            assert await ex.start() == clob.key and clob.derive_calls >= 1
            assert ex.signature_type == 0
            ack = await ex.place(req("c1"))
            assert ack.success and ack.order_id in clob.orders and ack.status == "live"
            assert "order_id_differs_from_local_hash" not in ex.stats   # local EIP-712 hash == exchange's
            assert json.loads(clob.seen_bodies[-1])["postOnly"] is True
            assert json.loads(clob.seen_bodies[-1])["orderType"] == "GTC"
            # same client key -> same ack, no second POST
            posts = clob.posts
            assert (await ex.place(req("c1"))).order_id == ack.order_id and clob.posts == posts
            gtd = await ex.place(req("c2", price=0.40, expiration_s=4_000_000_000))
            assert clob.orders[gtd.order_id]["order_type"] == "GTD"
            opens = await ex.open_orders(asset_id=TOKEN)
            assert {o["id"] for o in opens} == {ack.order_id, gtd.order_id}
            res = await ex.cancel(ack.order_id)
            assert res.canceled == (ack.order_id,)
            assert (await ex.cancel("0xnope")).not_canceled == {"0xnope": "order not found"}
            many = await ex.place_many([req("b1", price=0.30), req("b2", price=0.31), req("bad", price=0.333)])
            assert many[0].success and many[1].success and isinstance(many[2], Rejected)
            assert (await ex.cancel_market(asset_id=TOKEN)).canceled
            assert await ex.open_orders() == []
            await ex.place(req("c3", price=0.2))
            assert len((await ex.cancel_all()).canceled) == 1
            # a matched order is acked at once: no blocking poll of /data/trades for on-chain hashes
            clob.match_next = True
            m = await ex.place(req("taker", price=0.6, post_only=False))
            assert m.status == "matched" and clob.trade_polls == 0
            assert json.loads(clob.seen_bodies[-1])["postOnly"] is False
            assert (await ex.trades())[0]["id"] == "t1"
            assert await ex.heartbeat() and ex.heartbeat_ok and clob.hb == 1
            ex.start_heartbeat(0.05)

            async def three_beats() -> None:   # wait on the condition (issue 13 bug 7), not a count in a window
                while clob.hb < 3:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(three_beats(), 60)   # only a safety net against a hang
            await ex.stop_heartbeat()
            assert clob.hb >= 3
        finally:
            await ex.close()
    text = caplog.text + repr(ex)
    for s in (creds.private_key, creds.private_key[2:], clob.secret, clob.passphrase):
        assert s not in text


async def test_ambiguous_post_is_not_double_posted():
    async with Clob() as clob:
        ex = Executor(clob.url, CHAIN, eoa_creds(), retry_backoff_s=0.01)
        try:
            await ex.start()
            # exchange stores the order but the reply is a 503: outcome unknown to us
            clob.fail_next_post = (503, {"error": "upstream timeout"}, True)
            ack = await ex.place(req("amb"))
            assert ack.recovered and ack.order_id in clob.orders
            assert clob.posts == 1 and len(clob.orders) == 1
            assert ex.stats["post_recovered"] == 1
            # stored + 503 while lookups fail too: the re-post is refused as a duplicate, and the
            # executor looks again instead of reporting a reject for a live order
            clob.fail_next_post = (503, {"error": "upstream timeout"}, True)
            clob.fail_lookups = 2
            ack3 = await ex.place(req("amb3", price=0.41))
            assert ack3.recovered and ack3.order_id in clob.orders and clob.posts == 3
            # 503 where the exchange did NOT store it: the same signed order is re-sent once
            clob.fail_next_post = (503, {"error": "busy"}, False)
            ack2 = await ex.place(req("amb2", price=0.44))
            assert not ack2.recovered and clob.posts == 5 and len(clob.orders) == 3
        finally:
            await ex.close()


async def test_error_mapping():
    async with Clob() as clob:
        ex = Executor(clob.url, CHAIN, eoa_creds(), post_retries=0)
        try:
            with pytest.raises(Exception):
                await ex.place(req("early"))      # not started
            await ex.start()
            clob.fail_next_post = (400, {"error": "invalid post-only order: order crosses book"}, False)
            with pytest.raises(Rejected, match="crosses"):
                await ex.place(req("x1"))
            clob.fail_next_post = (429, {"error": "Too Many Requests, retry in 2s"}, False)
            with pytest.raises(RateLimited) as ei:
                await ex.place(req("x2"))
            assert ei.value.retry_after_s == 2.0
            with pytest.raises(RateLimited):      # the gate stays closed: refused locally, nothing sent
                await ex.place(req("x2b"))
            await asyncio.sleep(ex.rate_gate.remaining())
            clob.fail_next_post = (200, {"success": False, "errorMsg": "not enough balance / allowance"}, False)
            with pytest.raises(Rejected, match="balance"):
                await ex.place(req("x3"))
            with pytest.raises(Rejected, match="tick"):
                await ex.place(req("x4", price=0.455))
            with pytest.raises(Rejected):
                await ex.place(req("x5", side="HOLD"))
            clob.bad_auth = True
            with pytest.raises(AuthError):
                await ex.open_orders()
            assert not ex.rest_ok
            assert not await ex.heartbeat() and not ex.heartbeat_ok
        finally:
            await ex.close()


async def test_given_api_creds_are_verified_and_bad_ones_raise_auth_error():
    async with Clob() as clob:
        good = eoa_creds(api_key=clob.key, api_secret=clob.secret, api_passphrase=clob.passphrase)
        ex = Executor(clob.url, CHAIN, good)
        try:
            assert await ex.start() == clob.key and clob.derive_calls == 0
        finally:
            await ex.close()
        bad = eoa_creds(api_key="nope", api_secret=clob.secret, api_passphrase="nope-pass")
        ex2 = Executor(clob.url, CHAIN, bad)
        try:
            with pytest.raises(AuthError):
                await ex2.start()
        finally:
            await ex2.close()


async def test_unreachable_clob_is_transient():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ex = Executor(f"http://127.0.0.1:{port}", CHAIN, eoa_creds(api_key="k", api_secret="c2VjcmV0",
                                                                api_passphrase="pp"))
    try:
        with pytest.raises(TransientError):
            await ex.start()
    finally:
        await ex.close()


async def test_trader_adapter_interface():
    from hourmm_core.polymarket.trader_executor import TraderExecutor

    async with Clob() as clob:
        tx = TraderExecutor.from_config(clob.url, CHAIN, eoa_creds(), retry_backoff_s=0.01)
        try:
            await tx.start()
            assert tx.api_creds == (clob.key, clob.secret, clob.passphrase)
            r = await tx.place(TOKEN, "BUY", 0.45, 5.0, tick_size=0.01, neg_risk=False, post_only=True,
                               client_id="o1")
            assert r.ok and r.order_id in clob.orders and r.status == "live"
            bad = await tx.place(TOKEN, "BUY", 0.455, 5.0, tick_size=0.01, neg_risk=False, post_only=True,
                                 client_id="o2")
            assert not bad.ok and "tick" in bad.error and not bad.auth_failed
            done, failed = await tx.cancel([r.order_id, "0xmissing"])
            assert done == [r.order_id] and "0xmissing" in failed
            assert [o["id"] for o in await tx.open_orders()] == []
            assert await tx.cancel_all() is True
            assert await tx.heartbeat() is True
            clob.bad_auth = True
            r3 = await tx.place(TOKEN, "SELL", 0.55, 5.0, tick_size="0.01", neg_risk=False, post_only=True,
                                client_id="o3")
            assert not r3.ok and r3.auth_failed and "REST authentication failed" in r3.error
            assert await tx.cancel_all() is False
        finally:
            await tx.close()
