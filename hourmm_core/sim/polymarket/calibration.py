"""Venue calibration: the simulated book and flow next to the real Polymarket BTC data.

Real data (``/work/shared/data/polymarket``, see its README): L2 books of 18 consecutive
15-minute BTC markets (one snapshot a second, 10 levels) and per-market volume of two days
of 5-minute markets. No hourly-market data exists, so the hourly flow is a stated
scaling of these (docs/VENUE.md). This module measures both sides the same way:

* spread = best ask - best bid of the Up book, inside the live window;
* touch = shares at the best bid and at the best ask (each side counted apart);
* depth5 = shares over the 5 best levels of a side;
* volume = taker notional in USDC (shares x price, as Gamma's ``volumeClob``), trades = taker orders.

``python -m hourmm_core.sim.polymarket.calibration [--data DIR] [--hours N]`` prints the table.
"""
from __future__ import annotations

import argparse
import csv
import gzip
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES

BOOK_FILE = "btc15m_book_l2_up_2026-09-28.csv.gz"
GAMMA_FILES = ("btc5m_markets_gamma_2026-06-08.csv.gz", "btc5m_markets_gamma_2026-07-24.csv.gz")


def _f(x: str) -> float:
    return float(x) if x not in ("", None) else float("nan")


def real_book_stats(poly_dir: str | Path) -> dict[str, float]:
    """Median spread / touch / 5-level depth of the real 15-minute books (live window only)."""
    spread, touch, depth = [], [], []
    with gzip.open(Path(poly_dir) / BOOK_FILE, "rt") as fh:
        for r in csv.DictReader(fh):
            ts, a, b = int(r["ts_ms"]), int(r["market_start_ms"]), int(r["market_end_ms"])
            if not (a <= ts < b):
                continue
            bp, ap = _f(r["bid_px_1"]), _f(r["ask_px_1"])
            if np.isfinite(bp) and np.isfinite(ap):
                spread.append(ap - bp)
            for side in ("bid", "ask"):
                s1 = _f(r[f"{side}_sz_1"])
                if np.isfinite(s1):
                    touch.append(s1)
                d = [_f(r[f"{side}_sz_{i}"]) for i in range(1, 6)]
                if all(np.isfinite(d)):
                    depth.append(sum(d))
    return {"spread_median": float(np.median(spread)), "spread_p90": float(np.quantile(spread, 0.9)),
            "touch_median": float(np.median(touch)), "depth5_median": float(np.median(depth)),
            "rows": len(spread)}


def real_volume_stats(poly_dir: str | Path) -> dict[str, Any]:
    """Per-market volume of the 5-minute markets, per day file."""
    out = {}
    for name in GAMMA_FILES:
        with gzip.open(Path(poly_dir) / name, "rt") as fh:
            vol = np.array([_f(r["volume_usd"]) for r in csv.DictReader(fh)])
        vol = vol[np.isfinite(vol)]
        out[name] = {"markets": int(vol.size), "volume_median": float(np.median(vol)),
                     "volume_mean": float(vol.mean()), "per_minute_mean": float(vol.mean() / 5.0)}
    return out


def sim_venue_stats(ts_ms: np.ndarray, price: np.ndarray, hour_starts: Iterable[int], config: Any = None,
                    seed: int = 3, step_ms: int = 1000) -> dict[str, float]:
    """Run the background agents alone on real hours; sample the book every ``step_ms``."""
    from types import SimpleNamespace

    from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
    from hourmm_core.sim.polymarket.engine import Exchange

    path = PricePath(SimpleNamespace(ts_ms=ts_ms, price=price))   # each hour's own realized vol
    spread, touch, depth, vols, trades = [], [], [], [], []
    for k, h in enumerate(hour_starts):
        ex = Exchange(seed=seed + k, fee=CRYPTO_FEES)
        m = ex.list_market(f"c{k}", f"U{k}", f"D{k}", h, h + HOUR_MS)
        ag = BackgroundAgents(ex, path, seed=seed + k, config=config or AgentConfig())
        ag.step(h - 1, [m])
        n0 = len(ex.trades_log)
        for t in range(h, h + HOUR_MS - 60_000, step_ms):
            ag.step(t, [m])
            bk = ex.book(m.up_token, depth=5)
            if bk["bids"] and bk["asks"]:
                spread.append(bk["asks"][0][0] - bk["bids"][0][0])
            for side in ("bids", "asks"):
                if bk[side]:
                    touch.append(bk[side][0][1])
                    if len(bk[side]) >= 5:
                        depth.append(sum(s for _, s in bk[side][:5]))
        tl = ex.trades_log[n0:]
        vols.append(sum(float(t["price"]) * float(t["size"]) for t in tl))
        trades.append(len(tl))
    return {"spread_median": float(np.median(spread)), "spread_p90": float(np.quantile(spread, 0.9)),
            "touch_median": float(np.median(touch)), "depth5_median": float(np.median(depth)),
            "volume_per_hour": float(np.mean(vols)), "trades_per_hour": float(np.mean(trades)),
            "hours": len(vols)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hourmm_core.sim.polymarket.calibration")
    ap.add_argument("--data", default=None, help="data dir (default: find_data_dir())")
    ap.add_argument("--start", default="2025-05-06T00:00:00Z", help="first simulated hour (UTC)")
    ap.add_argument("--hours", type=int, default=3)
    a = ap.parse_args(argv)
    from datetime import datetime

    from hourmm_core import data as hdata

    d = Path(a.data) if a.data else hdata.find_data_dir()
    if d is None:
        raise SystemExit("no data dir (set HOURMM_DATA_DIR)")
    real = real_book_stats(d / "polymarket")
    vol = real_volume_stats(d / "polymarket")
    h0 = int(datetime.fromisoformat(a.start.replace("Z", "+00:00")).timestamp() * 1000)
    ticks = hdata.load_ticks(h0 - HOUR_MS, h0 + a.hours * HOUR_MS, data_dir=d)
    sim = sim_venue_stats(np.asarray(ticks.ts_ms), np.asarray(ticks.price),
                          [h0 + i * HOUR_MS for i in range(a.hours)])
    print(f"data: {getattr(ticks, 'source', '?')}")
    print(f"{'quantity':<28}{'real (15-min books)':>22}{'simulated hourly':>20}")
    for k in ("spread_median", "spread_p90", "touch_median", "depth5_median"):
        print(f"{k:<28}{real[k]:>22.4g}{sim[k]:>20.4g}")
    print(f"{'volume per hour (USDC)':<28}{'see below':>22}{sim['volume_per_hour']:>20.0f}")
    print(f"{'trades per hour':<28}{'see below':>22}{sim['trades_per_hour']:>20.0f}")
    for k, v in vol.items():
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
