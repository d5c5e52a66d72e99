"""Working orders, their life cycle, inventory and reserved capital; diff desired vs working.

Why: quoting is a control loop that runs on every snapshot (50 Hz). Re-sending orders
on every tick would churn the exchange's queue priority and hit rate limits, so the
manager keeps an order whose price is within ``price_tol`` and remaining size within
``size_tol`` (relative) of a desired quote, cancels the rest and places what is
missing — never more than MAX_OPEN_ORDERS working, never faster than a token bucket.

Order state machine (``OrderState``)::

    INTENT -> SENT -> LIVE -> PARTIAL -> FILLED
                 \\       \\        \\-> CANCELLING -> CANCELLED
                  \\-> REJECTED       (LIVE -> CANCELLING too; MATCHED on placement -> FILLED)
    SENT -> CANCELLING (cancel before the ack, by the signed order's hash: ``Order.early``)

Cancel before the ack (issue 15): on Polymarket the order id IS the signed order's EIP-712
hash, known locally once the order is signed (``Order.local_id``, set with :meth:`OrderManager.on_sent`).
An order whose POST is in flight can be cancelled by that hash (:meth:`on_cancel_sent` on an
order without an exchange id). Its sub-state ``early``:

* ``EARLY_SENT``: the cancel is in flight, its answer not in yet. An ack meanwhile does not
  book the order LIVE (it stays CANCELLING: the answer decides).
* the venue answers ``canceled`` -> CANCELLED (FILLED if it had filled): final; a later ack
  only records the id.
* the venue answers ``not_canceled`` (it did not know the hash yet: the cancel overtook the
  POST; or the order had matched): not a failed cancel (no fail-closed rule trips) and not
  "gone": ``EARLY_MISSED``, still CANCELLING. Once the order is acked (before or after that
  answer), :meth:`recancel_due` says the caller must cancel it again at once, by its id (a
  normal cancel: ``early`` back to 0, the usual outcome rules).
* the POST is rejected -> REJECTED (final): the cancel's answer, whichever it is, changes nothing.
* an ack whose status says the venue has already cancelled the order (the executor's recovered
  path) -> CANCELLED (FILLED if filled in full): final, with or without a cancel before it.
* user-WebSocket events find the order by its hash from the moment its early cancel is sent
  (fills count once, a CANCELLATION makes it final, a PLACEMENT/UPDATE never books it LIVE).

Inventory and capital come only from fills (user WebSocket trades, or exchange trades
at reconciliation), each de-duplicated by (trade id, order id), so a replayed message
never double-counts. Pure logic: no I/O, time passed in as ``now_ms``.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterable, Sequence

from hourmm_core.quant.plan import order_aggregates, plan_orders, prune_order
from hourmm_core.trading.types import BUY, DOWN, SELL, SIDE_NAMES, TOKEN_NAMES, UP, Fill, Quote

log = logging.getLogger(__name__)


class OrderState(str, Enum):
    INTENT = "INTENT"
    SENT = "SENT"
    LIVE = "LIVE"
    PARTIAL = "PARTIAL"
    CANCELLING = "CANCELLING"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset((OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED))


# the members as module constants (a global load, not an enum class-attribute lookup: hot path)
_INTENT, _SENT, _LIVE, _PARTIAL, _CANCELLING = (OrderState.INTENT, OrderState.SENT, OrderState.LIVE,
                                                OrderState.PARTIAL, OrderState.CANCELLING)
_FILLED, _CANCELLED, _REJECTED = OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED

# ``Order.early``: a cancel requested before the POST's ack (see the module docstring)
EARLY_NONE, EARLY_SENT, EARLY_MISSED = 0, 1, 2


@dataclass(slots=True)
class Order:
    """One of our orders from intent to a final state."""

    client_id: str
    token: int
    side: int
    price: float
    size: float
    reduce: bool
    created_ms: int
    state: OrderState = OrderState.INTENT
    order_id: str | None = None
    filled: float = 0.0
    fill_sum: float = 0.0     # sum of applied fills; ``filled`` = max(fill_sum, exchange's size_matched)
    updated_ms: int = 0
    reason: str = ""
    local_id: str | None = None   # the signed order's hash (the venue's order id), known before the POST
    early: int = EARLY_NONE       # cancel requested before the ack: EARLY_SENT / EARLY_MISSED

    @property
    def remaining(self) -> float:
        return max(0.0, self.size - self.filled)

    @property
    def is_open(self) -> bool:
        return self.state not in _FINAL

    def mark(self) -> tuple[OrderState, float, str | None]:
        """The fields of :meth:`describe` that change over the order's life (token, side, price
        and size never do): ``describe(o.mark())`` later describes the order as it was now."""
        return self.state, self.filled, self.order_id

    def describe(self, as_of: tuple[OrderState, float, str | None] | None = None) -> str:
        state, filled, order_id = as_of if as_of is not None else (self.state, self.filled, self.order_id)
        return (f"{SIDE_NAMES[self.side]} {self.size:g} {TOKEN_NAMES[self.token]} @ {self.price:g} "
                f"[{state.value} filled={filled:g} id={order_id or '-'}]")


@dataclass(slots=True)
class Action:
    """What the executor must do: ``place`` a new order or ``cancel`` a working one (read-only
    by convention; not frozen: a frozen dataclass's ``__init__`` is ~3x dearer on the hot path)."""

    kind: str  # "place" | "cancel"
    order: Order


class TokenBucket:
    """Rate limit (actions per second with a burst), driven by the ``now_ms`` passed in."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last_ms: int | None = None

    def _refill(self, now_ms: int) -> None:
        last = self.last_ms
        if last is None or now_ms > last:
            if last is not None:
                self.tokens = min(self.burst, self.tokens + (now_ms - last) * self.rate / 1000.0)
            self.last_ms = now_ms

    def available(self, now_ms: int) -> int:
        self._refill(now_ms)
        return int(self.tokens)

    def spend(self, now_ms: int, k: int) -> None:
        """``k`` calls of ``take(now_ms)`` in one (the same floats: one refill, then 1 at a time)."""
        self._refill(now_ms)
        for _ in range(k):
            if self.tokens >= 1:
                self.tokens -= 1

    def take(self, now_ms: int, n: int = 1) -> bool:
        self._refill(now_ms)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


CheckFn = Callable[[Quote], int]


@dataclass(slots=True)
class PlanResult:
    """Actions plus what was held back and why (for journaling / counters)."""

    actions: list[Action]
    kept: int = 0
    rejected: list[tuple[Quote, int]] = field(default_factory=list)
    deferred_rate: int = 0
    deferred_slots: int = 0
    # working orders the plan would cancel but cannot yet (no exchange id: their POST has not
    # been answered, or not sent); cancelled on a later pass, once acked
    unacked: list[Order] = field(default_factory=list)


class OrderManager:
    """Desired-vs-working diff, order states, inventory and capital for one market."""

    def __init__(self, price_tol: float = 0.005, size_tol: float = 0.2,
                 rate_per_s: float = 10.0, burst: float = 20.0) -> None:
        self.price_tol = price_tol
        self.size_tol = size_tol
        self.bucket = TokenBucket(rate_per_s, burst)
        self.orders: dict[str, Order] = {}
        self.by_exchange_id: dict[str, str] = {}
        self.yes_tokens = 0.0
        self.no_tokens = 0.0
        self.cost = [0.0, 0.0]      # cost basis of held tokens per token
        self.cash = 0.0             # USDC flow from fills this market (negative = spent)
        self.fees = 0.0
        self.volume = 0.0
        self.n_fills = 0
        self._seen_fills: set[tuple[str, str]] = set()
        self._early_fills: dict[str, float] = {}   # fills whose order id we had not learnt yet
        self._ids = itertools.count(1)
        self._prefix = "c"

    # ---- market lifecycle ---------------------------------------------------------
    def reset(self, prefix: str = "c") -> None:
        """Forget everything (new market): orders, inventory and counters."""
        self.__init__(self.price_tol, self.size_tol, self.bucket.rate, self.bucket.burst)  # type: ignore[misc]
        self._prefix = prefix

    # ---- views -----------------------------------------------------------------------
    def position(self, token: int) -> float:
        return self.yes_tokens if token == UP else self.no_tokens

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.state not in _FINAL]

    def aggregates(self) -> tuple[list[Order], float, float, float, float, float]:
        """One pass over open orders: (open, buy_up, buy_down, sell_up, sell_down, buy_notional).

        Sizes are remaining sizes; the decision loop calls this once per pass (hot path).
        """
        return order_aggregates(self.orders.values(), _FINAL)   # compiled (quant/plan.pyx)

    @property
    def open_count(self) -> int:
        return sum(1 for o in self.orders.values() if o.is_open)

    @property
    def working_count(self) -> int:
        """Orders the exchange may hold: sent and not final (what /status reports).

        Excludes INTENT orders of a plan whose cancels are still in flight, so a
        cancel-then-replace never shows more than MAX_OPEN_ORDERS.
        """
        return sum(1 for o in self.orders.values() if o.state not in _FINAL and o.state is not _INTENT)

    def open_buy_notional(self) -> float:
        return sum(o.price * o.remaining for o in self.orders.values() if o.is_open and o.side == BUY)

    def open_size(self, token: int, side: int) -> float:
        return sum(o.remaining for o in self.orders.values()
                   if o.is_open and o.token == token and o.side == side)

    def reserved_capital(self) -> float:
        """USDC committed this market: cost of tokens held plus open buy orders."""
        return self.cost[UP] + self.cost[DOWN] + self.open_buy_notional()

    def pnl(self, fair_up: float | None) -> float | None:
        """Mark-to-fair PnL of this market (cash flow + inventory at fair), after fees."""
        if fair_up is None:
            return None
        return self.cash - self.fees + self.yes_tokens * fair_up + self.no_tokens * (1.0 - fair_up)

    # ---- planning --------------------------------------------------------------------
    def plan(self, desired: Sequence[Quote], now_ms: int, max_open_orders: int,
             check: CheckFn | None = None, places: bool = True,
             working: list[Order] | None = None) -> PlanResult:
        """Actions turning the working set into ``desired`` (priority = list order).

        Cancels come first in the returned list and free their slots; the caller must run
        them before the places and drop the places if a cancel fails.
        ``check`` (the risk engine's compiled pre-trade check) returns 0 to allow a quote.
        ``places=False``: the cancels only (same rule), nothing placed or counted for the
        missing quotes (the trader's cancel fast path while a pass is in flight).
        ``working``: the open orders in ``self.orders`` order, if the caller has them already
        (``aggregates()[0]`` of this pass; saves a pass over the orders).
        """
        if working is None:
            working = [o for o in self.orders.values() if o.state not in _FINAL]
        # A working order keeps a quote when token and side are equal, it is not being cancelled,
        # |price - quote price| <= price_tol and |remaining - quote size| <= size_tol * quote size
        # (each + 1e-9); quotes in order, each by the first free working order that matches. The
        # unmatched free ones are cancelled (those without an exchange id are listed as unacked:
        # cancelled on a later pass, once acked), one rate token each; then the missing quotes go,
        # in priority order, through the slots left, ``check`` and the rate budget (one token per
        # place). Compiled whole: hourmm_core.quant.plan.plan_orders (twin: reference/plan.py).
        bucket = self.bucket
        actions, kept, rejected, dr, ds, unacked, n_cancel = plan_orders(
            desired if type(desired) is list else list(desired), working, _CANCELLING, self.price_tol + 1e-9,
            self.size_tol, bucket.available(now_ms), max_open_orders, places, check, self.new_order, now_ms, Action)
        if n_cancel:
            bucket.spend(now_ms, n_cancel)   # one token per cancel (budget <= the bucket's tokens)
        if len(actions) > n_cancel:
            bucket.spend(now_ms, len(actions) - n_cancel)   # one token per place
        return PlanResult(actions, kept, rejected, dr, ds, unacked)

    def cancel_all_actions(self) -> list[Action]:
        """Cancel every open order that has an exchange id (no rate limit: safety first)."""
        return [Action("cancel", o) for o in self.orders.values()
                if o.is_open and o.order_id is not None and o.state is not _CANCELLING]

    # ---- order events ----------------------------------------------------------------
    def new_order(self, q: Quote, now_ms: int) -> Order:
        cid = f"{self._prefix}{next(self._ids)}"
        o = Order(cid, q.token, q.side, q.price, q.size, q.reduce, now_ms, updated_ms=now_ms)
        self.orders[cid] = o
        return o

    def adopt(self, order_id: str, token: int, side: int, price: float, size: float,
              filled: float, now_ms: int) -> Order:
        """Take over a live exchange order found at start-up reconciliation."""
        if order_id in self.by_exchange_id:
            return self.orders[self.by_exchange_id[order_id]]
        o = self.new_order(Quote(token, side, price, size), now_ms)
        o.order_id = order_id
        o.filled = filled
        o.state = _PARTIAL if filled > 0 else _LIVE
        self.by_exchange_id[order_id] = o.client_id
        return o

    def on_sent(self, o: Order, now_ms: int, local_id: str | None = None) -> None:
        """The POST is about to be written; ``local_id``: the signed order's hash, if known."""
        if o.state is _INTENT:
            o.state = _SENT
            o.updated_ms = now_ms
            if local_id:
                o.local_id = local_id

    @staticmethod
    def cancellable_before_ack(o: Order) -> bool:
        """Its POST is written (SENT), its hash is known, no cancel requested yet: it can be
        cancelled by the hash before the ack (:meth:`on_cancel_sent`)."""
        return o.state is _SENT and o.order_id is None and bool(o.local_id) and o.early == EARLY_NONE

    def on_ack(self, o: Order, order_id: str, status: str, now_ms: int) -> None:
        """Exchange accepted the order (status ``live``, ``matched``, ``delayed``, ...; ``canceled``
        when the executor found an ambiguous POST's order already cancelled: booked final)."""
        o.order_id = order_id
        self.by_exchange_id[order_id] = o.client_id
        o.updated_ms = now_ms
        early = self._early_fills.pop(order_id, 0.0)
        if early:
            o.fill_sum += early
            o.filled = min(o.size, max(o.filled, o.fill_sum))
        if o.state in _FINAL:
            return
        st = (status or "").lower()
        if st.startswith("cancel"):
            # the venue reports it cancelled already (the executor's recovered path: an ambiguous
            # POST whose order was found, cancelled meanwhile): final, never working (also after a
            # cancel before the ack: nothing is left to cancel again)
            o.state = _FILLED if o.remaining <= 1e-9 else _CANCELLED
            return
        if o.state is _CANCELLING:
            return   # a cancel before the ack: CANCELLING until its answer (or a re-cancel: recancel_due)
        if st == "matched" and o.filled >= o.size - 1e-9:
            o.state = _FILLED
        elif o.filled > 0:
            o.state = _PARTIAL
        else:
            o.state = _LIVE

    def on_reject(self, o: Order, reason: str, now_ms: int) -> None:
        o.state = _REJECTED
        o.reason = reason
        o.updated_ms = now_ms

    def on_cancel_sent(self, o: Order, now_ms: int) -> None:
        """A cancel of ``o`` is about to be written: by its exchange id, or before the ack by its
        hash (``o.local_id``; then ``o.early`` = EARLY_SENT and the hash finds the order)."""
        if o.state in _FINAL:
            return
        o.state = _CANCELLING
        o.updated_ms = now_ms
        if o.order_id is None and o.local_id:
            o.early = EARLY_SENT
            self.by_exchange_id[o.local_id] = o.client_id
        else:
            o.early = EARLY_NONE     # a cancel by the id: the usual outcome rules

    def cancel_id(self, o: Order) -> str | None:
        """The id a cancel of ``o`` is sent with: the exchange's, else (before the ack) the hash."""
        return o.order_id or o.local_id

    @staticmethod
    def recancel_due(o: Order) -> bool:
        """A cancel before the ack missed (the venue did not have the order yet) and the order is
        now acked and open: the caller must cancel it again at once, by its id."""
        return o.early == EARLY_MISSED and o.order_id is not None and o.state not in _FINAL

    def release_early(self, o: Order, now_ms: int) -> None:
        """Give up a missed cancel before the ack (the order cannot be cancelled now, e.g. its
        submit outcome is unknown): the order is booked as the venue has it (LIVE / PARTIAL), so
        the next plan cancels it like any working order once it may."""
        if o.early and o.state is _CANCELLING:
            o.state = _PARTIAL if o.filled > 0 else _LIVE
            o.updated_ms = now_ms
        o.early = EARLY_NONE

    def on_cancelled(self, order_id: str, now_ms: int) -> Order | None:
        """Exchange confirmed the cancel (REST response or user WS CANCELLATION)."""
        o = self.by_order_id(order_id)
        if o is not None and o.state not in _FINAL:
            o.state = _FILLED if o.remaining <= 1e-9 else _CANCELLED
            o.updated_ms = now_ms
        return o

    def on_cancel_failed(self, order_id: str, reason: str, now_ms: int) -> Order | None:
        """Cancel refused. If the exchange no longer knows the order it is gone; else retry."""
        o = self.by_order_id(order_id)
        if o is None or o.state in _FINAL:
            return o
        o.reason = reason
        o.updated_ms = now_ms
        if o.early:
            # a cancel before the ack: the venue may not have had the order yet (any reason text
            # means the same here): missed, not failed and not gone; the ack decides (recancel_due)
            o.early = EARLY_MISSED
            return o
        low = reason.lower()
        if "not found" in low or "already" in low or "matched" in low or "canceled" in low or "cancelled" in low:
            o.state = _FILLED if o.remaining <= 1e-9 else _CANCELLED
        else:
            o.state = _PARTIAL if o.filled > 0 else _LIVE
        return o

    def by_order_id(self, order_id: str | None) -> Order | None:
        if order_id is None:
            return None
        cid = self.by_exchange_id.get(order_id)
        return None if cid is None else self.orders.get(cid)

    def on_order_update(self, order_id: str, size_matched: float | None, status: str,
                        now_ms: int) -> Order | None:
        """User-WS order event (PLACEMENT / UPDATE / CANCELLATION) for one of our orders."""
        o = self.by_order_id(order_id)
        if o is None:
            return None
        if size_matched is not None and size_matched > o.filled:
            o.filled = min(o.size, size_matched)
        st = (status or "").upper()
        o.updated_ms = now_ms
        if o.state in _FINAL:
            return o
        if st in ("CANCELLATION", "CANCELED", "CANCELLED"):
            o.state = _FILLED if o.remaining <= 1e-9 else _CANCELLED
        elif o.remaining <= 1e-9:
            o.state = _FILLED
        elif o.filled > 0 and o.state is not _CANCELLING:
            o.state = _PARTIAL
        elif o.state is _INTENT or o.state is _SENT:
            o.state = _LIVE
        return o

    def on_merge(self, size: float) -> None:
        """CTF merge of ``size`` Up+Down pairs: both positions drop by ``size``, cash +size USDC."""
        if not (size > 0) or size > min(self.yes_tokens, self.no_tokens) + 1e-9:
            raise ValueError(f"merge of {size} exceeds the pairs held ({self.yes_tokens}, {self.no_tokens})")
        for t in (UP, DOWN):
            held = self.position(t)
            self.cost[t] *= max(0.0, held - size) / held if held > 1e-12 else 0.0
        self.yes_tokens = max(0.0, self.yes_tokens - size)
        self.no_tokens = max(0.0, self.no_tokens - size)
        self.cash += size

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill to inventory and cash; False if already seen (replay) or invalid."""
        key = (fill.trade_id, fill.order_id or "")
        if key in self._seen_fills:
            return False
        if not (fill.size > 0 and 0.0 <= fill.price <= 1.0) or fill.token not in (UP, DOWN) \
                or fill.side not in (BUY, SELL):
            log.warning("Ignoring invalid fill %s", fill)
            return False
        self._seen_fills.add(key)
        t = fill.token
        held = self.position(t)
        if fill.side == BUY:
            new = held + fill.size
            self.cost[t] += fill.price * fill.size
            self.cash -= fill.price * fill.size
        else:
            new = held - fill.size
            if held > 1e-12:
                self.cost[t] *= max(0.0, new) / held
            self.cash += fill.price * fill.size
            if new < -1e-9:
                log.warning("Fill %s leaves a negative %s position %.6f", fill.trade_id, TOKEN_NAMES[t], new)
        if t == UP:
            self.yes_tokens = new
        else:
            self.no_tokens = new
        self.fees += fill.fee
        self.volume += fill.price * fill.size
        self.n_fills += 1
        o = self.by_order_id(fill.order_id)
        if o is None and fill.order_id:
            self._early_fills[fill.order_id] = self._early_fills.get(fill.order_id, 0.0) + fill.size
        if o is not None:
            o.fill_sum += fill.size
            o.filled = min(o.size, max(o.filled, o.fill_sum))
            o.updated_ms = fill.ts_ms
            if o.state not in _FINAL:
                if o.remaining <= 1e-9:
                    o.state = _FILLED
                elif o.state is not _CANCELLING:
                    o.state = _PARTIAL
        return True

    def reverse_fill(self, trade_id: str, order_id: str | None, token: int, side: int, price: float,
                     size: float, ts_ms: int) -> bool:
        """Undo a fill whose trade FAILED on chain (the venue reverts it). Only if it was applied."""
        if (trade_id, order_id or "") not in self._seen_fills:
            return False
        return self.on_fill(Fill(trade_id + "#failed", None, token, SELL if side == BUY else BUY, price, size, ts_ms))

    def prune(self, keep_final: int = 200) -> None:
        """Drop the oldest final orders so memory stays bounded over a long hour."""
        # the oldest final ones (stable sort by updated_ms), all but keep_final (compiled scan)
        for o in prune_order(self.orders.values(), _FINAL, keep_final):
            self.orders.pop(o.client_id, None)
            if o.order_id:
                self.by_exchange_id.pop(o.order_id, None)
            if o.local_id:
                self.by_exchange_id.pop(o.local_id, None)

    def set_positions(self, yes_tokens: float, no_tokens: float, cost_up: float = 0.0,
                      cost_down: float = 0.0) -> None:
        """Seed inventory from the exchange at reconciliation (positions held before start)."""
        self.yes_tokens, self.no_tokens = yes_tokens, no_tokens
        self.cost = [cost_up, cost_down]


def describe_actions(actions: Iterable[Action]) -> str:
    return "; ".join(f"{a.kind} {a.order.describe()}" for a in actions)
