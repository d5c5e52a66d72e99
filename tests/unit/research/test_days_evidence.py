"""Whole-day samples, paired differences and the days sweep (issue 12 evidence tooling).

Real data (the 1m klines of /work/shared/data through the team loader): a few hours of
2025-05-10 and 2025-05-20 (April-May, the tuning span), 1 hour per day to keep it quick.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.data import find_data_dir
from hourmm_core.research import backtest as bt
from hourmm_core.research.backtest_cli import (
    add_paired,
    load_points,
    parse_days,
    sweep_doc_from_log,
    sweep_markdown,
)
from hourmm_core.research.evidence import bootstrap_ci, paired_difference
from hourmm_core.research.sweep import SweepResult, run_sweep

pytestmark = pytest.mark.timeout(600)

D0510 = 1_746_835_200_000   # 2025-05-10 00:00 UTC
D0520 = D0510 + 10 * bt.DAY_MS


def _real_data() -> Path:
    d = find_data_dir()
    if d is None or not any(Path(d).glob("BTCUSDT-1m-2025-05*")):
        pytest.skip("real BTCUSDT klines (../shared/data) not found")
    return Path(d)


# ------------------------------------------------------------------ --days
def test_parse_days_lists_and_ranges():
    assert parse_days("2025-05-10") == [D0510]
    assert parse_days("2025-05-20, 2025-05-10") == [D0510, D0520]
    assert parse_days("2025-05-10..2025-05-20/10") == [D0510, D0520]
    # end inclusive, step in days, a step that overshoots stops before the end
    assert parse_days("2025-05-10..2025-05-19/3") == [D0510 + k * bt.DAY_MS for k in (0, 3, 6, 9)]
    assert len(parse_days("2025-06-01..2025-06-30")) == 30
    assert parse_days("2025-04-20..2025-05-31/16") == [parse_days(x)[0] for x in ("2025-04-20", "2025-05-06",
                                                                                   "2025-05-22")]


@pytest.mark.parametrize("spec", ["2025-05-32", "2025-05-10T05:00", "2025-05-20..2025-05-10",
                                  "2025-05-10..2025-05-20/0", "2025-05-10,2025-05-10", ",", "May 10"])
def test_parse_days_refuses_bad_specs(spec):
    with pytest.raises(ValueError):
        parse_days(spec)


def test_run_backtest_days_refuses_bad_days():
    with pytest.raises(ValueError, match="00:00 UTC"):
        bt.run_backtest_days([D0510 + HOUR_MS])
    with pytest.raises(ValueError, match="twice"):
        bt.run_backtest_days([D0510, D0510])
    with pytest.raises(ValueError, match="no days"):
        bt.run_backtest_days([])
    with pytest.raises(ValueError, match="hours_per_day"):
        bt.run_backtest_days([D0510], hours_per_day=25)


# ------------------------------------------------------------------ paired difference
def test_paired_difference_cancels_the_shared_hour_noise():
    rng = np.random.default_rng(3)
    hours = [D0510 + i * HOUR_MS for i in range(60)]
    common = rng.normal(0.0, 30.0, size=60)                     # the hour's path: shared by both runs
    base = {h: float(c) for h, c in zip(hours, common)}
    x = {h: float(c + 2.0 + rng.normal(0.0, 1.0)) for h, c in zip(hours, common)}
    pd = paired_difference(x, base)
    d = np.array([x[h] - base[h] for h in hours])
    assert pd["hours"] == 60 and pd["unpaired"] == 0
    assert pd["mean"] == pytest.approx(d.mean())
    assert pd["ci95"][0] < pd["mean"] < pd["ci95"][1]
    assert pd["ci95"][0] > 0.0, "a +2/h edge with sd 1 must be resolved by 60 paired hours"
    # the unpaired CIs of the two means overlap widely: pairing is what ranks them
    lo_x, _ = bootstrap_ci(list(x.values()))
    _, hi_b = bootstrap_ci(list(base.values()))
    assert lo_x < hi_b
    assert pd["share_hours_better"] == pytest.approx(float((d > 0).mean()))


def test_paired_difference_uses_only_common_hours():
    base = {1: 0.0, 2: 0.0, 3: 5.0}
    x = {2: 1.0, 3: 8.0, 4: 100.0}                              # hour 4 failed in base, hour 1 in x
    pd = paired_difference(x, base)
    assert pd["hours"] == 2 and pd["unpaired"] == 2
    assert pd["mean"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no hour in common"):
        paired_difference({1: 1.0}, {2: 1.0})


def test_add_paired_columns_and_union_of_point_keys():
    def task(k: float, name: str = "", skew: float = 0.0) -> dict:
        return {"hour_ms": (1, 2, 3), "hour_pnl": (k, 2 * k + skew, 0.0)}

    sw = run_sweep(task, [{"name": "a", "k": 1.0}, {"name": "b", "k": 2.0, "skew": 1.0}], max_workers=1)
    assert sw.params == ["name", "k", "skew"]
    pd = add_paired(sw)
    assert sw.rows[0]["d_vs_first"] == 0.0
    assert sw.rows[1]["d_vs_first"] == pytest.approx(((2 - 1) + (5 - 2) + 0) / 3)
    assert pd["b"]["hours"] == 3 and {"d_vs_first", "d_lo", "d_hi"} <= set(sw.metrics)
    with pytest.raises(ValueError, match="days sweep"):
        add_paired(SweepResult(["k"], ["x"], [{"k": 1, "x": 2.0}], "inline"))


def test_load_points_needs_unique_names(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("days: 2025-05-10\npoints:\n  - {name: a, skew: 0.0}\n  - {skew: 0.01}\n")
    pts, days = load_points(str(f))
    assert days == "2025-05-10" and [p["name"] for p in pts] == ["a", "1"]
    f.write_text("points:\n  - {name: a}\n  - {name: a, skew: 0.01}\n")
    with pytest.raises(ValueError, match="unique"):
        load_points(str(f))
    f.write_text("points: []\n")
    with pytest.raises(ValueError, match="non-empty"):
        load_points(str(f))


# ------------------------------------------------------------------ real hours
@pytest.fixture(scope="module")
def day_runs():
    d = _real_data()
    p = bt.BacktestParams().replace(merge_min=0.0)
    both = bt.run_backtest_days([D0520, D0510], p, data_dir=str(d), hours_per_day=1)
    alone = bt.run_backtest_days([D0520], p, data_dir=str(d), hours_per_day=1)
    return d, p, both, alone


def test_days_are_independent_so_runs_pair_by_hour(day_runs):
    _, p, both, alone = day_runs
    assert both.source == "binance-klines+bridge" and not both.errors
    assert [h.hour_start_ms for h in both.hours] == [D0510, D0520]
    assert sum(h.n_fills for h in both.hours) > 0, "no fill in two real hours: the venue is not trading"
    a, b = alone.hours[0], both.hours[1]
    # the day's hours do not depend on which other days were sampled
    assert (a.pnl, a.fees, a.volume, a.n_fills) == (b.pnl, b.fees, b.volume, b.n_fills)
    assert both.params["merge_min"] == 0.0


def test_days_equal_the_span_loader_with_a_day_of_warmup(day_runs):
    d, p, both, _ = day_runs
    span = bt.run_backtest_span(1, start_ms=D0510, params=p, data_dir=str(d), chunk_hours=24,
                                warmup_ms=bt.DAY_MS)
    h, g = span.hours[0], both.hours[0]
    assert (h.pnl, h.fees, h.n_fills) == (g.pnl, g.fees, g.n_fills)


def test_cli_days_sweep_pairs_points_and_keeps_config_knobs(tmp_path, day_runs, capsys):
    """A point that does not name a knob runs with the config's value, not the dataclass default
    (the baseline 'ours' of a variants table must be the shipped strategy)."""
    from hourmm_core.research import main_backtest

    d, _, both, _ = day_runs
    cfg = tmp_path / "r.yaml"
    cfg.write_text("backtest:\n  skew: 0.05\n  merge_min: 0\n")
    pts = tmp_path / "p.yaml"
    pts.write_text("days: 2025-05-10\npoints:\n  - {name: ours}\n  - {name: same, skew: 0.05}\n"
                   "  - {name: no skew, skew: 0.0}\n")
    rc = main_backtest([str(d), "--sweep", "--points", str(pts), "--config", str(cfg), "--day-hours", "1",
                        "--workers", "1", "--out", str(tmp_path), "--no-plots"])
    assert rc == 0
    doc = json.loads((tmp_path / "sweep.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    assert doc["days"] == ["2025-05-10"] and doc["baseline"] == "ours" and doc["base"]["skew"] == 0.05
    assert rows["ours"]["hour_pnl"] == rows["same"]["hour_pnl"]
    assert rows["ours"]["d_vs_first"] == 0.0 and rows["same"]["d_vs_first"] == 0.0
    assert rows["no skew"]["hour_ms"] == [D0510]
    assert rows["no skew"]["d_vs_first"] == pytest.approx(rows["no skew"]["hour_pnl"][0] - rows["ours"]["hour_pnl"][0])
    assert rows["ours"]["pnl_per_hour"] == pytest.approx(rows["ours"]["hour_pnl"][0])
    assert doc["paired_vs_first"]["no skew"]["hours"] == 1
    csv = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(csv) == 4 and "hour_pnl" not in csv[0] and "d_vs_first" in csv[0]
    # every point was saved as it finished; --resume runs none of them again and gives the same table
    assert len((tmp_path / "points.jsonl").read_text().splitlines()) == 3
    rc = main_backtest([str(d), "--sweep", "--points", str(pts), "--config", str(cfg), "--day-hours", "1",
                        "--workers", "1", "--out", str(tmp_path), "--no-plots", "--resume"])
    assert rc == 0 and "resume: 3 of 3 points" in capsys.readouterr().out
    assert len((tmp_path / "points.jsonl").read_text().splitlines()) == 3
    doc2 = json.loads((tmp_path / "sweep.json").read_text())
    assert doc2["rows"] == doc["rows"] and doc2["paired_vs_first"] == doc["paired_vs_first"]
    # the markdown table is the tool's rendering of sweep.json: one row per point, paired column
    capsys.readouterr()
    rc = main_backtest(["--table", str(tmp_path / "sweep.json")])
    assert rc == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 5 and table[0].startswith("| run | hours | PnL/hour")
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert table[2].startswith("| ours | 1 |") and "(baseline)" in table[2]
    assert f"{rows['no skew']['d_vs_first']:+.2f} [" in table[4]
    # the --days single run writes the same hour as the library call with the same knobs
    out = tmp_path / "one"
    rc = main_backtest([str(d), "--days", "2025-05-10", "--day-hours", "1", "--config", str(cfg),
                        "--out", str(out), "--no-plots"])
    assert rc == 0
    js = json.loads((out / "result.json").read_text())
    assert js["run"]["days"] == ["2025-05-10"] and js["hours"][0]["pnl"] == pytest.approx(rows["ours"]["hour_pnl"][0])
    assert both.hours[0].hour_start_ms == js["hours"][0]["hour_start_ms"]


def test_sweep_markdown_rows_and_missing_values():
    doc = {"rows": [{"name": "ours", "hours": 48, "pnl_per_hour": 6.5, "ci_lo": 1.25, "ci_hi": 11.0, "fees": 12.0,
                     "maker_volume": 20000.0, "taker_volume": 1500.0, "mk30_fair": 0.0158, "mk30_venue": -0.0057,
                     "mk_settle": 0.016, "sniper_share": 0.27, "max_inv": 105.0, "worst_hour": -97.4, "flat": True,
                     "breaches": 0, "d_vs_first": 0.0, "d_lo": 0.0, "d_hi": 0.0},
                    {"name": "no pull", "hours": 48, "pnl_per_hour": 4.0, "ci_lo": -1.0, "ci_hi": 9.0,
                     "fees": None, "flat": False, "breaches": 2, "d_vs_first": -2.5, "d_lo": -4.0, "d_hi": -1.0}]}
    t = sweep_markdown(doc).splitlines()
    assert len(t) == 4
    assert t[2] == ("| ours | 48 | +6.50 | [+1.25, +11.00] | (baseline) | 12.00 | 20000 / 1500 | +0.0158 | -0.0057 "
                    "| +0.0160 | 0.27 | 105 | -97.40 | yes | 0 |")
    assert "| -2.50 [-4.00, -1.00] | n/a |" in t[3] and t[3].endswith("| no | 2 |")
    with pytest.raises(ValueError):
        sweep_markdown({"rows": []})


def test_points_log_of_a_cut_sweep_gives_the_table(tmp_path, capsys):
    from hourmm_core.research import main_backtest

    run = {"days": [D0510], "hours_per_day": 24, "base": {"skew": 0.03}, "data": None}

    def rec(i, name, pnl):
        return json.dumps({"run": run, "index": i, "point": {"name": name},
                           "out": {"hours": 2, "pnl_per_hour": sum(pnl) / 2, "hour_ms": [1, 2], "hour_pnl": pnl}})

    log = tmp_path / "points.jsonl"
    log.write_text(rec(2, "wide", [3.0, 1.0]) + "\n" + rec(0, "ours", [1.0, 2.0]) + "\n")   # completion order
    doc = sweep_doc_from_log(log)
    assert [r["name"] for r in doc["rows"]] == ["ours", "wide"] and doc["baseline"] == "ours"
    assert doc["rows"][1]["d_vs_first"] == pytest.approx(((3 - 1) + (1 - 2)) / 2)
    assert doc["days"] == ["2025-05-10"] and doc["points_finished"] == 2
    assert main_backtest(["--table", str(log), "--out", str(tmp_path / "t")]) == 0
    assert "| wide | 2 | +2.00 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "t" / "sweep.json").read_text())["rows"][1]["name"] == "wide"
    other = {**run, "days": [D0520]}
    log.write_text(rec(0, "ours", [1.0, 2.0]) + "\n" + json.dumps({"run": other, "index": 1, "point": {"name": "x"},
                                                                   "out": {"hour_ms": [1], "hour_pnl": [0.0]}}) + "\n")
    with pytest.raises(ValueError, match="mixes"):
        sweep_doc_from_log(log)
    log.write_text("")
    with pytest.raises(ValueError, match="no finished point"):
        sweep_doc_from_log(log)
