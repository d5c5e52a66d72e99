# Typed state of the compiled background flow (flowcore.pyx): the touch makers' slots and ladders.

cdef class MakerSlot:
    cdef public long long next_quote, check_n, check_t, settled_ver
    cdef public double view, settled_view
    cdef public bint has_view, settled
    cdef public dict rest


cdef class Ladder:
    cdef public int n
    cdef public list keys, toks, pxs
    cdef public dict want
    cdef int lvl[64]
    cdef bint up[64]


cdef class TouchMakers:
    cdef object ex, rng, stats
    cdef list makers, bias
    cdef int levels
    cdef double level_step, requote_ms, noise_sd, size_lo, size_hi, depth_lo, depth_hi
    cdef long long refill_ms, stop_before_ms
    cdef dict slots, ladders


cdef enum:
    SCAN_MAX = 256       # the snipers' typed target cache holds up to this many orders


cdef class ScanTargets:
    cdef object market, owners, pending
    cdef long long ver
    cdef int n
    cdef list oids
    cdef set live_ids
    cdef double q[SCAN_MAX]
    cdef double fee[SCAN_MAX]
    cdef bint value_is_f[SCAN_MAX]


cdef class LazyTrade:
    cdef object ex, m, t, built
    cdef list fills, makers, slots
    cdef long long id_seq, now_ms, total_fee_u
    cdef Py_ssize_t idx
    cdef double draw
