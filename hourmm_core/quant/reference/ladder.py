"""Reference (pure Python) twin of ``hourmm_core.quant.ladder``; read that docstring for the why."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

_PX_EPS = 1e-9
_SZ_EPS = 1e-9
MAX_LEVELS = 16


@dataclass
class Ladder:
    """Orders as parallel lists: token (0 Up, 1 Down), side (0 BUY, 1 SELL), price, size, level."""

    orders_: list = field(default_factory=list)
    reservation: float = math.nan
    half_width: float = math.nan

    @property
    def count(self) -> int:
        return len(self.orders_)

    def __len__(self) -> int:
        return len(self.orders_)

    def orders(self) -> list:
        return list(self.orders_)

    token = property(lambda self: np.array([o[0] for o in self.orders_], dtype=np.int8))
    side = property(lambda self: np.array([o[1] for o in self.orders_], dtype=np.int8))
    price = property(lambda self: np.array([o[2] for o in self.orders_], dtype=np.float64))
    size = property(lambda self: np.array([o[3] for o in self.orders_], dtype=np.float64))
    level = property(lambda self: np.array([o[4] for o in self.orders_], dtype=np.int16))


def _floor_size(x: float, inv_step: float) -> float:
    if not (x > 0.0):
        return 0.0
    if not math.isfinite(x):
        return math.inf
    return math.floor(x * inv_step + _SZ_EPS) / inv_step


def build_ladder(fair: float, unc: float, inv_up: float, inv_down: float, best_bid: float, best_ask: float,
                 *, tick: float = 0.01, min_size: float = 5.0, n_levels: int = 2, base_size: float = 5.0,
                 half_spread: float = 0.02, level_step: float = 0.01, unc_mult: float = 1.0, skew: float = 0.02,
                 max_order_size: float = 100.0, max_position: float = 500.0, capital_free: float = math.inf,
                 post_only: bool = True, reduce_only: bool = False, spread_mult: float = 1.0,
                 size_mult: float = 1.0, size_step: float = 0.01) -> Ladder:
    fin = math.isfinite
    bad = ValueError(f"build_ladder: bad input (fair={fair!r}, unc={unc!r}, inv_up={inv_up!r}, "
                     f"inv_down={inv_down!r}, tick={tick!r}, size_step={size_step!r}, n_levels={n_levels})")
    if not (fin(fair) and 0.0 <= fair <= 1.0 and fin(unc) and unc >= 0.0 and fin(inv_up) and inv_up >= 0.0
            and fin(inv_down) and inv_down >= 0.0):
        raise bad
    if not (0.0 < tick < 0.5 and size_step > 0.0):
        raise bad
    N = math.floor(1.0 / tick + 0.5)
    inv_step = math.floor(1.0 / size_step + 0.5)
    if abs(N * tick - 1.0) > 1e-9 or abs(inv_step * size_step - 1.0) > 1e-9:
        raise bad
    if not (0 <= n_levels <= MAX_LEVELS and min_size >= 0.0 and base_size >= 0.0 and half_spread >= 0.0
            and level_step >= 0.0 and unc_mult >= 0.0 and skew >= 0.0 and max_order_size >= 0.0
            and max_position >= 0.0 and capital_free >= 0.0 and spread_mult > 0.0 and size_mult >= 0.0
            and all(fin(v) for v in (half_spread, level_step, unc_mult, skew, spread_mult, base_size, size_mult))):
        raise bad
    N = float(N)
    q = (inv_up - inv_down) / max_position if max_position > 0.0 else 0.0
    r = fair - skew * q
    h = (half_spread + unc_mult * unc) * spread_mult
    out = Ladder(reservation=r, half_width=h)
    bb = math.floor(best_bid * N + 0.5) if (fin(best_bid) and 0.0 < best_bid < 1.0) else -1
    ba = math.floor(best_ask * N + 0.5) if (fin(best_ask) and 0.0 < best_ask < 1.0) else -1
    s0 = min(base_size * size_mult, max_order_size)
    u_rem, d_rem = inv_up, inv_down
    up_room, down_room = max_position - inv_up, max_position - inv_down
    cap = capital_free
    top = int(N) - 1
    prev_kb, prev_ka = int(N) + 1, -1
    for i in range(n_levels):
        off = h + i * level_step
        kb = math.floor((r - off) * N + _PX_EPS)
        ka = math.ceil((r + off) * N - _PX_EPS)
        if post_only:
            if ba >= 0 and kb > ba - 1:
                kb = ba - 1
            if bb >= 0 and ka < bb + 1:
                ka = bb + 1
        kb = min(kb, top)
        ka = max(ka, 1)
        if kb >= ka:
            kb = ka - 1
        if 1 <= kb < prev_kb:                      # bid side: SELL Down if we hold it, else BUY Up
            prev_kb = kb
            px = kb / N
            if d_rem >= min_size and d_rem > 0.0:
                size = _floor_size(min(s0, d_rem), inv_step)
                if size >= min_size and size > 0.0:
                    out.orders_.append((1, 1, (N - kb) / N, size, i))
                    d_rem -= size
            elif not reduce_only:
                size = min(s0, up_room)
                if size * px > cap:
                    size = cap / px
                size = _floor_size(size, inv_step)
                if size >= min_size and size > 0.0:
                    out.orders_.append((0, 0, px, size, i))
                    up_room -= size
                    cap -= size * px
        if prev_ka < ka <= top:                    # ask side: SELL Up if we hold it, else BUY Down
            prev_ka = ka
            if u_rem >= min_size and u_rem > 0.0:
                size = _floor_size(min(s0, u_rem), inv_step)
                if size >= min_size and size > 0.0:
                    out.orders_.append((0, 1, ka / N, size, i))
                    u_rem -= size
            elif not reduce_only:
                px = (N - ka) / N
                size = min(s0, down_room)
                if size * px > cap:
                    size = cap / px
                size = _floor_size(size, inv_step)
                if size >= min_size and size > 0.0:
                    out.orders_.append((1, 0, px, size, i))
                    down_room -= size
                    cap -= size * px
    return out


@dataclass(frozen=True)
class LadderSpec:
    """The ladder parameters fixed from pass to pass (twin of the compiled ``LadderSpec``)."""

    tick: float = 0.01
    min_size: float = 5.0
    n_levels: int = 2
    level_step: float = 0.01
    unc_mult: float = 1.0
    max_order_size: float = 100.0
    max_position: float = 500.0
    post_only: bool = True
    size_mult: float = 1.0
    size_step: float = 0.01


def quote_ladder(spec: LadderSpec, fair: float, unc: float, inv_up: float, inv_down: float, best_bid: float,
                 best_ask: float, base_size: float, half_spread: float, skew: float, capital_free: float,
                 reduce_only: bool, spread_mult: float, band_lo: float, band_hi: float, pull: int,
                 cache: dict, make) -> list:
    """One pass's quotes (twin of the compiled ``quote_ladder``): the ladder, BUYs outside the
    band and the pulled side dropped, reducing orders (SELLs) first, made by ``make`` and
    memoised in ``cache``."""
    lad = build_ladder(fair, unc, inv_up, inv_down, best_bid, best_ask, tick=spec.tick, min_size=spec.min_size,
                       n_levels=spec.n_levels, base_size=base_size, half_spread=half_spread,
                       level_step=spec.level_step, unc_mult=spec.unc_mult, skew=skew,
                       max_order_size=spec.max_order_size, max_position=spec.max_position,
                       capital_free=capital_free, post_only=spec.post_only, reduce_only=reduce_only,
                       spread_mult=spread_mult, size_mult=spec.size_mult, size_step=spec.size_step)
    kept = []
    for tok, side, price, size, _lvl in lad.orders():
        up_px = price if tok == 0 else 1.0 - price
        if side == 0 and not (band_lo - _PX_EPS <= up_px <= band_hi + _PX_EPS):
            continue
        if pull:
            is_ask = (tok == 0) == (side == 1)
            if (pull > 0 and is_ask) or (pull < 0 and not is_ask):
                continue
        kept.append((tok, side, price, size))
    kept.sort(key=lambda o: o[1] != 1)      # SELLs (reducing) first, stable
    out = []
    for key in kept:
        q = cache.get(key)
        if q is None:
            q = cache[key] = make(*key)
        out.append(q)
    return out
