"""Strategy backtests over many hours on simulated time, settled at each hour's close.

Why in-process: a month is ~720 hours; driving the simulator's matching engine
directly (place / cancel / advance to a simulated ms) instead of through sockets
runs that in minutes and is deterministic, while still exercising the same
strategy, ladder and risk code the live trader uses.

Accounting lives here (it is research bookkeeping, not trading logic):

* :class:`HourLedger` - cash and Up/Down tokens of one hour, fee per fill,
  inventory path, settlement at the close (Up pays 1 USDC if close >= open,
  Down pays 1 otherwise).
* :func:`markouts` - adverse selection: how the fair value of the token we
  traded moved 5 s / 30 s after each fill (negative = we were picked off).
* fees: :mod:`hourmm_core.fees` (the venue's schedule, one formula for the
  simulator, the backtest, the client and the reports); makers pay nothing.

Units: ts in int ms UTC, prices in USDC per token (probability units),
sizes in tokens, money in USDC.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES, FeeSchedule, fill_fee

log = logging.getLogger(__name__)

UP, DOWN = 0, 1
BUY, SELL = 0, 1
TOKEN_NAMES = ("Up", "Down")


# --------------------------------------------------------------------------- ledger
@dataclass(frozen=True)
class Fill:
    """One execution of our order: token UP/DOWN, side BUY/SELL, price per token, size in tokens."""

    ts_ms: int
    token: int
    side: int
    price: float
    size: float
    fee: float = 0.0
    maker: bool = True

    def __post_init__(self) -> None:
        if self.token not in (UP, DOWN) or self.side not in (BUY, SELL):
            raise ValueError(f"fill token/side must be 0/1, got {self.token}/{self.side}")
        if not (0.0 < self.price < 1.0) or not (self.size > 0) or self.fee < 0:
            raise ValueError(f"bad fill: price={self.price} size={self.size} fee={self.fee}")


@dataclass
class HourResult:
    """Per-hour backtest output (one table row)."""

    hour_start_ms: int
    open_price: float
    close_price: float
    up_won: bool
    pnl: float
    cash_flow: float
    settlement: float
    fees: float
    volume: float
    notional: float
    n_fills: int
    up_at_close: float
    down_at_close: float
    max_abs_net_up: float
    markout_5s: float
    markout_30s: float
    adverse_5s: float
    adverse_30s: float
    n_orders: int = 0
    n_cancels: int = 0
    n_risk_rejects: int = 0
    detail: dict = field(default_factory=dict)   # venue/strategy evidence of the hour (research.evidence)

    def row(self) -> dict[str, Any]:
        return asdict(self)


class HourLedger:
    """Cash and inventory of one hourly market, settled at the close.

    Cash starts at 0: PnL is cash after settlement. Buying spends
    ``price*size + fee``; selling receives ``price*size - fee``. A sale of more
    tokens than held is refused (Polymarket has no naked shorts: selling Up
    exposure is done by buying Down).
    """

    def __init__(self, hour_start_ms: int) -> None:
        self.hour_start_ms = int(hour_start_ms)
        self.cash = 0.0
        self.pos = [0.0, 0.0]
        self.fees = 0.0
        self.volume = 0.0
        self.notional = 0.0
        self.fills: list[Fill] = []
        self.path_ts: list[int] = []
        self.path_up: list[float] = []
        self.path_down: list[float] = []
        self.settled: float | None = None

    def apply(self, f: Fill) -> None:
        if self.settled is not None:
            raise RuntimeError("fill after settlement")
        if f.side == SELL and f.size > self.pos[f.token] + 1e-9:
            raise ValueError(f"sell of {f.size} {TOKEN_NAMES[f.token]} exceeds holding {self.pos[f.token]}")
        sign = 1.0 if f.side == BUY else -1.0
        self.pos[f.token] += sign * f.size
        if abs(self.pos[f.token]) < 1e-12:
            self.pos[f.token] = 0.0
        self.cash -= sign * f.price * f.size
        self.cash -= f.fee
        self.fees += f.fee
        self.volume += f.size
        self.notional += f.price * f.size
        self.fills.append(f)
        self.path_ts.append(f.ts_ms)
        self.path_up.append(self.pos[UP])
        self.path_down.append(self.pos[DOWN])

    def merge(self, ts_ms: int, size: float) -> None:
        """CTF merge of ``size`` Up+Down pairs for ``size`` USDC (no fee)."""
        if self.settled is not None:
            raise RuntimeError("merge after settlement")
        if not (size > 0) or size > min(self.pos) + 1e-9:
            raise ValueError(f"merge of {size} exceeds the pairs held {self.pos}")
        self.pos = [max(0.0, self.pos[UP] - size), max(0.0, self.pos[DOWN] - size)]
        self.cash += size
        self.merged = getattr(self, "merged", 0.0) + size
        self.path_ts.append(int(ts_ms))
        self.path_up.append(self.pos[UP])
        self.path_down.append(self.pos[DOWN])

    def settle(self, up_won: bool) -> float:
        """Pay 1 USDC per winning token; returns the payout (added to cash)."""
        if self.settled is not None:
            raise RuntimeError("hour already settled")
        payout = self.pos[UP] if up_won else self.pos[DOWN]
        self.settled = float(payout)
        self.cash += payout
        return float(payout)

    @property
    def pnl(self) -> float:
        if self.settled is None:
            raise RuntimeError("pnl is defined after settlement")
        return self.cash


def markouts(fills: Sequence[Fill], fair_ts: np.ndarray, fair_up: np.ndarray,
             horizons_ms: Sequence[int] = (5_000, 30_000), end_ms: int | None = None) -> dict[str, float]:
    """Size-weighted adverse selection of ``fills`` against the fair-value path.

    For each fill of token k (fair_k = fair_up for Up, 1 - fair_up for Down) and
    side sign s (+1 buy, -1 sell), at horizon h (capped at ``end_ms``):

    * ``markout_{h}s`` = s * (fair_k(t+h) - fill price): edge kept after h;
    * ``adverse_{h}s`` = s * (fair_k(t+h) - fair_k(t)): how much the value moved
      against (negative) or with (positive) us after the fill.

    NaN when there are no fills.
    """
    out: dict[str, float] = {}
    fair_ts = np.asarray(fair_ts, dtype=np.int64)
    fair_up = np.asarray(fair_up, dtype=np.float64)
    if not fills or fair_ts.size == 0:
        for h in horizons_ms:
            out[f"markout_{h // 1000}s"] = float("nan")
            out[f"adverse_{h // 1000}s"] = float("nan")
        return out
    t = np.array([f.ts_ms for f in fills], dtype=np.int64)
    size = np.array([f.size for f in fills])
    price = np.array([f.price for f in fills])
    sgn = np.array([1.0 if f.side == BUY else -1.0 for f in fills])
    down = np.array([f.token == DOWN for f in fills])

    def fair_at(ts: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(fair_ts, ts, side="right") - 1, 0, fair_ts.size - 1)
        v = fair_up[i]
        return np.where(down, 1.0 - v, v)

    f0 = fair_at(t)
    w = size / size.sum()
    for h in horizons_ms:
        th = t + h
        if end_ms is not None:
            th = np.minimum(th, end_ms)
        fh = fair_at(th)
        out[f"markout_{h // 1000}s"] = float(np.sum(w * sgn * (fh - price)))
        out[f"adverse_{h // 1000}s"] = float(np.sum(w * sgn * (fh - f0)))
    return out


def hour_result(ledger: HourLedger, open_price: float, close_price: float, fair_ts: np.ndarray,
                fair_up: np.ndarray, counters: Mapping[str, int] | None = None) -> HourResult:
    """Settle ``ledger`` at the hour's close and summarize it."""
    up_won = bool(close_price >= open_price)
    up, down = ledger.pos[UP], ledger.pos[DOWN]
    cash_flow = ledger.cash
    payout = ledger.settle(up_won)
    net = np.array(ledger.path_up) - np.array(ledger.path_down)
    mk = markouts(ledger.fills, fair_ts, fair_up, end_ms=ledger.hour_start_ms + HOUR_MS)
    c = dict(counters or {})
    return HourResult(ledger.hour_start_ms, float(open_price), float(close_price), up_won, ledger.pnl,
                      cash_flow, payout, ledger.fees, ledger.volume, ledger.notional, len(ledger.fills), up, down,
                      float(np.max(np.abs(net))) if net.size else 0.0,
                      mk["markout_5s"], mk["markout_30s"], mk["adverse_5s"], mk["adverse_30s"],
                      c.get("orders", 0), c.get("cancels", 0), c.get("risk_rejects", 0))


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


