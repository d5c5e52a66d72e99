"""Small value types shared by strategy, risk engine, order manager, trader and research.

One home each: the token/side codes (plain ints taken from the compiled core's
``hourmm_core.quant.risk_codes`` enums: token 0 = Up (YES), 1 = Down (NO); side
0 = BUY, 1 = SELL), :class:`Quote` (a desired order), :class:`Fill` (one execution of
ours, used by the order manager and the research ledger) and :class:`PlaceResult`
(what the venue adapter returns for one order submission).
"""
from __future__ import annotations

from dataclasses import dataclass

from hourmm_core.quant.risk_codes import Side, Token

UP, DOWN = int(Token.UP), int(Token.DOWN)
BUY, SELL = int(Side.BUY), int(Side.SELL)
TOKEN_NAMES = ("UP", "DOWN")
SIDE_NAMES = ("BUY", "SELL")


@dataclass(frozen=True, slots=True)
class Quote:
    """One desired resting order: what the strategy wants on the book right now.

    ``reduce`` marks orders that only lower inventory (sells of tokens we hold);
    REDUCE_ONLY / FLATTEN let only these through.
    """

    token: int
    side: int
    price: float
    size: float
    reduce: bool = False

    def describe(self) -> str:
        return f"{SIDE_NAMES[self.side]} {self.size:g} {TOKEN_NAMES[self.token]} @ {self.price:g}"


@dataclass(frozen=True)
class Fill:
    """A fill of one of our orders: token UP/DOWN, side BUY/SELL, price per token, size in
    tokens, ``fee`` in USDC (what the venue charged us; 0 for a maker), ``maker`` True when
    our order was resting."""

    trade_id: str
    order_id: str | None
    token: int
    side: int
    price: float
    size: float
    ts_ms: int
    fee: float = 0.0
    maker: bool = True


@dataclass(frozen=True)
class PlaceResult:
    """Outcome of one order submission, normalised by the venue adapter.

    ``unknown`` is True when the POST stayed ambiguous after every retry and lookup: the
    order *may* rest on the book; start-up/periodic reconciliation (open orders) settles it.
    """

    ok: bool
    order_id: str | None = None
    status: str = ""
    error: str = ""
    auth_failed: bool = False
    rate_limited: bool = False
    unknown: bool = False
    retry_after_s: float = 0.0   # with rate_limited: how long the venue asked us to wait
