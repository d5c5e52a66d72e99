"""The simulator's CLOB REST routes: public market data, API-key auth, orders, cancels, reads,
balances and the heartbeat, answering in the real CLOB's shapes and error strings.

Split from :mod:`hourmm_core.sim.polymarket.server` (one job per file); :class:`ClobRoutes` is a
mixin of :class:`~hourmm_core.sim.polymarket.server.PolymarketSim` and uses its state.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from hourmm_core.polymarket import clob_orders
from hourmm_core.sim.polymarket.auth import AuthError
from hourmm_core.sim.polymarket.engine import (
    ERR_NOT_READY,
    SIZE_SCALE,
    USDC_SCALE,
    Market,
    _fmt,
)
from hourmm_core.sim.polymarket.gamma import iso as _iso

log = logging.getLogger("hourmm.sim.polymarket")
MARKETS_PAGE = 500   # GET /markets page size (the real CLOB pages its list too)


INITIAL_CURSOR = "MA=="
END_CURSOR = "LTE="
MAX_UINT = str(2**256 - 1)
GTD_SECURITY_MS = 60_000



def _cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        v = int(base64.b64decode(cursor.encode(), validate=True).decode())
    except Exception:
        raise ValueError(f"invalid next_cursor {cursor!r}") from None
    if v < 0:
        raise ValueError("next_cursor is the end cursor")
    return v


def _page(rows: list[Any], off: int, n: int) -> tuple[list[Any], dict[str, Any]]:
    """One page of a CLOB list and its envelope fields (cursor = base64 offset, ``LTE=`` = the end)."""
    page = rows[off:off + n]
    nxt = _cursor(off + n) if off + n < len(rows) else END_CURSOR
    return page, {"next_cursor": nxt, "limit": n, "count": len(page)}


class ClobRoutes:
    """CLOB REST handlers (mixin of PolymarketSim)."""

    # ------------------------------------------------------------------ public endpoints
    async def h_ok(self, request: web.Request) -> web.Response:
        return web.json_response("OK")

    async def h_time(self, request: web.Request) -> web.Response:
        return web.json_response((self.now_ms() + int(self.faults["clock_skew_ms"])) // 1000)

    async def h_version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": self.cfg.version})

    async def h_tick(self, request: web.Request) -> web.Response:
        _, m = self._token(request)
        return web.json_response({"minimum_tick_size": m.tick_size})

    async def h_negrisk(self, request: web.Request) -> web.Response:
        _, m = self._token(request)
        return web.json_response({"neg_risk": m.neg_risk})

    async def h_fee(self, request: web.Request) -> web.Response:
        _, m = self._token(request)
        return web.json_response({"base_fee": m.fee_rate_bps})

    def _book_json(self, t: str, m: Market) -> dict[str, Any]:
        bk = self.ex.book(t)
        # Real CLOB order: bids ascending and asks descending (best price LAST).
        bids = [{"price": _fmt(p), "size": _fmt(s)} for p, s in reversed(bk["bids"])]
        asks = [{"price": _fmt(p), "size": _fmt(s)} for p, s in reversed(bk["asks"])]
        ltp = m.last_trade_price
        if ltp is not None and t == m.down_token:
            ltp = 1.0 - ltp
        payload = {"market": m.condition_id, "asset_id": t, "timestamp": str(self.now_ms()), "hash": "",
                   "bids": bids, "asks": asks, "min_order_size": _fmt(m.min_size), "tick_size": _fmt(m.tick_size),
                   "neg_risk": m.neg_risk, "last_trade_price": _fmt(round(ltp, 4)) if ltp is not None else "0.5"}
        payload["hash"] = hashlib.sha1(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
                                       .encode()).hexdigest()
        return payload

    async def h_book(self, request: web.Request) -> web.Response:
        t, m = self._token(request)
        return web.json_response(self._book_json(t, m))

    async def h_books(self, request: web.Request) -> web.Response:
        body = self._json_body(await request.text())
        if not isinstance(body, list):
            return self._bad("Invalid payload: expected a list of {token_id}")
        out = []
        for it in body:
            t = it.get("token_id") if isinstance(it, dict) else None
            m = self.ex.token_market.get(str(t))
            if m is not None:
                out.append(self._book_json(str(t), m))
        return web.json_response(out)

    async def h_mid(self, request: web.Request) -> web.Response:
        t, _ = self._token(request)
        b, a = self.ex.best(t)
        if b is None or a is None:
            return self._bad("No orderbook exists for the requested token id", 404, "no_mid")
        return web.json_response({"mid": _fmt(round((b + a) / 2, 6))})

    async def h_price(self, request: web.Request) -> web.Response:
        t, _ = self._token(request)
        side = request.query.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            return self._bad("Invalid side")
        b, a = self.ex.best(t)
        px = b if side == "BUY" else a
        if px is None:
            return self._bad("No orderbook exists for the requested token id", 404, "no_price")
        return web.json_response({"price": _fmt(px)})

    async def h_spread(self, request: web.Request) -> web.Response:
        t, _ = self._token(request)
        b, a = self.ex.best(t)
        return web.json_response({"spread": _fmt(round(a - b, 6)) if b is not None and a is not None else "0"})

    async def h_last(self, request: web.Request) -> web.Response:
        t, m = self._token(request)
        p = m.last_trade_price
        side = ""
        for tr in reversed(self.ex.trades_log):   # the taker side of the market's last trade
            if tr["market"] == m.condition_id:
                side = tr["side"] if tr["asset_id"] == t else ("SELL" if tr["side"] == "BUY" else "BUY")
                break
        if p is not None and t == m.down_token:
            p = 1 - p
        return web.json_response({"price": _fmt(round(p, 4)) if p is not None else "0.5", "side": side})

    async def h_market_by_token(self, request: web.Request) -> web.Response:
        m = self.ex.token_market.get(request.match_info["token"])
        if m is None:
            return self._bad("market not found", 404, "unknown_token")
        return web.json_response({"condition_id": m.condition_id, "primary_token_id": m.up_token,
                                  "secondary_token_id": m.down_token})

    async def h_clob_market(self, request: web.Request) -> web.Response:
        m = self.ex.markets.get(request.match_info["cid"])
        if m is None:
            return self._bad("market not found", 404, "unknown_market")
        return web.json_response({"c": m.condition_id, "t": [{"t": m.up_token, "o": "Up"}, {"t": m.down_token, "o": "Down"}],
                                  "mts": m.tick_size, "mos": m.min_size, "mbf": 0, "tbf": m.fee_rate_bps,
                                  "ao": m.accepting and not m.closed,
                                  "fd": m.fee.as_fd()})

    async def h_markets(self, request: web.Request) -> web.Response:
        """``GET /markets?next_cursor=``: the CLOB's paginated market list (cursor = base64 offset,
        ``LTE=`` = end), as ``ClobClient.get_markets`` pages through it."""
        cur = request.query.get("next_cursor")
        if cur == END_CURSOR:
            return web.json_response({"limit": MARKETS_PAGE, "count": 0, "next_cursor": END_CURSOR, "data": []})
        try:
            off = _offset(cur)
        except ValueError:
            return self._bad("invalid next_cursor")
        page, env = _page(sorted(self.ex.markets.values(), key=lambda m: m.start_ms), off, MARKETS_PAGE)
        return web.json_response({**env, "data": [self._market_full(m) for m in page]})

    async def h_clob_market_full(self, request: web.Request) -> web.Response:
        m = self.ex.markets.get(request.match_info["cid"])
        if m is None:
            return self._bad("market not found", 404, "unknown_market")
        return web.json_response(self._market_full(m))

    def _market_full(self, m: Any) -> dict[str, Any]:
        hm = self.by_cid[m.condition_id]
        return {
            "condition_id": m.condition_id, "question": hm.title, "market_slug": hm.slug,
            "accepting_orders": m.accepting and not m.closed, "closed": m.closed, "active": not m.closed,
            "minimum_order_size": m.min_size, "minimum_tick_size": m.tick_size, "neg_risk": m.neg_risk,
            "end_date_iso": _iso(m.end_ms), "game_start_time": _iso(m.start_ms),
            "maker_base_fee": 0, "taker_base_fee": m.fee_rate_bps,
            "tokens": [{"token_id": m.up_token, "outcome": "Up", "winner": m.up_wins is True},
                       {"token_id": m.down_token, "outcome": "Down", "winner": m.up_wins is False}]}

    # ------------------------------------------------------------------ auth endpoints
    def _l1(self, request: web.Request) -> tuple[str, int]:
        try:
            return self.keys.check_l1(request.headers)
        except AuthError as e:
            self.errors["auth_l1"] += 1
            log.warning("REST authentication failed (L1): %s", e.reason)
            raise web.HTTPUnauthorized(text=json.dumps(e.body), content_type="application/json")

    async def h_create_key(self, request: web.Request) -> web.Response:
        addr, nonce = self._l1(request)
        k = self.keys.derive(addr, nonce)
        self.addr_key[self.owner_for(addr)] = k.api_key
        self.fund(addr)
        return web.json_response(k.creds())

    h_derive_key = h_create_key

    async def h_api_keys(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        return web.json_response({"apiKeys": [kk.api_key for kk in self.keys.by_key.values() if kk.address == k.address]})

    async def h_closed_only(self, request: web.Request) -> web.Response:
        await self._l2(request)
        return web.json_response({"closed_only": False})

    # ------------------------------------------------------------------ orders
    async def _place_one(self, k: Any, item: Any, index: int | None = None) -> tuple[int, dict[str, Any]]:
        """Validate + place one order body; returns (http status, reply)."""
        try:
            so = clob_orders.parse_order_body(item, index=index)
        except clob_orders.ClobOrderError as e:
            self.errors["bad_order"] += 1
            log.warning("CLOB sim rejected malformed order: %s", e.error)
            return 400, {"error": e.error}
        m = self.ex.token_market.get(so.token_id)
        if m is None:
            self.errors["unknown_token"] += 1
            return 400, {"error": f"invalid token id {so.token_id}"}
        try:
            vo = clob_orders.verify_order(so, chain_id=self.cfg.chain_id, neg_risk=m.neg_risk,
                                          expected_signer=k.address, allowed_versions=self.cfg.allowed_versions)
        except clob_orders.ClobOrderError as e:
            self.errors["bad_signature"] += 1
            log.warning("CLOB sim rejected order signature: %s", e.error)
            return 400, {"error": e.error}
        if so.owner != k.api_key:
            self.errors["bad_owner"] += 1
            return 400, {"error": "the order owner has to be the owner of the API KEY"}
        now = self.now_ms()
        hm = self.by_cid[m.condition_id]
        if not self.listed(hm, now):
            return 400, {"error": ERR_NOT_READY}
        if not so.post_only and self.clock.now_ms() < self.faults["post_only_until"]:
            self.errors["post_only_window_reject"] += 1
            return 400, {"error": "the matching engine is in post-only mode after a restart: only post-only "
                                  "orders are accepted"}
        if self.faults["reject_next"] > 0:
            self.faults["reject_next"] -= 1
            self.errors["fault_reject"] += 1
            return 400, {"error": "could not insert order (sim fault: reject_next)"}
        self.order_versions[f"v{so.version}"] += 1
        self.order_versions[f"sigtype{so.signature_type}"] += 1
        maker = so.maker.lower()
        self.fund(maker)
        self.signer_funder[k.address.lower()] = maker
        self.addr_key.setdefault(maker, k.api_key)
        frac = so.price_fraction
        if so.order_type in ("GTC", "GTD"):
            if not so.price_on_tick(m.tick_size):
                return 400, {"error": f"order {vo.order_hash} is invalid. Price ({float(frac):g}) breaks minimum "
                                      f"tick size rule: {_fmt(m.tick_size)}"}
            price = float(frac)
        else:   # marketable orders: amounts come from a notional, snap to the nearest tick
            price = round(round(float(frac) / m.tick_size) * m.tick_size, 4)
            price = min(max(price, m.tick_size), 1 - m.tick_size)
        size = so.size_units / 1_000_000
        # GTD: Polymarket applies a one-minute security threshold -- an order signed with expiration E
        # (unix s) stops being live at E - 60 s, and E must be more than 60 s ahead (docs: "now + 1 minute
        # + 30 seconds" for a 90 s lifetime).
        exp_ms = so.expiration * 1000 - GTD_SECURITY_MS if so.order_type == "GTD" else 0
        if so.order_type == "GTD" and vo.order_hash not in self.ex.orders:
            self.gtd_expiration_s[vo.order_hash] = so.expiration   # before place(): PLACEMENT shows it
        r = self.ex.place(maker, so.token_id, so.side, price, size, so.order_type, post_only=so.post_only,
                          expiration_ms=exp_ms, now_ms=now, order_id=vo.order_hash)
        if not r.ok and so.order_type == "GTD" and vo.order_hash not in self.ex.orders:
            self.gtd_expiration_s.pop(vo.order_hash, None)
        if not r.ok:
            self.errors["order_rejected"] += 1
            log.info("CLOB sim order rejected: %s", r.error_msg)
            return 400, {"error": r.error_msg}
        txs = [t["transaction_hash"] for t in self.ex.trades_log[-len(r.trade_ids):]] if r.trade_ids else []
        return 200, {"success": True, "errorMsg": "", "orderID": r.order_id, "status": r.status,
                     "makingAmount": r.making_amount if r.trade_ids else "",
                     "takingAmount": r.taking_amount if r.trade_ids else "",
                     "transactionsHashes": txs, "tradeIDs": r.trade_ids}

    async def _ack_delay(self) -> None:
        d = int(self.faults["ack_delay_ms"])
        if d > 0:
            await asyncio.sleep(d / 1000.0)

    async def h_post_order(self, request: web.Request) -> web.Response:
        k, body = await self._l2(request)
        await self._ack_delay()
        status, reply = await self._place_one(k, body)
        if status == 200 and self._placed_then_503():
            return web.json_response({"error": "Service Unavailable (sim fault: order placed)"}, status=503)
        return web.json_response(reply, status=status)

    def _placed_then_503(self) -> bool:
        """Fault ``place_then_503``: the order(s) ARE on the book, but the client is told the request
        failed (and with ``outage_after`` the venue stays down for its lookups too)."""
        if self.faults["place_then_503"] <= 0:
            return False
        self.faults["place_then_503"] -= 1
        self.errors["fault_placed_then_503"] += 1
        if self.faults["outage_after"] > 0:
            self.faults.update(rest_error=503, rest_error_count=self.faults["outage_after"], outage_after=0)
        return True

    async def h_post_orders(self, request: web.Request) -> web.Response:
        k, body = await self._l2(request)
        items = self._json_body(body)
        if not isinstance(items, list) or not items:
            return self._bad("Invalid payload: expected a non-empty list of orders")
        if len(items) > clob_orders.MAX_BATCH_ORDERS:
            return self._bad(f"Too many orders in payload: max {clob_orders.MAX_BATCH_ORDERS}")
        await self._ack_delay()
        out = []
        for i, it in enumerate(items):
            st, rep = await self._place_one(k, it, i)
            if st != 200:
                rep = {"success": False, "errorMsg": rep["error"], "orderID": "", "status": "",
                       "transactionsHashes": [], "tradeIDs": []}
            out.append(rep)
        if any(r.get("success") for r in out) and self._placed_then_503():
            return web.json_response({"error": "Service Unavailable (sim fault: orders placed)"}, status=503)
        return web.json_response(out)

    def _owners_of(self, k: Any) -> list[str]:
        owners = [self.owner_for(k.address)]
        f = self.signer_funder.get(k.address.lower())
        if f and f not in owners:
            owners.append(f)
        return owners

    async def h_cancel(self, request: web.Request) -> web.Response:
        k, body = await self._l2(request)
        b = self._json_body(body)
        oid = b.get("orderID") if isinstance(b, dict) else None
        if not isinstance(oid, str) or not oid:
            return self._bad("Invalid payload: orderID is required")
        now = self.now_ms()
        for owner in self._owners_of(k):
            o = self.ex.order(oid)
            if o is not None and o.owner == owner:
                return web.json_response(self.ex.cancel_many(owner, [oid], now))
        return web.json_response({"canceled": [], "not_canceled": {oid: "order not found"}})

    async def h_cancel_many(self, request: web.Request) -> web.Response:
        k, body = await self._l2(request)
        ids = self._json_body(body)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return self._bad("Invalid payload: expected a list of order ids")
        now = self.now_ms()
        res: dict[str, Any] = {"canceled": [], "not_canceled": {}}
        owners = self._owners_of(k)
        for oid in ids:
            o = self.ex.order(oid)
            owner = o.owner if o is not None and o.owner in owners else owners[0]
            r = self.ex.cancel_many(owner, [oid], now)
            res["canceled"] += r["canceled"]
            res["not_canceled"].update(r["not_canceled"])
        return web.json_response(res)

    async def h_cancel_all(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        now = self.now_ms()
        res: dict[str, Any] = {"canceled": [], "not_canceled": {}}
        for owner in self._owners_of(k):
            r = self.ex.cancel_all(owner, now)
            res["canceled"] += r["canceled"]
        return web.json_response(res)

    async def h_cancel_market(self, request: web.Request) -> web.Response:
        k, body = await self._l2(request)
        b = self._json_body(body) or {}
        if not isinstance(b, dict):
            return self._bad("Invalid payload: expected {market, asset_id}")
        market, asset = b.get("market") or None, b.get("asset_id") or None
        if not market and not asset:
            return self._bad("Invalid payload: market or asset_id is required")
        now = self.now_ms()
        res: dict[str, Any] = {"canceled": [], "not_canceled": {}}
        for owner in self._owners_of(k):
            r = self.ex.cancel_market(owner, market, now, asset_id=asset)
            res["canceled"] += r["canceled"]
        return web.json_response(res)

    def _order_json(self, o: Any) -> dict[str, Any]:
        d = o.to_dict()
        d["owner"] = self._key_of(o.owner)
        if o.order_id in self.gtd_expiration_s:
            d["expiration"] = str(self.gtd_expiration_s[o.order_id])
        return d

    async def h_orders(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        q = request.query
        try:
            off = _offset(q.get("next_cursor"))
        except ValueError as e:
            return self._bad(str(e))
        rows = []
        for owner in self._owners_of(k):
            rows += self.ex.open_orders(owner, condition_id=q.get("market") or None, token_id=q.get("asset_id") or None)
        if q.get("id"):
            rows = [o for o in rows if o.order_id == q["id"]]
        rows.sort(key=lambda o: o.seq)
        page, env = _page(rows, off, self.cfg.page_size)
        return web.json_response({"data": [self._order_json(o) for o in page], **env})

    async def h_order(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        o = self.ex.order(request.match_info["id"])
        if o is None or o.owner not in self._owners_of(k):
            return self._bad("order not found", 404, "order_not_found")
        return web.json_response(self._order_json(o))

    async def h_trades(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        q = request.query
        try:
            off = _offset(q.get("next_cursor"))
        except ValueError as e:
            return self._bad(str(e))
        for b in ("after", "before"):
            if q.get(b) and not q[b].lstrip("-").isdigit():
                return self._bad(f"invalid {b}: expected unix seconds")
        rows: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for owner in self._owners_of(k):
            for t in self.ex.trades(owner):
                if t["id"] not in seen:
                    seen.add(t["id"])
                    rows.append((owner, t))
        def keep(t: dict[str, Any]) -> bool:
            if q.get("id") and t["id"] != q["id"]:
                return False
            if q.get("market") and t["market"] != q["market"]:
                return False
            if q.get("asset_id") and t["asset_id"] != q["asset_id"] and \
                    all(mo["asset_id"] != q["asset_id"] for mo in t["maker_orders"]):
                return False
            try:
                # inclusive bounds (unix seconds): a reconciling client dedups by trade id, missing one is worse
                if q.get("after") and int(t["match_time"]) < int(q["after"]):
                    return False
                if q.get("before") and int(t["match_time"]) > int(q["before"]):
                    return False
            except ValueError:
                return False
            return True
        rows = [(o, t) for o, t in rows if keep(t)]
        page, env = _page(rows, off, self.cfg.page_size)
        return web.json_response({"data": [self._trade_view(t, o) for o, t in page], **env})

    async def h_balance(self, request: web.Request) -> web.Response:
        k, _ = await self._l2(request)
        q = request.query
        owner = self._owners_of(k)[-1]
        at = q.get("asset_type", "COLLATERAL").upper()
        if at == "COLLATERAL":
            a = self.ex._acct(owner)
            bal = a.usdc_u
        elif at == "CONDITIONAL":
            t = q.get("token_id", "")
            if t not in self.ex.token_market:
                return self._bad("Invalid token id")
            bal = self.ex._acct(owner).tok_u.get(t, 0) * (USDC_SCALE // SIZE_SCALE)
        else:
            return self._bad(f"Invalid asset_type {at!r}")
        return web.json_response({"balance": str(bal), "allowances": {"exchange": MAX_UINT}, "allowance": MAX_UINT})

    async def h_heartbeat(self, request: web.Request) -> web.Response:
        """Dead-man switch: empty/null id starts (or restarts) a session; a known id refreshes it."""
        k, body = await self._l2(request)
        b = self._json_body(body) or {}
        if not isinstance(b, dict):
            return self._bad("Invalid payload: expected {\"heartbeat_id\": ...}")
        hid = b.get("heartbeat_id")
        now = time.monotonic()
        cur = self.heartbeats.get(k.api_key)
        if not hid:
            new_id = hashlib.sha256(f"{k.api_key}:{now}:{len(self.heartbeats)}".encode()).hexdigest()[:32]
            self.heartbeats[k.api_key] = (new_id, now)
            return web.json_response({"status": "ok", "heartbeat_id": new_id})
        if cur is None or hid != cur[0]:
            self.errors["bad_heartbeat_id"] += 1
            log.warning("Heartbeat with unknown id for api key %s...", k.api_key[:8])
            return web.json_response({"error": "Invalid Heartbeat ID",
                                      "heartbeat_id": cur[0] if cur else ""}, status=400)
        self.heartbeats[k.api_key] = (hid, now)
        return web.json_response({"status": "ok", "heartbeat_id": hid})
