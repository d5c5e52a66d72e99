"""The compiled core against its numba peer (benchmarks/numba_peer.py), side by side.

Run: ``python3 -m pytest benchmarks/test_bench_numba_peer.py --benchmark-only``
(needs ``pip install -e ".[bench]"``; skipped where numba is absent).

* batch: ``price_path_batch`` over the same ~1M ticks, fresh outputs and reused
  ``out`` buffers, compiled vs numba.
* per tick from Python: ``TickPricer.update`` vs ``NumbaTickPricer.update``.
* ``test_numba_ratios``: every pair interleaved in one process (11 rounds, medians), so
  the compiled/numba ratio (``numba_over_compiled``: > 1 means the core is faster) is
  measured under the same load; in ``extra_info``. Targets (issue 15): batch >= 1.3x,
  per tick >= 2.5x. No timed asserts.

Both implementations are first checked to give the same sigma, features and p on the
data (so the ratio compares the same work). If the core's model changed and the port
did not follow, the p check fails loudly with that message.
Data: the batch runs on 1M ticks of the seeded synthetic path (the real trade dump is a
~20k-tick slice: too short to time a batch; it measures code speed, not the market); the
agreement check and the per-tick loop use the real Binance trade slice (shared/data, found
by hourmm_core.data.find_data_dir / HOURMM_DATA_DIR) when present.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

pytest.importorskip("numba")

import numba_peer as nb  # noqa: E402  (benchmarks/ is on sys.path under pytest's rootdir import)

from hourmm_core import quant as q  # noqa: E402

N_TICK = 20_000


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


def _same(ts, px):
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


@pytest.fixture(scope="module")
def checked(ticks, real):
    """Both paths agree on real ticks and on the timed data (numba compiles here, untimed)."""
    if real is not None:
        _same(*real)
    _same(*ticks[:2])
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


@pytest.mark.benchmark(group="numba peer: per tick from Python")
@pytest.mark.parametrize("impl", ["compiled", "numba"])
def test_per_tick_vs_numba(benchmark, ticks, real, checked, impl):
    ts, px, source = ticks if real is None else (*real, "binance-trades")
    tl, pl = ts[:N_TICK].tolist(), px[:N_TICK].tolist()
    cls = q.TickPricer if impl == "compiled" else nb.NumbaTickPricer

    def run():
        tp = cls()
        for t, p in zip(tl, pl):
            tp.update(t, p)
        return tp.p

    p = benchmark.pedantic(run, rounds=5, iterations=1)
    assert 0.0 < p < 1.0
    benchmark.extra_info.update({"impl": impl, "source": source, "ticks": N_TICK,
                                 "ticks_per_s": _rate(benchmark, N_TICK)})


def _per_tick(cls, tl, pl):
    def run():
        tp = cls()
        for t, p in zip(tl, pl):
            tp.update(t, p)
    return run


def test_numba_ratios(benchmark, ticks, real, checked):
    """Interleaved rounds in one process; medians; ratio = numba time / compiled time."""
    ts, px, source = ticks
    n = len(ts)
    out_c = (np.empty((n, 3)), np.empty((n, 7)), np.empty(n))
    out_n = (np.empty((n, 3)), np.empty((n, 7)), np.empty(n))
    rt, rp = real if real is not None else (ts, px)
    tl, pl = rt[:N_TICK].tolist(), rp[:N_TICK].tolist()
    pairs = {
        "batch_fresh": (lambda: q.price_path_batch(ts, px), lambda: nb.price_path_batch(ts, px)),
        "batch_out": (lambda: q.price_path_batch(ts, px, out=out_c), lambda: nb.price_path_batch(ts, px, out=out_n)),
        "per_tick": (_per_tick(q.TickPricer, tl, pl), _per_tick(nb.NumbaTickPricer, tl, pl)),
    }
    rounds = 11
    times: dict[str, list[float]] = {f"{k}_{w}": [] for k in pairs for w in ("compiled", "numba")}

    def all_rounds():
        for _ in range(rounds):
            for k, (c, m) in pairs.items():
                for w, fn in (("compiled", c), ("numba", m)):
                    t0 = time.perf_counter()
                    fn()
                    times[f"{k}_{w}"].append(time.perf_counter() - t0)

    benchmark.pedantic(all_rounds, rounds=1, iterations=1)
    med = {k: statistics.median(v) for k, v in times.items()}
    info = {"source": source, "ticks": n, "rounds": rounds}
    for k in pairs:
        info[f"{k}_numba_over_compiled"] = round(med[f"{k}_numba"] / med[f"{k}_compiled"], 2)
    info["batch_fresh_ns_per_tick_compiled"] = round(med["batch_fresh_compiled"] / n * 1e9, 1)
    info["batch_out_ns_per_tick_compiled"] = round(med["batch_out_compiled"] / n * 1e9, 1)
    info["per_tick_us_compiled"] = round(med["per_tick_compiled"] / N_TICK * 1e6, 3)
    info["per_tick_us_numba"] = round(med["per_tick_numba"] / N_TICK * 1e6, 3)
    benchmark.extra_info.update(info)
    assert all(len(v) == rounds for v in times.values())
