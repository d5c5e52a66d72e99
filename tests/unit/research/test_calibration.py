"""Calibration metrics on constructed cases, hour sampling, and the tuning split."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.research import calibrate_cli
from hourmm_core.research import calibration as cal

H0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def _need_quant():
    try:
        return cal._quant()
    except ImportError as exc:  # the compiled core is another module; skip only when it is absent
        pytest.skip(f"compiled core not built: {exc}")


# ----------------------------------------------------------------- metrics
def test_perfect_forecaster_scores_zero():
    y = np.array([1, 0, 1, 1, 0, 0, 1], dtype=float)
    assert cal.brier_score(y, y) == 0.0
    assert cal.log_loss(y, y, eps=1e-9) < 1e-8


def test_constant_half_forecaster_is_the_textbook_baseline():
    rng = np.random.default_rng(1)
    y = (rng.random(1000) < 0.3).astype(float)
    p = np.full(y.size, 0.5)
    assert cal.brier_score(p, y) == pytest.approx(0.25)
    assert cal.log_loss(p, y) == pytest.approx(math.log(2.0))


def test_constant_forecaster_at_base_rate():
    y = np.array([1.0] * 30 + [0.0] * 70)
    p = np.full(100, 0.3)
    # Brier of the climatological forecast is the outcome variance b(1-b); log loss is its entropy.
    assert cal.brier_score(p, y) == pytest.approx(0.3 * 0.7)
    assert cal.log_loss(p, y) == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)))
    # a confidently wrong forecaster is worse than 0.5
    wrong = 1.0 - y
    assert cal.brier_score(wrong, y) == 1.0
    assert cal.log_loss(wrong, y) > 10 * math.log(2)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        cal.brier_score([0.5, 1.2], [0, 1])
    with pytest.raises(ValueError):
        cal.log_loss([0.5, 0.5], [0, 2])
    with pytest.raises(ValueError):
        cal.brier_score([0.5], [0, 1])
    with pytest.raises(ValueError):
        cal.log_loss([float("nan")], [1])
    assert math.isnan(cal.brier_score([], []))


def test_reliability_binning():
    p = np.array([0.0, 0.05, 0.099, 0.1, 0.55, 0.55, 0.95, 1.0])
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    rc = cal.reliability_curve(p, y, n_bins=10)
    assert rc.edges[0] == 0.0 and rc.edges[-1] == 1.0 and len(rc.edges) == 11
    assert rc.count.tolist() == [3, 1, 0, 0, 0, 2, 0, 0, 0, 2]
    assert rc.count.sum() == p.size
    assert rc.mean_pred[0] == pytest.approx((0.0 + 0.05 + 0.099) / 3)
    assert rc.obs_freq[0] == pytest.approx(1 / 3)
    assert rc.obs_freq[5] == pytest.approx(0.5)
    assert rc.obs_freq[9] == 1.0  # p == 1.0 lands in the last bin
    assert math.isnan(rc.obs_freq[2]) and math.isnan(rc.mean_pred[2])
    rows = rc.rows()
    assert rows[9]["hi"] == 1.0 and rows[9]["count"] == 2


def test_reliability_of_calibrated_forecaster_follows_diagonal():
    rng = np.random.default_rng(3)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(float)
    rc = cal.reliability_curve(p, y, n_bins=5)
    assert np.all(np.abs(rc.obs_freq - rc.mean_pred) < 0.01)


# ----------------------------------------------------------------- hour sampling
def _ticks_for_hours(opens_closes, step_ms=10_000):
    """Hours with a straight price line from open to close, a tick every step_ms."""
    ts, px = [], []
    for h, (o, c) in enumerate(opens_closes):
        t = H0 + h * HOUR_MS + np.arange(0, HOUR_MS, step_ms)
        ts.append(t)
        px.append(np.linspace(o, c, t.size))
    return np.concatenate(ts).astype(np.int64), np.concatenate(px)


def test_hourly_samples_outcomes_and_tau():
    oc = [(100.0, 101.0), (101.0, 99.0), (99.0, 99.0), (99.0, 98.0)]
    ts, px = _ticks_for_hours(oc)
    s = cal.hourly_samples(ts, px, step_ms=60_000, warmup_ms=0)
    assert s.n_hours == 4 and s.y.size == 4 * 60
    per_hour = s.y.reshape(4, 60)
    assert per_hour[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]  # a flat hour (close == open) is Up
    assert np.all(per_hour == per_hour[:, :1])
    assert s.tau_s[0] == 3600.0 and s.tau_s[59] == 60.0
    assert np.all(s.S[::60] == s.K[::60])  # first sample sees the opening tick
    # every sample's tick is inside its own hour and not after the sample time
    assert np.all(ts[s.tick_idx] <= s.ts_ms)
    assert np.all(ts[s.tick_idx] // HOUR_MS == s.hour_start_ms // HOUR_MS)
    # warm-up skips the first hour
    assert cal.hourly_samples(ts, px, warmup_ms=HOUR_MS).n_hours == 3


def test_incomplete_hours_are_dropped():
    ts, px = _ticks_for_hours([(100.0, 101.0), (101.0, 102.0), (102.0, 103.0)])
    # cut the middle of hour 1 out: its close would be taken from the gap edge
    gap = (ts > H0 + HOUR_MS + 10 * 60_000) & (ts < H0 + 2 * HOUR_MS + 20 * 60_000)
    hs, first, last = cal.complete_hours(ts[~gap])
    assert hs.tolist() == [H0]
    with pytest.raises(ValueError):
        cal.as_arrays((ts[::-1], px))


def test_long_run_sigma_recovers_known_vol():
    rng = np.random.default_rng(5)
    sigma = 2e-4
    n = 200_000
    ts = H0 + np.arange(n, dtype=np.int64) * 1000
    px = 50_000 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    assert cal.long_run_sigma(ts, px) == pytest.approx(sigma, rel=0.01)


# ----------------------------------------------------------------- pricer path
def _gbm(hours, seed=11, sigma=1.5e-4):
    rng = np.random.default_rng(seed)
    n = hours * 3600
    ts = H0 + np.arange(n, dtype=np.int64) * 1000
    px = 60_000 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
    return ts, px


def test_calibrate_beats_half_and_sharpens_near_close():
    _need_quant()
    ts, px = _gbm(14)
    res = cal.calibrate((ts, px, "gbm-test"), cal.PricerParams(halflives_s=(600.0,)))
    assert res.source == "gbm-test" and res.n_hours == 13
    pr, half = res.score("pricer"), res.score("const_0.5")
    assert half.brier == pytest.approx(0.25)
    assert pr.brier < half.brier and pr.log_loss < half.log_loss
    last, first = res.by_minutes_left[0], res.by_minutes_left[-1]
    assert last["pricer.brier"] < first["pricer.brier"]
    text = cal.format_table(res)
    assert "gbm-test" in text and "const_sigma" in text


def test_tuning_never_touches_the_test_span():
    _need_quant()
    ts, px = _gbm(10, seed=21)
    split = H0 + 6 * HOUR_MS
    grid = cal.TuneGrid(halflife_s=(60.0, 600.0), sample_ms=(1000, 5000), nu=(0.0, 5.0))
    a = cal.tune((ts, px), split_ms=split, grid=grid)
    # rewrite the later span completely: wild vol, a crash; the training choice must not move
    px2 = px.copy()
    after = ts >= split
    rng = np.random.default_rng(99)
    px2[after] = px[after][0] * np.exp(np.cumsum(3e-3 * rng.standard_normal(after.sum()))) * 0.5
    b = cal.tune((ts, px2), split_ms=split, grid=grid)
    assert a.best == b.best
    assert a.table == b.table
    assert a.train_hours == b.train_hours == 5  # hour 0 is warm-up
    assert a.test_hours == 4  # hours 6..9
    assert a.test.score("pricer").log_loss != b.test.score("pricer").log_loss
    assert all(t >= split for t in a.test.span_ms)
    assert len(a.table) == grid.size()
    assert a.best.halflives_s[0] in grid.halflife_s


def test_cli_writes_report_and_config(tmp_path, monkeypatch):
    _need_quant()
    ts, px = _gbm(8, seed=4)
    # the data module's own loader is tested with it; here the CLI gets known ticks
    monkeypatch.setattr(calibrate_cli, "load_history", lambda data, hours=None: (ts, px, "gbm-test"))
    rc = calibrate_cli.main(["x", "--out", str(tmp_path / "out"), "--tune", "--grid-halflife", "60,300",
                   "--grid-sample-ms", "1000", "--grid-nu", "0",
                   "--write-config", str(tmp_path / "tuned.yaml")])
    assert rc == 0
    for f in ("index.html", "reliability.png", "minutes_left.png", "result.json"):
        assert (tmp_path / "out" / f).stat().st_size > 100
    import yaml

    tuned = yaml.safe_load((tmp_path / "tuned.yaml").read_text())
    assert set(tuned) == {"VOL_HALFLIVES_S", "VOL_SAMPLE_MS", "PRICER_NU", "PRICER_P_MIN"}
    assert tuned["VOL_HALFLIVES_S"].split(",")[0] in ("60", "300")


def test_cli_bad_args_exit_code():
    assert calibrate_cli.main(["--bins", "notanumber"]) == 2


# ----------------------------------------------------------------- ECE noise floor (synthetic shocks: a property of the metric)
def _ece_by_loop(var_min, seed, minutes=range(1, 60)):
    """One repetition of perfect_forecaster_ece written out point by point (independent of its vectorisation)."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((1,) + var_min.shape)[0]
    ps, ys = [], []
    for h in range(var_min.shape[0]):
        r = z[h] * np.sqrt(var_min[h])
        y = float(r.sum() >= 0)
        for m in minutes:
            ps.append(norm.cdf(r[:m].sum() / math.sqrt(var_min[h, m:].sum())))
            ys.append(y)
    return cal.expected_calibration_error(np.array(ps), np.array(ys))


