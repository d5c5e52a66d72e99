# cython: language_level=3
cdef enum:
    R_OK = 0
    R_ORDER_SIZE = 1
    R_POSITION = 2
    R_CAPITAL = 3
    R_OPEN_ORDERS = 4
    R_PRICE_BAND = 5
    R_STALE = 6
    R_MODE_HALT = 7
    R_MODE_REDUCE_ONLY = 8
    R_MODE_FLATTEN = 9
    R_BAD_PRICE = 10
    R_BAD_SIZE = 11
    R_BAD_ORDER = 12
    R_BAD_MODE = 13

cdef enum:
    M_NORMAL = 0
    M_REDUCE_ONLY = 1
    M_FLATTEN = 2
    M_HALT = 3

cdef struct RiskLimits:
    double max_order_size
    double max_position
    double max_capital
    long long max_open_orders
    double price_band
    long long stale_ms
    double tick
    double min_size

cdef int check_order_c(int mode, int token, int side, double price, double size, double fair,
                       double inv_up, double inv_down, double pending_up, double pending_down,
                       long long open_orders, double reserved_capital, long long data_age_ms,
                       const RiskLimits *lim) noexcept nogil

cdef int check_portfolio_c(int mode, double inv_up, double inv_down, double pending_up, double pending_down,
                           long long open_orders, double reserved_capital, long long data_age_ms,
                           const RiskLimits *lim) noexcept nogil

cpdef int check_order(int mode, int token, int side, double price, double size, double fair,
                      double inv_up, double inv_down, long long open_orders, double reserved_capital,
                      long long data_age_ms, double max_order_size, double max_position, double max_capital,
                      long long max_open_orders, double price_band, long long stale_ms,
                      double pending_up=*, double pending_down=*, double tick=*, double min_size=*)

cpdef int check_portfolio(int mode, double inv_up, double inv_down, long long open_orders,
                          double reserved_capital, long long data_age_ms, double max_position,
                          double max_capital, long long max_open_orders, long long stale_ms,
                          double pending_up=*, double pending_down=*)

cdef class RiskChecker:
    cdef RiskLimits lim
    cpdef int check(self, int mode, int token, int side, double price, double size, double fair,
                    double inv_up, double inv_down, long long open_orders, double reserved_capital,
                    long long data_age_ms, double pending_up=*, double pending_down=*)
