"""Desired quotes from fair value, inventory, the book, the session phase and the risk mode.

Why: one pure function decides *what should rest on the book now*; the order manager
turns that into place/cancel actions. The two-sided ladder itself (levels, inventory
skew, tick rounding, no crossing) is the compiled core's ``build_ladder``; this module
chooses its parameters per phase and mode and filters the result:

* ACTIVE, NORMAL: full ladder, inventory skew. The half-width is
  ``half_spread + unc_mult * fair_unc + move_mult * phi(Phi^-1(fair)) * sqrt(latency_ms / ms_left)``:
  the last term is the standard deviation of the fair value's change while one of our
  quotes can be stale (decision interval + order latency): the digital's delta times the
  expected BTC move in that time, which is tiny early in the hour and large near the
  strike late in the hour (the sigma cancels, so no vol input is needed).
* Fast move (``|fair - fair pull_window_ms ago| >= pull_move``; window 0: since the
  previous decision): the side the move makes stale
  (asks when fair rose, bids when it fell) is pulled for ``pull_hold_ms``: our cancel is
  on its way before the latency snipers' shots land.
* Inventory: ``inv_limit`` caps each token (the ladder's room and skew scale), so the
  losing side cannot pile up; Up+Down pairs are merged (CTF merge, see
  :func:`merge_size`), never carried.
* Book anchor (``mid_weight`` w): quote around ``(1 - w) fair + w mid`` while the Up book's
  spread is at most ``mid_max_spread``: the touch is set by faster quoters, so where our
  fair disagrees with it we are more often wrong than they are (that disagreement is what
  the snipers and informed takers trade on).
* Near-certain outcome (``min(fair, 1 - fair) < extreme_cut``): no new buys, only
  sells of held tokens (late in the hour the fee a sniper must beat is near zero there).
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
from statistics import NormalDist
from typing import Callable

from hourmm_core.fields import setting
from hourmm_core.quant import LadderSpec, QuoteKernel, quote_ladder
from hourmm_core.trading.risk_engine import _FLATTEN as _FLATTEN_M  # enum members as globals: hot path
from hourmm_core.trading.risk_engine import _HALT, _REDUCE_ONLY, Limits, Mode
from hourmm_core.trading.session import _FLATTEN as _FLATTEN_P
from hourmm_core.trading.session import _MAY_TRADE, _WIND_DOWN, Phase
from hourmm_core.trading.types import DOWN, SELL, UP, Quote

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
    """Quoting knobs: the one definition of each knob (env names = upper-case field names,
    read by :func:`hourmm_core.config.from_settings` into ``TraderConfig.strategy``).

    The SHIPPED values are configs/trader.yaml's strategy keys, for the live trader and the
    backtest alike (``hourmm_core.config.shipped_trader_config``; research.yaml's
    ``backtest:`` section does not redefine them). The defaults below are the neutral
    fallback a bare ``StrategyParams()`` gets (unit tests): the hostile-venue knobs off.
    """

    quote_levels: int = setting(2, lo=1, hi=10)
    quote_size: float = setting(5.0, lo=0.0)
    half_spread: float = setting(0.02, lo=0.0, hi=0.5)
    level_step: float = setting(0.01, lo=0.0, hi=0.5)
    unc_mult: float = setting(1.0, lo=0.0)
    skew: float = setting(0.02, lo=0.0, hi=1.0)
    price_band: float = setting(0.15, lo=0.0, hi=1.0)
    wind_down_spread_mult: float = setting(2.0, lo=1.0)
    wind_down_size_mult: float = setting(0.5, lo=0.0, hi=1.0)
    # hostile-venue knobs (defaults = off, the old behaviour; configs/trader.yaml holds the tuned values)
    latency_ms: float = setting(1150.0, lo=0.0, hi=600_000.0)  # how long a quote can be stale: decision interval + order latency
    move_mult: float = setting(0.0, lo=0.0, hi=100.0)   # x std of the fair's move within latency_ms (0 = off)
    pull_move: float = setting(0.0, lo=0.0, hi=1.0)     # |fair change| between decisions that pulls the stale side (0 = off)
    pull_hold_ms: int = setting(2000, lo=0, hi=3_600_000)
    pull_window_ms: int = setting(0, lo=0, hi=600_000)  # the fair change is measured over this (0 = since the previous decision)
    inv_limit: float = setting(math.inf, lo=0.0)        # tokens per side the ladder may build up to (<= max_position_size)
    extreme_cut: float = setting(0.0, lo=0.0, hi=0.5)   # no buys once min(fair, 1 - fair) < this
    merge_min: float = setting(0.0, lo=0.0)             # merge Up+Down pairs once >= this many (0 = never; backtest only)
    mid_weight: float = setting(0.0, lo=0.0, hi=1.0)    # weight of the Up book's mid in the quoting fair (0 = our fair only)
    mid_max_spread: float = setting(0.03, lo=0.0, hi=1.0)  # the mid counts only while the Up spread is at most this

    @classmethod
    def from_config(cls, cfg: object) -> "StrategyParams":
        """From a TraderConfig (its ``strategy``), or any object with the same field names
        (fields it lacks keep their defaults)."""
        sub = getattr(cfg, "strategy", None)
        if isinstance(sub, cls):
            return sub
        return cls(**{k: getattr(cfg, k) for k in cls.__dataclass_fields__ if hasattr(cfg, k)})


@dataclass(slots=True)
class MarketState:
    """Everything the strategy looks at for one decision (read-only by convention: not
    frozen, because a frozen dataclass's ``__init__`` costs ~3x as much on the hot path)."""

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
    ms_left: float = math.inf      # until the market's end
    pull: int = 0                  # +1: fair jumped up (pull asks), -1: down (pull bids), 0: none


_N = NormalDist()


def move_width(fair: float, ms_left: float, latency_ms: float) -> float:
    """Std of the fair value's change within ``latency_ms``: ``phi(Phi^-1(fair)) * sqrt(latency / left)``.

    For a digital P(S_T >= K) under a driftless diffusion, d fair = phi(d)/(sigma sqrt(tau)) dlnS,
    so over dt the std is phi(d) sqrt(dt / tau): largest at the strike and late in the hour.
    """
    if math.isinf(ms_left) or math.isnan(ms_left):
        return 0.0
    p = min(1.0 - 1e-6, max(1e-6, fair))
    z = _N.inv_cdf(p)
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) * math.sqrt(max(0.0, latency_ms) / max(ms_left, 1.0))