def test_perfect_forecaster_ece_matches_a_point_by_point_loop():
    rng = np.random.default_rng(5)
    v = rng.uniform(0.5, 2.0, (30, 60)) * 1e-7
    got = cal.perfect_forecaster_ece(v, n_rep=1, seed=11)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(_ece_by_loop(v, 11), abs=1e-12)
    # a minutes-left bucket: the same draws, only those points scored
    sub = cal.perfect_forecaster_ece(v, n_rep=1, seed=11, minutes=range(50, 60))
    assert sub[0] == pytest.approx(_ece_by_loop(v, 11, range(50, 60)), abs=1e-12)
    assert sub[0] != pytest.approx(got[0])


def test_perfect_forecaster_ece_is_sampling_noise_that_shrinks_with_hours():
    v = np.full((100, 60), 1e-7)
    small = cal.perfect_forecaster_ece(v, n_rep=200, seed=1)
    big = cal.perfect_forecaster_ece(np.tile(v, (16, 1)), n_rep=50, seed=2)
    assert np.all(small > 0)
    # a correct forecaster: the ECE is noise ~ 1/sqrt(hours): 16x the hours, about a quarter of it
    assert 0.15 < np.median(big) / np.median(small) < 0.4


def test_perfect_forecaster_bins_are_calibrated_when_pooled():
    """Pooled over many simulated hours, the correct-by-construction forecaster's outcome rate matches its
    mean p in every bin (what makes its ECE pure noise); the ECE is the bins' absolute gaps."""
    rng = np.random.default_rng(2)
    v = rng.uniform(0.3, 3.0, (400, 60)) * 1e-7
    b = cal.perfect_forecaster_bins(v, n_rep=60, seed=3)
    c, sp, sy = b["count"].sum(axis=0), b["sum_p"].sum(axis=0), b["sum_y"].sum(axis=0)
    assert c.sum() == 60 * 400 * 59 and np.all(c > 0)
    assert np.all(np.abs(sy / c - sp / c) < 0.015)
    e = cal.perfect_forecaster_ece(v, n_rep=60, seed=3)
    assert e == pytest.approx(np.abs(b["sum_p"] - b["sum_y"]).sum(axis=1) / (400 * 59), abs=1e-15)


