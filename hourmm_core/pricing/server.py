"""Container A's HTTP face: latest snapshot, health, Prometheus metrics, WebSocket push.

- ``GET /snapshot/latest`` -> the latest snapshot JSON (503 before the first one)
- ``GET /health`` -> exactly ``{healthy, has_snapshot, stale, seq, age_ms}`` (age computed
  at request time from the last Binance message; healthy = has a snapshot and not stale),
  HTTP 200 when healthy and 503 when not, so a plain HTTP monitor (or the container
  health check) needs only the status code; the JSON body is the same either way
- ``GET /metrics`` -> Prometheus text exposition
- ``GET /snapshot/stream`` (WebSocket) -> the latest snapshot on connect, then every
  published one. A slow subscriber is conflated (it gets the newest, skipping ones it
  had no time for) instead of growing a queue.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiohttp import WSMsgType, web

from hourmm_core.httplog import ProtocolErrorLogger
from hourmm_core.pricing.snapshot import Snapshot

log = logging.getLogger(__name__)


class _Sub:
    __slots__ = ("ws", "event", "sent_seq")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.event = asyncio.Event()
        self.sent_seq = 0


class SnapshotServer:
    """Serves snapshots published with :meth:`publish`. ``health_fn`` -> (stale, age_ms) now."""

    def __init__(self, host: str, port: int, health_fn: Callable[[], tuple[bool, int | None]],
                 metrics_fn: Callable[[], list[tuple[str, str, float, dict[str, str] | None]]] | None = None) -> None:
        self.host = host
        self.port = port
        self._health_fn = health_fn
        self._metrics_fn = metrics_fn
        self.latest: Snapshot | None = None
        self._subs: set[_Sub] = set()
        self._runner: web.AppRunner | None = None
        self.published = 0
        self.push_sent = 0
        self.push_conflated = 0
        self.requests = 0
        self.http_log = ProtocolErrorLogger(__name__)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot/latest", self._latest)
        app.router.add_get("/snapshot/stream", self._stream)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, access_log=None,
                                     logger=self.http_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        subs = list(self._subs)
        self._subs.clear()
        await asyncio.gather(*(s.ws.close() for s in subs), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def publish(self, snap: Snapshot) -> None:
        """Make ``snap`` the latest and wake every push subscriber."""
        self.latest = snap
        self.published += 1
        for s in self._subs:
            if s.event.is_set():
                self.push_conflated += 1
            s.event.set()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def _latest(self, request: web.Request) -> web.Response:
        self.requests += 1
        snap = self.latest
        if snap is None:
            return web.json_response({"error": "no snapshot yet"}, status=503)
        return web.Response(body=snap.json, content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        stale, age = self._health_fn()
        snap = self.latest
        has = snap is not None
        healthy = has and not stale
        return web.json_response({"healthy": healthy, "has_snapshot": has, "stale": stale,
                                  "seq": snap.seq if snap else 0, "age_ms": age},
                                 status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        lines: list[str] = []
        seen: set[str] = set()
        rows = list(self._metrics_fn()) if self._metrics_fn else []
        rows += [("hourmm_pricer_snapshots_published_total", "counter", float(self.published), None),
                 ("hourmm_pricer_push_subscribers", "gauge", float(len(self._subs)), None),
                 ("hourmm_pricer_push_sent_total", "counter", float(self.push_sent), None),
                 ("hourmm_pricer_push_conflated_total", "counter", float(self.push_conflated), None),
                 ("hourmm_pricer_http_malformed_total", "counter", float(self.http_log.refused), None)]
        for name, typ, value, labels in rows:
            if name not in seen:
                lines.append(f"# TYPE {name} {typ}")
                seen.add(name)
            lab = ""
            if labels:
                lab = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
            lines.append(f"{name}{lab} {value:.17g}" if value == value else f"{name}{lab} NaN")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, timeout=2.0, compress=False)
        await ws.prepare(request)
        sub = _Sub(ws)
        self._subs.add(sub)
        if self.latest is not None:
            sub.event.set()
        writer = asyncio.create_task(self._push(sub))
        try:
            async for msg in ws:  # nothing to read; keep the socket until the client leaves
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._subs.discard(sub)
            writer.cancel()
        return ws

    async def _push(self, sub: _Sub) -> None:
        try:
            while not sub.ws.closed:
                await sub.event.wait()
                sub.event.clear()
                snap = self.latest
                if snap is None or snap.seq == sub.sent_seq:
                    continue
                await sub.ws.send_str(snap.json.decode())
                sub.sent_seq = snap.seq
                self.push_sent += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return
