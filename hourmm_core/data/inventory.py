"""What real data is there: spans, kinds and rows per source (``hourmm data``), and the
default window of ``hourmm sim`` inside it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.binance_dumps import (
    DataFormatError,
    ParseStats,
    find_data_dir,
    kind_from_name,
    list_dump_files,
    read_dump_cached,
)
from hourmm_core.data.klines import MINUTE_MS, KlineError, kline_history

#: ``hourmm sim``'s default first hour on real klines: 2025-05-22 14:00 UTC, the day of
#: BTC's May 2025 all-time high (111,980 on Binance). A wide hour (848 USDT high-low against
#: a median hour of ~450) whose price crosses the hour's open 15 times minute-to-minute and
#: closes 16.59 below it (Down): the market maker's hardest case, decided in the last minutes.
#: It lies in the tuning span (2025-04-15 .. 2025-05-31), never in the June report span.
DEFAULT_SIM_HOUR_MS = 1_747_922_400_000


def _iso(ms: int, seconds: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)


@dataclass
class SourceSpan:
    kind: str                  # "klines 1m", "trades", "aggTrades", "bookTicker"
    start_ms: int
    end_ms: int                # exclusive
    rows: int
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": _iso(self.start_ms, True), "end": _iso(self.end_ms, True),
                "start_ms": self.start_ms, "end_ms": self.end_ms, "rows": self.rows,
                "hours": round((self.end_ms - self.start_ms) / HOUR_MS, 2), "files": self.files}


@dataclass
class DataInventory:
    data_dir: str | None
    symbol: str
    sources: list[SourceSpan]
    errors: list[str]
    default_source: str

    def as_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "symbol": self.symbol, "default_source": self.default_source,
                "sources": [s.as_dict() for s in self.sources], "errors": self.errors}

    def format(self) -> str:
        if self.data_dir is None:
            return ("no real data found (set HOURMM_DATA_DIR or put Binance dumps in ../shared/data): "
                    "everything runs on the SYNTHETIC stand-in")
        lines = [f"data dir: {self.data_dir}  ({self.symbol})",
                 f"{'kind':<11} {'first (UTC)':<19}   {'end (UTC)':<19} {'hours':>8} {'rows':>10}  files"]
        for s in self.sources:
            lines.append(f"{s.kind:<11} {_iso(s.start_ms, True):<19} .. {_iso(s.end_ms, True):<19} "
                         f"{(s.end_ms - s.start_ms) / HOUR_MS:>8.2f} {s.rows:>10,}  "
                         + ", ".join(Path(f).name for f in s.files))
        for e in self.errors:
            lines.append(f"REFUSED: {e}")
        lines.append(f"default source: {self.default_source}")
        return "\n".join(lines)


def data_inventory(data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT") -> DataInventory:
    """Spans, kinds and rows of every real source under ``data_dir`` (default :func:`find_data_dir`).

    Contiguous 1m kline runs are listed one per segment; trade/bookTicker files one per
    file. A file the loaders refuse is listed under ``errors`` with the reason.
    """
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None or not d.exists():
        return DataInventory(None, symbol, [], [], "synthetic")
    sources: list[SourceSpan] = []
    errors: list[str] = []
    try:
        kh = kline_history(d, symbol)
    except KlineError as exc:
        kh = None
        errors.append(str(exc))
    if kh is not None and len(kh):
        t = kh.cols["open_ms"]
        for a, b in kh.segments:
            i0, i1 = int((t < a).sum()), int((t < b).sum())
            files = [f for f in kh.files if _overlaps(f, a, b, symbol)]
            sources.append(SourceSpan("klines 1m", a, b, i1 - i0, files))
    for f in list_dump_files(d, symbol):
        kind = kind_from_name(f.name)
        if kind in (None, "klines"):
            continue
        try:
            kind, cols = read_dump_cached(f, stats=ParseStats())
        except (DataFormatError, OSError) as exc:
            errors.append(f"{f}: {exc}")
            continue
        ts = cols["ts_ms"]
        if len(ts):
            sources.append(SourceSpan(kind, int(ts.min()), int(ts.max()) + 1, int(len(ts)), [str(f)]))
    sources.sort(key=lambda s: (s.start_ms, s.kind))
    has_k = any(s.kind.startswith("klines") for s in sources)
    has_t = any(s.kind in ("trades", "aggTrades") for s in sources)
    default = ("binance-klines+bridge (binance-trades inside the trade dumps' span)" if has_k and has_t
               else "binance-klines+bridge" if has_k else "binance-trades" if has_t else "synthetic")
    return DataInventory(str(d), symbol, sources, errors, default)


def _overlaps(path: str, a: int, b: int, symbol: str) -> bool:
    from hourmm_core.data.klines import read_klines
    try:
        t = read_klines(path, symbol)["open_ms"]
    except KlineError:
        return False
    return bool(len(t)) and int(t[0]) < b and int(t[-1]) >= a


def default_sim_start(data_dir: str | os.PathLike[str] | None = None, hours: int = 2,
                      symbol: str = "BTCUSDT") -> int | None:
    """First hour ``hourmm sim`` trades when no ``--start`` is given (ms), or None (no real data).

    Real klines: :data:`DEFAULT_SIM_HOUR_MS` when the klines hold it with an hour of room
    before and ``hours`` + 1 after, else the 2nd hour of the longest contiguous kline span.
    Only trade dumps: the hour after the first trade (as before klines existed).
    """
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None or not d.exists():
        return None
    kh = kline_history(d, symbol)
    if kh is not None and len(kh):
        if kh.covers(DEFAULT_SIM_HOUR_MS - HOUR_MS, DEFAULT_SIM_HOUR_MS + (hours + 1) * HOUR_MS):
            return DEFAULT_SIM_HOUR_MS
        a, _ = kh.longest_segment()  # type: ignore[misc]
        return a - a % HOUR_MS + HOUR_MS
    from hourmm_core.data.binance_dumps import data_start_hint
    hint = data_start_hint(d, symbol)
    if hint is None:
        return None
    return hint - hint % HOUR_MS + HOUR_MS


def history_span(data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT"
                 ) -> tuple[int, int] | None:
    """[start, end) ms of "the whole history" :func:`hourmm_core.data.load_ticks` gives without a
    window: the longest contiguous 1m kline span, else the trade dumps' span; None without real data."""
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None or not d.exists():
        return None
    kh = kline_history(d, symbol)
    if kh is not None and len(kh):
        return kh.longest_segment()
    from hourmm_core.data.binance_dumps import data_start_hint
    hint = data_start_hint(d, symbol)
    return None if hint is None else (hint, hint + HOUR_MS)


def main(argv: list[str] | None = None) -> int:
    """``hourmm data [DIR] [--json]``: what real data is there (0), a refused file (1), usage (2)."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="hourmm data",
                                 description="List the real Binance data found: kinds, spans, rows per source.")
    ap.add_argument("data", nargs="?", default=None,
                    help="data dir or file (default: $HOURMM_DATA_DIR, then ../shared/data)")
    ap.add_argument("--symbol", default="BTCUSDT")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.data is not None and not Path(args.data).exists():
        print(f"hourmm data: error: {args.data} does not exist", file=sys.stderr)
        return 2
    inv = data_inventory(args.data, args.symbol.upper())
    print(json.dumps(inv.as_dict(), indent=1) if args.json else inv.format())
    return 1 if inv.errors else 0


__all__ = ["main", "history_span", "DEFAULT_SIM_HOUR_MS", "DataInventory", "SourceSpan", "data_inventory", "default_sim_start", "MINUTE_MS"]