def test_perfect_forecaster_ece_rejects_bad_input():
    for bad in (np.ones((3, 59)), np.ones(60), -np.ones((2, 60)), np.full((2, 60), np.nan)):
        with pytest.raises(ValueError):
            cal.perfect_forecaster_ece(bad, n_rep=1)
    for minutes in ([0, 1], [60], []):
        with pytest.raises(ValueError):
            cal.perfect_forecaster_ece(np.ones((2, 60)), n_rep=1, minutes=minutes)


def test_ece_bootstrap_by_hour_resamples_whole_hours():
    rng = np.random.default_rng(0)
    hours = np.repeat(np.arange(300), 59)
    p = rng.random(hours.size)
    y_cal = np.repeat((rng.random(300) < 0.5).astype(float), 59)
    lo, hi = cal.ece_bootstrap_by_hour(p, y_cal, hours, n=300)
    e = cal.expected_calibration_error(p, y_cal)
    assert lo < e < hi
    # a forecaster that is off by 0.3 everywhere: the whole interval sits near the gap
    lo2, hi2 = cal.ece_bootstrap_by_hour(np.clip(p * 0.4, 0, 1), (rng.random(hours.size) < np.clip(p * 0.4 + 0.3, 0, 1)).astype(float),
                                         hours, n=300)
    assert 0.25 < lo2 < hi2 < 0.35
    assert cal.ece_bootstrap_by_hour(p[:0], y_cal[:0], hours[:0]) == [pytest.approx(math.nan, nan_ok=True)] * 2


