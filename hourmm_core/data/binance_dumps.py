"""Readers for Binance public data dumps (data.binance.vision) and the tick loader.

Supported files (csv, csv.gz, or zip holding csv; with or without a header row;
timestamps in ms or us -- Binance spot dumps switched to microseconds in 2025):

- trades:     id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]
- aggTrades:  agg_id, price, qty, first_id, last_id, time, is_buyer_maker[, is_best_match]
- bookTicker: update_id, bid, bid_qty, ask, ask_qty, transaction_time, event_time
- klines:     open_time, open, high, low, close, volume, close_time, quote_volume,
              count, taker_buy_volume, taker_buy_quote_volume, ignore

The kind is taken from the file name (``BTCUSDT-trades-2026-01-22.zip``) and,
when the name does not say, from the shape of the first data row. Malformed
rows are counted and skipped (never a crash); the counts are logged.

BBO: when bookTicker files are present each trade carries the latest quote at
or before it. Otherwise it is *derived* (``derive_bbo``): the trade printed at
the touched side, so a buyer-maker trade (aggressive seller) sets bid = price,
ask = price + tick; an aggressive buyer sets ask = price, bid = price - tick,
with tick = 0.01 USDT (BTCUSDT's typical one-tick spread). Derived quantities
are NaN (unknown).
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.ticks import SOURCE_BINANCE, TickData

log = logging.getLogger(__name__)

DATA_DIR_ENV = "HOURMM_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TICK = 0.01
_US_THRESHOLD = 100_000_000_000_000  # > 1e14 means microseconds (ms now is ~1.8e12)

KINDS = ("trades", "aggTrades", "bookTicker", "klines")


class DataFormatError(ValueError):
    """A dump file cannot be read at all (unknown kind, unreadable archive)."""


def find_data_dir(environ: dict[str, str] | None = None) -> Path | None:
    """Where real Binance dumps live: env HOURMM_DATA_DIR, then ../shared/data next to the repo.

    Returns None when neither exists, so callers can choose the synthetic stand-in loudly.
    """
    env = os.environ if environ is None else environ
    raw = env.get(DATA_DIR_ENV, "").strip()
    if raw:
        p = Path(raw).expanduser()
        if p.exists():
            return p
        log.warning("%s=%s does not exist; ignoring it", DATA_DIR_ENV, raw)
    p = (REPO_ROOT.parent / "shared" / "data").resolve()
    return p if p.is_dir() else None


def to_ms(ts: int) -> int:
    """Binance dump timestamp (ms or us) -> ms."""
    return ts // 1000 if ts > _US_THRESHOLD else ts


def _to_ms_array(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64, copy=False)
    return np.where(a > _US_THRESHOLD, a // 1000, a)


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("true", "1", "t"):
        return True
    if v in ("false", "0", "f"):
        return False
    raise ValueError(f"not a bool: {s!r}")


# ---------------------------------------------------------------- files

_DATE_RE = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")
_SUFFIXES = (".csv", ".csv.gz", ".gz", ".zip")


def is_dump_file(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and any(name.endswith(s) for s in _SUFFIXES) and not name.endswith(".checksum")


def kind_from_name(name: str) -> str | None:
    """'trades' / 'aggTrades' / 'bookTicker' / 'klines' from a data.binance.vision file name."""
    n = name.lower()
    if "aggtrades" in n:
        return "aggTrades"
    if "bookticker" in n:
        return "bookTicker"
    if "trades" in n:
        return "trades"
    if "kline" in n or re.search(r"-(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d)-", n):
        return "klines"
    return None


def span_from_name(name: str) -> tuple[int, int] | None:
    """[start, end) ms covered by a daily (YYYY-MM-DD) or monthly (YYYY-MM) dump, from its name."""
    m = _DATE_RE.search(name)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        if d is not None:
            start = datetime(y, mo, int(d), tzinfo=timezone.utc)
            return int(start.timestamp() * 1000), int(start.timestamp() * 1000) + 24 * HOUR_MS
        start = datetime(y, mo, 1, tzinfo=timezone.utc)
        nxt = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=timezone.utc)
        return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)
    except ValueError:
        return None


def open_text(path: Path) -> Iterator[io.TextIOBase]:
    """Yield text streams of the CSV(s) in a .csv / .gz / .zip file."""
    name = path.name.lower()
    if name.endswith(".zip"):
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DataFormatError(f"{path}: not a zip archive ({exc})") from None
        with zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".csv"):
                    continue
                with zf.open(info) as raw:
                    yield io.TextIOWrapper(raw, encoding="utf-8", newline="")
    elif name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            yield fh
    else:
        with open(path, encoding="utf-8", newline="") as fh:
            yield fh


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return s.strip().lower() in ("true", "false")


def sniff_kind(row: list[str]) -> str | None:
    """Guess the dump kind from one data row's shape (used when the file name does not say)."""
    n = len(row)
    try:
        if n == 12:
            return "klines"
        if n == 6:
            _parse_bool(row[5])
            return "trades"
        if n == 7:
            try:
                _parse_bool(row[5])  # trades with is_best_match: col 5 is is_buyer_maker
                return "trades"
            except ValueError:
                pass
            try:
                _parse_bool(row[6])
                return "aggTrades"
            except ValueError:
                return "bookTicker"
        if n == 8:
            return "aggTrades"
    except ValueError:
        return None
    return None


