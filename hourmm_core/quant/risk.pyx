# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Pre-trade and portfolio risk checks (compiled, nogil, a few ns each).

``check_order`` returns a ``RiskReason`` code (0 = OK); the first failing check wins:

1. mode: HALT -> MODE_HALT; an unknown mode -> BAD_MODE (fail closed).
2. the order itself: token/side not 0/1 -> BAD_ORDER; price not finite or outside
   (0, 1) or (``tick`` > 0) off the tick grid -> BAD_PRICE; size not finite, <= 0 or
   below ``min_size`` -> BAD_SIZE.
3. REDUCE_ONLY / FLATTEN pass only *reducing* orders: a SELL of a token we hold at
   least ``size`` of. Anything else -> MODE_REDUCE_ONLY / MODE_FLATTEN. (Buying Down
   while long Up lowers net exposure but adds gross position and spends capital, so
   it is not treated as reducing.)
4. size > max_order_size -> ORDER_SIZE.
5. POSITION: a BUY may not take ``inv_token + pending_token + size`` over
   ``max_position`` (``pending_*`` = open BUY size on that token, so every fill at
   once stays within the limit); a SELL may not exceed the shares held (no shorts).
6. CAPITAL: a BUY may not take ``reserved_capital + price * size`` over
   ``max_capital`` (``reserved_capital`` = price*size of open BUY orders).
7. OPEN_ORDERS: ``open_orders + 1 > max_open_orders``.
8. STALE: ``data_age_ms > stale_ms`` or fair not finite -> STALE, for non-reducing
   orders only: unwinding must still be possible when the feed is down.
9. PRICE_BAND: ``|price - fair_token| > price_band`` with ``fair_token`` = fair for
   Up and ``1 - fair`` for Down (skipped for reducing orders when fair is unknown).

