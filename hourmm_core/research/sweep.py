"""Parameter sweeps: run one research function over a grid, locally or on Dask.

Why a thin layer of its own: a sweep over years of ticks is embarrassingly
parallel, but the data is large and the grid is small, so the data must be
shipped once per worker (not once per grid point) and the results must come
back in grid order so a local run and a cluster run give the *same table*.

* ``scheduler=None``: ``concurrent.futures`` on this machine (processes by
  default, threads with ``executor="thread"``, inline with ``max_workers=1``).
* ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``): Dask
  distributed; the shared data is scattered once with ``broadcast=True``.

The task function must be importable by the workers (a module-level function)
and return a flat ``dict`` of metrics; the table row is params + metrics.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

TaskFn = Callable[..., Mapping[str, Any]]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of ``{name: [values]}`` in a stable order (first key slowest)."""
    if not grid:
        return [{}]
    for k, v in grid.items():
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise ValueError(f"grid[{k!r}] must be a list of values, got {v!r}")
    keys = list(grid)
    vals = [list(grid[k]) for k in keys]
    for k, v in zip(keys, vals):
        if not v:
            raise ValueError(f"grid[{k!r}] is empty")
    return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]


@dataclass
class SweepResult:
    """The sweep table: one row per grid point, in grid order.

    ``rows`` are plain dicts (params first, then metrics); ``errors`` maps the
    row index of a failed point to its error text (that row's metrics are NaN),
    so one bad corner of the grid does not lose the rest of a long sweep.
    """

    params: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]
    backend: str
    errors: dict[int, str] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        return np.array([r.get(name, np.nan) for r in self.rows])

    def best(self, metric: str, minimize: bool = True) -> dict[str, Any]:
        """The row with the best finite ``metric``."""
        ok = [r for r in self.rows if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        if not ok:
            raise ValueError(f"no finite values of {metric!r} in the sweep")
        return (min if minimize else max)(ok, key=lambda r: r[metric])

    def to_structured(self) -> np.ndarray:
        """A numpy structured array (pandas-free table); non-numeric columns become strings."""
        cols = self.params + self.metrics
        dtypes = []
        for c in cols:
            vals = [r.get(c) for r in self.rows]
            if all(isinstance(v, (bool, np.bool_)) for v in vals):
                dtypes.append((c, bool))
            elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
                dtypes.append((c, np.int64))
            elif all(isinstance(v, (int, float, np.integer, np.floating)) or v is None for v in vals):
                dtypes.append((c, np.float64))
            else:
                dtypes.append((c, f"U{max(1, *(len(str(v)) for v in vals))}"))
        out = np.zeros(len(self.rows), dtype=dtypes)
        for i, r in enumerate(self.rows):
            for c, dt in dtypes:
                v = r.get(c)
                if dt == np.float64 and v is None:
                    v = np.nan
                elif isinstance(dt, str):
                    v = str(v)
                out[i][c] = v
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.params + self.metrics, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (",".join(map(str, v)) if isinstance(v, (tuple, list)) else v) for k, v in r.items()})
        return buf.getvalue()

    def format(self, floatfmt: str = ".4g") -> str:
        """Fixed-width text table for terminals and READMEs."""
        cols = self.params + self.metrics

        def cell(v: Any) -> str:
            if isinstance(v, float):
                return format(v, floatfmt)
            if isinstance(v, (tuple, list)):
                return ",".join(map(str, v))
            return str(v)

        body = [[cell(r.get(c, "")) for c in cols] for r in self.rows]
        width = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(b, width)) for b in body]
        return "\n".join(lines)


def _call(fn: TaskFn, params: Mapping[str, Any], shared: Mapping[str, Any]) -> dict[str, Any]:
    """Run one grid point; exceptions become an ``__error__`` entry instead of killing the sweep."""
    try:
        out = fn(**shared, **params)
        if not isinstance(out, Mapping):
            raise TypeError(f"sweep task must return a dict of metrics, got {type(out).__name__}")
        return dict(out)
    except Exception as exc:  # noqa: BLE001 - reported per row, see SweepResult.errors
        return {"__error__": f"{type(exc).__name__}: {exc}"}


