"""The shipped rest-of-hour pricer (issue 11) on real Binance BTCUSDT 1m klines.

- compiled MinutePricer / minute_level_batch / minute_prob_batch == the plain-Python twins;
- container A's streaming objects (SnapshotBuilder fed trades built from real minutes) give the
  batch model's p at every evaluation point of the protocol to 1e-9;
- the calibration protocol reproduces /work/shared/tools/score_predictions.py's points and its
  ``ref`` (rv60) score exactly, and the predictions file round-trips through that tool;
- the shipped config is what container A builds.
"""
from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hourmm_core.binance.messages import Trade
from hourmm_core.clock import HOUR_MS
from hourmm_core.config import ConfigError, PricerConfig
from hourmm_core.pricing.snapshot import SnapshotBuilder
from hourmm_core.research import calibrate_cli
from hourmm_core.research import kline_calibration as cal

quant = pytest.importorskip("hourmm_core.quant")
from hourmm_core.quant import reference as R  # noqa: E402
from tests.conftest import REAL_DATA as DATA  # noqa: E402

MAY = DATA / "BTCUSDT-1m-2025-05.csv.gz"
SCORE_TOOL = Path("/work/shared/tools/score_predictions.py")
pytestmark = pytest.mark.skipif(not MAY.exists(), reason="real kline data not available")


@pytest.fixture(scope="module")
def kl():
    """The first 8 hours of May 2025 (real 1m klines)."""
    a = np.loadtxt(gzip.open(MAY, "rt"), delimiter=",", usecols=(0, 1, 2, 3, 4), max_rows=8 * 60)
    return {"open_ms": a[:, 0].astype(np.int64), "open": a[:, 1], "high": a[:, 2], "low": a[:, 3], "close": a[:, 4]}


@pytest.fixture(scope="module")
def shipped():
    cfg = PricerConfig.from_env({})
    return cfg, cal.SeasonalParams.from_config(cfg)


def test_shipped_config_is_the_seasonal_model(shipped):
    cfg, prm = shipped
    assert cfg.pricer_model == "seasonal" and cfg.pricer_halflife_min == 60.0 and cfg.pricer_var_scale == 0.74
    # the shipped scale is the walk-forward one (docs/PRICER.md, session 6): 28-day window, 72 pseudo-hours
    assert cfg.pricer_scale_window_days == 28 and cfg.scale_window_h == 672 and cfg.pricer_scale_prior_hours == 72.0
    assert prm.scale_window_h == 672 and prm.scale_prior_h == 72.0
    s = cfg.season()
    assert s.shape == (1440,) and abs(s.mean() - 1.0) < 0.01
    # real intraday pattern learned on the training span: 13-15 UTC (US open) busier than 04-06 UTC
    assert s[14 * 60:15 * 60].mean() > 2.5 * s[5 * 60:6 * 60].mean()
    with pytest.raises(ConfigError):
        PricerConfig.from_env({"PRICER_SEASON_HOD": "1,2,3"})
    with pytest.raises(ConfigError):
        PricerConfig.from_env({"PRICER_MODEL": "magic"})


