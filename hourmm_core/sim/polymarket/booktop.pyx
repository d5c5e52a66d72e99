# The top of the engine's Up-terms book, compiled (see booktop.pxd).
"""The best price of each side of a market's Up-terms book (:meth:`Exchange.best` / :meth:`Exchange.best_pair`,
the takers' touch in :mod:`~hourmm_core.sim.polymarket.flowcore`): the same walk as the plain-Python
reference twin :meth:`Exchange._top` (sorted price list from the best end, first level holding an order
with size left), compiled. tests/unit/sim/polymarket/test_flowcore.py compares both on a real hour's
flow at every step.

Why: the decision pass reads both tops of the book at every decision (3,600 per simulated hour), the
takers before every take.
"""
import dataclasses
from bisect import insort
from collections import deque

from cpython.object cimport PyObject

from hourmm_core.sim.polymarket.orders import Order as _Order


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        pass
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    int PyMember_SetOne(char *addr, PyMemberDef *m, object v) except -1

# new_order sets every field of the dataclass: fail at import (not with a half-set order) if it changes
_ORDER_FIELDS = ("order_id", "owner", "condition_id", "token_id", "outcome", "side", "price_u", "size_u",
                 "order_type", "post_only", "expiration_ms", "created_ms", "seq", "filled_u", "status",
                 "res_usdc_u", "res_tok_u", "trade_ids", "is_up")
if tuple(f.name for f in dataclasses.fields(_Order)) != _ORDER_FIELDS:
    raise ImportError("orders.Order's fields changed: update booktop.new_order")
# the slots' member definitions (the class keeps its descriptors alive): new_order stores through
# PyMember_SetOne, what ``o.field = v`` ends in, without the attribute lookup on the way
cdef PyMemberDef *_SLOT[19]
for _i, _name in enumerate(_ORDER_FIELDS):
    _d = _Order.__dict__[_name]
    if type(_d).__name__ != "member_descriptor":
        raise ImportError(f"orders.Order.{_name} is not a slot: update booktop.new_order")
    _SLOT[_i] = (<PyMemberDescrObject*> <PyObject*> _d).d_member


cdef bint any_left(dict orders, object q) except -1:
    """Whether any order of the level queue ``q`` (ids) has size left (what crosses)."""
    for oid in q:
        mo = orders[oid]
        if mo.size_u - mo.filled_u > 0:
            return True
    return False


cdef object top(dict orders, object m, bint bid):
    """``Exchange._top``: the best Up-terms price (int, 1e-4) of one side with size left, or None."""
    cdef long long p
    cdef list prices
    cdef Py_ssize_t i
    if bid:
        book = m.bids
        prices = m.bid_prices
        for i in range(len(prices) - 1, -1, -1):
            if any_left(orders, book[prices[i]]):
                return prices[i]
    else:
        book = m.asks
        prices = m.ask_prices
        for i in range(len(prices)):
            if any_left(orders, book[prices[i]]):
                return prices[i]
    return None


cdef int rest(object ex, dict book, list prices, long long p, object oid, object o, object owner) except -1:
    """``Exchange._insert`` without listeners: order ``o`` (id ``oid``) joins the back of level ``p`` of one
    side (``book`` / sorted ``prices``), the owner's live index and its book version move on (the touched
    level is not recorded: the operation clears it when nobody listens)."""
    q = book.get(p)
    if q is None:
        q = book[p] = deque()
        insort(prices, p)
    q.append(oid)
    live = ex._live.get(owner)
    if live is None:
        live = ex._live[owner] = {}
    live[oid] = o
    bv = ex.book_version
    bv[owner] = bv.get(owner, 0) + 1
    return 0


def top_pair(dict orders, m):
    """``(Exchange._top(m, True), Exchange._top(m, False))``: (best bid, best ask) of the Up book."""
    return top(orders, m, True), top(orders, m, False)


cdef object new_order(object oid, object owner, object cid, object tok, bint up, object side, long long pu,
                      long long su, object order_type, bint post_only, long long expiration_ms, long long created_ms,
                      long long seq, long long res_usdc_u):
    """``Order(oid, owner, cid, tok, "Up"/"Down", side, pu, su, order_type, post_only, expiration_ms,
    created_ms, seq, res_usdc_u=res_usdc_u, is_up=up)`` (a new, unfilled, LIVE order): the same record,
    its slots stored directly (``PyMember_SetOne``, the end of ``o.field = v``) instead of through the
    dataclass's Python ``__init__`` (~1 us less an order;
    a backtest hour makes ~9,000). :func:`make_order` exposes it to the test comparing both."""
    o = _Order.__new__(_Order)
    cdef char *a = <char*> <PyObject*> o
    PyMember_SetOne(a, _SLOT[0], oid)
    PyMember_SetOne(a, _SLOT[1], owner)
    PyMember_SetOne(a, _SLOT[2], cid)
    PyMember_SetOne(a, _SLOT[3], tok)
    PyMember_SetOne(a, _SLOT[4], "Up" if up else "Down")
    PyMember_SetOne(a, _SLOT[5], side)
    PyMember_SetOne(a, _SLOT[6], pu)
    PyMember_SetOne(a, _SLOT[7], su)
    PyMember_SetOne(a, _SLOT[8], order_type)
    PyMember_SetOne(a, _SLOT[9], post_only)
    PyMember_SetOne(a, _SLOT[10], expiration_ms)
    PyMember_SetOne(a, _SLOT[11], created_ms)
    PyMember_SetOne(a, _SLOT[12], seq)
    PyMember_SetOne(a, _SLOT[13], 0)
    PyMember_SetOne(a, _SLOT[14], "LIVE")
    PyMember_SetOne(a, _SLOT[15], res_usdc_u)
    PyMember_SetOne(a, _SLOT[16], 0)
    PyMember_SetOne(a, _SLOT[17], [])
    PyMember_SetOne(a, _SLOT[18], up)
    return o


def make_order(oid, owner, cid, tok, bint up, side, long long pu, long long su, order_type, bint post_only,
               long long expiration_ms, long long created_ms, long long seq, long long res_usdc_u):
    """:func:`new_order` from Python (for its test)."""
    return new_order(oid, owner, cid, tok, up, side, pu, su, order_type, post_only, expiration_ms, created_ms, seq,
                     res_usdc_u)
