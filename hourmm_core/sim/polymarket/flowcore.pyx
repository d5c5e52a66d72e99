# The simulated venue's background flow, compiled: touch makers, takers, sniper scan (typed state in flowcore.pxd).
"""The hot paths of the simulator's background agents (``BackgroundAgents`` / ``LatencySniper``
with ``fast=True``) in compiled code: the calibrated touch makers' book pass
(:class:`TouchMakers`), the noise and informed takers (:func:`takers`) and the latency snipers'
scan of our quotes (:func:`sniper_scan`).

What it is: the same actions as the plain-Python reference twins (``fast=False``):
:meth:`BackgroundAgents._makers_touch`, :meth:`BackgroundAgents._takers` and
:meth:`LatencySniper.scan`: the same draws of the agents' random streams and of the engine's id
stream, the same orders, ids, fills, book and accounts (tests/unit/sim/polymarket/test_flowcore.py
steps both on a real hour and compares everything after every few steps;
tests/unit/research/test_fast_path.py compares whole backtest hours and the pinned real day).

Why compiled: these agents are most of the venue's cost in a backtest hour (~10,800 makers' looks,
~8,000 post-only places, ~6,000 cancels, ~1,600 takes and ~6,000 sniper scans an hour). Here

* each maker's state in one market (next requote time, last look, view, settled mark) is a typed
  :class:`MakerSlot` (C fields, no tuple keys, no ``None`` tests on Python objects);
* the ladder of a touch price (token, price, level) is computed once into a typed
  :class:`Ladder`, cached per touch price;
* the makers' post-only BUY (:meth:`Exchange.place_maker`) and the cancel of a resting BUY
  (:meth:`Exchange.cancel`) are done inline on the engine's own structures, step for step what
  those methods do (same checks in the same order, the id generator's draw taken even when the
  order is then rejected, the same ``Order`` record, the same book queues and indexes);
* the takers' touch lookups walk the book directly (``Exchange.best`` without the tuples);
  their FAK BUYs (noise, informed, snipers: :func:`place_taker`) are :meth:`Exchange.place_taker`,
  ``Exchange._match`` and ``Exchange._settle`` step for step (same fills, fees, grouped trade
  record, trade id draw, ``transaction_hash``, maker updates), the engine's methods staying the
  reference twin (tests compare it with ``Exchange.place(..., "FAK")``);
* ``uniform`` is ``a + (b - a) * random()`` exactly as random.py spells it (``random()`` is C),
  ``exp``/``log`` are libm's as in the ``math`` module; ``gauss`` is random.py's ``Random.gauss``
  spelled in C (:func:`_gauss`: the same draws, the same libm calls, its ``gauss_next`` state kept on the
  Random object).

The engine stays the one state (its Python methods, the live simulator server, the invariant
checks and the tests read the same dicts, deques and ``Order`` objects). Whenever the inline
path's preconditions do not hold (listeners attached, unusual numbers) the engine's own method
is called instead, before any draw, so the result is the same either way.
"""

from libc.math cimport cos, exp, fabs, floor, log, rint, sin, sqrt

import random as _random

from hourmm_core.sim.polymarket.booktop cimport any_left, new_order, rest, top
from hourmm_core.sim.polymarket.fairpath cimport FairPath
from hourmm_core.sim.polymarket.wire cimport _id_hex

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import taker_fee_units as _taker_fee_units
from hourmm_core.sim.polymarket.orders import Fill, _buy_covered
from hourmm_core.sim.polymarket.wire import fmt_decimal as _fmt
from hourmm_core.sim.polymarket.wire import trade_id as _trade_id
from hourmm_core.sim.polymarket.wire import tx_hash as _tx_hash

cdef long long PRICE_SCALE = 10_000
cdef long long SIZE_SCALE = 100
cdef long long USDC_SCALE = 1_000_000
cdef object _sum = sum                      # the builtin (its float summation), not an inlined loop
cdef long long FEE_BOUND_U = 10_000         # USDC_SCALE // SIZE_SCALE: the fee is at most 1 USDC a share
cdef object _round = round
cdef str BUY = "BUY"
cdef str LIVE = "LIVE"


cdef class MakerSlot:
    """One touch maker's state in one market (the reference pass keeps the same in dicts keyed by
    (maker, market)): ``rest`` maps (token, price) to the maker's resting ``Order`` objects."""

    def __cinit__(self):
        self.next_quote = 0
        self.check_n = -1
        self.check_t = 0
        self.has_view = False
        self.view = 0.0
        self.settled = False
        self.settled_view = 0.0
        self.settled_ver = 0
        self.rest = {}


cdef class Ladder:
    """The wanted levels of one touch price: for each, the ``(token, price)`` key, the token,
    the price as a float (what is sent) and in 1e-4 units, whether it is the Up token, its level."""

    def __cinit__(self):
        self.n = 0
        self.keys = []
        self.toks = []
        self.pxs = []
        self.want = {}


