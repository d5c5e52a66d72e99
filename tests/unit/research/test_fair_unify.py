"""The backtest's fair value is container A's: research/fair.py vs SnapshotBuilder on a real hour.

Real BTCUSDT 1m klines (2025-05-06 10:00..12:00 UTC) through hourmm_core.data's bridge; the
first hour warms the estimators up, the second is compared at every 10 s grid instant.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from hourmm_core.binance.messages import Trade
from hourmm_core.clock import HOUR_MS
from hourmm_core.config import PricerConfig
from hourmm_core.pricing.snapshot import SnapshotBuilder
from hourmm_core.research import fair
from tests.conftest import REAL_DATA

pytestmark = pytest.mark.timeout(240)
DATA = str(REAL_DATA)


@pytest.fixture(scope="module")
def ticks():
    from hourmm_core import data

    t0 = int(datetime(2025, 5, 6, 10, tzinfo=timezone.utc).timestamp() * 1000)
    tk = data.load_ticks(t0, t0 + 2 * HOUR_MS, data_dir=DATA)
    if not len(tk.ts_ms):
        pytest.skip("no real data in /work/shared/data")
    assert tk.source.startswith("binance")
    return t0, np.asarray(tk.ts_ms, dtype=np.int64), np.asarray(tk.price, dtype=np.float64)


def _container_a(cfg, ts, px, grid):
    b = SnapshotBuilder.from_config(cfg)
    b.on_connect(int(ts[0]) - 1)   # connected before the data: trade-derived opens are valid
    if cfg.scale_window_h > 0:     # the adaptive scale: the start-up klines, as PricerService loads them
        b.begin_history()
        cut = int(ts[0]) - int(ts[0]) % 60_000
        h = fair.history_klines(int(ts[0]), cfg.scale_window_h)
        assert h is not None and h[0][0] == cut - cut % HOUR_MS - (cfg.scale_window_h + 1) * HOUR_MS
        b.install_history(b.warm_minute_pricer(*h, cut), len(h[0]))
        assert b.minute.scale_hours > 0 and b.minute.var_scale != 1.0
    out_p, out_u, j = [], [], 0
    for g in grid.tolist():
        while j < len(ts) and ts[j] < g:   # a tick stamped at the instant arrives after it
            b.on_trade(Trade("BTCUSDT", j, float(px[j]), 1.0, int(ts[j]), int(ts[j]), False))
            j += 1
        s = b.snapshot(g)
        out_p.append(math.nan if s.fair_up is None else s.fair_up)
        out_u.append(math.nan if s.fair_unc is None else s.fair_unc)
    return np.array(out_p), np.array(out_u)


@pytest.mark.parametrize("model", ["seasonal", "ewma", "seasonal-adaptive"])
def test_backtest_fair_equals_container_a(ticks, model):
    t0, ts, px = ticks
    cfg = PricerConfig.from_env({"PRICER_MODEL": model.split("-")[0],
                                 "PRICER_SCALE_WINDOW_DAYS": "2" if model.endswith("adaptive") else "0"})
    hs = t0 + HOUR_MS
    first = int(np.searchsorted(ts, hs, side="left"))
    grid, p, _, unc = fair.fair_unc_path(ts, px, hs, first, None, None, 10_000, cfg=cfg)
    ref_p, ref_u = _container_a(cfg, ts, px, grid)
    assert grid.size == 360
    ok = np.isfinite(ref_p)
    assert ok.sum() >= 355                       # only instants before the hour's first trade are null
    assert np.array_equal(ok, np.isfinite(p)) and np.array_equal(ok, np.isfinite(unc))
    assert np.max(np.abs(p[ok] - ref_p[ok])) <= 1e-9
    assert np.max(np.abs(unc[ok] - ref_u[ok])) <= 1e-9
    assert 0.0 < p[ok].min() < p[ok].max() < 1.0 and unc[ok].max() > 0


def test_default_model_is_container_a_default(ticks):
    """With no cfg the backtest uses PricerConfig.from_env() (configs/pricer.yaml): seasonal."""
    t0, ts, px = ticks
    hs = t0 + HOUR_MS
    first = int(np.searchsorted(ts, hs, side="left"))
    _, p_def, _, _ = fair.fair_unc_path(ts, px, hs, first, None, None, 60_000)
    _, p_s, _, _ = fair.fair_unc_path(ts, px, hs, first, None, None, 60_000, cfg=PricerConfig.from_env())
    _, p_e, _, _ = fair.fair_unc_path(ts, px, hs, first, None, None, 60_000,
                                      cfg=PricerConfig.from_env({"PRICER_MODEL": "ewma"}))
    ok = np.isfinite(p_s)
    assert np.array_equal(p_def[ok], p_s[ok]) and not np.allclose(p_s[ok], p_e[ok])
