"""Binance klines as a first-class, validated source (data.binance.vision spot layout).

Columns (no header, or one header row): ``open_time, open, high, low, close, volume,
close_time, quote_asset_volume, number_of_trades, taker_buy_base_asset_volume,
taker_buy_quote_asset_volume, ignore``; csv, csv.gz or zip; timestamps in ms or us
(2025 spot dumps use microseconds).

Unlike trade dumps (where a malformed row is counted and skipped), a kline file is
*refused* with a :class:`KlineError` naming the file and the 1-based line when it has
a malformed row, a gap, a duplicate or out-of-order open time, an OHLC inconsistency
(high < max(open, close), low > min(open, close), low <= 0, taker-buy volume above
volume), a close_time that does not end the interval, or a symbol in its name other than
the one asked for. Klines are the settlement reference of the hourly market: a silently
repaired kline would move a resolution.

Files may overlap (a daily dump next to its monthly one): identical rows are merged,
rows that disagree are an error naming both files. Files from different periods form
separate contiguous *segments*; :func:`kline_history` keeps them apart so that no bridge
or estimator ever spans a gap.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hourmm_core.data.binance_dumps import (
    DataFormatError,
    cache_dir,
    find_data_dir,
    is_dump_file,
    kind_from_name,
    open_text,
    span_from_name,
    to_ms,
)

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
KLINE_FIELDS = ("open_ms", "open", "high", "low", "close", "volume", "close_ms", "quote_volume",
                "count", "taker_buy_volume")
_INTERVAL_RE = re.compile(r"-(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d)-", re.I)
_INTERVAL_MS = {"1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
                "12h": 43_200_000, "1d": 86_400_000}
_SYMBOL_RE = re.compile(r"^([A-Za-z0-9]+)-(?:1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d)-")


class KlineError(DataFormatError):
    """A kline file (or set of files) that must not be used: the message names file and row."""


def interval_from_name(name: str) -> int | None:
    m = _INTERVAL_RE.search(name)
    return _INTERVAL_MS[m.group(1).lower()] if m else None


def symbol_from_name(name: str) -> str | None:
    m = _SYMBOL_RE.match(name)
    return m.group(1).upper() if m else None


def _parse_rows(p: Path) -> tuple[np.ndarray, int]:
    """(rows x 10 float64 matrix of KLINE_FIELDS, 1-based line number of the first data row)."""
    vals: list[list[float]] = []
    first_line = 0
    line_no = 0
    for fh in open_text(p):
        for line in fh:
            line_no += 1
            s = line.strip()
            if not s:
                continue
            parts = s.split(",")
            if not vals and not first_line:
                try:
                    float(parts[0])
                except ValueError:
                    continue  # the header row
                first_line = line_no
            if len(parts) < 11:
                raise KlineError(f"{p}: row {line_no}: {len(parts)} columns, a kline row has 12: {s[:120]!r}")
            try:
                row = [float(to_ms(int(parts[0])))] + [float(x) for x in parts[1:6]] + \
                      [float(to_ms(int(parts[6]))), float(parts[7]), float(int(parts[8])), float(parts[9])]
            except ValueError as exc:
                raise KlineError(f"{p}: row {line_no}: not a kline row ({exc}): {s[:120]!r}") from None
            if not all(np.isfinite(row)):
                raise KlineError(f"{p}: row {line_no}: non-finite value: {s[:120]!r}")
            vals.append(row)
    if not vals:
        return np.zeros((0, len(KLINE_FIELDS))), 1
    return np.asarray(vals, dtype=np.float64), first_line


def _fast_rows(p: Path) -> tuple[np.ndarray, int] | None:
    """numpy.loadtxt of the 11 numeric columns; None when anything is irregular (then the
    exact row parser runs and names the bad row)."""
    try:
        header = 0
        for fh in open_text(p):
            first = fh.readline()
            try:
                float(first.split(",")[0])
            except ValueError:
                header = 1
            break

        def lines():
            for fh in open_text(p):
                yield from fh
        a = np.loadtxt(lines(), delimiter=",", usecols=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), dtype=np.float64,
                       skiprows=header, ndmin=2)
    except (ValueError, IndexError, OSError, UnicodeDecodeError, EOFError):
        return None
    if a.shape[1] != len(KLINE_FIELDS) or not np.isfinite(a).all():
        return None
    for j in (0, 6):
        col = a[:, j]
        if np.any(col >= 2.0 ** 53) or np.any(col != np.floor(col)):
            return None
        a[:, j] = np.where(col > 1e14, np.floor(col / 1000), col)
    return a, 1 + header


#: kline files smaller than this are parsed every time (a test's few rows; keeps fixtures out of the cache)
KLINE_CACHE_MIN_BYTES = 256 * 1024
#: bump when the parsers' output changes: entries of another version are never read
_KLINE_CACHE_VERSION = "klines-v1"


def _parsed_rows(p: Path) -> tuple[np.ndarray, int]:
    """The parsed rows of a kline file (:func:`_fast_rows`, else the exact :func:`_parse_rows`),
    memoised on disk in :func:`~hourmm_core.data.binance_dumps.cache_dir` (``HOURMM_CACHE_DIR``,
    "off" disables; never next to the data) under a hash of the file's bytes: the parse of a
    month (~0.15 s) becomes a hash and a load (~10 ms), and an edited file has another key.
    The rows are validated again by the caller whichever way they came. A cache entry that cannot
    be read or written is ignored (the file is parsed), never an error; a file that does not
    parse raises as before and writes nothing."""
    cdir = cache_dir()
    entry = None
    if cdir is not None:
        try:
            raw = p.read_bytes()
            if len(raw) >= KLINE_CACHE_MIN_BYTES:
                h = hashlib.blake2b(raw, digest_size=20, person=_KLINE_CACHE_VERSION.encode()).hexdigest()
                entry = cdir / f"{_KLINE_CACHE_VERSION}-{h}.npz"
        except OSError:
            entry = None
    if entry is not None:
        try:
            with np.load(entry, allow_pickle=False) as z:
                a, line0 = z["rows"], int(z["line0"])
            if a.ndim == 2 and a.shape[1] == len(KLINE_FIELDS) and a.dtype == np.float64:
                return a, line0
        except (OSError, KeyError, ValueError, EOFError):
            pass
    got = _fast_rows(p)
    if got is None:
        got = _parse_rows(p)
    if entry is not None:
        try:
            cdir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, rows=got[0], line0=np.array(got[1]))
            os.replace(tmp, entry)
        except OSError as exc:
            log.debug("kline cache not written (%s)", exc)
    return got


@lru_cache(maxsize=64)
def _read_cached(path: str, size: int, mtime_ns: int, symbol: str | None) -> dict[str, np.ndarray]:
    p = Path(path)
    name_sym = symbol_from_name(p.name)
    if symbol and name_sym and name_sym != symbol.upper():
        raise KlineError(f"{p}: row 1: file is for {name_sym}, expected {symbol.upper()}")
    a, line0 = _parsed_rows(p)
    cols = {f: a[:, i] for i, f in enumerate(KLINE_FIELDS)}
    cols["open_ms"] = cols["open_ms"].astype(np.int64)
    cols["close_ms"] = cols["close_ms"].astype(np.int64)
    cols["count"] = cols["count"].astype(np.int64)
    validate_klines(cols, str(p), line0, interval_from_name(p.name))
    for v in cols.values():
        v.setflags(write=False)
    return cols


def read_klines(path: str | os.PathLike[str], symbol: str | None = "BTCUSDT") -> dict[str, np.ndarray]:
    """One kline file -> columns :data:`KLINE_FIELDS` (ms timestamps), validated (see module doc).

    Parsed files are memoised in-process by (path, size, mtime): the simulator's processes
    and the research loops ask for overlapping windows many times.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise KlineError(f"{p}: cannot read ({exc})") from None
    return _read_cached(str(p.resolve()), st.st_size, st.st_mtime_ns, symbol.upper() if symbol else None)


