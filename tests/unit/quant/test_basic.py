"""Known-value and smoke tests of the compiled quant core (vol, features, pricer)."""
import math

import numpy as np
import pytest
from scipy.stats import norm
from scipy.stats import t as student_t

from hourmm_core import quant as q
from hourmm_core.quant import reference as R


def _gbm(n_s: int, sigma: float, seed: int, ticks_per_s: int = 5):
    rng = np.random.default_rng(seed)
    n = n_s * ticks_per_s
    ts = 1_700_000_000_000 + np.sort(rng.integers(0, n_s * 1000, n)).astype(np.int64)
    dt = np.diff(ts, prepend=ts[0]) / 1000.0
    logp = np.cumsum(rng.standard_normal(n) * sigma * np.sqrt(dt))
    return ts, 60_000.0 * np.exp(logp)


@pytest.mark.parametrize("S,K,tau,sig", [(101.0, 100.0, 600.0, 1e-4), (99.0, 100.0, 3000.0, 2e-4),
                                         (100.5, 100.0, 60.0, 5e-5), (60_000.0, 60_100.0, 1800.0, 1e-4)])
def test_digital_known_values_vs_normal_cdf(S, K, tau, sig):
    want = norm.cdf(math.log(S / K) / (sig * math.sqrt(tau)))
    want = min(max(want, 1e-6), 1 - 1e-6)
    assert q.digital_prob(S, K, tau, sig, 0.0, 1e-6) == pytest.approx(want, abs=1e-12)
    # hand value: ln(1.01)/(1e-4*sqrt(600)) = 4.0621... -> Phi = 0.99997569...
    assert q.digital_prob(101.0, 100.0, 600.0, 1e-4, 0.0, 0.0) == pytest.approx(0.9999756943791, abs=1e-12)


def test_digital_limits_and_clamp():
    assert q.digital_prob(100.0, 100.0, 0.0, 0.0) == 0.5
    assert q.digital_prob(100.0, 100.0, 100.0, 1e-4, nu=4.0) == 0.5
    assert q.digital_prob(100.01, 100.0, 0.0, 1e-4, p_min=0.001) == 0.999
    assert q.digital_prob(99.99, 100.0, 100.0, 0.0, p_min=0.001) == 0.001
    assert q.digital_prob(200.0, 100.0, 10.0, 1e-4, p_min=0.0) == 1.0
    with pytest.raises(ValueError):
        q.digital_prob(-1.0, 100.0, 10.0, 1e-4)
    with pytest.raises(ValueError):
        q.digital_prob(100.0, 100.0, 10.0, 1e-4, nu=1.5)
    with pytest.raises(ValueError):
        q.digital_prob(100.0, 100.0, 10.0, 1e-4, p_min=0.6)
    out = q.fair_prob_batch([100.0, float("nan")], [100.0, 100.0], [1.0, 1.0], [1e-4, 1e-4])
    assert out[0] == 0.5 and math.isnan(out[1])


@pytest.mark.parametrize("nu", [2.2, 3.0, 4.0, 7.5, 30.0, 500.0])
def test_student_t_cdf_matches_scipy(nu):
    for x in np.linspace(-30, 30, 121):
        assert q.student_t_cdf(float(x), nu) == pytest.approx(student_t.cdf(x, nu), abs=1e-12)
    # variance-matched digital
    z = 0.8
    scale = math.sqrt((nu - 2.0) / nu)
    p = q.digital_prob(math.exp(z * 1e-4 * 30.0), 1.0, 900.0, 1e-4, nu=nu, p_min=0.0)
    assert p == pytest.approx(student_t.cdf(z / scale, nu), abs=1e-11)


def test_fair_pricer_uncertainty():
    fp = q.FairPricer(0.0, 0.001)
    p = fp.update(1_000, 101.0, 100.0, 601_000, 2e-4, 4e-4)
    assert fp.tau_s == 600.0 and p == fp.p
    want_p = norm.cdf(math.log(1.01) / (2e-4 * math.sqrt(600)))
    want_alt = norm.cdf(math.log(1.01) / (4e-4 * math.sqrt(600)))
    assert fp.p == pytest.approx(want_p, abs=1e-12)
    assert fp.p_unc == pytest.approx(abs(want_p - want_alt), abs=1e-12)
    assert math.isnan(fp.update(1_000, float("nan"), 100.0, 601_000, 2e-4, 4e-4))
    assert fp.n_bad == 1 and math.isnan(fp.p_unc)
    r = R.FairPricer(0.0, 0.001)
    r.update(1_000, 101.0, 100.0, 601_000, 2e-4, 4e-4)
    fp.update(1_000, 101.0, 100.0, 601_000, 2e-4, 4e-4)
    assert (r.p, r.p_unc) == (fp.p, fp.p_unc)