# --------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class Quote:
    """A desired resting order: token UP/DOWN, side BUY/SELL, price per token, size in tokens."""

    token: int
    side: int
    price: float
    size: float


@dataclass(frozen=True)
class BacktestParams:
    """Knobs of one backtest run (sweepable). Strategy knobs mirror TraderConfig names.

    ``decision_ms``: how often (simulated) the trader re-quotes; ``halflife_s``,
    ``sample_ms``, ``nu``: the pricer's estimator; ``fee``: the market's fee schedule
    (default: the venue's crypto schedule, :data:`hourmm_core.fees.CRYPTO_FEES`).
    """

    half_spread: float = 0.02
    skew: float = 0.02
    quote_size: float = 5.0
    quote_levels: int = 2
    level_step: float = 0.01
    halflife_s: float = 30.0
    halflife_alt_s: float = 600.0
    sample_ms: int = 1000
    nu: float = 0.0
    p_min: float = 0.001
    decision_ms: int = 1000
    tick_size: float = 0.01
    max_position_size: float = 500.0
    max_order_size: float = 100.0
    max_reserved_capital: float = 1000.0
    max_open_orders: int = 4
    t_wind_ms: int = 600_000
    t_flatten_ms: int = 300_000
    hard_cutoff_ms: int = 60_000
    seed: int = 0
    fee: FeeSchedule = CRYPTO_FEES
    # the rest of TraderConfig's strategy knobs (same names, same defaults)
    unc_mult: float = 1.0
    price_band: float = 0.15
    wind_down_spread_mult: float = 2.0
    wind_down_size_mult: float = 0.5
    requote_price_tol: float = 0.005
    requote_size_tol: float = 0.2
    # venue: market minimum order size, background-agent overrides as (AgentConfig field, value) pairs
    min_size: float = 5.0
    agents: tuple = ()
    # our snapshot -> order-at-venue latency (ms): decisions made at t act at t + order_latency_ms
    # (cancels too), so latency snipers faster than that pick off the stale quotes
    order_latency_ms: int = 150
    # hostile-venue strategy knobs (trading.strategy.StrategyParams, same names and meaning)
    latency_ms: float = 1150.0
    move_mult: float = 0.0
    pull_move: float = 0.0
    pull_hold_ms: int = 2000
    inv_limit: float = math.inf
    extreme_cut: float = 0.0
    merge_min: float = 0.0

    def __post_init__(self) -> None:
        if self.decision_ms <= 0 or self.decision_ms > 60_000:
            raise ValueError("decision_ms must be in (0, 60000]")
        if self.quote_size < 0 or self.half_spread < 0 or self.quote_levels < 1:
            raise ValueError("quote_size, half_spread must be >= 0 and quote_levels >= 1")
        if not (self.hard_cutoff_ms <= self.t_flatten_ms <= self.t_wind_ms <= HOUR_MS):
            raise ValueError("hard_cutoff_ms <= t_flatten_ms <= t_wind_ms <= 1h must hold")

    def replace(self, **kw: Any) -> "BacktestParams":
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        unknown = set(kw) - set(d)
        if unknown:
            raise ValueError(f"unknown backtest parameter(s): {', '.join(sorted(unknown))}")
        d.update(kw)
        return BacktestParams(**d)