def validate_klines(k: dict[str, np.ndarray], name: str = "klines", line0: int = 1,
                    interval_ms: int | None = None) -> int:
    """Raise :class:`KlineError` on the first bad row (1-based file line = ``line0`` + index);
    returns the interval (ms)."""
    o, h, lo, c = k["open"], k["high"], k["low"], k["close"]
    t, ct = k["open_ms"], k["close_ms"]
    n = len(t)
    if n == 0:
        return interval_ms or MINUTE_MS

    def bad(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise KlineError(f"{name}: row {line0 + i}: {what} (open_time {int(t[i])}, open {o[i]}, high {h[i]}, "
                             f"low {lo[i]}, close {c[i]})")

    if interval_ms is None:
        interval_ms = int(ct[0] - t[0] + 1)
        if interval_ms not in _INTERVAL_MS.values():
            raise KlineError(f"{name}: row {line0}: close_time - open_time + 1 = {interval_ms} ms is no kline "
                             f"interval")
    bad(lo <= 0, "low <= 0")
    bad(h < np.maximum(o, c), "high below open/close")
    bad(lo > np.minimum(o, c), "low above open/close")
    bad(k["volume"] < 0, "negative volume")
    bad(k["count"] < 0, "negative number of trades")
    bad((k["taker_buy_volume"] < 0) | (k["taker_buy_volume"] > k["volume"] * (1 + 1e-9) + 1e-12),
        "taker-buy volume outside [0, volume]")
    bad(ct != t + interval_ms - 1, f"close_time is not open_time + {interval_ms - 1}")
    bad(t % interval_ms != 0, f"open_time not on a {interval_ms} ms boundary")
    if n > 1:
        d = np.diff(t)
        i_dup = np.flatnonzero(d == 0)
        i_back = np.flatnonzero(d < 0)
        i_gap = np.flatnonzero(d > interval_ms)
        for idx, what in ((i_dup, "duplicate open_time"), (i_back, "open_time goes backwards"),
                          (i_gap, "gap: open_time jumps")):
            if len(idx):
                i = int(idx[0]) + 1
                raise KlineError(f"{name}: row {line0 + i}: {what} from {int(t[i - 1])} to {int(t[i])} "
                                 f"(interval {interval_ms} ms)")
        bad(np.concatenate(([False], (d % interval_ms) != 0)), "open_time off the interval grid")
    return interval_ms


def kline_files(data_dir: str | os.PathLike[str], symbol: str = "BTCUSDT", interval_ms: int = MINUTE_MS) -> list[Path]:
    """Kline files of ``symbol`` at ``interval_ms`` under ``data_dir`` (or the file itself).

    A directory may hold other symbols' files (ignored); a single file named for another
    symbol is refused when read.
    """
    p = Path(data_dir)
    if p.is_file():
        return [p] if kind_from_name(p.name) == "klines" else []
    out = []
    for f in sorted(p.rglob("*")):
        if not is_dump_file(f) or kind_from_name(f.name) != "klines":
            continue
        if interval_from_name(f.name) not in (None, interval_ms):
            continue
        sym = symbol_from_name(f.name)
        if sym is not None and sym != symbol.upper():
            continue
        out.append(f)
    return out


@dataclass(frozen=True)
class KlineHistory:
    """Merged, validated 1m klines (columns :data:`KLINE_FIELDS`) and their contiguous segments."""

    cols: dict[str, np.ndarray]
    segments: tuple[tuple[int, int], ...]   # [start_ms, end_ms) of each contiguous run
    files: tuple[str, ...]
    interval_ms: int = MINUTE_MS

    def __len__(self) -> int:
        return int(len(self.cols["open_ms"]))

    def window(self, start_ms: int | None, end_ms: int | None) -> dict[str, np.ndarray]:
        t = self.cols["open_ms"]
        i = 0 if start_ms is None else int(np.searchsorted(t, start_ms, side="left"))
        j = len(t) if end_ms is None else int(np.searchsorted(t, end_ms, side="left"))
        return {k: v[i:j] for k, v in self.cols.items()}

    def longest_segment(self) -> tuple[int, int] | None:
        return max(self.segments, key=lambda s: (s[1] - s[0], s[0])) if self.segments else None

    def covers(self, start_ms: int, end_ms: int) -> bool:
        return any(a <= start_ms and end_ms <= b for a, b in self.segments)


def kline_history(data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT",
                  start_ms: int | None = None, end_ms: int | None = None,
                  interval_ms: int = MINUTE_MS) -> KlineHistory | None:
    """All ``symbol`` klines at ``interval_ms`` under ``data_dir`` (None: no kline files).

    With a window, files whose name dates lie wholly outside it are not opened.
    """
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is None or not d.exists():
        return None
    files = kline_files(d, symbol, interval_ms)
    if not files:
        return None
    parts, used = [], []
    for f in files:
        span = span_from_name(f.name)
        if span is not None and ((end_ms is not None and span[0] >= end_ms)
                                 or (start_ms is not None and span[1] <= start_ms)):
            continue
        k = read_klines(f, symbol)
        if len(k["open_ms"]):
            parts.append((k, f))
            used.append(str(f))
    if not parts:
        return KlineHistory({f: np.zeros(0, np.int64 if f in ("open_ms", "close_ms", "count") else np.float64)
                             for f in KLINE_FIELDS}, (), tuple(), interval_ms)
    src = np.concatenate([np.full(len(k["open_ms"]), i) for i, (k, _) in enumerate(parts)])
    cols = {f: np.concatenate([k[f] for k, _ in parts]) for f in KLINE_FIELDS}
    o = np.lexsort((src, cols["open_ms"]))
    cols = {f: v[o] for f, v in cols.items()}
    src = src[o]
    t = cols["open_ms"]
    if len(t) > 1:
        dup = np.flatnonzero(t[1:] == t[:-1])
        if len(dup):
            same = np.ones(len(dup), bool)
            for f in KLINE_FIELDS:
                same &= cols[f][dup] == cols[f][dup + 1]
            if not same.all():
                i = int(dup[~same][0])
                raise KlineError(f"{parts[src[i]][1]} and {parts[src[i + 1]][1]}: different klines for open_time "
                                 f"{int(t[i])} (duplicate with conflicting values)")
            keep = np.ones(len(t), bool)
            keep[dup + 1] = False
            cols = {f: v[keep] for f, v in cols.items()}
            t = cols["open_ms"]
    brk = np.flatnonzero(np.diff(t) != interval_ms) + 1
    starts = np.concatenate(([0], brk))
    ends = np.concatenate((brk, [len(t)]))
    segs = tuple((int(t[a]), int(t[b - 1]) + interval_ms) for a, b in zip(starts, ends))
    for v in cols.values():
        v.setflags(write=False)
    return KlineHistory(cols, segs, tuple(used), interval_ms)
