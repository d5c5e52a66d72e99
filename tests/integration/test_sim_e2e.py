"""End-to-end proof: ``hourmm sim`` for real (4 processes on loopback), one hour at 60x.

With ../shared/data present (CI and every checkout here) the run replays real hours: the
default window is 2025-05-22 13:xx..14:00 UTC of the real 1m klines (ticks inside each
minute from the seeded bridge); the test checks that every process saw that data and that
the venue settled each hour exactly as the real Binance 1h candle (close >= open).

Runs in CI (``.ci/run`` runs the whole suite); takes about 1.5-2 minutes of wall time.
Skips only when a component it needs has not been built into the repository at all.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT as ROOT

NEEDED = [ROOT / "runners" / "binance_pricer.py", ROOT / "runners" / "polymarket_trader.py",
          ROOT / "hourmm_core" / "sim" / "binance_replay.py",
          ROOT / "hourmm_core" / "sim" / "polymarket" / "__main__.py"]
missing = [str(p.relative_to(ROOT)) for p in NEEDED if not p.exists()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hourmm_sim_one_hour_end_to_end(tmp_path):
    assert not missing, f"components missing from the repository: {missing}"
    # started outside the repository with a relative --out, as a user would: every child must
    # still write into that folder (the journal once landed in the repo's own sim_out/)
    out = tmp_path / "sim_out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "HOURMM_SIM_CLOCK"))}
    proc = subprocess.Popen([sys.executable, "-m", "hourmm_core.cli", "sim", "--hours", "1", "--speed", "60",
                             "--out", "sim_out", "--status-every", "5"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the orchestrator stops its children and writes the summary
        stdout, stderr = proc.communicate(timeout=45)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    tail = (r.stdout[-6000:] + "\n--- stderr ---\n" + r.stderr[-4000:])
    assert (out / "summary.json").exists(), tail
    summary = json.loads((out / "summary.json").read_text())
    assert r.returncode == 0, tail
    assert summary["ok"] is True and summary["failures"] == []
    for key in ("fills", "volume", "fees", "pnl_total", "hours", "quote_uptime", "brier", "halts",
                "orphaned_orders", "data_label", "journal"):
        assert key in summary, key
    assert summary["fills"] and summary["fills"] >= 1, tail
    # the hour the run starts in (its last minutes, partial) + the one full hour
    assert [h["partial"] for h in summary["hours"]] == [True, False]
    for hour in summary["hours"]:
        assert hour["net_inventory_at_cutoff"] is not None and abs(hour["net_inventory_at_cutoff"]) <= 5.0
    assert summary["orphaned_orders"] == 0
    assert summary["brier"]["n"] > 0 and 0.0 <= summary["brier"]["brier"] <= 1.0
    assert summary["journal"]["exists"] and summary["journal"]["events"] > 0
    for f in ("report.html", "fair_vs_mid.png", "inventory.png", "pnl.png", "journal.db"):
        assert (out / f).stat().st_size > 0, f
    for child in ("binance_replay", "polymarket_sim", "binance_pricer", "polymarket_trader"):
        assert (out / "logs" / f"{child}.log").exists(), child
    # the live status lines a person follows, and a summary naming the data source honestly
    assert "hour 1/1" in r.stdout and "HourMM sim summary: PASS" in r.stdout
    assert ("SYNTHETIC" in r.stdout) == summary["data"]["synthetic"]
    from hourmm_core import data as hdata
    if hdata.find_data_dir() is not None:
        # real data everywhere: the klines+bridge source, named with its span in the summary
        assert summary["data"]["source"] == "binance-klines+bridge", summary["data"]
        assert summary["data_label"].startswith("real binance-klines+bridge 2025-05-22T13:00:00Z"), summary["data_label"]
        assert "data:          real binance-klines+bridge" in r.stdout
        # the venue's settlement (and the summary's outcome) is the real 1h kline of each hour
        kh = hdata.kline_history(None, "BTCUSDT", hdata.DEFAULT_SIM_HOUR_MS - 3_600_000,
                                 hdata.DEFAULT_SIM_HOUR_MS + 3_600_000)
        state = json.loads((out / "sim_state.json").read_text())
        resolved = {m["start_ms"]: m["resolution"] for m in state["markets"] if m.get("resolution")}
        for hour in summary["hours"]:
            k = kh.window(hour["hour_start_ms"], hour["hour_start_ms"] + 3_600_000)
            assert len(k["open_ms"]) == 60
            real_open, real_close = float(k["open"][0]), float(k["close"][-1])
            assert (hour["open"], hour["close"]) == (real_open, real_close), hour
            assert hour["outcome"] == ("Up" if real_close >= real_open else "Down")
            if hour["partial"] and hour["hour_start_ms"] not in resolved:
                continue   # the venue may not list the hour the run starts in
            res = resolved[hour["hour_start_ms"]]
            assert res["resolved"] and (res["open"], res["close"]) == (real_open, real_close), res
            assert res["up_wins"] == (real_close >= real_open)
