"""The sim's judging rules (hourmm_core.sim.report) on hand-made observations, no processes."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from hourmm_core.sim.report import (
    RunData,
    account_view,
    brier,
    extract_sample,
    finalize,
    format_status,
    format_summary,
    summarize,
)

H0 = 1_769_094_000_000  # 2026-01-22T15:00:00Z
HOUR = 3_600_000
WALLET = "0xAbC0000000000000000000000000000000000001"


def _sample(t, fair=0.6, yes=0.0, no=0.0, oo=2, mode="NORMAL", phase="ACTIVE", hs=None):
    snap = {"fair_up": fair, "hour_start_ms": hs if hs is not None else t - t % HOUR, "mid": 50000.0}
    status = {"session_state": phase, "risk_mode": mode, "positions": {"yes_tokens": yes, "no_tokens": no},
              "open_orders": oo, "pnl": {"total": 1.5}}
    return extract_sample(t, snap, status, None, WALLET)


def _run(tmp_path: Path, samples, failures=(), state=None, children=None, up=True) -> RunData:
    return RunData(out_dir=tmp_path, hours=1, speed=60, seed=7, first_hour_ms=H0, end_sim_ms=H0 + HOUR + 45_000,
                   sim_start_ms=H0 - 480_000, wall_s=65.0,
                   data={"source": "synthetic", "synthetic": True,
                         "hours": [{"hour_start_ms": H0, "hour": "2026-01-22T15:00:00Z", "open": 1.0,
                                    "close": 2.0 if up else 0.5, "up": up}]},
                   samples=list(samples), status_log=[], sim_state=state if state is not None else {"accounts": {}},
                   children=children or {}, failures=list(failures), wallet=WALLET)


def _clean_samples():
    out = [_sample(H0 + k * 60_000) for k in range(58)]
    out += [_sample(H0 + HOUR - 50_000, oo=0, phase="HARD_CUTOFF")]
    return out


def test_extract_sample_tolerates_garbage():
    s = extract_sample(5, "not json", None, [1, 2], WALLET)
    assert s["fair_up"] is None and s["yes"] is None and s["open_orders"] is None and s["sim_ms"] == 5
    s = extract_sample(5, {"fair_up": "nan"}, {"open_orders": [{"id": 1}, {"id": 2}]}, None)
    assert s["fair_up"] is None and s["open_orders"] == 2


def test_brier_against_outcome():
    b = brier([{"fair_up": 0.8, "hour_start_ms": H0}, {"fair_up": 0.4, "hour_start_ms": H0},
               {"fair_up": 0.9, "hour_start_ms": H0 + HOUR}],
              [{"hour_start_ms": H0, "up": True}])
    assert b["n"] == 2 and b["brier"] == pytest.approx((0.04 + 0.36) / 2)


def test_account_view_finds_wallet_case_insensitively():
    st = {"accounts": {WALLET.lower(): {"fills": 3}}}
    assert account_view(st, WALLET) == {"fills": 3}
    st = {"accounts": [{"address": WALLET.upper(), "fills": 4}]}
    assert account_view(st, WALLET)["fills"] == 4
    assert account_view(None, WALLET) == {}


def test_clean_run_passes_and_writes_files(tmp_path):
    state = {"accounts": {WALLET: {"fills": 7, "volume": 40.0, "fees": 0.1, "pnl": 2.5, "open_orders": [],
                                   "hours": [{"hour_start_ms": H0, "fills": 7, "volume": 40.0, "fees": 0.1,
                                              "pnl": 2.5, "up_tokens": 0.0, "down_tokens": 0.0}]}}}
    summary = finalize(_run(tmp_path, _clean_samples(), state=state))
    assert summary["ok"], summary["failures"]
    assert summary["fills"] == 7 and summary["pnl_total"] == 2.5
    assert summary["hours"][0]["inventory_source"] == "venue"
    assert summary["brier"]["brier"] == pytest.approx(0.16)
    assert 0.95 < summary["quote_uptime"] <= 1.0
    for f in ("summary.json", "report.html", "fair_vs_mid.png", "inventory.png", "pnl.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    assert json.loads((tmp_path / "summary.json").read_text())["data_label"].startswith("SYNTHETIC")
    page = (tmp_path / "report.html").read_text()
    assert "PASS" in page and "<table>" in page and 'src="fair_vs_mid.png"' in page and "SYNTHETIC" in page
    assert "PASS" in format_summary(summary)


@pytest.mark.parametrize("case, expect", [
    ("halt", "HALT"), ("inventory", "inventory left after the cutoff"), ("orphans", "orphaned open order"),
    ("error", "ERROR/Traceback"), ("crash", "exited with code"), ("limit", "MAX_OPEN_ORDERS"),
])
def test_each_failure_rule_fails_the_run(tmp_path, case, expect):
    samples = _clean_samples()
    state = {"accounts": {}}
    children, failures = {}, []
    if case == "halt":
        samples[10] = _sample(H0 + 600_000, mode="HALT")
    elif case == "inventory":
        samples[-1] = _sample(H0 + HOUR - 30_000, yes=20.0, oo=0, phase="HARD_CUTOFF")
    elif case == "orphans":
        state = {"accounts": {WALLET: {"open_orders": [{"id": "a"}]}}}
    elif case == "error":
        children = {"polymarket_trader": {"errors": ["x ERROR | Cancel-all failed"]}}
    elif case == "crash":
        failures = ["binance_pricer exited with code 1 at sim 2026-01-22T15:10:00Z"]
    elif case == "limit":
        samples[5] = _sample(H0 + 300_000, oo=9)
    summary = summarize(_run(tmp_path, samples, failures=failures, state=state, children=children))
    assert not summary["ok"]
    assert any(expect in f for f in summary["failures"]), summary["failures"]


def test_no_fair_probability_fails(tmp_path):
    samples = [_sample(H0 + k * 60_000, fair=None) for k in range(30)]
    summary = summarize(_run(tmp_path, samples))
    assert any("no fair probability" in f for f in summary["failures"])


def test_journal_stats_read_events_table(tmp_path):
    db = tmp_path / "journal.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts_ms INTEGER, type TEXT, data TEXT)")
    con.execute("CREATE TABLE snapshots (id INTEGER PRIMARY KEY, ts_ms INTEGER, data TEXT)")
    con.executemany("INSERT INTO events (ts_ms, type, data) VALUES (?, ?, '{}')", [(1, "fill"), (2, "fill"), (3, "mode")])
    con.commit()
    con.close()
    run = _run(tmp_path, _clean_samples())
    run.journal_path = db
    j = summarize(run)["journal"]
    assert j["events"] == 3 and j["by_type"] == {"fill": 2, "mode": 1} and j["snapshots"] == 0


def test_status_line_shows_progress():
    line = format_status(_sample(H0 + 30 * 60_000, yes=10.0), H0, 2)
    assert "hour 1/2" in line and "30:00 left" in line and "fair 0.600" in line and "NORMAL" in line
    assert "pre-open" in format_status(_sample(H0 - 60_000), H0, 2)


def test_venue_accounting_from_trade_records():
    from hourmm_core.sim.report import hour_accounts, our_fills, venue_markets

    state = {"markets": [{"start_ms": H0, "up_token": "U1", "down_token": "D1", "condition_id": "c1"}]}
    me = WALLET.lower()
    trades = [
        # we took 10 Up at 0.40 paying a 0.05 fee
        {"id": "t1", "trader_side": "TAKER", "owner": me, "side": "BUY", "size": "10", "price": "0.4",
         "asset_id": "U1", "taker_fee": "0.05", "match_time_ms": H0 + 60_000, "maker_orders": []},
        # someone took our resting ask: we (maker) sold 4 Up at 0.55
        {"id": "t2", "trader_side": "TAKER", "owner": "0xother", "side": "BUY", "size": "4", "price": "0.55",
         "asset_id": "U1", "taker_fee": "0.01", "match_time_ms": H0 + 120_000,
         "maker_orders": [{"owner": me, "side": "SELL", "matched_amount": "4", "price": "0.55", "asset_id": "U1"}]},
        # a late maker fill on Down after the cutoff
        {"id": "t3", "trader_side": "TAKER", "owner": "0xother", "side": "SELL", "size": "2", "price": "0.3",
         "asset_id": "D1", "match_time_ms": H0 + HOUR - 10_000,
         "maker_orders": [{"owner": me, "side": "BUY", "matched_amount": "2", "price": "0.3", "asset_id": "D1"}]},
        {"id": "t4", "trader_side": "TAKER", "owner": "0xother", "side": "BUY", "size": "1", "price": "0.5",
         "asset_id": "U1", "maker_orders": [{"owner": "0xthird", "side": "SELL", "matched_amount": "1",
                                             "price": "0.5", "asset_id": "U1"}]},
    ]
    fills = our_fills(trades, WALLET)
    assert [(f["role"], f["side"], f["size"]) for f in fills] == [("taker", "BUY", 10.0), ("maker", "SELL", 4.0),
                                                                   ("maker", "BUY", 2.0)]
    acc = hour_accounts(fills, venue_markets(state), {H0: True})[H0]
    assert acc["fills"] == 3 and acc["maker_fills"] == 2 and acc["late_fills"] == 1
    assert acc["up_tokens"] == 6.0 and acc["down_tokens"] == 2.0
    assert acc["volume"] == pytest.approx(4.0 + 2.2 + 0.6)
    assert acc["fees"] == pytest.approx(0.05)
    # cash: -4.0 - 0.05 + 2.2 - 0.6 ; Up wins: 6 tokens pay 6
    assert acc["pnl"] == pytest.approx(-4.05 + 2.2 - 0.6 + 6.0)
    down = hour_accounts(fills, venue_markets(state), {H0: False})[H0]
    assert down["pnl"] == pytest.approx(-4.05 + 2.2 - 0.6 + 2.0)


def test_late_fill_and_trade_read_failure_fail_the_run(tmp_path):
    state = {"markets": [{"start_ms": H0, "up_token": "U1", "down_token": "D1"}], "open_orders": []}
    late = [{"id": "t", "trader_side": "TAKER", "owner": WALLET.lower(), "side": "BUY", "size": "5",
             "price": "0.5", "asset_id": "U1", "match_time_ms": H0 + HOUR - 5_000, "maker_orders": []},
            {"id": "t2", "trader_side": "TAKER", "owner": WALLET.lower(), "side": "BUY", "size": "5",
             "price": "0.5", "asset_id": "D1", "match_time_ms": H0 + 100, "maker_orders": []}]
    run = _run(tmp_path, _clean_samples(), state=state)
    run.trades = late
    summary = summarize(run)
    assert any("after the hard cutoff" in f for f in summary["failures"]), summary["failures"]
    assert summary["fills"] == 2 and summary["hours"][0]["net_inventory_at_cutoff"] == 0.0
    assert summary["orphaned_orders"] == 0
    run.trades, run.trades_error = None, "PolyApiException: 401"
    assert any("could not be read" in f for f in summarize(run)["failures"])


def test_venue_resolution_must_match_the_replayed_candle(tmp_path):
    def state(up_wins):
        return {"markets": [{"start_ms": H0, "up_token": "U1", "down_token": "D1",
                             "resolution": {"resolved": True, "up_wins": up_wins, "open": 1.0, "close": 2.0}}],
                "open_orders": []}
    assert summarize(_run(tmp_path, _clean_samples(), state=state(True)))["ok"]
    bad = summarize(_run(tmp_path, _clean_samples(), state=state(False)))
    assert any("resolved 2026-01-22T15:00:00Z as Down" in f for f in bad["failures"]), bad["failures"]


def test_window_on_real_format_data_is_labelled_real(tmp_path):
    """choose_window on a Binance-format trades dump: first full hour, partial start hour, real label."""
    import math

    from hourmm_core.sim.orchestrator import Orchestrator, SimOptions

    day0 = 1_769_040_000_000  # 2026-01-22T00:00:00Z
    rows = []
    for i in range(4 * 3600):   # one trade per second over 00:00-04:00, a gentle sine path
        ts = day0 + i * 1000
        px = 50_000 + 100 * math.sin(i / 900.0)
        rows.append(f"{i + 1},{px:.2f},0.01,{px * 0.01:.4f},{ts},{'true' if i % 2 else 'false'},true")
    (tmp_path / "BTCUSDT-trades-2026-01-22.csv").write_text("\n".join(rows) + "\n")
    orch = Orchestrator(SimOptions(hours=2, speed=60, data_dir=str(tmp_path), out_dir=tmp_path / "out"))
    orch.choose_window()
    assert orch.data_info["synthetic"] is False and orch.data_info["source"] == "binance-trades"
    assert orch.first_hour_ms == day0 + HOUR
    assert orch.clock.sim_start_ms < orch.first_hour_ms and orch.end_sim_ms > day0 + 3 * HOUR
    hours = orch.data_info["hours"]
    assert [h["partial"] for h in hours] == [True, False, False]
    assert [h["hour_start_ms"] for h in hours] == [day0, day0 + HOUR, day0 + 2 * HOUR]
    # the outcome is the data's own: close >= open of each hour
    h1 = hours[1]
    assert h1["open"] == pytest.approx(50_000 + 100 * math.sin(3600 / 900.0), abs=0.01)
    assert h1["up"] == (h1["close"] >= h1["open"])
    with pytest.raises(RuntimeError, match="choose --start"):
        Orchestrator(SimOptions(hours=6, data_dir=str(tmp_path), out_dir=tmp_path / "o2")).choose_window()


def test_journal_fills_must_match_the_venue(tmp_path):
    db = tmp_path / "journal.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts_ms INTEGER, kind TEXT, market TEXT, "
                "order_id TEXT, payload TEXT)")
    con.execute("INSERT INTO events (ts_ms, kind, market) VALUES (1, 'fill', 'btc-3pm'), (2, 'intent', 'btc-3pm')")
    con.commit()
    con.close()
    state = {"markets": [{"start_ms": H0, "slug": "btc-3pm", "up_token": "U1", "down_token": "D1"}],
             "open_orders": []}
    fill = {"trader_side": "TAKER", "owner": WALLET.lower(), "side": "BUY", "size": "5", "price": "0.5",
            "asset_id": "U1", "match_time_ms": H0 + 1000, "maker_orders": []}
    sell = dict(fill, side="SELL", match_time_ms=H0 + 2000)
    run = _run(tmp_path, _clean_samples(), state=state)
    run.journal_path, run.trades = db, [fill]
    ok = summarize(run)
    assert ok["ok"], ok["failures"]
    assert ok["hours"][0]["journal_fills"] == 1 and ok["journal"]["fills_by_market"] == {"btc-3pm": 1}
    run.trades = [fill, sell]
    bad = summarize(run)
    assert any("journal has 1 fill(s) for btc-3pm but the venue recorded 2" in f for f in bad["failures"])


def test_children_env_drops_deployment_secrets_but_keeps_data_dir(tmp_path, monkeypatch):
    from hourmm_core.sim.orchestrator import Orchestrator, SimOptions

    monkeypatch.setenv("PM_PRIVATE_KEY", "0x" + "cd" * 32)
    monkeypatch.setenv("CONTROL_TOKEN", "tok-123456")
    monkeypatch.setenv("HOURMM_SIM_CLOCK", "60,1,1")
    monkeypatch.setenv("HOURMM_DATA_DIR", str(tmp_path / "data"))
    orch = Orchestrator(SimOptions(out_dir=tmp_path))
    from hourmm_core.clock import ScaledClock
    orch.clock = ScaledClock(60.0, H0, 1_000)
    env = orch.base_env()
    assert "PM_PRIVATE_KEY" not in env and "CONTROL_TOKEN" not in env
    assert env["HOURMM_SIM_CLOCK"] == orch.clock.to_env()
    assert env["HOURMM_DATA_DIR"] == str(tmp_path / "data")