def fair_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: BacktestParams,
              sigma: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fair P(up) on the decision grid of one hour: (grid_ts, fair_up, sigma_at_grid).

    Uses the compiled ``fair_prob_batch`` on the last tick at or before each grid
    time (never after), with the hour's first trade as the strike. ``sigma`` is
    per-tick sigma (per sqrt second); a 2-D array uses its first column.
    """
    grid, p, sg, _ = fair_unc_path(ts_ms, price, hour_start, first, params, sigma, step_ms)
    return grid, p, sg


def fair_unc_path(ts_ms: np.ndarray, price: np.ndarray, hour_start: int, first: int, params: BacktestParams,
                  sigma: np.ndarray, step_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid_ts, fair_up, sigma_at_grid, fair_unc) - ``fair_unc`` is what the live snapshot
    publishes: ``|p(sigma) - p(sigma_alt)|`` with sigma_alt the second column of a 2-D
    ``sigma`` (the long half-life), zeros when ``sigma`` is 1-D."""
    from hourmm_core.research import calibration as cal

    grid = hour_start + np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    idx = np.maximum(np.searchsorted(ts_ms, grid, side="right") - 1, first)
    q = cal._quant()
    S = np.ascontiguousarray(price[idx])
    K = np.full(S.shape, price[first])
    tau_s = (hour_start + HOUR_MS - grid) / 1000.0
    two = sigma.ndim == 2
    sg = np.ascontiguousarray(sigma[idx, 0] if two else sigma[idx])
    nu, pm = float(params.nu), float(params.p_min)
    p = np.asarray(q.fair_prob_batch(S, K, tau_s, sg, nu, pm), dtype=np.float64)
    if two and sigma.shape[1] > 1:
        alt = np.asarray(q.fair_prob_batch(S, K, tau_s, np.ascontiguousarray(sigma[idx, 1]), nu, pm), dtype=np.float64)
        unc = np.abs(p - alt)
    else:
        unc = np.zeros_like(p)
    return grid, p, sg, unc


