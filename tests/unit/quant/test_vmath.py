"""The core's vector erfc/log (hourmm_core/quant/hmm_vmath.h, glibc's libmvec when the build found it).

``fair_prob_batch`` and ``minute_path_batch`` (normal model) price in blocks: log over the block, then
erfc over the block; the streaming/scalar calls (``digital_prob``, ``MinutePricer.price``) run one value
through the same vector routine. Checked here: the blocks give bit for bit the scalar calls (every
block tail length, the edge rows mixed in), and the vector math stays within a few ulp of Python's
libm (``math.erfc``/``math.log``, what the reference twins call), far inside the model's 1e-9
batch/streaming contract. Prices: the real Binance trade slice (/work/shared/data); the edge rows
(S == K, expired, NaN, zero sigma, bad K) are synthetic: real ticks do not have them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core import quant as q
from hourmm_core.config import PricerConfig
from hourmm_core.quant import reference as R

HOUR = 3_600_000
SEASON = np.asarray(PricerConfig.from_env({}).season(), dtype=np.float64)


def test_the_build_says_which_math_it_uses():
    assert q.VMATH in ("libmvec-avx2", "libmvec-sse2", "libm-scalar")


def _rows(ts, px, n):
    """n fair_prob rows from the real ticks (K = the hour's first tick, tau to the hour's end, sigma
    varied over 3 decades so erfc sees both of glibc's branches), then the synthetic edge rows."""
    t, s = ts[:n], px[:n]
    k = np.full(n, px[0])
    tau = ((t - t % HOUR + HOUR) - t) / 1000.0
    sig = np.geomspace(1e-6, 1e-3, n) if n > 1 else np.full(n, 1e-4)
    return s.copy(), k, tau, sig


EDGE = [(100.0, 100.0, 30.0, 1e-4), (101.0, 100.0, 0.0, 1e-4), (99.0, 100.0, -5.0, 1e-4), (101.0, 100.0, 30.0, 0.0),
        (math.nan, 100.0, 30.0, 1e-4), (101.0, -1.0, 30.0, 1e-4), (101.0, 100.0, math.nan, 1e-4),
        (101.0, 100.0, 30.0, math.inf), (math.inf, 100.0, 30.0, 1e-4), (1e-300, 1e300, 30.0, 1e-4)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 127, 128, 129, 300, 1000])
def test_fair_prob_batch_blocks_equal_the_scalar_call_bit_for_bit(trades, n):
    S, K, tau, sig = _rows(*trades, n)
    # the edge rows land at several places in and across the 128-row blocks
    for j, row in enumerate(EDGE):
        at = (j * 37) % (n + 1)
        S, K, tau, sig = (np.insert(a, at, v) for a, v in zip((S, K, tau, sig), row))
    got = q.fair_prob_batch(S, K, tau, sig)
    want = []
    for a, b, c, d in zip(S.tolist(), K.tolist(), tau.tolist(), sig.tolist()):
        try:
            want.append(q.digital_prob(a, b, c, d))
        except ValueError:
            want.append(math.nan)
    np.testing.assert_array_equal(got, np.array(want))          # NaN where NaN, otherwise exact
    assert np.isnan(got).sum() == 4                               # NaN S, bad K, NaN tau, inf S


def test_vector_math_is_within_a_few_ulp_of_libm(trades):
    """Against the reference twin (Python's math.erfc/math.log): the vector routines' error bound."""
    S, K, tau, sig = _rows(*trades, 5000)
    got = q.fair_prob_batch(S, K, tau, sig)
    want = np.array([R.digital_prob(a, b, c, d) for a, b, c, d in zip(S.tolist(), K.tolist(), tau.tolist(), sig.tolist())])
    assert 0.001 <= got.min() < 0.2 and 0.8 < got.max() <= 0.999       # both tails and the middle
    # erfc's few-ulp error plus the argument's (log, division) amplified in the tail by
    # d ln erfc(u)/du ~ 2u: up to ~20 ulp relative near the clamp; a couple of ulp of p absolute
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    assert np.abs(got - want).max() <= 4.5e-16          # a couple of ulp of p near 0.5-1
    if q.VMATH == "libm-scalar":                                        # the fallback is libm itself
        np.testing.assert_array_equal(got, want)


def test_minute_path_blocks_equal_the_streaming_pricer_bit_for_bit(trades):
    """Every 250 ms of the real slice (across 00:00, > 128 instants per block), K moved around the
    price so p spans the clamp, S == K rows, and bad strikes: the block pass == MinutePricer.price."""
    ts, px = trades
    grid = np.arange(ts[0] - 2000, ts[-1] + 5000, 250, dtype=np.int64)           # some before any tick
    hend = (grid // HOUR + 1) * HOUR
    rng = np.random.default_rng(11)
    j = np.clip(np.searchsorted(ts, grid, side="left") - 1, 0, ts.size - 1)
    K = px[j] * np.exp(rng.normal(0.0, 5e-4, grid.size))
    K[::97] = px[j[::97]]                         # at the strike (the last trade before the instant)
    K[5::211] = np.nan
    K[7::307] = -1.0
    p = q.minute_path_batch(ts, px, grid, K, hend, SEASON, 60.0, 2.6e-7)
    mp, i, want = q.MinutePricer(SEASON, 60.0, 2.6e-7), 0, []
    for g, k_, e in zip(grid.tolist(), K.tolist(), hend.tolist()):
        while i < ts.size and ts[i] < g:
            mp.on_trade(int(ts[i]), float(px[i]))
            i += 1
        want.append(mp.price(g, float(px[i - 1]), k_, e) if i else math.nan)
    np.testing.assert_array_equal(p, np.array(want))
    ok = np.isfinite(p)
    assert np.isnan(p[:8]).all() and (p[ok] == 0.5).sum() > 20 and p[ok].min() == 0.001 and p[ok].max() == 0.999
