"""The order manager's compiled scans (``hourmm_core.quant.plan``) == their plain-Python twins
(``reference/plan.py``), exactly: same quotes missing, same orders left free (same objects, same
order), same kept count, same sums to the last bit. Drawn order books (the shapes matter: partial
fills, near-miss prices and sizes on both sides of the tolerances, duplicate quotes)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hourmm_core import quant as q
from hourmm_core.quant import reference as R
from hourmm_core.trading.order_manager import _FINAL, Order, OrderState
from hourmm_core.trading.types import Quote

PX = st.sampled_from([0.01, 0.3, 0.47, 0.4749, 0.475, 0.4751, 0.48, 0.5, 0.52, 0.99])
SZ = st.sampled_from([0.0, 1.0, 4.0, 5.0, 5.5, 6.0, 6.0000000001, 10.0, 100.0])
quotes = st.lists(st.builds(Quote, st.integers(0, 1), st.integers(0, 1), PX, SZ, st.booleans()), max_size=8)


@st.composite
def orders(draw):
    out = []
    for i in range(draw(st.integers(0, 10))):
        o = Order(f"c{i}", draw(st.integers(0, 1)), draw(st.integers(0, 1)), draw(PX), draw(SZ), False, 0,
                  state=draw(st.sampled_from(list(OrderState))))
        o.filled = min(o.size, draw(st.sampled_from([0.0, 0.5, 1.0, 4.9999, 5.0])))
        out.append(o)
    return out


@settings(max_examples=400, deadline=None)
@given(quotes, orders(), st.sampled_from([0.0, 0.005, 0.01]), st.sampled_from([0.0, 0.2, 1.0]))
def test_match_quotes_compiled_equals_reference(desired, working, ptol, stol):
    fa, fb = list(working), list(working)
    a = q.match_quotes(list(desired), fa, ptol + 1e-9, stol)
    b = R.match_quotes(list(desired), fb, ptol + 1e-9, stol)
    assert a[1] == b[1] and [id(x) for x in a[0]] == [id(x) for x in b[0]]
    assert [id(x) for x in fa] == [id(x) for x in fb]
    assert a[1] + len(fa) == len(working)


@settings(max_examples=300, deadline=None)
@given(orders())
def test_order_aggregates_compiled_equals_reference(working):
    a = q.order_aggregates(iter(working), _FINAL)
    b = R.order_aggregates(iter(working), _FINAL)
    assert [id(x) for x in a[0]] == [id(x) for x in b[0]]
    assert a[1:] == b[1:]
    assert all(type(x) is float for x in a[1:])


def test_match_quotes_first_match_wins_and_each_order_serves_one_quote():
    o1 = Order("a", 0, 0, 0.47, 5.0, False, 0)
    o2 = Order("b", 0, 0, 0.47, 5.0, False, 0)
    o3 = Order("c", 1, 1, 0.52, 5.0, False, 0)
    free = [o1, o2, o3]
    want = [Quote(0, 0, 0.47, 5.0), Quote(0, 0, 0.47, 5.0), Quote(0, 0, 0.47, 5.0), Quote(1, 1, 0.60, 5.0)]
    missing, kept = q.match_quotes(want, free, 0.005 + 1e-9, 0.2)
    assert kept == 2 and missing == want[2:] and free == [o3]