cdef Ladder _ladder(object m, double b0, double tick, int levels, double step):
    """The reference pass's ``want`` dict for touch bid ``b0``, in the same order (level by level,
    Up then Down), with the same rounding (``round(x, 4)`` of the same floats)."""
    cdef Ladder L = Ladder()
    cdef int lvl, j
    cdef object bid_up, bid_dn, px, tok
    cdef double p
    for lvl in range(levels):
        bid_up = _round(b0 - lvl * step, 4)
        bid_dn = _round(1.0 - (b0 + tick) - lvl * step, 4)
        for j in range(2):
            tok = m.up_token if j == 0 else m.down_token
            px = bid_up if j == 0 else bid_dn
            p = px
            if tick - 1e-9 <= p <= 1 - tick + 1e-9:
                key = (tok, px)
                if key in L.want:      # a repeated key keeps its place and takes the later level, as a dict does
                    L.want[key] = lvl
                    L.lvl[L.keys.index(key)] = lvl
                    continue
                if L.n >= 64:
                    raise ValueError("maker ladder deeper than 32 levels")
                L.want[key] = lvl
                L.keys.append(key)
                L.toks.append(tok)
                L.pxs.append(px)
                L.lvl[L.n] = lvl
                L.up[L.n] = j == 0
                L.n += 1
    return L


cdef bint _cancel(object ex, str owner, object o, long long now_ms) except -1:
    """``ex.cancel(owner, o.order_id, now_ms)`` for a resting order of ``owner`` (the object the
    id looks up: the engine never drops an order from ``Exchange.orders``)."""
    if o.status != LIVE:
        return False
    if ex._listeners or o.order_type == "GTD" or o.res_tok_u:
        ex.cancel(owner, o.order_id, now_ms)
        return True
    m = ex.markets[o.condition_id]
    oid = o.order_id
    live = ex._live.get(owner)
    if live is not None:
        live.pop(oid, None)
    bv = ex.book_version
    bv[owner] = bv.get(owner, 0) + 1
    cdef long long pu = o.price_u
    cdef bint is_up = o.is_up
    cdef long long p = pu if is_up else PRICE_SCALE - pu
    if (o.side == BUY) == is_up:
        book, prices = m.bids, m.bid_prices
    else:
        book, prices = m.asks, m.ask_prices
    q = book.get(p)
    if q is not None:
        try:
            q.remove(oid)
        except ValueError:
            q = None
        if q is not None and not q:
            del book[p]
            prices.remove(p)        # the sorted list holds each price once
    res = o.res_usdc_u
    if res:
        ex._acct(owner).usdc_res_u -= res
        o.res_usdc_u = 0
    o.status = "CANCELED"
    ex._touched.clear()
    return True


cdef int _op_done(object ex) except -1:
    """What ``Exchange.place`` resets before returning when nobody listens: the order updates and the
    touched levels of the operation (usually already empty)."""
    if ex._pending_updates:
        ex._pending_updates = []
    t = ex._touched
    if t:
        t.clear()
    return 0


cdef object _buy_head(object ex, object m, str owner, double fp, double fs, long long now_ms, bint resting,
                      long long *pu_out, long long *su_out, long long *id_seq_out, double *id_draw_out):
    """``Exchange._fast_buy`` (the common start of the maker and taker BUYs), step for step: GTD expiry,
    the id generator's draw (kept even when the order is then rejected), price/size units, the tick
    rule, a positive size and (``resting``) the minimum size, the order's own sequence number, the
    balance check. Returns the owner's account (and the units, id seq and draw through the pointers),
    or None when the venue rejects the order. The callers checked the fallback conditions first."""
    cdef long long pu, su, tick_u, id_seq, free_u
    cdef double x
    gtd = ex._gtd
    if gtd and gtd[0][0] <= now_ms:
        ex.advance(now_ms)
    id_seq = ex._seq + 1
    ex._seq = id_seq
    id_draw_out[0] = ex._rng.random()
    x = fp * PRICE_SCALE
    pu = <long long> rint(x)
    su = <long long> (fs * SIZE_SCALE + 1e-7)
    tick_u = m.tick_u
    if (fabs(<double> pu - x) > 1e-6 or pu % tick_u or pu < tick_u or pu > PRICE_SCALE - tick_u or su <= 0
            or (resting and su < m.min_size_u)):
        return None
    ex._seq = id_seq + 1
    a = ex.accounts.get(owner)
    if a is None:
        a = ex._acct(owner)
    free_u = a.usdc_u - a.usdc_res_u
    if free_u < pu * su + su * FEE_BOUND_U and not _buy_covered(free_u, pu, su, m.fee):
        return None
    pu_out[0] = pu
    su_out[0] = su
    id_seq_out[0] = id_seq
    return a


cdef object _place(object ex, object m, str owner, object tok, object price, object size, long long now_ms):
    """``ex.place_maker(owner, tok, price, size, now_ms)``: the post-only GTC BUY, returning the
    resting ``Order`` or None (rejected)."""
    cdef double fp, fs, x
    cdef long long pu, su, tick_u, limit_b, p, id_seq
    cdef double id_draw
    cdef bint up
    if ex._listeners or type(price) is not float or type(size) is not float:
        oid = ex.place_maker(owner, tok, price, size, now_ms)
        return None if oid is None else ex.orders[oid]
    fp = price
    fs = size
    if (m.closed or not m.accepting or now_ms >= m.end_ms or not (0.0 <= fp <= 1.0 and 0.0 < fs < 1e7)):
        oid = ex.place_maker(owner, tok, price, size, now_ms)
        return None if oid is None else ex.orders[oid]
    a = _buy_head(ex, m, owner, fp, fs, now_ms, True, &pu, &su, &id_seq, &id_draw)
    if a is None:
        return None
    # Exchange.place_maker: the post-only cross check
    up = tok == m.up_token
    orders = ex.orders
    if up:     # a bid in the Up book at pu: crosses any ask at or below
        limit_b = pu
        asks = m.asks
        for p in m.ask_prices:
            if p > limit_b:
                break
            if any_left(orders, asks[p]):
                return None
        book, prices = m.bids, m.bid_prices
    else:      # BUY Down = an ask in the Up book at 1 - pu: crosses any bid at or above
        limit_b = PRICE_SCALE - pu
        bids = m.bids
        for p in reversed(m.bid_prices):
            if p < limit_b:
                break
            if any_left(orders, bids[p]):
                return None
        book, prices = m.asks, m.ask_prices
    oid = "0x" + _id_hex(ex._order_head, id_seq, id_draw)
    if oid in orders:    # pragma: no cover - a SHA-256 collision
        return None
    o = new_order(oid, owner, m.condition_id, tok, up, BUY, pu, su, "GTC", True, 0, now_ms, id_seq + 1, pu * su)
    orders[oid] = o
    a.usdc_res_u += pu * su
    rest(ex, book, prices, limit_b, oid, o, owner)
    _op_done(ex)
    return o



