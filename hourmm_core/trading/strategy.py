"""Desired quotes from fair value, inventory, the book, the session phase and the risk mode.

Why: one pure function decides *what should rest on the book now*; the order manager
turns that into place/cancel actions. The two-sided ladder itself (levels, inventory
skew, tick rounding, no crossing) is the compiled core's ``build_ladder``; this module
chooses its parameters per phase and mode and filters the result:

* ACTIVE, NORMAL: full ladder, inventory skew.
* WIND_DOWN: spread x ``wind_down_spread_mult``, size x ``wind_down_size_mult``, skew
  growing up to 3x as FLATTEN approaches (pushes inventory out).
* REDUCE_ONLY (mode, e.g. a limit breach or stale data): only orders that sell held
  tokens, never more than held.
* FLATTEN (phase or mode): only sells of held tokens, priced at the token's best bid and
  walking up to 5 ticks through it as the cut-off nears (marketable: we want out, not a
  better price). Works even while the Binance snapshot is
  stale, because it is priced off the Polymarket book, not fair value.
* HARD_CUTOFF, ENDED, IDLE, HALT: nothing. Paused (operator): no quotes, but FLATTEN still
  gets out of inventory.
* No fresh fair value: nothing (except FLATTEN). Book of a token unknown: nothing.

An "ask" on Up is expressed as a SELL of Up tokens when we hold enough, otherwise as a
BUY of Down at 1 - ask (the Polymarket complement), so quoting never needs short sales.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hourmm_core.quant import build_ladder

from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Phase
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Quote

_EPS = 1e-9
_NAN = math.nan
FLATTEN_MAX_TICKS = 5


@dataclass(frozen=True, slots=True)
class BookTop:
    """Best bid/ask of one token (None = empty side)."""

    bid: float | None
    ask: float | None


@dataclass(frozen=True)
class StrategyParams:
    """Knobs (TraderConfig / configs/trader.yaml)."""

    quote_levels: int = 2
    quote_size: float = 5.0
    half_spread: float = 0.02
    level_step: float = 0.01
    unc_mult: float = 1.0
    skew: float = 0.02
    price_band: float = 0.15
    wind_down_spread_mult: float = 2.0
    wind_down_size_mult: float = 0.5

    @classmethod
    def from_config(cls, cfg: object) -> "StrategyParams":
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class MarketState:
    """Everything the strategy looks at for one decision."""

    fair_up: float | None
    fair_unc: float
    fresh: bool
    yes_tokens: float
    no_tokens: float
    up: BookTop | None
    down: BookTop | None
    phase: Phase
    mode: Mode
    wind_progress: float
    tick: float
    min_size: float
    paused: bool = False
    held_cost: float = 0.0   # USDC paid for the tokens held (counts against MAX_RESERVED_CAPITAL)
    flatten_progress: float = 0.0  # 0 at the start of FLATTEN, 1 at the hard cut-off


def _floor_tick(x: float, tick: float) -> float:
    return round(int(x / tick + _EPS) * tick, 6)


def flatten_quotes(s: MarketState, limits: Limits, max_orders: int = 4) -> list[Quote]:
    """Marketable sells of every held token: at the best bid, then through it.

    The price starts at the token's best bid and walks down up to ``FLATTEN_MAX_TICKS``
    ticks as the FLATTEN window runs out (``flatten_progress`` 0 -> 1): getting flat
    before the cutoff matters more than the last cent. Inventory above
    ``max_order_size`` is split into several orders (at most ``max_orders`` in all).
    Holdings below the venue minimum cannot be sold with a limit order and are left.
    """
    out: list[Quote] = []
    through = int(FLATTEN_MAX_TICKS * min(1.0, max(0.0, s.flatten_progress)) + _EPS)
    for tok, held, top in ((UP, s.yes_tokens, s.up), (DOWN, s.no_tokens, s.down)):
        if held < s.min_size - _EPS or top is None or top.bid is None:
            continue
        price = max(s.tick, _floor_tick(top.bid, s.tick) - through * s.tick)
        price = round(price, 6)
        left = held
        while left >= s.min_size - _EPS and len(out) < max_orders:
            size = round(min(left, limits.max_order_size), 6)
            if size < s.min_size - _EPS:
                break
            out.append(Quote(tok, SELL, price, size, True))
            left -= size
    return out


def ladder_quotes(s: MarketState, p: StrategyParams, limits: Limits, reduce_only: bool = False) -> list[Quote]:
    """Two-sided ladder from the compiled core (``hourmm_core.quant.build_ladder``).

    The phase picks the parameters: WIND_DOWN widens by ``wind_down_spread_mult``,
    shrinks the size (never below the venue minimum) and raises the skew up to 3x.
    Reducing orders (sells of held tokens) come first.
    """
    assert s.fair_up is not None and s.up is not None
    size = min(p.quote_size, limits.max_order_size)
    skew = p.skew
    spread_mult = 1.0
    if s.phase is Phase.WIND_DOWN:
        spread_mult = p.wind_down_spread_mult
        size = max(min(size, s.min_size), size * p.wind_down_size_mult)  # smaller, not below the venue minimum
        skew *= 1.0 + 2.0 * s.wind_progress
    if size < s.min_size - _EPS:
        return []
    bid = s.up.bid if s.up.bid is not None else _NAN
    ask = s.up.ask if s.up.ask is not None else _NAN
    lad = build_ladder(s.fair_up, s.fair_unc, max(0.0, s.yes_tokens), max(0.0, s.no_tokens), bid, ask,
                       tick=s.tick, min_size=s.min_size, n_levels=p.quote_levels, base_size=size,
                       half_spread=p.half_spread, level_step=p.level_step, unc_mult=p.unc_mult, skew=skew,
                       max_order_size=limits.max_order_size, max_position=limits.max_position_size,
                       capital_free=max(0.0, limits.max_reserved_capital - s.held_cost),
                       post_only=True, reduce_only=reduce_only, spread_mult=spread_mult, size_mult=1.0)
    lo, hi = s.fair_up - p.price_band, s.fair_up + p.price_band
    out: list[Quote] = []
    for tok, side, price, sz, _lvl in lad.orders():
        up_px = price if tok == UP else 1.0 - price
        if side == BUY and not (lo - _EPS <= up_px <= hi + _EPS):
            continue  # outside the band around fair (the risk check would refuse it anyway)
        out.append(Quote(int(tok), int(side), round(float(price), 6), float(sz), side == SELL))
    out.sort(key=lambda x: not x.reduce)  # reducing orders first (stable within a level)
    return out


def desired_quotes(s: MarketState, p: StrategyParams, limits: Limits) -> list[Quote]:
    """The whole policy; see the module docstring for the table of cases."""
    if s.mode is Mode.HALT or not s.phase.may_trade:
        return []
    if s.phase is Phase.FLATTEN or s.mode is Mode.FLATTEN:
        return flatten_quotes(s, limits, max(1, limits.max_open_orders))  # getting out is not "quoting": pause does not stop it
    if s.paused:
        return []
    if not s.fresh or s.fair_up is None or s.up is None or s.down is None:  # Down book unknown: market WS not healthy
        return []
    return ladder_quotes(s, p, limits, reduce_only=s.mode is Mode.REDUCE_ONLY)
