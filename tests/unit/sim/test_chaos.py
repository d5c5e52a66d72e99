"""The chaos run of issue 13 (``hourmm sim --chaos``, hourmm_core/sim/chaos.py), in process.

* the seeded schedule, the judge's ledgers (fills journal vs venue, secrets) and the table,
  each shown able to fail;
* the Binance replay's out-of-range hook, on real trades, refused by the real stream client.

The run itself (four processes, one real hour): tests/integration/test_chaos_run.py.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from hourmm_core.binance import BinanceStreamClient
from hourmm_core.clock import ScaledClock
from hourmm_core.sim import chaos
from hourmm_core.sim.binance_replay import BinanceReplayServer

# the real tick sample (Binance trades + bookTicker dumps, 2024-08-08 23:54 .. 2024-08-09 00:05 UTC)
REAL_T0 = 1_723_161_300_000     # 2024-08-08T23:55:00Z


# ---------------------------------------------------------------------- schedule
def test_schedule_is_seeded_and_covers_every_fault():
    a, b = chaos.build_schedule(7), chaos.build_schedule(7)
    assert a == b
    assert sorted(s["fault"] for s in a) == sorted(chaos.FAULTS)
    assert all(1.0 <= s["gap_s"] <= 3.0 for s in a)
    others = [chaos.build_schedule(seed) for seed in range(8, 14)]
    assert any([s["fault"] for s in o] != [s["fault"] for s in a] for o in others)
    only = chaos.build_schedule(3, ["rest_429", "user_ws_drop"])
    assert sorted(s["fault"] for s in only) == ["rest_429", "user_ws_drop"]
    with pytest.raises(ValueError, match="unknown chaos fault"):
        chaos.build_schedule(1, ["rest_429", "unplug_the_moon"])


def test_cli_refuses_an_unknown_fault(capsys):
    from hourmm_core.sim.orchestrator import main

    assert main(["--chaos-faults", "rest_429,nope"]) == 2
    assert "unknown chaos fault" in capsys.readouterr().err


# ---------------------------------------------------------------------- judge's ledgers
# Synthetic shapes (a fill journaled twice, a lost one, one the venue never had) that a clean
# real run does not produce: the check must see each of them.
def _fill(tid: str, oid: str) -> dict:
    return {"payload": {"trade_id": tid, "order_id": oid}, "order_id": oid}


def test_fill_ledger_finds_lost_double_and_phantom_fills():
    legs = [{"trade_id": "t1", "order_id": "o1"}, {"trade_id": "t2", "order_id": "o2"},
            {"trade_id": "t2", "order_id": "o3"}]
    clean = chaos.fill_ledger_check([_fill("t1", "o1"), _fill("t2", "o2"), _fill("t2", "o3")], legs)
    assert (clean["n_lost"], clean["n_double"], clean["n_phantom"]) == (0, 0, 0)
    bad = chaos.fill_ledger_check([_fill("t1", "o1"), _fill("t1", "o1"), _fill("t2", "o2"), _fill("t9", "o9")], legs)
    assert bad["lost"] == [("t2", "o3")] and bad["double"] == [("t1", "o1")] and bad["phantom"] == [("t9", "o9")]


def test_venue_legs_take_our_taker_and_maker_sides_only():
    trades = [
        {"id": "t1", "trader_side": "TAKER", "owner": "KEY", "taker_order_id": "o1", "asset_id": "A", "side": "BUY",
         "size": "5", "match_time": "1747922500", "maker_orders": [
             {"owner": "other", "order_id": "x", "asset_id": "A", "side": "SELL", "matched_amount": "5"}]},
        {"id": "t2", "trader_side": "MAKER", "owner": "someone", "taker_order_id": "y", "asset_id": "A", "side": "SELL",
         "size": "3", "maker_orders": [
             {"owner": "key", "order_id": "o2", "asset_id": "A", "side": "BUY", "matched_amount": "3"}]},
        {"id": "t3", "status": "FAILED", "trader_side": "TAKER", "owner": "key", "taker_order_id": "o3",
         "asset_id": "A", "side": "BUY", "size": "1", "maker_orders": []},
    ]
    legs = chaos.venue_legs(trades, {"key", ""})
    assert [(g["trade_id"], g["order_id"], g["side"], g["size"]) for g in legs] == [("t1", "o1", "BUY", 5.0),
                                                                                  ("t2", "o2", "BUY", 3.0)]
    assert legs[0]["ts_ms"] == 1_747_922_500_000


def test_secret_scan_names_the_file_not_the_secret():
    key = "ab" * 32
    texts = {"logs/trader.log": b"INFO | all fine\n", "journal.db": b"..." + key[:40].encode() + b"...",
             "summary.json": b"{}"}
    assert chaos.find_secrets([key, "short"], texts) == []   # the partial key is not the key
    texts["logs/pricer.log"] = ("x " + key + " y").encode()
    assert chaos.find_secrets([key], texts) == ["logs/pricer.log"]


def test_metrics_parser_reads_the_bad_frame_counters():
    text = ('# TYPE hourmm_binance_bad_frames_total counter\n'
            'hourmm_binance_bad_frames_total{kind="price_absurd"} 1.0\n'
            'hourmm_binance_bad_frames_total{kind="bad_id"} 2\n'
            'hourmm_binance_frames_total{kind="trade"} 1234.0\n'
            'hourmm_binance_connected 1.0\n')
    m = chaos.parse_metrics(text)
    assert chaos.bad_frames(m) == {"price_absurd": 1.0, "bad_id": 2.0}
    assert m["hourmm_binance_frames_total{trade}"] == 1234.0 and m["hourmm_binance_connected"] == 1.0


def _journal(path: Path, fills: list[tuple[str, str]]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER, kind TEXT, market TEXT, "
                "order_id TEXT, payload TEXT)")
    for tid, oid in fills:
        con.execute("INSERT INTO events (ts_ms, kind, market, order_id, payload) VALUES (1, 'fill', 'm', ?, ?)",
                    (oid, json.dumps({"trade_id": tid, "order_id": oid})))
    con.commit()
    con.close()


def _judge(tmp_path: Path, fills: list[tuple[str, str]], leaked: bool = False) -> dict:
    """The verdict of a finished run whose faults all reacted (synthetic shapes, see above)."""
    _journal(tmp_path / "journal.db", fills)
    (tmp_path / "logs").mkdir()
    key = "0x" + "cd" * 32
    (tmp_path / "logs" / "polymarket_trader.log").write_text("INFO | ok\n" + (f"DEBUG | {key}\n" if leaked else ""))
    orch = SimpleNamespace(opts=SimpleNamespace(speed=30.0), clock=None)
    run_ = chaos.ChaosRun(orch, 5, ["rest_429", "rest_425"])
    run_._secrets = [key, "s3cr3t-api-secret", "pass-phrase-123"]
    for r in run_.records:
        r.status = "ok" if r.fault == "rest_429" else "not covered"
    trades = [{"id": "t1", "trader_side": "TAKER", "owner": "k", "taker_order_id": "o1", "asset_id": "A",
               "side": "BUY", "size": "5", "maker_orders": []}]
    run = SimpleNamespace(samples=[], cutoff_inventory_tol=5.0, journal_path=tmp_path / "journal.db", trades=trades,
                          wallet="0xw", api_key="k", sim_state={}, out_dir=tmp_path)
    summary = {"failures": [], "ok": True, "hours": [{"net_inventory_at_cutoff": 0.0}], "orphaned_orders": 0}
    run_.judge(summary, run)
    return summary


def test_judge_passes_a_clean_run_and_writes_result_json(tmp_path):
    s = _judge(tmp_path, [("t1", "o1")])
    assert s["ok"] and s["failures"] == [], s["failures"]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["ok"] and res["chaos"]["not_covered"] == ["rest_425"]
    assert res["chaos"]["table"][0].startswith("fault") and len(res["chaos"]["table"]) == 3


def test_judge_fails_on_a_double_counted_fill(tmp_path):
    s = _judge(tmp_path, [("t1", "o1"), ("t1", "o1")])
    assert not s["ok"] and any("1 double counted" in f for f in s["failures"]), s["failures"]


def test_judge_fails_on_a_lost_fill(tmp_path):
    s = _judge(tmp_path, [])
    assert not s["ok"] and any("1 lost" in f for f in s["failures"]), s["failures"]


def test_judge_fails_on_a_leaked_key(tmp_path):
    s = _judge(tmp_path, [("t1", "o1")], leaked=True)
    assert not s["ok"] and any("polymarket_trader.log" in f for f in s["failures"]), s["failures"]
    assert "cd" * 32 not in json.dumps(s)   # the verdict names the file, never the secret


# ---------------------------------------------------------------------- replay hook, real trades
@pytest.mark.timeout(60)
async def test_replay_out_of_range_frames_are_refused_and_the_feed_goes_on():
    from hourmm_core.data import find_data_dir, load_ticks

    if find_data_dir() is None:
        pytest.skip("no real data directory")
    ticks = load_ticks(REAL_T0, REAL_T0 + 8 * 60_000, allow_synthetic=False)
    assert ticks.source == "binance-trades" and len(ticks) > 1000
    import time

    clk = ScaledClock(5.0, REAL_T0 + 60_000, time.time_ns() // 1_000_000)
    srv = BinanceReplayServer(ticks, clk)
    await srv.start()
    got: list = []
    client = BinanceStreamClient(srv.ws_url, "BTCUSDT", lambda m, r: got.append(m), clk, seed=1)
    task = asyncio.create_task(client.run())

    async def until(cond) -> None:
        while not cond():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(until(lambda: len(got) > 20), 20)
        async with aiohttp.ClientSession() as s:
            r = await (await s.post(srv.rest_url + "/_sim/fault", json={"out_of_range": 2})).json()
            assert r == {"ok": True, "out_of_range": 2}
            await asyncio.wait_for(until(lambda: client.stats.bad["price_absurd"] >= 1 and client.stats.bad["bad_id"] >= 1), 20)
            n = len(got)
            await asyncio.wait_for(until(lambda: len(got) > n + 20), 20)   # not frozen by the 2^62 id
            st = await (await s.get(srv.rest_url + "/_sim/state")).json()
            assert st["out_of_range_sent"] == 2 and st["pending_out_of_range"] == 0
            bad = await s.post(srv.rest_url + "/_sim/fault", json={"out_of_range": "many"})
            assert bad.status == 400
        prices = [m.price for m in got if hasattr(m, "trade_id")]
        assert max(prices) < 1e6 and min(prices) > 1e4            # the real 2024 BTC range only
        assert max(m.trade_id for m in got if hasattr(m, "trade_id")) < 2**40
    finally:
        await client.stop()
        task.cancel()
        await srv.stop()


def test_judge_fails_on_a_fault_without_its_reaction(tmp_path):
    _journal(tmp_path / "journal.db", [("t1", "o1")])
    (tmp_path / "logs").mkdir()
    orch = SimpleNamespace(opts=SimpleNamespace(speed=30.0), clock=None)
    run_ = chaos.ChaosRun(orch, 5, ["user_ws_drop"])
    run_._secrets = ["0x" + "ef" * 32, "another-secret-1"]
    run_.records[0].status = "FAIL"
    run_.records[0].problems.append("no HALT after the user WS dropped")
    run = SimpleNamespace(samples=[{"sim_ms": 5, "risk_mode": "HALT"}], cutoff_inventory_tol=5.0,
                          journal_path=tmp_path / "journal.db", out_dir=tmp_path, sim_state={}, wallet="w", api_key="k",
                          trades=[{"id": "t1", "trader_side": "TAKER", "owner": "k", "taker_order_id": "o1",
                                   "asset_id": "A", "side": "BUY", "size": "5", "maker_orders": []}])
    summary = {"failures": ["risk mode HALT observed (1 sample(s), first at sim x)"], "ok": False,
               "hours": [{"net_inventory_at_cutoff": 0.0}], "orphaned_orders": 0}
    run_.judge(summary, run)
    assert not summary["ok"]
    assert "chaos: user_ws_drop: FAIL (no HALT after the user WS dropped)" in summary["failures"]
    # a HALT with no user-WS drop around it stays a failure of the run
    assert any(f.startswith("risk mode HALT observed") for f in summary["failures"])
    assert summary["chaos"]["checks"]["halts"] == {"samples": 1, "outside_user_ws_drop": 1}


def test_429_burst_check_flags_retries_without_back_off():
    orch = SimpleNamespace(opts=SimpleNamespace(speed=30.0), clock=None)
    run_ = chaos.ChaosRun(orch, 1, ["rest_429"])
    rec = run_.records[0]
    line = "WARNING | HTTP 429 from the CLOB: sending nothing for 1.00s"
    # the probe's finding (issue 13 bug 4): 30 x 429 used up in 0.4 s of wall time
    no_backoff = [(int(i * 0.4 / 30 * 30_000), line) for i in range(30)]
    assert run_._gate_bursts(rec, no_backoff, 0, 1.0) == 30
    # honoured: two in flight together, then one per second (times in sim ms at 30x)
    honoured = [(0, line), (600, line), (30_300, line), (60_500, line), (90_700, line)]
    assert run_._gate_bursts(rec, honoured, 0, 1.0) == 2