@dataclass
class ParseStats:
    """Per-kind row counters; bad rows are skipped and counted, never fatal."""

    rows: Counter
    bad: Counter

    def __init__(self) -> None:
        self.rows = Counter()
        self.bad = Counter()


def _rows(path: Path) -> Iterator[list[str]]:
    for fh in open_text(path):
        reader = csv.reader(fh)
        for row in reader:
            if row:
                yield row


def read_dump(path: str | os.PathLike[str], kind: str | None = None,
              stats: ParseStats | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Parse one dump file -> (kind, columns). Header rows are skipped, bad rows counted.

    Columns: trades/aggTrades -> id, ts_ms, price, qty, is_buyer_maker;
    bookTicker -> ts_ms, bid, bid_qty, ask, ask_qty; klines -> open_ms, open, high, low,
    close, volume, close_ms.
    """
    p = Path(path)
    stats = stats or ParseStats()
    kind = kind or kind_from_name(p.name)
    it = _rows(p)
    ids: list[int] = []
    cols: dict[str, list] = {}
    first_bad_logged = False
    for row in it:
        if not _looks_numeric(row[0]):  # header line (futures/options dumps carry one)
            continue
        if kind is None:
            kind = sniff_kind(row)
            if kind is None:
                raise DataFormatError(f"{p}: cannot tell the dump kind from a row of {len(row)} columns")
        try:
            if kind == "trades":
                rec = (int(row[0]), to_ms(int(row[4])), float(row[1]), float(row[2]), _parse_bool(row[5]))
            elif kind == "aggTrades":
                rec = (int(row[0]), to_ms(int(row[5])), float(row[1]), float(row[2]), _parse_bool(row[6]))
            elif kind == "bookTicker":
                rec = (to_ms(int(row[5])), float(row[1]), float(row[2]), float(row[3]), float(row[4]))
            elif kind == "klines":
                rec = (to_ms(int(row[0])), float(row[1]), float(row[2]), float(row[3]),
                       float(row[4]), float(row[5]), to_ms(int(row[6])))
            else:
                raise DataFormatError(f"{p}: unknown dump kind {kind!r}")
            if kind in ("trades", "aggTrades") and not (rec[2] > 0 and rec[3] >= 0):
                raise ValueError("non-positive price or negative qty")
        except (ValueError, IndexError) as exc:
            stats.bad[kind] += 1
            if not first_bad_logged:
                log.warning("Bad %s row in %s skipped (%s): %r", kind, p.name, exc, row[:8])
                first_bad_logged = True
            continue
        stats.rows[kind] += 1
        ids.append(rec)  # type: ignore[arg-type]
    if kind is None:
        kind = kind_from_name(p.name) or "trades"
    names = {
        "trades": ("id", "ts_ms", "price", "qty", "is_buyer_maker"),
        "aggTrades": ("id", "ts_ms", "price", "qty", "is_buyer_maker"),
        "bookTicker": ("ts_ms", "bid", "bid_qty", "ask", "ask_qty"),
        "klines": ("open_ms", "open", "high", "low", "close", "volume", "close_ms"),
    }[kind]
    dtypes = {"id": np.int64, "ts_ms": np.int64, "open_ms": np.int64, "close_ms": np.int64,
              "is_buyer_maker": bool}
    out: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        out[name] = np.array([r[k] for r in ids], dtype=dtypes.get(name, np.float64))
    return kind, out


def list_dump_files(data_dir: str | os.PathLike[str], symbol: str = "BTCUSDT") -> list[Path]:
    """Dump files under ``data_dir`` (or the file itself); only ``symbol``'s when names say."""
    p = Path(data_dir)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if is_dump_file(f))
    sym = symbol.upper()
    named = [f for f in files if sym in f.name.upper()]
    return named if named else files


def derive_bbo(price: np.ndarray, is_buyer_maker: np.ndarray, tick: float = DEFAULT_TICK
               ) -> tuple[np.ndarray, np.ndarray]:
    """BBO from trades alone: the trade printed at the side its aggressor hit.

    buyer-maker (aggressive seller) -> bid = price, ask = price + tick;
    otherwise (aggressive buyer)    -> ask = price, bid = price - tick.
    """
    bid = np.where(is_buyer_maker, price, price - tick)
    ask = np.where(is_buyer_maker, price + tick, price)
    return np.round(bid, 8), np.round(ask, 8)