# ----------------------------------------------------------------- ECE context on real klines (hourmm calibrate)
REAL_MAY = __import__("pathlib").Path("/work/shared/data/BTCUSDT-1m-2025-05.csv.gz")


def _may_slice(tmp_path, days=2):
    import gzip

    if not REAL_MAY.exists():
        pytest.skip("real kline data not available")
    d = tmp_path / "data"
    d.mkdir()
    with gzip.open(REAL_MAY, "rt") as src, gzip.open(d / "BTCUSDT-1m-2025-05.csv.gz", "wt") as dst:
        for _ in range(days * 1440):
            dst.write(src.readline())
    return d


def test_floor_variances_are_the_ones_the_model_priced_minute_1_with(tmp_path):
    """hour_minute_variances' `forecast` rows sum (minutes 1..59) to the V the shipped model priced each
    hour's minute-1 point with: Phi(x / sqrt(that sum)) == the model's p there (real May klines)."""
    from scipy.special import ndtr

    from hourmm_core.config import PricerConfig
    from hourmm_core.data.binance_dumps import load_klines
    from hourmm_core.research import kline_calibration as kcal

    _need_quant()
    kl = load_klines(_may_slice(tmp_path))
    om, op, cl = kl["open_ms"], kl["open"], kl["close"]
    pts = kcal.kline_points(om, op, cl)
    for env in ({}, {"PRICER_SCALE_WINDOW_DAYS": "0"}):      # adaptive (shipped) and fixed scale
        prm = kcal.SeasonalParams.from_config(PricerConfig.from_env(env))
        p = kcal.seasonal_predict(om, cl, pts, prm, op)
        m1 = pts.minute == 1
        v = kcal.hour_minute_variances(om, op, cl, prm, pts.hour_ms[m1])
        mine = np.clip(ndtr(np.log(pts.S[m1] / pts.K[m1]) / np.sqrt(v["forecast"][:, 1:].sum(axis=1))),
                       prm.p_min, 1 - prm.p_min)
        assert np.max(np.abs(mine - p[m1])) < 1e-12
        i0 = pts.i0[m1]
        assert np.allclose(v["realised"][:, 0], np.log(cl[i0] / op[i0]) ** 2, rtol=1e-8, atol=1e-18)
        assert np.allclose(v["realised"][:, 7], np.log(cl[i0 + 7] / cl[i0 + 6]) ** 2, rtol=1e-8, atol=1e-18)
    with pytest.raises(ValueError, match="60 minutes"):
        kcal.hour_minute_variances(om, op, cl, prm, np.array([om[0]]))        # no minute before it
    with pytest.raises(ValueError, match="60 minutes"):
        kcal.hour_minute_variances(om, op, cl, prm, np.array([om[-1] - 59 * 60_000 + 60_000]))


def test_calibrate_reports_the_ece_context(tmp_path):
    import json

    _need_quant()
    d = _may_slice(tmp_path)
    out = tmp_path / "out"
    assert calibrate_cli.main([str(d), "--out", str(out), "--no-plots", "--ece-floor", "40",
                               "--train-span", "2025-04-30:2025-05-03", "--valid-span", "2025-05-02:2025-05-03"]) == 0
    res = json.loads((out / "result.json").read_text())
    for span, hours in (("train", 47), ("valid", 23)):
        cx = res["ece_context"][span]
        assert cx["ece"] == pytest.approx(res["table"][span]["seasonal"]["ece"], abs=1e-15)
        assert cx["hours"] == hours and cx["reps"] == 40
        assert 0 < cx["perfect_median"] <= cx["perfect_p90"] < 1
        assert 0 <= cx["perfect_share_ge_model"] <= 1 and 0 <= cx["perfect_share_le_0.01"] <= 1
        lo, hi = cx["ece_hour_bootstrap_95"]
        assert 0 <= lo < hi
    # fewer hours, a higher floor: the 23 validation hours are noisier than the 47 training hours
    assert res["ece_context"]["valid"]["perfect_median"] > res["ece_context"]["train"]["perfect_median"]
    assert calibrate_cli.main([str(d), "--out", str(out), "--no-plots", "--ece-floor", "0",
                               "--train-span", "2025-04-30:2025-05-03", "--valid-span", "2025-05-02:2025-05-03"]) == 0
    assert json.loads((out / "result.json").read_text())["ece_context"] == {}