cdef double TWOPI = 2.0 * 3.141592653589793     # random.py's TWOPI = 2.0 * math.pi
cdef object _Random = _random.Random


cdef double _gauss(object rng, double mu, double sigma) except? -1.0:
    """``rng.gauss(mu, sigma)``: CPython 3.11's ``random.Random.gauss`` step for step (its two
    ``random()`` draws, ``math.sqrt/log/cos/sin`` = libm's, the spare normal kept in ``rng.gauss_next``);
    ``rng``'s own method when it is not exactly a ``random.Random``."""
    cdef double x2pi, g2rad, z
    if type(rng) is not _Random:
        return rng.gauss(mu, sigma)
    zo = rng.gauss_next
    rng.gauss_next = None
    if zo is None:
        x2pi = <double> rng.random() * TWOPI
        g2rad = sqrt(-2.0 * log(1.0 - <double> rng.random()))
        z = cos(x2pi) * g2rad
        rng.gauss_next = sin(x2pi) * g2rad
    else:
        z = zo
    return mu + z * sigma


def gauss_c(rng, double mu, double sigma):
    """The compiled :func:`_gauss` (for its twin test against ``rng.gauss``)."""
    return _gauss(rng, mu, sigma)


# ---------------------------------------------------------------------------- makers
cdef class TouchMakers:
    """The touch makers of one :class:`BackgroundAgents` in all its markets: call :meth:`run` where
    the reference calls ``_makers_touch``."""

    def __init__(self, agents):
        c = agents.cfg
        self.ex = agents.ex
        self.rng = agents.rng
        self.stats = agents.stats
        self.makers = list(agents.makers)
        self.bias = [float(agents.bias[mk]) for mk in self.makers]
        self.levels = c.maker_levels
        self.level_step = c.maker_level_step
        self.requote_ms = c.maker_requote_ms
        self.refill_ms = c.maker_refill_ms
        self.stop_before_ms = c.maker_stop_before_end_ms
        self.noise_sd = c.maker_noise_sd
        self.size_lo, self.size_hi = c.maker_size
        self.depth_lo, self.depth_hi = c.maker_depth_size
        self.slots = {}
        self.ladders = {}

    def slots_of(self, str cid):
        """The makers' :class:`MakerSlot` in market ``cid`` (created on first use)."""
        s = self.slots.get(cid)
        if s is None:
            s = self.slots[cid] = [MakerSlot() for _ in self.makers]
        return s

    def run(self, m, double fair, long long now_ms):
        """One pass of every maker in market ``m`` at ``now_ms`` (true fair ``fair``)."""
        cdef MakerSlot st
        cdef Ladder L
        cdef double tick = (<long long> m.tick_u) / <double> PRICE_SCALE
        cdef double v, old, view, b0, lo, hi, have, after
        cdef long long n_tr, ver, have_u
        cdef int i, j, lvl
        cdef bint stop, due, settled
        cdef long long quotes = 0, rejects = 0
        cdef object rng_random = self.rng.random
        cdef object rng = self.rng
        ex = self.ex
        cid = m.condition_id
        stop = now_ms >= m.end_ms - self.stop_before_ms
        n_tr = len(ex._trades)       # the count (placeholders included): nothing built
        book_version = ex.book_version
        slots = self.slots_of(cid)
        ladders = self.ladders.get(cid)
        if ladders is None:
            ladders = self.ladders[cid] = {}
        for i in range(len(self.makers)):
            mk = self.makers[i]
            st = slots[i]
            rest = st.rest
            if stop:
                if rest:
                    ex.cancel_market(mk, cid, now_ms)
                    rest.clear()
                continue
            due = now_ms >= st.next_quote
            if not due and (st.check_n == n_tr or now_ms < st.check_t + self.refill_ms):
                continue      # nothing traded since the last look (or refilled just now)
            st.check_n = n_tr
            st.check_t = now_ms
            if due:
                st.next_quote = now_ms + <long long> (self.requote_ms * (0.5 + 1.0 * <double> rng_random()))
                v = fair + <double> self.bias[i] + _gauss(rng, 0.0, self.noise_sd)
                v = v if v > 0.02 else 0.02          # max(0.02, v)
                v = v if v < 0.98 else 0.98          # min(0.98, v)
                if not st.has_view:
                    st.view = v
                    st.has_view = True
                else:
                    old = st.view
                    if fabs(v - (floor(old / tick + 1e-9) * tick + tick / 2)) > 0.75 * tick:
                        st.view = v
            view = st.view if st.has_view else fair
            if st.settled:
                ver = book_version.get(mk, 0)
                if st.settled_view == view and st.settled_ver == ver:
                    continue   # same ladder, same resting orders, every level at target: nothing to do
                st.settled = False
            b0 = floor(view / tick + 1e-9) * tick
            L = ladders.get(b0)
            if L is None:
                L = _ladder(m, b0, tick, self.levels, self.level_step)
                if len(ladders) > 4096:
                    ladders.clear()
                ladders[b0] = L
            want = L.want
            for k in [k for k in rest if k not in want]:
                for o in rest[k]:
                    _cancel(ex, mk, o, now_ms)
                del rest[k]
            settled = True
            for j in range(L.n):
                k = L.keys[j]
                lvl = L.lvl[j]
                if lvl == 0:
                    lo, hi = self.size_lo, self.size_hi
                else:
                    lo, hi = self.depth_lo, self.depth_hi
                live = []
                have_u = 0
                for o in rest.get(k, ()):
                    if o.status == LIVE:
                        live.append(o)
                        have_u += <long long> o.size_u - <long long> o.filled_u
                have = have_u / 100.0
                if lvl == 0 and have > 2 * hi:     # a deep level became the touch: resize it
                    for o in live:
                        _cancel(ex, mk, o, now_ms)
                    live = []
                    have = 0.0
                    have_u = 0
                if have < lo:
                    o = _place(ex, m, mk, L.toks[j], L.pxs[j],
                               _round(lo + (hi - lo) * <double> rng_random() - have, 2), now_ms)
                    if o is not None:
                        quotes += 1
                        live.append(o)
                        if settled:
                            have_u += <long long> o.size_u - <long long> o.filled_u
                    else:
                        rejects += 1
                    if settled:   # settled only if this level is now at target
                        after = have_u / 100.0
                        settled = after >= lo and not (lvl == 0 and after > 2 * hi)
                rest[k] = live
            if settled:
                st.settled = True
                st.settled_view = view
                st.settled_ver = book_version.get(mk, 0)
        if quotes or rejects:
            stats = self.stats
            stats.maker_quotes += quotes
            stats.maker_rejects += rejects


