"""Container A assembled: Binance stream -> hour tracker + compiled core -> snapshot server.

:class:`PricerService` is what ``runners/binance_pricer.py`` starts; tests start it
in-process against the loopback Binance. Tasks: the stream client (reconnects by
itself), the publisher (SNAPSHOT_PUBLISH_HZ, wall-clock rate, the minimum; plus at once
when the fair value moves by SNAPSHOT_PUSH_DELTA or more), and the klines
fetcher (only when the hour's open could not be taken from a trade we saw), and, with the
adaptive variance scale (PRICER_SCALE_WINDOW_DAYS > 0), the start-up history: the window's 1m
klines from BINANCE_REST_URL, fed to a fresh pricer in a worker thread while the live one keeps
pricing, which then replays the live trades seen meanwhile and takes over (docs/PRICER.md).
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from hourmm_core.binance.rest import BinanceRestError, fetch_hour_open, fetch_minute_history
from hourmm_core.binance.ws_client import BinanceStreamClient
from hourmm_core.clock import HOUR_MS, Clock
from hourmm_core.config import PricerConfig
from hourmm_core.pricing.hour import iso_hour
from hourmm_core.pricing.server import SnapshotServer
from hourmm_core.pricing.snapshot import Snapshot, SnapshotBuilder

log = logging.getLogger(__name__)

# Pushes on change: on average at least PUSH_MIN_GAP_S apart (wall seconds), as a token bucket of
# PUSH_BURST pushes refilled one per PUSH_MIN_GAP_S, and never closer than PUSH_SPACING_S; a
# significant move that finds no token (or comes within the spacing) goes out as soon as it may,
# carrying the latest price. Why: late in the hour near the strike every trade can move fair_up
# by more than SNAPSHOT_PUSH_DELTA, and a burst of trades must not become a burst of snapshots
# (each is built, serialised and decided on: the 300x pricer-runner test fell behind when every
# trade pushed); but the second of two close moves (a few hundred microseconds apart) should not
# wait out a whole gap. The spacing coalesces the trades of one read (back to back).
PUSH_MIN_GAP_S = 0.002
PUSH_BURST = 3.0
PUSH_SPACING_S = 0.0003


class PricerService:
    """Runs container A until :meth:`stop`. ``http_port`` overrides the config (0 = ephemeral, tests)."""

    def __init__(self, cfg: PricerConfig, clock: Clock, http_port: int | None = None,
                 http_host: str | None = None, push_delta: float | None = None) -> None:
        """``push_delta`` (default: SNAPSHOT_PUSH_DELTA) > 0: also publish at once, not at the
        next SNAPSHOT_PUBLISH_HZ slot, when the fair value moved at least this much since the
        last published snapshot. In addition to the fixed rate, which stays the minimum, so the
        operator contract (snapshots at SNAPSHOT_PUBLISH_HZ) holds; a jump reaches the trader
        without waiting up to one period (benchmarks/test_bench_hops.py measures it). 0 = off."""
        self.cfg = cfg
        self.push_delta = cfg.snapshot_push_delta if push_delta is None else push_delta
        self.push_min_gap_s = PUSH_MIN_GAP_S
        self.push_burst = PUSH_BURST
        self.push_spacing_s = PUSH_SPACING_S
        self._push_tokens = PUSH_BURST
        self._last_push = float("-inf")
        self._push_timer: asyncio.TimerHandle | None = None
        self.pushed_on_change = 0
        self.push_deferred = 0    # significant moves that waited for a token (sent by the timer)
        self._published_p = float("nan")
        self.clock = clock
        self.builder = SnapshotBuilder.from_config(cfg, speed=float(getattr(clock, "speed", 1.0) or 1.0))
        self.client = BinanceStreamClient(cfg.binance_ws_url, cfg.binance_symbol, self._on_message, clock,
                                          reconnect_before_ms=cfg.reconnect_before_ms,
                                          on_connect=self._on_connect, on_disconnect=self._on_disconnect)
        self.server = SnapshotServer(http_host if http_host is not None else cfg.http_host,
                                     cfg.http_port if http_port is None else http_port,
                                     self._health, self._metrics)
        self.stale = True
        self.stale_episodes = 0
        self.klines_ok = 0
        self.klines_errors = 0
        self.publish_errors = 0
        self.history_start_ms: int | None = None   # first minute asked for / where the live trades took over
        self.history_cut_ms: int | None = None
        self.history_state = "off" if self.builder.scale_window_h <= 0 or self.builder.model != "seasonal" else "pending"
        self.msg_wall_ns: int = 0  # wall time of the last message (push-latency benchmark)
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopped = asyncio.Event()
        self._ever_fresh = False

    # ------------------------------------------------------------ callbacks
    def _on_message(self, msg, recv_ms: int) -> None:
        self.msg_wall_ns = time.perf_counter_ns()
        self.builder.on_message(msg, recv_ms)
        if self.push_delta > 0.0 and self._moved():
            # a move the trader must see now (snipers won't wait for the next publish slot)
            wait = self._push_wait(time.perf_counter())
            if wait <= 0.0:
                self._push()
            elif self._push_timer is None:   # no token / too close: as soon as allowed (coalesces a burst)
                self.push_deferred += 1
                self._push_timer = asyncio.get_running_loop().call_later(wait, self._push_deferred)

    def _push_wait(self, now: float) -> float:
        """Seconds until the next push on change is allowed (<= 0: now). Refills the bucket."""
        gap = self.push_min_gap_s
        if gap <= 0.0:
            return self._last_push + self.push_spacing_s - now
        since = now - self._last_push
        tokens = min(self.push_burst, self._push_tokens + since / gap) if since > 0 else self._push_tokens
        return max(self.push_spacing_s - since, (1.0 - tokens) * gap)

    def _moved(self) -> bool:
        """fair_up moved by push_delta or more since the last published snapshot (NaN-safe: the
        first priced message after start / a NaN counts as moved)."""
        p = self.builder.last_fair
        return p == p and not abs(p - self._published_p) < self.push_delta

    def _push(self) -> None:
        now = time.perf_counter()
        gap = self.push_min_gap_s
        if gap > 0.0:
            since = now - self._last_push
            self._push_tokens = max(0.0, min(self.push_burst, self._push_tokens + since / gap) - 1.0)
        self._last_push = now
        self.pushed_on_change += 1
        try:
            self.publish_once()
        except Exception:  # same contract as the publish loop: loud, never fatal
            self.publish_errors += 1
            log.exception("Snapshot publish failed")

    def _push_deferred(self) -> None:
        self._push_timer = None
        if self._moved():   # (the fixed-rate publish may have carried it meanwhile)
            self._push()

    def _on_connect(self) -> None:
        self.builder.on_connect(self.clock.now_ms())

    def _on_disconnect(self, reason: str) -> None:
        self.builder.on_disconnect()

    def _health(self) -> tuple[bool, int | None]:
        now = self.clock.now_ms()
        return self.builder.is_stale(now), self.builder.age_ms(now)

    def _metrics(self) -> list[tuple[str, str, float, dict[str, str] | None]]:
        b, c = self.builder, self.client
        snap = self.server.latest
        now = self.clock.now_ms()
        age = b.age_ms(now)
        rows: list[tuple[str, str, float, dict[str, str] | None]] = [
            ("hourmm_pricer_seq", "gauge", float(b.seq), None),
            ("hourmm_pricer_stale", "gauge", 1.0 if b.is_stale(now) else 0.0, None),
            ("hourmm_pricer_stale_episodes_total", "counter", float(self.stale_episodes), None),
            ("hourmm_pricer_data_age_ms", "gauge", float("nan") if age is None else float(age), None),
            ("hourmm_pricer_fair_up", "gauge", float("nan") if snap is None or snap.fair_up is None
             else snap.fair_up, None),
            ("hourmm_pricer_sigma", "gauge", float("nan") if snap is None or snap.sigma is None else snap.sigma, None),
            ("hourmm_pricer_open_price", "gauge", float("nan") if b.hour.open_price is None
             else b.hour.open_price, None),
            ("hourmm_pricer_klines_fetch_total", "counter", float(self.klines_ok), {"result": "ok"}),
            ("hourmm_pricer_klines_fetch_total", "counter", float(self.klines_errors), {"result": "error"}),
            ("hourmm_binance_connected", "gauge", 1.0 if c.connected else 0.0, None),
            ("hourmm_binance_connects_total", "counter", float(c.connects), None),
            ("hourmm_binance_disconnects_total", "counter", float(c.disconnects), None),
            ("hourmm_binance_recycles_total", "counter", float(c.recycles), None),
            ("hourmm_binance_handoff_duplicates_total", "counter", float(c.handoff_duplicates), None),
            ("hourmm_pricer_late_trades_total", "counter", float(b.late_trades), None),
            ("hourmm_pricer_push_on_change_total", "counter", float(self.pushed_on_change), None),
            ("hourmm_pricer_open_corrections_total", "counter", float(b.hour.corrections), None),
            # the variance scale in force (adaptive: re-fitted each hour from the window's hours)
            ("hourmm_pricer_var_scale", "gauge", float(b.minute.var_scale), None),
            ("hourmm_pricer_scale_history_hours", "gauge", float(b.minute.scale_hours), None),
            ("hourmm_pricer_scale_window_hours", "gauge", float(b.scale_window_h), None),
            ("hourmm_pricer_scale_hour_closes_total", "counter", float(b.minute.hour_closes), None),
            ("hourmm_pricer_history_klines", "gauge", float(b.history_rows), None),
        ]
        for kind in ("trade", "bookTicker"):
            rows.append(("hourmm_binance_frames_total", "counter", float(c.stats.good[kind]), {"kind": kind}))
        for kind, n in sorted(c.stats.bad.items()):
            rows.append(("hourmm_binance_bad_frames_total", "counter", float(n), {"kind": kind}))
        return rows

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.server.start()
        self._session = aiohttp.ClientSession()
        if self.history_state == "pending":
            self.builder.begin_history()       # before the first trade, so none is missed
        self._tasks = [
            asyncio.create_task(self.client.run(), name="binance-stream"),
            asyncio.create_task(self._publish_loop(), name="snapshot-publisher"),
            asyncio.create_task(self._klines_loop(), name="klines-open"),
        ]
        if self.history_state == "pending":
            self._tasks.append(asyncio.create_task(self._history(), name="klines-history"))
        log.info("Container A started")
        log.info("Snapshot server on http://%s:%d (publish %g Hz, stale after %d ms)", self.server.host,
                 self.server.port, self.cfg.snapshot_publish_hz, self.cfg.stale_threshold_ms)

    async def stop(self) -> None:
        self._stopped.set()
        if self._push_timer is not None:
            self._push_timer.cancel()
            self._push_timer = None
        for t in self._tasks[1:]:  # publisher + klines first: a shutdown is not a stale feed
            t.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        await self.client.stop()
        for t in self._tasks[:1]:
            t.cancel()
        await asyncio.gather(*self._tasks[:1], return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.server.stop()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def publish_once(self) -> Snapshot:
        """Build, publish and return one snapshot at the clock's now; tracks stale episodes."""
        now = self.clock.now_ms()
        snap = self.builder.snapshot(now)
        if snap.stale and not self.stale and self._ever_fresh:
            self.stale_episodes += 1
            log.warning("Binance stale beyond threshold")
        elif not snap.stale and self.stale:
            if self._ever_fresh:
                log.info("Binance feed fresh again (age %s ms)", snap.age_ms)
            self._ever_fresh = True
        self.stale = snap.stale
        self.server.publish(snap)
        self._published_p = snap.fair_up if snap.fair_up is not None else float("nan")
        return snap

    async def _publish_loop(self) -> None:
        period = 1.0 / self.cfg.snapshot_publish_hz
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            try:
                self.publish_once()
            except Exception:  # a bug in one snapshot must not stop publishing; it is loud
                self.publish_errors += 1
                log.exception("Snapshot publish failed")
            next_t += period
            delay = next_t - loop.time()
            if delay < -period:  # fell behind (GC, CPU): skip the missed slots, keep the rate
                next_t = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    async def _history(self) -> None:
        """Load the adaptive scale's window of 1m klines once at start-up and hand the warmed
        pricer over. Never fatal: without history the pricer goes on from the prior scale
        (SCALE_C0 = 1, the unbiased variance) and says so with a WARNING naming the hours it has."""
        b = self.builder
        W = b.scale_window_h
        now = self.clock.now_ms()
        start = now - now % HOUR_MS - (W + 1) * HOUR_MS     # the window's first hour needs the hour before it
        self.history_start_ms = start
        err: str | None = None
        rows: list = []
        try:
            assert self._session is not None
            rows, err = await fetch_minute_history(self._session, self.cfg.binance_rest_url, self.cfg.binance_symbol,
                                                   start, now + 60_000)
            if rows:
                cut = b.history_cut_ms(now)
                self.history_cut_ms = cut
                om = [k.open_ms for k in rows]
                mp = await asyncio.to_thread(b.warm_minute_pricer, om, [k.open for k in rows],
                                             [k.close for k in rows], cut)
                if b._pending is not None:          # not abandoned meanwhile
                    n = b.install_history(mp, len(rows))
                    log.debug("history: %d live trades replayed into the warmed pricer", n)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a history failure must never stop container A
            err = f"{type(exc).__name__}: {exc}"
            log.exception("Pricer history failed")
        b.abandon_history()
        m = b.minute
        last = now - now % 60_000 - 60_000                 # the last closed minute
        full = (not err and bool(rows) and rows[0].open_ms == start and rows[-1].open_ms >= last
                and len(rows) == (rows[-1].open_ms - start) // 60_000 + 1)
        self.history_state = "loaded" if full else ("partial" if rows else "none")
        why = "complete" if full else (err or f"{len(rows)} of {(last - start) // 60_000 + 1} minutes available")
        msg = ("Pricer history: %d 1m klines (%s); adaptive variance scale %.4f from %d hours of history "
               "(window %d h, prior %g pseudo-hours)")
        args = (len(rows), why, m.var_scale, int(m.scale_hours), W, self.cfg.pricer_scale_prior_hours)
        if full:
            log.info(msg, *args)
        else:
            log.warning(msg + "; the scale leans on the prior until the window fills", *args)

    async def _klines_loop(self) -> None:
        """Fetch the hour's open when we could not see its first trade, and verify it once when we did."""
        backoff = 0.2
        last_err_hour: int | None = None
        while True:
            tracker = self.builder.hour
            hour = tracker.needs_klines()
            verify = tracker.needs_verify() if hour is None else None
            if (hour is None and verify is None) or self._session is None:
                await asyncio.sleep(0.05)
                continue
            target = hour if hour is not None else verify
            try:
                open_px = await fetch_hour_open(self._session, self.cfg.binance_rest_url,
                                                self.cfg.binance_symbol, target)  # type: ignore[arg-type]
            except BinanceRestError as exc:
                self.klines_errors += 1
                if last_err_hour != target:
                    log.warning("Klines fetch for hour %s failed (%s); retrying", iso_hour(target), exc)
                    last_err_hour = target
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if open_px is None:  # candle not there yet (we are ahead of Binance): ask again shortly
                await asyncio.sleep(0.2)
                continue
            self.klines_ok += 1
            backoff = 0.2
            if hour is not None:
                tracker.set_open_from_klines(hour, open_px)
            else:
                tracker.verify_from_klines(target, open_px)  # type: ignore[arg-type]
