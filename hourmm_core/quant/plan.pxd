# cython: language_level=3
cpdef tuple match_quotes(list desired, list free, double price_tol, double size_tol)
cpdef tuple order_aggregates(object orders, object final)
cpdef list prune_order(object orders, object final, long keep)
from hourmm_core.quant.risk cimport RiskLimits


cdef class QuoteCheck:
    cdef RiskLimits lim
    cdef public int mode
    cdef public double fair
    cdef public bint unwind
    cdef public long long age
    cdef public double yes, no, buy_up, buy_down, sell_up, sell_down, reserved
    cdef public long long open_orders
    cdef int check_c(self, int token, int side, double price, double size) noexcept
    cpdef int check(self, object q)


cpdef tuple plan_orders(list want, list working, object cancelling, double price_tol, double size_tol,
                        long budget, object max_open, bint places, object check, object new_order,
                        object now_ms, object action)
