"""The bridge against reality: real ticks vs ticks bridged from the same minutes' klines.

:func:`compare_bridge` takes the real tick sample (trades + bookTicker, the only real ticks
the project has), builds its 1m klines exactly the way Binance does (:func:`klines_from_ticks`),
bridges them with :func:`hourmm_core.data.bridge.bridge_klines` for several seeds and
compares: realized variance of log prices on a 1 s / 10 s / 60 s grid, trade inter-arrival
and size distributions, the spread at each trade, and the open of the hour boundary.

``python -m hourmm_core.data.bridge_check [DATA_DIR]`` prints the Markdown table that
docs/DATA.md shows; tests/unit/data/test_data.py holds the bridge to the bounds (1 s and 10 s variance
within 25 % of the real ones, seed-averaged).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.bridge import BridgeParams, bridge_klines
from hourmm_core.data.ticks import TickData

#: the ten full minutes of the real sample (2024-08-08 23:55 .. 2024-08-09 00:05 UTC)
SAMPLE_START_MS = 1_723_161_300_000
SAMPLE_END_MS = 1_723_161_900_000
#: bounds the test enforces (seed-averaged bridged / real)
RV_BOUNDS = {1_000: 0.25, 10_000: 0.25}


def klines_from_ticks(t: TickData, interval_ms: int = 60_000) -> dict[str, np.ndarray]:
    """1m klines (columns of :data:`hourmm_core.data.klines.KLINE_FIELDS`) from trades, as Binance builds them."""
    ts, px, q = t.ts_ms, t.price, t.qty
    b = ts - ts % interval_ms
    starts = np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))
    ends = np.concatenate((starts[1:], [len(ts)]))
    buy_q = np.where(t.is_buyer_maker, 0.0, q)
    return {
        "open_ms": b[starts].astype(np.int64), "open": px[starts], "high": np.maximum.reduceat(px, starts),
        "low": np.minimum.reduceat(px, starts), "close": px[ends - 1], "volume": np.add.reduceat(q, starts),
        "close_ms": (b[starts] + interval_ms - 1).astype(np.int64), "quote_volume": np.add.reduceat(px * q, starts),
        "count": (ends - starts).astype(np.int64), "taker_buy_volume": np.add.reduceat(buy_q, starts),
    }


def realized_variance(t: TickData, step_ms: int, start_ms: int, end_ms: int) -> float:
    """Sum of squared log returns of the last trade price on a ``step_ms`` grid over [start, end]."""
    grid = np.arange(start_ms, end_ms + 1, step_ms)
    idx = np.searchsorted(t.ts_ms, grid, side="left") - 1      # last trade strictly before each grid time
    ok = idx >= 0
    p = t.price[idx[ok]]
    r = np.diff(np.log(p))
    return float(np.sum(r * r))


@dataclass
class Stats:
    rv: dict[int, float]
    dt_zero: float
    dt_q: tuple[float, ...]          # p50, p90, p99 of trade inter-arrival (ms)
    dt_mean: float
    size_q: tuple[float, ...]        # p10, p50, p90, p99 of trade size (BTC)
    size_mean: float
    wide: float                      # share of trades with spread > 1 tick
    spread_q: tuple[float, ...]      # p90, p99 of spread at trades
    spread_mean: float
    n: int
    boundary_open: float | None


def tick_stats(t: TickData, start_ms: int, end_ms: int) -> Stats:
    s = t.slice_time(start_ms, end_ms)
    dt = np.diff(s.ts_ms).astype(float)
    sp = s.ask - s.bid
    h = start_ms - start_ms % HOUR_MS + HOUR_MS
    b = s.slice_time(h, h + 60_000)
    return Stats(
        rv={k: realized_variance(s, k, start_ms, end_ms) for k in (1_000, 10_000, 60_000)},
        dt_zero=float(np.mean(dt == 0)), dt_q=tuple(np.percentile(dt, [50, 90, 99])), dt_mean=float(dt.mean()),
        size_q=tuple(np.percentile(s.qty, [10, 50, 90, 99])), size_mean=float(s.qty.mean()),
        wide=float(np.mean(sp > 0.011)), spread_q=tuple(np.percentile(sp, [90, 99])), spread_mean=float(sp.mean()),
        n=len(s), boundary_open=float(b.price[0]) if len(b) and h < end_ms else None,
    )


@dataclass
class Comparison:
    real: Stats
    bridged: list[Stats]                      # one per seed
    capped: list[Stats]                       # with the default per-minute cap
    klines_match: bool                        # the rebuilt klines equal Binance's (context file)
    seeds: list[int] = field(default_factory=list)
    cap: int = 0

    def rv_ratio(self, step_ms: int, capped: bool = False) -> float:
        runs = self.capped if capped else self.bridged
        return float(np.mean([b.rv[step_ms] for b in runs]) / self.real.rv[step_ms])

    def rv_ratio_range(self, step_ms: int, capped: bool = False) -> tuple[float, float]:
        runs = self.capped if capped else self.bridged
        r = [b.rv[step_ms] / self.real.rv[step_ms] for b in runs]
        return float(min(r)), float(max(r))

    def markdown(self) -> str:
        R = self.real
        mean = lambda f, runs=None: float(np.mean([f(b) for b in (runs or self.bridged)]))  # noqa: E731
        rows = [("| measure | real ticks | bridged (uncapped) | bridged (cap %d/min) |" % self.cap),
                "|---|---:|---:|---:|"]

        def row(name: str, f, fmt: str = "{:.4g}") -> None:
            rows.append(f"| {name} | {fmt.format(f(R))} | {fmt.format(mean(f))} | {fmt.format(mean(f, self.capped))} |")

        for k in (1_000, 10_000, 60_000):
            lo, hi = self.rv_ratio_range(k)
            clo, chi = self.rv_ratio_range(k, True)
            rows.append(f"| realized variance {k // 1000} s (x1e-6) | {R.rv[k] * 1e6:.3f} | "
                        f"{mean(lambda b: b.rv[k]) * 1e6:.3f} (ratio {self.rv_ratio(k):.2f}, seeds {lo:.2f}..{hi:.2f}) | "
                        f"{mean(lambda b: b.rv[k], self.capped) * 1e6:.3f} (ratio {self.rv_ratio(k, True):.2f}, "
                        f"seeds {clo:.2f}..{chi:.2f}) |")
        row("trades", lambda s: s.n, "{:,.0f}")
        row("inter-arrival: share 0 ms (same-ms bursts)", lambda s: s.dt_zero, "{:.3f}")
        row("inter-arrival p50 / ms", lambda s: s.dt_q[0], "{:.0f}")
        row("inter-arrival p90 / ms", lambda s: s.dt_q[1], "{:.0f}")
        row("inter-arrival p99 / ms", lambda s: s.dt_q[2], "{:.0f}")
        row("inter-arrival mean / ms", lambda s: s.dt_mean, "{:.1f}")
        row("size p10 / BTC", lambda s: s.size_q[0], "{:.5f}")
        row("size p50 / BTC", lambda s: s.size_q[1], "{:.5f}")
        row("size p90 / BTC", lambda s: s.size_q[2], "{:.4f}")
        row("size p99 / BTC", lambda s: s.size_q[3], "{:.3f}")
        row("size mean / BTC", lambda s: s.size_mean, "{:.4f}")
        row("spread > 1 tick at a trade (share)", lambda s: s.wide, "{:.3f}")
        row("spread p90 / USDT", lambda s: s.spread_q[0], "{:.2f}")
        row("spread p99 / USDT", lambda s: s.spread_q[1], "{:.2f}")
        row("spread mean / USDT", lambda s: s.spread_mean, "{:.3f}")
        row("hour-boundary open (00:00 UTC)", lambda s: s.boundary_open, "{:.2f}")
        return "\n".join(rows)


def compare_bridge(data_dir: str | os.PathLike[str] | None = None, seeds: range | list[int] = range(1, 17),
                   params: BridgeParams | None = None, start_ms: int = SAMPLE_START_MS,
                   end_ms: int = SAMPLE_END_MS) -> Comparison:
    """Real sample vs bridged (all trades per minute, and with the default cap), per seed."""
    from hourmm_core.data import load_ticks
    from hourmm_core.data.klines import kline_history

    real = load_ticks(start_ms, end_ms, data_dir=data_dir, allow_synthetic=False)
    if real.source != "binance-trades":
        raise ValueError(f"no real trades cover {start_ms} .. {end_ms} (got {real.source})")
    k = klines_from_ticks(real)
    kh = kline_history(data_dir, real.symbol, start_ms, end_ms)
    match = False
    if kh is not None and len(kh):
        ref = kh.window(start_ms, end_ms)
        match = len(ref["open_ms"]) == len(k["open_ms"]) and all(
            np.allclose(ref[f], k[f], rtol=1e-9, atol=1e-9) for f in ("open_ms", "open", "high", "low", "close",
                                                                        "volume", "count", "taker_buy_volume"))
    p = params or BridgeParams()
    full = replace(p, max_ticks_per_minute=int(max(k["count"].max(), p.min_ticks)))
    bridged = [tick_stats(bridge_klines(k, seed=s, params=full), start_ms, end_ms) for s in seeds]
    capped = [tick_stats(bridge_klines(k, seed=s, params=p), start_ms, end_ms) for s in seeds]
    return Comparison(tick_stats(real, start_ms, end_ms), bridged, capped, match, list(seeds),
                      p.max_ticks_per_minute)


def main(argv: list[str] | None = None) -> int:
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    d = Path(args[0]) if args else None
    c = compare_bridge(d)
    print(f"real sample 2024-08-08 23:55 .. 2024-08-09 00:05 UTC (10 full minutes, {c.real.n:,} trades); "
          f"{len(c.seeds)} bridge seeds; rebuilt klines equal Binance's: {c.klines_match}")
    print()
    print(c.markdown())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