# ---------------------------------------------------------------------------- takers
cdef object _best_ask(dict orders, object m, bint up):
    """``Exchange.best(token)[1]``: the best ask of the Up token (``up``) or of the Down token
    (1 - the Up book's best bid), as the same float, or None."""
    cdef object p
    if up:
        p = top(orders, m, False)
        return None if p is None else (<long long> p) / <double> PRICE_SCALE
    p = top(orders, m, True)
    return None if p is None else (PRICE_SCALE - <long long> p) / <double> PRICE_SCALE


cdef double _fair_up(object path, long long hour, long long t) except? -1.0:
    """``path.fair_up(hour, t)``: the compiled :class:`FairPath` when the path has one (``fast``)."""
    core = getattr(path, "core", None)
    if type(core) is FairPath:
        return (<FairPath> core).fair_up_c(hour, t)
    return path.fair_up(hour, t)


cdef long long _poisson(object rng_random, double rate_per_min, long long dt_ms) except -1:
    """``BackgroundAgents._poisson``: the same draws, the same count."""
    cdef double lam = rate_per_min * <double> dt_ms / 60_000.0
    cdef double p = 1.0, L
    cdef long long n = 0
    if lam <= 0:
        return 0
    L = exp(-(50.0 if 50.0 < lam else lam))
    while True:
        p *= <double> rng_random()
        if p <= L:
            return n
        n += 1


cdef double _size(object ag, object c, object legacy) except? -1.0:
    """``BackgroundAgents._size``: a taker's size (log-normal, capped; uniform in the legacy style)."""
    cdef double a, b, x
    if c.maker_style == "legacy":
        a, b = legacy
        return a + (b - a) * <double> ag.rng.random()
    x = <double> c.noise_size_median * exp(_gauss(ag.rng, 0.0, c.noise_size_logsd))
    b = c.noise_size_max
    x = x if x < b else b                  # min(noise_size_max, x)
    return x if x > 1.0 else 1.0           # max(1.0, x)


cdef bint _take(object ag, object ex, dict orders, str owner, object m, bint buy_up, double size, double slip,
                long long now_ms) except -1:
    """``BackgroundAgents._take`` (fast path): a FAK BUY at the touch plus ``slip`` through
    :meth:`Exchange.place_taker`."""
    cdef double tick, px, cap
    ask = _best_ask(orders, m, buy_up)
    if ask is None:
        return False
    tick = (<long long> m.tick_u) / <double> PRICE_SCALE
    px = floor((<double> ask + slip) / tick + 1e-9) * tick
    cap = 1 - tick
    px = px if px < cap else cap           # min(1 - tick, px)
    tok = m.up_token if buy_up else m.down_token
    if _place_taker(ex, owner, tok, _round(px, 4), _round(size, 2), now_ms) is not None:
        return True
    ag.stats.taker_rejects += 1
    return False


