"""The fast-move pull means the same at the backtest's 1 s decision grid and at the live cadence.

Live, container B decides at every snapshot (POLL_SNAPSHOT_HZ=50: every 20 ms); the backtest
decides every ``decision_ms`` = 1 s. Measured "since the previous decision", a 2-cent jump that
takes 1 s is 50 steps of 0.04 cents live and never pulls. ``pull_window_ms`` measures the change
over a fixed time instead. Synthetic fair values: the test is about the clocking, not prices.
"""
from __future__ import annotations

from hourmm_core.clock import HOUR_MS
from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import BookTop, StrategyParams

END = 10 * HOUR_MS
T0 = END - 3_000_000   # ACTIVE, well before wind-down


def core(**kw) -> DecisionCore:
    c = DecisionCore(Limits(), Schedule(600_000, 300_000, 60_000), StrategyParams(pull_move=0.02, **kw))
    c.set_market(MarketRef("s", "0xc", "up", "dn", END - HOUR_MS, END))
    for f in (c.risk.on_user_ws, c.risk.on_market_ws, c.risk.on_rest):
        f(True, 0)
    return c


def run(c: DecisionCore, step_ms: int, fairs: list[float]) -> list[int]:
    out = []
    for i, f in enumerate(fairs):
        c.decide(T0 + i * step_ms, f, 0.0, True, BookTop(0.3, 0.7), BookTop(0.3, 0.7))
        out.append(c._pull)
    return out


def ramp(n: int, total: float) -> list[float]:
    return [0.5 + total * i / n for i in range(n + 1)]


def test_a_one_second_move_pulls_at_the_live_cadence_with_a_window():
    live = ramp(50, 0.025)               # +2.5 cents over 1 s, in 50 decisions 20 ms apart
    assert run(core(pull_window_ms=1000), 20, live)[-1] == 1
    assert max(run(core(pull_window_ms=0), 20, live)) == 0       # per-decision steps never reach 2 cents
    falling = [1.0 - f for f in live]
    assert run(core(pull_window_ms=1000), 20, falling)[-1] == -1


def test_on_a_one_second_grid_the_window_equals_the_previous_decision():
    fairs = [0.5, 0.505, 0.53, 0.53, 0.52, 0.49, 0.49, 0.49, 0.515]
    assert run(core(pull_window_ms=1000), 1000, fairs) == run(core(pull_window_ms=0), 1000, fairs)
    assert 1 in run(core(pull_window_ms=1000), 1000, fairs) and -1 in run(core(pull_window_ms=1000), 1000, fairs)


def test_slow_drift_does_not_pull_and_a_new_market_forgets_the_old_fair():
    assert max(map(abs, run(core(pull_window_ms=1000), 20, ramp(200, 0.03)))) == 0   # 3 cents over 4 s
    c = core(pull_window_ms=1000)
    run(c, 20, [0.5] * 60)
    c.set_market(MarketRef("s2", "0xd", "up2", "dn2", END, END + HOUR_MS))
    assert c._fair_hist == type(c._fair_hist)()
