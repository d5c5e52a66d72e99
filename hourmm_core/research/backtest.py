"""Strategy backtests over many hours on simulated time, settled at each hour's close.

Why in-process: a month is ~720 hours; driving the simulator's matching engine
directly (place / cancel / advance to a simulated ms) instead of through sockets
runs that in minutes and is deterministic, while still exercising the same
decision core, execution rules, strategy, ladder and risk code the live trader uses.

Layout of the research backtest:

* :mod:`hourmm_core.research.engine_backtest` - the one loop (one hour): the trader's
  :class:`~hourmm_core.trading.decision.DecisionCore` against the simulator engine;
* :mod:`hourmm_core.research.models` - the pluggable latency / flow / fee models;
* :mod:`hourmm_core.research.ledger` - per-hour accounting, settlement, markouts;
* this module - :class:`BacktestParams` (composed of the trader's own
  :class:`~hourmm_core.trading.strategy.StrategyParams`,
  :class:`~hourmm_core.trading.risk_engine.Limits`,
  :class:`~hourmm_core.trading.session.Schedule` and the models), the multi-hour
  runner with its process pool, the result, its text/JSON forms and the sweep glue;
* :mod:`hourmm_core.research.backtest_cli` - ``hourmm backtest``.

Units: ts in int ms UTC, prices in USDC per token (probability units),
sizes in tokens, money in USDC.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import logging
import math
import multiprocessing as mp
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from hourmm_core import data as hdata
from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES, FeeSchedule
from hourmm_core.research import calibration as cal
from hourmm_core.research import engine_backtest, sweep
from hourmm_core.research.evidence import format_summary, summarize
from hourmm_core.research.fair import fair_path, fair_unc_path, use_history_dir
from hourmm_core.research.ledger import BUY, DOWN, SELL, UP, Fill, HourLedger, HourResult, hour_result, markouts
from hourmm_core.research.models import BacktestModels, ConstantLatency, SampledLatency
from hourmm_core.safe_json import json_safe
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams

log = logging.getLogger(__name__)

__all__ = ["BacktestParams", "BacktestResult", "run_backtest", "run_backtest_span", "format_backtest",
           "result_json", "sweep_backtest", "backtest_task", "run_backtest_days", "backtest_days_task",
           "evidence_metrics", "DAY_MS", "fair_path", "fair_unc_path", "HourLedger",
           "HourResult", "hour_result", "markouts", "Fill", "UP", "DOWN", "BUY", "SELL"]

_STRATEGY_KEYS = frozenset(StrategyParams.__dataclass_fields__)
_LIMIT_KEYS = frozenset(Limits.__dataclass_fields__)
_SCHEDULE_KEYS = frozenset(Schedule.__dataclass_fields__)


@dataclass(frozen=True)
class BacktestParams:
    """Knobs of one backtest run (sweepable).

    The trader's own config objects, so a knob has one definition: ``strategy``
    (:class:`StrategyParams`), ``limits`` (:class:`Limits`), ``schedule`` (:class:`Schedule`);
    ``models`` (:class:`~hourmm_core.research.models.BacktestModels`: latency, counterparty
    flow, fee schedule). Research-only fields: ``decision_ms`` (how often, in simulated
    time, the trader re-quotes), ``halflife_s``/``halflife_alt_s``/``sample_ms``/``nu``/
    ``p_min`` (the pricer's estimator), ``requote_*`` (order-manager tolerances, as
    TraderConfig), ``tick_size``/``min_size`` (the market), ``seed``.

    Flat names still work where a sweep or a config names a knob:
    ``p.replace(half_spread=0.03, max_position_size=200, fee=..., agents=..., latency=...)``
    routes each key to the object that owns it (:meth:`replace`); :meth:`flat` is the
    inverse (used for result JSON and sweep tables).
    """

    strategy: StrategyParams = StrategyParams()
    limits: Limits = Limits()
    schedule: Schedule = Schedule()
    models: BacktestModels = BacktestModels()
    halflife_s: float = 30.0
    halflife_alt_s: float = 600.0
    sample_ms: int = 1000
    nu: float = 0.0
    p_min: float = 0.001
    decision_ms: int = 1000
    tick_size: float = 0.01
    min_size: float = 5.0
    requote_price_tol: float = 0.005
    requote_size_tol: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, typ in (("strategy", StrategyParams), ("limits", Limits), ("schedule", Schedule),
                          ("models", BacktestModels)):
            if not isinstance(getattr(self, name), typ):
                raise TypeError(f"BacktestParams.{name} must be a {typ.__name__}, got {getattr(self, name)!r}")
        if self.decision_ms <= 0 or self.decision_ms > 60_000:
            raise ValueError("decision_ms must be in (0, 60000]")
        s = self.strategy
        if s.quote_size < 0 or s.half_spread < 0 or s.quote_levels < 1:
            raise ValueError("quote_size, half_spread must be >= 0 and quote_levels >= 1")

    @classmethod
    def from_trader_config(cls, cfg: Any, **research: Any) -> "BacktestParams":
        """The knobs a :class:`~hourmm_core.config.TraderConfig` runs with (strategy, limits,
        schedule, requote tolerances), plus research-only fields ``research``."""
        return cls(strategy=cfg.strategy, limits=cfg.limits, schedule=cfg.schedule,
                   requote_price_tol=cfg.requote_price_tol, requote_size_tol=cfg.requote_size_tol, **research)

    @property
    def fee(self) -> FeeSchedule:
        return self.models.fee

    @property
    def order_latency_ms(self) -> int | None:
        """Order-entry latency of a constant latency model (ms; None for a sampled one);
        sweeps/configs set it flat."""
        lat = self.models.latency
        return int(lat.entry) if isinstance(lat, ConstantLatency) else None

    def __getattr__(self, name: str) -> Any:
        """Read access by flat name to the composed objects' fields (``p.half_spread``,
        ``p.max_position_size``, ``p.t_flatten_ms``): the same value, one definition."""
        if name in _STRATEGY_KEYS:
            return getattr(self.strategy, name)
        if name in _LIMIT_KEYS:
            return getattr(self.limits, name)
        if name in _SCHEDULE_KEYS:
            return getattr(self.schedule, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def replace(self, **kw: Any) -> "BacktestParams":
        """A copy with ``kw`` applied. Keys are this class's fields, or the flat names of a
        strategy / limit / schedule field, or ``fee`` (FeeSchedule or mapping), ``agents``
        (AgentConfig overrides as a mapping or pairs), ``latency`` (a latency model, an int
        ms for both legs, or ``{"entry": ms, "response": ms}``), ``order_latency_ms`` (entry
        latency of a constant model)."""
        own = {f.name for f in fields(self)}
        unknown = sorted(k for k in kw if k not in own and k not in _STRATEGY_KEYS | _LIMIT_KEYS | _SCHEDULE_KEYS
                         and k not in ("fee", "agents", "latency", "order_latency_ms"))
        if unknown:
            raise ValueError(f"unknown backtest parameter(s): {', '.join(unknown)}")
        top = {k: v for k, v in kw.items() if k in own}
        strat = {k: v for k, v in kw.items() if k in _STRATEGY_KEYS}
        lim = {k: v for k, v in kw.items() if k in _LIMIT_KEYS}
        sch = {k: v for k, v in kw.items() if k in _SCHEDULE_KEYS}
        base = replace(self, **top) if top else self
        mod = base.models
        if "fee" in kw:
            mod = replace(mod, fee=_fee(kw["fee"]))
        if "agents" in kw:
            mod = replace(mod, flow=replace(mod.flow, overrides=_agent_pairs(kw["agents"])))
        if "latency" in kw:
            mod = replace(mod, latency=_latency(kw["latency"]))
        if "order_latency_ms" in kw:   # the strategy issue's flat knob: order entry latency, ms
            ms = int(kw["order_latency_ms"])
            resp = int(getattr(mod.latency, "response", 0)) if isinstance(mod.latency, ConstantLatency) else 0
            mod = replace(mod, latency=ConstantLatency(ms, resp))
        return replace(base, strategy=replace(base.strategy, **strat) if strat else base.strategy,
                       limits=replace(base.limits, **lim) if lim else base.limits,
                       schedule=replace(base.schedule, **sch) if sch else base.schedule, models=mod)

    def flat(self) -> dict[str, Any]:
        """Every knob under its flat name (result JSON, sweep tables); models as plain dicts."""
        d: dict[str, Any] = {**asdict(self.strategy), **asdict(self.limits), **asdict(self.schedule)}
        d.update({f.name: getattr(self, f.name) for f in fields(self)
                  if f.name not in ("strategy", "limits", "schedule", "models")})
        m = self.models.as_dict()
        d["fee"] = m["fee"]
        d["agents"] = dict(self.models.flow.overrides)
        d["latency"] = m["latency"]
        d["order_latency_ms"] = self.order_latency_ms
        return d


def _fee(v: Any) -> FeeSchedule:
    if isinstance(v, FeeSchedule):
        return v
    if isinstance(v, Mapping):
        return FeeSchedule(**{**asdict(CRYPTO_FEES), **dict(v)})
    raise ValueError(f"fee must be a FeeSchedule or a mapping of its fields, got {v!r}")


def _agent_pairs(v: Any) -> tuple[tuple[str, Any], ...]:
    items = v.items() if isinstance(v, Mapping) else v
    try:
        return tuple(sorted((str(k), tuple(x) if isinstance(x, list) else x) for k, x in items))
    except (TypeError, ValueError):
        raise ValueError(f"agents must be a mapping of AgentConfig fields, got {v!r}") from None


def _latency(v: Any) -> ConstantLatency | SampledLatency:
    if isinstance(v, (ConstantLatency, SampledLatency)):
        return v
    if isinstance(v, bool):
        raise ValueError(f"latency must be ms or a mapping, got {v!r}")
    if isinstance(v, (int, float)):
        return ConstantLatency(int(v), int(v))
    if isinstance(v, Mapping):
        e, r = v.get("entry", 0), v.get("response", 0)
        if isinstance(e, (list, tuple)) or isinstance(r, (list, tuple)):
            return SampledLatency(tuple(e) if isinstance(e, (list, tuple)) else (int(e),),
                                  tuple(r) if isinstance(r, (list, tuple)) else (int(r),))
        return ConstantLatency(int(e), int(r))
    raise ValueError(f"latency must be ms, a mapping or a latency model, got {v!r}")


@dataclass
class BacktestResult:
    """All hours of one backtest plus totals; ``source`` names the data (``synthetic`` = stand-in)."""

    source: str
    params: dict[str, Any]
    hours: list[HourResult]
    n_ticks: int
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # hour_start_ms -> why that hour failed

    def totals(self) -> dict[str, float]:
        h = self.hours
        pnl = np.array([x.pnl for x in h]) if h else np.zeros(0)

        def wmean(attr: str) -> float:
            vals = [(getattr(x, attr), x.volume) for x in h if x.n_fills and math.isfinite(getattr(x, attr))]
            vol = sum(v for _, v in vals)
            return float(sum(a * v for a, v in vals) / vol) if vol else float("nan")

        return {
            "hours": len(h),
            "pnl": float(pnl.sum()),
            "pnl_per_hour": float(pnl.mean()) if h else float("nan"),
            "pnl_std": float(pnl.std(ddof=1)) if len(h) > 1 else float("nan"),
            "sharpe_hourly": float(pnl.mean() / pnl.std(ddof=1)) if len(h) > 1 and pnl.std(ddof=1) > 0 else float("nan"),
            "fees": float(sum(x.fees for x in h)),
            "volume": float(sum(x.volume for x in h)),
            "fills": float(sum(x.n_fills for x in h)),
            "worst_hour": float(pnl.min()) if h else float("nan"),
            "max_abs_net_up": float(max((x.max_abs_net_up for x in h), default=0.0)),
            "markout_5s": wmean("markout_5s"),
            "markout_30s": wmean("markout_30s"),
            "adverse_5s": wmean("adverse_5s"),
            "adverse_30s": wmean("adverse_30s"),
            "failed_hours": len(self.errors),
        }


# --------------------------------------------------------------------------- the runner
def run_backtest(ticks: Any, params: BacktestParams | None = None,
                 max_hours: int | None = None, start_ms: int | None = None, end_ms: int | None = None,
                 keep_paths: bool | int = False, warmup_ms: int = HOUR_MS, workers: int = 1,
                 hour_stride: int = 1, fast: bool = True) -> BacktestResult:
    """Backtest the strategy over every complete hour of ``ticks`` (TickData or (ts_ms, price)).

    ``hour_stride`` k > 1 keeps every k-th hour of the window (a systematic sample across
    the days and hours of the day, for long spans on a busy machine).

    Hours before ``ts[0] + warmup_ms`` are skipped (vol warm-up). Each hour is
    :func:`hourmm_core.research.engine_backtest.run_hour` (the trader's decision core
    against the simulator engine, with ``params.models``). Inventory paths (``res.paths``) are kept for every hour
    when ``keep_paths`` is True, for the first N hours when it is an int N (memory: a path
    is one entry per decision).
    ``workers > 1`` splits the hours into contiguous blocks run in that many
    processes (hours are independent: each is its own market, settled at its
    close); the result is identical to ``workers=1``.
    ``fast=False`` runs every hour on the reference path (same results, slower; see
    :func:`hourmm_core.research.engine_backtest.run_hour`).
    """
    params = params or BacktestParams()
    ts, price, source = cal.as_arrays(ticks)
    if source == "synthetic":
        log.warning("backtesting on SYNTHETIC ticks (no real Binance data found): results are not market evidence")
    t0 = time.perf_counter()
    # column 0 drives the fair value, column 1 (the live pricer's last half-life) gives fair_unc
    sigma = cal.sigma_path(ts, price, (params.halflife_s, params.halflife_alt_s), params.sample_ms)
    hs, first, last = cal.complete_hours(ts)
    keep = hs >= (ts[0] + warmup_ms if ts.size else 0)
    if start_ms is not None:
        keep &= hs >= start_ms
    if end_ms is not None:
        keep &= hs + HOUR_MS <= end_ms
    hs, first, last = hs[keep], first[keep], last[keep]
    if hour_stride > 1:
        hs, first, last = hs[::hour_stride], first[::hour_stride], last[::hour_stride]
    if max_hours is not None:
        hs, first, last = hs[:max_hours], first[:max_hours], last[:max_hours]
    n_keep = len(hs) if keep_paths is True else int(keep_paths or 0)
    jobs = [(h, a, b, i < n_keep) for i, (h, a, b) in enumerate(zip(hs.tolist(), first.tolist(), last.tolist()))]
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        out = _run_block(params, ts, price, sigma, jobs, fast)
    else:
        blocks = [b.tolist() for b in np.array_split(np.arange(len(jobs)), workers)]
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(params, ts, price, sigma, fast)) as pool:
            futs = [pool.submit(_run_block_worker, [jobs[i] for i in b]) for b in blocks]
            out = [x for f in futs for x in f.result()]
    hours = [r for r, _ in out if r is not None]
    paths = [p for r, p in out if r is not None and p is not None]
    errors = {int(p[0]): str(p[1]) for r, p in out if r is None}
    n_ticks = int(last[-1] - first[0] + 1) if hs.size else 0
    res = BacktestResult(source, params.flat(), hours, n_ticks, time.perf_counter() - t0,
                         notes=[f"loop: {engine_backtest.describe()}"], errors=errors)
    if n_keep:
        res.paths = paths  # type: ignore[attr-defined]
    return res


def run_backtest_span(hours: int, start_ms: int | None = None, params: BacktestParams | None = None,
                      data_dir: str | None = None, chunk_hours: int = 48,
                      workers: int = 1, warmup_ms: int = HOUR_MS) -> BacktestResult:
    """Backtest ``hours`` consecutive hours from ``start_ms`` (ms UTC, hour-aligned), loading the
    ticks chunk by chunk so a month or a year never has to sit in memory at once.

    Each chunk of ``chunk_hours`` is loaded with ``warmup_ms`` of history before it (the vol
    estimator's warm-up) through :func:`hourmm_core.data.load_ticks` - real dumps when found,
    else the labelled synthetic stand-in. ``start_ms=None``: the first hour after the warm-up
    in the longest contiguous real kline span (:func:`hourmm_core.data.history_span`), or the
    synthetic default start.
    """
    if hours <= 0 or chunk_hours <= 0:
        raise ValueError("hours and chunk_hours must be > 0")
    if start_ms is None:
        span = hdata.history_span(data_dir)  # the longest contiguous real kline span (else trades)
        # real data: the first hour that has its warm-up inside the span
        start_ms = span[0] + warmup_ms if span is not None else hdata.DEFAULT_SYNTHETIC_START_MS
    start_ms = int(start_ms) - int(start_ms) % HOUR_MS
    params = params or BacktestParams()
    use_history_dir(data_dir)   # the fair's 28-day kline warm-up reads the same data as the ticks
    parts: list[BacktestResult] = []
    for c0 in range(start_ms, start_ms + hours * HOUR_MS, chunk_hours * HOUR_MS):
        c1 = min(c0 + chunk_hours * HOUR_MS, start_ms + hours * HOUR_MS)
        ticks = hdata.load_prices(c0 - warmup_ms, c1, data_dir=data_dir)   # load_ticks' (ts, price, source)
        parts.append(run_backtest(ticks, params, start_ms=c0, end_ms=c1, warmup_ms=0, workers=workers))
        done = sum(len(p.hours) for p in parts)
        log.info("backtest span: %d/%d hours done (%.1f s in this chunk, %s data)", done, hours,
                 parts[-1].wall_s, parts[-1].source)
    sources = sorted({p.source for p in parts})
    out = BacktestResult("+".join(sources), params.flat(), [h for p in parts for h in p.hours],
                         sum(p.n_ticks for p in parts), sum(p.wall_s for p in parts),
                         notes=[f"loop: {engine_backtest.describe()}",
                                f"span: {hours} h from {start_ms} in chunks of {chunk_hours} h"],
                         errors={k: v for p in parts for k, v in p.errors.items()})
    return out


DAY_MS = 24 * HOUR_MS


def run_backtest_days(days_ms: Sequence[int], params: BacktestParams | None = None, data_dir: str | None = None,
                      warmup_ms: int = DAY_MS, workers: int = 1, hours_per_day: int = 24) -> BacktestResult:
    """Backtest whole UTC days (``days_ms``: each day's 00:00 UTC in ms), each loaded on its own
    through :func:`hourmm_core.data.load_ticks` with ``warmup_ms`` of history before it (the
    June whole-days run's loader: 300 bridged ticks a minute, 24 h of vol warm-up).

    A systematic sample of whole days (:func:`hourmm_core.research.backtest_cli.parse_days`)
    costs the loading and warm-up once per day instead of once per sampled hour, and covers
    every hour of the day. Hours, seeds and results of a day do not depend on the other days
    sampled, so two runs over the same days pair hour by hour
    (:func:`hourmm_core.research.evidence.paired_difference`). ``hours_per_day`` < 24 runs only
    the first hours of each day (quick checks)."""
    days = [int(d) for d in days_ms]
    if not 1 <= hours_per_day <= 24:
        raise ValueError(f"hours_per_day must be in 1..24, got {hours_per_day}")
    if not days:
        raise ValueError("no days to backtest")
    bad = [d for d in days if d % DAY_MS]
    if bad:
        raise ValueError(f"days must start at 00:00 UTC (ms multiple of {DAY_MS}), got {bad}")
    if len(set(days)) != len(days):
        raise ValueError("a day is listed twice")
    params = params or BacktestParams()
    parts = [run_backtest_span(hours_per_day, start_ms=d, params=params, data_dir=data_dir, chunk_hours=24,
                               warmup_ms=warmup_ms, workers=workers) for d in sorted(days)]
    return BacktestResult("+".join(sorted({p.source for p in parts})), params.flat(),
                          [h for p in parts for h in p.hours], sum(p.n_ticks for p in parts),
                          sum(p.wall_s for p in parts),
                          notes=[f"loop: {engine_backtest.describe()}",
                                 f"days: {len(days)} UTC days x {hours_per_day} h, {warmup_ms // HOUR_MS} h warm-up each"],
                          errors={k: v for p in parts for k, v in p.errors.items()})


def _run_block(params: BacktestParams, ts: np.ndarray, price: np.ndarray, sigma: np.ndarray,
               jobs: Sequence[tuple[int, int, int, bool]], fast: bool = True) -> list[tuple[HourResult, Any]]:
    """Run hours in order; an hour that raises is logged with its traceback and reported
    (``(None, "error text")``), never allowed to abort the rest of a long backtest."""
    out: list[tuple[HourResult | None, Any]] = []
    for h, a, b, keep in jobs:
        try:
            r, path = engine_backtest.run_hour(params, ts, price, h, a, b, sigma, **({} if fast else {"fast": False}))
        except Exception as exc:  # noqa: BLE001 - one broken hour must not lose a month
            log.error("backtest hour %d failed: %s: %s\n%s", h, type(exc).__name__, exc, traceback.format_exc())
            out.append((None, (h, f"{type(exc).__name__}: {exc}")))
            continue
        out.append((r, path if keep else None))
    return out


_WORKER: tuple = ()


def _init_worker(params: BacktestParams, ts: np.ndarray, price: np.ndarray,
                 sigma: np.ndarray, fast: bool = True) -> None:
    global _WORKER
    _WORKER = (params, ts, price, sigma, fast)


def _run_block_worker(jobs: Sequence[tuple[int, int, int, bool]]) -> list[tuple[HourResult, Any]]:
    params, ts, price, sigma, fast = _WORKER
    return _run_block(params, ts, price, sigma, jobs, fast)


# --------------------------------------------------------------------------- text, JSON, sweeps
def format_backtest(res: BacktestResult, max_rows: int = 48) -> str:
    """Per-hour table (first ``max_rows`` hours) and totals, with the data source."""
    lines = [f"data source: {res.source}" + ("  (SYNTHETIC stand-in, not market data)" if res.source == "synthetic" else ""),
             f"hours={len(res.hours)} ticks={res.n_ticks} wall={res.wall_s:.2f}s",
             f"{'hour (UTC)':<17}{'up':>4}{'pnl':>9}{'fees':>8}{'volume':>9}{'fills':>6}"
             f"{'up@T':>7}{'dn@T':>7}{'maxnet':>8}{'adv5s':>8}{'adv30s':>8}"]
    for h in res.hours[:max_rows]:
        t = _dt.datetime.fromtimestamp(h.hour_start_ms / 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
        lines.append(f"{t:<17}{'Y' if h.up_won else 'N':>4}{h.pnl:>9.3f}{h.fees:>8.3f}{h.volume:>9.1f}{h.n_fills:>6}"
                     f"{h.up_at_close:>7.1f}{h.down_at_close:>7.1f}{h.max_abs_net_up:>8.1f}"
                     f"{h.adverse_5s:>8.4f}{h.adverse_30s:>8.4f}")
    if len(res.hours) > max_rows:
        lines.append(f"... {len(res.hours) - max_rows} more hours")
    for h, err in sorted(res.errors.items()):
        lines.append(f"FAILED hour {h}: {err}")
    tot = res.totals()
    lines.append("totals: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in tot.items()))
    ev = format_summary(summarize(res.hours))
    if ev:
        lines.append(ev)
    return "\n".join(lines)


def result_json(res: BacktestResult) -> dict[str, Any]:
    return json_safe({"source": res.source, "params": res.params, "n_ticks": res.n_ticks, "totals": res.totals(),
                  "evidence": summarize(res.hours),
                  "hours": [h.row() for h in res.hours],
                  "errors": {str(k): v for k, v in res.errors.items()}})


def backtest_task(ts_ms: np.ndarray, price: np.ndarray, **overrides: Any) -> dict[str, Any]:
    """Sweep task: backtest with ``BacktestParams().replace(**overrides)``; totals as metrics."""
    max_hours = overrides.pop("max_hours", None)
    params = BacktestParams().replace(**overrides)
    return run_backtest((ts_ms, price), params, max_hours=max_hours).totals()


def backtest_days_task(days_ms: Sequence[int], data_dir: str | None = None, warmup_ms: int = DAY_MS,
                       base: Mapping[str, Any] | None = None, hours_per_day: int = 24,
                       **point: Any) -> dict[str, Any]:
    """Sweep task over whole days (:func:`run_backtest_days`): ``BacktestParams().replace(**base)``
    then the grid point's flat knobs (``name`` is a label; an ``agents`` mapping updates the base's
    agents field by field). Metrics: the evidence headline (:func:`evidence_metrics`) plus
    ``hour_ms`` / ``hour_pnl`` (tuples, for pairing points hour by hour) and ``cpu_s``."""
    point = dict(point)
    point.pop("name", None)
    knobs = dict(base or {})
    if "agents" in point and isinstance(knobs.get("agents"), Mapping):
        point["agents"] = {**knobs["agents"], **dict(point["agents"])}
    knobs.update(point)
    c0 = time.process_time()
    res = run_backtest_days(days_ms, BacktestParams().replace(**knobs), data_dir=data_dir, warmup_ms=warmup_ms,
                            hours_per_day=hours_per_day)
    out = evidence_metrics(res)
    out["cpu_s"] = round(time.process_time() - c0, 1)
    out["hour_ms"] = tuple(int(h.hour_start_ms) for h in res.hours)
    out["hour_pnl"] = tuple(float(h.pnl) for h in res.hours)
    return out


def evidence_metrics(res: BacktestResult) -> dict[str, Any]:
    """The issue's evidence of one run as flat table columns (sweep rows, variants tables)."""
    ev = summarize(res.hours)
    if not ev:
        return {"hours": 0, "failed_hours": len(res.errors)}
    return {"hours": ev["hours"], "pnl_per_hour": ev["pnl_per_hour"],
            "ci_lo": ev["pnl_per_hour_ci95"][0], "ci_hi": ev["pnl_per_hour_ci95"][1],
            "fees": ev["fees"], "maker_volume": ev["maker_volume"], "taker_volume": ev["taker_volume"],
            "mk30_fair": ev["markout_fair"]["30s"], "mk30_venue": ev["markout_true_fair"]["30s"],
            "mk_settle": ev["markout_settle"], "sniper_share": ev["sniper_share_of_maker_fills"],
            "max_inv": ev["max_inventory_token"], "worst_hour": ev["worst_hour"]["pnl"],
            "flat": ev["flat_every_cutoff"], "breaches": ev["limit_breaches"], "failed_hours": len(res.errors)}


def sweep_backtest(ticks: Any, grid: Mapping[str, Sequence[Any]], scheduler: Any = None,
                   max_workers: int | None = None, **fixed: Any) -> Any:
    """Grid over BacktestParams fields (half_spread, skew, quote_size, halflife_s, ...) -> SweepResult."""
    ts, price, _ = cal.as_arrays(ticks)
    return sweep.run_sweep(backtest_task, grid, {"ts_ms": ts, "price": price, **fixed}, scheduler, max_workers)