# Phases of the trading hour (same thresholds as the live session: T_WIND_MS, T_FLATTEN_MS, HARD_CUTOFF_MS).
PHASE_ACTIVE, PHASE_WIND_DOWN, PHASE_FLATTEN, PHASE_CUTOFF = "ACTIVE", "WIND_DOWN", "FLATTEN", "CUTOFF"


def phase_at(ms_left: int, p: BacktestParams) -> str:
    """Session phase from ms left in the hour (mirrors the operator guide's thresholds)."""
    if ms_left <= p.hard_cutoff_ms:
        return PHASE_CUTOFF
    if ms_left <= p.t_flatten_ms:
        return PHASE_FLATTEN
    if ms_left <= p.t_wind_ms:
        return PHASE_WIND_DOWN
    return PHASE_ACTIVE


@dataclass
class QuoteState:
    """What the strategy and risk see at one decision: fair value, inventory, open orders."""

    ts_ms: int
    hour_start_ms: int
    fair_up: float
    sigma: float
    tau_ms: int
    phase: str
    pos_up: float
    pos_down: float
    cash: float
    open_orders: dict[str, Quote]


class Components:
    """The pluggable parts of a backtest: venue (fill model), strategy and risk.

    Subclass or duck-type. ``new_venue`` returns an object with
    ``place(ts_ms, quote) -> order_id | None``, ``cancel(ts_ms, order_id) -> bool``,
    ``advance(to_ms) -> list[Fill]`` and ``open_orders() -> dict[id, Quote]``.
    ``desired_quotes(state) -> list[Quote]`` is the strategy; ``risk_check(quote, state)
    -> int`` returns 0 to allow, a reason code otherwise.
    """

    def new_venue(self, hour_start_ms: int, grid_ts: np.ndarray, fair_up: np.ndarray,
                  params: BacktestParams) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def desired_quotes(self, state: QuoteState, params: BacktestParams) -> list[Quote]:  # pragma: no cover
        raise NotImplementedError

    def risk_check(self, quote: Quote, state: QuoteState, params: BacktestParams) -> int:
        return 0

    def describe(self) -> str:
        return type(self).__name__

    def run_hour(self, params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray, hour_start: int,
                 first: int, last: int, sigma: np.ndarray) -> tuple[HourResult, dict[str, Any]]:
        """One hour; the default is the generic loop :func:`run_hour` over the three hooks above."""
        return run_hour(self, params, ts_ms, price, hour_start, first, last, sigma)


def _same(a: Quote, b: Quote, tick: float) -> bool:
    return a.token == b.token and a.side == b.side and abs(a.price - b.price) < tick / 2 and abs(a.size - b.size) < 1e-9