def _empty_ticks(symbol: str) -> TickData:
    z = np.zeros(0)
    return TickData(np.zeros(0, np.int64), z, z, np.zeros(0, bool), z, z, z, z,
                    source=SOURCE_BINANCE, symbol=symbol, bbo="derived", trade_id=np.zeros(0, np.int64))


def read_binance_ticks(data_dir: str | os.PathLike[str], start_ms: int | None = None,
                       end_ms: int | None = None, symbol: str = "BTCUSDT",
                       stats: ParseStats | None = None) -> TickData | None:
    """Real trades (trades preferred over aggTrades) in [start_ms, end_ms) with their BBO.

    None when the directory holds no trade files. Files whose name dates fall
    outside the window are not opened at all.
    """
    stats = stats or ParseStats()
    by_kind: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in KINDS}
    for f in list_dump_files(data_dir, symbol):
        span = span_from_name(f.name)
        if span is not None and ((end_ms is not None and span[0] >= end_ms)
                                 or (start_ms is not None and span[1] <= start_ms)):
            continue
        try:
            kind, cols = read_dump(f, stats=stats)
        except DataFormatError as exc:
            log.warning("Skipping unreadable dump %s: %s", f, exc)
            stats.bad["file"] += 1
            continue
        by_kind[kind].append(cols)
    trade_parts = by_kind["trades"] or by_kind["aggTrades"]
    if not trade_parts:
        return None
    ts = np.concatenate([c["ts_ms"] for c in trade_parts])
    tid = np.concatenate([c["id"] for c in trade_parts])
    order = np.lexsort((tid, ts))
    ts, tid = ts[order], tid[order]
    price = np.concatenate([c["price"] for c in trade_parts])[order]
    qty = np.concatenate([c["qty"] for c in trade_parts])[order]
    ibm = np.concatenate([c["is_buyer_maker"] for c in trade_parts])[order]
    # the same trade in overlapping files (daily + monthly) appears once
    keep = np.ones(len(ts), bool)
    if len(ts) > 1:
        keep[1:] = ~((tid[1:] == tid[:-1]) & (ts[1:] == ts[:-1]))
    sel = keep.copy()
    if start_ms is not None:
        sel &= ts >= start_ms
    if end_ms is not None:
        sel &= ts < end_ms
    ts, tid, price, qty, ibm = ts[sel], tid[sel], price[sel], qty[sel], ibm[sel]
    if len(ts) == 0:
        return _empty_ticks(symbol)
    bid, ask = derive_bbo(price, ibm)
    bid_qty = np.full(len(ts), np.nan)
    ask_qty = np.full(len(ts), np.nan)
    bbo = "derived"
    if by_kind["bookTicker"]:
        bt_ts = np.concatenate([c["ts_ms"] for c in by_kind["bookTicker"]])
        o = np.argsort(bt_ts, kind="stable")
        bt = {k: np.concatenate([c[k] for c in by_kind["bookTicker"]])[o]
              for k in ("bid", "bid_qty", "ask", "ask_qty")}
        idx = np.searchsorted(bt_ts[o], ts, side="right") - 1
        has = idx >= 0
        j = idx[has]
        bid[has], ask[has] = bt["bid"][j], bt["ask"][j]
        bid_qty[has], ask_qty[has] = bt["bid_qty"][j], bt["ask_qty"][j]
        bbo = "bookTicker" if has.all() else "bookTicker+derived"
    log.info("Loaded %d %s trades for %s from %s (BBO: %s)", len(ts),
             "trades" if by_kind["trades"] else "aggTrades", symbol, data_dir, bbo)
    if stats.bad:
        log.warning("Skipped malformed dump rows: %s", dict(stats.bad))
    return TickData(ts_ms=ts, price=price, qty=qty, is_buyer_maker=ibm, bid=bid, ask=ask,
                    bid_qty=bid_qty, ask_qty=ask_qty, source=SOURCE_BINANCE, symbol=symbol,
                    bbo=bbo, trade_id=tid)


def load_klines(data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT",
                stats: ParseStats | None = None) -> dict[str, np.ndarray] | None:
    """All kline rows found under ``data_dir`` (any interval), sorted by open; None if none."""
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None:
        return None
    parts = []
    for f in list_dump_files(d, symbol):
        if kind_from_name(f.name) not in (None, "klines"):
            continue
        try:
            kind, cols = read_dump(f, stats=stats)
        except DataFormatError:
            continue
        if kind == "klines":
            parts.append(cols)
    if not parts:
        return None
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    o = np.argsort(out["open_ms"], kind="stable")
    return {k: v[o] for k, v in out.items()}

