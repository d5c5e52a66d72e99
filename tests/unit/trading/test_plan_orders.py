"""The order manager's compiled plan (``hourmm_core.quant.plan.plan_orders``) and the batched
pre-trade check (``QuoteCheck``) == their plain-Python twins (``reference/plan.py`` over the
reference ``check_order``), exactly: same actions (kind, the same order objects cancelled, the same
quotes placed in the same order), same quotes rejected with the same codes, same counts, and the
check's exposure after the plan the same to the last bit. Drawn books and limits: the shapes that
matter are partial fills, orders without an exchange id, orders being cancelled, near-miss prices
and sizes, tight budgets / slots, every mode, unknown fair, stale data and unwinding."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hourmm_core import quant as q
from hourmm_core.quant import reference as R
from hourmm_core.trading.order_manager import _CANCELLING, _FINAL, Action, Order, OrderManager, OrderState
from hourmm_core.trading.risk_engine import Exposure, Limits, Mode, check_quote
from hourmm_core.trading.types import Quote

# mostly orders the check accepts (on the tick grid, sizes within the limits), some that it refuses
PX = st.sampled_from([0.3, 0.47, 0.48, 0.5, 0.52, 0.53, 0.45, 0.4749, 0.475, 0.4751, 0.01, 0.99])
SZ = st.sampled_from([5.0, 5.5, 6.0, 10.0, 7.25, 5.0, 0.5, 4.0, 100.0, 150.0])
quotes = st.lists(st.builds(Quote, st.integers(0, 1), st.integers(0, 1), PX, SZ, st.booleans()), max_size=8)
LIMITS = st.tuples(st.sampled_from([100.0, 10.0, 100.0, 5.0]), st.sampled_from([500.0, 50.0, 500.0, 10.0]),
                   st.sampled_from([1000.0, 40.0, 1000.0, 5.0]), st.sampled_from([6, 4, 8, 1, 0]),
                   st.sampled_from([1.0, 0.15, 1.0, 0.02]), st.just(1), st.sampled_from([0.01, 0.0]),
                   st.sampled_from([5.0, 0.0]))
MODE = st.sampled_from([0, 0, 0, 1, 2, 3])
FAIR = st.sampled_from([0.5, 0.5, 0.47, math.nan, 0.02])
EXPO = st.tuples(*[st.sampled_from([0.0, 12.5, 3.0, 5.0, 60.0, 0.0]) for _ in range(6)],
                 st.sampled_from([0.0, 10.0, 900.0]))


@st.composite
def books(draw):
    out = []
    for i in range(draw(st.integers(0, 8))):
        o = Order(f"c{i}", draw(st.integers(0, 1)), draw(st.integers(0, 1)), draw(PX), draw(SZ), False, 0,
                  state=draw(st.sampled_from([s for s in OrderState if not s.final])))
        o.filled = min(o.size, draw(st.sampled_from([0.0, 0.5, 1.0, 4.9999])))
        o.order_id = draw(st.sampled_from([None, f"x{i}"]))
        out.append(o)
    return out


def _checks(lim, mode, fair, unwind, stale, expo):
    args = (mode, fair, unwind, (1 << 40) if stale else 0, *expo)
    return q.QuoteCheck(q.RiskChecker(*lim), *args), R.QuoteCheck(R.RiskChecker(*lim), *args)


def _exposure(c) -> tuple:
    return (c.yes, c.no, c.buy_up, c.buy_down, c.sell_up, c.sell_down, c.reserved, c.open_orders)


@settings(max_examples=500, deadline=None)
@given(quotes, books(), st.integers(0, 6), st.integers(0, 6), st.booleans(), LIMITS, MODE, FAIR, st.booleans(),
       st.sampled_from([False, False, True]), EXPO,
       st.sampled_from([0.0, 0.005]), st.sampled_from([0.0, 0.2]))
def test_plan_orders_compiled_equals_reference(want, working, budget, max_open, places, lim, mode, fair, unwind,
                                               stale, expo, ptol, stol):
    qa, qb = _checks(lim, mode, fair, unwind, stale, expo)
    made: dict[str, list] = {"a": [], "b": []}

    def new_order(key):
        def make(qt, now):
            o = Order(f"n{len(made[key])}", qt.token, qt.side, qt.price, qt.size, qt.reduce, now)
            made[key].append((qt, now))
            return o
        return make

    a = q.plan_orders(list(want), list(working), _CANCELLING, ptol + 1e-9, stol, budget, max_open, places, qa,
                      new_order("a"), 7, Action)
    b = R.plan_orders(list(want), list(working), _CANCELLING, ptol + 1e-9, stol, budget, max_open, places, qb,
                      new_order("b"), 7, Action)
    acts = lambda r: [(x.kind, id(x.order) if x.kind == "cancel" else x.order.client_id) for x in r[0]]
    assert acts(a) == acts(b)
    assert [id(x) for x, _ in made["a"]] == [id(x) for x, _ in made["b"]]
    assert a[1] == b[1] and a[3:5] == b[3:5] and a[6] == b[6]
    assert [(id(x), c) for x, c in a[2]] == [(id(x), c) for x, c in b[2]]
    assert [id(x) for x in a[5]] == [id(x) for x in b[5]]
    assert _exposure(qa) == _exposure(qb)
    # the budget, the slots and the states bound what is sent
    assert len(a[0]) <= budget and all(o.order_id is not None for k, o in ((x.kind, x.order) for x in a[0])
                                       if k == "cancel")
    assert all(o.state is not _CANCELLING for o in a[5])


def _check_both(want, lim, mode, fair, unwind, stale, expo, outcomes: list[int] | None = None) -> None:
    qa, qb = _checks(lim, mode, fair, unwind, stale, expo)
    for x in want:
        code = qa.check(x)
        assert code == qb.check(x)
        assert _exposure(qa) == _exposure(qb)
        if outcomes is not None:
            outcomes[code == 0] += 1


@settings(max_examples=300, deadline=None)
@given(quotes, LIMITS, MODE, FAIR, st.booleans(), st.sampled_from([False, False, True]), EXPO)
def test_quote_check_compiled_equals_reference(want, lim, mode, fair, unwind, stale, expo):
    _check_both(want, lim, mode, fair, unwind, stale, expo)


def test_the_drawn_quotes_exercise_both_outcomes():
    """The strategies above draw both quotes the check accepts and quotes it refuses (else the
    property would compare only one branch). Counted on its own derandomized draw of the same
    strategies, so the count is the same on every run: it used to read the randomized property's
    tally, whose accepted count (55-98 of ~1,300 quotes; about 1 quote in 20 is accepted) sometimes
    fell under the bound. 1,000 draws give about three times the bound."""
    outcomes = [0, 0]

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None)
    @given(quotes, LIMITS, MODE, FAIR, st.booleans(), st.sampled_from([False, False, True]), EXPO)
    def draw(want, lim, mode, fair, unwind, stale, expo):
        _check_both(want, lim, mode, fair, unwind, stale, expo, outcomes)

    draw()
    assert outcomes[0] > 50 and outcomes[1] > 50, outcomes


def test_plan_with_a_python_check_callable_still_works():
    """Any callable may stand in for the compiled check (tests, tools): codes and order kept."""
    om = OrderManager()
    seen = []
    r = om.plan([Quote(0, 0, 0.4, 5), Quote(0, 0, 0.3, 5), Quote(1, 0, 0.5, 5)], 0, 4,
                check=lambda x: seen.append(x.price) or (3 if x.price == 0.3 else 0))
    assert seen == [0.4, 0.3, 0.5]
    assert [(a.kind, a.order.price) for a in r.actions] == [("place", 0.4), ("place", 0.5)]
    assert [(x.price, c) for x, c in r.rejected] == [(0.3, 3)]


def test_check_quote_keeps_exposure_as_before():
    """check_quote (QuoteCheck underneath) adds an accepted quote to the Exposure and leaves it
    untouched on a reject; sells count against the tokens still free."""
    lim = Limits(100.0, 500.0, 1000.0, 4)
    ex = Exposure(10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    assert check_quote(Quote(0, 1, 0.5, 6.0, True), Mode.NORMAL, lim, ex, 0.5, True, 0.15) == 0
    assert (ex.open_sell_up, ex.open_orders) == (6.0, 1)
    # only 4 Up tokens are still free: a second sell of 6 is not reducing -> refused, nothing booked
    assert check_quote(Quote(0, 1, 0.5, 6.0, True), Mode.REDUCE_ONLY, lim, ex, 0.5, True, 0.15) != 0
    assert (ex.open_sell_up, ex.open_orders) == (6.0, 1)
    assert check_quote(Quote(1, 0, 0.5, 5.0), Mode.NORMAL, lim, ex, 0.5, True, 0.15) == 0
    assert (ex.open_buy_down, ex.reserved_capital, ex.open_orders) == (5.0, 2.5, 2)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(OrderState)), st.sampled_from([0, 5, 5, 9, 100])), max_size=14),
       st.integers(0, 6))
def test_prune_order_compiled_equals_reference(spec, keep):
    """Which final orders prune drops: the oldest by updated_ms (ties: the orders' order), all but ``keep``."""
    book = []
    for i, (state, ms) in enumerate(spec):
        o = Order(f"c{i}", 0, 0, 0.5, 5.0, False, 0, state=state)
        o.updated_ms = ms
        book.append(o)
    a = q.prune_order(iter(book), _FINAL, keep)
    assert [id(x) for x in a] == [id(x) for x in R.prune_order(iter(book), _FINAL, keep)]
    n_final = sum(o.state in _FINAL for o in book)
    assert len(a) == max(0, n_final - keep) and all(o.state in _FINAL for o in a)
    assert [o.updated_ms for o in a] == sorted(o.updated_ms for o in a)