def reconcile(open_orders: Mapping[str, Quote], desired: Sequence[Quote],
              tick: float) -> tuple[list[str], list[Quote]]:
    """Which resting orders to cancel and which desired quotes to place, keeping
    orders that already match (same token/side/price/size) so they keep queue priority."""
    left = list(desired)
    cancels = []
    for oid, q in open_orders.items():
        for i, d in enumerate(left):
            if _same(q, d, tick):
                del left[i]
                break
        else:
            cancels.append(oid)
    return cancels, left


def run_hour(components: Components, params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray,
             hour_start: int, first: int, last: int, sigma: np.ndarray) -> tuple[HourResult, dict[str, Any]]:
    """One hour on simulated time: decide every ``decision_ms``, fill, settle at the close."""
    grid, fair, sg = fair_path(ts_ms, price, hour_start, first, params, sigma, params.decision_ms)
    venue = components.new_venue(hour_start, grid, fair, params)
    led = HourLedger(hour_start)
    counters = {"orders": 0, "cancels": 0, "risk_rejects": 0, "venue_rejects": 0}
    path = {"ts_ms": [], "pos_up": [], "pos_down": [], "fair_up": []}
    end = hour_start + HOUR_MS
    for i, t in enumerate(grid.tolist()):
        oo = venue.open_orders()
        st = QuoteState(t, hour_start, float(fair[i]), float(sg[i]), end - t, phase_at(end - t, params),
                        led.pos[UP], led.pos[DOWN], led.cash, dict(oo))
        desired = components.desired_quotes(st, params) if st.phase != PHASE_CUTOFF else []
        cancels, places = reconcile(oo, desired, params.tick_size)
        for oid in cancels:
            venue.cancel(t, oid)
            counters["cancels"] += 1
        for q in places:
            code = components.risk_check(q, st, params)
            if code:
                counters["risk_rejects"] += 1
                continue
            if venue.place(t, q) is None:
                counters["venue_rejects"] += 1
            else:
                counters["orders"] += 1
        nxt = int(grid[i + 1]) if i + 1 < grid.size else end
        for f in venue.advance(nxt):
            if f.fee == 0.0 and fill_fee(f.price, f.size, f.maker, params.fee) > 0.0:
                f = Fill(f.ts_ms, f.token, f.side, f.price, f.size, fill_fee(f.price, f.size, f.maker, params.fee),
                         f.maker)
            led.apply(f)
        path["ts_ms"].append(nxt)
        path["pos_up"].append(led.pos[UP])
        path["pos_down"].append(led.pos[DOWN])
        path["fair_up"].append(float(fair[i]))
    for oid in list(venue.open_orders()):
        venue.cancel(end, oid)
    res = hour_result(led, float(price[first]), float(price[last]), grid, fair, counters)
    return res, path


def run_backtest(ticks: Any, params: BacktestParams | None = None, components: Components | None = None,
                 max_hours: int | None = None, start_ms: int | None = None, end_ms: int | None = None,
                 keep_paths: bool | int = False, warmup_ms: int = HOUR_MS, workers: int = 1,
                 hour_stride: int = 1) -> BacktestResult:
    """Backtest the strategy over every complete hour of ``ticks`` (TickData or (ts_ms, price)).

    ``hour_stride`` k > 1 keeps every k-th hour of the window (a systematic sample across
    the days and hours of the day, for long spans on a busy machine).

    Hours before ``ts[0] + warmup_ms`` are skipped (vol warm-up). ``components``
    defaults to the trader's decision core against the simulator engine
    (:func:`default_components`). Inventory paths (``res.paths``) are kept for every hour
    when ``keep_paths`` is True, for the first N hours when it is an int N (memory: a path
    is one entry per decision).
    ``workers > 1`` splits the hours into contiguous blocks run in that many
    processes (hours are independent: each is its own market, settled at its
    close); the result is identical to ``workers=1``.
    """
    import time

    from hourmm_core.research import calibration as cal

    params = params or BacktestParams()
    ts, price, source = cal.as_arrays(ticks)
    if source == "synthetic":
        log.warning("backtesting on SYNTHETIC ticks (no real Binance data found): results are not market evidence")
    comps = components or default_components()
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
        out = _run_block(comps, params, ts, price, sigma, jobs)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        blocks = [b.tolist() for b in np.array_split(np.arange(len(jobs)), workers)]
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(comps, params, ts, price, sigma)) as pool:
            futs = [pool.submit(_run_block_worker, [jobs[i] for i in b]) for b in blocks]
            out = [x for f in futs for x in f.result()]
    hours = [r for r, _ in out if r is not None]
    paths = [p for r, p in out if r is not None and p is not None]
    errors = {int(p[0]): str(p[1]) for r, p in out if r is None}
    n_ticks = int(last[-1] - first[0] + 1) if hs.size else 0
    res = BacktestResult(source, _params_dict(params), hours, n_ticks, time.perf_counter() - t0,
                         notes=[f"components: {comps.describe()}"], errors=errors)
    if n_keep:
        res.paths = paths  # type: ignore[attr-defined]
    return res


