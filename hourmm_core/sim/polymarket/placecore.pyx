# Exchange.place for in-process runs (no listeners), compiled: the backtest's own orders.
"""``Exchange.place`` step for step when nobody listens (backtests): the same GTD expiry, id draw and
hash, validation order, order sequence number, account creation, balance check, crossing checks,
match (the engine's own ``_match``), reservation, book insertion and result object.

What it is: a compiled twin of the plain-Python :meth:`Exchange._place_ref` (the body of
``Exchange.place``), which stays the reference and the path for everything unusual: any order the
venue would reject on its price, size, type, side, market state or expiration, non-float numbers,
an explicit order id, listeners attached. Those cases are detected *before* any draw of the id
generator and handed to the reference, so both paths leave the same state.
tests/unit/sim/polymarket/test_placecore.py feeds the same seeded order flow to an engine using it and
one using the reference and compares results, state and trade records after every operation.

Why: the trader's own orders (~1,700 places an hour in a backtest) went through ~60 interpreted
steps each (unit conversions, market lookup, id wrapper, crossing walk, book insertion).
"""
from bisect import insort

from libc.math cimport fabs, isfinite, rint

from hourmm_core.sim.polymarket.booktop cimport any_left, new_order, rest

from hourmm_core.sim.polymarket.orders import (
    ERR_BALANCE, ERR_DUPLICATE, ERR_FAK, ERR_FOK, ERR_POST_ONLY, PlaceResult, _buy_covered, _fmt,
)
from hourmm_core.sim.polymarket.wire import order_id as _order_id

cdef long long PRICE_SCALE = 10_000
cdef long long SIZE_SCALE = 100
cdef str BUY = "BUY"
cdef str SELL = "SELL"
cdef object _sum = sum


cdef bint _post_only_crosses(dict orders, object m, bint is_bid, long long limit_b) except -1:
    """``Exchange._crossable(m, is_bid, limit_b, owner) > 0``: some order with size left at a crossing price."""
    cdef list prices
    cdef Py_ssize_t i, n
    cdef long long p
    if is_bid:
        book = m.asks
        prices = m.ask_prices
        for i in range(len(prices)):
            p = prices[i]
            if p > limit_b:
                return False
            if any_left(orders, book[p]):
                return True
    else:
        book = m.bids
        prices = m.bid_prices
        n = len(prices)
        for i in range(n - 1, -1, -1):
            p = prices[i]
            if p < limit_b:
                return False
            if any_left(orders, book[p]):
                return True
    return False


