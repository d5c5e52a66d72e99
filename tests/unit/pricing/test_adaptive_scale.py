"""The walk-forward adaptive variance scale (docs/PRICER.md, "wf-ll D=28 n0=72") on real 1m klines.

- the batch path (``minute_scale_batch`` -> ``seasonal_predict``) reproduces the session-5 study's
  numbers on 2025-04-15..05-31 (an independent numpy computation of the study's definition, and
  the Brier / log loss / ECE of its table row);
- compiled == the plain-Python twin; streaming trades == batch klines (scale at every hour, p at
  every point); warm-up from klines + live trades == one batch run; the no-history prior; bad
  inputs fail clearly and feed nothing.
"""
from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from scipy.special import ndtr

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.research import calibration as scores
from hourmm_core.research import kline_calibration as kcal

quant = pytest.importorskip("hourmm_core.quant")
from hourmm_core.quant import reference as R  # noqa: E402
from tests.conftest import REAL_DATA as DATA  # noqa: E402

MAY = DATA / "BTCUSDT-1m-2025-05.csv.gz"
pytestmark = pytest.mark.skipif(not MAY.exists(), reason="real kline data not available")


@pytest.fixture(scope="module")
def prm() -> kcal.SeasonalParams:
    cfg = PricerConfig.from_env({"PRICER_SCALE_WINDOW_DAYS": "28", "PRICER_SCALE_PRIOR_HOURS": "72"})
    p = kcal.SeasonalParams.from_config(cfg)
    assert p.scale_window_h == 672 and p.scale_prior_h == 72.0
    return p


@pytest.fixture(scope="module")
def may3():
    """The first 3 days of May 2025 (real 1m klines)."""
    a = np.loadtxt(gzip.open(MAY, "rt"), delimiter=",", usecols=(0, 1, 2, 3, 4), max_rows=3 * 1440)
    return {"open_ms": a[:, 0].astype(np.int64), "open": a[:, 1], "high": a[:, 2], "low": a[:, 3], "close": a[:, 4]}


