"""The features' history buffer (features.pxd, session 9): a linear buffer with sentinels that
``feat_room`` compacts (moves the live entries to the front) or doubles. The short Hypothesis paths
of test_properties never fill the initial buffer, so these tests run paths that compact and grow it
many times and compare with the reference twin (bisection over Python lists, no buffer at all)."""
from __future__ import annotations

import numpy as np
import pytest

from hourmm_core import quant as q
from hourmm_core.quant import reference as R


@pytest.fixture(scope="module")
def hours():
    """2 real hours (1m klines + bridge, ~36k ticks; the labelled synthetic stand-in without the data):
    long enough that the buffer grows and then compacts many times as the 5-minute window slides."""
    from hourmm_core.data import load_first_hours
    d = load_first_hours(2)
    return np.asarray(d.ts_ms, dtype=np.int64), np.asarray(d.price, dtype=np.float64)


def _same(a, b, rel=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    assert m.sum() > 0
    np.testing.assert_allclose(a[m], b[m], rtol=rel, atol=1e-300)


@pytest.mark.parametrize("which", ["hours", "trades"])
def test_compact_and_grow_like_the_reference(which, request):
    # real hours: the buffer compacts again and again as the window slides; the real trade slice
    # (19,904 trades in 11 minutes): thousands of distinct ms in 5 minutes grow it from 1024
    ts, px = request.getfixturevalue(which)
    got = q.return_features_batch(ts, px)
    _same(got, R.return_features_batch(ts, px))
    # the 5-minute return is defined from 5 minutes after the first trade on
    assert np.isfinite(got[ts >= ts[0] + 300_000, 3]).all()
    # the streaming object (feat_step: room for one entry at a time) gives the batch's numbers bit for bit
    rf = q.ReturnFeatures()
    rows = []
    for t, p in zip(ts.tolist(), px.tolist()):
        rf.update(t, p)
        rows.append(rf.values())
    assert np.array_equal(np.array(rows), got, equal_nan=True)


def test_reset_after_a_long_stream_starts_clean(hours):
    # reset() must leave no old entry a window could find (every slot back to the sentinel)
    ts, px = hours
    used = q.ReturnFeatures()
    half = ts.size // 2
    for t, p in zip(ts[:half].tolist(), px[:half].tolist()):
        used.update(t, p)
    used.reset()
    fresh = q.ReturnFeatures()
    later_ts, later_px = ts[half:].tolist(), px[half:].tolist()
    a, b = [], []
    for t, p in zip(later_ts, later_px):
        used.update(t, p)
        fresh.update(t, p)
        a.append(used.values())
        b.append(fresh.values())
    assert np.array_equal(np.array(a), np.array(b), equal_nan=True)
    assert np.isnan(a[0][:4]).all()          # right after the reset no window reaches back yet


def test_gaps_bad_ticks_and_bursts_against_the_reference(hours):
    # real hours with a 10-minute gap, backwards times, bad prices and a burst of one tick per ms
    # (synthetic edits of real ticks: shapes the data lacks)
    ts, px = hours
    ts, px = ts.copy(), px.copy()
    ts[12_000:] += 600_000
    rng = np.random.default_rng(9)
    px[rng.integers(0, ts.size, 40)] = np.nan
    px[rng.integers(0, ts.size, 40)] = -1.0
    back = rng.integers(1, ts.size, 40)
    ts[back] = ts[back - 1] - 5
    burst_t = np.arange(ts[15_000], ts[15_000] + 3_000, dtype=np.int64)
    ts = np.concatenate([ts[:15_000], burst_t, ts[15_000:] + 3_000])
    px = np.concatenate([px[:15_000], np.full(burst_t.size, px[14_999]) * (1 + 1e-6 * np.arange(burst_t.size)),
                         px[15_000:]])
    got = q.return_features_batch(ts, px)
    _same(got, R.return_features_batch(ts, px))
    s, f, p = q.price_path_batch(ts, px)
    assert np.array_equal(f, got, equal_nan=True)
    tp = q.TickPricer()
    streamed = np.array([tp.update(t, x) for t, x in zip(ts.tolist(), px.tolist())])
    ok = np.isfinite(streamed)
    assert ok.mean() > 0.99
    assert np.array_equal(streamed[ok], p[ok])