def _assemble(points: list[dict[str, Any]], outs: list[dict[str, Any]], backend: str) -> SweepResult:
    params: list[str] = []
    for p in points:   # explicit point lists may name different knobs: the table has them all
        params += [k for k in p if k not in params]
    metrics: list[str] = []
    for o in outs:
        for k in o:
            if k != "__error__" and k not in metrics and k not in params:
                metrics.append(k)
    rows, errors = [], {}
    for i, (p, o) in enumerate(zip(points, outs)):
        if "__error__" in o:
            errors[i] = o["__error__"]
            log.warning("sweep point %s failed: %s", p, o["__error__"])
        rows.append({**p, **{m: o.get(m, float("nan")) for m in metrics}})
    return SweepResult(params, metrics, rows, backend, errors)


ResultFn = Callable[[int, Mapping[str, Any], Mapping[str, Any]], None]


def run_sweep(fn: TaskFn, grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
              shared: Mapping[str, Any] | None = None, scheduler: Any = None,
              max_workers: int | None = None, executor: str = "process",
              on_result: ResultFn | None = None, done: Mapping[int, Mapping[str, Any]] | None = None) -> SweepResult:
    """Evaluate ``fn(**shared, **point)`` for every grid point; return the table in grid order.

    ``grid`` is ``{name: [values]}`` (Cartesian product) or an explicit list of
    points. ``shared`` holds the big inputs (tick arrays) sent once per worker.
    ``scheduler``: None for local; a Dask address string or a
    ``distributed.Client`` to run on a cluster; ``"local"`` starts a Dask cluster of
    ``max_workers`` (default 2) single-threaded worker processes on this machine for the sweep.
    ``on_result(index, point, output)`` is called in this process as each point finishes (in
    completion order), so a long sweep can save its points as they come and an interrupted one
    keeps what it finished; the returned table is in grid order whatever the completion order.
    ``done``: outputs already known by point index (a resumed sweep); those points are not run again.
    """
    points = expand_grid(grid) if isinstance(grid, Mapping) else [dict(p) for p in grid]
    known = {int(i): dict(o) for i, o in (done or {}).items()}
    bad = sorted(i for i in known if not 0 <= i < len(points))
    if bad:
        raise ValueError(f"done names point(s) {bad} outside the grid of {len(points)}")
    todo = [i for i in range(len(points)) if i not in known]
    if known:
        sub = run_sweep(fn, [points[i] for i in todo], shared, scheduler, max_workers, executor,
                        None if on_result is None else lambda j, p, o: on_result(todo[j], p, o)) if todo else None
        outs = [known[i] if i in known else {} for i in range(len(points))]
        for j, i in enumerate(todo):
            row = sub.rows[j] if sub is not None else {}
            outs[i] = ({"__error__": sub.errors[j]} if sub is not None and j in sub.errors
                       else {k: v for k, v in row.items() if k in (sub.metrics if sub is not None else ())})
        return _assemble(points, outs, f"resumed ({len(known)} of {len(points)} known)"
                         + (f" + {sub.backend}" if sub is not None else ""))
    shared = dict(shared or {})
    if scheduler == "local":
        return _run_local_dask(fn, points, shared, max_workers or 2, on_result)
    if scheduler is not None:
        return _run_dask(fn, points, shared, scheduler, on_result)
    if executor not in ("process", "thread"):
        raise ValueError("executor must be 'process' or 'thread'")
    outs: list[dict[str, Any]] = [{} for _ in points]
    if max_workers == 1 or len(points) <= 1:
        for i, p in enumerate(points):
            outs[i] = _call(fn, p, shared)
            _report(on_result, i, p, outs[i])
        return _assemble(points, outs, "inline")
    pool_cls = cf.ProcessPoolExecutor if executor == "process" else cf.ThreadPoolExecutor
    kwargs: dict[str, Any] = {"max_workers": max_workers}
    if executor == "process":
        kwargs["initializer"] = _init_worker
        kwargs["initargs"] = (shared,)
    with pool_cls(**kwargs) as pool:
        if executor == "process":
            futs = {pool.submit(_call_in_worker, fn, p): i for i, p in enumerate(points)}
        else:
            futs = {pool.submit(_call, fn, p, shared): i for i, p in enumerate(points)}
        for f in cf.as_completed(futs):
            i = futs[f]
            outs[i] = f.result()
            _report(on_result, i, points[i], outs[i])
    return _assemble(points, outs, f"local-{executor}")


