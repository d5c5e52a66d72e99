"""Readers for Binance public data dumps (data.binance.vision) and the tick loader.

Supported files (csv, csv.gz, or zip holding csv; with or without a header row;
timestamps in ms or us -- Binance spot dumps switched to microseconds in 2025):

- trades:     id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match]
- aggTrades:  agg_id, price, qty, first_id, last_id, time, is_buyer_maker[, is_best_match]
- bookTicker: update_id, bid, bid_qty, ask, ask_qty, transaction_time, event_time (the recorded
              sample's layout ``..., local_recv_time_ns, est_exchange_time_ms`` reads the same way:
              the time used is column 6)
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
_NS_THRESHOLD = 100_000_000_000_000_000  # > 1e17 means nanoseconds

KINDS = ("trades", "aggTrades", "bookTicker", "klines")


class DataFormatError(ValueError):
    """A dump file cannot be read at all (unknown kind, unreadable archive)."""


def find_data_dir(environ: dict[str, str] | None = None) -> Path | None:
    """Where real Binance dumps live: env HOURMM_DATA_DIR, then ../shared/data next to the repo
    (or ../../shared/data for a worktree checked out one level deeper).

    Returns None when neither exists, so callers can choose the synthetic stand-in loudly.
    """
    env = os.environ if environ is None else environ
    raw = env.get(DATA_DIR_ENV, "").strip()
    if raw:
        p = Path(raw).expanduser()
        if p.exists():
            return p
        log.warning("%s=%s does not exist; ignoring it", DATA_DIR_ENV, raw)
    # ../shared/data next to the checkout; a git worktree one level deeper (wt/<name>) looks one
    # level further up, so every checkout of the repository sees the same data
    for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent):
        p = (base / "shared" / "data").resolve()
        if p.is_dir():
            return p
    return None


def to_ms(ts: int) -> int:
    """Binance dump timestamp (ms, us or ns) -> ms."""
    if ts > _NS_THRESHOLD:
        return ts // 1_000_000
    return ts // 1000 if ts > _US_THRESHOLD else ts


def _to_ms_array(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64, copy=False)
    return np.where(a > _NS_THRESHOLD, a // 1_000_000, np.where(a > _US_THRESHOLD, a // 1000, a))


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
    """[start, end) ms covered by a daily (YYYY-MM-DD) or monthly (YYYY-MM) dump, from its name.

    A name carrying a range (``...-2024-08-08T2354_2024-08-09T0005...``) covers from the start
    of its first date to the end of its last one.
    """
    spans = []
    for m in _DATE_RE.finditer(name):
        y, mo, d = int(m.group(1)), int(m.group(2)), m.group(3)
        try:
            if d is not None:
                start = datetime(y, mo, int(d), tzinfo=timezone.utc)
                spans.append((int(start.timestamp() * 1000), int(start.timestamp() * 1000) + 24 * HOUR_MS))
                continue
            start = datetime(y, mo, 1, tzinfo=timezone.utc)
            nxt = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=timezone.utc)
            spans.append((int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)))
        except ValueError:
            continue
    if not spans:
        return None
    return spans[0][0], max(s[1] for s in spans)


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


# kind -> (column names, source column index, parser code): i = int, t = timestamp, f = float, b = bool
_LAYOUT: dict[str, tuple[tuple[str, int, str], ...]] = {
    "trades": (("id", 0, "i"), ("ts_ms", 4, "t"), ("price", 1, "f"), ("qty", 2, "f"), ("is_buyer_maker", 5, "b")),
    "aggTrades": (("id", 0, "i"), ("ts_ms", 5, "t"), ("price", 1, "f"), ("qty", 2, "f"),
                  ("is_buyer_maker", 6, "b")),
    # column 6: event_time of data.binance.vision dumps, est_exchange_time_ms of the recorded sample
    # (whose column 5 is the recorder's local receive time in ns, ~1.27 s behind the exchange)
    "bookTicker": (("ts_ms", 6, "t"), ("bid", 1, "f"), ("bid_qty", 2, "f"), ("ask", 3, "f"), ("ask_qty", 4, "f")),
    "klines": (("open_ms", 0, "t"), ("open", 1, "f"), ("high", 2, "f"), ("low", 3, "f"), ("close", 4, "f"),
               ("volume", 5, "f"), ("close_ms", 6, "t")),
}
_BOOLS = {"true": 1, "false": 0, "True": 1, "False": 0, "TRUE": 1, "FALSE": 0, "1": 1, "0": 0}
_ARRAY_CODE = {"i": "q", "t": "q", "f": "d", "b": "b"}
_NP_DTYPE = {"i": np.int64, "t": np.int64, "f": np.float64, "b": bool}


def _conv_bool(s: str) -> int:
    return _BOOLS[s.strip()]


def _conv_ts(s: str) -> int:
    return to_ms(int(s))


_CONV = {"i": int, "t": _conv_ts, "f": float, "b": _conv_bool}


def _lines(p: Path) -> Iterator[str]:
    for fh in open_text(p):
        yield from fh


def _peek(p: Path) -> tuple[bool, list[str] | None]:
    """(first line is a header, first data row) of a dump."""
    header = False
    for row in _rows(p):
        if not _looks_numeric(row[0]):
            header = True
            continue
        return header, row
    return header, None


def _fast_read(p: Path, kind: str | None, stats: ParseStats, start_ms: int | None,
               end_ms: int | None) -> tuple[str, dict[str, np.ndarray]] | None:
    """numpy.loadtxt path (~6x faster than csv rows). None -> use the row-tolerant parser
    (a malformed row anywhere, mixed headers, an unknown shape)."""
    try:
        header, first = _peek(p)
    except (DataFormatError, OSError, UnicodeDecodeError, EOFError):
        return None
    if first is None:
        return None
    kind = kind or sniff_kind(first)
    if kind not in _LAYOUT:
        return None
    layout = _LAYOUT[kind]
    num = [(name, idx, code) for name, idx, code in layout if code != "b"]
    boo = [(name, idx, code) for name, idx, code in layout if code == "b"]
    try:
        a = np.loadtxt(_lines(p), delimiter=",", usecols=[idx for _, idx, _ in num], dtype=np.float64,
                       skiprows=int(header), ndmin=2)
        b = np.loadtxt(_lines(p), delimiter=",", usecols=[idx for _, idx, _ in boo], dtype="U5",
                       skiprows=int(header), ndmin=2) if boo else None
    except (ValueError, IndexError, OSError, UnicodeDecodeError, EOFError):
        return None
    out: dict[str, np.ndarray] = {}
    for j, (name, _, code) in enumerate(num):
        col = a[:, j]
        if code in ("i", "t"):
            if np.any(np.abs(col) >= 2.0 ** 53) or np.any(col != np.floor(col)):
                return None  # not exactly representable: let the exact parser handle it
            col = col.astype(np.int64)
            if code == "t":
                col = _to_ms_array(col)
        out[name] = col
    if b is not None:
        for j, (name, _, _) in enumerate(boo):
            low = np.char.lower(np.char.strip(b[:, j]))
            ok = np.isin(low, ("true", "false", "1", "0"))
            if not ok.all():
                return None
            out[name] = (low == "true") | (low == "1")
    n = len(a)
    good = np.ones(n, bool)
    for name, _, code in num:
        if code == "f":
            good &= np.isfinite(out[name])
    if kind in ("trades", "aggTrades"):
        good &= (out["price"] > 0) & (out["qty"] >= 0)
    nbad = int(n - good.sum())
    if nbad:
        stats.bad[kind] += nbad
        log.warning("Skipped %d bad %s rows in %s (non-finite or out-of-range values)", nbad, kind, p.name)
    ts_name = next(name for name, _, code in layout if code == "t")
    ts = out[ts_name]
    if start_ms is not None:
        good &= ts >= start_ms
    if end_ms is not None:
        good &= ts < end_ms
    if not good.all():
        out = {k: v[good] for k, v in out.items()}
    stats.rows[kind] += int(good.sum())
    return kind, {name: out[name] for name, _, _ in layout}


def read_dump(path: str | os.PathLike[str], kind: str | None = None, stats: ParseStats | None = None,
              start_ms: int | None = None, end_ms: int | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """Parse one dump file -> (kind, columns). Header rows are skipped, bad rows counted.

    Columns: trades/aggTrades -> id, ts_ms, price, qty, is_buyer_maker;
    bookTicker -> ts_ms, bid, bid_qty, ask, ask_qty; klines -> open_ms, open, high, low,
    close, volume, close_ms. Rows outside [start_ms, end_ms) are dropped while reading,
    and values go straight into typed arrays (8 bytes each), so a monthly dump of tens
    of millions of trades does not become tens of millions of Python tuples.
    """
    from array import array

    p = Path(path)
    stats = stats or ParseStats()
    kind = kind or kind_from_name(p.name)
    fast = _fast_read(p, kind, stats, start_ms, end_ms)
    if fast is not None:
        return fast
    layout: tuple[tuple[str, int, str], ...] | None = None
    convs: list = []
    cols: list = []
    ts_pos = 0
    lo = -(1 << 62) if start_ms is None else start_ms
    hi = (1 << 62) if end_ms is None else end_ms
    first_bad_logged = False
    for row in _rows(p):
        if layout is None:
            if not _looks_numeric(row[0]):  # header line (futures/options dumps carry one)
                continue
            if kind is None:
                kind = sniff_kind(row)
                if kind is None:
                    raise DataFormatError(f"{p}: cannot tell the dump kind from a row of {len(row)} columns")
            if kind not in _LAYOUT:
                raise DataFormatError(f"{p}: unknown dump kind {kind!r}")
            layout = _LAYOUT[kind]
            convs = [(idx, _CONV[code]) for _, idx, code in layout]
            cols = [array(_ARRAY_CODE[code]) for _, _, code in layout]
            ts_pos = [c for _, _, c in layout].index("t")
        try:
            vals = [conv(row[idx]) for idx, conv in convs]
            if kind in ("trades", "aggTrades") and not (vals[2] > 0 and vals[3] >= 0):
                raise ValueError("non-positive price or negative qty")
        except (ValueError, IndexError, KeyError) as exc:
            if not _looks_numeric(row[0]):
                continue  # a repeated header (concatenated dumps)
            stats.bad[kind] += 1  # type: ignore[index]
            if not first_bad_logged:
                log.warning("Bad %s row in %s skipped (%s): %r", kind, p.name, exc, row[:8])
                first_bad_logged = True
            continue
        t = vals[ts_pos]
        if t < lo or t >= hi:
            continue
        stats.rows[kind] += 1  # type: ignore[index]
        for c, v in zip(cols, vals):
            c.append(v)
    if kind is None:
        kind = kind_from_name(p.name) or "trades"
    if layout is None:
        layout = _LAYOUT[kind]
        cols = [array(_ARRAY_CODE[code]) for _, _, code in layout]
    out: dict[str, np.ndarray] = {}
    for (name, _, code), c in zip(layout, cols):
        out[name] = np.frombuffer(c, dtype=np.int8).astype(bool) if code == "b" else \
            np.frombuffer(c, dtype=_NP_DTYPE[code]).copy()
    return kind, out


CACHE_DIR_ENV = "HOURMM_CACHE_DIR"
#: files smaller than this parse in well under a second: not worth a cache entry (keeps test
#: fixtures out of the cache)
CACHE_MIN_BYTES = 4 * 1024 * 1024


def cache_dir(environ: dict[str, str] | None = None) -> Path | None:
    """Where parsed dumps are cached (.npz): env HOURMM_CACHE_DIR ("off" disables), else ~/.cache/hourmm."""
    env = os.environ if environ is None else environ
    raw = env.get(CACHE_DIR_ENV, "").strip()
    if raw.lower() in ("off", "0", "none", "false"):
        return None
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "hourmm" / "dumps"


def read_dump_cached(path: str | os.PathLike[str], stats: ParseStats | None = None,
                     start_ms: int | None = None, end_ms: int | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """:func:`read_dump` of the whole file, memoised on disk keyed by (path, size, mtime).

    The simulator starts several processes that read the same dumps; parsing a day of
    BTCUSDT trades takes seconds, loading the .npz milliseconds. A cache that cannot be
    written or read is ignored (the dump is parsed), never an error.
    """
    import hashlib

    p = Path(path)
    stats = stats or ParseStats()
    cdir = cache_dir()
    key = None
    if cdir is not None:
        try:
            st = p.stat()
            if st.st_size < CACHE_MIN_BYTES:
                raise OSError("small file: not cached")
            key = hashlib.sha1(f"v1|{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        except OSError:
            key = None
    cols: dict[str, np.ndarray] | None = None
    kind = ""
    if key is not None:
        f = cdir / f"{key}.npz"  # type: ignore[operator]
        try:
            with np.load(f, allow_pickle=False) as z:
                kind = str(z["__kind__"])
                cols = {k: z[k] for k in z.files if not k.startswith("__")}
                nbad = int(z["__bad__"])
                if nbad:
                    stats.bad[kind] += nbad
        except (OSError, KeyError, ValueError):
            cols = None
    if cols is None:
        own = ParseStats()
        kind, cols = read_dump(p, stats=own)
        stats.bad.update(own.bad)
        if key is not None:
            try:
                cdir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                tmp = cdir / f"{key}.{os.getpid()}.tmp.npz"  # type: ignore[operator]
                np.savez(tmp, __kind__=np.array(kind), __bad__=np.array(sum(own.bad.values())), **cols)
                os.replace(tmp, cdir / f"{key}.npz")  # type: ignore[operator]
            except OSError as exc:
                log.debug("dump cache not written (%s)", exc)
    ts = cols["open_ms" if kind == "klines" else "ts_ms"]
    if start_ms is not None or end_ms is not None:
        sel = np.ones(len(ts), bool)
        if start_ms is not None:
            sel &= ts >= start_ms
        if end_ms is not None:
            sel &= ts < end_ms
        if not sel.all():
            cols = {k: v[sel] for k, v in cols.items()}
    stats.rows[kind] += len(next(iter(cols.values()))) if cols else 0
    return kind, cols


def data_start_hint(data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT") -> int | None:
    """Timestamp (ms) of the first trade in the earliest-dated trade dump, reading only that file.

    Lets a caller load just the first hours of a large real data set instead of all of it.
    None when there is no data, or the names carry no dates (then load everything).
    """
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None or not d.exists():
        return None
    dated = sorted((span[0], str(f)) for f in list_dump_files(d, symbol)
                   if kind_from_name(f.name) in ("trades", "aggTrades")
                   and (span := span_from_name(f.name)) is not None)
    for _, f in dated:
        try:
            kind, cols = read_dump_cached(f)
        except DataFormatError:
            continue
        if kind in ("trades", "aggTrades") and len(cols["ts_ms"]):
            return int(cols["ts_ms"].min())
    return None


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
        if kind_from_name(f.name) == "klines":
            continue  # klines are read (and validated) by hourmm_core.data.klines
        span = span_from_name(f.name)
        if span is not None and ((end_ms is not None and span[0] >= end_ms)
                                 or (start_ms is not None and span[1] <= start_ms)):
            continue
        try:
            lead = 60_000 if kind_from_name(f.name) == "bookTicker" else 0  # the quote in force at start
            kind, cols = read_dump_cached(f, stats=stats, end_ms=end_ms,
                                          start_ms=None if start_ms is None else start_ms - lead)
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
    log.info("Loaded %d %s trades from %s dumps in %s (BBO: %s)", len(ts), symbol,
             "trades" if by_kind["trades"] else "aggTrades", data_dir, bbo)
    if sum(stats.bad.values()):
        log.warning("Skipped malformed dump rows: %s", {k: v for k, v in stats.bad.items() if v})
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

