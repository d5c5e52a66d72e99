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

Push path (tick-to-wire, issue 15): :meth:`SnapshotServer.publish` writes the snapshot's
WebSocket frame (built once from the pre-serialised ``Snapshot.json`` bytes, shared by every
subscriber) straight to each subscriber's socket, in the publishing call: no task wake-up,
no per-subscriber encode. A subscriber whose socket still holds unsent bytes (slow reader)
or is not writable is left to its writer task instead, which waits for the socket to drain
and sends the newest snapshot (conflation, as before).
"""
from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Callable

from aiohttp import WSMsgType, web

from hourmm_core.httplog import ProtocolErrorLogger
from hourmm_core.pricing.snapshot import Snapshot

log = logging.getLogger(__name__)


# a subscriber's socket holding more unsent bytes than this is left to its writer task
# (which waits for it to drain): one snapshot frame is ~0.5 kB
DIRECT_MAX_BUFFERED = 0


def ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket text frame (RFC 6455 5.2) as a server
    sends it: what ``ws.send_str`` writes for ``payload`` on a ``compress=False`` socket."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class _Sub:
    __slots__ = ("ws", "event", "sent_seq", "transport")

    def __init__(self, ws: web.WebSocketResponse, transport: Any = None) -> None:
        self.ws = ws
        self.event = asyncio.Event()
        self.sent_seq = 0
        self.transport = transport     # the socket, for the direct push (None: writer task only)


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
        self.push_direct = 0      # of push_sent: written in the publishing call (no task wake-up)
        self.push_conflated = 0
        self.direct_push = True   # False: every push goes through the subscriber's writer task
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
        """Make ``snap`` the latest and push it: written to each subscriber's socket here
        when that socket has nothing unsent (one frame built for all), else its writer task is
        woken (it sends the newest once the socket drains; a skipped one counts as conflated)."""
        self.latest = snap
        self.published += 1
        frame: bytes | None = None
        for s in self._subs:
            t = s.transport
            if (self.direct_push and t is not None and snap.json and not s.event.is_set() and not s.ws.closed
                    and not t.is_closing() and t.get_write_buffer_size() <= DIRECT_MAX_BUFFERED):
                if frame is None:
                    frame = ws_text_frame(snap.json)
                try:
                    t.write(frame)
                except (ConnectionError, RuntimeError):
                    s.event.set()      # the writer task finds the socket gone and ends
                    continue
                s.sent_seq = max(s.sent_seq, snap.seq)
                self.push_sent += 1
                self.push_direct += 1
                continue
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
        tr = request.transport
        # direct push only where the writer is the plain one this module frames for (no compression)
        sub = _Sub(ws, tr if tr is not None and not ws.compress else None)
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
                sub.sent_seq = max(sub.sent_seq, snap.seq)
                self.push_sent += 1
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            return