def _study_p(om, op, cl, prm: kcal.SeasonalParams, pts: kcal.KlinePoints) -> np.ndarray:
    """The study's definition (examples/pricer_research_walkforward.py), in numpy: per-hour summed
    log loss per grid value, window sums by cumsum differences, grid argmin, shrink toward 1."""
    grid = np.exp(np.linspace(np.log(0.35), np.log(2.0), 71))
    season = prm.season()
    level = np.asarray(quant.minute_level_batch(om, cl, season, prm.halflife_min, prm.var_prior))
    ev = ((pts.hour_ms + pts.minute * 60000) // 60000) % 1440
    c = np.r_[0.0, np.cumsum(season)]
    V = level[pts.j] * (c[ev - ev % 60 + 60] - c[ev])
    x = np.log(pts.S / pts.K)
    h0 = int(om[0]) - int(om[0]) % HOUR_MS
    hid = ((pts.hour_ms - h0) // HOUR_MS).astype(np.int64)
    nh = int(hid.max()) + 1

    def prob(cc):
        return np.clip(ndtr(x / np.sqrt(cc * V)), prm.p_min, 1 - prm.p_min)

    def loss(p):
        q = np.clip(p, 1e-6, 1 - 1e-6)
        return -(pts.y * np.log(q) + (1 - pts.y) * np.log(1 - q))

    HL = np.stack([np.bincount(hid, loss(prob(g)), nh) for g in grid], axis=1)
    has = (np.bincount(hid, None, nh) > 0).astype(float)
    W = prm.scale_window_h

    def wsum(H):
        C = np.concatenate([np.zeros((1,) + H.shape[1:]), np.cumsum(H, axis=0)])
        h = np.arange(H.shape[0])
        return C[h] - C[np.maximum(h - W, 0)]

    S, n = wsum(HL), wsum(has)
    chat = grid[np.argmin(S, axis=1)]
    n0 = prm.scale_prior_h
    scale = np.where(n > 0, np.exp((n * np.log(chat)) / np.maximum(n + n0, 1e-12)), 1.0)
    return prob(scale[hid])


def test_batch_reproduces_the_study_row_on_the_training_span(prm):
    """wf-ll D=28 n0=72 on 2025-04-15..05-31: p == the study's numpy definition, and the scores of
    its table row (docs/PRICER.md, notes/s5-pricer5.md) on April 15-30 and May."""
    from hourmm_core.data.binance_dumps import load_klines

    kl = load_klines(str(DATA))
    D = kcal._day_ms
    keep = (kl["open_ms"] >= D("2025-04-15")) & (kl["open_ms"] < D("2025-06-01"))
    if keep.sum() < 40 * 1440:
        pytest.skip("the April/May kline files are not both available")
    om, op, cl = kl["open_ms"][keep], kl["open"][keep], kl["close"][keep]
    pts = kcal.kline_points(om, op, cl)
    p = kcal.seasonal_predict(om, cl, pts, prm, op)
    np.testing.assert_allclose(p, _study_p(om, op, cl, prm, pts), rtol=0, atol=1e-9)
    fixed = kcal.seasonal_predict(om, cl, pts, kcal.SeasonalParams(prm.hod, prm.moh, prm.halflife_min,
                                                                   prm.var_prior, 0.74))
    assert np.abs(p - fixed).max() > 1e-3             # the adaptive scale changes the prices
    want = {"2025-04-15": (0.14339, 0.43090, 0.0186), "2025-05-01": (0.15359, 0.45300, 0.0133)}
    for (a, b), (wb, wl, we) in zip((("2025-04-15", "2025-05-01"), ("2025-05-01", "2025-06-01")), want.values()):
        m = (pts.hour_ms >= D(a)) & (pts.hour_ms + HOUR_MS <= D(b))
        got = (scores.brier_score(p[m], pts.y[m]), scores.log_loss(p[m], pts.y[m]),
               scores.expected_calibration_error(p[m], pts.y[m]))
        assert (round(got[0], 5), round(got[1], 5), round(got[2], 4)) == (wb, wl, we), (a, got)


def test_compiled_equals_reference(may3):
    """Same hour closes, same scale, same level, on 3 real days with a 1-day window."""
    kl = may3
    season = PricerConfig.from_env({}).season()
    args = (kl["open_ms"], kl["open"], kl["close"], season, 60.0, 2.6e-7, 0.0, 0.001, 24, 12.0)
    lv, sc, nh = quant.minute_scale_batch(*args)
    rlv, rsc, rnh = R.minute_scale_batch(*args)
    np.testing.assert_allclose(lv, rlv, rtol=1e-12)
    np.testing.assert_allclose(sc, rsc, rtol=1e-12)
    np.testing.assert_array_equal(nh, rnh)
    assert nh.max() == 24 and len(np.unique(sc)) > 24        # the window fills and the scale moves
    np.testing.assert_array_equal(lv, quant.minute_level_batch(kl["open_ms"], kl["close"], season, 60.0, 2.6e-7))
    # hour 00 has no 60 minutes of history: no points; hour 01 is the first, closed at its minute 59
    assert nh[59] == 0 and sc[59] == 1.0 and nh[119] == 1 and sc[119] != 1.0 and nh[179] == 2


def _trades(kl, i):
    """Trades rebuilding minute i: open at its start, high, low, close at its end (real prices)."""
    t0 = int(kl["open_ms"][i])
    return ((t0, kl["open"][i]), (t0 + 20_000, kl["high"][i]), (t0 + 40_000, kl["low"][i]),
            (t0 + 59_999, kl["close"][i]))


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_streaming_trades_equal_the_batch_and_warm_up_continues_it(may3, impl):
    """A MinutePricer fed trades prices every protocol point like the batch; one warmed from the
    first 1.5 days of klines and then fed trades is the same object state as one batch run."""
    kl = may3
    mod = quant if impl == "compiled" else R
    season = PricerConfig.from_env({}).season()
    n = 2 * 1440 if impl == "compiled" else 36 * 60
    sub = {k: v[:n] for k, v in kl.items()}
    prm = kcal.SeasonalParams((1.0,) * 24, (1.0,) * 60, 60.0, 2.6e-7, 1.0, scale_window_h=24, scale_prior_h=12.0)
    season = prm.season()
    pts = kcal.kline_points(sub["open_ms"], sub["open"], sub["close"])
    want = kcal.seasonal_predict(sub["open_ms"], sub["close"], pts, prm, sub["open"])
    lv, sc, nh = quant.minute_scale_batch(sub["open_ms"], sub["open"], sub["close"], season, 60.0, 2.6e-7, 0.0,
                                          0.001, 24, 12.0)
    key = {(int(h), int(m)): k for k, (h, m) in enumerate(zip(pts.hour_ms, pts.minute))}
    warm_n = n // 2 + 17                                    # mid-hour: the live trades continue that hour
    live = mod.MinutePricer(season, 60.0, 2.6e-7, 0.74, 0.0, 0.001, 24, 12.0)
    assert live.var_scale == 1.0 and live.scale_hours == 0    # the prior alone, before any history
    live.warm_klines(sub["open_ms"][:warm_n], sub["open"][:warm_n], sub["close"][:warm_n])
    assert live.var_scale == sc[warm_n - 1] and live.scale_hours == nh[warm_n - 1]
    stream = mod.MinutePricer(season, 60.0, 2.6e-7, 0.74, 0.0, 0.001, 24, 12.0)
    got = 0
    for i in range(n):
        for ts, px in _trades(sub, i):
            stream.on_trade(ts, float(px))
            if i >= warm_n:
                live.on_trade(ts, float(px))
        now = int(sub["open_ms"][i]) + 60_000
        h, m = now - now % HOUR_MS, (now % HOUR_MS) // 60_000
        if (h, m) in key:
            k = key[(h, m)]
            for o in (stream, live) if i >= warm_n else (stream,):
                assert o.price(now, float(pts.S[k]), float(pts.K[k]), h + HOUR_MS) == pytest.approx(want[k], abs=1e-9)
                got += 1
    assert got > 59 * 20
    stream.advance(int(sub["open_ms"][-1]) + 60_000)
    live.advance(int(sub["open_ms"][-1]) + 60_000)
    for o in (stream, live):
        assert o.var_scale == pytest.approx(sc[-1], rel=1e-12) and o.scale_hours == nh[-1]
        assert o.level_var == pytest.approx(lv[-1], rel=1e-12)
    assert stream.hour_closes >= n // 60 - 1 and nh[-1] > 0


def test_a_gap_removes_the_hours_it_touches_and_the_window_forgets():
    """Synthetic shape real data lacks (a 3-hour outage): hours without their 120 contiguous
    minutes get no points; after the window has passed, the scale is back at the prior."""
    season = np.ones(1440)
    rng = np.random.default_rng(3)
    t0 = 1_746_057_600_000                                   # 2025-05-01 00:00 UTC
    om = t0 + 60_000 * np.r_[np.arange(0, 6 * 60), np.arange(9 * 60, 14 * 60)]
    cl = 95_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, om.size)))
    op = np.r_[cl[0], cl[:-1]]
    lv, sc, nh = quant.minute_scale_batch(om, op, cl, season, 60.0, 2.5e-7, 0.0, 0.001, 4, 0.0)
    at = {int(t): k for k, t in enumerate(om)}
    # hours 01..05 have points (hour 00 has no history); the window holds at most 4 hours
    assert nh[at[t0 + 6 * HOUR_MS - 60_000]] == 4
    # after the gap: hour 09 lacks the hour before it, 10 is the first with points again
    assert nh[at[t0 + 10 * HOUR_MS - 60_000]] == 0 and sc[at[t0 + 10 * HOUR_MS - 60_000]] == 1.0
    assert nh[at[t0 + 11 * HOUR_MS - 60_000]] == 1
    # prior 0 pseudo-hours: the scale is the grid argmin itself
    assert np.min(np.abs(quant.SCALE_GRID - sc[at[t0 + 11 * HOUR_MS - 60_000]])) < 1e-12