def takers(ag, m, double fair, long long hour, long long now_ms, long long dt_ms):
    """``BackgroundAgents._takers`` (fast path): the noise takers' Poisson arrivals at the touch,
    then the informed takers' (the fair value ``informed_lookahead_ms`` ahead against the touch)."""
    cdef long long i, n, t_f
    cdef double f_fut, size
    c = ag.cfg
    ex = ag.ex
    cdef dict orders = ex.orders
    stats = ag.stats
    rng_random = ag.rng.random
    n = _poisson(rng_random, c.noise_takers_per_min, dt_ms)
    for i in range(n):
        buy_up = <double> rng_random() < 0.5
        size = _size(ag, c, c.noise_taker_size)
        if _take(ag, ex, orders, ag.noise, m, buy_up, size, c.noise_taker_slippage, now_ms):
            stats.noise_trades += 1
    n = _poisson(rng_random, c.informed_per_min, dt_ms)
    for i in range(n):
        t_f = now_ms + <long long> c.informed_lookahead_ms
        if t_f > <long long> m.end_ms - 1:
            t_f = m.end_ms - 1
        f_fut = _fair_up(ag.path, hour, t_f)
        ask_up = _best_ask(orders, m, True)
        ask_dn = _best_ask(orders, m, False)
        size = _size(ag, c, c.informed_size)
        if ask_up is not None and f_fut > <double> ask_up + <double> c.informed_edge:
            if _take(ag, ex, orders, ag.informed, m, True, size, 0.0, now_ms):
                stats.informed_trades += 1
        elif ask_dn is not None and (1 - f_fut) > <double> ask_dn + <double> c.informed_edge:
            if _take(ag, ex, orders, ag.informed, m, False, size, 0.0, now_ms):
                stats.informed_trades += 1


# ---------------------------------------------------------------------------- snipers
def sniper_scan(s, long long now_ms, markets):
    """``LatencySniper.scan`` (fast path): look at the target owners' live quotes at ``now_ms`` and
    schedule a shot (after a log-uniform reaction time) at each newly stale one; returns how many."""
    cdef double share, f, q, value, edge, min_edge
    cdef long long pu, new = 0
    c = s.cfg
    share = c.sniper_share
    if share <= 0:
        return 0
    mk = [m for m in markets if m.accepting and not m.closed and m.end_ms - HOUR_MS <= now_ms < m.end_ms]
    if not mk:
        return 0
    ex = s.ex
    cdef dict pending = s.pending
    if s.targets is not None and len(mk) == 1:     # the backtest's case: its targets kept per book version
        n = _scan_one(s, now_ms, mk[0], pending, share)
        if n >= 0:
            return n
    # LatencySniper._target_orders
    cids = {m.condition_id for m in mk}
    owners = s.targets if s.targets is not None else [o for o in ex._live if o not in s.agent_owners]
    lives = ex._live
    targets = []
    for ow in owners:
        d = lives.get(ow)
        if d:
            for o in d.values():
                if o.condition_id in cids and o.status == LIVE:
                    targets.append(o)
    if not targets and not pending:
        return 0          # nothing to look at and nothing to forget (the fair is a pure lookup)
    fair = {m.condition_id: _fair_up(s.path, <long long> m.end_ms - HOUR_MS, now_ms) for m in mk}
    live_ids = set()
    cdef dict fee_ps = s._fee_ps
    min_edge = c.sniper_min_edge
    rng = s.rng
    for o in targets:
        oid = o.order_id
        live_ids.add(oid)
        f = fair[o.condition_id]
        pu = o.price_u
        if o.side == BUY:     # the taker buys the other token at 1 - px
            q = 1.0 - pu / <double> PRICE_SCALE
            value = 1.0 - f if o.is_up else f
        else:
            q = pu / <double> PRICE_SCALE
            value = f if o.is_up else 1.0 - f
        edge = value - q - _fee_per_share(fee_ps, ex.fee, q)
        new += _aim(s, pending, oid, edge, min_edge, share, c, rng, now_ms)
    for oid in [k for k in pending if k not in live_ids and pending[k] == -1]:
        del pending[oid]
    return new


cdef double _fee_per_share(dict fee_ps, object fee, double q) except? -1.0:
    """The taker fee per share at price ``q`` (cached per price: the schedule is fixed)."""
    fq = q
    fo = fee_ps.get(fq)
    if fo is None:     # a new price (a few per hour): the snipers' own fee helper
        from hourmm_core.sim.polymarket.snipers import taker_fee_per_share
        fo = fee_ps[fq] = taker_fee_per_share(fee, fq)
    return fo


cdef int _aim(object s, dict pending, object oid, double edge, double min_edge, double share, object c,
              object rng, long long now_ms) except -1:
    """One target of :meth:`LatencySniper.scan` at its edge: forget a fresh one's "not going" mark,
    skip one already decided, else decide (``share``) and schedule a shot; 1 when a shot was scheduled."""
    if edge <= min_edge:
        if pending.get(oid, 0) == -1:
            del pending[oid]     # fresh again: a later staleness is a new chance
        return 0
    if oid in pending:
        return 0
    if <double> rng.random() >= share:
        pending[oid] = -1
        return 0
    pending[oid] = now_ms + _react_ms(c, rng)
    s._due = False
    return 1


cdef long long _react_ms(object c, object rng) except? -1:
    """A shot's reaction time: ``round(exp(uniform(log(max(1, lo)), log(max(lo, hi, 1)))))`` ms, as
    :meth:`LatencySniper.scan` draws it."""
    cdef double lo, hi, a, b
    lo, hi = c.sniper_reaction_ms
    a = lo if lo > 1.0 else 1.0                               # max(1.0, lo)
    b = lo
    if hi > b:
        b = hi
    if 1.0 > b:
        b = 1.0                                               # max(lo, hi, 1.0)
    a = log(a)
    b = log(b)
    return <long long> rint(exp(a + (b - a) * <double> rng.random()))