def run_backtest_span(hours: int, start_ms: int | None = None, params: BacktestParams | None = None,
                      components: Components | None = None, data_dir: str | None = None, chunk_hours: int = 48,
                      workers: int = 1, warmup_ms: int = HOUR_MS) -> BacktestResult:
    """Backtest ``hours`` consecutive hours from ``start_ms`` (ms UTC, hour-aligned), loading the
    ticks chunk by chunk so a month or a year never has to sit in memory at once.

    Each chunk of ``chunk_hours`` is loaded with ``warmup_ms`` of history before it (the vol
    estimator's warm-up) through :func:`hourmm_core.data.load_ticks` - real dumps when found,
    else the labelled synthetic stand-in. ``start_ms=None``: the first kline hour of the real
    data, or the synthetic default start.
    """
    from hourmm_core import data as hdata

    if hours <= 0 or chunk_hours <= 0:
        raise ValueError("hours and chunk_hours must be > 0")
    if start_ms is None:
        kl = hdata.load_klines(data_dir) if (data_dir or hdata.find_data_dir()) else None
        start_ms = int(kl["open_ms"][0]) if kl is not None and len(kl["open_ms"]) else hdata.DEFAULT_SYNTHETIC_START_MS
    start_ms = int(start_ms) - int(start_ms) % HOUR_MS
    params = params or BacktestParams()
    comps = components or default_components()
    parts: list[BacktestResult] = []
    for c0 in range(start_ms, start_ms + hours * HOUR_MS, chunk_hours * HOUR_MS):
        c1 = min(c0 + chunk_hours * HOUR_MS, start_ms + hours * HOUR_MS)
        ticks = hdata.load_ticks(c0 - warmup_ms, c1, data_dir=data_dir)
        parts.append(run_backtest(ticks, params, comps, start_ms=c0, end_ms=c1, warmup_ms=0, workers=workers))
        done = sum(len(p.hours) for p in parts)
        log.info("backtest span: %d/%d hours done (%.1f s in this chunk, %s data)", done, hours,
                 parts[-1].wall_s, parts[-1].source)
    sources = sorted({p.source for p in parts})
    out = BacktestResult("+".join(sources), _params_dict(params), [h for p in parts for h in p.hours],
                         sum(p.n_ticks for p in parts), sum(p.wall_s for p in parts),
                         notes=[f"components: {comps.describe()}",
                                f"span: {hours} h from {start_ms} in chunks of {chunk_hours} h"],
                         errors={k: v for p in parts for k, v in p.errors.items()})
    return out


def _run_block(comps: Components, params: BacktestParams, ts: np.ndarray, price: np.ndarray, sigma: np.ndarray,
               jobs: Sequence[tuple[int, int, int, bool]]) -> list[tuple[HourResult, Any]]:
    """Run hours in order; an hour that raises is logged with its traceback and reported
    (``(None, "error text")``), never allowed to abort the rest of a long backtest."""
    import traceback

    out: list[tuple[HourResult | None, Any]] = []
    for h, a, b, keep in jobs:
        try:
            r, path = comps.run_hour(params, ts, price, h, a, b, sigma)
        except Exception as exc:  # noqa: BLE001 - one broken hour must not lose a month
            log.error("backtest hour %d failed: %s: %s\n%s", h, type(exc).__name__, exc, traceback.format_exc())
            out.append((None, (h, f"{type(exc).__name__}: {exc}")))
            continue
        out.append((r, path if keep else None))
    return out


