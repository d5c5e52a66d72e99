"""Strategy backtest: the trader's DecisionCore against the simulator engine + agents, in-process."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import taker_fee
from hourmm_core.research import backtest as bt
from hourmm_core.research.backtest import SELL
from hourmm_core.research.models import ConstantLatency, SampledLatency

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def ticks():
    from hourmm_core import data

    # 4 synthetic hours: the first is the vol warm-up, two are traded (max_hours=2)
    return data.synthetic_ticks(hours=4, seed=11)


@pytest.fixture(scope="module")
def base(ticks):
    p = bt.BacktestParams(decision_ms=2000, seed=5)
    return p, bt.run_backtest(ticks, p, keep_paths=True, max_hours=2)


def test_trades_settles_and_agrees_with_the_engine(base):
    p, res = base
    assert res.source == "synthetic" and len(res.hours) == 2
    assert "trader DecisionCore" in res.notes[0] and "live execution rules" in res.notes[0]
    assert sum(h.n_fills for h in res.hours) > 0, "the ladder never traded against the agents"
    for h, path in zip(res.hours, res.paths):
        assert h.pnl == pytest.approx(h.cash_flow + h.settlement, abs=1e-9)
        assert h.settlement == pytest.approx(h.up_at_close if h.up_won else h.down_at_close)
        assert h.up_won == (h.close_price >= h.open_price)
        assert "ledger_mismatch" not in path["counters"]
        assert path["engine_pnl"] == pytest.approx(h.pnl, abs=1e-9)   # the engine charged the ledger's fees
        fills = path["fills"]
        assert len(fills) == h.n_fills
        end = h.hour_start_ms + HOUR_MS
        for ts, tok, side, px, size, fee, maker in fills:
            assert h.hour_start_ms <= ts < end - p.schedule.hard_cutoff_ms, "no trading in HARD_CUTOFF"
            assert 0 < px < 1 and size > 0
            if maker:
                assert fee == 0.0  # makers never pay
            else:
                assert fee == pytest.approx(taker_fee(px, size, p.fee), abs=1e-12)
        # only reducing sells after FLATTEN starts
        for ts, tok, side, *_ in fills:
            if ts > end - p.schedule.t_flatten_ms + p.decision_ms:
                assert side == SELL
        # inventory path sampled every decision
        assert len(path["ts_ms"]) == HOUR_MS // p.decision_ms
        assert max(path["pos_up"]) <= p.limits.max_position_size and max(path["pos_down"]) <= p.limits.max_position_size
        if h.n_fills:
            assert math.isfinite(h.adverse_5s) and math.isfinite(h.markout_30s)


def test_deterministic_and_parallel_equals_serial(ticks, base):
    p, res = base
    again = bt.run_backtest(ticks, p, workers=2, max_hours=2)
    assert [h.row() for h in again.hours] == [h.row() for h in res.hours]


def test_position_limit_binds(ticks):
    p = bt.BacktestParams(decision_ms=2000, seed=5).replace(max_position_size=10.0, quote_size=5.0)
    res = bt.run_backtest(ticks, p, keep_paths=True, max_hours=1)
    path = res.paths[0]
    assert max(path["pos_up"]) <= 10.0 + 1e-9 and max(path["pos_down"]) <= 10.0 + 1e-9
    assert res.hours[0].max_abs_net_up <= 10.0 + 1e-9


def test_wider_quotes_trade_less(ticks, base):
    p, res = base
    wide = bt.run_backtest(ticks, p.replace(half_spread=0.2), max_hours=2)
    assert wide.totals()["volume"] < res.totals()["volume"]


def test_format_and_json(base):
    _, res = base
    txt = bt.format_backtest(res)
    assert "SYNTHETIC" in txt and "totals:" in txt and txt.count("\n") >= 4
    js = bt.result_json(res)
    assert js["source"] == "synthetic" and len(js["hours"]) == 2 and "pnl" in js["totals"]


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    def norm(r: dict) -> dict:
        return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}

    return [norm(r) for r in a] == [norm(r) for r in b]


def test_backtest_sweep_local_equals_dask(ticks):
    distributed = pytest.importorskip("distributed")
    from dataclasses import asdict

    from hourmm_core.sim.polymarket.agents import AgentConfig

    grid = {"half_spread": [0.02, 0.1], "skew": [0.0, 0.04]}
    # the sweep plumbing, not the venue: the light pre-calibration flow keeps 8 backtests quick
    legacy = tuple(sorted(asdict(AgentConfig.legacy()).items()))
    fixed = {"decision_ms": 5000, "max_hours": 2, "seed": 5, "agents": legacy}
    local = bt.sweep_backtest(ticks, grid, max_workers=2, **fixed)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                  host="127.0.0.1", scheduler_port=0, dashboard_address=None) as cluster:
        remote = bt.sweep_backtest(ticks, grid, scheduler=cluster.scheduler_address, **fixed)
    assert not local.errors and not remote.errors
    assert remote.backend.startswith("dask:") and local.backend == "local-process"
    assert local.params == ["half_spread", "skew"] and "pnl" in local.metrics and "adverse_30s" in local.metrics
    assert len(local.rows) == 4 and _same_rows(local.rows, remote.rows)
    assert all(r["hours"] == 2 for r in local.rows)
    # a 0.10 half-spread trades less than a 0.02 one, same skew
    assert local.rows[2]["volume"] <= local.rows[0]["volume"]
    bad = bt.sweep_backtest(ticks, {"half_spread": [-1.0]}, max_workers=1, **fixed)
    assert 0 in bad.errors and "half_spread" in bad.errors[0]


def test_cli_backtest_writes_report_and_rejects_bad_args(tmp_path, monkeypatch, capsys):
    import json

    from hourmm_core.research import main_backtest

    empty = tmp_path / "no-dumps"
    empty.mkdir()
    monkeypatch.setenv("HOURMM_DATA_DIR", str(empty))
    out = tmp_path / "bt"
    rc = main_backtest(["--synthetic-hours", "3", "--hours", "1", "--set", "decision_ms=10000",
                        "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC" in text and "totals:" in text
    js = json.loads((out / "result.json").read_text())
    assert len(js["hours"]) == 1 and js["params"]["decision_ms"] == 10000
    assert (out / "index.html").exists() and (out / "backtest.png").exists()
    assert main_backtest(["--synthetic-hours", "3", "--set", "no_such_knob=1", "--out", str(out)]) == 2
    assert main_backtest(["--synthetic-hours", "3", "--set", "decision_ms", "--out", str(out)]) == 2
    assert main_backtest(["--synthetic-hours", "3", "--workers", "0", "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_sweep_writes_table(tmp_path, monkeypatch, capsys):
    from hourmm_core.research import main_backtest

    empty = tmp_path / "no-dumps"
    empty.mkdir()
    monkeypatch.setenv("HOURMM_DATA_DIR", str(empty))
    cfg = tmp_path / "r.yaml"
    cfg.write_text("backtest:\n  decision_ms: 10000\nsweep:\n  grid:\n    half_spread: [0.02, 0.05]\n"
                   "    skew: [0.0]\n    quote_size: [5.0]\n    halflife_s: [30]\n")
    rc = main_backtest(["--synthetic-hours", "3", "--hours", "1", "--sweep", "--config", str(cfg),
                        "--out", str(tmp_path), "--workers", "1"])
    assert rc == 0
    assert "points: 2" in capsys.readouterr().out
    lines = (tmp_path / "sweep.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("half_spread,skew,quote_size,halflife_s")


def test_fair_unc_path_is_container_a_model(ticks, monkeypatch):
    """The backtest prices with container A's model (configs/pricer.yaml + PRICER_* env;
    tests/unit/research/test_fair_unify.py proves equality with SnapshotBuilder on real data); the
    backtest's own params/sigma no longer enter the fair value."""
    from hourmm_core.research import calibration as cal

    ts, px, _ = cal.as_arrays(ticks)
    p = bt.BacktestParams()
    sig = cal.sigma_path(ts, px, (p.halflife_s, p.halflife_alt_s), p.sample_ms)
    hs, first, _ = cal.complete_hours(ts)
    grid, fair, sg, unc = bt.fair_unc_path(ts, px, int(hs[1]), int(first[1]), p, sig, 60_000)
    ok = np.isfinite(fair)
    assert grid.size == 60 and ok.sum() >= 59 and np.all((fair[ok] > 0) & (fair[ok] < 1))
    assert np.all(unc[ok] >= 0) and unc[ok].max() > 0 and np.array_equal(ok, np.isfinite(unc))
    _, fair1, _, unc1 = bt.fair_unc_path(ts, px, int(hs[1]), int(first[1]), p, sig[:, 0], 60_000)
    assert np.array_equal(fair1[ok], fair[ok]) and np.array_equal(unc1[ok], unc[ok])
    # PRICER_MODEL=ewma (the env container A reads) selects the old digital here too:
    # fair = digital at the first half-life's sigma, unc = |fair - digital at the last one's|
    # (VOL_HALFLIVES_S 30,120,600: first = the backtest's halflife_s, last = its halflife_alt_s)
    monkeypatch.setenv("PRICER_MODEL", "ewma")
    _, fe, sge, ue = bt.fair_unc_path(ts, px, int(hs[1]), int(first[1]), p, sig, 60_000)
    from hourmm_core import quant

    idx = np.searchsorted(ts, grid, side="left") - 1          # the last tick strictly before each instant
    S, K, tau = px[idx], np.full(grid.shape, px[int(first[1])]), (int(hs[1]) + HOUR_MS - grid) / 1000.0
    want = np.asarray(quant.fair_prob_batch(S, K, tau, np.ascontiguousarray(sig[idx, 0]), 0.0, 0.001))
    alt = np.asarray(quant.fair_prob_batch(S, K, tau, np.ascontiguousarray(sig[idx, 1]), 0.0, 0.001))
    assert np.array_equal(np.isfinite(fe), ok) and not np.allclose(fe[ok], fair[ok])
    np.testing.assert_allclose(fe[ok], want[ok], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ue[ok], np.abs(want - alt)[ok], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sge, sig[idx, 0], rtol=0, atol=1e-15)


