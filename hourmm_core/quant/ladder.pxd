# cython: language_level=3
cdef enum:
    LADDER_MAX_LEVELS = 16
    LADDER_MAX_ORDERS = 32

cdef struct LadderParams:
    double tick
    double min_size
    int n_levels
    double base_size
    double half_spread
    double level_step
    double unc_mult
    double skew
    double max_order_size
    double max_position
    double capital_free
    bint post_only
    bint reduce_only
    double spread_mult
    double size_mult
    double size_step

cdef class Ladder:
    cdef int count_
    cdef int token_[LADDER_MAX_ORDERS]
    cdef int side_[LADDER_MAX_ORDERS]
    cdef int level_[LADDER_MAX_ORDERS]
    cdef double price_[LADDER_MAX_ORDERS]
    cdef double size_[LADDER_MAX_ORDERS]
    cdef double reservation_
    cdef double half_width_

cdef class LadderSpec:
    cdef LadderParams prm

cdef class QuoteKernel:
    cdef LadderParams prm
    cdef double quote_size, skew, half_spread, move_mult, latency_ms, price_band, extreme_cut
    cdef double mid_weight, mid_max_spread, wind_spread_mult, wind_size_mult, max_reserved_capital

cdef double normal_inv_cdf(double p) noexcept nogil

cdef int ladder_filter_c(Ladder out, double band_lo, double band_hi, int pull) noexcept nogil

cdef int build_ladder_c(Ladder out, double fair, double unc, double inv_up, double inv_down,
                        double best_bid, double best_ask, const LadderParams *prm) noexcept nogil