def place_fast(ex, owner, token_id, side, price, size, order_type, post_only, expiration_ms_, now_ms_):
    """``ex.place(...)`` without listeners and without an explicit order id; None (before any draw or
    state change) when the reference :meth:`Exchange._place_ref` must take the order."""
    cdef double fp, fs, x
    cdef long long pu, su, tick_u, limit_b, seq, rem, res
    cdef long long expiration_ms, now_ms
    cdef bint up, is_bid, po, resting, buy
    if (ex._listeners or type(price) is not float or type(size) is not float or type(now_ms_) is not int
            or type(expiration_ms_) is not int or not (-2**62 < now_ms_ < 2**62 and -2**62 < expiration_ms_ < 2**62)):
        return None
    now_ms = now_ms_
    expiration_ms = expiration_ms_
    if (side is not BUY and side != BUY) and (side is not SELL and side != SELL):
        return None
    if order_type != "GTC" and order_type != "GTD" and order_type != "FOK" and order_type != "FAK":
        return None
    m = ex.token_market.get(token_id)
    if m is None:
        return None
    fp = price
    fs = size
    if not (isfinite(fp) and isfinite(fs) and 0.0 <= fp <= 1.0 and 0.0 < fs < 1e12):
        return None
    x = fp * PRICE_SCALE
    pu = <long long> rint(x)                    # price_to_units: round(x), exact on the 1e-4 grid
    if fabs(<double> pu - x) > 1e-6:
        return None
    su = <long long> (fs * SIZE_SCALE + 1e-7)   # size_to_units
    tick_u = m.tick_u
    po = bool(post_only)
    resting = order_type == "GTC" or order_type == "GTD"
    if (m.closed or not m.accepting or now_ms >= m.end_ms or pu % tick_u or pu < tick_u
            or pu > PRICE_SCALE - tick_u or su <= 0 or (resting and su < m.min_size_u)
            or (po and not resting) or (order_type == "GTD" and expiration_ms <= now_ms)):
        return None                              # a reject with a message naming the order: the reference
    if order_type != "GTD":
        expiration_ms = 0
    # Exchange.place from here, step for step
    gtd = ex._gtd
    if gtd and gtd[0][0] <= now_ms:
        ex.advance(now_ms)
    seq = ex._seq + 1
    ex._seq = seq
    oid = _order_id(ex._order_head, seq, ex._rng.random())
    cdef dict orders = ex.orders
    if oid in orders:
        return PlaceResult(order_id=oid, status="", error_msg=ERR_DUPLICATE)
    up = token_id == m.up_token
    buy = side == BUY
    ex._seq = seq + 1
    o = new_order(oid, owner, m.condition_id, token_id, up, BUY if buy else SELL, pu, su, order_type, po,
                  expiration_ms, now_ms, seq + 1, 0)
    a = ex.accounts.get(owner)
    if a is None:
        a = ex._acct(owner)
    if buy:
        if not _buy_covered(a.usdc_u - a.usdc_res_u, pu, su, m.fee):
            return PlaceResult(order_id=oid, status="", error_msg=ERR_BALANCE)
    elif a.tok_u.get(token_id, 0) - a.tok_res_u.get(token_id, 0) < su:
        return PlaceResult(order_id=oid, status="", error_msg=ERR_BALANCE)
    is_bid = buy == up
    limit_b = pu if up else PRICE_SCALE - pu
    if po and _post_only_crosses(orders, m, is_bid, limit_b):
        return PlaceResult(order_id=oid, status="", error_msg=ERR_POST_ONLY)
    if order_type == "FOK" and ex._crossable(m, is_bid, limit_b, owner, cap=su) < su:
        return PlaceResult(order_id=oid, status="", error_msg=ERR_FOK)
    if order_type == "FAK" and ex._crossable(m, is_bid, limit_b, owner, cap=1) <= 0:
        return PlaceResult(order_id=oid, status="", error_msg=ERR_FAK)
    orders[oid] = o
    if po:      # passed the cross check above: nothing to match
        fills, trade = [], None
    else:
        fills, trade = ex._match(m, o, now_ms)
    r = PlaceResult(order_id=oid, status="matched" if fills else "live", fills=fills)
    if trade is not None:
        r.trade_ids.append(trade["id"])
        filled_cost = _sum([f.price * f.size for f in fills])
        filled_size = _sum([f.size for f in fills])
        if buy:
            r.making_amount, r.taking_amount = _fmt(filled_cost), _fmt(filled_size)
        else:
            r.making_amount, r.taking_amount = _fmt(filled_size), _fmt(filled_cost)
    rem = <long long> o.size_u - <long long> o.filled_u
    if rem > 0 and resting:
        if buy:
            res = pu * rem
            o.res_usdc_u = res
            a.usdc_res_u += res
        else:
            o.res_tok_u = rem
            a.tok_res_u[token_id] = a.tok_res_u.get(token_id, 0) + rem
        # Exchange._insert (the touched level is cleared below: nobody listens)
        if is_bid:
            rest(ex, m.bids, m.bid_prices, limit_b, oid, o, owner)
        else:
            rest(ex, m.asks, m.ask_prices, limit_b, oid, o, owner)
        if order_type == "GTD":
            insort(ex._gtd, (expiration_ms, seq + 1, oid))
    elif rem > 0:
        o.status = "CANCELED"   # FAK remainder killed
    else:
        o.status = "MATCHED"
    ex._pending_updates = []
    ex._touched.clear()
    return r