def test_uncertainty_widens_the_ladder(ticks, base):
    p, res = base
    wide = bt.run_backtest(ticks, p.replace(unc_mult=20.0), max_hours=2)
    assert wide.totals()["volume"] < res.totals()["volume"]


def test_a_failing_hour_is_reported_not_fatal(ticks, monkeypatch, caplog):
    from hourmm_core.research import engine_backtest

    real = engine_backtest.run_hour

    def breaks_on_odd_hours(params, ts_ms, price, hour_start, first, last, sigma):
        if (hour_start // HOUR_MS) % 2:
            raise ValueError("broken data in this hour")
        return real(params, ts_ms, price, hour_start, first, last, sigma)

    monkeypatch.setattr(engine_backtest, "run_hour", breaks_on_odd_hours)
    res = bt.run_backtest(ticks, bt.BacktestParams(decision_ms=10000), max_hours=2)
    assert len(res.hours) == 1 and len(res.errors) == 1
    (h, msg), = res.errors.items()
    assert (h // HOUR_MS) % 2 == 1 and "broken data" in msg
    assert res.totals()["failed_hours"] == 1
    assert "FAILED hour" in bt.format_backtest(res) and bt.result_json(res)["errors"]
    assert any("failed" in r.message for r in caplog.records)


def test_params_compose_the_traders_config_objects():
    p = bt.BacktestParams().replace(half_spread=0.03, max_open_orders=6, t_flatten_ms=200_000, decision_ms=500,
                                    fee={"rate": 0.05}, agents={"informed_per_min": 2.0}, latency=250)
    assert p.strategy.half_spread == 0.03 and p.limits.max_open_orders == 6
    assert p.schedule.t_flatten_ms == 200_000 and p.decision_ms == 500
    assert p.fee.rate == 0.05 and p.fee.exponent == 1
    assert dict(p.models.flow.overrides) == {"informed_per_min": 2.0}
    assert (p.models.latency.entry, p.models.latency.response) == (250, 250)
    flat = p.flat()
    assert flat["half_spread"] == 0.03 and flat["max_open_orders"] == 6 and flat["fee"]["rate"] == 0.05
    with pytest.raises(ValueError, match="no_such_knob"):
        p.replace(no_such_knob=1)
    with pytest.raises(ValueError):
        p.replace(t_flatten_ms=700_000)        # the Schedule validates its own fields
    with pytest.raises(ValueError):
        p.replace(agents={"not_an_agent_field": 1})


# The pre-refactor backtest loop's figures on this data (main at 9fc7475: trader DecisionCore vs engine +
# agents incl. snipers, order_latency_ms=0): (pnl, fees, volume, fills, orders, cancels) per hour.
# ConstantLatency(0, 0) must reproduce them to the cent. If you changed the strategy, the agents or the
# engine on purpose, re-pin them from
# `bt.run_backtest(ticks, bt.BacktestParams(decision_ms=2000, seed=5).replace(latency=0), max_hours=2)`.
# Re-pinned (session 4) when the backtest's fair value became container A's exactly (research/fair.py from
# PricerConfig): fair_up null until the hour's first trade and S = the last trade strictly before the
# instant. PnL, fees, volume and fills are unchanged; orders/cancels were 2283/2162 and 2194/2169.
# Re-pinned (session 6) when the agents' true vol became each hour's own realized vol
# (PricePath.sigma_for) instead of the whole 4-hour array's: was
# [(-90.747, 0.2772, 1013.96, 137, 2279, 2158), (13.8885, 0.1974, 232.51, 33, 2195, 2170)].
PINNED_ZERO_LATENCY = [(-93.4068, 0.3431, 550.2, 75, 2481, 2422), (-14.0053, 0.0203, 200.7, 41, 2051, 2015)]


def test_zero_latency_reproduces_the_pre_refactor_loop(ticks, base, monkeypatch):
    p, _ = base
    monkeypatch.setenv("PRICER_MODEL", "ewma")     # the pre-refactor loop priced with the EWMA digital
    p0 = p.replace(latency=0)
    assert p0.models.latency == ConstantLatency(0, 0)
    res = bt.run_backtest(ticks, p0, max_hours=2)
    got = [(round(h.pnl, 4), round(h.fees, 4), round(h.volume, 2), h.n_fills, h.n_orders, h.n_cancels)
           for h in res.hours]
    assert got == PINNED_ZERO_LATENCY


def test_latency_puts_orders_in_flight_and_still_reconciles(ticks, base):
    p, res = base
    assert p.models.latency == ConstantLatency(150, 0)          # the default: order entry 150 ms
    slow = bt.run_backtest(ticks, p.replace(latency={"entry": 300, "response": 150}), keep_paths=True, max_hours=2)
    assert not slow.errors and sum(h.n_fills for h in slow.hours) > 0
    for h, path in zip(slow.hours, slow.paths):
        assert "ledger_mismatch" not in path["counters"]
        assert path["engine_pnl"] == pytest.approx(h.pnl, abs=1e-9)
    assert [h.row() for h in slow.hours] != [h.row() for h in res.hours]
    sampled = bt.run_backtest(ticks, p.replace(latency=SampledLatency((150,), (0,))), max_hours=2)
    assert [h.row() for h in sampled.hours] == [h.row() for h in res.hours]
    with pytest.raises(ValueError):
        ConstantLatency(-1, 0)