def test_bad_inputs_fail_clearly_and_feed_nothing(may3):
    kl = may3
    season = np.ones(1440)
    om, op, cl = kl["open_ms"][:200], kl["open"][:200], kl["close"][:200]
    for mod in (quant, R):
        with pytest.raises(ValueError, match="scale_window_h"):
            mod.MinutePricer(season, 60.0, 2.6e-7, 1.0, 0.0, 0.001, -1)
        with pytest.raises(ValueError, match="scale_prior_h"):
            mod.MinutePricer(season, 60.0, 2.6e-7, 1.0, 0.0, 0.001, 24, float("nan"))
        mp = mod.MinutePricer(season, 60.0, 2.6e-7, 1.0, 0.0, 0.001, 24, 12.0)
        with pytest.raises(ValueError, match="strictly increasing"):
            mp.warm_klines(om[::-1], op, cl)
        bad = cl.copy()
        bad[150] = math.nan
        with pytest.raises(ValueError, match="finite"):
            mp.warm_klines(om, op, bad)
        with pytest.raises(ValueError, match="differ in length"):
            mp.warm_klines(om, op[:-1], cl)
        assert mp.n_returns == 0 and mp.hour_closes == 0     # nothing was fed
        mp.warm_klines(om[100:], op[100:], cl[100:])
        with pytest.raises(ValueError, match="before the current bar"):
            mp.warm_klines(om[:50], op[:50], cl[:50])
        with pytest.raises(ValueError, match="scale_window_h"):
            mod.minute_scale_batch(om, op, cl, season, scale_window_h=0)
    with pytest.raises(ValueError, match="kline opens"):
        kcal.seasonal_predict(om, cl, kcal.kline_points(om, op, cl),
                              kcal.SeasonalParams((), (), scale_window_h=24))
    assert quant.SCALE_C0 == R.SCALE_C0 == 1.0
    np.testing.assert_array_equal(quant.SCALE_GRID, R.SCALE_GRID)
    assert quant.SCALE_GRID.size == 71 and quant.SCALE_GRID[0] == pytest.approx(0.35) \
        and quant.SCALE_GRID[-1] == pytest.approx(2.0)