def quoting_fair(s: MarketState, p: StrategyParams) -> float:
    """Our fair value, pulled toward the Up book's mid by ``mid_weight`` when the book is tight."""
    f = float(s.fair_up)  # type: ignore[arg-type]
    if p.mid_weight <= 0 or s.up is None or s.up.bid is None or s.up.ask is None:
        return f
    if not (0.0 < s.up.ask - s.up.bid <= p.mid_max_spread + _EPS):
        return f
    w = min(1.0, p.mid_weight)
    return (1.0 - w) * f + w * 0.5 * (s.up.bid + s.up.ask)


def merge_size(yes_free: float, no_free: float, p: StrategyParams) -> float:
    """Pairs to merge now (CTF merge: 1 Up + 1 Down -> 1 USDC, no fee, no venue minimum), 2-dp floor."""
    if p.merge_min <= 0:
        return 0.0
    x = math.floor(max(0.0, min(yes_free, no_free)) * 100 + 1e-9) / 100.0
    return x if x >= p.merge_min - _EPS else 0.0


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


def _make_quote(token: int, side: int, price: float, size: float) -> Quote:
    return Quote(token, side, round(price, 6), size, side == SELL)


# Quotes recur pass after pass (the same ladder while the fair stays within a tick), and a
# Quote is immutable: the compiled ladder hands back the same object for the same order.
_QUOTES: dict[tuple[int, int, float, float], Quote] = {}
_QUOTES_MAX = 4096
# LadderSpec / QuoteKernel per (params, limits, tick, min_size), by identity (params and limits
# are frozen; a change of either is a new object): bound once, not parsed again on every pass
_SPECS: dict[tuple[int, int, float, float], tuple[StrategyParams, Limits, object]] = {}
_KERNELS: dict[tuple[int, int, float, float], tuple[StrategyParams, Limits, object]] = {}


def _bound(cache: dict, p: StrategyParams, limits: Limits, tick: float, min_size: float,
           build: Callable[[], object]) -> object:
    """``build()`` once per (params, limits, tick, min_size) object identity, kept in ``cache``."""
    key = (id(p), id(limits), tick, min_size)
    ent = cache.get(key)
    if ent is None or ent[0] is not p or ent[1] is not limits:
        if len(cache) > 64:
            cache.clear()
        ent = cache[key] = (p, limits, build())
    return ent[2]


def _spec(p: StrategyParams, limits: Limits, tick: float, min_size: float) -> object:
    return _bound(_SPECS, p, limits, tick, min_size, lambda: LadderSpec(
        tick=tick, min_size=min_size, n_levels=p.quote_levels, level_step=p.level_step, unc_mult=p.unc_mult,
        max_order_size=limits.max_order_size, max_position=min(limits.max_position_size, p.inv_limit),
        post_only=True, size_mult=1.0))