_WORKER: tuple = ()


def _init_worker(comps: Components, params: BacktestParams, ts: np.ndarray, price: np.ndarray,
                 sigma: np.ndarray) -> None:
    global _WORKER
    _WORKER = (comps, params, ts, price, sigma)


def _run_block_worker(jobs: Sequence[tuple[int, int, int, bool]]) -> list[tuple[HourResult, Any]]:
    comps, params, ts, price, sigma = _WORKER
    return _run_block(comps, params, ts, price, sigma, jobs)


def _params_dict(p: BacktestParams) -> dict[str, Any]:
    d = {k: getattr(p, k) for k in p.__dataclass_fields__}
    d["fee"] = asdict(p.fee)
    return d


def default_components() -> Components:
    """The real parts: the trader's DecisionCore (strategy, ladder, risk, order manager)
    against the simulator's matching engine and background agents
    (:class:`hourmm_core.research.engine_backtest.TraderEngineComponents`)."""
    from hourmm_core.research.engine_backtest import TraderEngineComponents

    return TraderEngineComponents()


# --------------------------------------------------------------------------- text + CLI
def format_backtest(res: BacktestResult, max_rows: int = 48) -> str:
    """Per-hour table (first ``max_rows`` hours) and totals, with the data source."""
    import datetime as _dt

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
    from hourmm_core.research.evidence import format_summary, summarize

    ev = format_summary(summarize(res.hours))
    if ev:
        lines.append(ev)
    return "\n".join(lines)


def result_json(res: BacktestResult) -> dict[str, Any]:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    from hourmm_core.research.evidence import summarize

    return clean({"source": res.source, "params": res.params, "n_ticks": res.n_ticks, "totals": res.totals(),
                  "evidence": summarize(res.hours),
                  "hours": [h.row() for h in res.hours],
                  "errors": {str(k): v for k, v in res.errors.items()}})


def backtest_task(ts_ms: np.ndarray, price: np.ndarray, **overrides: Any) -> dict[str, Any]:
    """Sweep task: backtest with ``BacktestParams().replace(**overrides)``; totals as metrics."""
    max_hours = overrides.pop("max_hours", None)
    params = BacktestParams().replace(**overrides)
    return run_backtest((ts_ms, price), params, max_hours=max_hours).totals()


def sweep_backtest(ticks: Any, grid: Mapping[str, Sequence[Any]], scheduler: Any = None,
                   max_workers: int | None = None, **fixed: Any) -> Any:
    """Grid over BacktestParams fields (half_spread, skew, quote_size, halflife_s, ...) -> SweepResult."""
    from hourmm_core.research import sweep
    from hourmm_core.research.calibration import as_arrays

    ts, price, _ = as_arrays(ticks)
    return sweep.run_sweep(backtest_task, grid, {"ts_ms": ts, "price": price, **fixed}, scheduler, max_workers)


def params_from_config(cfg: Mapping[str, Any]) -> BacktestParams:
    """BacktestParams from the ``backtest:`` section of configs/research.yaml."""
    d = dict(cfg)
    fee = FeeSchedule(**{**asdict(CRYPTO_FEES), **(d.pop("fee", {}) or {})})
    agents = d.pop("agents", None) or {}
    if not isinstance(agents, Mapping):
        raise ValueError("backtest.agents must be a mapping of AgentConfig fields")
    ag = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in agents.items()))
    return BacktestParams().replace(fee=fee, agents=ag, **d)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hourmm backtest",
                                 description="Backtest strategy+ladder+risk against the simulator engine, hour by hour.")
    ap.add_argument("data", nargs="?", default=None, help="data dir/file (default: find_data_dir(); synthetic when none)")
    ap.add_argument("--config", default=None, help="YAML overlaying configs/research.yaml")
    ap.add_argument("--out", default="out/backtest", help="directory for backtest.png, index.html, result.json")
    ap.add_argument("--hours", type=int, default=None, help="backtest at most this many hours")
    ap.add_argument("--start", default=None, help="first hour (UTC, e.g. 2025-06-01 or 2025-06-01T05:00)")
    ap.add_argument("--end", default=None, help="end of the window (UTC, exclusive)")
    ap.add_argument("--every", type=int, default=1, help="keep every k-th hour of the window (systematic sample)")
    ap.add_argument("--synthetic-hours", type=int, default=None, help="size of the synthetic stand-in")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a backtest parameter, e.g. --set half_spread=0.03")
    ap.add_argument("--workers", type=int, default=1, help="processes to spread the hours (or sweep points) over")
    ap.add_argument("--sweep", action="store_true",
                    help="run the grid of configs/research.yaml `sweep.grid` instead of one backtest")
    ap.add_argument("--scheduler", default=None, help="with --sweep: Dask scheduler address (tcp://host:8786)")
    ap.add_argument("--no-plots", action="store_true")
    return ap