cdef class ScanTargets:
    """The snipers' targets in one market as the last full look found them (their ids, the price a
    taker pays, the fee per share at it, whether the taker's token value is the fair itself), valid
    while the target owners' :attr:`Exchange.book_version` total is unchanged: an order is placed,
    cancelled, filled or expired only with a bump of its owner's version, and the fields read here
    (id, market, side, price, token) never change on a resting order."""

    def __cinit__(self):
        self.n = 0
        self.ver = -1
        self.oids = []
        self.live_ids = set()


cdef long long _scan_one(object s, long long now_ms, object m, dict pending, double share) except -2:
    """:func:`sniper_scan` in one market with a fixed target set (what the backtest drives): the same
    targets in the same order, the same edges, draws and pending bookkeeping; -1 when the targets do
    not fit the typed cache (the caller then takes the general walk)."""
    cdef ScanTargets T = s._scan_targets
    cdef long long ver = 0, pu, new = 0
    cdef int i, n
    cdef double f, q, value, edge, min_edge
    cdef bint rebuilt = False
    owners = s.targets
    bv = s.ex.book_version
    for ow in owners:
        ver += <long long> bv.get(ow, 0)
    if T is None or T.market is not m or T.owners is not owners or T.pending is not pending or T.ver != ver:
        T = ScanTargets()
        T.market = m
        T.owners = owners
        T.pending = pending
        T.ver = ver
        cid = m.condition_id
        lives = s.ex._live
        fee_ps = s._fee_ps
        n = 0
        for ow in owners:
            d = lives.get(ow)
            if d:
                for o in d.values():
                    if o.condition_id == cid and o.status == LIVE:
                        if n >= SCAN_MAX:
                            s._scan_targets = None
                            return -1
                        pu = o.price_u
                        if o.side == BUY:     # the taker buys the other token at 1 - px
                            q = 1.0 - pu / <double> PRICE_SCALE
                            T.value_is_f[n] = not o.is_up
                        else:
                            q = pu / <double> PRICE_SCALE
                            T.value_is_f[n] = o.is_up
                        T.q[n] = q
                        T.fee[n] = _fee_per_share(fee_ps, s.ex.fee, q)
                        oid = o.order_id
                        T.oids.append(oid)
                        T.live_ids.add(oid)
                        n += 1
        T.n = n
        s._scan_targets = T
        rebuilt = True
    n = T.n
    if n == 0 and not pending:
        return 0          # nothing to look at and nothing to forget (the fair is a pure lookup)
    f = _fair_up(s.path, <long long> m.end_ms - HOUR_MS, now_ms)
    c = s.cfg
    min_edge = c.sniper_min_edge
    rng = s.rng
    oids = T.oids
    for i in range(n):
        q = T.q[i]
        value = f if T.value_is_f[i] else 1.0 - f
        edge = value - q - T.fee[i]
        oid = oids[i]
        new += _aim(s, pending, oid, edge, min_edge, share, c, rng, now_ms)
    if rebuilt:     # the -1 marks of orders no longer live; with the same targets none can have appeared
        live_ids = T.live_ids
        for oid in [k for k in pending if k not in live_ids and pending[k] == -1]:
            del pending[oid]
    return new


# ---------------------------------------------------------------------------- the takers' FAK BUY
cdef object _place_taker(object ex, str owner, object tok, object price, object size, long long now_ms):
    """``ex.place_taker(owner, tok, price, size, now_ms)``: the takers' FAK BUY (same checks in the
    same order, same id draws, same matching, settlement, fills and trade record as
    :meth:`Exchange.place` with ``"FAK"``); the fills, or None when the venue rejected it."""
    cdef double fp, fs, x
    cdef long long pu, su, tick_u, limit_b, id_seq, p, tot
    cdef double id_draw
    cdef bint up
    m = ex.token_market.get(tok)
    if (ex._listeners or m is None or m.closed or not m.accepting or now_ms >= m.end_ms
            or type(price) is not float or type(size) is not float):
        return ex.place_taker(owner, tok, price, size, now_ms)
    fp = price
    fs = size
    if not (0.0 <= fp <= 1.0 and 0.0 < fs < 1e7):
        return ex.place_taker(owner, tok, price, size, now_ms)
    a = _buy_head(ex, m, owner, fp, fs, now_ms, False, &pu, &su, &id_seq, &id_draw)
    if a is None:
        return None
    up = tok == m.up_token
    cdef dict orders = ex.orders
    # Exchange._crossable(cap=1): anything with size left at a crossing price (a BUY Up is a bid)
    if up:
        limit_b = pu
        if m.ask_prices:
            p = m.ask_prices[0]
            if p > limit_b or not _crossable_any(orders, m.asks, m.ask_prices, True, limit_b):
                return None
        else:
            return None
    else:
        limit_b = PRICE_SCALE - pu
        bp = m.bid_prices
        if bp:
            p = bp[len(bp) - 1]
            if p < limit_b or not _crossable_any(orders, m.bids, m.bid_prices, False, limit_b):
                return None
        else:
            return None
    oid = "0x" + _id_hex(ex._order_head, id_seq, id_draw)
    if oid in orders:    # pragma: no cover - a SHA-256 collision
        return None
    o = new_order(oid, owner, m.condition_id, tok, up, BUY, pu, su, "FAK", False, 0, now_ms, id_seq + 1, 0)
    orders[oid] = o
    fills = _match(ex, m, o, up, limit_b, su, now_ms)
    o.status = "CANCELED" if o.size_u - o.filled_u > 0 else "MATCHED"
    _op_done(ex)
    return fills


