"""`hourmm sim` runs the venue the backtest models: real fees, the same hostile flow; and the
side-by-side comparison of `hourmm sim --vs-backtest` judges signs correctly.

The comparison rows are hand-made (a pure function of two tables); the venue check parses the
orchestrator's real simulator command with the simulator's own argument parser.
"""
from __future__ import annotations

from pathlib import Path

from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.research.backtest_cli import params_from_config
from hourmm_core.research.settings import load_research_config
from hourmm_core.sim import vs_backtest as vb
from hourmm_core.sim.orchestrator import Orchestrator, SimOptions, build_parser
from hourmm_core.sim.polymarket import __main__ as pm_main
from hourmm_core.sim.polymarket.agents import AgentConfig
from hourmm_core.sim.polymarket.server import SimConfig


def test_the_sim_venue_charges_real_fees_and_runs_the_backtests_flow(tmp_path: Path):
    orch = Orchestrator(SimOptions(hours=2, out_dir=tmp_path))
    argv = orch.venue_argv()
    assert argv[1:3] == ["-m", "hourmm_core.sim.polymarket"]
    a = pm_main.parse_args(argv[3:])
    assert not a.no_fees and not a.no_agents
    bt = params_from_config(load_research_config(None).get("backtest", {}))
    assert pm_main._fee(a) == CRYPTO_FEES == bt.models.fee          # taker 0.07 p(1-p), makers 0
    assert SimConfig().agent_config == AgentConfig() == bt.models.flow.config()
    assert AgentConfig().sniper_share > 0                             # the snipers are on


def test_vs_backtest_flag_parses():
    assert build_parser().parse_args(["--vs-backtest"]).vs_backtest
    assert not build_parser().parse_args([]).vs_backtest


def _sim(hs: int, pnl: float | None, partial: bool = False, net: float | None = 0.0) -> dict:
    return {"hour": f"h{hs}", "hour_start_ms": hs, "outcome": "Up", "pnl": pnl, "fees": 0.5, "fills": 3,
            "partial": partial, "net_inventory_at_cutoff": net}


def _bt(pnl: float) -> dict:
    return {"pnl": pnl, "fees": 0.4, "fills": 4, "flat": True, "limit_breach": False}


def test_compare_leaves_out_the_partial_hour_and_judges_the_sign_of_the_means():
    sim = [_sim(0, -99.0, partial=True), _sim(1, 10.0), _sim(2, -4.0), _sim(3, 3.0, net=7.0)]
    bt = {0: _bt(50.0), 1: _bt(2.0), 2: _bt(1.0), 3: _bt(-1.0)}
    c = vb.compare(sim, bt)
    assert [r["hour_start_ms"] for r in c["rows"]] == [1, 2, 3]
    assert c["hours"] == 3 and c["sim_pnl_total"] == 9.0 and c["bt_pnl_total"] == 2.0
    assert c["same_sign"] and c["hours_same_sign"] == 1
    assert [r["sim_flat"] for r in c["rows"]] == [True, True, False]
    assert "same sign: yes (1/3 hours agree)" in vb.format_compare(c)
    c2 = vb.compare(sim, {1: _bt(-20.0), 2: _bt(1.0), 3: _bt(1.0)})
    assert not c2["same_sign"] and "same sign: NO" in vb.format_compare(c2)


def test_compare_without_sim_pnl_is_not_a_same_sign():
    c = vb.compare([_sim(1, None)], {1: _bt(5.0)})
    assert c["hours"] == 0 and not c["same_sign"]