def quote_kernel(p: StrategyParams, limits: Limits, tick: float, min_size: float) -> QuoteKernel:
    """The compiled twin of :func:`ladder_quotes` bound to these knobs, limits and market grid
    (cached by identity: params and limits are frozen, a change is a new object). The decision
    pass calls ``quote_kernel(...).quotes(...)`` for the common case (ACTIVE / WIND_DOWN,
    NORMAL / REDUCE_ONLY, fresh fair, both books known, not paused); every other case goes
    through :func:`desired_quotes`. tests/unit/trading/test_quote_kernel.py holds them equal."""
    return _bound(_KERNELS, p, limits, tick, min_size, lambda: QuoteKernel(
        tick, min_size, p.quote_levels, p.level_step, p.unc_mult, limits.max_order_size,
        min(limits.max_position_size, p.inv_limit), p.quote_size, p.skew, p.half_spread,
        p.move_mult, p.latency_ms, p.price_band, p.extreme_cut, p.mid_weight, p.mid_max_spread,
        p.wind_down_spread_mult, p.wind_down_size_mult, limits.max_reserved_capital))


def kernel_quotes(k: QuoteKernel, fair_up: float, fair_unc: float, yes: float, no: float, up: BookTop,
                  wind_down: bool, wind_progress: float, ms_left: float, held_cost: float, pull: int,
                  reduce_only: bool) -> list[Quote]:
    """``k.quotes`` with this module's Quote memo (the decision pass's call)."""
    if len(_QUOTES) > _QUOTES_MAX:
        _QUOTES.clear()
    bid, ask = up.bid, up.ask
    return k.quotes(fair_up, fair_unc, yes, no, _NAN if bid is None else bid, _NAN if ask is None else ask,
                    wind_down, wind_progress, ms_left, held_cost, pull, reduce_only, _QUOTES, _make_quote)


def ladder_quotes(s: MarketState, p: StrategyParams, limits: Limits, reduce_only: bool = False) -> list[Quote]:
    """Two-sided ladder from the compiled core (``hourmm_core.quant.quote_ladder``: the
    ladder of ``build_ladder``, BUYs outside ``price_band`` around fair and the side a fast
    move pulled dropped, reducing orders first).

    The phase picks the parameters: WIND_DOWN widens by ``wind_down_spread_mult``,
    shrinks the size (never below the venue minimum) and raises the skew up to 3x.
    """
    assert s.fair_up is not None and s.up is not None
    size = min(p.quote_size, limits.max_order_size)
    skew = p.skew
    spread_mult = 1.0
    fair = quoting_fair(s, p)
    if p.extreme_cut > 0 and min(fair, 1.0 - fair) < p.extreme_cut:
        reduce_only = True       # outcome near-certain: snipers need almost no edge there
    if s.phase is _WIND_DOWN:
        spread_mult = p.wind_down_spread_mult
        size = max(min(size, s.min_size), size * p.wind_down_size_mult)  # smaller, not below the venue minimum
        skew *= 1.0 + 2.0 * s.wind_progress
    if size < s.min_size - _EPS:
        return []
    bid = s.up.bid if s.up.bid is not None else _NAN
    ask = s.up.ask if s.up.ask is not None else _NAN
    half = p.half_spread + (p.move_mult * move_width(fair, s.ms_left, p.latency_ms) if p.move_mult > 0 else 0.0)
    if len(_QUOTES) > _QUOTES_MAX:
        _QUOTES.clear()
    return quote_ladder(_spec(p, limits, s.tick, s.min_size), fair, s.fair_unc, max(0.0, s.yes_tokens),
                        max(0.0, s.no_tokens), bid, ask, size, half, skew,
                        max(0.0, limits.max_reserved_capital - s.held_cost), reduce_only, spread_mult,
                        s.fair_up - p.price_band, s.fair_up + p.price_band, s.pull, _QUOTES, _make_quote)


def desired_quotes(s: MarketState, p: StrategyParams, limits: Limits) -> list[Quote]:
    """The whole policy; see the module docstring for the table of cases."""
    if s.mode is _HALT or s.phase not in _MAY_TRADE:
        return []
    if s.phase is _FLATTEN_P or s.mode is _FLATTEN_M:
        return flatten_quotes(s, limits, max(1, limits.max_open_orders))  # getting out is not "quoting": pause does not stop it
    if s.paused:
        return []
    if not s.fresh or s.fair_up is None or s.up is None or s.down is None:  # Down book unknown: market WS not healthy
        return []
    return ladder_quotes(s, p, limits, reduce_only=s.mode is _REDUCE_ONLY)