def test_compiled_equals_reference_on_real_minutes(kl, shipped):
    _, prm = shipped
    season = prm.season()
    lv = quant.minute_level_batch(kl["open_ms"], kl["close"], season, 60.0, prm.var_prior)
    rlv = R.minute_level_batch(kl["open_ms"], kl["close"], season, 60.0, prm.var_prior)
    np.testing.assert_allclose(lv, rlv, rtol=1e-12)
    assert lv[0] == pytest.approx(prm.var_prior, rel=1e-15) and np.all(lv > 0)
    # a gap (two missing minutes): no update and the return across it is dropped, in batch and streaming
    keep = np.r_[0:100, 102:200]
    gl = quant.minute_level_batch(kl["open_ms"][keep], kl["close"][keep], season, 60.0, prm.var_prior)
    np.testing.assert_allclose(gl, R.minute_level_batch(kl["open_ms"][keep], kl["close"][keep], season, 60.0,
                                                        prm.var_prior), rtol=1e-12)
    # the two missing minutes pull the level towards the prior; bar 100's return (across the gap) is dropped
    a = 1 - 0.5 ** (1 / 60.0)
    den99, den101 = 1 - 0.5 * (1 - a) ** 99, 1 - 0.5 * (1 - a) ** 101     # prior weight 1/2 at the start
    want = (gl[99] * den99 * (1 - a) ** 2 + prm.var_prior * (1 - (1 - a) ** 2)) / den101
    assert gl[100] == pytest.approx(want, rel=1e-12)
    assert gl[101] != gl[100]
    long_gap = quant.minute_level_batch(np.r_[kl["open_ms"][:100], kl["open_ms"][100:110] + 10**9],
                                        kl["close"][:110], season, 60.0, prm.var_prior)
    assert long_gap[100] == pytest.approx(prm.var_prior, rel=1e-9)     # ~11 days without data: back to the prior
    for impl in (quant, R):
        mp = impl.MinutePricer(season, 60.0, prm.var_prior)
        for i in keep:
            mp.on_trade(int(kl["open_ms"][i]) + 5, float(kl["close"][i]))
            mp.advance(int(kl["open_ms"][i]) + 60_000)
            assert mp.level_var == pytest.approx(gl[np.searchsorted(keep, i)], rel=1e-12)
    pts = cal.kline_points(kl["open_ms"], kl["open"], kl["close"])
    ts = pts.hour_ms + pts.minute * 60_000
    args = (pts.S, pts.K, ts, pts.hour_ms + HOUR_MS, lv[pts.j], season, prm.var_scale, 0.0, 0.001)
    p, rp = quant.minute_prob_batch(*args), R.minute_prob_batch(*args)
    np.testing.assert_allclose(p, rp, rtol=1e-12, atol=1e-15)
    assert np.all((p > 0) & (p < 1)) and len(np.unique(p)) > 100
    with pytest.raises(ValueError):
        quant.minute_level_batch(kl["open_ms"][::-1], kl["close"], season)
    with pytest.raises(ValueError):
        quant.MinutePricer(season[:100])
    with pytest.raises(ValueError):
        quant.MinutePricer(season, halflife_min=0.0)


