# The top of the engine's Up-terms book, compiled (booktop.pyx).

cdef bint any_left(dict orders, object q) except -1
cdef object top(dict orders, object m, bint bid)
cdef int rest(object ex, dict book, list prices, long long p, object oid, object o, object owner) except -1
