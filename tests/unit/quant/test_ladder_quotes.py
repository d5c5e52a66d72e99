"""The per-pass quoting kernel: compiled ``quote_ladder`` (+ ``LadderSpec``) == its reference twin,
exactly (same orders, same floats, same order), and == build_ladder followed by the filter it stands
for (price band around fair, fast-move pull, reducing orders first), written out here in the plain
form the strategy used before the kernel existed. Inputs are drawn (the shapes matter, not prices)."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hourmm_core import quant as q
from hourmm_core.quant import reference as R

SET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _make(tok: int, side: int, price: float, size: float) -> tuple:
    return (tok, side, round(price, 6), size, side == 1)


@st.composite
def kernel_inputs(draw):
    tick = draw(st.sampled_from([0.01, 0.001]))
    n = round(1 / tick)
    bb_t = draw(st.integers(0, n - 1))
    ba_t = draw(st.integers(bb_t + 1, n))
    spec = dict(tick=tick, min_size=draw(st.sampled_from([0.0, 1.0, 5.0])), n_levels=draw(st.integers(0, 6)),
                level_step=draw(st.sampled_from([0.0, 0.005, 0.01, 0.02])), unc_mult=draw(st.floats(0.0, 3.0)),
                max_order_size=draw(st.sampled_from([0.0, 5.0, 10.0, 100.0])),
                max_position=draw(st.sampled_from([0.0, 10.0, 50.0, 500.0])),
                post_only=draw(st.booleans()), size_mult=draw(st.sampled_from([0.5, 1.0])))
    fair = draw(st.floats(0.0, 1.0))
    band = draw(st.sampled_from([0.0, 0.02, 0.15, 1.0]))
    args = (fair, draw(st.floats(0.0, 0.1)), draw(st.sampled_from([0.0, 3.0, 7.0, 40.0, 600.0])),
            draw(st.sampled_from([0.0, 3.0, 7.0, 40.0, 600.0])),
            bb_t / n if bb_t > 0 else math.nan, ba_t / n if ba_t < n else math.nan,
            draw(st.sampled_from([1.0, 5.0, 12.5, 200.0])), draw(st.floats(0.0, 0.1)), draw(st.floats(0.0, 0.2)),
            draw(st.sampled_from([0.0, 3.0, 20.0, 1000.0, math.inf])), draw(st.booleans()),
            draw(st.sampled_from([1.0, 2.0])), fair - band, fair + band, draw(st.sampled_from([-1, 0, 1])))
    return spec, args


def _plain(spec: dict, args: tuple) -> list:
    """build_ladder + the strategy's filter as the strategy spelled it before the kernel."""
    (fair, unc, iu, idn, bid, ask, size, half, skew, cap, red, mult, lo, hi, pull) = args
    lad = R.build_ladder(fair, unc, iu, idn, bid, ask, base_size=size, half_spread=half, skew=skew,
                         capital_free=cap, reduce_only=red, spread_mult=mult, **spec)
    out = []
    for tok, side, price, sz, _lvl in lad.orders():
        up_px = price if tok == 0 else 1.0 - price
        if side == 0 and not (lo - 1e-9 <= up_px <= hi + 1e-9):
            continue
        if pull:
            is_ask = (tok == 0) == (side == 1)
            if (pull > 0 and is_ask) or (pull < 0 and not is_ask):
                continue
        out.append((int(tok), int(side), round(float(price), 6), float(sz), side == 1))
    out.sort(key=lambda x: not x[4])
    return out


@SET
@given(kernel_inputs())
def test_quote_ladder_compiled_equals_reference_and_the_plain_filter(inp):
    spec, args = inp
    cache_c: dict = {}
    a = q.quote_ladder(q.LadderSpec(**spec), *args, cache_c, _make)
    b = R.quote_ladder(R.LadderSpec(**spec), *args, {}, _make)
    assert a == b == _plain(spec, args)
    # memoised: the same pass again returns the very same objects
    again = q.quote_ladder(q.LadderSpec(**spec), *args, cache_c, _make)
    assert again == a and all(x is y for x, y in zip(again, a))
    assert len(cache_c) == len(set(a))


def test_quote_ladder_filters_and_orders():
    spec = q.LadderSpec(tick=0.01, min_size=5.0, n_levels=2, level_step=0.01, unc_mult=0.0,
                        max_order_size=100.0, max_position=500.0)
    base = (0.5, 0.0, 20.0, 0.0, 0.40, 0.60, 5.0, 0.02, 0.0, 1000.0, False, 1.0, 0.35, 0.65)
    full = q.quote_ladder(spec, *base, 0, {}, _make)
    # long Up: asks are SELL Up (reducing, listed first), bids BUY Up
    assert [(t, s) for t, s, *_ in full] == [(0, 1), (0, 1), (0, 0), (0, 0)]
    assert [x[2] for x in full] == [0.52, 0.53, 0.48, 0.47]
    assert [x[:2] for x in q.quote_ladder(spec, *base, 1, {}, _make)] == [(0, 0), (0, 0)]    # asks pulled
    assert [x[:2] for x in q.quote_ladder(spec, *base, -1, {}, _make)] == [(0, 1), (0, 1)]   # bids pulled
    narrow = base[:12] + (0.475, 0.525)
    assert [x[2] for x in q.quote_ladder(spec, *narrow, 0, {}, _make)] == [0.52, 0.53, 0.48]  # 0.47 out of band
    with pytest.raises(ValueError, match="quote_ladder: bad input"):
        q.quote_ladder(spec, 1.5, *base[1:], 0, {}, _make)
    with pytest.raises(ValueError):
        R.quote_ladder(R.LadderSpec(), 1.5, *base[1:], 0, {}, _make)


def test_inv_cdf_is_python_normal_dist_bit_for_bit():
    """The move width's z (``QuoteKernel``) must be the double ``NormalDist().inv_cdf`` gives."""
    import random
    from statistics import NormalDist

    from hourmm_core.quant.ladder import inv_cdf

    nd, rng = NormalDist(), random.Random(7)
    ps = [rng.random() for _ in range(50_000)] + [rng.uniform(0.07, 0.08) for _ in range(5_000)]
    ps += [10.0 ** -k for k in range(1, 300)] + [1.0 - 10.0 ** -k for k in range(1, 16)] + [0.075, 0.925, 0.5]
    assert [inv_cdf(p) for p in ps if 0.0 < p < 1.0] == [nd.inv_cdf(p) for p in ps if 0.0 < p < 1.0]
    with pytest.raises(ValueError):
        inv_cdf(0.0)