def _utc_ms(raw: str | None) -> int | None:
    """'2025-06-01' / '2025-06-01T05:00' (UTC) or epoch ms -> ms UTC; None passes through."""
    if raw is None:
        return None
    import datetime as _dt

    if raw.strip().isdigit():
        return int(raw)
    try:
        t = _dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"bad UTC time {raw!r}: use 2025-06-01 or 2025-06-01T05:00") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1000)


def _coerce(p: BacktestParams, key: str, raw: str) -> Any:
    if key not in p.__dataclass_fields__ or key in ("fee", "agents"):
        raise ValueError(f"unknown backtest parameter {key!r}")
    cur = getattr(p, key)
    return type(cur)(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """`hourmm backtest` entry point: prints the per-hour table, writes plots + JSON; exit code."""
    ap = build_parser()
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        from hourmm_core.logsetup import setup_logging
        setup_logging("INFO")
    try:
        from hourmm_core.config import ConfigError
        from hourmm_core.research import calibration as cal
        from hourmm_core.research.settings import load_research_config

        params = params_from_config(load_research_config(args.config).get("backtest", {}))
        over = {}
        for kv in args.set:
            if "=" not in kv:
                raise ValueError(f"--set expects KEY=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            over[k.strip()] = _coerce(params, k.strip(), v.strip())
        params = params.replace(**over)
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        comps = default_components()
        ticks = cal.load_history(args.data, args.synthetic_hours)
        if args.sweep:
            return _main_sweep(args, ticks, params, load_research_config(args.config).get("sweep", {}))
        res = run_backtest(ticks, params, comps, max_hours=args.hours, keep_paths=12, workers=args.workers,
                           start_ms=_utc_ms(args.start), end_ms=_utc_ms(args.end), hour_stride=max(1, args.every))
    except (ValueError, TypeError, OSError, ImportError, ConfigError) as exc:
        print(f"backtest: error: {exc}", file=sys.stderr)
        return 2
    text = format_backtest(res)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result_json(res), indent=1))
    if not args.no_plots:
        from hourmm_core.research import plots

        print(f"report: {plots.backtest_report(res, out, text)}")
    return 1 if res.errors else 0


def _main_sweep(args: argparse.Namespace, ticks: Any, params: BacktestParams, scfg: Mapping[str, Any]) -> int:
    grid = dict(scfg.get("grid") or {})
    if not grid:
        raise ValueError("configs/research.yaml has no sweep.grid")
    base = BacktestParams()
    fixed = {k: getattr(params, k) for k in params.__dataclass_fields__
             if k not in grid and getattr(params, k) != getattr(base, k)}
    if args.hours is not None:
        fixed["max_hours"] = args.hours
    sw = sweep_backtest(ticks, grid, scheduler=args.scheduler, max_workers=args.workers, **fixed)
    src = getattr(ticks, "source", "?")
    print(f"data source: {src}" + ("  (SYNTHETIC stand-in, not market data)" if src == "synthetic" else ""))
    print(f"sweep backend: {sw.backend}  points: {len(sw.rows)}  failed: {len(sw.errors)}")
    print(sw.format())
    for i, err in sorted(sw.errors.items()):
        print(f"point {i} failed: {err}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.csv").write_text(sw.to_csv())
    print(f"table: {out / 'sweep.csv'}")
    return 0 if not sw.errors else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
