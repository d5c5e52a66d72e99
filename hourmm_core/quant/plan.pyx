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

* ``QuoteCheck``: the pre-trade check of one plan's quotes (``risk_engine.check_quote``'s rule,
  its one definition): the compiled ``check_order`` with the pass's mode, fair, staleness and
  exposure; sells are checked against the tokens still free (held minus open sells) and the
  price band is skipped for a sell while unwinding (``unwind``); an accepted quote is added to
  the exposure so the next quote of the same plan sees it.
* ``plan_orders``: ``OrderManager.plan``'s whole diff in one call: the free working orders (not
  cancelling), ``match_quotes``, the cancels of the unmatched ones (unacked ones listed apart;
  ``budget`` rate tokens, one per action), then the missing quotes in priority order through the
  slots left (``max_open`` minus the working orders the plan keeps), the pre-trade check (a
  ``QuoteCheck`` is called without leaving C; any other callable is called) and the budget.

* ``prune_order``: which final orders ``OrderManager.prune`` drops: the final ones (state in
  ``final``) in the orders' order, stably sorted by ``updated_ms``, all but the last ``keep``
  (nothing while at most ``keep`` are final).

They read the fields of the Python ``Quote`` / ``Order`` objects (the interface of the order
manager) and do the arithmetic in C doubles, in the order the plain-Python twin in
``reference/plan.py`` does it.
"""
from libc.math cimport fabs, NAN

from hourmm_core.quant.risk cimport RiskChecker, check_order_c


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


cdef class QuoteCheck:
    """The pre-trade check of one plan (see the module docstring); ``rc``: the limits bound in a
    ``RiskChecker``; ``mode``: its RiskMode level; ``fair``: NaN when unknown; ``age``: the data
    age the check sees (0 fresh). The exposure fields are public (read back by check_quote)."""

    def __cinit__(self, RiskChecker rc, int mode, double fair, bint unwind, long long age, double yes, double no,
                  double buy_up, double buy_down, double sell_up, double sell_down, double reserved,
                  long long open_orders=0):
        self.lim = rc.lim
        self.mode = mode
        self.fair = fair
        self.unwind = unwind
        self.age = age
        self.yes = yes
        self.no = no
        self.buy_up = buy_up
        self.buy_down = buy_down
        self.sell_up = sell_up
        self.sell_down = sell_down
        self.reserved = reserved
        self.open_orders = open_orders

    cdef int check_c(self, int token, int side, double price, double size) noexcept:
        cdef double fair = NAN if (self.unwind and side != 0) else self.fair
        cdef int code = check_order_c(self.mode, token, side, price, size, fair,
                                      self.yes - self.sell_up if side != 0 else self.yes,
                                      self.no - self.sell_down if side != 0 else self.no,
                                      self.buy_up, self.buy_down, self.open_orders, self.reserved, self.age,
                                      &self.lim)
        if code != 0:
            return code
        if side == 0:
            if token == 0:
                self.buy_up += size
            else:
                self.buy_down += size
            self.reserved += price * size
        elif token == 0:
            self.sell_up += size
        else:
            self.sell_down += size
        self.open_orders += 1
        return 0

    cpdef int check(self, object q):
        """Check quote ``q`` (token, side, price, size); 0 = OK (then added to the exposure)."""
        return self.check_c(q.token, q.side, q.price, q.size)


cpdef tuple plan_orders(list want, list working, object cancelling, double price_tol, double size_tol,
                        long budget, object max_open, bint places, object check, object new_order,
                        object now_ms, object action):
    cdef list free = [o for o in working if o.state is not cancelling]
    cdef list actions = [], unacked = [], rejected = []
    cdef list missing
    cdef long dr = 0, ds = 0, n_cancel
    cdef int kept
    cdef object o, q, code, slots
    cdef QuoteCheck qc = check if type(check) is QuoteCheck else None
    cdef int c
    missing, kept = match_quotes(want, free, price_tol, size_tol)
    for o in free:                         # the unmatched ones, not already cancelling
        if o.order_id is None:
            unacked.append(o)
            continue
        if budget <= 0:
            dr += 1
            continue
        budget -= 1
        actions.append(action("cancel", o))
    n_cancel = len(actions)
    if places:
        slots = max_open - (len(working) - n_cancel)
        for q in missing:
            if slots <= 0:
                ds += 1
                continue
            if qc is not None:
                c = qc.check_c(q.token, q.side, q.price, q.size)
                if c != 0:
                    rejected.append((q, c))
                    continue
            elif check is not None:
                code = check(q)
                if code != 0:
                    rejected.append((q, code))
                    continue
            if budget <= 0:
                dr += 1
                continue
            budget -= 1
            slots -= 1
            actions.append(action("place", new_order(q, now_ms)))
    return actions, kept, rejected, dr, ds, unacked, n_cancel


def _updated_ms(o):
    return o.updated_ms


cpdef list prune_order(object orders, object final, long keep):
    cdef list fin = []
    cdef object o
    for o in orders:
        if o.state in final:
            fin.append(o)
    if len(fin) <= keep:
        return []
    fin.sort(key=_updated_ms)
    return fin[:len(fin) - keep]
