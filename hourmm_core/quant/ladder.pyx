# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Quote ladder for the Up token plus the equivalent Down-token orders (compiled).

Inputs: fair probability ``fair`` of Up, its uncertainty ``unc``, inventories
``inv_up``/``inv_down`` (shares held), the Up book's ``best_bid``/``best_ask`` (NaN
or out of (0, 1) = that side is empty) and the parameters of ``build_ladder``.

1. Reservation price (Avellaneda-Stoikov in probability space):
   ``r = fair - skew * (inv_up - inv_down) / max_position``; long Up -> quote lower.
2. Half-width ``h = (half_spread + unc_mult * unc) * spread_mult`` (``spread_mult``
   is the session phase's widening, e.g. 2 during wind-down).
3. Level ``i`` (0-based): Up bid ``r - h - i*level_step``, Up ask ``r + h + i*level_step``.
4. Tick grid, in integer ticks (``N = 1/tick`` must be an integer: 0.01 -> 100):
   bids round DOWN, asks round UP, with a 1e-9 guard so a value that is a tick up to
   float error is not pushed a whole tick away.
5. Post-only: bid <= best_ask - tick, ask >= best_bid + tick (never crosses the book).
6. Bounds, clipped only in the safe direction: a bid above 1 - tick becomes 1 - tick
   and an ask below tick becomes tick (both better for us); a bid below tick or an
   ask above 1 - tick is dropped (clipping it would pay more / sell cheaper than the
   model allows). Our own bid is always strictly below our own ask at the same level.
   Levels that collapse onto an earlier level's price are dropped (no duplicates).
7. Orders, per level, in Up-price space:
   * bid side: if ``inv_down`` left to sell >= min_size -> SELL Down at ``1 - bid``
     (the same economic trade as buying Up, but it frees capital instead of using it);
     otherwise BUY Up at ``bid``.
   * ask side: if ``inv_up`` left to sell >= min_size -> SELL Up at ``ask``;
     otherwise BUY Down at ``1 - ask`` (the "equivalent Down order": Polymarket does
     not allow short sales).
   Sizes: ``base_size * size_mult``, capped by ``max_order_size``, by the remaining
   inventory for sells, by ``max_position - inv_token - earlier bids`` for buys (all
   levels may fill) and by the remaining ``capital_free`` (price * size) for buys,
   rounded DOWN to ``size_step``; below ``min_size`` -> dropped.
   ``reduce_only`` emits only the SELL orders (inventory-reducing).

Output: a ``Ladder`` with ``count`` orders as arrays ``token`` (0 = Up, 1 = Down),
``side`` (0 = BUY, 1 = SELL), ``price``, ``size``, ``level``, plus ``reservation`` and
``half_width``. Same algorithm in ``reference/ladder.py``.
"""
import numpy as np
from libc.math cimport floor, ceil, isfinite, isnan, isinf, fabs, exp, sqrt, log, M_PI, NAN, INFINITY

cdef double _PX_EPS = 1e-9
cdef double _SZ_EPS = 1e-9


cdef class Ladder:
    """Orders of one ladder build (fixed-size C arrays, up to 32 orders)."""

    def __cinit__(self):
        self.count_ = 0
        self.reservation_ = NAN
        self.half_width_ = NAN

    @property
    def count(self):
        return self.count_

    def __len__(self):
        return self.count_

    @property
    def token(self):
        return np.array([self.token_[i] for i in range(self.count_)], dtype=np.int8)

    @property
    def side(self):
        return np.array([self.side_[i] for i in range(self.count_)], dtype=np.int8)

    @property
    def level(self):
        return np.array([self.level_[i] for i in range(self.count_)], dtype=np.int16)

    @property
    def price(self):
        return np.array([self.price_[i] for i in range(self.count_)], dtype=np.float64)

    @property
    def size(self):
        return np.array([self.size_[i] for i in range(self.count_)], dtype=np.float64)

    @property
    def reservation(self):
        return self.reservation_

    @property
    def half_width(self):
        return self.half_width_

    def orders(self):
        """List of (token, side, price, size, level) tuples."""
        return [(self.token_[i], self.side_[i], self.price_[i], self.size_[i], self.level_[i])
                for i in range(self.count_)]

    def __repr__(self):
        return f"Ladder(count={self.count_}, reservation={self.reservation_:.4f}, orders={self.orders()})"


cdef inline void _emit(Ladder out, int token, int side, double price, double size, int level) noexcept nogil:
    cdef int c = out.count_
    out.token_[c] = token
    out.side_[c] = side
    out.price_[c] = price
    out.size_[c] = size
    out.level_[c] = level
    out.count_ = c + 1


cdef inline double _floor_size(double x, double inv_step) noexcept nogil:
    if not (x > 0.0):
        return 0.0
    if not isfinite(x):
        return INFINITY
    return floor(x * inv_step + _SZ_EPS) / inv_step


cdef int build_ladder_c(Ladder out, double fair, double unc, double inv_up, double inv_down,
                        double best_bid, double best_ask, const LadderParams *prm) noexcept nogil:
    """Fill ``out``; returns the order count or -1 for bad inputs (out.count_ = 0)."""
    cdef double N, inv_step, q, r, h, off, s0, size, px, u_rem, d_rem, up_room, down_room, cap
    cdef long long kb, ka, bb, ba, prev_kb, prev_ka
    cdef int i
    out.count_ = 0
    out.reservation_ = NAN
    out.half_width_ = NAN
    if not (isfinite(fair) and fair >= 0.0 and fair <= 1.0 and isfinite(unc) and unc >= 0.0
            and isfinite(inv_up) and inv_up >= 0.0 and isfinite(inv_down) and inv_down >= 0.0):
        return -1
    if not (prm.tick > 0.0 and prm.tick < 0.5 and prm.size_step > 0.0):
        return -1
    N = floor(1.0 / prm.tick + 0.5)
    inv_step = floor(1.0 / prm.size_step + 0.5)
    if fabs(N * prm.tick - 1.0) > 1e-9 or fabs(inv_step * prm.size_step - 1.0) > 1e-9:
        return -1
    if not (prm.n_levels >= 0 and prm.n_levels <= LADDER_MAX_LEVELS and prm.min_size >= 0.0
            and prm.base_size >= 0.0 and prm.half_spread >= 0.0 and prm.level_step >= 0.0
            and prm.unc_mult >= 0.0 and prm.skew >= 0.0 and prm.max_order_size >= 0.0
            and prm.max_position >= 0.0 and prm.capital_free >= 0.0 and prm.spread_mult > 0.0
            and prm.size_mult >= 0.0 and isfinite(prm.half_spread) and isfinite(prm.level_step)
            and isfinite(prm.unc_mult) and isfinite(prm.skew) and isfinite(prm.spread_mult)
            and isfinite(prm.base_size) and isfinite(prm.size_mult)):
        return -1
    q = (inv_up - inv_down) / prm.max_position if prm.max_position > 0.0 else 0.0
    r = fair - prm.skew * q
    h = (prm.half_spread + prm.unc_mult * unc) * prm.spread_mult
    out.reservation_ = r
    out.half_width_ = h
    bb = <long long> floor(best_bid * N + 0.5) if (isfinite(best_bid) and best_bid > 0.0 and best_bid < 1.0) else -1
    ba = <long long> floor(best_ask * N + 0.5) if (isfinite(best_ask) and best_ask > 0.0 and best_ask < 1.0) else -1
    s0 = prm.base_size * prm.size_mult
    if s0 > prm.max_order_size:
        s0 = prm.max_order_size
    u_rem = inv_up
    d_rem = inv_down
    up_room = prm.max_position - inv_up
    down_room = prm.max_position - inv_down
    cap = prm.capital_free
    prev_kb = <long long> N + 1
    prev_ka = -1
    for i in range(prm.n_levels):
        off = h + i * prm.level_step
        kb = <long long> floor((r - off) * N + _PX_EPS)
        ka = <long long> ceil((r + off) * N - _PX_EPS)
        if prm.post_only:
            if ba >= 0 and kb > ba - 1:
                kb = ba - 1
            if bb >= 0 and ka < bb + 1:
                ka = bb + 1
        if kb > <long long> N - 1:
            kb = <long long> N - 1
        if ka < 1:
            ka = 1
        if kb >= ka:
            kb = ka - 1
        # ---- bid side (Up-price space)
        if kb >= 1 and kb < prev_kb:
            prev_kb = kb
            px = kb / N
            if d_rem >= prm.min_size and d_rem > 0.0:
                size = _floor_size(s0 if s0 < d_rem else d_rem, inv_step)
                if size >= prm.min_size and size > 0.0:
                    _emit(out, 1, 1, (N - kb) / N, size, i)
                    d_rem -= size
            elif not prm.reduce_only:
                size = s0
                if size > up_room:
                    size = up_room
                if size * px > cap:
                    size = cap / px
                size = _floor_size(size, inv_step)
                if size >= prm.min_size and size > 0.0:
                    _emit(out, 0, 0, px, size, i)
                    up_room -= size
                    cap -= size * px
        # ---- ask side
        if ka <= <long long> N - 1 and ka > prev_ka:
            prev_ka = ka
            if u_rem >= prm.min_size and u_rem > 0.0:
                size = _floor_size(s0 if s0 < u_rem else u_rem, inv_step)
                if size >= prm.min_size and size > 0.0:
                    _emit(out, 0, 1, ka / N, size, i)
                    u_rem -= size
            elif not prm.reduce_only:
                px = (N - ka) / N
                size = s0
                if size > down_room:
                    size = down_room
                if size * px > cap:
                    size = cap / px
                size = _floor_size(size, inv_step)
                if size >= prm.min_size and size > 0.0:
                    _emit(out, 1, 0, px, size, i)
                    down_room -= size
                    cap -= size * px
    return out.count_


def build_ladder(double fair, double unc, double inv_up, double inv_down, double best_bid, double best_ask,
                 *, double tick=0.01, double min_size=5.0, int n_levels=2, double base_size=5.0,
                 double half_spread=0.02, double level_step=0.01, double unc_mult=1.0, double skew=0.02,
                 double max_order_size=100.0, double max_position=500.0, double capital_free=INFINITY,
                 bint post_only=True, bint reduce_only=False, double spread_mult=1.0, double size_mult=1.0,
                 double size_step=0.01, Ladder out=None):
    """Build the ladder (see module docstring). ``out`` reuses a Ladder to avoid an allocation.

    Raises ValueError on bad inputs (fair outside [0, 1], negative inventory, tick that
    is not 1/integer, n_levels outside 0..16, negative limits, NaN anywhere but the book).
    """
    cdef LadderParams prm
    prm.tick = tick
    prm.min_size = min_size
    prm.n_levels = n_levels
    prm.base_size = base_size
    prm.half_spread = half_spread
    prm.level_step = level_step
    prm.unc_mult = unc_mult
    prm.skew = skew
    prm.max_order_size = max_order_size
    prm.max_position = max_position
    prm.capital_free = capital_free
    prm.post_only = post_only
    prm.reduce_only = reduce_only
    prm.spread_mult = spread_mult
    prm.size_mult = size_mult
    prm.size_step = size_step
    if out is None:
        out = Ladder.__new__(Ladder)
    if build_ladder_c(out, fair, unc, inv_up, inv_down, best_bid, best_ask, &prm) < 0:
        raise ValueError(
            f"build_ladder: bad input (fair={fair!r}, unc={unc!r}, inv_up={inv_up!r}, inv_down={inv_down!r}, "
            f"tick={tick!r}, size_step={size_step!r}, n_levels={n_levels}, limits/sizes must be >= 0 and finite)")
    return out


# ----------------------------------------------------------------------------- per-pass quoting
cdef void _fixed_params(LadderParams *prm, double tick, double min_size, int n_levels, double level_step,
                       double unc_mult, double max_order_size, double max_position, bint post_only,
                       double size_mult, double size_step) noexcept nogil:
    """The pass-independent fields; the per-pass ones start neutral (set by the pass)."""
    prm.tick = tick
    prm.min_size = min_size
    prm.n_levels = n_levels
    prm.base_size = 0.0
    prm.half_spread = 0.0
    prm.level_step = level_step
    prm.unc_mult = unc_mult
    prm.skew = 0.0
    prm.max_order_size = max_order_size
    prm.max_position = max_position
    prm.capital_free = 0.0
    prm.post_only = post_only
    prm.reduce_only = False
    prm.spread_mult = 1.0
    prm.size_mult = size_mult
    prm.size_step = size_step


cdef object _quotes_of(const LadderParams *prm, double fair, double unc, double inv_up, double inv_down,
                       double best_bid, double best_ask, double band_lo, double band_hi, int pull,
                       dict cache, object make):
    """Ladder + filter (nogil functions, called with the GIL held: a pass is a few hundred ns of
    arithmetic, less than releasing and re-taking the GIL would cost), then the memoised objects.
    None for bad inputs."""
    cdef Ladder out = Ladder.__new__(Ladder)
    cdef int i, n
    n = build_ladder_c(out, fair, unc, inv_up, inv_down, best_bid, best_ask, prm)
    if n > 0:
        n = ladder_filter_c(out, band_lo, band_hi, pull)
    if n < 0:
        return None
    res = []
    for i in range(n):
        key = (out.token_[i], out.side_[i], out.price_[i], out.size_[i])
        q = cache.get(key)
        if q is None:
            q = make(out.token_[i], out.side_[i], out.price_[i], out.size_[i])
            cache[key] = q
        res.append(q)
    return res


cdef class LadderSpec:
    """The ladder parameters that stay fixed from pass to pass (strategy knobs, limits and the
    market's tick / minimum), bound once at set-up so a decision pass does not parse them again.
    The per-pass ones (size, half-width, skew, free capital, reduce-only, spread multiplier) are
    arguments of :func:`quote_ladder`."""

    def __cinit__(self, double tick=0.01, double min_size=5.0, int n_levels=2, double level_step=0.01,
                  double unc_mult=1.0, double max_order_size=100.0, double max_position=500.0,
                  bint post_only=True, double size_mult=1.0, double size_step=0.01):
        _fixed_params(&self.prm, tick, min_size, n_levels, level_step, unc_mult, max_order_size, max_position,
                      post_only, size_mult, size_step)

    def __repr__(self):
        return (f"LadderSpec(tick={self.prm.tick}, min_size={self.prm.min_size}, n_levels={self.prm.n_levels}, "
                f"level_step={self.prm.level_step}, unc_mult={self.prm.unc_mult}, "
                f"max_order_size={self.prm.max_order_size}, max_position={self.prm.max_position})")


cdef int ladder_filter_c(Ladder out, double band_lo, double band_hi, int pull) noexcept nogil:
    """Keep, in place, the orders the strategy quotes: BUYs whose Up-space price is inside
    ``[band_lo, band_hi]`` (1e-9 slack), none of the side a fast move pulled (``pull`` +1: the
    Up-ask side = SELL Up / BUY Down; -1: the Up-bid side), then reducing orders (SELLs) first,
    stable within each group. Returns the new count."""
    cdef int tok[LADDER_MAX_ORDERS]
    cdef int sid[LADDER_MAX_ORDERS]
    cdef int lvl[LADDER_MAX_ORDERS]
    cdef double px[LADDER_MAX_ORDERS]
    cdef double sz[LADDER_MAX_ORDERS]
    cdef int i, n = 0, c = 0, grp
    cdef double up_px
    cdef bint is_ask
    for i in range(out.count_):
        if out.side_[i] == 0:
            up_px = out.price_[i] if out.token_[i] == 0 else 1.0 - out.price_[i]
            if not (band_lo - _PX_EPS <= up_px and up_px <= band_hi + _PX_EPS):
                continue
        if pull != 0:
            is_ask = (out.token_[i] == 0) == (out.side_[i] == 1)
            if (pull > 0 and is_ask) or (pull < 0 and not is_ask):
                continue
        tok[n] = out.token_[i]
        sid[n] = out.side_[i]
        lvl[n] = out.level_[i]
        px[n] = out.price_[i]
        sz[n] = out.size_[i]
        n += 1
    for grp in range(1, -1, -1):        # SELLs (reducing) first, then BUYs
        for i in range(n):
            if sid[i] == grp:
                out.token_[c] = tok[i]
                out.side_[c] = sid[i]
                out.level_[c] = lvl[i]
                out.price_[c] = px[i]
                out.size_[c] = sz[i]
                c += 1
    out.count_ = c
    return c


def quote_ladder(LadderSpec spec, double fair, double unc, double inv_up, double inv_down, double best_bid,
                 double best_ask, double base_size, double half_spread, double skew, double capital_free,
                 bint reduce_only, double spread_mult, double band_lo, double band_hi, int pull,
                 dict cache, object make):
    """One pass's quotes: :func:`build_ladder` with ``spec``'s fixed parameters and the per-pass
    ones given here, filtered by :c:func:`ladder_filter_c` (price band, fast-move pull, reducing
    orders first). Returns a list of ``make(token, side, price, size)`` results, memoised in
    ``cache`` under ``(token, side, price, size)`` (the made objects must be immutable: the same
    one is returned whenever the same order recurs). Raises ValueError as build_ladder does.
    Same algorithm in ``reference/ladder.py`` (``quote_ladder``)."""
    cdef LadderParams prm = spec.prm
    prm.base_size = base_size
    prm.half_spread = half_spread
    prm.skew = skew
    prm.capital_free = capital_free
    prm.reduce_only = reduce_only
    prm.spread_mult = spread_mult
    res = _quotes_of(&prm, fair, unc, inv_up, inv_down, best_bid, best_ask, band_lo, band_hi, pull, cache, make)
    if res is None:
        raise ValueError(
            f"quote_ladder: bad input (fair={fair!r}, unc={unc!r}, inv_up={inv_up!r}, inv_down={inv_down!r}, "
            f"{spec!r}, base_size={base_size!r}, half_spread={half_spread!r}, skew={skew!r}, "
            f"capital_free={capital_free!r}, spread_mult={spread_mult!r}; limits/sizes must be >= 0 and finite)")
    return res


# ----------------------------------------------------------------------------- the whole pass
# Python's min/max on two floats, spelled out (they differ from fmin/fmax on NaN and on -0.0):
# min(a, b) is b only when b < a; max(a, b) is b only when b > a.
cdef inline double _pymin(double a, double b) noexcept nogil:
    return b if b < a else a


cdef inline double _pymax(double a, double b) noexcept nogil:
    return b if b > a else a


cdef double normal_inv_cdf(double p) noexcept nogil:
    """``statistics.NormalDist().inv_cdf(p)`` for 0 < p < 1: Wichura's AS241 with CPython's
    coefficients and evaluation order (``statistics._normal_dist_inv_cdf``), so the same double."""
    cdef double q = p - 0.5, r, num, den, x
    if fabs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2.5090809287301226727e+3 * r +
                     3.3430575583588128105e+4) * r +
                     6.7265770927008700853e+4) * r +
                     4.5921953931549871457e+4) * r +
                     1.3731693765509461125e+4) * r +
                     1.9715909503065514427e+3) * r +
                     1.3314166789178437745e+2) * r +
                     3.3871328727963666080e+0) * q
        den = (((((((5.2264952788528545610e+3 * r +
                     2.8729085735721942674e+4) * r +
                     3.9307895800092710610e+4) * r +
                     2.1213794301586595867e+4) * r +
                     5.3941960214247511077e+3) * r +
                     6.8718700749205790830e+2) * r +
                     4.2313330701600911252e+1) * r +
                     1.0)
        x = num / den
        return 0.0 + (x * 1.0)
    r = p if q <= 0.0 else 1.0 - p
    r = sqrt(-log(r))
    if r <= 5.0:
        r = r - 1.6
        num = (((((((7.74545014278341407640e-4 * r +
                     2.27238449892691845833e-2) * r +
                     2.41780725177450611770e-1) * r +
                     1.27045825245236838258e+0) * r +
                     3.64784832476320460504e+0) * r +
                     5.76949722146069140550e+0) * r +
                     4.63033784615654529590e+0) * r +
                     1.42343711074968357734e+0)
        den = (((((((1.05075007164441684324e-9 * r +
                     5.47593808499534494600e-4) * r +
                     1.51986665636164571966e-2) * r +
                     1.48103976427480074590e-1) * r +
                     6.89767334985100004550e-1) * r +
                     1.67638483018380384940e+0) * r +
                     2.05319162663775882187e+0) * r +
                     1.0)
    else:
        r = r - 5.0
        num = (((((((2.01033439929228813265e-7 * r +
                     2.71155556874348757815e-5) * r +
                     1.24266094738807843860e-3) * r +
                     2.65321895265761230930e-2) * r +
                     2.96560571828504891230e-1) * r +
                     1.78482653991729133580e+0) * r +
                     5.46378491116411436990e+0) * r +
                     6.65790464350110377720e+0)
        den = (((((((2.04426310338993978564e-15 * r +
                     1.42151175831644588870e-7) * r +
                     1.84631831751005468180e-5) * r +
                     7.86869131145613259100e-4) * r +
                     1.48753612908506148525e-2) * r +
                     1.36929880922735805310e-1) * r +
                     5.99832206555887937690e-1) * r +
                     1.0)
    x = num / den
    if q < 0.0:
        x = -x
    return 0.0 + (x * 1.0)


def inv_cdf(double p):
    """``normal_inv_cdf`` from Python (tests: it must equal ``NormalDist().inv_cdf`` bit for bit)."""
    if not (p > 0.0 and p < 1.0):
        raise ValueError("p must be in the range 0.0 < p < 1.0")
    return normal_inv_cdf(p)


cdef class QuoteKernel:
    """The strategy's two-sided ladder for one pass, compiled whole: the twin of
    ``hourmm_core.trading.strategy.ladder_quotes`` (quoting fair with the book anchor, the
    near-certain cut, the wind-down widening / shrinking / skew ramp, the fast-move width
    ``move_mult * move_width``, then :func:`quote_ladder`), with the strategy knobs, limits and
    the market's tick / minimum bound once. Same floats as the Python function (tested)."""

    def __cinit__(self, double tick, double min_size, int n_levels, double level_step, double unc_mult,
                  double max_order_size, double max_position, double quote_size, double skew,
                  double half_spread, double move_mult, double latency_ms, double price_band,
                  double extreme_cut, double mid_weight, double mid_max_spread, double wind_spread_mult,
                  double wind_size_mult, double max_reserved_capital):
        _fixed_params(&self.prm, tick, min_size, n_levels, level_step, unc_mult, max_order_size, max_position,
                      True, 1.0, 0.01)
        self.quote_size = quote_size
        self.skew = skew
        self.half_spread = half_spread
        self.move_mult = move_mult
        self.latency_ms = latency_ms
        self.price_band = price_band
        self.extreme_cut = extreme_cut
        self.mid_weight = mid_weight
        self.mid_max_spread = mid_max_spread
        self.wind_spread_mult = wind_spread_mult
        self.wind_size_mult = wind_size_mult
        self.max_reserved_capital = max_reserved_capital

    def quotes(self, double fair_up, double fair_unc, double yes, double no, double up_bid, double up_ask,
               bint wind_down, double wind_progress, double ms_left, double held_cost, int pull,
               bint reduce_only, dict cache, object make):
        """``ladder_quotes`` of a state with these fields (``up_bid`` / ``up_ask``: NaN = None;
        ``wind_down``: the phase is WIND_DOWN). Returns the list :func:`quote_ladder` returns."""
        cdef LadderParams prm = self.prm
        cdef double size, skew, spread_mult, fair, w, half, p, z, mw
        size = _pymin(self.quote_size, prm.max_order_size)
        skew = self.skew
        spread_mult = 1.0
        fair = fair_up                              # quoting fair: the Up book's mid pulled in
        if not (self.mid_weight <= 0) and not isnan(up_bid) and not isnan(up_ask):
            if 0.0 < up_ask - up_bid and up_ask - up_bid <= self.mid_max_spread + 1e-9:
                w = _pymin(1.0, self.mid_weight)
                fair = (1.0 - w) * fair_up + w * 0.5 * (up_bid + up_ask)
        if self.extreme_cut > 0 and _pymin(fair, 1.0 - fair) < self.extreme_cut:
            reduce_only = True
        if wind_down:
            spread_mult = self.wind_spread_mult
            size = _pymax(_pymin(size, prm.min_size), size * self.wind_size_mult)
            skew *= 1.0 + 2.0 * wind_progress
        if size < prm.min_size - 1e-9:
            return []
        if self.move_mult > 0:
            if isinf(ms_left) or isnan(ms_left):
                mw = 0.0
            else:
                p = _pymin(1.0 - 1e-6, _pymax(1e-6, fair))
                z = normal_inv_cdf(p)
                mw = exp(-0.5 * z * z) / sqrt(2.0 * M_PI) * sqrt(_pymax(0.0, self.latency_ms) / _pymax(ms_left, 1.0))
            half = self.half_spread + self.move_mult * mw
        else:
            half = self.half_spread + 0.0
        prm.base_size = size
        prm.half_spread = half
        prm.skew = skew
        prm.capital_free = _pymax(0.0, self.max_reserved_capital - held_cost)
        prm.reduce_only = reduce_only
        prm.spread_mult = spread_mult
        res = _quotes_of(&prm, fair, fair_unc, _pymax(0.0, yes), _pymax(0.0, no), up_bid, up_ask,
                         fair_up - self.price_band, fair_up + self.price_band, pull, cache, make)
        if res is None:
            raise ValueError(
                f"QuoteKernel.quotes: bad input (fair={fair!r}, unc={fair_unc!r}, yes={yes!r}, no={no!r}, "
                f"size={size!r}, half_spread={half!r}, skew={skew!r}; limits/sizes must be >= 0 and finite)")
        return res