def _replay(builder: SnapshotBuilder, kl, i: int, tid: int) -> int:
    """Trades rebuilding minute i's kline: open at its start, then high, low, close at its end."""
    t0 = int(kl["open_ms"][i])
    for k, (dt, px) in enumerate(((0, kl["open"][i]), (20_000, kl["high"][i]), (40_000, kl["low"][i]),
                                  (59_999, kl["close"][i]))):
        ts = t0 + dt
        builder.on_message(Trade("BTCUSDT", tid + k, float(px), 0.01, ts, ts, False), ts)
    return tid + 4


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_container_a_streaming_matches_batch_model_at_every_point(kl, shipped, impl):
    """Real minutes through container A's SnapshotBuilder: fair_up == batch p to 1e-9 at every point
    (the shipped adaptive scale from no history: 7 hour closes re-fit it from the prior;
    test_adaptive_scale.py covers a warm start and a day of updates)."""
    cfg, prm = shipped
    core = quant if impl == "compiled" else R
    b = SnapshotBuilder.from_config(cfg, core=core)     # exactly what PricerService builds
    assert b.model == "seasonal" and b.scale_window_h == 672
    pts = cal.kline_points(kl["open_ms"], kl["open"], kl["close"])
    batch = cal.seasonal_predict(kl["open_ms"], kl["close"], pts, prm, kl["open"])
    want = {(int(h), int(m)): p for h, m, p in zip(pts.hour_ms, pts.minute, batch)}
    b.on_connect(int(kl["open_ms"][0]) - 1)
    tid, got, n = 1, 0, len(kl["open_ms"])
    for i in range(n):
        tid = _replay(b, kl, i, tid)
        now = int(kl["open_ms"][i]) + 60_000          # H + 60 m: minute m-1 just closed
        key = (now - (now % HOUR_MS), (now % HOUR_MS) // 60_000)
        if key in want:
            s = b.snapshot(now)
            assert s.open_price == kl["open"][int(np.searchsorted(kl["open_ms"], key[0]))]
            assert s.fair_up == pytest.approx(want[key], abs=1e-9), key
            assert s.tau_ms == HOUR_MS - 60_000 * key[1]
            assert s.sigma == pytest.approx(math.sqrt(b.minute.var_rest / (s.tau_ms / 1000.0)), rel=1e-12)
            assert s.fair_unc is not None and 0.0 <= s.fair_unc < 1.0
            got += 1
    assert got == len(want) == 7 * 59
    assert b.minute.hour_closes == 7 and b.minute.scale_hours == 6 and b.minute.var_scale != 1.0


def test_live_price_and_exact_tau_between_minute_boundaries(kl, shipped):
    """Mid-minute: the live price and the fraction of the current minute left enter V."""
    _, prm = shipped
    season = prm.season()
    mp, rp = quant.MinutePricer(season, 60.0, prm.var_prior), R.MinutePricer(season, 60.0, prm.var_prior)
    for i in range(180):
        for o in (mp, rp):
            o.on_trade(int(kl["open_ms"][i]), float(kl["open"][i]))
            o.on_trade(int(kl["open_ms"][i]) + 59_999, float(kl["close"][i]))
    K = float(kl["open"][120])
    lv = quant.minute_level_batch(kl["open_ms"][:180], kl["close"][:180], season, 60.0, prm.var_prior)[-1]
    for dt in (0, 1, 29_999, 59_000):
        ts = int(kl["open_ms"][179]) + 60_000 + dt     # minute 0 of the hour after the fed minutes
        S = K * 1.0007
        p, pr = mp.price(ts, S, K, ts - dt + HOUR_MS), rp.price(ts, S, K, ts - dt + HOUR_MS)
        assert p == pytest.approx(pr, abs=1e-12)
        c = (ts // 60_000) % 1440
        f = (60_000 - dt) / 60_000.0
        V = lv * (f * season[c] + season[c + 1:c + 60].sum())
        assert mp.var_rest == pytest.approx(V, rel=1e-12)
        assert p == pytest.approx(0.5 * math.erfc(-math.log(S / K) / math.sqrt(V) / math.sqrt(2)), abs=1e-12)
    H = int(kl["open_ms"][179]) + 60_000
    assert mp.price(H + 10 * HOUR_MS, K * 1.01, K, H + 10 * HOUR_MS) == 1.0 - 0.001   # settled
    assert math.isnan(mp.price(H + 10 * HOUR_MS, -1.0, K, H + 11 * HOUR_MS)) and mp.n_bad == 1
    assert not mp.on_trade(H, float("nan")) and mp.n_bad == 2


@pytest.mark.skipif(not SCORE_TOOL.exists(), reason="score tool not available")
def test_protocol_reproduces_the_score_tool_and_predictions_round_trip(kl, shipped, tmp_path):
    _, prm = shipped
    path = tmp_path / "BTCUSDT-1m-slice.csv.gz"
    with gzip.open(MAY, "rt") as src, gzip.open(path, "wt") as dst:
        for _ in range(8 * 60):
            dst.write(src.readline())
    a, b = int(kl["open_ms"][0]), int(kl["open_ms"][-1]) + 60_000
    rep = cal.kline_report(kl, prm, spans={"slice": (a, b)})
    preds = cal.write_predictions(tmp_path / "preds.csv", rep)
    out = subprocess.run([sys.executable, str(SCORE_TOOL), str(path), "--project", str(preds)],
                         capture_output=True, text=True, timeout=120, check=True)
    tool = json.loads(out.stdout)
    row = rep.table["slice"]
    assert tool["points"] == row["rv60"]["n"] == 7 * 59
    assert row["rv60"]["brier"] == pytest.approx(tool["ref"]["brier"], abs=1e-12)
    assert row["rv60"]["logloss"] == pytest.approx(tool["ref"]["logloss"], abs=1e-12)
    assert tool["project"]["coverage"] == 1.0
    assert row["seasonal"]["brier"] == pytest.approx(tool["project"]["brier"], abs=1e-12)
    assert row["seasonal"]["logloss"] == pytest.approx(tool["project"]["logloss"], abs=1e-12)
    assert row["seasonal"]["brier"] != row["rv60"]["brier"]


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_pricing_on_the_local_clock_never_moves_a_late_trade_into_the_next_minute(kl, shipped, impl):
    """Container A prices on its own clock, which runs a little ahead of trade times: a price()
    just after a minute boundary must not close the bar, or the minute's last trade would land in
    the next bar. Batch on the klines vs streaming with the pricing call before the late close."""
    _, prm = shipped
    mod = quant if impl == "compiled" else R
    season = prm.season()
    mp = mod.MinutePricer(season, 60.0, prm.var_prior)
    n = 130
    lv = quant.minute_level_batch(kl["open_ms"][:n], kl["close"][:n], season, 60.0, prm.var_prior)
    for i in range(n):
        t0 = int(kl["open_ms"][i])
        mp.on_trade(t0, float(kl["open"][i]))
        mp.price(t0 + 60_005, float(kl["open"][i]), float(kl["open"][0]), t0 + HOUR_MS)  # clock 5 ms ahead
        mp.on_trade(t0 + 59_990, float(kl["close"][i]))                                  # the late last trade
    mp.advance(int(kl["open_ms"][n - 1]) + 60_000)
    assert mp.level_var == pytest.approx(lv[-1], rel=1e-12)


def test_calibrate_cli_writes_table_and_predictions(tmp_path):
    """`hourmm calibrate DIR --predictions FILE`: result.json has span -> model -> scores; one row per point."""
    d = tmp_path / "data"
    d.mkdir()
    with gzip.open(MAY, "rt") as src, gzip.open(d / "BTCUSDT-1m-2025-05.csv.gz", "wt") as dst:
        for _ in range(6 * 60):
            dst.write(src.readline())
    out, preds = tmp_path / "out", tmp_path / "preds.csv"
    rc = calibrate_cli.main([str(d), "--out", str(out), "--predictions", str(preds), "--no-plots",
                   "--train-span", "2025-05-01:2025-05-02", "--valid-span", "2025-05-01:2025-05-01"])
    assert rc == 0
    res = json.loads((out / "result.json").read_text())
    tab = res["table"]["train"]
    # the shipped adaptive scale, and the fixed-scale model next to it on the same points
    assert set(tab) == {"const", "rv60", "legacy_ewma", "seasonal", "seasonal_fixed"}
    assert tab["seasonal"]["n"] == 5 * 59 and 0.0 < tab["seasonal"]["brier"] < 0.25
    assert tab["const"]["logloss"] == pytest.approx(math.log(2.0))
    rows = preds.read_text().splitlines()
    assert rows[0] == "hour_ms,minute,p" and len(rows) == 1 + 5 * 59
    assert calibrate_cli.main([str(tmp_path / "nothing"), "--out", str(out), "--predictions", str(preds)]) == 2


def test_minute_path_batch_is_the_live_model_on_ticks(kl, shipped):
    """Backtest API: ticks in, p at given instants == MinutePricer streaming == the kline batch."""
    _, prm = shipped
    season = prm.season()
    # ticks rebuilding each real minute (open, close), evaluated at every protocol point
    ts = np.ravel(np.column_stack([kl["open_ms"], kl["open_ms"] + 59_999]))
    px = np.ravel(np.column_stack([kl["open"], kl["close"]]))
    pts = cal.kline_points(kl["open_ms"], kl["open"], kl["close"])
    ev = pts.hour_ms + pts.minute * 60_000
    args = (ts, px, ev, pts.K, pts.hour_ms + HOUR_MS, season, prm.halflife_min, prm.var_prior, prm.var_scale, 0.0, 0.001)
    got = quant.minute_path_batch(*args)
    np.testing.assert_allclose(got, R.minute_path_batch(*args), rtol=0, atol=1e-12)
    fixed = cal.SeasonalParams(prm.hod, prm.moh, prm.halflife_min, prm.var_prior, prm.var_scale)   # window 0
    np.testing.assert_allclose(got, cal.seasonal_predict(kl["open_ms"], kl["close"], pts, fixed), rtol=0, atol=1e-9)
    # every second of the real trade sample (crosses 00:00): same as a hand-driven MinutePricer
    tr = DATA / "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz"
    a = np.loadtxt(gzip.open(tr, "rt"), delimiter=",", usecols=(1, 4))
    tts, tpx = a[:, 1].astype(np.int64), a[:, 0]
    grid = np.arange(tts[0] + 1000, tts[-1], 1000, dtype=np.int64)
    hend = (grid // HOUR_MS + 1) * HOUR_MS
    Kg = np.where(hend > tts[0] // HOUR_MS * HOUR_MS + HOUR_MS, tpx[np.searchsorted(tts, hend[-1] - HOUR_MS)], tpx[0])
    p = quant.minute_path_batch(tts, tpx, grid, Kg, hend, season, 60.0, prm.var_prior)
    mp, j, want = quant.MinutePricer(season, 60.0, prm.var_prior), 0, []
    for g, k_, e in zip(grid.tolist(), Kg.tolist(), hend.tolist()):
        while j < len(tts) and tts[j] < g:
            mp.on_trade(int(tts[j]), float(tpx[j]))
            j += 1
        want.append(mp.price(g, float(tpx[j - 1]), k_, e))
    np.testing.assert_array_equal(p, np.array(want))
    assert np.all((p > 0) & (p < 1)) and len(np.unique(np.round(p, 6))) > 50
    assert math.isnan(quant.minute_path_batch(tts, tpx, tts[:1], Kg[:1], hend[:1], season)[0])  # no tick yet
    with pytest.raises(ValueError):
        quant.minute_path_batch(tts[::-1], tpx, grid, Kg, hend, season)
