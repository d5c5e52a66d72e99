"""Binance market-data frames: strict parsing into small immutable records.

A frame from the network is untrusted. ``parse_frame`` either returns a
:class:`Trade` / :class:`BookTicker` (or None for harmless control replies such
as ``{"result": null, "id": 1}``) or raises :class:`FrameError` whose ``kind``
says what was wrong, so the caller can count bad frames per kind, log each kind
once, skip the frame and carry on.

Wire formats (spot):
- combined stream envelope ``{"stream": "btcusdt@trade", "data": {...}}``
- trade ``{"e":"trade","E":ms,"s":"BTCUSDT","t":id,"p":"50000.01","q":"0.001","T":ms,"m":true}``
  (``M`` is ignored)
- bookTicker ``{"u":id,"s":"BTCUSDT","b":"..","B":"..","a":"..","A":".."}``; spot sends no
  ``E``/``T``, futures does: both are accepted when present.
"""
from __future__ import annotations

import logging
from hourmm_core import safe_json
from collections import Counter
from typing import Any, NamedTuple, Union

log = logging.getLogger(__name__)


class FrameError(ValueError):
    """A frame failed validation. ``kind`` is a short stable label used for counting."""

    def __init__(self, kind: str, msg: str) -> None:
        super().__init__(f"{kind}: {msg}")
        self.kind = kind


class Trade(NamedTuple):
    """One spot trade. ``trade_ms`` is the match time; ``is_buyer_maker`` true = aggressive seller.

    (A NamedTuple: immutable and ~3x cheaper to build than a frozen dataclass, per frame.)
    """

    symbol: str
    trade_id: int
    price: float
    qty: float
    trade_ms: int
    event_ms: int
    is_buyer_maker: bool


class BookTicker(NamedTuple):
    """Best bid/offer update. ``event_ms`` is None on spot (Binance omits it there)."""

    symbol: str
    update_id: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    event_ms: int | None = None

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)


Message = Union[Trade, BookTicker]


MAX_FRAME_BYTES = 1 << 20   # the WS client's max_size too
MAX_FRAME_DEPTH = 8          # real frames nest 2 deep (envelope -> data)

_NUM_TYPES = (str, float, int)
_INF = float("inf")


def _num(d: dict[str, Any], key: str, kind: str, positive: bool) -> float:
    v = d.get(key)
    if type(v) in _NUM_TYPES:  # exact types: rejects bool (a subclass of int) and None
        try:
            x = float(v)  # type: ignore[arg-type]
        except ValueError:
            raise FrameError(kind, f"field {key!r} is not a number: {v!r}") from None
        if (x > 0.0 if positive else x >= 0.0) and x < _INF:  # NaN fails both comparisons
            return x
        raise FrameError(kind, f"field {key!r} out of range: {v!r}")
    raise FrameError(kind, f"field {key!r} missing or not a number: {v!r}")


def _int(d: dict[str, Any], key: str, kind: str, required: bool = True) -> int | None:
    v = d.get(key)
    if type(v) is int and v >= 0:
        return v
    if v is None and not required:
        return None
    raise FrameError(kind, f"field {key!r} missing or not a non-negative integer: {v!r}")


def _symbol(d: dict[str, Any], kind: str) -> str:
    s = d.get("s")
    if not isinstance(s, str) or not s:
        raise FrameError(kind, f"field 's' missing or not a string: {s!r}")
    return s


def parse_trade(d: dict[str, Any]) -> Trade:
    """Validate a trade payload (the ``data`` of the envelope)."""
    kind = "trade"
    m = d.get("m")
    if not isinstance(m, bool):
        raise FrameError(kind, f"field 'm' missing or not a bool: {m!r}")
    return Trade(
        symbol=_symbol(d, kind), trade_id=_int(d, "t", kind),  # type: ignore[arg-type]
        price=_num(d, "p", kind, True), qty=_num(d, "q", kind, False),
        trade_ms=_int(d, "T", kind), event_ms=_int(d, "E", kind),  # type: ignore[arg-type]
        is_buyer_maker=m,
    )


def parse_book_ticker(d: dict[str, Any]) -> BookTicker:
    """Validate a bookTicker payload; a crossed book (bid > ask) is rejected."""
    kind = "bookTicker"
    bid = _num(d, "b", kind, True)
    ask = _num(d, "a", kind, True)
    if bid > ask:
        raise FrameError(kind, f"crossed book bid {bid} > ask {ask}")
    ev = _int(d, "E", kind, required=False)
    if ev is None:
        ev = _int(d, "T", kind, required=False)
    return BookTicker(
        symbol=_symbol(d, kind), update_id=_int(d, "u", kind),  # type: ignore[arg-type]
        bid=bid, bid_qty=_num(d, "B", kind, False), ask=ask, ask_qty=_num(d, "A", kind, False),
        event_ms=ev,
    )


def parse_payload(d: Any, stream: str | None = None) -> Message | None:
    """Dispatch a decoded payload by stream name (combined) or by its own fields (raw /ws)."""
    if not isinstance(d, dict):
        raise FrameError("envelope", f"payload is not an object: {type(d).__name__}")
    if stream is not None:
        suffix = stream.rsplit("@", 1)[-1]
        if suffix == "trade":
            return parse_trade(d)
        if suffix == "bookTicker":
            return parse_book_ticker(d)
        raise FrameError("unknown_stream", f"unsubscribed stream {stream!r}")
    e = d.get("e")
    if e == "trade":
        return parse_trade(d)
    if e == "bookTicker" or (e is None and "u" in d and "b" in d and "a" in d):
        return parse_book_ticker(d)
    if "result" in d and "id" in d:
        return None  # reply to a SUBSCRIBE/LIST request
    raise FrameError("unknown_event", f"unknown event type {e!r}")


def parse_frame(raw: str | bytes) -> Message | None:
    """Parse one WebSocket text frame (combined-stream envelope or raw payload)."""
    try:
        obj = safe_json.loads(raw, max_bytes=MAX_FRAME_BYTES, max_depth=MAX_FRAME_DEPTH, what="frame")
    except safe_json.JsonInputError as exc:
        raise FrameError("json", str(exc)) from None
    if isinstance(obj, dict) and "stream" in obj:
        stream = obj.get("stream")
        if not isinstance(stream, str) or "data" not in obj:
            raise FrameError("envelope", "combined-stream frame without string 'stream' and 'data'")
        return parse_payload(obj["data"], stream)
    return parse_payload(obj)


class FrameStats:
    """Counts good and bad frames per kind; logs the first bad frame of each kind once."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.good: Counter[str] = Counter()
        self.bad: Counter[str] = Counter()
        self._log = logger or log

    def record_good(self, msg: Message) -> None:
        self.good["trade" if isinstance(msg, Trade) else "bookTicker"] += 1

    def record_bad(self, err: FrameError, raw: str | bytes | None = None) -> None:
        first = self.bad[err.kind] == 0
        self.bad[err.kind] += 1
        if first:
            snippet = raw[:200] if raw is not None else ""
            self._log.warning("Bad Binance frame skipped (%s); further %s errors are counted, not logged. "
                              "Frame: %r", err, err.kind, snippet)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())
