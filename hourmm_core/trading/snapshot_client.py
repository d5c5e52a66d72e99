"""Container A snapshot intake for the trader: HTTP polling or WebSocket push.

Why: the trader must never quote on a price it cannot trust. :class:`Snapshot` is the
validated subset of schema v1 the trader needs, and :meth:`SnapshotClient.fresh`
answers "may I quote off fair value now?": a snapshot exists, container A does not
flag it stale, it has a fair value, and it is not older than ``max_age_ms`` (measured
on the shared clock, in *wall* milliseconds so a 600x simulation is judged like
production).

Transport: ``GET SNAPSHOT_URL`` at POLL_SNAPSHOT_HZ, or when ``stream_url`` is set, a
WebSocket subscription to container A's push channel (one JSON snapshot per message)
with reconnect and exponential backoff. Bad responses are counted by kind and logged
once per kind per minute; they never raise out of the loop.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import aiohttp

from hourmm_core import safe_json
from hourmm_core.clock import Clock

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot payload is not a valid schema-v1 snapshot."""


def _num(d: Mapping[str, Any], k: str, nullable: bool = True) -> float | None:
    v = d.get(k)
    if v is None:
        if nullable:
            return None
        raise SnapshotError(f"snapshot field {k!r} is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SnapshotError(f"snapshot field {k!r}={v!r} is not a finite number")
    return float(v)


def _int(d: Mapping[str, Any], k: str) -> int:
    v = d.get(k)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise SnapshotError(f"snapshot field {k!r}={v!r} is not an integer")
    return int(v)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fields of a container-A snapshot the trader uses (ms UTC, probabilities)."""

    seq: int
    ts_ms: int
    hour_start_ms: int
    hour_end_ms: int
    fair_up: float | None
    fair_unc: float | None
    stale: bool
    mid: float | None = None
    sigma: float | None = None

    @classmethod
    def parse(cls, d: Any) -> "Snapshot":
        """Validate a decoded JSON snapshot; SnapshotError says which field is wrong."""
        if not isinstance(d, Mapping):
            raise SnapshotError("snapshot must be a JSON object")
        ver = d.get("schema_version")
        if ver != SCHEMA_VERSION:
            raise SnapshotError(f"unsupported schema_version {ver!r} (expected {SCHEMA_VERSION})")
        stale = d.get("stale")
        if not isinstance(stale, bool):
            raise SnapshotError(f"snapshot field 'stale'={stale!r} is not a boolean")
        fair = _num(d, "fair_up")
        if fair is not None and not (0.0 <= fair <= 1.0):
            raise SnapshotError(f"fair_up={fair} outside [0, 1]")
        unc = _num(d, "fair_unc")
        if unc is not None and unc < 0:
            raise SnapshotError(f"fair_unc={unc} is negative")
        return cls(_int(d, "seq"), _int(d, "ts_ms"), _int(d, "hour_start_ms"), _int(d, "hour_end_ms"),
                   fair, unc, stale, _num(d, "mid"), _num(d, "sigma"))


OnSnapshot = Callable[[Snapshot], Awaitable[None] | None]


class SnapshotClient:
    """Keeps the latest valid snapshot and calls ``on_snapshot`` for each new seq."""

    def __init__(self, url: str, clock: Clock, hz: float = 50.0, stream_url: str = "",
                 max_age_ms: int = 1500, on_snapshot: OnSnapshot | None = None,
                 timeout_s: float = 2.0) -> None:
        self.url = url
        self.stream_url = stream_url
        self.clock = clock
        self.period_s = 1.0 / hz
        self.max_age_ms = max_age_ms
        self.on_snapshot = on_snapshot
        self.timeout_s = timeout_s
        self.latest: Snapshot | None = None
        self.errors: dict[str, int] = {}
        self.received = 0
        self.connected = False
        self._last_log: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # ---- freshness ---------------------------------------------------------------------
    def age_wall_ms(self, now_ms: int) -> float | None:
        if self.latest is None:
            return None
        return (now_ms - self.latest.ts_ms) / max(self.clock.speed, 1e-9)

    def fresh(self, now_ms: int) -> bool:
        """True when fair value may be quoted off: present, not stale, recent enough."""
        s = self.latest
        if s is None or s.stale or s.fair_up is None:
            return False
        age = self.age_wall_ms(now_ms)
        return age is not None and age <= self.max_age_ms

    # ---- intake ------------------------------------------------------------------------
    def _bad(self, kind: str, detail: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        now = self.clock.now_ms()
        last = self._last_log.get(kind)
        if last is None or now - last >= 60_000 * self.clock.speed:
            self._last_log[kind] = now
            log.warning("Snapshot %s: %s (count=%d)", kind, detail, self.errors[kind])

    async def ingest(self, payload: Any) -> Snapshot | None:
        """Validate one decoded payload; on a new seq store it and fire the callback."""
        try:
            snap = Snapshot.parse(payload)
        except SnapshotError as exc:
            self._bad("invalid", str(exc))
            return None
        prev = self.latest
        if prev is not None and snap.seq <= prev.seq and snap.ts_ms <= prev.ts_ms:
            return None  # same (or older) snapshot: nothing new
        self.latest = snap
        self.received += 1
        if self.on_snapshot is not None:
            r = self.on_snapshot(snap)
            if asyncio.iscoroutine(r):
                await r
        return snap

    async def poll_once(self) -> Snapshot | None:
        """One GET of SNAPSHOT_URL; errors are counted, never raised."""
        assert self._session is not None
        try:
            async with self._session.get(self.url) as resp:
                if resp.status != 200:
                    self.connected = resp.status in (503, 404)
                    self._bad(f"http_{resp.status}", f"GET {self.url} returned {resp.status}")
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.connected = False
            self._bad("unreachable", f"GET {self.url} failed: {type(exc).__name__} {exc}")
            return None
        self.connected = True
        try:
            payload = safe_json.loads(text, max_bytes=1 << 20, what="snapshot")
        except safe_json.JsonInputError as exc:
            self._bad("bad_json", f"not JSON ({exc.msg})")
            return None
        return await self.ingest(payload)

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.period_s)

    async def _stream_loop(self) -> None:
        assert self._session is not None
        backoff = 0.05
        while True:
            try:
                async with self._session.ws_connect(self.stream_url, heartbeat=10.0) as ws:
                    self.connected = True
                    backoff = 0.05
                    log.info("Subscribed to snapshot stream %s", self.stream_url)
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            try:
                                payload = safe_json.loads(msg.data, max_bytes=1 << 20, what="snapshot")
                            except safe_json.JsonInputError as exc:
                                self._bad("bad_json", f"stream frame not JSON ({exc.msg})")
                                continue
                            await self.ingest(payload)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                            break
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self._bad("stream_unreachable", f"{self.stream_url}: {type(exc).__name__} {exc}")
            self.connected = False
            await asyncio.sleep(backoff * (1 + random.random() * 0.5))
            backoff = min(backoff * 2, 5.0)

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        loop = self._stream_loop() if self.stream_url else self._poll_loop()
        self._task = asyncio.create_task(loop, name="snapshot-client")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
