"""Reconnecting WebSocket client base shared by the market and user channels.

Why one base: both Polymarket channels need the same life-cycle — connect, send a
subscribe frame, keep alive with a text ``"PING"`` every ~10 s (the server answers
``"PONG"``), parse every frame defensively, and on any loss reconnect with
exponential backoff plus jitter. Health is exposed as plain flags (``connected``,
``last_msg_ms``) for ``/status``'s ``health.market_ws``/``health.user_ws`` and
state-change callbacks, so the risk engine can escalate the moment a channel drops.

Bad frames never kill the connection: each is counted per kind (``bad_frames``),
logged at WARNING the first time a kind is seen (DEBUG afterwards) and skipped.

Liveness: besides protocol pings, a connection that has received nothing (not even
a PONG) for ``stale_after_s`` is closed and re-opened — a silently dead TCP path
would otherwise look "connected" forever.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any, Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hourmm_core import safe_json
from hourmm_core.clock import Clock, WallClock

log = logging.getLogger(__name__)

StateCallback = Callable[[bool, str], "Awaitable[None] | None"]


class WsClientBase:
    """Subclasses implement :meth:`subscribe_frame` and :meth:`handle`."""

    channel = "ws"

    def __init__(self, url: str, *, clock: Clock | None = None, ping_interval_s: float = 10.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 open_timeout_s: float = 10.0, stale_after_s: float = 30.0,
                 on_state: StateCallback | None = None, rng: random.Random | None = None) -> None:
        self.url = url
        self.clock: Clock = clock or WallClock()
        self.ping_interval_s = ping_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.stale_after_s = stale_after_s
        self.on_state = on_state
        self._rng = rng or random.Random()
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        self.frames = 0
        self.bad_frames: dict[str, int] = {}
        self.server_errors = 0
        self.queue_dropped = 0
        self.planned_reconnects = 0
        self.last_msg_ms = 0
        self.last_error: str | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._connected_evt = asyncio.Event()
        self._reconnect_now = False
        self._planned_reason = ""
        self._loop_time_last = 0.0

    # -- subclass hooks -----------------------------------------------------------------
    def subscribe_frame(self) -> dict | None:
        """Frame sent right after connecting; None = nothing to subscribe to (wait)."""
        raise NotImplementedError

    async def handle(self, msg: Any) -> None:
        """One parsed JSON value (object or list). Raise ValueError for a bad frame."""
        raise NotImplementedError

    async def on_connected(self) -> None:
        """Called after the subscribe frame was sent."""

    async def on_disconnected(self, reason: str) -> None:
        """Called once per lost connection (before the backoff sleep).

        ``reason`` starts with ``"planned: "`` when we closed it ourselves (market roll).
        """

    # -- control ---------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"{self.channel}-ws")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self._set_state(False, "stopped")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected_evt.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def reconnect(self, reason: str = "resubscribe") -> None:
        """Drop the current connection and reconnect immediately (no backoff).

        Used on a market roll: a fresh connection gives fresh ``book`` snapshots for the
        new tokens, which is simpler and safer than patching a live subscription.
        """
        self._reconnect_now = True
        self._planned_reason = reason
        self.planned_reconnects += 1
        if self._ws is not None:
            await self._ws.close(code=1000, reason=reason[:100])

    QUEUE_MAX = 100_000
    on_event: Any = None                      # subclasses: callback, sync or async
    queue: "asyncio.Queue[Any] | None" = None  # subclasses: optional consumer queue

    async def deliver(self, ev: Any) -> None:
        """Hand one typed event to the callback (a failing callback is logged, not fatal) and
        to the consumer queue."""
        if self.on_event is not None:
            try:
                r = self.on_event(ev)
                if asyncio.iscoroutine(r):
                    await r
            except Exception:
                log.exception("%s event callback failed", self.channel)
        if self.queue is not None:
            self.enqueue(self.queue, ev)

    def enqueue(self, q: "asyncio.Queue[Any]", ev: Any) -> None:
        """Put an event on a consumer queue; if nobody drains it, drop the *oldest* (counted)
        rather than grow without bound. The callbacks path never drops."""
        if q.qsize() >= self.QUEUE_MAX:
            try:
                q.get_nowait()
            except asyncio.QueueEmpty:
                pass
            self.queue_dropped += 1
            if self.queue_dropped == 1:
                log.warning("WS %s: event queue full (%d), dropping oldest; is anyone consuming it?",
                            self.channel, self.QUEUE_MAX)
        q.put_nowait(ev)

    def count_bad(self, kind: str, detail: str) -> None:
        n = self.bad_frames.get(kind, 0) + 1
        self.bad_frames[kind] = n
        if n == 1:
            log.warning("WS %s: bad frame (%s): %s — skipped; further ones counted", self.channel, kind, detail[:200])
        else:
            log.debug("WS %s: bad frame (%s): %s", self.channel, kind, detail[:200])

    # -- internals ---------------------------------------------------------------------------
    async def _set_state(self, up: bool, reason: str) -> None:
        if up == self.connected:
            return
        self.connected = up
        if up:
            self._connected_evt.set()
        else:
            self._connected_evt.clear()
        if self.on_state is not None:
            try:
                r = self.on_state(up, reason)
                if asyncio.iscoroutine(r):
                    await r
            except Exception:  # a faulty callback must not kill the reader
                log.exception("WS %s: state callback failed", self.channel)

    def _next_delay(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * (2 ** min(attempt, 16)))
        return base * (0.5 + self._rng.random() * 0.5)  # "equal jitter": never 0, never > base

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            frame = self.subscribe_frame()
            if frame is None:
                await asyncio.sleep(0.05)
                continue
            reason = "closed"
            try:
                async with connect(self.url, open_timeout=self.open_timeout_s, ping_interval=20.0,
                                   ping_timeout=20.0, close_timeout=2.0, max_size=2**22,
                                   max_queue=4096) as ws:
                    self._ws = ws
                    await ws.send(json.dumps(frame))
                    self.connects += 1
                    self._reconnect_now = False
                    self.last_msg_ms = self.clock.now_ms()
                    attempt = 0
                    await self._set_state(True, "connected")
                    await self.on_connected()
                    if self.subscribe_frame() != frame:
                        # tokens/markets changed while we were connecting: the frame we sent is stale
                        await self.reconnect("subscription changed while connecting")
                    reason = await self._read(ws)
                    if self._reconnect_now:
                        reason = f"planned: {self._planned_reason}"
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let the reader die silently
                log.exception("WS %s: unexpected error", self.channel)
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            was_up = self.connected
            if was_up:
                self.disconnects += 1
            self.last_error = reason
            await self._set_state(False, reason)
            if was_up:
                await self.on_disconnected(reason)
            if self._stopping:
                break
            if self._reconnect_now:
                self._reconnect_now = False
                continue
            delay = self._next_delay(attempt)
            attempt += 1
            log.info("WS %s: reconnecting in %.2fs (%s)", self.channel, delay, reason)
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> str:
        pinger = asyncio.create_task(self._pinger(ws))
        try:
            async for raw in ws:
                self.last_msg_ms = self.clock.now_ms()
                self._loop_time_last = asyncio.get_running_loop().time()
                if isinstance(raw, bytes):
                    self.count_bad("binary", f"{len(raw)} bytes")
                    continue
                if raw in ("PONG", "pong", "PING"):
                    continue
                self.frames += 1
                try:
                    msg = safe_json.loads(raw, what="WS frame")
                except ValueError:
                    self.count_bad("not_json", raw)
                    continue
                if not isinstance(msg, (dict, list)):
                    self.count_bad("not_object", raw)
                    continue
                if isinstance(msg, dict) and "error" in msg and "event_type" not in msg:
                    # the venue refused something (bad subscription, invalid API creds...)
                    self.server_errors += 1
                    self.last_error = f"server error: {str(msg['error'])[:200]}"
                    self.count_bad("server_error", str(msg["error"]))
                    continue
                try:
                    await self.handle(msg)
                except ValueError as exc:
                    self.count_bad(type(exc).__name__, f"{exc} in {raw[:120]}")
            rc = ws.close_code
            return f"closed by server (code {rc}{', ' + ws.close_reason if ws.close_reason else ''})"
        finally:
            pinger.cancel()

    async def _pinger(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        self._loop_time_last = loop.time()
        try:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                if loop.time() - self._loop_time_last > self.stale_after_s:
                    self.last_error = f"no message for {self.stale_after_s:.0f}s"
                    log.warning("WS %s: %s, reconnecting", self.channel, self.last_error)
                    await ws.close(code=4000, reason="stale")
                    return
                await ws.send("PING")
        except (ConnectionClosed, asyncio.CancelledError):
            return
