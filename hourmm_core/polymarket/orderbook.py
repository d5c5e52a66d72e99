"""Local L2 order books per token, maintained from the market channel.

Pure logic, no I/O: :class:`OrderBook` applies a full ``book`` snapshot and then
``price_change`` deltas. Polymarket's market channel carries no sequence number,
so a lost or reordered message cannot be detected from a counter. Instead the book
marks itself ``needs_resync`` (and refuses to report a top of book) when:

* no snapshot has been applied yet, or the connection was lost (:meth:`invalidate`);
* a delta is older than the last applied delta (timestamp went backwards). A delta older
  than the *snapshot* is skipped instead (counted in ``stale_deltas``): the snapshot already
  includes it — this happens right after (re)subscribing;
* after a delta the exchange's own ``best_bid``/``best_ask`` (sent with each change
  in the current schema) disagree with the locally computed top of book;
* the book is crossed (best bid >= best ask) after a delta.

A stale book is never quoted against: callers get ``None`` for the top of book
until a fresh ``book`` snapshot arrives (the market WS client resubscribes).
Prices are keyed in integer units of 1e-6 so "0.5" and "0.50" are the same level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

_SCALE = 1_000_000


class BookError(ValueError):
    """A book message is malformed (missing fields, non-numeric price/size, bad side)."""


def _key(price: Any) -> int:
    try:
        p = float(price)
    except (TypeError, ValueError):
        raise BookError(f"price {price!r} is not a number") from None
    if not (0.0 <= p <= 1.0):
        raise BookError(f"price {price!r} outside [0, 1]")
    return int(round(p * _SCALE))


def _size(size: Any) -> float:
    try:
        s = float(size)
    except (TypeError, ValueError):
        raise BookError(f"size {size!r} is not a number") from None
    if not (s >= 0.0) or s == float("inf"):
        raise BookError(f"size {size!r} must be a finite number >= 0")
    return s


def _ts(ts: Any) -> int:
    if ts is None or ts == "":
        return 0
    try:
        return int(ts)
    except (TypeError, ValueError):
        try:
            return int(float(ts))
        except (TypeError, ValueError):
            raise BookError(f"timestamp {ts!r} is not an integer") from None


def _levels(raw: Any, what: str) -> dict[int, float]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise BookError(f"{what} must be a list of {{price,size}}")
    out: dict[int, float] = {}
    for lvl in raw:
        if not isinstance(lvl, Mapping) or "price" not in lvl or "size" not in lvl:
            raise BookError(f"{what} level {lvl!r} needs price and size")
        s = _size(lvl["size"])
        if s > 0:
            out[_key(lvl["price"])] = s
    return out


@dataclass(frozen=True)
class TopOfBook:
    """Best bid/ask (None when that side is empty) and sizes, at exchange time ``ts_ms``."""

    bid: float | None
    bid_size: float
    ask: float | None
    ask_size: float
    ts_ms: int

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return 0.5 * (self.bid + self.ask)


class OrderBook:
    """L2 book of one outcome token."""

    __slots__ = ("token_id", "bids", "asks", "ts_ms", "hash", "needs_resync",
                 "resync_reason", "tick_size", "snapshots", "deltas", "resyncs",
                 "last_trade_price", "_bb", "_ba", "_top", "snapshot_ts", "stale_deltas")

    def __init__(self, token_id: str, tick_size: float = 0.01) -> None:
        self.token_id = token_id
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.ts_ms = 0
        self.hash: str | None = None
        self.needs_resync = True
        self.resync_reason = "no snapshot yet"
        self.tick_size = tick_size
        self.snapshots = 0
        self.deltas = 0
        self.resyncs = 0
        self.last_trade_price: float | None = None
        self._bb: int | None = None      # cached best bid / ask keys (recomputed lazily)
        self._ba: int | None = None
        self._top: TopOfBook | None = None
        self.snapshot_ts = 0
        self.stale_deltas = 0

    def _recompute(self) -> None:
        self._bb = max(self.bids) if self.bids else None
        self._ba = min(self.asks) if self.asks else None
        self._top = None

    # -- state changes ---------------------------------------------------------------
    def invalidate(self, reason: str) -> None:
        """Mark the book unusable until the next snapshot (reconnect, gap, inconsistency)."""
        if not self.needs_resync:
            self.resyncs += 1
        self.needs_resync = True
        self.resync_reason = reason

    def apply_snapshot(self, bids: Any, asks: Any, ts_ms: Any = None, hash_: str | None = None) -> None:
        """Replace the whole book (a ``book`` message). Clears ``needs_resync``.

        Raises BookError on malformed input *before* touching the current state.
        """
        nb, na = _levels(bids, "bids"), _levels(asks, "asks")
        ts = _ts(ts_ms)
        self.bids, self.asks = nb, na
        self._recompute()
        self.ts_ms = max(ts, 0)
        self.snapshot_ts = self.ts_ms
        self.hash = hash_
        self.needs_resync = False
        self.resync_reason = ""
        self.snapshots += 1
        if self._crossed():
            self.invalidate("snapshot is crossed")

    def apply_change(self, side: str, price: Any, size: Any, ts_ms: Any = None,
                     hash_: str | None = None, best_bid: Any = None, best_ask: Any = None,
                     check: bool = True) -> bool:
        """Apply one level update (size 0 removes the level). Returns False if ignored.

        Deltas arriving while the book needs a resync are dropped (the coming snapshot
        supersedes them). A delta older than the book marks it for resync.
        """
        sd = str(side).upper()
        if sd not in ("BUY", "SELL", "BID", "ASK"):
            raise BookError(f"side {side!r} must be BUY or SELL")
        k, s, ts = _key(price), _size(size), _ts(ts_ms)
        if self.needs_resync:
            return False
        if ts and ts < self.snapshot_ts:
            # generated before the snapshot we hold, which already includes it: skip. (Levels
            # carry absolute sizes, so replaying it could revert a newer size.)
            self.stale_deltas += 1
            return False
        if ts and ts < self.ts_ms:
            self.invalidate(f"delta timestamp {ts} older than the last applied {self.ts_ms}")
            return False
        if sd in ("BUY", "BID"):
            if s > 0:
                self.bids[k] = s
                if self._bb is None or k > self._bb:
                    self._bb = k
            else:
                self.bids.pop(k, None)
                if k == self._bb:
                    self._bb = max(self.bids) if self.bids else None
        else:
            if s > 0:
                self.asks[k] = s
                if self._ba is None or k < self._ba:
                    self._ba = k
            else:
                self.asks.pop(k, None)
                if k == self._ba:
                    self._ba = min(self.asks) if self.asks else None
        self._top = None
        if ts:
            self.ts_ms = ts
        if hash_:
            self.hash = hash_
        self.deltas += 1
        if check:
            self._check_consistency(best_bid, best_ask)
        return True

    def _check_consistency(self, best_bid: Any, best_ask: Any) -> None:
        if self._crossed():
            self.invalidate("book crossed after delta")
            return
        for given, local, name in ((best_bid, self._best_bid_key(), "best_bid"),
                                   (best_ask, self._best_ask_key(), "best_ask")):
            if given is None or given == "":
                continue
            try:
                g = int(round(float(given) * _SCALE))
            except (TypeError, ValueError):
                continue
            # The exchange reports an empty side as 0 (bid) or 1 (ask).
            if local is None and g in (0, _SCALE):
                continue
            if local != g:
                self.invalidate(f"{name} mismatch: exchange {given} local "
                                f"{None if local is None else local / _SCALE}")
                return

    # -- reads -----------------------------------------------------------------------
    def _best_bid_key(self) -> int | None:
        return self._bb

    def _best_ask_key(self) -> int | None:
        return self._ba

    def _crossed(self) -> bool:
        b, a = self._best_bid_key(), self._best_ask_key()
        return b is not None and a is not None and b >= a

    @property
    def valid(self) -> bool:
        return not self.needs_resync

    def top(self) -> TopOfBook | None:
        """Best bid/ask, or None while the book needs a resync (never quote on a stale book)."""
        if self.needs_resync:
            return None
        if self._top is None:
            b, a = self._bb, self._ba
            self._top = TopOfBook(None if b is None else b / _SCALE, self.bids[b] if b is not None else 0.0,
                                  None if a is None else a / _SCALE, self.asks[a] if a is not None else 0.0,
                                  self.ts_ms)
        return self._top

    def levels(self, side: str, depth: int = 10) -> list[tuple[float, float]]:
        """Top ``depth`` levels of one side as (price, size), best first."""
        sd = side.upper()
        if sd in ("BUY", "BID", "BIDS"):
            ks = sorted(self.bids, reverse=True)[:depth]
            return [(k / _SCALE, self.bids[k]) for k in ks]
        ks = sorted(self.asks)[:depth]
        return [(k / _SCALE, self.asks[k]) for k in ks]

    def depth_at_or_better(self, side: str, price: float) -> float:
        """Total size resting on ``side`` at prices at least as good as ``price``."""
        k = int(round(price * _SCALE))
        if side.upper() in ("BUY", "BID"):
            return sum(s for p, s in self.bids.items() if p >= k)
        return sum(s for p, s in self.asks.items() if p <= k)


class BookSet:
    """Books of several tokens, fed with parsed market-channel payloads (dicts).

    ``apply(msg)`` understands ``book``, ``price_change`` (both the current
    ``price_changes`` list schema and the older per-asset ``changes`` schema),
    ``tick_size_change`` and ``last_trade_price``. Messages for unknown tokens are
    ignored (counted), malformed ones raise :class:`BookError` to the caller, which
    counts and logs them.
    """

    def __init__(self, token_ids: Iterable[str] = (), tick_size: float = 0.01) -> None:
        self.books: dict[str, OrderBook] = {t: OrderBook(t, tick_size) for t in token_ids}
        self.unknown_asset = 0

    def reset(self, token_ids: Iterable[str], tick_size: float = 0.01) -> None:
        """Track a new set of tokens (market roll): old books are dropped."""
        self.books = {t: OrderBook(t, tick_size) for t in token_ids}

    def invalidate_all(self, reason: str) -> None:
        for b in self.books.values():
            b.invalidate(reason)

    def get(self, token_id: str) -> OrderBook | None:
        return self.books.get(token_id)

    @property
    def all_valid(self) -> bool:
        return bool(self.books) and all(b.valid for b in self.books.values())

    def apply(self, msg: Mapping[str, Any]) -> list[str]:
        """Apply one message; return the token ids whose book changed."""
        if not isinstance(msg, Mapping):
            raise BookError("message must be a JSON object")
        et = msg.get("event_type")
        if et == "book":
            book = self._book(msg.get("asset_id"))
            if book is None:
                return []
            bids = msg.get("bids", msg.get("buys"))
            asks = msg.get("asks", msg.get("sells"))
            if bids is None and asks is None:
                raise BookError("book message without bids/asks")
            book.apply_snapshot(bids, asks, msg.get("timestamp"), msg.get("hash"))
            return [book.token_id]
        if et == "price_change":
            ts = msg.get("timestamp")
            changed: list[str] = []
            if "price_changes" in msg:
                pcs = msg["price_changes"]
                if not isinstance(pcs, list):
                    raise BookError("price_changes must be a list")
                for pc in pcs:  # validate the whole message before touching any book
                    if not isinstance(pc, Mapping):
                        raise BookError("price_changes entry must be an object")
                    self._book(pc.get("asset_id"), count=False)
                # best_bid/best_ask describe the book after the whole message: check them once
                # per asset after its last change, not after each change.
                last: dict[str, tuple[Any, Any]] = {}
                for pc in pcs:
                    book = self._book(pc.get("asset_id"))
                    if book is None:
                        continue
                    try:
                        applied = book.apply_change(pc.get("side", ""), pc.get("price"), pc.get("size"), ts,
                                                    pc.get("hash"), check=False)
                    except BookError as exc:
                        # earlier entries of this message may be applied already: the book is no
                        # longer known to be right, so it waits for a fresh snapshot
                        if changed:
                            for t in changed:
                                self.books[t].invalidate(f"malformed price_change: {exc}")
                        raise
                    if applied:
                        if book.token_id not in changed:
                            changed.append(book.token_id)
                        last[book.token_id] = (pc.get("best_bid"), pc.get("best_ask"))
                for tid, (bb, ba) in last.items():
                    b = self.books[tid]
                    if not b.needs_resync:
                        b._check_consistency(bb, ba)
                return changed
            changes = msg.get("changes")
            if not isinstance(changes, list):
                raise BookError("price_change without price_changes/changes list")
            book = self._book(msg.get("asset_id"))
            if book is None:
                return []
            for ch in changes:
                if not isinstance(ch, Mapping):
                    raise BookError("changes entry must be an object")
                if book.apply_change(ch.get("side", ""), ch.get("price"), ch.get("size"), ts, msg.get("hash")):
                    if book.token_id not in changed:
                        changed.append(book.token_id)
            return changed
        if et == "tick_size_change":
            book = self._book(msg.get("asset_id"))
            if book is None:
                return []
            try:
                book.tick_size = float(msg["new_tick_size"])
            except (KeyError, TypeError, ValueError):
                raise BookError("tick_size_change without a numeric new_tick_size") from None
            # levels on the old grid may be re-keyed by the venue: trust nothing until a fresh book
            book.invalidate(f"tick size changed to {book.tick_size:g}")
            return [book.token_id]
        if et == "last_trade_price":
            book = self._book(msg.get("asset_id"))
            if book is None:
                return []
            try:
                book.last_trade_price = float(msg["price"])
            except (KeyError, TypeError, ValueError):
                raise BookError("last_trade_price without a numeric price") from None
            return []
        return []

    def _book(self, asset_id: Any, count: bool = True) -> OrderBook | None:
        if not isinstance(asset_id, str) or not asset_id:
            raise BookError("message without asset_id")
        b = self.books.get(asset_id)
        if b is None and count:
            self.unknown_asset += 1
        return b
