"""Historical BTCUSDT data: Binance public dumps, or a loudly-labelled synthetic stand-in.

``load_ticks`` is the one entry point: it reads real dumps from
:func:`find_data_dir` (env ``HOURMM_DATA_DIR``, then ``../shared/data``) and,
only when none are there, falls back to :func:`synthetic_ticks` with a WARNING
every time -- synthetic prices are never to be presented as market data.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from hourmm_core.data.binance_dumps import (
    CACHE_DIR_ENV, DATA_DIR_ENV, DEFAULT_TICK, cache_dir, data_start_hint, read_dump_cached, DataFormatError, ParseStats, derive_bbo, find_data_dir,
    kind_from_name, list_dump_files, load_klines, read_binance_ticks, read_dump, sniff_kind,
    span_from_name,
)
from hourmm_core.data.candles import candles, hourly_candles
from hourmm_core.data.synthetic import (
    DEFAULT_SYNTHETIC_HOURS, DEFAULT_SYNTHETIC_START_MS, synthetic_span, synthetic_ticks,
)
from hourmm_core.data.ticks import SOURCE_BINANCE, SOURCE_SYNTHETIC, TickData

log = logging.getLogger(__name__)

SYNTHETIC_WARNING = ("SYNTHETIC DATA: no real Binance dumps found (set HOURMM_DATA_DIR or put them in "
                     "../shared/data); using the seeded synthetic stand-in -- NOT market data")


def load_ticks(start_ms: int | str | os.PathLike[str] | None = None, end_ms: int | None = None,
               data_dir: str | os.PathLike[str] | None = None, symbol: str = "BTCUSDT",
               synthetic_hours: int | float | None = None, seed: int = 7,
               allow_synthetic: bool | None = None) -> TickData:
    """Trades in [start_ms, end_ms) from real dumps, else the synthetic stand-in (loud WARNING).

    ``data_dir`` may be a directory or a single dump file; default :func:`find_data_dir`.
    For convenience a path passed as the first argument is taken as ``data_dir``
    (``load_ticks("/data/btc")``). Without real data and with no window the synthetic
    path covers ``synthetic_hours`` (default 24) from 2026-01-22T14:00:00Z.
    ``allow_synthetic=False`` raises FileNotFoundError instead of falling back. By default
    (None) the fallback is allowed only when no ``data_dir`` was given: a directory the caller
    named explicitly that holds no trade dumps is an error, not a silent switch to made-up prices.
    """
    if isinstance(start_ms, (str, os.PathLike)):
        if data_dir is not None:
            raise TypeError("data_dir given twice")
        data_dir, start_ms = start_ms, None
    if allow_synthetic is None:
        allow_synthetic = data_dir is None
    d = Path(data_dir) if data_dir is not None else find_data_dir()
    if d is not None and not d.exists():
        raise FileNotFoundError(f"data path {d} does not exist")
    if d is not None:
        ticks = read_binance_ticks(d, start_ms, end_ms, symbol)
        if ticks is not None:
            if len(ticks) == 0:
                log.warning("No %s trades in the requested window in %s", symbol, d)
            return ticks
        log.warning("No trade/aggTrade dumps for %s under %s", symbol, d)
    if not allow_synthetic:
        raise FileNotFoundError(f"no real Binance trade dumps for {symbol} "
                                f"(looked in {d or '$' + DATA_DIR_ENV + ' / ../shared/data'})")
    log.warning(SYNTHETIC_WARNING)
    hours_default = DEFAULT_SYNTHETIC_HOURS if synthetic_hours is None else synthetic_hours
    s, hours = synthetic_span(start_ms, end_ms, hours_default)
    ticks = synthetic_ticks(start_ms=s, hours=hours, seed=seed, symbol=symbol)
    if start_ms is not None or end_ms is not None:
        ticks = ticks.slice_time(start_ms, end_ms)
    return ticks


__all__ = [
    "CACHE_DIR_ENV", "DATA_DIR_ENV", "cache_dir", "data_start_hint", "read_dump_cached", "DEFAULT_SYNTHETIC_HOURS", "DEFAULT_SYNTHETIC_START_MS", "DEFAULT_TICK",
    "DataFormatError", "ParseStats", "SOURCE_BINANCE", "SOURCE_SYNTHETIC", "SYNTHETIC_WARNING",
    "TickData", "candles", "derive_bbo", "find_data_dir", "hourly_candles", "kind_from_name",
    "list_dump_files", "load_klines", "load_ticks", "read_binance_ticks", "read_dump",
    "sniff_kind", "span_from_name", "synthetic_span", "synthetic_ticks",
]
