"""The decision pass's compiled quoting (``strategy.quote_kernel(...).quotes``, used by
``DecisionCore.decide`` for the common case) == the readable policy ``strategy.ladder_quotes``
it is the twin of: the same Quote objects' values, in the same order, on drawn states and knobs
(book anchor on/off, near-certain cut, wind-down ramp, fast-move width, pulls, inventory, held
cost near the capital limit). Synthetic states on purpose: the shapes matter, not prices."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hourmm_core.trading import strategy as S
from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Phase
from hourmm_core.trading.strategy import BookTop, MarketState, StrategyParams

SET = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PX = st.one_of(st.none(), st.sampled_from([0.01, 0.2, 0.45, 0.47, 0.48, 0.5, 0.52, 0.53, 0.55, 0.8, 0.99]))


@st.composite
def cases(draw):
    p = StrategyParams(
        quote_levels=draw(st.integers(1, 4)), quote_size=draw(st.sampled_from([1.0, 5.0, 10.0, 150.0])),
        half_spread=draw(st.sampled_from([0.0, 0.005, 0.02])), level_step=draw(st.sampled_from([0.0, 0.01])),
        unc_mult=draw(st.sampled_from([0.0, 1.0])), skew=draw(st.sampled_from([0.0, 0.03])),
        price_band=draw(st.sampled_from([0.02, 0.15])), wind_down_spread_mult=draw(st.sampled_from([1.0, 2.0])),
        wind_down_size_mult=draw(st.sampled_from([0.1, 0.5, 1.0])),
        latency_ms=draw(st.sampled_from([0.0, 1150.0])), move_mult=draw(st.sampled_from([0.0, 1.0, 2.0])),
        inv_limit=draw(st.sampled_from([math.inf, 100.0])), extreme_cut=draw(st.sampled_from([0.0, 0.05])),
        mid_weight=draw(st.sampled_from([0.0, 0.5, 1.0])), mid_max_spread=draw(st.sampled_from([0.01, 0.03])))
    lim = Limits(draw(st.sampled_from([20.0, 1000.0])), draw(st.sampled_from([50.0, 500.0])),
                 draw(st.sampled_from([5.0, 100.0])), 4)
    ub, ua = draw(PX), draw(PX)
    s = MarketState(
        fair_up=draw(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1e-7, 0.04, 0.5, 0.96, 1.0]))),
        fair_unc=draw(st.sampled_from([0.0, 0.004])), fresh=True,
        yes_tokens=draw(st.sampled_from([-1.0, 0.0, 3.0, 7.0, 60.0])),
        no_tokens=draw(st.sampled_from([0.0, 5.0, 12.5, 600.0])),
        up=BookTop(ub, ua), down=BookTop(0.4, 0.6), phase=draw(st.sampled_from([Phase.ACTIVE, Phase.WIND_DOWN])),
        mode=draw(st.sampled_from([Mode.NORMAL, Mode.REDUCE_ONLY])), wind_progress=draw(st.floats(0.0, 1.0)),
        tick=draw(st.sampled_from([0.01, 0.001])), min_size=5.0, held_cost=draw(st.sampled_from([0.0, 15.0, 2000.0])),
        ms_left=draw(st.sampled_from([math.inf, 0.0, 0.5, 1000.0, 1_500_000.0])), pull=draw(st.sampled_from([-1, 0, 1])))
    return s, p, lim


@SET
@given(cases())
def test_kernel_equals_ladder_quotes(case):
    s, p, lim = case
    ref = S.ladder_quotes(s, p, lim, reduce_only=s.mode is Mode.REDUCE_ONLY)
    got = S.kernel_quotes(S.quote_kernel(p, lim, s.tick, s.min_size), s.fair_up, s.fair_unc, s.yes_tokens,
                          s.no_tokens, s.up, s.phase is Phase.WIND_DOWN, s.wind_progress, s.ms_left, s.held_cost,
                          s.pull, s.mode is Mode.REDUCE_ONLY)
    assert [(q.token, q.side, q.price, q.size, q.reduce) for q in got] == \
        [(q.token, q.side, q.price, q.size, q.reduce) for q in ref]
    assert S.desired_quotes(s, p, lim) == ref


def test_kernel_is_rebuilt_when_params_or_limits_change():
    p, lim = StrategyParams(quote_size=10.0), Limits()
    k = S.quote_kernel(p, lim, 0.01, 5.0)
    assert S.quote_kernel(p, lim, 0.01, 5.0) is k
    assert S.quote_kernel(StrategyParams(quote_size=10.0), lim, 0.01, 5.0) is not k
    assert S.quote_kernel(p, lim.updated({"max_order_size": 5.0}), 0.01, 5.0) is not k
    assert S.quote_kernel(p, lim, 0.001, 5.0) is not k
    s = MarketState(0.5, 0.0, True, 0.0, 0.0, BookTop(0.4, 0.6), BookTop(0.4, 0.6), Phase.ACTIVE, Mode.NORMAL,
                    0.0, 0.01, 5.0)
    small = S.quote_kernel(p, lim.updated({"max_order_size": 5.0}), 0.01, 5.0)
    sizes = {q.size for q in S.kernel_quotes(small, 0.5, 0.0, 0.0, 0.0, s.up, False, 0.0, math.inf, 0.0, 0, False)}
    assert sizes == {5.0}
    assert {q.size for q in S.ladder_quotes(s, p, lim)} == {10.0}
