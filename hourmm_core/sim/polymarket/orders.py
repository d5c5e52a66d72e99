"""Value types of the simulated CLOB: units, order/fill/market records, the venue's error strings.

Split from :mod:`hourmm_core.sim.polymarket.engine` (the matching engine) so each file has
one job; the engine re-exports every name here, so ``from ...engine import Order`` keeps
working.

Units (why integers): money must be conserved exactly, so prices are held in 1e-4 units,
sizes in 1e-2 shares and USDC in 1e-6 (:mod:`hourmm_core.fees` holds the scales), and
price*size is exactly a number of USDC micro-units.
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from hourmm_core.fees import NO_FEES, PRICE_SCALE, SIZE_SCALE, USDC_SCALE, FeeSchedule, taker_fee_units
from hourmm_core.sim.polymarket.wire import fmt_decimal

# price units per 1.0, size units per share, USDC micro-units per 1 USDC: shared with the fee
assert PRICE_SCALE * SIZE_SCALE == USDC_SCALE

BUY = "BUY"
SELL = "SELL"
ORDER_TYPES = ("GTC", "GTD", "FOK", "FAK")

# Real CLOB error strings (docs.polymarket.com "Order placement errors").
ERR_BALANCE = "not enough balance / allowance"
ERR_POST_ONLY = "invalid post-only order: order crosses book"
ERR_FOK = "order couldn't be fully filled. FOK orders are fully filled or killed."
ERR_FAK = "no orders found to match with FAK order. FAK orders are partially filled or killed if no match is found."
ERR_DUPLICATE = "order is invalid. Duplicated."
ERR_EXPIRATION = "invalid expiration"
ERR_NOT_ACCEPTING = "the market is not accepting orders"
ERR_NOT_READY = "the market is not yet ready to process new orders"

Listener = Callable[[dict[str, Any]], None]


class EngineError(ValueError):
    """A request the exchange refuses (bad token, unknown order, bad numbers)."""


def sim_id_ref(prefix: str, seed: object, seq: int, draw: float) -> str:
    """The engine's id of a (prefix, seed, seq, draw): ``"0x" + SHA-256`` hex for orders and
    ``transaction_hash`` use, the uuid layout of the digest's first 32 hex chars otherwise (trades).
    Plain-Python reference twin of the compiled :mod:`hourmm_core.sim.polymarket.wire`."""
    h = hashlib.sha256(f"{prefix}:{seed}:{seq}:{draw}".encode()).hexdigest()
    return "0x" + h if prefix == "order" else f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def price_to_units(price: float) -> int:
    """Float price -> 1e-4 units; raises if not representable on the finest grid."""
    if not isinstance(price, (int, float)) or isinstance(price, bool) or price != price:
        raise EngineError(f"invalid price {price!r}")
    u = round(float(price) * PRICE_SCALE)
    if abs(u - float(price) * PRICE_SCALE) > 1e-6:
        raise EngineError(f"invalid price {price!r}: finer than 0.0001")
    return u


def size_to_units(size: float) -> int:
    """Float size -> 1e-2 share units, flooring sub-cent dust (the CLOB rounds sizes down to 2 dp)."""
    if not isinstance(size, (int, float)) or isinstance(size, bool) or size != size:
        raise EngineError(f"invalid size {size!r}")
    return int(float(size) * SIZE_SCALE + 1e-7)


def _buy_covered(free_u: int, pu: int, su: int, fee: FeeSchedule) -> bool:
    """Whether ``free_u`` USDC units cover a BUY of ``su`` at ``pu`` plus its worst-case taker fee.

    The fee curve peaks at p = 0.5 and rises on [0, 0.5], so the worst case is at min(p, 0.5). It is
    at most rate (<= 1) * shares = ``su`` * 10_000 micro-units: an account with that much to spare
    passes without the fee being computed (the hot path of the background agents' orders)."""
    need = pu * su
    if free_u >= need + su * (USDC_SCALE // SIZE_SCALE):
        return True
    return free_u >= need + taker_fee_units(pu if pu < PRICE_SCALE // 2 else PRICE_SCALE // 2, su, fee)


@dataclass
class Market:
    """One binary market: Up/Down token pair, its hour and its trading state."""

    condition_id: str
    up_token: str
    down_token: str
    start_ms: int
    end_ms: int
    tick_u: int
    min_size_u: int
    neg_risk: bool = False
    accepting: bool = True
    closed: bool = False
    resolved: bool = False
    up_wins: bool | None = None
    fee: FeeSchedule = NO_FEES
    # Up-terms book: price_u -> deque[order_id]; sorted price lists for best lookup.
    bids: dict[int, deque] = field(default_factory=dict)
    asks: dict[int, deque] = field(default_factory=dict)
    bid_prices: list[int] = field(default_factory=list)
    ask_prices: list[int] = field(default_factory=list)
    pairs_u: int = 0              # outstanding full sets (size units)
    last_trade_price: float | None = None

    @property
    def tick_size(self) -> float:
        return self.tick_u / PRICE_SCALE

    @property
    def fee_rate_bps(self) -> int:
        """The schedule's rate in basis points (what the CLOB reports as ``fee_rate_bps``/``base_fee``)."""
        return int(round(self.fee.rate * 10_000))

    @property
    def min_size(self) -> float:
        return self.min_size_u / SIZE_SCALE


@dataclass(slots=True)   # many per simulated hour: no per-instance dict
class Order:
    """A (possibly resting) limit order. ``price_u`` is in the order's own token terms."""

    order_id: str
    owner: str
    condition_id: str
    token_id: str
    outcome: str
    side: str
    price_u: int
    size_u: int
    order_type: str
    post_only: bool
    expiration_ms: int
    created_ms: int
    seq: int
    filled_u: int = 0
    status: str = "LIVE"          # LIVE | MATCHED | CANCELED | INVALID
    res_usdc_u: int = 0           # USDC still reserved (BUY)
    res_tok_u: int = 0            # tokens still reserved (SELL)
    trade_ids: list[str] = field(default_factory=list)
    is_up: bool = True

    @property
    def remaining_u(self) -> int:
        return self.size_u - self.filled_u

    @property
    def book_is_bid(self) -> bool:
        """Side in the Up-terms book: BUY Up / SELL Down are bids."""
        return (self.side == BUY) == self.is_up

    @property
    def book_price_u(self) -> int:
        return self.price_u if self.is_up else PRICE_SCALE - self.price_u

    def to_dict(self) -> dict[str, Any]:
        """Shape of the CLOB's ``GET /data/order`` object (owner = engine owner string)."""
        return {
            "id": self.order_id,
            "status": self.status,
            "owner": self.owner,
            "maker_address": self.owner,
            "market": self.condition_id,
            "asset_id": self.token_id,
            "side": self.side,
            "original_size": _fmt(self.size_u / SIZE_SCALE),
            "size_matched": _fmt(self.filled_u / SIZE_SCALE),
            "price": _fmt(self.price_u / PRICE_SCALE),
            "outcome": self.outcome,
            "expiration": str(self.expiration_ms // 1000 if self.expiration_ms else 0),
            "order_type": self.order_type,
            "associate_trades": list(self.trade_ids),
            "created_at": self.created_ms // 1000,
        }


def fmt_ref(x: float) -> str:
    """Decimal string like the CLOB's JSON ("0.52", "10", "12.5"). Plain-Python reference twin of
    :func:`hourmm_core.sim.polymarket.wire.fmt_decimal` (the engine's ``_fmt``)."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


_fmt = fmt_decimal


@dataclass(slots=True)   # many per simulated hour: no per-instance dict
class Fill:
    """One maker/taker match, from the taker's point of view (price in taker-token terms)."""

    maker_order_id: str
    maker_owner: str
    taker_order_id: str
    taker_owner: str
    price: float
    size: float
    kind: str          # transfer | mint | merge
    taker_fee: float


@dataclass(slots=True)   # many per simulated hour: no per-instance dict
class PlaceResult:
    """Outcome of :meth:`Exchange.place`, mirrors POST /order's response fields."""

    order_id: str
    status: str                      # matched | live | unmatched | "" (rejected)
    fills: list[Fill] = field(default_factory=list)
    error_msg: str = ""
    making_amount: str = "0"
    taking_amount: str = "0"
    trade_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error_msg


@dataclass
class Account:
    usdc_u: int = 0
    usdc_res_u: int = 0
    tok_u: dict[str, int] = field(default_factory=dict)
    tok_res_u: dict[str, int] = field(default_factory=dict)