def _report(on_result: ResultFn | None, i: int, point: Mapping[str, Any], out: Mapping[str, Any]) -> None:
    if on_result is not None:
        on_result(i, point, out)


_WORKER_SHARED: dict[str, Any] = {}


def _init_worker(shared: Mapping[str, Any]) -> None:
    """Process-pool initializer: receive the shared data once per worker process."""
    _WORKER_SHARED.clear()
    _WORKER_SHARED.update(shared)


def _call_in_worker(fn: TaskFn, params: Mapping[str, Any]) -> dict[str, Any]:
    return _call(fn, params, _WORKER_SHARED)


def _dask_task(fn: TaskFn, params: Mapping[str, Any], **shared: Any) -> dict[str, Any]:
    return _call(fn, params, shared)


def _run_local_dask(fn: TaskFn, points: list[dict[str, Any]], shared: dict[str, Any], workers: int,
                    on_result: ResultFn | None = None) -> SweepResult:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError('Dask sweeps need dask.distributed: pip install "dask[distributed]"') from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)   # a local cluster's start/stop chatter
    with LocalCluster(n_workers=max(1, int(workers)), threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        return _run_dask(fn, points, shared, client, on_result)


def _run_dask(fn: TaskFn, points: list[dict[str, Any]], shared: dict[str, Any], scheduler: Any,
              on_result: ResultFn | None = None) -> SweepResult:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError('Dask sweeps need dask.distributed: pip install "dask[distributed]"') from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        handles = {k: client.scatter(v, broadcast=True) for k, v in shared.items()}
        futs = [client.submit(_dask_task, fn, p, pure=False, **handles) for p in points]
        index = {f.key: i for i, f in enumerate(futs)}
        outs: list[dict[str, Any]] = [{} for _ in points]
        for f in as_completed(futs):
            i = index[f.key]
            outs[i] = f.result()
            _report(on_result, i, points[i], outs[i])
        return _assemble(points, outs, f"dask:{client.scheduler.address}")
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- ready-made tasks
def calibration_task(ts_ms: np.ndarray, price: np.ndarray, halflife_s: float = 30.0, sample_ms: int = 1000,
                     nu: float = 0.0, p_min: float = 0.001, step_ms: int = 60_000,
                     start_ms: int | None = None, end_ms: int | None = None) -> dict[str, Any]:
    """Score one pricer setting on [start_ms, end_ms): Brier and log loss of the pricer."""
    from hourmm_core.research import calibration as cal

    s = cal.hourly_samples(ts_ms, price, step_ms=step_ms, start_ms=start_ms, end_ms=end_ms)
    params = cal.PricerParams((float(halflife_s),), int(sample_ms), float(nu), float(p_min))
    p = cal.predict(ts_ms, price, s, params)
    return {"n": int(s.y.size), "hours": s.n_hours, "brier": cal.brier_score(p, s.y), "log_loss": cal.log_loss(p, s.y)}


def sweep_calibration(ticks: Any, grid: Mapping[str, Sequence[Any]], scheduler: Any = None,
                      max_workers: int | None = None, **fixed: Any) -> SweepResult:
    """Sweep pricer settings (``halflife_s``, ``sample_ms``, ``nu``, ...) over a history."""
    from hourmm_core.research.calibration import as_arrays

    ts, price, _ = as_arrays(ticks)
    return run_sweep(calibration_task, grid, {"ts_ms": ts, "price": price, **fixed}, scheduler, max_workers)