cdef bint _crossable_any(dict orders, dict book, list prices, bint asks, long long limit_b) except -1:
    """``Exchange._crossable(..., cap=1) > 0``: some order with size left at a price crossing ``limit_b``."""
    cdef long long p, n = len(prices), i
    for i in range(n):
        p = prices[i] if asks else prices[n - 1 - i]
        if (p > limit_b) if asks else (p < limit_b):
            return False
        if any_left(orders, book[p]):      # remaining_u summed up to cap 1: any > 0 reaches it
            return True
    return False


cdef list _match(object ex, object m, object t, bint is_bid, long long limit_b, long long t_size, long long now_ms):
    """``Exchange._match`` for a taker BUY ``t`` (no listeners): cross the book at the makers' prices,
    settle each fill (``Exchange._settle``), build the one grouped trade record; returns the fills."""
    cdef long long t_filled = 0, p, x, mk_rem, taker_px, fee_u, total_fee_u = 0, id_seq
    cdef bint t_up = t.is_up
    cdef list fills = [], makers = []
    cdef dict orders = ex.orders
    cdef str kind
    ex._pending_updates = pending = []
    book = m.asks if is_bid else m.bids
    cdef list prices = m.ask_prices if is_bid else m.bid_prices
    bv = ex.book_version
    accounts = ex.accounts
    t_owner = t.owner
    t_tok = t.token_id
    t_oid = t.order_id
    fee = m.fee
    lives = ex._live
    ta = accounts.get(t_owner) or ex._acct(t_owner)
    while t_filled < t_size and prices:
        p = prices[0] if is_bid else prices[len(prices) - 1]
        if (is_bid and p > limit_b) or (not is_bid and p < limit_b):
            break
        q = book[p]
        while q and t_filled < t_size:
            mk = orders[q[0]]
            mk_rem = <long long> mk.size_u - <long long> mk.filled_u
            x = t_size - t_filled if t_size - t_filled < mk_rem else mk_rem
            # Exchange._settle (the taker is a BUY)
            mk_owner = mk.owner
            ma = accounts.get(mk_owner) or ex._acct(mk_owner)
            taker_px = p if t_up else PRICE_SCALE - p
            mp = mk.price_u
            fee_u = _taker_fee_units(taker_px, x, fee)
            mk_tok = mk.token_id
            if mk.side == BUY:
                cost = mp * x
                mk.res_usdc_u -= cost
                ma.usdc_res_u -= cost
                ma.usdc_u -= cost
                ma.tok_u[mk_tok] = ma.tok_u.get(mk_tok, 0) + x
            else:
                mk.res_tok_u -= x
                ma.tok_res_u[mk_tok] -= x
                ma.tok_u[mk_tok] -= x
                ma.usdc_u += mp * x
            ta.usdc_u -= taker_px * x + fee_u
            ta.tok_u[t_tok] = ta.tok_u.get(t_tok, 0) + x
            ex.fees_u += fee_u
            if t_tok == mk_tok:
                kind = "transfer"
            else:                 # BUY Up x BUY Down: mint full sets
                m.pairs_u += x
                kind = "mint"
            total_fee_u += fee_u
            t_filled += x
            t.filled_u = t_filled
            mk.filled_u += x
            bv[mk_owner] = bv.get(mk_owner, 0) + 1
            mk_oid = mk.order_id
            fills.append(Fill(mk_oid, mk_owner, t_oid, t_owner, taker_px / <double> PRICE_SCALE,
                              x / <double> SIZE_SCALE, kind, fee_u / <double> USDC_SCALE))
            makers.append(mk)
            ex._touched.add((m.condition_id, not is_bid, p))
            if mk_rem == x:
                mk.status = "MATCHED"
                q.popleft()
                lives.get(mk_owner, {}).pop(mk_oid, None)
                if mk.order_type == "GTD":
                    ex._drop_gtd(mk)
            pending.append(mk)
        if not q:
            del book[p]
            if is_bid:
                prices.pop(0)
            else:
                prices.pop()
    if not fills:
        return fills
    # the grouped trade record: its id's draw taken now, the record (strings, hashes) built when read
    id_seq = ex._seq + 1
    ex._seq = id_seq
    L = LazyTrade()
    L.ex = ex
    L.m = m
    L.t = t
    L.fills = fills
    L.makers = makers
    L.id_seq = id_seq
    L.draw = ex._rng.random()
    L.now_ms = now_ms
    L.total_fee_u = total_fee_u
    trades = ex._trades
    L.idx = len(trades)
    trades.append(L)
    ex._lazy.append(L)
    t.trade_ids.append(L)
    owner_trades = ex._owner_trades
    L.slots = slots = []
    lst = owner_trades.get(t_owner)
    if lst is None:
        lst = owner_trades[t_owner] = []
    slots.append((lst, len(lst)))
    lst.append(L)
    seen = {t_owner}
    for mk in makers:
        ids = mk.trade_ids
        if L not in ids:
            ids.append(L)
        mk_owner = mk.owner
        if mk_owner not in seen:
            seen.add(mk_owner)
            lst = owner_trades.get(mk_owner)
            if lst is None:
                lst = owner_trades[mk_owner] = []
            slots.append((lst, len(lst)))
            lst.append(L)
    last = fills[len(fills) - 1].price
    m.last_trade_price = last if t_up else 1.0 - last
    return fills