def test_ewma_recovers_constant_sigma():
    sigma = 2e-4
    ts, px = _gbm(6 * 3600, sigma, seed=7)
    ev = q.EwmaVol((600.0, 3600.0), 1000, 1e-14)
    for t, p in zip(ts.tolist(), px.tolist()):
        ev.update(t, p)
    assert ev.ready
    assert ev.sigma_at(1) == pytest.approx(sigma, rel=0.05)
    assert ev.sigma == pytest.approx(sigma, rel=0.15)
    out = q.ewma_vol_batch(ts, px, (600.0, 3600.0), 1000, 1e-14)
    assert out.shape == (len(ts), 2)
    assert np.array_equal(out[-1], ev.sigmas())


def test_ewma_bad_ticks_counted_and_skipped():
    ev = q.EwmaVol()
    assert ev.update(1000, 100.0)
    assert not ev.update(2000, float("nan"))
    assert not ev.update(3000, -1.0)
    assert not ev.update(500, 100.0)
    assert ev.n_bad == 3
    assert not ev.ready
    with pytest.raises(ValueError):
        q.EwmaVol((0.0,))
    with pytest.raises(IndexError):
        ev.sigma_at(3)


def _ticks(kind):
    if kind == "gbm":
        return _gbm(2 * 3600, 1e-4, seed=3)
    from hourmm_core.data import load_first_hours  # 2 real hours when present, else the labelled synthetic stand-in
    d = load_first_hours(2)
    ts, px = np.asarray(d.ts_ms, dtype=np.int64), np.asarray(d.price, dtype=np.float64)
    if len(ts) > 200_000:
        ts, px = ts[:200_000], px[:200_000]
    return ts, px


