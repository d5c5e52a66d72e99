"""The simulator's WebSockets: engine events fanned out to the market and user channels, and the
``/ws/market`` / ``/ws/user`` handlers (subscribe, auth, per-connection writer).

Split from :mod:`hourmm_core.sim.polymarket.server` (one job per file); :class:`WsChannels` is a
mixin of :class:`~hourmm_core.sim.polymarket.server.PolymarketSim` and uses its state.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from hourmm_core import safe_json
from hourmm_core.sim.polymarket.auth import AuthError
from hourmm_core.sim.polymarket.engine import (
    _fmt,
)

log = logging.getLogger("hourmm.sim.polymarket")


class _Conn:
    """One WebSocket connection with its outbound queue and subscription."""

    def __init__(self, ws: web.WebSocketResponse, kind: str) -> None:
        self.ws = ws
        self.kind = kind
        self.q: asyncio.Queue[str | None] = asyncio.Queue()
        self.assets: set[str] = set()
        self.markets: set[str] = set()
        self.owner: str | None = None
        self.api_key: str | None = None
        self.key: Any = None
        self.overflow = False

    MAX_QUEUE = 20_000

    def send(self, obj: Any) -> None:
        """Queue one frame; a consumer this far behind is dropped (like a real venue would)."""
        if self.overflow:
            return
        if self.q.qsize() >= self.MAX_QUEUE:
            self.overflow = True
            self.q.put_nowait(None)
            return
        self.q.put_nowait(json.dumps(obj, separators=(",", ":")))


class WsChannels:
    """Market/user channel fan-out and handlers (mixin of PolymarketSim)."""

    # ------------------------------------------------------------------ engine -> WS
    def _key_of(self, owner: str) -> str:
        """The API key id the venue shows for an owner; simulated agents (no real key) get a
        stable UUID like a real key id instead of their internal name."""
        k = self.addr_key.get(owner)
        if k is not None:
            return k
        if owner.startswith("0x") or not owner:
            return owner
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "hourmm-sim-agent:" + owner))

    @staticmethod
    def _addr_of(owner: str) -> str:
        """A 0x address for an owner: itself for real makers, a stable derived one for agents."""
        if isinstance(owner, str) and owner.startswith("0x") and len(owner) == 42:
            return owner
        return "0x" + hashlib.sha256(("hourmm-sim-agent:" + str(owner)).encode()).hexdigest()[:40]

    def _on_engine_event(self, ev: dict[str, Any]) -> None:
        et = ev["event_type"]
        ts = str(ev.get("ts_ms", 0))
        if et == "trade":
            tr = ev["trade"]
            self.trades_by_id[tr["id"]] = tr
            self.trade_status[tr["id"]] = "MATCHED"
            # Like the real market channel: a trade that changes the book is followed by a book snapshot.
            m = self.ex.markets[tr["market"]]
            for conn in list(self.conns):
                if conn.kind == "market":
                    snaps = [{**self._book_json(t, m), "event_type": "book"}
                             for t in (m.up_token, m.down_token) if t in conn.assets]
                    if snaps:
                        conn.send(snaps)
            wall = time.monotonic()
            self._status_due.append((wall + self.cfg.confirm_delay_s, tr["id"], "MINED"))
            self._status_due.append((wall + 2 * self.cfg.confirm_delay_s, tr["id"], "CONFIRMED"))
            self._push_trade_status(tr["id"], "MATCHED", ev.get("ts_ms", 0))
            return
        if not self.conns:
            return
        if et == "price_change":
            books: dict[str, tuple[str, str]] = {}
            for conn in list(self.conns):
                if conn.kind != "market":
                    continue
                pcs = [c for c in ev["changes"] if c["asset_id"] in conn.assets]
                if not pcs:
                    continue
                out = []
                for c in pcs:
                    a = c["asset_id"]
                    if a not in books:
                        bb, ba = self.ex.best(a)
                        books[a] = (_fmt(bb) if bb is not None else "0", _fmt(ba) if ba is not None else "1")
                    out.append({**c, "hash": hashlib.sha1(f"{a}:{ts}:{c['price']}:{c['size']}".encode()).hexdigest(),
                                "best_bid": books[a][0], "best_ask": books[a][1]})
                conn.send({"event_type": "price_change", "market": ev["market"], "price_changes": out,
                           "timestamp": ts})
        elif et in ("last_trade_price", "tick_size_change"):
            msg = {k: v for k, v in ev.items() if k != "ts_ms"}
            msg["timestamp"] = ts
            for conn in list(self.conns):
                if conn.kind == "market" and ev["asset_id"] in conn.assets:
                    conn.send(msg)
        elif et == "order":
            o = ev["order"]
            for conn in list(self.conns):
                if conn.kind == "user" and conn.key is not None and o["owner"] in self._owners_of(conn.key) \
                        and (not conn.markets or o["market"] in conn.markets):
                    conn.send(self._user_order_msg(o, ev["type"], ts))

    def _user_order_msg(self, o: dict[str, Any], typ: str, ts: str) -> dict[str, Any]:
        key = self._key_of(o["owner"])
        return {"event_type": "order", "type": typ, "id": o["id"], "owner": key, "order_owner": key,
                "market": o["market"], "asset_id": o["asset_id"], "side": o["side"], "price": o["price"],
                "original_size": o["original_size"], "size_matched": o["size_matched"], "outcome": o["outcome"],
                "status": o["status"], "order_type": o["order_type"],
                "expiration": str(self.gtd_expiration_s.get(o["id"], o["expiration"])),
                "associate_trades": o["associate_trades"], "created_at": str(o["created_at"]),
                "maker_address": o["maker_address"], "timestamp": ts}

    def _trade_view(self, tr: dict[str, Any], viewer: str | None) -> dict[str, Any]:
        """A trade as one participant sees it (owner = its api key, trader_side, live status)."""
        out = dict(tr)
        out.pop("match_time_ms", None)
        out["status"] = self.trade_status.get(tr["id"], tr["status"])
        out["owner"] = self._key_of(tr["owner"])
        out["maker_address"] = self._addr_of(tr["maker_address"])
        out["maker_orders"] = [{**mo, "owner": self._key_of(mo["owner"]), "maker_address": self._addr_of(mo["maker_address"])}
                               for mo in tr["maker_orders"]]
        out["trader_side"] = "TAKER" if viewer is None or viewer == tr["owner"] else "MAKER"
        return out

    def _push_trade_status(self, tid: str, status: str, now_ms: int) -> None:
        if not self.conns:
            return
        tr = self.trades_by_id.get(tid)
        if tr is None:
            return
        owners = {tr["owner"]} | {mo["owner"] for mo in tr["maker_orders"]}
        for conn in list(self.conns):
            if conn.kind != "user" or conn.key is None or (conn.markets and tr["market"] not in conn.markets):
                continue
            for own in self._owners_of(conn.key):
                if own not in owners:
                    continue
                v = self._trade_view(tr, own)
                v.update({"event_type": "trade", "type": "TRADE", "status": status, "matchtime": tr["match_time"],
                          "trade_owner": v["owner"], "timestamp": str(now_ms)})
                conn.send(v)
                break

    # ------------------------------------------------------------------ websockets
    async def _writer(self, c: _Conn) -> None:
        try:
            while True:
                s = await c.q.get()
                if s is None or c.ws.closed:
                    if c.overflow and not c.ws.closed:
                        self.errors[f"ws_{c.kind}_slow_consumer"] += 1
                        log.warning("WS %s consumer too slow: connection dropped", c.kind)
                        await c.ws.close(code=1013, message=b"slow consumer")
                    return
                await c.ws.send_str(s)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def _serve_ws(self, request: web.Request, kind: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        c = _Conn(ws, kind)
        self.conns.add(c)
        wt = asyncio.create_task(self._writer(c))
        self._writer_tasks.add(wt)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.ERROR:
                        break
                    continue
                data = msg.data
                if data.strip().upper() == "PING":
                    c.q.put_nowait("PONG")
                    continue
                try:
                    sub = safe_json.loads(data, max_bytes=1 << 16, what="WS frame")
                except ValueError:
                    self.errors[f"ws_{kind}_bad_json"] += 1
                    log.warning("WS %s: frame is not JSON (ignored)", kind)
                    c.send({"error": "invalid message: not JSON"})
                    continue
                if not isinstance(sub, dict):
                    self.errors[f"ws_{kind}_bad_msg"] += 1
                    log.warning("WS %s: frame is not a JSON object (ignored)", kind)
                    c.send({"error": "invalid message: expected an object"})
                    continue
                if kind == "market":
                    self._sub_market(c, sub)
                else:
                    if not self._sub_user(c, sub):
                        break
        finally:
            self.conns.discard(c)
            c.q.put_nowait(None)
            try:    # flush what is queued (e.g. the auth error) before the handler closes the socket
                await asyncio.wait_for(asyncio.shield(wt), 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                wt.cancel()
            self._writer_tasks.discard(wt)
        return ws

    def _sub_market(self, c: _Conn, sub: dict[str, Any]) -> None:
        ids = sub.get("assets_ids", sub.get("asset_ids"))
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            self.errors["ws_market_bad_sub"] += 1
            log.warning("WS market: invalid subscription (assets_ids)")
            c.send({"error": "invalid subscription: assets_ids must be a list of token ids"})
            return
        op = str(sub.get("operation", "subscribe")).lower()
        if op == "unsubscribe":
            c.assets.difference_update(ids)
            return
        new = [i for i in ids if i in self.ex.token_market and i not in c.assets]
        c.assets.update(ids)
        books = [{**self._book_json(t, self.ex.token_market[t]), "event_type": "book"} for t in new]
        if books:
            c.send(books)

    def _sub_user(self, c: _Conn, sub: dict[str, Any]) -> bool:
        """First frame must authenticate; later frames may be ``{"operation", "markets"}`` updates."""
        if "auth" not in sub and c.key is not None:
            mk = sub.get("markets", [])
            op = str(sub.get("operation", "subscribe")).lower()
            if not isinstance(mk, list) or op not in ("subscribe", "unsubscribe"):
                self.errors["ws_user_bad_sub"] += 1
                log.warning("WS user: invalid subscription update ignored")
                c.send({"error": "invalid subscription: markets must be a list, operation subscribe|unsubscribe"})
                return True
            if op == "subscribe":
                c.markets.update(str(x) for x in mk)
            else:
                c.markets.difference_update(str(x) for x in mk)
            return True
        try:
            k = self.keys.check_ws_auth(sub.get("auth"))
        except AuthError:
            self.errors["ws_user_auth"] += 1
            log.warning("WS user subscription with invalid credentials rejected")
            c.send({"error": "Unauthorized/Invalid api key"})
            return False
        mk = sub.get("markets", [])
        if not isinstance(mk, list):
            self.errors["ws_user_bad_sub"] += 1
            log.warning("WS user: subscription with a non-list markets field")
            c.send({"error": "invalid subscription: markets must be a list"})
            return True
        c.api_key = k.api_key
        c.key = k
        c.owner = self._owners_of(k)[-1]
        c.markets = set(str(x) for x in mk)
        return True

    async def h_ws_market(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve_ws(request, "market")

    async def h_ws_user(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve_ws(request, "user")