# ---------------------------------------------------------------------------- deferred trade records
cdef class LazyTrade:
    """A taker's grouped trade record (what ``Exchange._match`` builds) not built yet: it holds what the
    record is made of (the taker order, the fills and their maker orders, the trade id's sequence number
    and draw of the engine's stream, the time, the fee) and stands in its places (``Exchange._trades``,
    the parties' trade lists, the orders' ``trade_ids``) until something reads it; :func:`build` then
    makes the very record ``Exchange._match`` would have made, and puts it (and its id) in those places.
    Why: most trades of a backtest hour are between the background agents and nobody reads their
    records (ids, decimal strings, two SHA-256s per trade)."""


cdef object _build(LazyTrade L):
    """The trade record of ``L`` exactly as ``Exchange._match`` spells it, put in its places (once)."""
    cdef long long size_u = 0
    if L.built is not None:
        return L.built
    if L.ex is None:
        raise RuntimeError("this trade record was never built and has been discarded "
                           "(Exchange.forget_unread_trades): read trades before discarding them")
    fills = L.fills
    t = L.t
    m = L.m
    ex = L.ex
    entries = []
    for i in range(len(fills)):
        f = fills[i]
        mk = L.makers[i]
        mk_owner = f.maker_owner
        entries.append({"order_id": f.maker_order_id, "owner": mk_owner, "maker_address": mk_owner,
                        "matched_amount": _fmt(f.size), "price": _fmt(mk.price_u / <double> PRICE_SCALE),
                        "fee_rate_bps": "0", "asset_id": mk.token_id, "outcome": mk.outcome,
                        "side": mk.side})
    for f in fills:
        size_u += <long long> rint(<double> f.size * SIZE_SCALE)
    vwap = _sum([f.price * f.size for f in fills]) / (size_u / <double> SIZE_SCALE)
    tid = _trade_id(ex._trade_head, L.id_seq, L.draw)
    now_ms = L.now_ms
    t_owner = t.owner
    trade = {
        "id": tid, "taker_order_id": t.order_id, "market": m.condition_id, "asset_id": t.token_id,
        "side": t.side, "size": _fmt(size_u / <double> SIZE_SCALE), "fee_rate_bps": str(m.fee_rate_bps),
        "price": _fmt(_round(vwap, 6)), "status": "MATCHED", "match_time": str(now_ms // 1000),
        "match_time_ms": now_ms, "last_update": str(now_ms // 1000), "outcome": t.outcome,
        "owner": t_owner, "maker_address": t_owner, "transaction_hash": _tx_hash(tid),
        "bucket_index": 0, "maker_orders": entries, "trader_side": "TAKER",
        "taker_fee": _fmt(L.total_fee_u / <double> USDC_SCALE), "type": "TRADE",
    }
    L.built = trade
    ex._trades[L.idx] = trade
    for lst, j in L.slots:
        lst[j] = trade
    _put_id(t.trade_ids, L, tid)
    for mk in L.makers:
        _put_id(mk.trade_ids, L, tid)
    return trade


cdef int _put_id(list ids, LazyTrade L, str tid) except -1:
    """Replace the placeholder ``L`` in an order's ``trade_ids`` by the trade id (its place kept)."""
    cdef Py_ssize_t i
    for i in range(len(ids)):
        if ids[i] is L:
            ids[i] = tid
    return 0


def build_trades(list lst, Py_ssize_t start=0):
    """Build the placeholders in ``lst[start:]`` (a trade list or an order's ``trade_ids``) in place."""
    cdef Py_ssize_t i
    for i in range(start, len(lst)):
        x = lst[i]
        if type(x) is LazyTrade:
            _build(<LazyTrade> x)


def flush_trades(ex):
    """Build every placeholder of ``ex`` (in match order) and forget them: ``Exchange.flush_trades``."""
    lazy = ex._lazy
    for x in lazy:
        _build(<LazyTrade> x)
    lazy.clear()


def forget_unread_trades(ex):
    """Cut the links of every placeholder of ``ex`` (unread ones can no longer be built):
    ``Exchange.forget_unread_trades``.

    A placeholder holds the exchange, the taker and maker orders and the lists it stands in, and
    they hold it: reference cycles that only the cyclic collector can free (~44,000 objects a real
    backtest hour, ~30 ms of collection an hour, where the venue otherwise leaves no cycle). Cutting
    the placeholder's links lets reference counting free the hour's venue as soon as it is dropped."""
    cdef LazyTrade L
    for x in ex._lazy:
        L = <LazyTrade> x
        L.ex = None           # also when built (``L.built`` is kept): ``ex._lazy`` still holds it
        L.m = None
        L.t = None
        L.fills = None
        L.makers = None
        L.slots = None
    # ``ex._lazy`` keeps the inert placeholders: a later read (``trades_log``, ``flush_trades``)
    # raises instead of handing out placeholders as records


def place_taker(ex, str owner, tok, price, size, long long now_ms):
    """The compiled :meth:`Exchange.place_taker` (what :func:`takers` sends); exposed for the twin test."""
    return _place_taker(ex, owner, tok, price, size, now_ms)
