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
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hourmm_core import safe_json
from hourmm_core.clock import HOUR_MS, Clock, ScaledClock, hour_start_ms
from hourmm_core.fees import CRYPTO_FEES, FeeSchedule
from hourmm_core.polymarket import clob_orders
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.auth import AuthError, KeyStore
from hourmm_core.sim.polymarket.clob_routes import ClobRoutes
from hourmm_core.sim.polymarket.engine import (
    EngineError,
    Exchange,
    Market,
)
from hourmm_core.sim.polymarket.faults import SimControl
from hourmm_core.sim.polymarket.gamma import HourMarket, make_hour
from hourmm_core.sim.polymarket.gamma import iso as _iso
from hourmm_core.sim.polymarket.gamma_routes import GammaRoutes
from hourmm_core.sim.polymarket.ws import WsChannels, _Conn

log = logging.getLogger("hourmm.sim.polymarket")
safe_json.limit_recursion()  # clob_orders -> eth_account -> py_ecc raised it to 100,000

PAGE_SIZE = 100


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


class PolymarketSim(ClobRoutes, GammaRoutes, WsChannels, SimControl):
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
