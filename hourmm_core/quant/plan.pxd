# cython: language_level=3
cpdef tuple match_quotes(list desired, list free, double price_tol, double size_tol)
cpdef tuple order_aggregates(object orders, object final)
