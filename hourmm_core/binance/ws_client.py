"""Binance combined-stream WebSocket client: validate, de-duplicate, reconnect forever.

The client owns the connection life cycle only; every good message goes to a
callback together with its receive time. Bad frames are counted per kind and
logged once per kind (:class:`FrameStats`); frames that go backwards (trade id
or bookTicker update id not increasing) are counted as ``out_of_order`` and
dropped so the quant core only ever sees a monotone stream.

Input that parses but cannot be real is refused before the quant core sees it
(counted per kind, first of each kind logged): a trade or quote price above
``max_price`` or more than ``max_jump_frac`` away from the last accepted price
(:class:`PriceGuard`; a new level seen on ``confirm`` consecutive messages is
accepted, so a genuine gap cannot freeze the feed), and an id that jumps further
ahead than any real stream could (``bad_id``: 2^62 would otherwise make every later
real trade look out of order). The id watermarks restart on every fresh connection.

Reconnects use exponential backoff with full jitter, and the connection is
recycled proactively before Binance's 24 h hard limit (``reconnect_before_ms``,
measured on the injected clock so a simulated day passes quickly).
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable

import websockets

from hourmm_core.binance.messages import BookTicker, FrameError, FrameStats, Message, Trade, parse_frame
from hourmm_core.clock import Clock

log = logging.getLogger(__name__)

OnMessage = Callable[[Message, int], None]


def stream_url(base_url: str, symbol: str) -> str:
    """``wss://host:9443`` -> ``wss://host:9443/stream?streams=btcusdt@trade/btcusdt@bookTicker``."""
    s = symbol.lower()
    return f"{base_url.rstrip('/')}/stream?streams={s}@trade/{s}@bookTicker"


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [cap/2, cap], cap = min(max_s, base_s * 2**attempt)."""
    cap = min(max_s, base_s * (2 ** min(attempt, 30)))
    return rng.uniform(cap / 2.0, cap)


MAX_TRADE_ID_JUMP = 100_000_000       # BTCUSDT spot does ~3-5 M trades a day
MAX_UPDATE_ID_JUMP = 1_000_000_000    # bookTicker u: ~60 M a day (real 2024-08-08 sample: 457 k in 11 min)
OUT_OF_ORDER_RESET = 50               # consecutive backwards ids that prove the watermark wrong


class PriceGuard:
    """Refuses prices no real BTC market prints: above ``max_price``, or a jump of more than
    ``max_jump_frac`` from the last accepted price (trade or quote mid).

    A refused level that repeats (``confirm`` consecutive refusals, all within
    ``max_jump_frac`` of the first of them) is a real move after a gap: it becomes the new
    reference, so the guard can never freeze the feed.
    """

    def __init__(self, max_jump_frac: float = 0.10, max_price: float = 1e8, confirm: int = 5) -> None:
        self.max_jump_frac = max_jump_frac
        self.max_price = max_price
        self.confirm = confirm
        self.ref: float | None = None
        self._streak: list[float] = []
        self.reanchors = 0

    def check(self, price: float) -> str | None:
        """None when ``price`` is accepted (and becomes the reference), else the refusal kind."""
        if not (0.0 < price <= self.max_price):  # NaN fails too
            return "price_absurd"
        ref = self.ref
        if ref is not None and abs(price / ref - 1.0) > self.max_jump_frac:
            st = self._streak
            if st and abs(price / st[0] - 1.0) > self.max_jump_frac:
                st.clear()
            st.append(price)
            if len(st) < self.confirm:
                return "price_jump"
            self.reanchors += 1
            log.warning("Binance price level moved from %.2f to %.2f (%d consecutive prints): "
                        "accepted as the new reference", ref, price, len(st))
        self._streak.clear()
        self.ref = price
        return None


class BinanceStreamClient:
    """Keeps one combined-stream connection alive and feeds parsed messages to ``on_message``.

    ``clock`` is the process clock (wall in production, scaled in the sim); it
    stamps receive times and measures connection age for the 24 h recycle.
    """

    def __init__(self, ws_url: str, symbol: str, on_message: OnMessage, clock: Clock, *,
                 reconnect_before_ms: int = 23 * 3_600_000, backoff_base_s: float = 0.2,
                 backoff_max_s: float = 30.0, open_timeout_s: float = 10.0,
                 on_connect: Callable[[], Awaitable[None] | None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None, seed: int | None = None,
                 price_guard: PriceGuard | None = None) -> None:
        self.url = stream_url(ws_url, symbol)
        self.symbol = symbol.upper()
        self._on_message = on_message
        self._clock = clock
        self._now_ms = clock.now_ms
        self.reconnect_before_ms = reconnect_before_ms
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._rng = random.Random(seed)
        self.stats = FrameStats(log)
        self.price_guard = price_guard or PriceGuard()
        self.connects = 0
        self.disconnects = 0
        self.recycles = 0
        self.connected = False
        self.last_recv_ms: int | None = None
        self._last_trade_id = -1
        self._last_update_id = -1
        self._backwards = {True: 0, False: 0}   # consecutive backwards ids (trade, bookTicker)
        self.watermark_resets = 0
        self._stop = asyncio.Event()
        self._ws: websockets.ClientConnection | None = None
        self._handoff: websockets.ClientConnection | None = None
        self._in_handoff = False
        self.handoff_duplicates = 0

    def handle_raw(self, raw: str | bytes, recv_ms: int) -> Message | None:
        """Parse + validate + order-check one frame; returns the message delivered, or None."""
        try:
            msg = parse_frame(raw)
        except FrameError as err:
            self.stats.record_bad(err, raw)
            return None
        if msg is None:
            return None
        if msg.symbol.upper() != self.symbol:
            self.stats.record_bad(FrameError("symbol", f"frame for {msg.symbol}, subscribed {self.symbol}"), raw)
            return None
        if isinstance(msg, Trade):
            if not self._id_ok("trade id", msg.trade_id, raw, True):
                return None
            if not self._price_ok("trade price", msg.price, raw):
                return None
            self._last_trade_id = msg.trade_id
        elif isinstance(msg, BookTicker):
            if not self._id_ok("bookTicker u", msg.update_id, raw, False):
                return None
            if not self._price_ok("bookTicker mid", msg.mid, raw):
                return None
            self._last_update_id = msg.update_id
        if self._in_handoff and isinstance(msg, Trade):
            self._in_handoff = False  # caught up: the new connection is past the old one
        self.stats.record_good(msg)
        self.last_recv_ms = recv_ms
        try:
            self._on_message(msg, recv_ms)
        except Exception:  # a consumer bug must not kill the feed; it is logged loudly
            self.stats.bad["consumer"] += 1
            log.exception("Binance message handler failed")
        return msg

    def _price_ok(self, what: str, price: float, raw: str | bytes) -> bool:
        """PriceGuard verdict for one frame's price; a refused one is counted under its kind."""
        bad = self.price_guard.check(price)
        if bad is None:
            return True
        self.stats.record_bad(FrameError(bad, f"{what} {price!r} (reference {self.price_guard.ref!r})"), raw)
        return False

    def _id_ok(self, what: str, new_id: int, raw: str | bytes, trade: bool) -> bool:
        """Order check of one id against its watermark; counts and logs every refusal.

        A run of ``OUT_OF_ORDER_RESET`` consecutive "backwards" ids means the watermark
        itself is wrong (a bogus id slipped in as a connection's first frame): it is
        dropped and the stream is followed again.
        """
        last = self._last_trade_id if trade else self._last_update_id
        if new_id <= last:
            if self._in_handoff:  # overlap of the old and new connection after a recycle
                self.handoff_duplicates += 1
                return False
            streak = self._backwards[trade] = self._backwards[trade] + 1
            if streak < OUT_OF_ORDER_RESET:
                self.stats.record_bad(FrameError("out_of_order", f"{what} {new_id} <= {last}"), raw)
                return False
            log.warning("%d consecutive Binance %s values behind the watermark %d: the watermark was "
                        "bogus, following the stream again from %d", streak, what, last, new_id)
            self.watermark_resets += 1
        elif last >= 0 and new_id - last > (MAX_TRADE_ID_JUMP if trade else MAX_UPDATE_ID_JUMP):
            self.stats.record_bad(FrameError("bad_id", f"{what} {new_id} jumps {new_id - last} past {last}"), raw)
            return False
        self._backwards[trade] = 0
        return True

    async def run(self) -> None:
        """Connect, read, reconnect with backoff until :meth:`stop`."""
        attempt = 0
        while not self._stop.is_set():
            reason = "closed"
            ws = None
            try:
                ws, self._handoff = self._handoff, None
                if ws is None:
                    ws = await self._connect()
                    # a fresh connection: ids restart from what it sends (a bogus id seen on the
                    # old one must not make every real trade look out of order forever)
                    self._last_trade_id = self._last_update_id = -1
                else:
                    self._in_handoff = True
                self._ws = ws
                self.connects += 1
                self.connected = True
                log.info("Connected to Binance for %s", self.symbol)
                if self._on_connect is not None:
                    r = self._on_connect()
                    if asyncio.iscoroutine(r):
                        await r
                opened_ms = self._now_ms()
                before = self.stats.good.total()
                reason = await self._read(ws, opened_ms)
                if self.stats.good.total() > before:
                    attempt = 0  # the link worked: start the backoff over
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # DNS, refused, handshake, protocol errors: all retried
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                if ws is not None:
                    try:
                        await ws.close()
                    except Exception:  # already gone
                        pass
                if self.connected:
                    self.connected = False
                    self.disconnects += 1
                    if self._on_disconnect is not None:
                        self._on_disconnect(reason)
            if self._stop.is_set():
                break
            if reason == "recycle":
                continue
            delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, self._rng)
            attempt += 1
            log.warning("Binance stream disconnected (%s); reconnecting in %.2fs", reason, delay)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def _connect(self) -> websockets.ClientConnection:
        return await websockets.connect(self.url, open_timeout=self.open_timeout_s, max_size=2 ** 20,
                                        ping_interval=20, ping_timeout=20, close_timeout=1.0, compression=None)

    async def _read(self, ws: websockets.ClientConnection, opened_ms: int) -> str:
        """Read frames until the connection ends; a side timer recycles it before the 24 h limit.

        (No per-message timeout: ``wait_for`` per frame would cost a task per message.)
        """
        recycled = asyncio.Event()

        async def recycle_timer() -> None:
            while True:
                left_ms = self.reconnect_before_ms - (self._now_ms() - opened_ms)
                if left_ms <= 0:
                    break
                await asyncio.sleep(max(0.01, min(5.0, self._wall_s(left_ms))))
            # make before break: open the replacement first so no trade falls in a gap; the
            # overlap's duplicate frames are dropped by id (handoff_duplicates)
            try:
                self._handoff = await self._connect()
            except Exception as exc:
                log.warning("Replacement Binance connection failed (%s); reconnecting after the close", exc)
            recycled.set()
            self.recycles += 1
            log.info("Recycling the Binance connection before the 24 h limit")
            await ws.close()

        timer = asyncio.create_task(recycle_timer())
        try:
            async for raw in ws:
                self.handle_raw(raw, self._now_ms())
                if self._stop.is_set():
                    break
            code = ws.close_code
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        finally:
            timer.cancel()
        if recycled.is_set():
            return "recycle"
        if self._stop.is_set():
            await ws.close()
            return "stopped"
        return f"connection closed ({code if code is not None else 'no close frame'})"

    def _wall_s(self, sim_ms: float) -> float:
        return self._clock.sleep_s_for_sim_ms(sim_ms)

    async def stop(self) -> None:
        self._stop.set()
        for ws in (self._ws, self._handoff):
            if ws is not None:
                await ws.close()
        self._handoff = None
