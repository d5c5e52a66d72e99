# The top of the engine's Up-terms book and its plumbing, compiled (booktop.pyx).

cdef bint any_left(dict orders, object q) except -1
cdef object top(dict orders, object m, bint bid)
cdef int rest(object ex, dict book, list prices, long long p, object oid, object o, object owner) except -1
cdef object new_order(object oid, object owner, object cid, object tok, bint up, object side, long long pu,
                      long long su, object order_type, bint post_only, long long expiration_ms, long long created_ms,
                      long long seq, long long res_usdc_u)
