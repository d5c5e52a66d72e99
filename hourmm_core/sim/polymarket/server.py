"""Loopback Polymarket: Gamma + CLOB REST + market/user WebSockets + sim control, one port.

Why: the trader must run offline along its production code paths, with the official
CLOB clients (``py_clob_client`` 0.34 and ``py_clob_client_v2``) unchanged and only
their host pointed here. One aiohttp app serves every surface:

* CLOB REST at ``/`` (``/time``, ``/version``, ``/auth/*``, ``/book``, ``/order``...),
* Gamma at ``/gamma`` (``/gamma/events?slug=``, ``/gamma/markets``): Gamma and the
  CLOB both have ``GET /markets``, so Gamma lives under a prefix; the READY line and
  :attr:`PolymarketSim.urls` give ``gamma=http://host:port/gamma``,
* WebSockets ``/ws/market`` and ``/ws/user``,
* control ``GET /_sim/state`` and ``POST /_sim/fault``.

Hourly lifecycle (sim time == data time, :class:`hourmm_core.clock.ScaledClock`):
one market per UTC hour of the run, listed ``list_ahead_ms`` (2 h) before its start,
accepting orders until its end, then closed (all orders cancelled) and resolved from
the replayed 1 h candle: Up wins iff close >= open (close = last trade before the
end, open = first trade at/after the start). Winning tokens pay 1 USDC each.

Funding (documented sim rule): every address that creates/derives an API key, and
every maker address seen on a signed order, is credited ``fund_usdc`` (default 1000)
USDC once.

Orders: the body is parsed and its EIP-712 signature recovered by
:mod:`hourmm_core.polymarket.clob_orders`. Like production since 2026-04-28 only V2
structs are accepted by default (V1 -> ``order_version_mismatch``);
``SimConfig(allowed_versions=(1, 2))`` / ``--allow-v1`` also takes legacy V1 orders;
the signer must be the API key's address and ``owner`` the API key. The matching is
:class:`hourmm_core.sim.polymarket.engine.Exchange`; its order id is the order hash.
Business rejections answer HTTP 400 ``{"error": "<real CLOB message>"}`` (what the
clients surface as ``PolyApiException``); success answers the real shape
``{success, errorMsg, orderID, status, makingAmount, takingAmount,
transactionsHashes, tradeIDs}``. Trades go MATCHED -> MINED -> CONFIRMED after
``confirm_delay_s`` wall seconds each.

Heartbeat (dead-man switch, ``POST /v1/heartbeats``): the first call enrols the API
key; if no heartbeat arrives for ``heartbeat_timeout_s`` WALL seconds (default 10,
like production; wall time because clients send on their own timers), all that
key's open orders are cancelled and the enrolment ends.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from hourmm_core import safe_json
from hourmm_core.clock import HOUR_MS, Clock, ScaledClock, hour_start_ms
from hourmm_core.fees import CRYPTO_FEES, FeeSchedule
from hourmm_core.polymarket import clob_orders
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.auth import AuthError, KeyStore
from hourmm_core.sim.polymarket.engine import (
    ERR_NOT_READY,
    SIZE_SCALE,
    USDC_SCALE,
    EngineError,
    Exchange,
    Market,
    _fmt,
)
from hourmm_core.sim.polymarket.gamma import HourMarket, event_json, make_hour, market_json
from hourmm_core.sim.polymarket.gamma import iso as _iso

log = logging.getLogger("hourmm.sim.polymarket")
MARKETS_PAGE = 500   # GET /markets page size (the real CLOB pages its list too)
ORDER_ENDPOINTS = frozenset({"POST /order", "POST /orders", "DELETE /order", "DELETE /orders", "DELETE /cancel-all",
                             "DELETE /cancel-market-orders", "GET /data/orders", "GET /data/order"})
safe_json.limit_recursion()  # clob_orders -> eth_account -> py_ecc raised it to 100,000

INITIAL_CURSOR = "MA=="
END_CURSOR = "LTE="
PAGE_SIZE = 100
MAX_UINT = str(2**256 - 1)
GTD_SECURITY_MS = 60_000


@dataclass
class SimConfig:
    """Simulator settings (CLI flags map 1:1)."""

    host: str = "127.0.0.1"
    port: int = 0
    speed: float = 60.0
    start_ms: int | None = None          # sim start; default: first hour of the data
    hours: float = 3                     # hourly markets from the start hour (ceil), data window as the replay
    seed: int = 7                        # also the synthetic-data seed (same default as the replay)
    data_dir: str | None = None
    chain_id: int = 137
    fund_usdc: float = 1000.0
    list_ahead_ms: int = 2 * HOUR_MS
    heartbeat_timeout_s: float = 10.0
    fee: FeeSchedule = CRYPTO_FEES       # the venue's crypto schedule (hourmm_core.fees); NO_FEES to switch off
    tick_size: float = 0.01
    min_size: float = 5.0
    agents: bool = True
    agent_config: AgentConfig = field(default_factory=AgentConfig)
    loop_interval_s: float = 0.02
    confirm_delay_s: float = 0.2
    allowed_versions: tuple[int, ...] = (2,)   # production: CLOB V2 only; (1, 2) = legacy V1 too
    base_slug: str = "bitcoin-up-or-down"
    version: int = 2
    page_size: int = PAGE_SIZE           # rows per /data/orders and /data/trades page
    auto_tick: bool = True               # like the real CLOB: tick 0.01 -> 0.001 once the price nears 0 or 1
    auto_tick_band: float = 0.04         # ... i.e. Up mid/last trade > 0.96 or < 0.04


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


class PolymarketSim:
    """The whole simulator in-process: ``await sim.start()``, use ``sim.urls``, ``await sim.stop()``."""

    def __init__(self, config: SimConfig | None = None, ticks: Any = None, clock: Clock | None = None) -> None:
        self.cfg = cfg = config or SimConfig()
        start0 = int(cfg.start_ms) if cfg.start_ms is not None else (clock.now_ms() if clock is not None else None)
        if ticks is None:
            # Exactly the window/seed the Binance replay (hourmm_core.sim.binance_replay) loads, so the
            # synthetic stand-in (whose path depends on its start) and the resolutions agree with it.
            from hourmm_core.data import load_ticks
            lo = hour_start_ms(start0) if start0 is not None else None
            hi = lo + int(cfg.hours * HOUR_MS) + HOUR_MS if lo is not None else None
            ticks = load_ticks(lo, hi, data_dir=cfg.data_dir, synthetic_hours=max(1, math.ceil(cfg.hours + 1)),
                               seed=cfg.seed)
        if len(ticks) == 0:
            raise ValueError("no BTC ticks for the requested window: cannot price or resolve markets")
        self.ticks = ticks
        self.synthetic = getattr(ticks, "is_synthetic", False)
        if callable(self.synthetic):
            self.synthetic = self.synthetic()
        if start0 is not None:
            start = start0
        else:   # first hour whose open the data has (first trade within a minute of the hour start)
            t0 = int(ticks.ts_ms[0])
            start = hour_start_ms(t0) if t0 - hour_start_ms(t0) < 60_000 else hour_start_ms(t0) + HOUR_MS
        self.start_ms = start
        self._clock = clock
        self.path = PricePath(ticks)
        self.ex = Exchange(seed=cfg.seed, fee=cfg.fee)
        self.keys = KeyStore(cfg.seed, cfg.chain_id)
        self.hours: list[HourMarket] = []
        first = hour_start_ms(start)
        for i in range(max(1, math.ceil(cfg.hours))):
            h = first + i * HOUR_MS
            self.hours.append(self._make_hour(h))
        self.by_cid = {h.condition_id: h for h in self.hours}
        for hm in self.hours:
            self.ex.list_market(hm.condition_id, hm.up_token, hm.down_token, hm.hour_ms, hm.hour_ms + HOUR_MS,
                                tick_size=cfg.tick_size, min_size=cfg.min_size)
        self.agents = BackgroundAgents(self.ex, self.path, seed=cfg.seed, config=cfg.agent_config) if cfg.agents else None
        self.agent_owners = set(self.agents.owners) if self.agents else set()
        self.funded: set[str] = set()
        self.addr_key: dict[str, str] = {}          # owner address (lower) -> api key
        self.signer_funder: dict[str, str] = {}     # signer (lower) -> maker/funder seen on orders
        self.resolutions: dict[str, dict[str, Any]] = {}
        self.trade_status: dict[str, str] = {}
        self.trades_by_id: dict[str, dict[str, Any]] = {}
        self.gtd_expiration_s: dict[str, int] = {}   # order id -> signed expiration (what clients see)
        self._status_due: list[tuple[float, str, str]] = []
        self.heartbeats: dict[str, tuple[str, float]] = {}   # api key -> (heartbeat id, last wall s)
        self.hb_cancels = 0
        self.errors: Counter[str] = Counter()
        # signature-checked orders per signed-struct version ("v1"/"v2") and signature type: lets a run
        # prove it traded with production-valid CLOB V2 orders (see /_sim/state "order_versions")
        self.order_versions: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.faults: dict[str, Any] = {"rest_error": None, "rest_error_count": 0, "retry_after_s": 1,
                                       "ack_delay_ms": 0, "reject_next": 0, "clock_skew_ms": 0,
                                       "place_then_503": 0, "outage_after": 0, "restart_425": 0, "post_only_s": 0.0,
                                       "post_only_until": 0.0}
        self.conns: set[_Conn] = set()
        self._runner: web.AppRunner | None = None
        self._loop_task: asyncio.Task | None = None
        self._writer_tasks: set[asyncio.Task] = set()
        self.port: int | None = None
        self.ex.add_listener(self._on_engine_event)

    # ------------------------------------------------------------------ setup
    def _make_hour(self, h: int) -> HourMarket:
        return make_hour(self.cfg.seed, h, self.cfg.base_slug)

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = ScaledClock(self.cfg.speed, self.start_ms, time.time_ns() // 1_000_000)
        return self._clock

    def now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def urls(self) -> dict[str, str]:
        base = f"http://{self.cfg.host}:{self.port}"
        return {"gamma": base + "/gamma", "clob": base, "ws": f"ws://{self.cfg.host}:{self.port}"}

    def ready_line(self) -> str:
        u = self.urls
        return f"READY gamma={u['gamma']} clob={u['clob']} ws={u['ws']}"

    def listed(self, hm: HourMarket, now_ms: int) -> bool:
        return now_ms >= hm.hour_ms - self.cfg.list_ahead_ms

    def fund(self, address: str) -> None:
        a = address.lower()
        if a not in self.funded:
            self.funded.add(a)
            self.ex.deposit(a, self.cfg.fund_usdc)

    def owner_for(self, address: str) -> str:
        return address.lower()

    async def start(self) -> None:
        """Bind (port 0 = ephemeral), start the lifecycle loop."""
        if self.synthetic:
            log.warning("Polymarket sim is driven by SYNTHETIC BTC prices (no real Binance dumps found) -- "
                        "NOT market data")
        # the verifying-contract tables import both CLOB clients (~0.9 s of imports): load them
        # off the event loop now, not inside the first POST /order (a stall of every task here)
        await asyncio.to_thread(clob_orders.exchange_domains, 2, 137)
        app = web.Application(middlewares=[self._fault_mw], client_max_size=2 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        _ = self.clock
        self._tick()
        self._loop_task = asyncio.create_task(self._loop())
        log.info("Polymarket sim listening on %s (%d hourly markets from %s)", self.urls["clob"],
                 len(self.hours), _iso(self.hours[0].hour_ms) if self.hours else "-")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except (asyncio.CancelledError, Exception):
                pass
        for c in list(self.conns):
            c.q.put_nowait(None)
            try:
                await c.ws.close()
            except Exception:
                pass
        for t in list(self._writer_tasks):
            t.cancel()
        if self._runner:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ lifecycle
    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.loop_interval_s)
            try:
                self._tick()
            except Exception:  # the loop must survive anything; count and log
                self.errors["loop"] += 1
                log.exception("sim loop step failed")

    def _tick(self) -> None:
        now = self.now_ms()
        for hm in self.hours:
            m = self.ex.markets[hm.condition_id]
            if not m.resolved and now >= m.end_ms:
                self._close_and_resolve(hm, m, now)
        self.ex.advance(now)
        if self.cfg.auto_tick:
            self._auto_tick(now)
        if self.agents is not None:
            live = [self.ex.markets[h.condition_id] for h in self.hours if self.listed(h, now)]
            self.agents.step(now, live)
        wall = time.monotonic()
        for key, (_, last) in list(self.heartbeats.items()):
            if wall - last > self.cfg.heartbeat_timeout_s:
                del self.heartbeats[key]
                k = self.keys.by_key.get(key)
                if k is not None:
                    owners = {self.owner_for(k.address)}
                    f = self.signer_funder.get(k.address.lower())
                    if f:
                        owners.add(f)
                    n = 0
                    for o in owners:
                        n += len(self.ex.cancel_all(o, now)["canceled"])
                    self.hb_cancels += n
                    log.warning("Heartbeat lapsed for api key %s...: cancelled %d open orders", key[:8], n)
        if self._status_due:
            due = [x for x in self._status_due if x[0] <= wall]
            self._status_due = [x for x in self._status_due if x[0] > wall]
            for _, tid, st in due:
                self.trade_status[tid] = st
                self._push_trade_status(tid, st, now)

    def _auto_tick(self, now: int) -> None:
        """Polymarket lowers the tick to 0.001 when a market trades near 0 or 1 (emits tick_size_change)."""
        band = self.cfg.auto_tick_band
        for hm in self.hours:
            m = self.ex.markets[hm.condition_id]
            if m.closed or m.tick_size <= 0.001 or not self.listed(hm, now):
                continue
            b, a = self.ex.best(hm.up_token)
            ref = (b + a) / 2 if b is not None and a is not None else m.last_trade_price
            if ref is not None and (ref > 1 - band or ref < band):
                self.ex.set_tick_size(hm.condition_id, 0.001, now)
                log.info("Tick size of %s lowered to 0.001 (price %.3f near the edge)", hm.slug, ref)

    def _close_and_resolve(self, hm: HourMarket, m: Market, now: int) -> None:
        if not m.closed:
            self.ex.stop_market(hm.condition_id, now)
        o, c = self.path.hour_open(hm.hour_ms), self.path.hour_close(hm.hour_ms)
        if o is None or c is None:
            if hm.condition_id not in self.resolutions:
                self.errors["no_candle"] += 1
                self.resolutions[hm.condition_id] = {"resolved": False, "reason": "no trades in the hour"}
                log.error("Cannot resolve %s: no trades in the replayed hour", hm.slug)
            m.resolved = True   # stays closed, unresolved; never guess the winner
            return
        up = c >= o
        try:
            paid = self.ex.resolve(hm.condition_id, up, now)
        except (AssertionError, EngineError) as e:   # an engine bug: report once, never loop on it
            self.errors["resolve_failed"] += 1
            self.resolutions[hm.condition_id] = {"resolved": False, "reason": f"resolve failed: {e}"}
            m.resolved = True
            log.error("Resolving %s failed: %s", hm.slug, e)
            return
        self.resolutions[hm.condition_id] = {"resolved": True, "up_wins": up, "open": o, "close": c,
                                             "paid": {k: v for k, v in paid.items() if k not in self.agent_owners}}
        log.info("Resolved %s: open=%.2f close=%.2f -> %s", hm.slug, o, c, "Up" if up else "Down")
        for conn in list(self.conns):
            if conn.kind == "market" and (hm.up_token in conn.assets or hm.down_token in conn.assets):
                conn.send({"event_type": "market_resolved", "market": hm.condition_id,
                           "assets_ids": [hm.up_token, hm.down_token],
                           "winning_asset_id": hm.up_token if up else hm.down_token,
                           "winning_outcome": "Up" if up else "Down", "timestamp": str(now)})

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

    # ------------------------------------------------------------------ HTTP plumbing
    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/", self.h_ok)
        r.add_get("/ok", self.h_ok)
        r.add_get("/time", self.h_time)
        r.add_get("/version", self.h_version)
        r.add_post("/auth/api-key", self.h_create_key)
        r.add_get("/auth/derive-api-key", self.h_derive_key)
        r.add_get("/auth/api-keys", self.h_api_keys)
        r.add_get("/auth/ban-status/closed-only", self.h_closed_only)
        r.add_get("/tick-size", self.h_tick)
        r.add_get("/neg-risk", self.h_negrisk)
        r.add_get("/fee-rate", self.h_fee)
        r.add_get("/book", self.h_book)
        r.add_post("/books", self.h_books)
        r.add_get("/midpoint", self.h_mid)
        r.add_get("/price", self.h_price)
        r.add_get("/spread", self.h_spread)
        r.add_get("/last-trade-price", self.h_last)
        r.add_get("/markets-by-token/{token}", self.h_market_by_token)
        r.add_get("/clob-markets/{cid}", self.h_clob_market)
        r.add_get("/markets", self.h_markets)
        r.add_get("/markets/{cid}", self.h_clob_market_full)
        r.add_post("/order", self.h_post_order)
        r.add_post("/orders", self.h_post_orders)
        r.add_delete("/order", self.h_cancel)
        r.add_delete("/orders", self.h_cancel_many)
        r.add_delete("/cancel-all", self.h_cancel_all)
        r.add_delete("/cancel-market-orders", self.h_cancel_market)
        r.add_get("/data/orders", self.h_orders)
        r.add_get("/data/order/{id}", self.h_order)
        r.add_get("/data/trades", self.h_trades)
        r.add_get("/balance-allowance", self.h_balance)
        r.add_get("/balance-allowance/update", self.h_balance)
        r.add_post("/v1/heartbeats", self.h_heartbeat)
        r.add_get("/gamma/events", self.h_gamma_events)
        r.add_get("/gamma/markets", self.h_gamma_markets)
        r.add_get("/ws/market", self.h_ws_market)
        r.add_get("/ws/user", self.h_ws_user)
        r.add_get("/_sim/state", self.h_state)
        r.add_post("/_sim/fault", self.h_fault)

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler: Any) -> web.StreamResponse:
        p = request.path
        if not (p.startswith("/_sim") or p.startswith("/ws/") or p.startswith("/gamma")):
            self.requests[f"{request.method} {p}"] += 1   # every CLOB REST attempt, faulted or not
            f = self.faults
            if f["rest_error"] and f["rest_error_count"] > 0:
                f["rest_error_count"] -= 1
                code = int(f["rest_error"])
                self.errors[f"fault_{code}"] += 1
                if code == 429:  # retry_after_s None -> no Retry-After header (client must back off itself)
                    ra = f["retry_after_s"]
                    return web.json_response({"error": "Too Many Requests"}, status=429,
                                             headers={"Retry-After": f"{ra:g}"} if ra is not None else None)
                return web.json_response({"error": "Internal Server Error (sim fault)"}, status=code)
            ep = request.method + " " + ("/data/order" if p.startswith("/data/order/") else p)
            if f["restart_425"] > 0 and ep in ORDER_ENDPOINTS:
                # weekly matching-engine restart: 425 Too Early on every order endpoint, then a
                # post-only window (docs.polymarket.com/trading/matching-engine)
                f["restart_425"] -= 1
                self.errors["fault_425"] += 1
                if f["restart_425"] == 0:
                    f["post_only_until"] = self.clock.now_ms() + float(f["post_only_s"]) * 1000   # venue time
                return web.json_response({"error": "Too Early: the matching engine is restarting (sim fault)"},
                                         status=425)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:  # never crash on a bad request: count, log, 500 with a clear message
            self.errors["handler_exception"] += 1
            log.exception("handler %s failed", p)
            return web.json_response({"error": f"internal error: {type(e).__name__}"}, status=500)

    def _bad(self, msg: str, status: int = 400, kind: str = "bad_request") -> web.Response:
        self.errors[kind] += 1
        log.warning("CLOB sim %s: %s", kind, msg)
        return web.json_response({"error": msg}, status=status)

    async def _l2(self, request: web.Request) -> tuple[Any, str]:
        body = await request.text()
        try:
            k = self.keys.check_l2(request.headers, request.method, request.path, body)
        except AuthError as e:
            self.errors["auth_l2"] += 1
            log.warning("REST authentication failed: %s (%s %s)", e.reason, request.method, request.path)
            raise web.HTTPUnauthorized(text=json.dumps(e.body), content_type="application/json")
        return k, body

    def _json_body(self, body: str) -> Any:
        if not body:
            return None
        try:
            return safe_json.loads(body, what="request body")
        except ValueError:
            self.errors["bad_json"] += 1
            log.warning("CLOB sim bad_request: body is not JSON")
            raise web.HTTPBadRequest(text=json.dumps({"error": "Invalid payload: body is not JSON"}),
                                     content_type="application/json") from None

    def _token(self, request: web.Request) -> tuple[str, Market]:
        t = request.query.get("token_id", "")
        if not t:
            self.errors["bad_request"] += 1
            raise web.HTTPBadRequest(text=json.dumps({"error": "Invalid token id"}), content_type="application/json")
        m = self.ex.token_market.get(t)
        if m is None or not self.listed(self.by_cid[m.condition_id], self.now_ms()):
            self.errors["unknown_token"] += 1
            raise web.HTTPNotFound(text=json.dumps({"error": "No orderbook exists for the requested token id"}),
                                   content_type="application/json")
        return t, m

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
        cur = request.query.get("next_cursor", "MA==") or "MA=="
        if cur == "LTE=":
            return web.json_response({"limit": MARKETS_PAGE, "count": 0, "next_cursor": "LTE=", "data": []})
        try:
            off = int(base64.b64decode(cur, validate=True).decode())
            if off < 0:
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return self._bad("invalid next_cursor")
        ms = sorted(self.ex.markets.values(), key=lambda m: m.start_ms)
        page = ms[off:off + MARKETS_PAGE]
        nxt = off + len(page)
        return web.json_response({"limit": MARKETS_PAGE, "count": len(page),
                                  "next_cursor": base64.b64encode(str(nxt).encode()).decode() if nxt < len(ms) else "LTE=",
                                  "data": [self._market_full(m) for m in page]})

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
        n = self.cfg.page_size
        page = rows[off:off + n]
        nxt = _cursor(off + n) if off + n < len(rows) else END_CURSOR
        return web.json_response({"data": [self._order_json(o) for o in page], "next_cursor": nxt,
                                  "limit": n, "count": len(page)})

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
        n = self.cfg.page_size
        page = rows[off:off + n]
        nxt = _cursor(off + n) if off + n < len(rows) else END_CURSOR
        return web.json_response({"data": [self._trade_view(t, o) for o, t in page], "next_cursor": nxt,
                                  "limit": n, "count": len(page)})

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

    # ------------------------------------------------------------------ gamma
    def _gamma_market(self, hm: HourMarket, now: int) -> dict[str, Any]:
        return market_json(hm, self.ex.markets[hm.condition_id], self.resolutions.get(hm.condition_id),
                           self.cfg.list_ahead_ms, now, self.ex.best(hm.up_token))

    def _gamma_event(self, hm: HourMarket, now: int) -> dict[str, Any]:
        return event_json(hm, self.ex.markets[hm.condition_id], self._gamma_market(hm, now), self.cfg.list_ahead_ms)

    def _bool_q(self, v: str | None) -> bool | None:
        if v is None:
            return None
        if v.lower() in ("true", "1"):
            return True
        if v.lower() in ("false", "0"):
            return False
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid boolean {v!r}"}), content_type="application/json")

    def _limit(self, q: Any) -> tuple[int, int]:
        try:
            lim = int(q.get("limit", 100))
            off = int(q.get("offset", 0))
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "limit/offset must be integers"}),
                                     content_type="application/json") from None
        return max(0, lim), max(0, off)

    async def h_gamma_events(self, request: web.Request) -> web.Response:
        now = self.now_ms()
        q = request.query
        slugs = set(q.getall("slug", []))
        closed = self._bool_q(q.get("closed"))
        lim, off = self._limit(q)
        out = []
        for hm in self.hours:
            if not self.listed(hm, now) or (slugs and hm.slug not in slugs):
                continue
            if closed is not None and self.ex.markets[hm.condition_id].closed != closed:
                continue
            out.append(self._gamma_event(hm, now))
        return web.json_response(out[off:off + lim])

    async def h_gamma_markets(self, request: web.Request) -> web.Response:
        now = self.now_ms()
        q = request.query
        slugs = set(q.getall("slug", []))
        cids = set(q.getall("condition_ids", []))
        closed = self._bool_q(q.get("closed"))
        lim, off = self._limit(q)
        out = []
        for hm in self.hours:
            if not self.listed(hm, now) or (slugs and hm.slug not in slugs) or (cids and hm.condition_id not in cids):
                continue
            if closed is not None and self.ex.markets[hm.condition_id].closed != closed:
                continue
            out.append(self._gamma_market(hm, now))
        return web.json_response(out[off:off + lim])

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

    # ------------------------------------------------------------------ control
    def state(self) -> dict[str, Any]:
        now = self.now_ms()
        mkts = []
        for hm in self.hours:
            m = self.ex.markets[hm.condition_id]
            mkts.append({"slug": hm.slug, "condition_id": hm.condition_id, "up_token": hm.up_token,
                         "down_token": hm.down_token, "start_ms": hm.hour_ms, "end_ms": hm.hour_ms + HOUR_MS,
                         "listed": self.listed(hm, now), "accepting": m.accepting and not m.closed and now < m.end_ms,
                         "closed": m.closed, "tick_size": m.tick_size, "resolution": self.resolutions.get(hm.condition_id),
                         "book_up": self.ex.book(hm.up_token, depth=5),
                         "fair_up": self.agents.stats.last_fair.get(hm.condition_id) if self.agents else None})
        users = sorted(o for o in self.ex.accounts if o not in self.agent_owners)
        return {
            "now_ms": now, "speed": getattr(self.clock, "speed", 1.0), "synthetic_data": bool(self.synthetic),
            "markets": mkts,
            "balances": {o: {**self.ex.balances(o), "positions": self.ex.positions(o)} for o in users},
            "open_orders": [self._order_json(o) for o in self.ex.open_orders() if o.owner not in self.agent_owners],
            "agents": (self.agents.stats.__dict__ | {"n_open": len([o for o in self.ex.open_orders()
                                                                  if o.owner in self.agent_owners])})
            if self.agents else None,
            "heartbeats": len(self.heartbeats), "heartbeat_cancels": self.hb_cancels,
            "faults": dict(self.faults), "errors": dict(self.errors),
            "order_versions": dict(self.order_versions), "allowed_versions": list(self.cfg.allowed_versions),
            "fees_collected": self.ex.fees_u / USDC_SCALE,
            "ws_connections": {"market": sum(c.kind == "market" for c in self.conns),
                               "user": sum(c.kind == "user" for c in self.conns)},
        }

    async def h_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def h_fault(self, request: web.Request) -> web.Response:
        b = self._json_body(await request.text())
        if not isinstance(b, dict) or not b:
            return self._bad("fault body must be a JSON object")
        applied: dict[str, Any] = {}
        try:
            if "drop_ws" in b:
                kind = b["drop_ws"]
                if kind not in ("market", "user", "all"):
                    return self._bad("drop_ws must be market|user|all")
                n = 0
                for c in list(self.conns):
                    if kind == "all" or c.kind == kind:
                        n += 1
                        self.conns.discard(c)
                        c.q.put_nowait(None)
                        await c.ws.close(code=1011, message=b"sim fault: drop")
                applied["drop_ws"] = n
            if "rest_error" in b:
                code = int(b["rest_error"])
                if code not in (429, 500, 502, 503, 504):
                    return self._bad("rest_error must be 429 or 5xx")
                ra = b.get("retry_after_s", 1)
                if ra is not None and (isinstance(ra, bool) or not isinstance(ra, (int, float)) or not 0 <= ra <= 3600):
                    return self._bad("retry_after_s must be a number of seconds in [0, 3600] or null")
                self.faults.update(rest_error=code, rest_error_count=int(b.get("count", 1)), retry_after_s=ra)
                applied["rest_error"] = code
            if "engine_restart" in b:
                er = b["engine_restart"]
                if not isinstance(er, dict) or not isinstance(er.get("count_425", 0), int) \
                        or not isinstance(er.get("post_only_s", 0), (int, float)):
                    return self._bad("engine_restart must be {count_425: int, post_only_s: seconds of sim time}")
                self.faults.update(restart_425=int(er.get("count_425", 3)), post_only_s=float(er.get("post_only_s", 120)))
                applied["engine_restart"] = {"count_425": self.faults["restart_425"],
                                             "post_only_s": self.faults["post_only_s"]}
            for key in ("ack_delay_ms", "reject_next", "clock_skew_ms", "place_then_503", "outage_after"):
                if key in b:
                    self.faults[key] = int(b[key])
                    applied[key] = self.faults[key]
            if "tick_size" in b:
                tok = str(b.get("token_id", ""))
                m = self.ex.token_market.get(tok)
                if m is None:
                    return self._bad("tick_size fault needs a known token_id")
                self.ex.set_tick_size(m.condition_id, float(b["tick_size"]), self.now_ms())
                applied["tick_size"] = m.tick_size
        except (TypeError, ValueError, EngineError) as e:
            return self._bad(f"invalid fault: {e}")
        if not applied:
            return self._bad("no known fault key (drop_ws, rest_error, engine_restart, place_then_503, ack_delay_ms, "
                             "reject_next, tick_size, "
                             "clock_skew_ms)")
        log.warning("Sim fault injected: %s", applied)
        return web.json_response({"ok": True, "applied": applied})
