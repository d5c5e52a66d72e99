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
* FLATTEN (phase or mode): only sells of held tokens, priced at the token's best bid
  (marketable: we want out, not a better price). Works even while the Binance snapshot is
  stale, because it is priced off the Polymarket book, not fair value.
* HARD_CUTOFF, ENDED, IDLE, HALT: nothing. Paused (operator): no quotes, but FLATTEN still
  gets out of inventory.
* No fresh fair value: nothing (except FLATTEN). Book of a token unknown: nothing.

An "ask" on Up is expressed as a SELL of Up tokens when we hold enough, otherwise as a
BUY of Down at 1 - ask (the Polymarket complement), so quoting never needs short sales.
"""
from __future__ import annotations

from dataclasses import dataclass

from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Phase
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Quote

_EPS = 1e-9


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


def _floor_tick(x: float, tick: float) -> float:
    return round(int(x / tick + _EPS) * tick, 6)


def _ceil_tick(x: float, tick: float) -> float:
    n = int(x / tick - _EPS)
    if n * tick < x - _EPS:
        n += 1
    return round(n * tick, 6)


def flatten_quotes(s: MarketState, limits: Limits) -> list[Quote]:
    """Marketable sells of every held token at its best bid (capped at max order size)."""
    out: list[Quote] = []
    for tok, held, top in ((UP, s.yes_tokens, s.up), (DOWN, s.no_tokens, s.down)):
        if held < s.min_size - _EPS or top is None or top.bid is None:
            continue
        size = min(held, limits.max_order_size)
        if size < s.min_size - _EPS:
            continue
        price = max(s.tick, _floor_tick(top.bid, s.tick))
        out.append(Quote(tok, SELL, price, round(size, 6), True))
    return out


def ladder_quotes(s: MarketState, p: StrategyParams, limits: Limits) -> list[Quote]:
    """Two-sided ladder around the inventory-skewed fair value (priority order)."""
    assert s.fair_up is not None and s.up is not None and s.down is not None
    tick = s.tick
    half = p.half_spread + p.unc_mult * s.fair_unc
    size = min(p.quote_size, limits.max_order_size)
    skew = p.skew
    if s.phase is Phase.WIND_DOWN:
        half *= p.wind_down_spread_mult
        size = max(min(size, s.min_size), size * p.wind_down_size_mult)  # smaller, not below the venue minimum
        skew *= 1.0 + 2.0 * s.wind_progress
    if size < s.min_size - _EPS:
        return []
    net = s.yes_tokens - s.no_tokens
    q = net / limits.max_position_size if limits.max_position_size > 0 else 0.0
    r = s.fair_up - skew * max(-1.0, min(1.0, q))
    lo, hi = s.fair_up - p.price_band, s.fair_up + p.price_band
    out: list[Quote] = []
    yes, no = s.yes_tokens, s.no_tokens
    for k in range(p.quote_levels):
        bid = _floor_tick(r - half - k * p.level_step, tick)
        ask = _ceil_tick(r + half + k * p.level_step, tick)
        # bid side: BUY Up at bid, or SELL Down at 1 - bid when we hold Down
        if tick - _EPS <= bid <= 1 - tick + _EPS and bid >= lo - _EPS:
            if no >= size - _EPS:
                px = round(1.0 - bid, 6)
                if s.down.bid is None or px >= s.down.bid + tick - _EPS:  # post-only: don't cross
                    out.append(Quote(DOWN, SELL, px, size, True))
                    no -= size
            elif s.up.ask is None or bid <= s.up.ask - tick + _EPS:
                out.append(Quote(UP, BUY, bid, size, False))
        # ask side: SELL Up at ask when held, else BUY Down at 1 - ask
        if tick - _EPS <= ask <= 1 - tick + _EPS and ask <= hi + _EPS:
            if yes >= size - _EPS:
                if s.up.bid is None or ask >= s.up.bid + tick - _EPS:
                    out.append(Quote(UP, SELL, ask, size, True))
                    yes -= size
            else:
                px = round(1.0 - ask, 6)
                if s.down.ask is None or px <= s.down.ask - tick + _EPS:
                    out.append(Quote(DOWN, BUY, px, size, False))
    out.sort(key=lambda x: not x.reduce)  # reducing orders first (stable within a level)
    return out


def desired_quotes(s: MarketState, p: StrategyParams, limits: Limits) -> list[Quote]:
    """The whole policy; see the module docstring for the table of cases."""
    if s.mode is Mode.HALT or not s.phase.may_trade:
        return []
    if s.phase is Phase.FLATTEN or s.mode is Mode.FLATTEN:
        return flatten_quotes(s, limits)  # getting out is not "quoting": pause does not stop it
    if s.paused:
        return []
    if not s.fresh or s.fair_up is None or s.up is None or s.down is None:
        return []
    quotes = ladder_quotes(s, p, limits)
    if s.mode is Mode.REDUCE_ONLY:
        quotes = [x for x in quotes if x.reduce]
    return quotes