@pytest.mark.parametrize("kind", ["gbm", "load_ticks"])
def test_features_vs_numpy(kind):
    ts, px = _ticks(kind)
    assert len(ts) > 1000 and np.all(np.diff(ts) >= 0)
    out = q.return_features_batch(ts, px)
    assert out.shape == (len(ts), 7)
    assert list(q.FEATURE_NAMES) == ["ret_1s", "ret_10s", "ret_1m", "ret_5m", "ret_hour", "rv_hour", "bv_hour"]
    # windows: price at or before ts - W (last of equal timestamps)
    for col, w in enumerate((1000, 10_000, 60_000, 300_000)):
        idx = np.searchsorted(ts, ts - w, side="right") - 1
        want = np.where(idx >= 0, np.log(px / px[np.maximum(idx, 0)]), np.nan)
        np.testing.assert_allclose(out[:, col], want, rtol=1e-9, atol=1e-13)
    # hour: open = first price of each hour
    hour = ts // 3_600_000
    first = np.searchsorted(hour, hour, side="left")
    np.testing.assert_allclose(out[:, 4], np.log(px / px[first]), rtol=1e-9, atol=1e-13)
    # rv/bv at the end of the last hour vs a direct 1 s grid computation
    h = hour[-1]
    sel = hour == h
    t_h, p_h = ts[sel], px[sel]
    start = h * 3_600_000
    last_grid = ts[-1] // 1000
    grid = np.arange(start // 1000 + 1, last_grid + 1) * 1000
    j = np.searchsorted(t_h, grid, side="left") - 1          # previous tick strictly before boundary
    samples = np.concatenate([[p_h[0]], np.where(j >= 0, p_h[np.maximum(j, 0)], p_h[0])])
    r = np.diff(np.log(samples))
    assert out[-1, 5] == pytest.approx(np.sum(r * r), rel=1e-9)
    assert out[-1, 6] == pytest.approx(np.pi / 2 * np.sum(np.abs(r[1:]) * np.abs(r[:-1])), rel=1e-9)


def test_features_streaming_explicit_open_and_bad_ticks():
    rf = q.ReturnFeatures()
    rf.set_hour_open(3_600_000, 100.0)
    assert rf.update(3_600_500, 101.0)
    assert rf.ret_hour == pytest.approx(math.log(1.01))
    assert math.isnan(rf.ret_1s)
    assert rf.update(3_601_600, 102.0)
    assert rf.ret_1s == pytest.approx(math.log(102.0 / 101.0))
    assert rf.rv_hour == pytest.approx(math.log(1.01) ** 2)
    assert not rf.update(3_601_000, 100.0)
    assert not rf.update(3_602_000, 0.0)
    assert rf.n_bad == 2
    with pytest.raises(ValueError):
        rf.set_hour_open(3_600_000, float("nan"))
    rf.set_hour_open(3_600_000, 102.0)          # same hour: only the open changes
    assert rf.ret_hour == 0.0 and rf.rv_hour == pytest.approx(math.log(1.01) ** 2)
    assert rf.update(7_200_001, 90.0)            # new hour rolls automatically
    assert rf.ret_hour == 0.0 and rf.rv_hour == 0.0 and rf.hour_start_ms == 7_200_000


def test_features_ring_buffer_grows_under_burst():
    # 1 tick per ms for 6 minutes: forces the ring to grow far past its initial size
    ts = np.arange(0, 360_000, dtype=np.int64) + 1_700_000_000_000
    px = 100.0 + np.sin(np.arange(len(ts)) / 1000.0)
    out = q.return_features_batch(ts, px)
    ref_idx = len(ts) - 1 - 300_000
    assert out[-1, 3] == pytest.approx(math.log(px[-1] / px[ref_idx]), rel=1e-12)


def test_unbuilt_extension_fails_loudly_with_build_instructions(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import hourmm_core
    src = Path(hourmm_core.__file__).parent
    shutil.copytree(src, tmp_path / "hourmm_core", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    # without the editable install's finder: it maps the missing submodules back to the checkout's
    # built .so files (setuptools' finder-based editable mode), which would hide the unbuilt copy
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
            "getattr(f, '__module__', '')]; import hourmm_core")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert p.returncode != 0
    assert "ImportError" in p.stderr
    assert "pip install -e ." in p.stderr and "build_ext --inplace" in p.stderr


def test_tick_pricer_matches_parts_and_warms_up():
    ts, px = _gbm(1800, 1e-4, seed=11)
    tp = q.TickPricer((30.0, 600.0), 1000, 1e-12, 0.0, 0.001)
    ev = q.EwmaVol((30.0, 600.0), 1000, 1e-12)
    assert not tp.ready
    for t, p in zip(ts.tolist(), px.tolist()):
        tp.update(t, p)
        ev.update(t, p)
    assert tp.ready and tp.sigma == ev.sigma
    hour_end = int(ts[-1]) - int(ts[-1]) % 3_600_000 + 3_600_000
    assert tp.hour_end_ms == hour_end and tp.tau_s == (hour_end - int(ts[-1])) / 1000.0
    want = q.digital_prob(float(px[-1]), tp.open_price, tp.tau_s, ev.sigma, 0.0, 0.001)
    assert tp.p == pytest.approx(want, rel=1e-12)
    want_alt = q.digital_prob(float(px[-1]), tp.open_price, tp.tau_s, ev.sigma_at(1), 0.0, 0.001)
    assert tp.p_unc == pytest.approx(abs(want - want_alt), rel=1e-9, abs=1e-12)
    assert math.isnan(tp.update(int(ts[-1]) + 1, -5.0)) and tp.n_bad == 1


def test_price_path_batch_out_buffers_give_the_same_numbers_and_bad_out_is_refused() -> None:
    import hourmm_core.quant as qq
    rng = np.random.default_rng(3)
    n = 5000
    ts = 1_768_000_000_000 + np.cumsum(rng.integers(1, 400, n)).astype(np.int64)
    px = 50_000.0 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    fresh = qq.price_path_batch(ts, px)
    buf = (np.full((n, 3), -1.0), np.full((n, 7), -1.0), np.full(n, -1.0))
    got = qq.price_path_batch(ts, px, out=buf)
    for a, b, c in zip(fresh, got, buf):
        assert b is c
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="out"):
        qq.price_path_batch(ts, px, out=(np.empty((n, 2)), np.empty((n, 7)), np.empty(n)))
    with pytest.raises(ValueError, match="out"):
        qq.price_path_batch(ts, px, out=np.empty(n))
