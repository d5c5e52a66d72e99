# cython: language_level=3
"""The simulator engine's wire strings in C: order and trade ids and the CLOB's decimal strings, the
same text as their plain-Python reference twins (:func:`hourmm_core.sim.polymarket.orders.sim_id_ref`,
:func:`hourmm_core.sim.polymarket.orders.fmt_ref`), several times cheaper.

Why: an id is ``SHA-256("{prefix}:{seed}:{seq}:{draw}")`` with ``draw`` a float of the engine's
random stream; a simulated backtest hour makes ~12,000 of them (makers' quotes, takers, trades),
and hashlib's per-call object, the float's repr through an f-string and ``hexdigest`` cost more
than the hash itself. Here the message is built in a stack buffer (the float with CPython's own
``repr`` routine, ``PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0)``, so the text is
identical), hashed by a C SHA-256 (``_sha256.h``) and formatted once.

Decimal strings (:func:`fmt_decimal`, the engine's ``_fmt``): ``f"{x:.6f}"`` with trailing zeros and
dot stripped, made by the routine ``format`` itself uses (``PyOS_double_to_string(x, 'f', 6, 0)``);
~10,000 per simulated hour (trade records, order dicts).

Streaming API: :func:`order_id`, :func:`trade_id`, :func:`tx_hash`, :func:`fmt_decimal` (one string
per call, what the engine uses); batch API: :func:`order_ids` (numpy arrays of seq and draws).
tests/unit/sim/polymarket/test_wire.py compares every function with its reference on random and
edge inputs.
"""
from cpython.mem cimport PyMem_Free
from libc.string cimport memcpy, strlen

import numpy as np

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int *type) except NULL
    int Py_DTSF_ADD_DOT_0

cdef int _put_int(char *out, long long v) noexcept:
    """``"%lld" % v`` into ``out`` (at most 20 chars, no terminator); returns the length. By hand:
    glibc's snprintf took more time than the SHA-256 block (~0.8 % of a backtest hour)."""
    cdef char tmp[24]
    cdef int n = 0, k = 0
    cdef unsigned long long u
    if v < 0:
        out[0] = 45     # '-'
        k = 1
        u = (<unsigned long long> (-(v + 1))) + 1
    else:
        u = <unsigned long long> v
    while True:
        tmp[n] = <char> (48 + <int> (u % 10))
        u = u // 10
        n += 1
        if u == 0:
            break
    while n > 0:
        n -= 1
        out[k] = tmp[n]
        k += 1
    return k


cdef str _id_hex(bytes head, long long seq, double draw):
    """64 hex chars of SHA-256(head + str(seq) + ":" + repr(draw))."""
    cdef char buf[256]
    cdef char out[64]
    cdef Py_ssize_t hl = len(head)
    cdef char *r
    cdef size_t rl
    cdef int n
    if hl > 160:
        raise ValueError("id prefix too long")
    memcpy(buf, <const char*> head, hl)
    n = _put_int(buf + hl, seq)
    buf[hl + n] = 58    # ':'
    n += 1
    r = PyOS_double_to_string(draw, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    rl = strlen(r)
    if rl > 40:
        PyMem_Free(r)
        raise ValueError("float repr too long")
    memcpy(buf + hl + n, r, rl)
    PyMem_Free(r)
    hmm_sha256_hex(<const unsigned char*> buf, hl + n + rl, out)
    return out[:64].decode("ascii")


def id_head(prefix: str, seed: object) -> bytes:
    """The constant start of an engine's ids: ``f"{prefix}:{seed}:"`` as bytes."""
    return f"{prefix}:{seed}:".encode()


def order_id(bytes head, long long seq, double draw) -> str:
    """``"0x" + sha256(f"order:{seed}:{seq}:{draw}").hexdigest()`` (``head`` = ``id_head("order", seed)``)."""
    return "0x" + _id_hex(head, seq, draw)


def trade_id(bytes head, long long seq, double draw) -> str:
    """The engine's trade id: the digest's first 32 hex chars in the 8-4-4-4-12 (uuid) layout."""
    cdef str h = _id_hex(head, seq, draw)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def tx_hash(str tid) -> str:
    """A trade's ``transaction_hash``: ``"0x" + sha256(tid).hexdigest()``."""
    cdef bytes b = tid.encode()
    cdef char out[64]
    hmm_sha256_hex(<const unsigned char*> b, len(b), out)
    return "0x" + out[:64].decode("ascii")


def order_ids(bytes head, seqs, draws) -> list:
    """Batch: :func:`order_id` of each (seq, draw) pair (int64 / float64 arrays of equal length)."""
    cdef long long[:] s = np.ascontiguousarray(seqs, dtype=np.int64)
    cdef double[:] d = np.ascontiguousarray(draws, dtype=np.float64)
    cdef Py_ssize_t i
    if s.shape[0] != d.shape[0]:
        raise ValueError("seqs and draws must have the same length")
    return ["0x" + _id_hex(head, s[i], d[i]) for i in range(s.shape[0])]


def fmt_decimal(double x) -> str:
    """Decimal string like the CLOB's JSON ("0.52", "10", "12.5"): ``f"{x:.6f}"`` without trailing
    zeros / dot, "0" for zero (and negative zero)."""
    cdef char *r = PyOS_double_to_string(x, b'f', 6, 0, NULL)
    cdef Py_ssize_t n = strlen(r)
    cdef Py_ssize_t i
    cdef bint dot = False
    for i in range(n):
        if r[i] == b'.':
            dot = True
            break
    if dot:
        while n > 0 and r[n - 1] == b'0':
            n -= 1
        if n > 0 and r[n - 1] == b'.':
            n -= 1
    if n == 0 or (n == 2 and r[0] == b'-' and r[1] == b'0'):
        PyMem_Free(r)
        return "0"
    s = r[:n].decode("ascii")
    PyMem_Free(r)
    return s