SCORE_TOOL = "/work/shared/tools/score_predictions.py"


def test_calibrate_cli_adaptive_rows_and_the_score_tool_agree(tmp_path, monkeypatch):
    """`hourmm calibrate DATA --predictions` with the adaptive scale: result.json has the adaptive
    `seasonal` row next to `seasonal_fixed`; the predictions file is the adaptive model's p and
    /work/shared/tools/score_predictions.py scores it exactly like our table."""
    import json
    import os
    import subprocess
    import sys

    from hourmm_core.research import calibrate_cli

    if not os.path.exists(SCORE_TOOL):
        pytest.skip("score tool not available")
    d = tmp_path / "data"
    d.mkdir()
    with gzip.open(MAY, "rt") as src, gzip.open(d / "BTCUSDT-1m-2025-05.csv.gz", "wt") as dst:
        for _ in range(2 * 1440):
            dst.write(src.readline())
    monkeypatch.setenv("PRICER_SCALE_WINDOW_DAYS", "1")
    monkeypatch.setenv("PRICER_SCALE_PRIOR_HOURS", "6")
    out, preds = tmp_path / "out", tmp_path / "preds.csv"
    assert calibrate_cli.main([str(d), "--out", str(out), "--predictions", str(preds), "--no-plots",
                               "--train-span", "2025-04-30:2025-05-03", "--valid-span", "2025-05-02:2025-05-03"]) == 0
    res = json.loads((out / "result.json").read_text())
    tab = res["table"]["train"]
    assert set(tab) == {"const", "rv60", "legacy_ewma", "seasonal", "seasonal_fixed"}
    assert res["params"]["PRICER_SCALE_WINDOW_DAYS"] == 1 and tab["seasonal"]["n"] == 47 * 59
    assert tab["seasonal"]["logloss"] != tab["seasonal_fixed"]["logloss"]
    tool = json.loads(subprocess.run([sys.executable, SCORE_TOOL, str(d / "BTCUSDT-1m-2025-05.csv.gz"), "--project",
                                      str(preds)], capture_output=True, text=True, timeout=120, check=True).stdout)
    assert tool["points"] == tab["seasonal"]["n"] and tool["project"]["coverage"] == 1.0
    assert tool["project"]["brier"] == pytest.approx(tab["seasonal"]["brier"], abs=1e-12)
    assert tool["project"]["logloss"] == pytest.approx(tab["seasonal"]["logloss"], abs=1e-12)


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_container_a_builder_warm_start_then_live_equals_the_batch_model(impl):
    """Container A's SnapshotBuilder with the adaptive scale (1-day window): warmed from 6 h of real
    klines while live trades are kept (begin_history / warm_minute_pricer / install_history, as
    PricerService does), then 24 h of real minutes as trades: fair_up == the batch model's p at
    every protocol point to 1e-9, across 24 hour-close updates of the scale."""
    from hourmm_core.binance.messages import Trade
    from hourmm_core.pricing.snapshot import SnapshotBuilder

    a = np.loadtxt(gzip.open(MAY, "rt"), delimiter=",", usecols=(0, 1, 2, 3, 4), max_rows=30 * 60 + 7)
    kl = {"open_ms": a[:, 0].astype(np.int64), "open": a[:, 1], "high": a[:, 2], "low": a[:, 3], "close": a[:, 4]}
    cfg = PricerConfig.from_env({"PRICER_SCALE_WINDOW_DAYS": "1", "PRICER_SCALE_PRIOR_HOURS": "6"})
    prm = kcal.SeasonalParams.from_config(cfg)
    pts = kcal.kline_points(kl["open_ms"], kl["open"], kl["close"])
    batch = kcal.seasonal_predict(kl["open_ms"], kl["close"], pts, prm, kl["open"])
    _, sc, _ = quant.minute_scale_batch(kl["open_ms"], kl["open"], kl["close"], prm.season(), prm.halflife_min,
                                        prm.var_prior, prm.nu, prm.p_min, 24, 6.0)
    want = {(int(h), int(m)): p for h, m, p in zip(pts.hour_ms, pts.minute, batch)}
    b = SnapshotBuilder.from_config(cfg, core=quant if impl == "compiled" else R)
    assert b.scale_window_h == 24 and b.minute.var_scale == 1.0
    b.begin_history()
    tid, got, closes = 1, 0, 0
    warm = 6 * 60 + 3                       # live trades from minute 03 of hour 6; the klines arrive later
    for i in range(kl["open_ms"].size):
        if i == warm + 5:                   # the history arrives: klines before the first live trade's minute
            cut = b.history_cut_ms(int(kl["open_ms"][i]))
            assert cut == int(kl["open_ms"][warm])
            mp = b.warm_minute_pricer(kl["open_ms"][:i], kl["open"][:i], kl["close"][:i], cut)
            assert b.install_history(mp, i) == 4 * 5 and b.minute is mp
        if i == warm:                       # connected mid-hour: the open comes from the 1h kline
            b.on_connect(int(kl["open_ms"][i]))
        if i >= warm:
            for k, (ts, px) in enumerate(_trades(kl, i)):
                b.on_message(Trade("BTCUSDT", tid + k, float(px), 0.01, ts, ts, False), ts)
            tid += 4
        if i == warm:
            hs = b.hour.needs_klines()
            assert hs == int(kl["open_ms"][6 * 60])
            b.hour.set_open_from_klines(hs, float(kl["open"][6 * 60]))
        now = int(kl["open_ms"][i]) + 60_000
        key = (now - now % HOUR_MS, (now % HOUR_MS) // 60_000)
        if i >= warm + 5 and key in want:
            s = b.snapshot(now)
            assert s.fair_up == pytest.approx(want[key], abs=1e-9), key
            got += 1
            if key[1] == 1:     # the scale in force this hour == the batch's, updated at the hour close
                assert b.minute.var_scale == pytest.approx(sc[i], rel=1e-12)
                closes += 1
    assert got > 23 * 59 and closes >= 23 and b.minute.hour_closes >= 29
    assert len(set(np.round(sc[6 * 60:], 12))) > 10       # the scale moved hour to hour
