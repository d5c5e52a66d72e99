"""The compiled fair value of the simulator's agents (:class:`hourmm_core.sim.polymarket.fairpath.FairPath`,
``PricePath(fast=True)``) against its plain numpy reference twin (``PricePath(fast=False)``).

On REAL hours (2025-05-22 12:00Z-16:00Z, the backtest's klines + seeded bridge): every tick time, the
ms either side of it, hour boundaries, times before the hour and past its end, in a shuffled order
(the compiled path keeps the last hour and the last answer: a cache bug shows up as a mismatch),
with each hour's own realized vol and with a fixed sigma. A hand-made path (labelled synthetic: real
data has no hour without ticks and no price before its first tick) covers the empty hour, times
before the first tick and repeated timestamps.
"""
from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.sim.polymarket.agents import PricePath
from hourmm_core.sim.polymarket.fairpath import FairPath
from tests.conftest import real_ticks

H = 1_747_929_600_000 - 4 * HOUR_MS          # 2025-05-22 12:00Z


def _times(ts: np.ndarray, hours: list[int], rng: random.Random) -> list[tuple[int, int]]:
    out = []
    sample = ts[:: max(1, len(ts) // 3000)].tolist()
    for h in hours:
        for t in sample:
            for d in (-1, 0, 1):
                out.append((h, int(t) + d))
        for t in (h - 1, h, h + 1, h + HOUR_MS - 1, h + HOUR_MS, h + HOUR_MS + 5, h - HOUR_MS):
            out.append((h, t))
    rng.shuffle(out)
    for _ in range(200):                       # runs of the same instant (the flow's repeated asks)
        k = rng.randrange(len(out))
        out[k + 1:k + 1] = [out[k]] * rng.randrange(1, 4)
    return out


@pytest.mark.parametrize("sigma", [None, 7e-5])
def test_fair_up_equals_reference_on_real_hours(sigma):
    ts, px = real_ticks(H - HOUR_MS, H + 4 * HOUR_MS)
    ticks = SimpleNamespace(ts_ms=ts, price=px)
    fast, ref = PricePath(ticks, sigma=sigma, fast=True), PricePath(ticks, sigma=sigma, fast=False)
    assert isinstance(fast.core, FairPath) and ref.core is None
    hours = [H - HOUR_MS + k * HOUR_MS for k in range(6)]          # the last one has no ticks loaded
    n_mid = 0
    for h, t in _times(ts, hours, random.Random(5)):
        got, want = fast.fair_up(h, t), ref.fair_up(h, t)
        assert got == want, (h, t, got, want)
        assert type(got) is float
        n_mid += 0.01 < want < 0.99 and want != 0.5
    assert n_mid > 1000                        # real values, not only the 0.5 of the edge cases
    for t in ts[::997].tolist() + [int(ts[0]) - 1, int(ts[-1]) + 10]:
        assert fast.price_at(t) == ref.price_at(t)
    for h in hours + [H + 30 * 60_000]:
        assert fast.hour_open(h) == ref.hour_open(h)


def test_fair_up_equals_reference_on_a_path_with_gaps():
    """Synthetic (a shape real data lacks): an hour with no ticks, prices before the first tick,
    repeated timestamps, a tick exactly at an hour start."""
    h0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
    ts = np.array([h0 + 10, h0 + 10, h0 + 500, h0 + HOUR_MS, h0 + HOUR_MS + 7, h0 + 3 * HOUR_MS + 1,
                   h0 + 3 * HOUR_MS + 1, h0 + 3 * HOUR_MS + 90_000], dtype=np.int64)
    px = np.array([100.0, 100.5, 99.0, 101.0, 101.5, 98.0, 98.5, 97.0])
    ticks = SimpleNamespace(ts_ms=ts, price=px)
    fast, ref = PricePath(ticks), PricePath(ticks, fast=False)
    for h in (h0 - HOUR_MS, h0, h0 + HOUR_MS, h0 + 2 * HOUR_MS, h0 + 3 * HOUR_MS):
        for t in list(range(h0 - 5, h0 + 600, 7)) + [int(x) + d for x in ts for d in (-1, 0, 1)] + \
                 [h + HOUR_MS - 1, h + HOUR_MS, h + 2_000_000]:
            assert fast.fair_up(h, t) == ref.fair_up(h, t), (h, t)
        assert fast.hour_open(h) == ref.hour_open(h)
    assert fast.hour_open(h0 + 2 * HOUR_MS) is None and fast.price_at(h0) is None
    assert fast.fair_up(h0 + 2 * HOUR_MS, h0 + 2 * HOUR_MS + 5) == 0.5


def test_bad_prices_raise_like_the_reference():
    h0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS
    ticks = SimpleNamespace(ts_ms=np.array([h0 + 1, h0 + 2], dtype=np.int64), price=np.array([100.0, -1.0]))
    fast, ref = PricePath(ticks), PricePath(ticks, fast=False)
    with pytest.raises(ValueError) as e_ref:
        ref.fair_up(h0, h0 + 5)
    with pytest.raises(ValueError) as e_fast:
        fast.fair_up(h0, h0 + 5)
    assert str(e_fast.value) == str(e_ref.value)
    with pytest.raises(ValueError):
        FairPath(np.zeros(3, dtype=np.int64), np.zeros(2), lambda h: 1e-4)
