"""The compiled core against its numba peer (benchmarks/numba_peer.py) and the arithmetic floor.

Run: ``python3 -m pytest benchmarks/test_bench_numba_peer.py --benchmark-only``
(needs ``pip install -e ".[bench]"``; skipped where numba is absent; the floor needs a C compiler).

Batch functions compared (the first three are what the shipped model's research path calls:
``research/fair.py`` and ``research/calibration.py``):

* ``minute_path_shipped``: ``minute_path_batch`` exactly as ``fair.py`` calls it for the backtest:
  the shipped model (configs/pricer.yaml: the adaptive variance scale over 28 days) warmed with the
  window's real 1m klines (``fair.history_klines``: ~40k rows, 672 hour closes), then the seasonal
  ``MinutePricer`` streamed over a real day of ticks and priced at every second of every hour;
* ``minute_path``: the same tick stream and instants with the fixed scale and no warm-up (the
  per-tick/per-instant part alone; its floor is defined);
* ``vol`` / ``vol_out``: ``ewma_vol_batch`` on the same day, fresh and reused ``out``;
* ``fair_prob``: ``fair_prob_batch`` on the same day's rows;
* ``fused`` / ``fused_out``: the legacy fused ``price_path_batch`` (vol + features + p) on 1M
  ticks, fresh and reused ``out`` buffers.

Per tick from Python: ``MinutePricer.update`` (the shipped model) and ``TickPricer.update`` vs
numba's best per-call form (one jitted call per tick, state in numpy arrays).

``test_numba_ratios``: every pair, plus the arithmetic floor of each batch function
(``floor_loops.pyx``: the unavoidable log/exp/sqrt/erfc and output writes only), interleaved in
one process (11 rounds, medians), so the ratios are measured under the same load; in
``extra_info``: ``<name>_numba_over_compiled`` (> 1: the core is faster; issue-15 target >= 1.3
batch, >= 2.5 per tick) and ``<name>_compiled_over_floor`` (target <= 1.5), with the load average.
No timed asserts.

Both implementations are first checked to give the same numbers (bit for bit for the shipped
path when the core uses libm; to 1e-12 when it was built with glibc's vector erfc/log, see P_ATOL;
the fused path to 1e-12), so the ratio compares the same work. Fairness: the numba port is the same
algorithm; numba calls glibc's scalar erfc/log (it could only vectorize them with Intel's SVML), so
libmvec is a real advantage of the compiled core, and the floors use the same vector math as the core. If the core's model
changes and the port does not follow, the check fails loudly with that message.
Data: the shipped path runs on 24 real hours (``load_first_hours``: real 1m klines + bridge);
the fused batch on 1M ticks of the seeded synthetic path; the agreement checks and the per-tick
loops use the real Binance trade slice (shared/data) when present.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

pytest.importorskip("numba")

import floor_build  # noqa: E402  (benchmarks/ is on sys.path under pytest's rootdir import)
import numba_peer as nb  # noqa: E402

from hourmm_core import quant as q  # noqa: E402
from hourmm_core.clock import HOUR_MS  # noqa: E402
from hourmm_core.config import PricerConfig  # noqa: E402
from hourmm_core.pricing.snapshot import model_kwargs  # noqa: E402

N_TICK = 20_000
CFG = PricerConfig.from_env({})     # the shipped model (configs/pricer.yaml)
MODEL = dict(halflife_min=CFG.pricer_halflife_min, var_prior=CFG.pricer_var_prior, var_scale=CFG.pricer_var_scale)
KW = model_kwargs(CFG)
SHIPPED = dict(halflife_min=float(KW["halflife_min"]), var_prior=float(KW["var_prior"]), var_scale=float(KW["var_scale"]),
               nu=float(KW["nu"]), p_min=float(KW["p_min"]), scale_window_h=int(KW["scale_window_h"]),
               scale_prior_h=float(KW["scale_prior_h"]))
SEASON = np.asarray(CFG.season(), dtype=np.float64)
DAY0 = 1_747_267_200_000            # 2025-05-15T00:00Z (training period; 28+ days of klines before it)


@pytest.fixture(scope="module")
def ticks():
    from hourmm_core.data import synthetic_ticks
    d = synthetic_ticks(hours=24, seed=7)
    ts = np.ascontiguousarray(d.ts_ms, dtype=np.int64)[:1_000_000]
    px = np.ascontiguousarray(d.price, dtype=np.float64)[:1_000_000]
    return ts, px, "synthetic"


@pytest.fixture(scope="module")
def real():
    """2 real hours of /work/shared/data (1m klines + bridge, ~36k ticks), if present."""
    from hourmm_core.data import find_data_dir, load_first_hours
    d = find_data_dir()
    if d is None:
        return None
    t = load_first_hours(2, d)
    return np.ascontiguousarray(t.ts_ms, dtype=np.int64), np.ascontiguousarray(t.price, dtype=np.float64)


@pytest.fixture(scope="module")
def day():
    """24 hours (real klines + bridge when present) and fair.py's grid: every second of every hour,
    K = the hour's first tick; the shipped model's warm-up klines; plus fair_prob rows (S = tick,
    K = first tick, tau to the hour end)."""
    from hourmm_core.data import find_data_dir, history_span, load_first_hours
    from hourmm_core.research.fair import history_klines
    span = history_span() if find_data_dir() is not None else None
    d = load_first_hours(24, start_ms=DAY0 if span is not None and span[0] <= DAY0 - 29 * 86_400_000 else None)
    ts = np.ascontiguousarray(d.ts_ms, dtype=np.int64)
    px = np.ascontiguousarray(d.price, dtype=np.float64)
    h0 = int(ts[0]) - int(ts[0]) % HOUR_MS
    hours = np.arange(h0, int(ts[-1]) + 1, HOUR_MS, dtype=np.int64)
    first = np.searchsorted(ts, hours, side="left")
    offs = np.arange(0, HOUR_MS, 1000, dtype=np.int64)
    K = np.where(first < ts.size, px[np.minimum(first, ts.size - 1)], np.nan)
    grid = (hours[:, None] + offs[None, :]).reshape(-1)
    path = (ts, px, grid, np.repeat(K, offs.size), np.repeat(hours + HOUR_MS, offs.size), SEASON)
    hour = (ts - ts % HOUR_MS - h0) // HOUR_MS
    sig = q.ewma_vol_batch(ts, px)[:, 0].copy()
    rows = (px, np.ascontiguousarray(K[hour]), ((ts - ts % HOUR_MS + HOUR_MS) - ts) / 1000.0, sig)
    warm = history_klines(int(ts[0]), SHIPPED["scale_window_h"]) if span is not None else None
    return {"ts": ts, "px": px, "path": path, "rows": rows, "source": d.source, "shipped": dict(SHIPPED, warm=warm),
            "warm_rows": 0 if warm is None else int(len(warm[0]))}


@pytest.fixture(scope="module")
def trades():
    """The real Binance trade slice (19,904 trades) as lists, or the real kline hours."""
    import gzip

    from hourmm_core.data import find_data_dir
    d = find_data_dir()
    f = None if d is None else d / "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz"
    if f is None or not f.exists():
        return None
    a = np.loadtxt(gzip.open(f, "rt"), delimiter=",", usecols=(1, 4))
    return a[:, 1].astype(np.int64).tolist(), a[:, 0].tolist()


def _same_fused(ts, px):
    s1, f1, p1 = q.price_path_batch(ts, px)
    s2, f2, p2 = nb.price_path_batch(ts, px)
    np.testing.assert_allclose(s2, s1, rtol=1e-12, atol=0)
    np.testing.assert_allclose(f2, f1, rtol=1e-9, atol=1e-15, equal_nan=True)
    assert np.allclose(p2, p1, rtol=0, atol=1e-12, equal_nan=True), (
        "numba peer disagrees with quant.price_path_batch on p: the core's fair-value model changed; "
        "update benchmarks/numba_peer.py to the new model")
    tp, ntp = q.TickPricer(), nb.NumbaTickPricer()
    a = np.array([tp.update(t, p) for t, p in zip(ts[:5000].tolist(), px[:5000].tolist())])
    b = np.array([ntp.update(t, p) for t, p in zip(ts[:5000].tolist(), px[:5000].tolist())])
    assert np.allclose(a, b, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(a[np.isfinite(a)], p1[:5000][np.isfinite(a)], rtol=0, atol=1e-12)


def _minute_tick_args(tl):
    return tl[0] - tl[0] % HOUR_MS + HOUR_MS


# p from the two implementations: bit for bit where the core calls libm (q.VMATH == "libm-scalar": the
# same glibc erfc/log numba calls); to P_ATOL where the core was built with glibc's vector math
# (libmvec, hmm_vmath.h): its erfc/log are within a few ulp of libm's, which moves p by ~1e-16, and
# numba cannot call libmvec (it would need Intel's SVML), so bit equality is not possible there.
# 1e-12 is still ~1e4 below anything a different model would give (the checks exist to catch a port
# that no longer follows the core's model).
P_ATOL = 0.0 if q.VMATH == "libm-scalar" else 1e-12


def _same_p(a, b) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True) if P_ATOL == 0.0
                else np.allclose(a, b, rtol=0, atol=P_ATOL, equal_nan=True))


def _same_shipped(day, trades):
    port_msg = ("numba peer disagrees with the compiled {}: the shipped model's batch path changed; "
                "update benchmarks/numba_peer.py to the new model")
    got = q.minute_path_batch(*day["path"], **MODEL)
    assert _same_p(got, nb.minute_path_batch(*day["path"], **MODEL)), port_msg.format("minute_path_batch")
    got = q.minute_path_batch(*day["path"], **day["shipped"])          # exactly fair.py's call
    assert _same_p(got, nb.minute_path_batch(*day["path"], **day["shipped"])), \
        port_msg.format("minute_path_batch (shipped adaptive scale + warm-up)")
    assert np.isfinite(got).mean() > 0.99
    assert np.array_equal(q.ewma_vol_batch(day["ts"], day["px"]), nb.ewma_vol_batch(day["ts"], day["px"])), \
        port_msg.format("ewma_vol_batch")
    assert _same_p(q.fair_prob_batch(*day["rows"]), nb.fair_prob_batch(*day["rows"])), port_msg.format("fair_prob_batch")
    if trades is not None:
        tl, pl = trades
        K, end = pl[0], _minute_tick_args(tl)
        sk = {k: v for k, v in SHIPPED.items()}
        a, b = q.MinutePricer(SEASON, **sk), nb.NumbaMinutePricer(SEASON, **sk)
        x = [a.update(t, p, K, end) for t, p in zip(tl, pl)]
        y = [b.update(t, p, K, end) for t, p in zip(tl, pl)]
        assert _same_p(np.array(x), np.array(y)), port_msg.format("MinutePricer.update")


@pytest.fixture(scope="module")
def checked(ticks, real, day, trades):
    """Both paths agree on real ticks and on the timed data (numba compiles here, untimed)."""
    if real is not None:
        _same_fused(*real)
    _same_fused(*ticks[:2])
    _same_shipped(day, trades)
    return True


def _rate(benchmark, n):
    st = getattr(benchmark, "stats", None)
    return round(n / st.stats.min) if st is not None else None


@pytest.mark.benchmark(group="numba peer: price_path_batch")
@pytest.mark.parametrize("impl", ["compiled", "numba", "compiled_out", "numba_out"])
def test_batch_vs_numba(benchmark, ticks, checked, impl):
    ts, px, source = ticks
    fn = q.price_path_batch if impl.startswith("compiled") else nb.price_path_batch
    kw = {"out": (np.empty((len(ts), 3)), np.empty((len(ts), 7)), np.empty(len(ts)))} if impl.endswith("_out") else {}
    sig, feat, p = benchmark.pedantic(fn, args=(ts, px), kwargs=kw, rounds=5, iterations=1)
    assert p.shape == (len(ts),) and np.isfinite(p[-1])
    benchmark.extra_info.update({"impl": impl, "source": source, "ticks": int(len(ts)),
                                 "ticks_per_s": _rate(benchmark, len(ts))})


@pytest.mark.benchmark(group="numba peer: the shipped model's batch path (minute_path_batch)")
@pytest.mark.parametrize("impl", ["compiled", "numba"])
def test_minute_path_vs_numba(benchmark, day, checked, impl):
    fn = q.minute_path_batch if impl == "compiled" else nb.minute_path_batch
    p = benchmark.pedantic(fn, args=day["path"], kwargs=day["shipped"], rounds=5, iterations=1)
    assert p.shape == day["path"][2].shape and np.isfinite(p[-1])
    benchmark.extra_info.update({"impl": impl, "source": day["source"], "ticks": int(day["ts"].size),
                                 "instants": int(p.size), "ticks_per_s": _rate(benchmark, day["ts"].size)})


@pytest.mark.benchmark(group="numba peer: per tick from Python")
@pytest.mark.parametrize("impl", ["compiled", "numba", "compiled_minute", "numba_minute"])
def test_per_tick_vs_numba(benchmark, ticks, real, trades, checked, impl):
    if impl.endswith("_minute"):
        if trades is None:
            pytest.skip("real trade slice not available")
        tl, pl = trades[0][:N_TICK], trades[1][:N_TICK]
        source = "binance-trades"
        run = _per_tick_minute(q.MinutePricer if impl.startswith("compiled") else nb.NumbaMinutePricer, tl, pl)
    else:
        ts, px, source = ticks if real is None else (*real, "binance-klines+bridge")
        tl, pl = ts[:N_TICK].tolist(), px[:N_TICK].tolist()
        run = _per_tick(q.TickPricer if impl == "compiled" else nb.NumbaTickPricer, tl, pl)
    p = benchmark.pedantic(run, rounds=5, iterations=1)
    assert 0.0 < p < 1.0
    benchmark.extra_info.update({"impl": impl, "source": source, "ticks": len(tl),
                                 "ticks_per_s": _rate(benchmark, len(tl))})


def _per_tick(cls, tl, pl):
    def run():
        tp = cls()
        for t, p in zip(tl, pl):
            tp.update(t, p)
        return tp.p
    return run


def _per_tick_minute(cls, tl, pl):
    K, end = pl[0], _minute_tick_args(tl)

    def run():
        mp = cls(SEASON, **SHIPPED)
        upd = mp.update
        for t, p in zip(tl, pl):
            upd(t, p, K, end)
        return mp.p
    return run


def test_numba_ratios(benchmark, ticks, real, day, trades, checked):
    """Interleaved rounds in one process; medians; numba time / compiled time and compiled / floor."""
    fl = floor_build.build()
    ts, px, source = ticks
    n, nd = len(ts), day["ts"].size
    out_c = (np.empty((n, 3)), np.empty((n, 7)), np.empty(n))
    out_n = (np.empty((n, 3)), np.empty((n, 7)), np.empty(n))
    out_f = (np.empty((n, 3)), np.empty((n, 7)), np.empty(n))
    vo_c, vo_n, vo_f = np.empty((nd, 3)), np.empty((nd, 3)), np.empty((nd, 3))
    mo_f, fo_f = np.empty(day["path"][2].size), np.empty(nd)
    dts, dpx, path, rows = day["ts"], day["px"], day["path"], day["rows"]
    rt, rp = real if real is not None else (ts, px)
    tl, pl = rt[:N_TICK].tolist(), rp[:N_TICK].tolist()
    ml, mpl = (trades[0][:N_TICK], trades[1][:N_TICK]) if trades is not None else (tl, pl)
    # the floors' erfc gets the model's z (floor_loops.pyx): the model's per-ms variance (untimed)
    vms_fused = float(np.median(q.ewma_vol_batch(ts, px)[:, 0] ** 2) / 1000.0)
    vms_minute = MODEL["var_prior"] * MODEL["var_scale"] / 60_000.0
    # name: (compiled, numba, floor or None, ticks for ns/tick)
    shp = day["shipped"]
    pairs = {
        "minute_path_shipped": (lambda: q.minute_path_batch(*path, **shp), lambda: nb.minute_path_batch(*path, **shp),
                                None, nd),
        "minute_path": (lambda: q.minute_path_batch(*path, **MODEL), lambda: nb.minute_path_batch(*path, **MODEL),
                        fl and (lambda: fl.minute_path_floor(*path[:5], mo_f, var_ms=vms_minute)), nd),
        "vol": (lambda: q.ewma_vol_batch(dts, dpx), lambda: nb.ewma_vol_batch(dts, dpx), None, nd),
        "vol_out": (lambda: q.ewma_vol_batch(dts, dpx, out=vo_c), lambda: nb.ewma_vol_batch(dts, dpx, out=vo_n),
                    fl and (lambda: fl.vol_floor(dts, dpx, vo_f)), nd),
        "fair_prob": (lambda: q.fair_prob_batch(*rows), lambda: nb.fair_prob_batch(*rows),
                      fl and (lambda: fl.fair_prob_floor(*rows, fo_f)), nd),
        "fused": (lambda: q.price_path_batch(ts, px), lambda: nb.price_path_batch(ts, px), None, n),
        "fused_out": (lambda: q.price_path_batch(ts, px, out=out_c), lambda: nb.price_path_batch(ts, px, out=out_n),
                      fl and (lambda: fl.fused_floor(ts, px, *out_f, var_ms=vms_fused)), n),
        "per_tick_minute": (_per_tick_minute(q.MinutePricer, ml, mpl), _per_tick_minute(nb.NumbaMinutePricer, ml, mpl),
                            None, len(ml)),
        "per_tick": (_per_tick(q.TickPricer, tl, pl), _per_tick(nb.NumbaTickPricer, tl, pl), None, len(tl)),
    }
    rounds = 11
    times: dict[str, list[float]] = {f"{k}_{w}": [] for k in pairs for w in ("compiled", "numba", "floor")}
    load = [round(x, 2) for x in os.getloadavg()]

    def all_rounds():
        for r in range(rounds):
            for k, (c, m, f, _n) in pairs.items():
                # the order inside a pair alternates by round: the second call of a pair can inherit the
                # first one's freed (already faulted-in) heap pages for its fresh outputs, so a fixed order
                # would favour whichever side runs second in the fresh-output rows
                order = (("compiled", c), ("numba", m), ("floor", f))
                for w, fn in (order if r % 2 == 0 else order[::-1]):
                    if fn:
                        t0 = time.perf_counter()
                        fn()
                        times[f"{k}_{w}"].append(time.perf_counter() - t0)

    benchmark.pedantic(all_rounds, rounds=1, iterations=1)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    info = {"source_fused": source, "source_shipped": day["source"], "ticks_fused": n, "ticks_shipped": int(nd),
            "instants_minute_path": int(path[2].size), "warm_klines_shipped": day["warm_rows"],
            "scale_window_h": SHIPPED["scale_window_h"], "rounds": rounds,
            "loadavg_before": load, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "floor_built": fl is not None, "vmath": q.VMATH, "vmath_floor": getattr(fl, "VMATH", None)}
    for k, (_c, _m, _f, nt) in pairs.items():
        info[f"{k}_numba_over_compiled"] = round(med[f"{k}_numba"] / med[f"{k}_compiled"], 2)
        unit, scale = ("us_per_tick", 1e6) if k.startswith("per_tick") else ("ns_per_tick", 1e9)
        info[f"{k}_{unit}_compiled"] = round(med[f"{k}_compiled"] / nt * scale, 3)
        info[f"{k}_{unit}_numba"] = round(med[f"{k}_numba"] / nt * scale, 3)
        if f"{k}_floor" in med:
            info[f"{k}_{unit}_floor"] = round(med[f"{k}_floor"] / nt * scale, 3)
            info[f"{k}_compiled_over_floor"] = round(med[f"{k}_compiled"] / med[f"{k}_floor"], 2)
    benchmark.extra_info.update(info)
    assert all(len(times[f"{k}_{w}"]) == rounds for k in pairs for w in ("compiled", "numba"))
