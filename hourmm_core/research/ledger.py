"""Per-hour research accounting: cash and Up/Down tokens of one hourly market, settled at its close.

* :class:`HourLedger` - cash and tokens of one hour, the fee per fill (the fee the
  venue charged: :mod:`hourmm_core.fees`), the inventory path, settlement at the close
  (Up pays 1 USDC if close >= open, Down pays 1 otherwise). Also used by the
  simulator report (:mod:`hourmm_core.sim.report`) so "PnL of an hour" has one definition.
* :func:`markouts` - adverse selection: how the fair value of the token we traded
  moved 5 s / 30 s after each fill (negative = we were picked off).
* :func:`hour_result` - settle a ledger and summarize it as one :class:`HourResult` row.

Fills are :class:`hourmm_core.trading.types.Fill` (the trader's own fill type).
Units: ts in int ms UTC, prices in USDC per token (probability units), sizes in
tokens, money in USDC.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.trading.types import BUY, DOWN, SELL, TOKEN_NAMES, UP, Fill

__all__ = ["HourLedger", "HourResult", "hour_result", "markouts", "Fill", "UP", "DOWN", "BUY", "SELL"]


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
        self.merged = 0.0

    def apply(self, f: Fill) -> None:
        """Book one fill of ours (:class:`hourmm_core.trading.types.Fill`, ``fee`` in USDC)."""
        if self.settled is not None:
            raise RuntimeError("fill after settlement")
        if f.token not in (UP, DOWN) or f.side not in (BUY, SELL):
            raise ValueError(f"fill token/side must be 0/1, got {f.token}/{f.side}")
        if not (0.0 < f.price < 1.0) or not (f.size > 0) or f.fee < 0:
            raise ValueError(f"bad fill: price={f.price} size={f.size} fee={f.fee}")
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
        self.merged += size
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
