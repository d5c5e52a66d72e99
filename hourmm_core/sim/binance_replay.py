"""Loopback Binance: replays historical trades on Binance's real wire formats.

Endpoints (same paths and shapes as api.binance.com / stream.binance.com):
- WS  ``/stream?streams=btcusdt@trade/btcusdt@bookTicker`` -- combined stream, ``{stream, data}``
- WS  ``/ws/btcusdt@trade`` (or ``@bookTicker``) -- raw payloads
- GET ``/api/v3/klines`` (array rows, string numbers; only candles up to simulated now),
  ``/api/v3/ping``, ``/api/v3/time``
- ``POST /_sim/fault`` with JSON ``{"drop_connections": true}`` / ``{"pause_ms": N}`` (simulated
  ms; frames due in the pause are dropped like an outage) / ``{"malformed": N}`` (N bad frames
  inserted between real ones) / ``{"out_of_order": N}`` (N stale trade frames re-sent) /
  ``{"out_of_range": N}`` (N well-formed trades no real market prints, alternately priced 1e308
  and carrying trade id 2^62, inserted between real ones);
  ``GET /_sim/state`` for counters.

History: ``history`` (1m kline columns, e.g. ``hourmm_core.data.kline_history(...).window(...)``)
serves ``/api/v3/klines?interval=1m`` for the minutes before the first replayed row (the CLI
loads ``--history-days`` of real klines before the start: container A's start-up history for
its adaptive variance scale); candles from the rows take over from the first row's minute.

Timing: simulated time IS the data's own time. A :class:`ScaledClock` maps wall time to
simulated time; a row is sent when the simulated clock passes its ``ts_ms``. Rows before
"now" at start-up are history: they feed klines but are not streamed.

BBO: a bookTicker frame precedes a trade whenever the BBO in force at that trade changed
(see :class:`hourmm_core.data.TickData`; derived BBO when the dumps had no bookTicker).
Unknown (NaN) quote sizes go out as ``"1.00000000"`` on both sides: equal weights, so a
microprice computed from them equals the mid and invents no information.

CLI: ``python3 -m hourmm_core.sim.binance_replay --host 127.0.0.1 --port 0 --speed 60
--start-ms MS [--data-dir D] [--hours N]`` prints ``READY ws=ws://H:P rest=http://H:P`` then serves.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from hourmm_core.clock import HOUR_MS, SIM_CLOCK_ENV, Clock, ScaledClock, clock_from_env, hour_start_ms
from hourmm_core.data import TickData, candles, load_ticks

log = logging.getLogger(__name__)

INTERVALS_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": HOUR_MS, "2h": 2 * HOUR_MS, "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS, "1d": 24 * HOUR_MS,
}
_MALFORMED = (
    '{"stream": "btcusdt@trade", "data": {"e": "trade", "p": ',        # truncated JSON
    '{"stream": "btcusdt@trade"}',                                       # envelope without data
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":true}}',
    '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"101.0","B":"1","a":"100.0","A":"1"}}',
    '[1, 2, 3]',
    '{"stream":"btcusdt@depth","data":{}}',
)


def _fmt(x: float) -> str:
    return "1.00000000" if math.isnan(x) else f"{x:.8f}"


def _binance_error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    streams: frozenset[str]
    combined: bool
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=200_000))
    sent: int = 0


class BinanceReplayServer:
    """In-process replay server (tests, orchestrator). ``await start()`` binds; ``await stop()`` closes."""

    def __init__(self, ticks: TickData, clock: Clock, host: str = "127.0.0.1", port: int = 0,
                 symbol: str | None = None, history: dict[str, np.ndarray] | None = None) -> None:
        self.ticks = ticks
        first = int(ticks.ts_ms[0]) - int(ticks.ts_ms[0]) % 60_000 if len(ticks) else None
        self.history: dict[str, np.ndarray] | None = None
        if history is not None and first is not None and len(history["open_ms"]):
            keep = np.asarray(history["open_ms"], dtype=np.int64) < first
            self.history = {k: np.asarray(v)[keep] for k, v in history.items()}
        self.clock = clock
        self.host = host
        self.port = port
        self.symbol = (symbol or ticks.symbol).upper()
        self._sym_l = self.symbol.lower()
        self._clients: set[_Client] = set()
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task | None = None
        now = clock.now_ms()
        self.cursor = int(np.searchsorted(ticks.ts_ms, now, side="right"))
        self.paused_until_ms: int | None = None
        self.pending_malformed = 0
        self.pending_out_of_order = 0
        self.pending_out_of_range = 0
        self.counters = {"trades_sent": 0, "book_sent": 0, "frames_sent": 0, "rows_skipped_paused": 0,
                         "malformed_sent": 0, "out_of_order_sent": 0, "out_of_range_sent": 0, "drops": 0, "connections": 0,
                         "slow_client_drops": 0}
        self._update_id = 1_000_000
        self._last_bbo: tuple[float, float, float, float] | None = None
        self._recent_trades: list[str] = []

    # ------------------------------------------------------------ lifecycle
    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stream", self._ws_combined)
        app.router.add_get("/ws/{stream:.+}", self._ws_raw)
        app.router.add_get("/ws", self._ws_raw)   # bare: streams come by live SUBSCRIBE
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_post("/_sim/fault", self._fault)
        app.router.add_get("/_sim/state", self._state)
        return app

    async def start(self) -> None:
        if self.ticks.is_synthetic:
            log.warning("Binance replay is serving SYNTHETIC prices (no real dumps found) -- NOT market data")
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:  # port 0 -> the ephemeral port chosen
            self.port = server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._produce(), name="binance-replay-producer")
        log.info("Binance replay on %s (%d rows, source=%s, speed=%gx)", self.rest_url, len(self.ticks),
                 self.ticks.source, getattr(self.clock, "speed", 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.drop_connections(count=False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ faults
    async def drop_connections(self, count: bool = True) -> int:
        """Close every stream connection (a venue-side disconnect)."""
        clients = list(self._clients)
        self._clients.clear()
        for c in clients:
            c.queue.put_nowait(None) if not c.queue.full() else None
        await asyncio.gather(*(c.ws.close(code=1001, message=b"replay drop") for c in clients),
                             return_exceptions=True)
        if count:
            self.counters["drops"] += 1
        return len(clients)

    def pause(self, sim_ms: int) -> None:
        """Stop sending for ``sim_ms`` simulated ms (0 resumes now); rows due meanwhile are dropped."""
        self.paused_until_ms = None if sim_ms <= 0 else self.clock.now_ms() + int(sim_ms)

    def inject_malformed(self, n: int) -> None:
        self.pending_malformed += max(0, int(n))

    def inject_out_of_order(self, n: int) -> None:
        self.pending_out_of_order += max(0, int(n))

    def inject_out_of_range(self, n: int) -> None:
        self.pending_out_of_range += max(0, int(n))

    def _out_of_range_trade(self, i: int) -> str:
        """A well-formed trade no real market prints, sent right after real row ``i``: alternately
        priced 1e308 (with the next trade id, so only the price is wrong) and with trade id 2^62
        (at the real price, so only the id is wrong)."""
        k = self.counters["out_of_range_sent"]
        self.counters["out_of_range_sent"] += 1
        ts = int(self.ticks.ts_ms[i])
        real_id = int(self.ticks.trade_id[i]) if self.ticks.trade_id is not None else i + 1
        price, tid = (1e308, real_id + 1) if k % 2 == 0 else (float(self.ticks.price[i]), 2**62)
        return (f'{{"e":"trade","E":{ts},"s":"{self.symbol}","t":{tid},"p":"{price:.8f}",'
                f'"q":"0.00100000","T":{ts},"m":false,"M":true}}')

    def state(self) -> dict[str, Any]:
        now = self.clock.now_ms()
        n = len(self.ticks)
        return {
            "sim_now_ms": now, "speed": getattr(self.clock, "speed", 1.0), "symbol": self.symbol,
            "source": self.ticks.source, "bbo": self.ticks.bbo, "rows": n, "cursor": self.cursor,
            "next_ts_ms": int(self.ticks.ts_ms[self.cursor]) if self.cursor < n else None,
            "data_start_ms": int(self.ticks.ts_ms[0]) if n else None,
            "data_end_ms": int(self.ticks.ts_ms[-1]) if n else None,
            "finished": self.cursor >= n, "clients": len(self._clients),
            "paused": self.paused_until_ms is not None and now < self.paused_until_ms,
            "paused_until_ms": self.paused_until_ms, "pending_malformed": self.pending_malformed,
            "pending_out_of_order": self.pending_out_of_order,
            "pending_out_of_range": self.pending_out_of_range, **self.counters,
        }

    # ------------------------------------------------------------ producer
    def _row_frames(self, i: int) -> list[tuple[str, str]]:
        t = self.ticks
        ts = int(t.ts_ms[i])
        out: list[tuple[str, str]] = []
        bbo = (float(t.bid[i]), float(t.bid_qty[i]), float(t.ask[i]), float(t.ask_qty[i]))
        if self._last_bbo is None or not _same_bbo(bbo, self._last_bbo):
            self._last_bbo = bbo
            self._update_id += 1
            out.append(("bookTicker", f'{{"u":{self._update_id},"s":"{self.symbol}","b":"{_fmt(bbo[0])}",'
                                      f'"B":"{_fmt(bbo[1])}","a":"{_fmt(bbo[2])}","A":"{_fmt(bbo[3])}"}}'))
        tid = int(t.trade_id[i]) if t.trade_id is not None else i + 1
        m = "true" if bool(t.is_buyer_maker[i]) else "false"
        out.append(("trade", f'{{"e":"trade","E":{ts},"s":"{self.symbol}","t":{tid},"p":"{_fmt(float(t.price[i]))}",'
                             f'"q":"{_fmt(float(t.qty[i]))}","T":{ts},"m":{m},"M":true}}'))
        return out

    def _broadcast(self, kind: str, payload: str, raw_frame: str | None = None) -> None:
        stream = f"{self._sym_l}@{kind}"
        combined = raw_frame if raw_frame is not None else f'{{"stream":"{stream}","data":{payload}}}'
        for c in list(self._clients):
            if raw_frame is None and stream not in c.streams:
                continue
            msg = combined if (c.combined or raw_frame is not None) else payload
            try:
                c.queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.counters["slow_client_drops"] += 1
                self._clients.discard(c)
                asyncio.ensure_future(c.ws.close(code=1008, message=b"slow consumer"))
        self.counters["frames_sent"] += 1

    def _emit_row(self, i: int) -> None:
        for kind, payload in self._row_frames(i):
            if self.pending_malformed > 0:
                self.pending_malformed -= 1
                bad = _MALFORMED[self.counters["malformed_sent"] % len(_MALFORMED)]
                self.counters["malformed_sent"] += 1
                self._broadcast(kind, "", raw_frame=bad)
            self._broadcast(kind, payload)
            if kind == "trade" and self.pending_out_of_range > 0:
                self.pending_out_of_range -= 1
                self._broadcast("trade", self._out_of_range_trade(i))
            if kind == "trade":
                self.counters["trades_sent"] += 1
                self._recent_trades.append(payload)
                if len(self._recent_trades) > 64:
                    del self._recent_trades[:32]
                if self.pending_out_of_order > 0 and len(self._recent_trades) > 1:
                    self.pending_out_of_order -= 1
                    self.counters["out_of_order_sent"] += 1
                    self._broadcast("trade", self._recent_trades[-2])
            else:
                self.counters["book_sent"] += 1

    async def _produce(self) -> None:
        ts = self.ticks.ts_ms
        n = len(ts)
        while True:
            now = self.clock.now_ms()
            if self.cursor >= n:
                await asyncio.sleep(0.05)
                continue
            nxt = int(ts[self.cursor])
            if nxt > now:
                await asyncio.sleep(min(0.02, max(0.0005, self.clock.sleep_s_for_sim_ms(nxt - now))))
                continue
            j = int(np.searchsorted(ts, now, side="right"))
            paused = self.paused_until_ms is not None and now < self.paused_until_ms
            if paused:
                self.counters["rows_skipped_paused"] += j - self.cursor
            else:
                self.paused_until_ms = None
                for i in range(self.cursor, j):
                    self._emit_row(i)
            self.cursor = j
            await asyncio.sleep(0)

    # ------------------------------------------------------------ websocket
    def _parse_streams(self, raw: str) -> frozenset[str]:
        return frozenset(s.strip() for s in raw.split("/") if s.strip())

    async def _serve_ws(self, request: web.Request, streams: frozenset[str], combined: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096, timeout=2.0, compress=False)
        await ws.prepare(request)
        client = _Client(ws, streams, combined)
        self._clients.add(client)
        self.counters["connections"] += 1
        writer = asyncio.create_task(self._writer(client))
        try:
            async for msg in ws:  # clients may send SUBSCRIBE/LIST; answer like Binance does
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(json.dumps(self._control(client, msg.data)))
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._clients.discard(client)
            writer.cancel()
        return ws

    @staticmethod
    def _control(c: _Client, data: str) -> dict[str, Any]:
        """Binance's live subscription requests: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS."""
        try:
            req = json.loads(data)
        except ValueError:
            return {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}
        if not isinstance(req, dict):
            return {"error": {"code": 3, "msg": "Invalid request"}, "id": None}
        rid, method, params = req.get("id"), req.get("method"), req.get("params", [])
        if not isinstance(params, list) or not all(isinstance(x, str) for x in params):
            return {"error": {"code": 2, "msg": "Invalid request: params must be a list of stream names"}, "id": rid}
        if method == "SUBSCRIBE":
            c.streams = c.streams | frozenset(params)
            return {"result": None, "id": rid}
        if method == "UNSUBSCRIBE":
            c.streams = c.streams - frozenset(params)
            return {"result": None, "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(c.streams), "id": rid}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid}

    async def _writer(self, c: _Client) -> None:
        try:
            while True:
                msg = await c.queue.get()
                if msg is None or c.ws.closed:
                    return
                await c.ws.send_str(msg)
                c.sent += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return

    async def _ws_combined(self, request: web.Request) -> web.StreamResponse:
        # a bare /stream is accepted like Binance does: the client SUBSCRIBEs live (binance-connector)
        streams = self._parse_streams(request.query.get("streams", ""))
        return await self._serve_ws(request, streams, combined=True)

    async def _ws_raw(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_ws(request, self._parse_streams(request.match_info.get("stream", "")), combined=False)

    # ------------------------------------------------------------ REST
    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.clock.now_ms()})

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("symbol", "").upper() != self.symbol:
            return _binance_error(400, -1121, "Invalid symbol.")
        interval = q.get("interval", "")
        if interval not in INTERVALS_MS:
            return _binance_error(400, -1120, "Invalid interval.")
        try:
            limit = int(q.get("limit", "500"))
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return _binance_error(400, -1100, "Illegal characters found in a parameter.")
        if not 1 <= limit <= 1000:
            return _binance_error(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1' - '1000'.")
        return web.json_response(self.klines(interval, start, end, limit))

    def klines(self, interval: str, start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 500) -> list[list[Any]]:
        """Binance kline rows built from trades with ts <= simulated now (the live candle is partial)."""
        iv = INTERVALS_MS[interval]
        now = self.clock.now_ms()
        hi = now if end_ms is None else min(end_ms, now)
        if start_ms is None:
            lo = (hi - hi % iv) - (limit - 1) * iv
        else:  # like Binance: candles whose open time is >= startTime
            lo = -(-start_ms // iv) * iv
        rows = []
        h = self.history
        if h is not None and iv == 60_000:     # real 1m klines before the replayed rows
            ho = h["open_ms"]
            a, b = int(np.searchsorted(ho, lo, side="left")), int(np.searchsorted(ho, hi, side="right"))
            if start_ms is not None:
                b = min(b, a + limit)
            for k in range(a, b):
                o = int(ho[k])
                rows.append([o, _fmt(h["open"][k]), _fmt(h["high"][k]), _fmt(h["low"][k]), _fmt(h["close"][k]),
                             _fmt(h["volume"][k]), o + iv - 1, _fmt(h["quote_volume"][k]), int(h["count"][k]),
                             _fmt(h["taker_buy_volume"][k]) if "taker_buy_volume" in h else "0", "0", "0"])
            if start_ms is not None and len(rows) >= limit:
                return rows
        t = self.ticks
        i = int(np.searchsorted(t.ts_ms, lo, side="left"))
        j = int(np.searchsorted(t.ts_ms, hi, side="right"))
        if start_ms is not None and i < len(t):   # paging: only the candles this page can hold
            j = min(j, int(np.searchsorted(t.ts_ms, (int(t.ts_ms[i]) // iv + limit) * iv, side="left")))
        if j <= i:
            return rows[-limit:] if start_ms is None else rows
        ts, px, qty = t.ts_ms[i:j], t.price[i:j], t.qty[i:j]
        c = candles(ts, px, qty, iv)
        buy_q = np.where(t.is_buyer_maker[i:j], 0.0, qty)
        cb = candles(ts, px, buy_q, iv)
        cq = candles(ts, px, px * qty, iv)
        cbq = candles(ts, px, px * buy_q, iv)
        for k in range(len(c["open_ms"])):
            o = int(c["open_ms"][k])
            rows.append([o, _fmt(c["open"][k]), _fmt(c["high"][k]), _fmt(c["low"][k]), _fmt(c["close"][k]),
                         _fmt(c["volume"][k]), o + iv - 1, _fmt(cq["volume"][k]), int(c["count"][k]),
                         _fmt(cb["volume"][k]), _fmt(cbq["volume"][k]), "0"])
            if len(rows) >= limit and start_ms is not None:
                break
        return rows[-limit:] if start_ms is None else rows

    # ------------------------------------------------------------ control plane
    async def _fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            done: dict[str, Any] = {}
            if body.get("drop_connections"):
                done["dropped"] = await self.drop_connections()
            if "pause_ms" in body:
                self.pause(int(body["pause_ms"]))
                done["paused_until_ms"] = self.paused_until_ms
            if "malformed" in body:
                self.inject_malformed(int(body["malformed"]))
                done["malformed"] = self.pending_malformed
            if "out_of_order" in body:
                self.inject_out_of_order(int(body["out_of_order"]))
                done["out_of_order"] = self.pending_out_of_order
            if "out_of_range" in body:
                self.inject_out_of_range(int(body["out_of_range"]))
                done["out_of_range"] = self.pending_out_of_range
            if not done:
                raise ValueError("expected one of drop_connections, pause_ms, malformed, out_of_order, out_of_range")
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("Replay fault injected: %s", done)
        return web.json_response({"ok": True, **done})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())


def _same_bbo(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


# ------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python3 -m hourmm_core.sim.binance_replay",
                                 description="Loopback Binance replaying historical trades on a scaled clock.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second (1..600)")
    ap.add_argument("--start-ms", type=int, default=None,
                    help="simulated start (ms UTC); default hourmm_core.data.default_sim_start (real klines: 2025-05-22 14:00 UTC). With HOURMM_SIM_CLOCK set the clock "
                         "decides now and this only extends the loaded history back")
    ap.add_argument("--data-dir", default=None, help="Binance dumps (default HOURMM_DATA_DIR / ../shared/data)")
    ap.add_argument("--hours", type=float, default=4.0, help="hours of data to replay from the start hour")
    ap.add_argument("--history-days", type=float, default=28.0,
                    help="days of real 1m klines (plus 2 hours) before the start served by /api/v3/klines "
                         "(container A's start-up history for its adaptive variance scale; 0 = none; real data only)")
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--seed", type=int, default=7, help="seed of the synthetic stand-in (no real data only)")
    return ap


async def _amain(args: argparse.Namespace) -> int:
    env_clock = clock_from_env()
    clock: Clock
    if isinstance(env_clock, ScaledClock):
        clock = env_clock  # the shared simulation clock wins; --start-ms can only reach further back
        start = clock.now_ms() if args.start_ms is None else min(int(args.start_ms), clock.now_ms())
    else:
        if not 1.0 <= args.speed <= 600.0:
            print("--speed must be within 1..600", file=sys.stderr)
            return 2
        start = args.start_ms
    if start is None:  # no start given: the first hours of the data (not all of a large data set)
        from hourmm_core.data import default_sim_start
        # the hour before hourmm sim's default first traded hour (trade dumps only: the first trade's hour)
        hint = default_sim_start(args.data_dir, max(1, math.ceil(args.hours)), args.symbol.upper())
        lo = None if hint is None else hour_start_ms(hint) - HOUR_MS
    else:
        lo = hour_start_ms(start)
    hi = lo + int(args.hours * HOUR_MS) + HOUR_MS if lo is not None else None
    ticks = load_ticks(lo, hi, data_dir=args.data_dir, symbol=args.symbol.upper(),
                       synthetic_hours=max(1, math.ceil(args.hours + 1)), seed=args.seed)
    if len(ticks) == 0:
        print("no trades in the requested window", file=sys.stderr)
        return 2
    if not isinstance(env_clock, ScaledClock):
        if start is None:
            start = hour_start_ms(int(ticks.ts_ms[0]))
        clock = ScaledClock(args.speed, int(start), time.time_ns() // 1_000_000)
    history = None
    if args.history_days > 0 and not ticks.is_synthetic:
        from hourmm_core.data.klines import kline_history

        first = int(ticks.ts_ms[0]) - int(ticks.ts_ms[0]) % 60_000
        # N days + 2 hours: a window of N days also needs the hour before its first hour (that hour's
        # 60-minute history) and the hour in progress at the start
        lo_h = first - first % HOUR_MS - int(args.history_days * 24 * HOUR_MS) - 2 * HOUR_MS
        kh = kline_history(args.data_dir, args.symbol.upper(), lo_h, first)
        if kh is not None and len(kh):
            history = kh.window(lo_h, first)
            log.info("Binance replay: %d 1m klines of history before the first row", len(history["open_ms"]))
    server = BinanceReplayServer(ticks, clock, args.host, args.port, args.symbol, history=history)
    await server.start()
    print(f"READY ws={server.ws_url} rest={server.rest_url}", flush=True)
    log.info("%s=%s", SIM_CLOCK_ENV, getattr(clock, "to_env", lambda: "")())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    from hourmm_core.logsetup import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging("INFO")
    try:
        return asyncio.run(_amain(args))
    except Exception as exc:  # start-up failure: say why, exit non-zero
        log.error("Binance replay failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
