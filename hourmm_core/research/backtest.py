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
* :class:`FeeModel` - Polymarket's taker fee curve; makers pay nothing.

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

log = logging.getLogger(__name__)

UP, DOWN = 0, 1
BUY, SELL = 0, 1
TOKEN_NAMES = ("Up", "Down")


# --------------------------------------------------------------------------- fees
@dataclass(frozen=True)
class FeeModel:
    """Fee in USDC of one fill: ``size * rate * price * (price*(1-price))**exponent``.

    Defaults follow Polymarket's published crypto-market taker curve (rate 0.25,
    exponent 2: ~1.56% of notional at p=0.5, vanishing at the extremes); makers pay
    ``maker_rate`` (0: resting orders are free). Override per market if it differs.
    """

    taker_rate: float = 0.25
    taker_exponent: float = 2.0
    maker_rate: float = 0.0
    maker_exponent: float = 2.0

    def fee(self, price: float, size: float, maker: bool) -> float:
        if not (0.0 <= price <= 1.0) or size < 0:
            raise ValueError(f"fee of a fill needs 0<=price<=1 and size>=0, got {price}, {size}")
        rate, ex = (self.maker_rate, self.maker_exponent) if maker else (self.taker_rate, self.taker_exponent)
        return float(size * rate * price * (price * (1.0 - price)) ** ex)


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
    ``sample_ms``, ``nu``: the pricer's estimator; ``fee``: the venue fee curve.
    """

    half_spread: float = 0.02
    skew: float = 0.02
    quote_size: float = 5.0
    quote_levels: int = 2
    level_step: float = 0.01
    halflife_s: float = 30.0
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
    fee: FeeModel = FeeModel()

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
    time (never after), with the hour's first trade as the strike.
    """
    from hourmm_core.research import calibration as cal

    grid = hour_start + np.arange(0, HOUR_MS, step_ms, dtype=np.int64)
    idx = np.maximum(np.searchsorted(ts_ms, grid, side="right") - 1, first)
    q = cal._quant()
    S = np.ascontiguousarray(price[idx])
    K = np.full(S.shape, price[first])
    tau_s = (hour_start + HOUR_MS - grid) / 1000.0
    sg = np.ascontiguousarray(sigma[idx])
    p = np.asarray(q.fair_prob_batch(S, K, tau_s, sg, float(params.nu), float(params.p_min)), dtype=np.float64)
    return grid, p, sg
