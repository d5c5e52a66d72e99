# cython: language_level=3, boundscheck=False, wraparound=False
"""The order manager's per-pass scans, compiled (``hourmm_core.trading.order_manager``).

* ``match_quotes``: which desired quotes a working order already covers. A working order
  keeps a quote when token and side are equal, ``|price - quote price| <= price_tol`` and
  ``|remaining - quote size| <= size_tol * quote size + 1e-9`` (``price_tol`` includes its
  1e-9); quotes are served in order, each by the first free order that matches, and each
  order serves at most one quote. The matched orders are removed from ``free`` (what is left
  is what the plan cancels); returns ``(missing quotes, number kept)``.
* ``order_aggregates``: one pass over the orders: the open ones (state not in ``final``) and
  the remaining size of open BUY Up / BUY Down / SELL Up / SELL Down orders plus the open
  BUY notional (price x remaining), summed in the orders' order (the same floats as the
  Python loop).

Both read the fields of the Python ``Quote`` / ``Order`` objects (the interface of the order
manager) and do the arithmetic in C doubles, in the order the plain-Python twin in
``reference/plan.py`` does it.
"""
from libc.math cimport fabs


cpdef tuple match_quotes(list desired, list free, double price_tol, double size_tol):
    cdef list missing = []
    cdef Py_ssize_t j, n
    cdef int kept = 0
    cdef double qp, qz, ztol
    cdef object q, o, qt, qs
    cdef bint found
    for q in desired:
        qt = q.token
        qs = q.side
        qp = q.price
        qz = q.size
        ztol = size_tol * qz + 1e-9
        found = False
        n = len(free)
        for j in range(n):
            o = free[j]
            if (o.token == qt and o.side == qs and not fabs(<double> o.price - qp) > price_tol
                    and fabs((<double> o.size - <double> o.filled) - qz) <= ztol):
                del free[j]
                kept += 1
                found = True
                break
        if not found:
            missing.append(q)
    return missing, kept


cpdef tuple order_aggregates(object orders, object final):
    cdef list opn = []
    cdef double bu = 0.0, bd = 0.0, su = 0.0, sd = 0.0, notional = 0.0, rem
    cdef object o
    for o in orders:
        if o.state in final:
            continue
        opn.append(o)
        rem = <double> o.size - <double> o.filled
        if rem <= 0.0:
            continue
        if o.side == 0:
            notional += <double> o.price * rem
            if o.token == 0:
                bu += rem
            else:
                bd += rem
        elif o.token == 0:
            su += rem
        else:
            sd += rem
    return opn, bu, bd, su, sd, notional
