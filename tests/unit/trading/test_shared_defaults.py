"""One strategy everywhere: the live trader and the backtest build the same knobs from the shipped configs.

configs/trader.yaml is THE definition of the strategy / limits / schedule / requote defaults;
`hourmm backtest` (configs/research.yaml `backtest:` -> ``params_from_config``) starts from it,
and the live Trader hands ``cfg.strategy`` to its DecisionCore. These tests fail when the two
drift apart again (a knob redefined in research.yaml, a knob trader.yaml forgets, a knob the
Trader does not pass on).
"""
from __future__ import annotations

import dataclasses

import pytest

from hourmm_core.clock import WallClock
from hourmm_core.config import CONFIG_DIR, ConfigError, TraderConfig, load_yaml, shipped_trader_config
from hourmm_core.research.backtest_cli import params_from_config
from hourmm_core.research.settings import load_research_config
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams
from hourmm_core.trading.trader import Trader

_OWNED = (set(StrategyParams.__dataclass_fields__) | set(Limits.__dataclass_fields__)
          | set(Schedule.__dataclass_fields__) | {"requote_price_tol", "requote_size_tol"})


def _backtest_defaults():
    return params_from_config(load_research_config(None).get("backtest", {}))


def test_backtest_and_live_trader_build_identical_strategy_params_from_the_shipped_configs(monkeypatch):
    monkeypatch.delenv("HOURMM_RESEARCH_CONFIG", raising=False)
    live = TraderConfig.from_env({})          # container B with no env overrides
    bt = _backtest_defaults()
    assert live == shipped_trader_config()
    assert bt.strategy == live.strategy
    assert bt.limits == live.limits and bt.schedule == live.schedule
    assert (bt.requote_price_tol, bt.requote_size_tol) == (live.requote_price_tol, live.requote_size_tol)
    # the shipped values are the tuned hostile-venue strategy, not the neutral dataclass fallback
    assert bt.strategy != StrategyParams()
    assert bt.strategy.move_mult > 0 and bt.strategy.pull_move > 0 and bt.strategy.inv_limit < live.max_position_size


def test_research_yaml_does_not_redefine_trader_knobs():
    section = load_research_config(CONFIG_DIR / "research.yaml").get("backtest", {})
    assert not (set(section) & _OWNED), f"research.yaml redefines {sorted(set(section) & _OWNED)}"


def test_trader_yaml_spells_out_every_strategy_knob():
    shipped = load_yaml(CONFIG_DIR / "trader.yaml")
    missing = sorted(n.upper() for n in StrategyParams.__dataclass_fields__ if n.upper() not in shipped)
    assert not missing, f"configs/trader.yaml lacks {missing}"


def test_merge_stays_off_because_the_live_trader_cannot_merge():
    assert shipped_trader_config().strategy.merge_min == 0
    assert _backtest_defaults().strategy.merge_min == 0
    with pytest.raises(ConfigError, match="MERGE_MIN"):
        TraderConfig.from_env({"MERGE_MIN": "1"})


@pytest.mark.parametrize("name, raw, field, value", [
    ("MOVE_MULT", "2.5", "move_mult", 2.5), ("PULL_MOVE", "0.03", "pull_move", 0.03),
    ("INV_LIMIT", "40", "inv_limit", 40.0), ("EXTREME_CUT", "0.1", "extreme_cut", 0.1),
    ("LATENCY_MS", "600", "latency_ms", 600.0), ("MID_WEIGHT", "0.5", "mid_weight", 0.5),
    ("PULL_HOLD_MS", "500", "pull_hold_ms", 500)])
def test_new_knobs_have_env_names_and_reach_the_live_decision_core(tmp_path, name, raw, field, value):
    cfg = dataclasses.replace(TraderConfig.from_env({name: raw, "SQLITE_PATH": str(tmp_path / "j.db")}),
                              control_port=0)
    tr = Trader(cfg, WallClock(), None)
    try:
        assert getattr(tr.core.params, field) == value
        assert tr.core.params == cfg.strategy
    finally:
        tr.journal.close()


@pytest.mark.parametrize("name, raw", [("PULL_MOVE", "2"), ("EXTREME_CUT", "0.7"), ("MID_WEIGHT", "-0.1"),
                                       ("INV_LIMIT", "inf"), ("LATENCY_MS", "x")])
def test_bad_new_knob_values_stop_the_trader(name, raw):
    with pytest.raises(ConfigError, match=name):
        TraderConfig.from_env({name: raw})
