"""Small value types shared by strategy, risk engine and order manager.

Token and side codes match the compiled core (``hourmm_core.quant``): token 0 = Up (YES),
1 = Down (NO); side 0 = BUY, 1 = SELL.
"""
from __future__ import annotations

from dataclasses import dataclass

UP, DOWN = 0, 1
BUY, SELL = 0, 1
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
