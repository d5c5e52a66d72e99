"""Sweep API: grid expansion, table shape, per-point errors, local == Dask."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.research import sweep

H0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def toy_task(ts_ms: np.ndarray, price: np.ndarray, window: int, scale: float) -> dict:
    """Deterministic numeric work over shared arrays (stands in for any research function)."""
    if window <= 0:
        raise ValueError("window must be positive")
    r = np.diff(np.log(price))
    k = np.convolve(r, np.ones(window) / window, mode="valid")
    return {"n": int(k.size), "score": float(scale * np.sum(k * k)), "last_ts": int(ts_ms[-1])}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    n = 20_000
    ts = H0 + np.arange(n, dtype=np.int64) * 1000
    px = 100.0 * np.exp(np.cumsum(1e-4 * rng.standard_normal(n)))
    return {"ts_ms": ts, "price": px}


def _cluster(distributed):
    """A real scheduler on a loopback TCP port (ephemeral) with two in-process workers."""
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                    host="127.0.0.1", scheduler_port=0, dashboard_address=None)


GRID = {"window": [1, 5, 30], "scale": [1.0, 2.0]}


def test_expand_grid_order_and_validation():
    pts = sweep.expand_grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(pts) == 6
    assert pts[0] == {"a": 1, "b": "x"} and pts[1] == {"a": 1, "b": "y"} and pts[-1] == {"a": 2, "b": "z"}
    with pytest.raises(ValueError):
        sweep.expand_grid({"a": []})
    with pytest.raises(ValueError):
        sweep.expand_grid({"a": "abc"})


def test_local_sweep_table(data):
    res = sweep.run_sweep(toy_task, GRID, data, max_workers=2)
    assert res.backend == "local-process"
    assert res.params == ["window", "scale"] and res.metrics == ["n", "score", "last_ts"]
    assert len(res.rows) == 6 and not res.errors
    for row in res.rows:
        direct = toy_task(data["ts_ms"], data["price"], row["window"], row["scale"])
        assert row["score"] == direct["score"] and row["n"] == direct["n"]
    # scale doubles the score
    by = {(r["window"], r["scale"]): r["score"] for r in res.rows}
    assert by[(5, 2.0)] == pytest.approx(2 * by[(5, 1.0)])
    assert res.best("score")["window"] == 30 and res.best("score", minimize=False)["scale"] == 2.0
    arr = res.to_structured()
    assert arr.dtype.names == ("window", "scale", "n", "score", "last_ts")
    assert arr["window"].tolist() == [1, 1, 5, 5, 30, 30]
    csv_text = res.to_csv()
    assert csv_text.splitlines()[0] == "window,scale,n,score,last_ts" and len(csv_text.splitlines()) == 7
    assert "window" in res.format()


def test_failed_point_is_reported_not_fatal(data):
    res = sweep.run_sweep(toy_task, {"window": [0, 3], "scale": [1.0]}, data, max_workers=1)
    assert list(res.errors) == [0] and "window must be positive" in res.errors[0]
    assert math.isnan(res.rows[0]["score"]) and math.isfinite(res.rows[1]["score"])


def test_thread_and_inline_agree(data):
    a = sweep.run_sweep(toy_task, GRID, data, max_workers=1)
    b = sweep.run_sweep(toy_task, GRID, data, max_workers=2, executor="thread")
    assert a.rows == b.rows


@pytest.mark.parametrize("kw", [{"max_workers": 1}, {"max_workers": 2}, {"max_workers": 2, "executor": "thread"},
                                {"scheduler": "local", "max_workers": 2}])
def test_on_result_sees_every_point_once_and_done_is_not_rerun(data, kw):
    if kw.get("scheduler") == "local":
        pytest.importorskip("distributed")
    full = sweep.run_sweep(toy_task, GRID, data, max_workers=1)
    seen: dict[int, dict] = {}

    def keep(i, p, o):
        assert i not in seen, f"point {i} reported twice"
        seen[i] = (dict(p), dict(o))

    res = sweep.run_sweep(toy_task, GRID, data, on_result=keep, **kw)
    assert res.rows == full.rows
    assert sorted(seen) == list(range(6))
    for i, (p, o) in seen.items():
        assert p == {k: full.rows[i][k] for k in ("window", "scale")} and o["score"] == full.rows[i]["score"]
    # resume: points 0 and 4 are known (with a marker value); only the other four run, in grid order
    ran: list[int] = []
    known = {0: {**seen[0][1], "score": -1.0}, 4: seen[4][1]}
    res2 = sweep.run_sweep(toy_task, GRID, data, on_result=lambda i, p, o: ran.append(i), done=known, **kw)
    assert sorted(ran) == [1, 2, 3, 5]
    assert res2.rows[0]["score"] == -1.0 and [r["score"] for r in res2.rows[1:]] == [r["score"] for r in full.rows[1:]]
    assert res2.backend.startswith("resumed (2 of 6 known)")
    with pytest.raises(ValueError, match="outside the grid"):
        sweep.run_sweep(toy_task, GRID, data, done={6: {}}, **kw)


def test_resumed_sweep_keeps_the_failures_of_the_points_it_ran(data):
    res = sweep.run_sweep(toy_task, {"window": [3, 0], "scale": [1.0]}, data, max_workers=1,
                          done={0: {"n": 1, "score": 2.0, "last_ts": 3}})
    assert list(res.errors) == [1] and "window must be positive" in res.errors[1]
    assert res.rows[0]["score"] == 2.0 and math.isnan(res.rows[1]["score"])


def test_local_equals_dask(data):
    distributed = pytest.importorskip("distributed")
    local = sweep.run_sweep(toy_task, GRID, data, max_workers=2)
    with _cluster(distributed) as cluster:
        # by address, as a user would pass it
        on_dask = sweep.run_sweep(toy_task, GRID, data, scheduler=cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            with_client = sweep.run_sweep(toy_task, GRID, data, scheduler=client)
    assert on_dask.backend.startswith("dask:") and with_client.backend.startswith("dask:")
    assert on_dask.rows == local.rows == with_client.rows
    assert on_dask.params == local.params and on_dask.metrics == local.metrics


def test_calibration_sweep_local_equals_dask():
    from hourmm_core.research import calibration as cal

    try:
        cal._quant()
    except ImportError as exc:
        pytest.skip(f"compiled core not built: {exc}")
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(8)
    n = 5 * 3600
    ts = H0 + np.arange(n, dtype=np.int64) * 1000
    px = 50_000 * np.exp(np.cumsum(1.5e-4 * rng.standard_normal(n)))
    grid = {"halflife_s": [60.0, 600.0], "nu": [0.0, 6.0]}
    local = sweep.sweep_calibration((ts, px), grid, max_workers=2)
    with _cluster(distributed) as cluster:
        remote = sweep.sweep_calibration((ts, px), grid, scheduler=cluster.scheduler_address)
    assert not local.errors and local.rows == remote.rows
    assert all(r["hours"] == 4 and 0 < r["brier"] < 0.5 for r in local.rows)