``check_portfolio`` checks the book as a whole (POSITION, CAPITAL, OPEN_ORDERS, STALE,
BAD_MODE) and is meant to run on every fill / reconcile. A tolerance of 1e-9 absorbs
float noise on the limits. Same logic in ``reference/risk.py``.
"""
from libc.math cimport isfinite, fabs, floor

cdef double _TOL = 1e-9


cdef int check_order_c(int mode, int token, int side, double price, double size, double fair,
                       double inv_up, double inv_down, double pending_up, double pending_down,
                       long long open_orders, double reserved_capital, long long data_age_ms,
                       const RiskLimits *lim) noexcept nogil:
    cdef double held, pending, k, fair_tok
    cdef bint reducing
    if mode == M_HALT:
        return R_MODE_HALT
    if mode < M_NORMAL or mode > M_HALT:
        return R_BAD_MODE
    if token < 0 or token > 1 or side < 0 or side > 1:
        return R_BAD_ORDER
    if not (isfinite(price) and price > 0.0 and price < 1.0):
        return R_BAD_PRICE
    if lim.tick > 0.0:
        k = price / lim.tick
        if fabs(k - floor(k + 0.5)) > 1e-6:
            return R_BAD_PRICE
    if not (isfinite(size) and size > 0.0 and size >= lim.min_size - _TOL):
        return R_BAD_SIZE
    held = inv_up if token == 0 else inv_down
    pending = pending_up if token == 0 else pending_down
    if not isfinite(held) or not isfinite(pending):
        return R_POSITION
    reducing = side == 1 and size <= held + _TOL
    if not reducing:
        if mode == M_REDUCE_ONLY:
            return R_MODE_REDUCE_ONLY
        if mode == M_FLATTEN:
            return R_MODE_FLATTEN
    if not (size <= lim.max_order_size + _TOL):
        return R_ORDER_SIZE
    if side == 0:
        if not (held + pending + size <= lim.max_position + _TOL):
            return R_POSITION
        if not (reserved_capital + price * size <= lim.max_capital + _TOL):
            return R_CAPITAL
    elif not reducing:
        return R_POSITION
    if not (open_orders + 1 <= lim.max_open_orders):
        return R_OPEN_ORDERS
    if not reducing and (data_age_ms > lim.stale_ms or not isfinite(fair)):
        return R_STALE
    if isfinite(fair):
        fair_tok = fair if token == 0 else 1.0 - fair
        if not (fabs(price - fair_tok) <= lim.price_band + _TOL):
            return R_PRICE_BAND
    return R_OK


cdef int check_portfolio_c(int mode, double inv_up, double inv_down, double pending_up, double pending_down,
                           long long open_orders, double reserved_capital, long long data_age_ms,
                           const RiskLimits *lim) noexcept nogil:
    if mode < M_NORMAL or mode > M_HALT:
        return R_BAD_MODE
    if not (inv_up + pending_up <= lim.max_position + _TOL and inv_down + pending_down <= lim.max_position + _TOL):
        return R_POSITION
    if not (reserved_capital <= lim.max_capital + _TOL):
        return R_CAPITAL
    if not (open_orders <= lim.max_open_orders):
        return R_OPEN_ORDERS
    if data_age_ms > lim.stale_ms:
        return R_STALE
    return R_OK


cpdef int check_order(int mode, int token, int side, double price, double size, double fair,
                      double inv_up, double inv_down, long long open_orders, double reserved_capital,
                      long long data_age_ms, double max_order_size, double max_position, double max_capital,
                      long long max_open_orders, double price_band, long long stale_ms,
                      double pending_up=0.0, double pending_down=0.0, double tick=0.0, double min_size=0.0):
    """One pre-trade check; returns a RiskReason code (0 = OK). See the module docstring."""
    cdef RiskLimits lim
    lim.max_order_size = max_order_size
    lim.max_position = max_position
    lim.max_capital = max_capital
    lim.max_open_orders = max_open_orders
    lim.price_band = price_band
    lim.stale_ms = stale_ms
    lim.tick = tick
    lim.min_size = min_size
    return check_order_c(mode, token, side, price, size, fair, inv_up, inv_down, pending_up, pending_down,
                         open_orders, reserved_capital, data_age_ms, &lim)


cpdef int check_portfolio(int mode, double inv_up, double inv_down, long long open_orders,
                          double reserved_capital, long long data_age_ms, double max_position,
                          double max_capital, long long max_open_orders, long long stale_ms,
                          double pending_up=0.0, double pending_down=0.0):
    """Whole-book check; returns a RiskReason code (0 = OK)."""
    cdef RiskLimits lim
    lim.max_order_size = 0.0
    lim.max_position = max_position
    lim.max_capital = max_capital
    lim.max_open_orders = max_open_orders
    lim.price_band = 0.0
    lim.stale_ms = stale_ms
    lim.tick = 0.0
    lim.min_size = 0.0
    return check_portfolio_c(mode, inv_up, inv_down, pending_up, pending_down, open_orders,
                             reserved_capital, data_age_ms, &lim)


cdef class RiskChecker:
    """Limits bound once; ``check(...)`` is the cheapest per-order call from Python."""

    def __cinit__(self, double max_order_size, double max_position, double max_capital, long long max_open_orders,
                  double price_band, long long stale_ms, double tick=0.0, double min_size=0.0):
        self.lim.max_order_size = max_order_size
        self.lim.max_position = max_position
        self.lim.max_capital = max_capital
        self.lim.max_open_orders = max_open_orders
        self.lim.price_band = price_band
        self.lim.stale_ms = stale_ms
        self.lim.tick = tick
        self.lim.min_size = min_size

    cpdef int check(self, int mode, int token, int side, double price, double size, double fair,
                    double inv_up, double inv_down, long long open_orders, double reserved_capital,
                    long long data_age_ms, double pending_up=0.0, double pending_down=0.0):
        """Same as check_order with the bound limits."""
        return check_order_c(mode, token, side, price, size, fair, inv_up, inv_down, pending_up, pending_down,
                             open_orders, reserved_capital, data_age_ms, &self.lim)
