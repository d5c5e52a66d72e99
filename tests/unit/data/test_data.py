"""Data loaders: real Binance dump formats (written here as tiny fixtures), synthetic stand-in, candles."""
from __future__ import annotations

import gzip
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hourmm_core import data as hd
from hourmm_core.clock import HOUR_MS

H0 = 1_769_090_400_000  # 2026-01-22T14:00:00Z


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HOURMM_CACHE_DIR", str(tmp_path_factory.mktemp("dumpcache")))


def _trades_rows(us: bool = False, header: bool = False, best_match: bool = True) -> str:
    rows = []
    if header:
        rows.append("id,price,qty,quote_qty,time,is_buyer_maker" + (",is_best_match" if best_match else ""))
    data = [
        (101, "50000.00", "0.01000", H0 + 5, "true"),
        (102, "50001.50", "0.20000", H0 + 900, "false"),
        (103, "49999.99", "0.00300", H0 + HOUR_MS - 1, "true"),
        (104, "50010.00", "1.00000", H0 + HOUR_MS + 10, "False"),
    ]
    for tid, p, q, t, m in data:
        ts = t * 1000 if us else t
        quote = f"{float(p) * float(q):.8f}"
        rows.append(f"{tid},{p},{q},{quote},{ts},{m}" + (",True" if best_match else ""))
    return "\n".join(rows) + "\n"


def test_trades_zip_ms_no_header(tmp_path: Path):
    z = tmp_path / "BTCUSDT-trades-2026-01-22.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("BTCUSDT-trades-2026-01-22.csv", _trades_rows())
    t = hd.load_ticks(data_dir=tmp_path)
    assert t.source == "binance-trades" and not t.is_synthetic
    assert list(t.ts_ms) == [H0 + 5, H0 + 900, H0 + HOUR_MS - 1, H0 + HOUR_MS + 10]
    assert list(t.price) == [50000.0, 50001.5, 49999.99, 50010.0]
    assert list(t.is_buyer_maker) == [True, False, True, False]
    assert list(t.trade_id) == [101, 102, 103, 104]
    # derived BBO: buyer-maker trade printed at the bid, aggressive buy at the ask
    assert t.bbo == "derived"
    assert t.bid[0] == 50000.0 and t.ask[0] == pytest.approx(50000.01)
    assert t.ask[1] == 50001.5 and t.bid[1] == pytest.approx(50001.49)
    assert np.isnan(t.bid_qty).all()


def test_trades_gz_us_timestamps_with_header(tmp_path: Path):
    p = tmp_path / "BTCUSDT-trades-2026-01-22.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(_trades_rows(us=True, header=True))
    t = hd.load_ticks(data_dir=p)  # a single file works too
    assert t.ts_ms[0] == H0 + 5 and t.ts_ms[-1] == H0 + HOUR_MS + 10
    assert len(t) == 4


def test_aggtrades_and_bookticker_merge(tmp_path: Path):
    agg = tmp_path / "BTCUSDT-aggTrades-2026-01-22.csv"
    agg.write_text(
        f"1,50000.00,0.5,10,12,{H0 + 100},true,true\n"
        f"2,50002.00,0.1,13,13,{H0 + 300},false,true\n"
    )
    bt = tmp_path / "BTCUSDT-bookTicker-2026-01-22.csv"
    bt.write_text(
        "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n"
        f"9,49999.90,1.5,50000.10,2.5,{H0 + 50},{H0 + 51}\n"
        f"10,50001.90,0.7,50002.00,0.3,{H0 + 250},{H0 + 251}\n"
    )
    t = hd.load_ticks(data_dir=tmp_path)
    assert t.bbo == "bookTicker"
    assert list(t.bid) == [49999.90, 50001.90]
    assert list(t.ask_qty) == [2.5, 0.3]
    assert list(t.qty) == [0.5, 0.1]


def test_bad_rows_are_counted_and_skipped(tmp_path: Path, caplog):
    p = tmp_path / "BTCUSDT-trades-2026-01-22.csv"
    p.write_text(_trades_rows(best_match=False) + f"105,notaprice,0.1,1,{H0 + 20},true\n106,-5,0.1,1,{H0 + 21},true\n")
    stats = hd.ParseStats()
    kind, cols = hd.read_dump(p, stats=stats)
    assert kind == "trades" and len(cols["id"]) == 4
    assert stats.bad["trades"] == 2 and stats.rows["trades"] == 4
    with caplog.at_level(logging.WARNING):
        t = hd.load_ticks(data_dir=tmp_path)
    assert len(t) == 4 and "Bad trades row" in caplog.text


def test_kind_sniffed_without_name_and_window_filter(tmp_path: Path):
    p = tmp_path / "dump.csv"
    p.write_text(_trades_rows(best_match=False))
    assert hd.sniff_kind(["1", "2", "3", "4", "5", "true"]) == "trades"
    assert hd.sniff_kind(["1", "2", "3", "4", "5", "1700000000000", "true"]) == "aggTrades"
    assert hd.sniff_kind(["1"] * 12) == "klines"
    t = hd.load_ticks(H0, H0 + HOUR_MS, data_dir=tmp_path)
    assert len(t) == 3 and t.ts_ms.max() < H0 + HOUR_MS
    # a file dated outside the window is not even opened
    assert hd.span_from_name("BTCUSDT-trades-2026-01-22.zip") == (H0 - 14 * HOUR_MS, H0 + 10 * HOUR_MS)
    assert hd.span_from_name("BTCUSDT-trades-2026-01.zip")[1] - hd.span_from_name("BTCUSDT-trades-2026-01.zip")[0] == 31 * 24 * HOUR_MS


def test_klines_loader(tmp_path: Path):
    p = tmp_path / "BTCUSDT-1h-2026-01-22.csv"
    p.write_text(f"{H0},50000.0,50100.0,49900.0,50050.0,12.5,{H0 + HOUR_MS - 1},625000.0,1000,6.0,300000.0,0\n")
    k = hd.load_klines(tmp_path)
    assert k is not None and k["open_ms"][0] == H0 and k["close"][0] == 50050.0


def test_unreadable_zip_is_skipped(tmp_path: Path):
    (tmp_path / "BTCUSDT-trades-2026-01-22.zip").write_bytes(b"not a zip")
    (tmp_path / "BTCUSDT-trades-2026-01-23.csv").write_text(_trades_rows())
    t = hd.load_ticks(data_dir=tmp_path)
    assert len(t) == 4


def test_synthetic_fallback_is_loud_and_labelled(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setenv("HOURMM_DATA_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr(hd, "find_data_dir", lambda environ=None: None)
    with caplog.at_level(logging.WARNING):
        t = hd.load_ticks(H0, H0 + 2 * HOUR_MS)
    assert t.source == "synthetic" and t.is_synthetic
    assert "SYNTHETIC DATA" in caplog.text and "NOT market data" in caplog.text
    assert t.ts_ms.min() >= H0 and t.ts_ms.max() < H0 + 2 * HOUR_MS
    with pytest.raises(FileNotFoundError):
        hd.load_ticks(H0, H0 + HOUR_MS, allow_synthetic=False)


def test_synthetic_properties():
    t = hd.synthetic_ticks(hours=2, seed=3)
    again = hd.synthetic_ticks(hours=2, seed=3)
    assert np.array_equal(t.price, again.price)  # seeded
    assert t.ts_ms[0] >= hd.DEFAULT_SYNTHETIC_START_MS and t.ts_ms[-1] < hd.DEFAULT_SYNTHETIC_START_MS + 2 * HOUR_MS
    rate = len(t) / 7200.0
    assert 5.0 <= rate <= 20.0
    assert np.all(np.diff(t.ts_ms) >= 0)
    cents = np.round(t.price * 100)
    assert np.allclose(cents / 100, t.price)  # 0.01 grid
    assert np.all(t.bid < t.ask)
    # realised vol of 1 s log returns, annualised, lands near the 40-60% regime
    sec = t.ts_ms // 1000
    last = np.flatnonzero(np.concatenate((sec[1:] != sec[:-1], [True])))
    r = np.diff(np.log(t.price[last]))
    ann = r.std() * np.sqrt(365.25 * 24 * 3600)
    assert 0.2 < ann < 1.0


def test_tickdata_slicing_and_candles():
    t = hd.synthetic_ticks(hours=3, seed=1)
    hs = t.hour_starts()
    assert list(hs) == [H0, H0 + HOUR_MS, H0 + 2 * HOUR_MS]
    h1 = t.hour(H0 + HOUR_MS)
    assert h1.ts_ms.min() >= H0 + HOUR_MS and h1.ts_ms.max() < H0 + 2 * HOUR_MS
    c = hd.hourly_candles(t)
    assert list(c["open_ms"]) == list(hs)
    assert c["open"][1] == h1.price[0] and c["close"][1] == h1.price[-1]
    assert c["high"][1] == h1.price.max() and c["low"][1] == h1.price.min()
    assert c["volume"][1] == pytest.approx(h1.qty.sum())
    assert sum(len(x) for _, x in t.iter_hours()) == len(t)
    with pytest.raises(ValueError):
        t.price[0] = 1.0  # immutable columns
    with pytest.raises(ValueError):
        hd.TickData(np.array([2, 1]), *([np.zeros(2)] * 7))


def test_find_data_dir_env(tmp_path: Path):
    assert hd.find_data_dir({"HOURMM_DATA_DIR": str(tmp_path)}) == tmp_path


def test_synthetic_is_window_invariant():
    """Every process asking for an overlapping window sees the same trades (replay, PM sim, orchestrator)."""
    a = hd.synthetic_ticks(H0 - 2 * HOUR_MS, hours=6, seed=5)
    b = hd.synthetic_ticks(H0 + HOUR_MS, hours=2, seed=5)
    s = a.slice_time(H0 + HOUR_MS, H0 + 3 * HOUR_MS)
    assert np.array_equal(s.ts_ms, b.ts_ms) and np.array_equal(s.price, b.price)
    assert np.array_equal(s.trade_id, b.trade_id)
    assert np.all(np.diff(a.trade_id) > 0)
    c = hd.load_ticks(H0 + HOUR_MS + 123, H0 + 2 * HOUR_MS, data_dir=None, allow_synthetic=True, seed=5) \
        if hd.find_data_dir() is None else None
    if c is not None:
        assert np.array_equal(c.price, a.slice_time(H0 + HOUR_MS + 123, H0 + 2 * HOUR_MS).price)
    other = hd.synthetic_ticks(H0 + HOUR_MS, hours=2, seed=6)
    assert not np.array_equal(other.price[:100], b.price[:100])


def test_csv_round_trip_matches_source_exactly(tmp_path: Path):
    """Synthetic ticks written in the real trades format (us timestamps) load back bit-identical."""
    t = hd.synthetic_ticks(hours=1, seed=2).slice_time(None, H0 + 5 * 60_000)
    lines = [f"{t.trade_id[i]},{t.price[i]:.8f},{t.qty[i]:.8f},{t.price[i] * t.qty[i]:.8f},{t.ts_ms[i] * 1000},"
             f"{'true' if t.is_buyer_maker[i] else 'false'},true" for i in range(len(t))]
    (tmp_path / "BTCUSDT-trades-2026-01-22.csv").write_text("\n".join(lines) + "\n")
    x = hd.load_ticks(data_dir=tmp_path)
    assert np.array_equal(x.ts_ms, t.ts_ms) and np.array_equal(x.price, t.price)
    assert np.array_equal(x.qty, t.qty) and np.array_equal(x.is_buyer_maker, t.is_buyer_maker)
    assert np.array_equal(x.trade_id, t.trade_id)
    w = hd.load_ticks(H0 + 60_000, H0 + 120_000, data_dir=tmp_path)
    assert np.array_equal(w.price, t.slice_time(H0 + 60_000, H0 + 120_000).price)


def test_parsed_dumps_are_cached_and_invalidated(tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("HOURMM_CACHE_DIR", str(cache))
    from hourmm_core.data import binance_dumps
    monkeypatch.setattr(binance_dumps, "CACHE_MIN_BYTES", 0)  # our fixture is tiny
    d = tmp_path / "data"
    d.mkdir()
    f = d / "BTCUSDT-trades-2026-01-22.csv"
    f.write_text(_trades_rows())
    a = hd.load_ticks(data_dir=d)
    assert len(list(cache.glob("*.npz"))) == 1
    b = hd.load_ticks(H0, H0 + HOUR_MS, data_dir=d)  # served from the cache, window applied
    assert np.array_equal(b.price, a.price[:3])
    f.write_text(_trades_rows() + f"105,50020.00,0.1,5002.0,{H0 + 2 * HOUR_MS},true,true\n")
    c = hd.load_ticks(data_dir=d)  # changed file -> new key, re-parsed
    assert len(c) == 5 and len(list(cache.glob("*.npz"))) == 2
    monkeypatch.setenv("HOURMM_CACHE_DIR", "off")
    assert hd.cache_dir() is None and len(hd.load_ticks(data_dir=d)) == 5


def test_explicit_data_dir_without_trades_is_an_error(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("no dumps here")
    with pytest.raises(FileNotFoundError, match="no real Binance trade or kline dumps"):
        hd.load_ticks(data_dir=tmp_path)
    assert hd.load_ticks(data_dir=tmp_path, allow_synthetic=True, synthetic_hours=1).is_synthetic


# ---------------------------------------------------------------- real 1m klines + bridge
# These run on small slices of the real data in ../shared/data (README: 1m klines
# 2025-04-15..06-30, an 11-minute trades+bookTicker sample on 2024-08-08/09).

REAL = hd.find_data_dir()
needs_real = pytest.mark.skipif(REAL is None or not (REAL / "BTCUSDT-1m-2025-05.csv.gz").exists(),
                                reason="real data (../shared/data) not present")
H_ATH = 1_747_922_400_000  # 2025-05-22T14:00Z, hourmm sim's default hour
KL_2300_OPEN = 62332.0     # real 1m kline open of 2024-08-08T23:00Z (context file of the sample)


def _real_rows(start_ms: int, minutes: int) -> list[str]:
    """Raw lines of the real May 2025 kline file for [start_ms, +minutes)."""
    out = []
    with gzip.open(REAL / "BTCUSDT-1m-2025-05.csv.gz", "rt") as fh:
        for line in fh:
            t = int(line.split(",", 1)[0])
            if start_ms <= t < start_ms + minutes * 60_000:
                out.append(line.strip())
            elif t >= start_ms + minutes * 60_000:
                break
    return out


@needs_real
@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "zip"])
@pytest.mark.parametrize("header,us", [(False, False), (True, True)])
def test_real_klines_formats(tmp_path: Path, fmt: str, header: bool, us: bool):
    rows = _real_rows(H_ATH - HOUR_MS, 180)
    assert len(rows) == 180
    if us:  # 2025 data.binance.vision spot dumps carry microseconds
        rows = [",".join([str(int(r.split(",")[0]) * 1000)] + r.split(",")[1:6] + [str(int(r.split(",")[6]) * 1000)]
                         + r.split(",")[7:]) for r in rows]
    text = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
            "taker_buy_quote_volume,ignore\n" if header else "") + "\n".join(rows) + "\n"
    name = "BTCUSDT-1m-2025-05-22"
    if fmt == "csv":
        (tmp_path / f"{name}.csv").write_text(text)
    elif fmt == "csv.gz":
        with gzip.open(tmp_path / f"{name}.csv.gz", "wt") as fh:
            fh.write(text)
    else:
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
            zf.writestr(f"{name}.csv", text)
    kh = hd.kline_history(tmp_path)
    assert kh is not None and len(kh) == 180 and kh.segments == ((H_ATH - HOUR_MS, H_ATH + 2 * HOUR_MS),)
    assert kh.cols["open_ms"][60] == H_ATH and kh.cols["open"][60] == 110914.49  # the real hour's open
    t = hd.load_ticks(H_ATH, H_ATH + HOUR_MS, data_dir=tmp_path)
    assert t.source == "binance-klines+bridge" and not t.is_synthetic
    assert t.price[0] == 110914.49 and t.price[-1] == 110897.9   # real 1h open/close: Down


def _kline_file(tmp_path: Path, rows: list[str], name: str = "BTCUSDT-1m-2025-05-22.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(rows) + "\n")
    return p


@needs_real
@pytest.mark.parametrize("case,expect", [
    ("gap", r"row 31: gap"),
    ("duplicate", r"row 31: duplicate open_time"),
    ("ohlc", r"row 11: high below open/close"),
    ("low", r"row 6: low above open/close"),
    ("close_time", r"row 3: close_time"),
    ("malformed", r"row 8: not a kline row"),
    ("taker", r"row 4: taker-buy volume"),
])
def test_bad_klines_are_refused_naming_file_and_row(tmp_path: Path, case: str, expect: str):
    rows = _real_rows(H_ATH, 60)
    cells = [r.split(",") for r in rows]
    if case == "gap":
        del cells[30]
    elif case == "duplicate":
        cells.insert(30, list(cells[29]))
    elif case == "ohlc":
        cells[10][2] = f"{float(cells[10][1]) - 5:.2f}"
    elif case == "low":
        cells[5][3] = f"{max(float(cells[5][1]), float(cells[5][4])) + 1:.2f}"
    elif case == "close_time":
        cells[2][6] = str(int(cells[2][6]) + 1)
    elif case == "malformed":
        cells[7][4] = "abc"
    elif case == "taker":
        cells[3][9] = f"{float(cells[3][5]) * 2 + 1:.8f}"
    p = _kline_file(tmp_path, [",".join(c) for c in cells])
    with pytest.raises(hd.KlineError, match=expect) as ei:
        hd.load_ticks(H_ATH, H_ATH + HOUR_MS, data_dir=tmp_path)
    assert str(p) in str(ei.value)


@needs_real
def test_wrong_symbol_and_conflicting_overlap_are_refused(tmp_path: Path):
    rows = _real_rows(H_ATH, 30)
    eth = _kline_file(tmp_path, rows, "ETHUSDT-1m-2025-05-22.csv")
    with pytest.raises(hd.KlineError, match="file is for ETHUSDT, expected BTCUSDT"):
        hd.read_klines(eth, "BTCUSDT")
    with pytest.raises(hd.KlineError, match="ETHUSDT"):
        hd.load_ticks(H_ATH, H_ATH + HOUR_MS, data_dir=eth)
    # in a directory another symbol's files are ignored; an identical overlap (daily inside
    # monthly) merges, a conflicting one is refused naming both files
    d = tmp_path / "d"
    d.mkdir()
    _kline_file(d, rows, "ETHUSDT-1m-2025-05-22.csv")
    _kline_file(d, rows, "BTCUSDT-1m-2025-05-22.csv")
    _kline_file(d, rows[:10], "BTCUSDT-1m-2025-05.csv")
    assert len(hd.kline_history(d)) == 30
    bad = [r.split(",") for r in rows[:10]]
    bad[4][4] = f"{float(bad[4][4]) + 0.01:.2f}"
    bad[4][2] = f"{max(float(bad[4][2]), float(bad[4][4])):.2f}"
    _kline_file(d, [",".join(c) for c in bad], "BTCUSDT-1m-2025-05.csv")
    with pytest.raises(hd.KlineError, match="conflicting"):
        hd.kline_history(d)


@needs_real
def test_bridge_honours_every_real_kline(tmp_path: Path):
    kh = hd.kline_history(REAL, "BTCUSDT", H_ATH - HOUR_MS, H_ATH + 2 * HOUR_MS)
    k = kh.window(H_ATH - HOUR_MS, H_ATH + 2 * HOUR_MS)
    params = hd.BridgeParams(max_ticks_per_minute=200)
    t = hd.bridge_klines(k, seed=7, params=params)
    assert t.source == hd.SOURCE_KLINES_BRIDGE and t.bbo == "bridge"
    assert np.all(np.diff(t.ts_ms) >= 0)
    m = hd.candles(t.ts_ms, t.price, t.qty, 60_000)
    np.testing.assert_array_equal(m["open_ms"], k["open_ms"])
    for f in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(m[f], k[f], err_msg=f)
    np.testing.assert_allclose(m["volume"], k["volume"], rtol=1e-9)
    np.testing.assert_array_equal(m["count"], np.clip(k["count"], 4, 200))
    minute = (t.ts_ms - t.ts_ms % 60_000)
    buy_vol = np.bincount(np.searchsorted(k["open_ms"], minute), weights=np.where(t.is_buyer_maker, 0.0, t.qty))
    np.testing.assert_allclose(buy_vol, k["taker_buy_volume"], rtol=1e-9, atol=1e-12)
    # hourly candles = the real 1h klines (the market's settlement)
    hc = hd.hourly_candles(t)
    for i, h in enumerate(hc["open_ms"]):
        sel = (k["open_ms"] >= h) & (k["open_ms"] < h + HOUR_MS)
        assert hc["open"][i] == k["open"][sel][0] and hc["close"][i] == k["close"][sel][-1]
    # the trade prints at the side it hit; the spread is >= one tick and sometimes wider
    assert np.all(np.where(t.is_buyer_maker, t.bid == t.price, t.ask == t.price))
    spread = t.ask - t.bid
    assert spread.min() >= 0.01 - 1e-9 and 0.02 < np.mean(spread > 0.011) < 0.6
    # deterministic by (seed, minute): any window sees the same ticks; another seed differs
    t2 = hd.bridge_klines(kh.window(H_ATH, H_ATH + HOUR_MS), seed=7, params=params)
    a = t.hour(H_ATH)
    np.testing.assert_array_equal(a.ts_ms, t2.ts_ms)
    np.testing.assert_array_equal(a.price, t2.price)
    np.testing.assert_array_equal(a.qty, t2.qty)
    t3 = hd.bridge_klines(kh.window(H_ATH, H_ATH + HOUR_MS), seed=8, params=params)
    assert not np.array_equal(t3.price, t2.price)
    assert t3.price[0] == t2.price[0] and t3.price[-1] == t2.price[-1]


@needs_real
def test_load_ticks_prefers_real_trades_then_klines_bridge():
    h0 = 1_723_161_600_000  # 2024-08-09T00:00Z, inside the real 11-minute trade sample
    t = hd.load_ticks(h0 - 4 * 60_000, h0 + 4 * 60_000)
    assert t.source == "binance-trades" and t.bbo == "bookTicker"
    # bookTicker of the sample: the estimated exchange time (column 6), not the local ns clock
    assert np.all(t.ask >= t.bid) and np.median(t.ask - t.bid) == pytest.approx(0.01)
    assert t.ts_ms[0] >= h0 - 4 * 60_000 and t.ts_ms[-1] < h0 + 4 * 60_000
    # the hour around it is covered by the klines only: bridged from the real klines
    b = hd.load_ticks(h0 - HOUR_MS, h0 + HOUR_MS)
    assert b.source == "binance-klines+bridge"
    assert b.price[0] == KL_2300_OPEN and b.hour(h0).price[0] == t.hour(h0).price[0]  # hour-boundary open
    # whole history: the longest contiguous kline span, capped to the tick budget
    span = hd.history_span()
    assert span == (1_744_675_200_000, 1_751_328_000_000)
    assert hd.default_sim_start() == H_ATH


@needs_real
def test_data_inventory_on_shared_data():
    inv = hd.data_inventory()
    rows = {(s.kind, s.start_ms): s.rows for s in inv.sources}
    assert rows[("klines 1m", 1_744_675_200_000)] == 110_880          # README: 110,880 one-minute rows
    assert rows[("klines 1m", 1_723_158_000_000)] == 120
    assert sum(v for (k, _), v in rows.items() if k == "trades") == 19_904
    assert sum(v for (k, _), v in rows.items() if k == "bookTicker") == 73_174
    assert not inv.errors and inv.default_source.startswith("binance-klines+bridge")
    text = inv.format()
    assert "2025-04-15 00:00:00 .. 2025-07-01 00:00:00" in text and "110,880" in text


@needs_real
def test_hourmm_data_command(capsys):
    from hourmm_core import cli
    assert cli.main(["data"]) == 0
    out = capsys.readouterr().out
    assert "klines 1m" in out and "110,880" in out and "19,904" in out and "default source: binance-klines+bridge" in out
    assert cli.main(["data", "/no/such/dir"]) == 2


@needs_real
def test_bridge_matches_the_real_tick_sample():
    """docs/DATA.md's table: real trades of the sample vs ticks bridged from their own 1m klines."""
    from hourmm_core.data import bridge_check as bc
    c = bc.compare_bridge(REAL, seeds=range(1, 9))
    assert c.klines_match                       # the trades rebuild Binance's own 1m klines exactly
    for step, bound in bc.RV_BOUNDS.items():    # 1 s and 10 s realized variance within 25 %
        for capped in (False, True):
            r = c.rv_ratio(step, capped)
            assert abs(r - 1.0) <= bound, (step, capped, r)
    assert c.rv_ratio(60_000) == pytest.approx(1.0, abs=1e-9)      # minute closes are the real ones
    assert all(b.boundary_open == c.real.boundary_open for b in c.bridged + c.capped)
    # distributions: same-ms bursts, trade sizes and spread widening stay near the real ones
    mean = lambda f: float(np.mean([f(b) for b in c.bridged]))  # noqa: E731
    assert abs(mean(lambda b: b.dt_zero) - c.real.dt_zero) < 0.1
    assert abs(mean(lambda b: b.dt_mean) / c.real.dt_mean - 1) < 0.1
    for i in range(4):
        assert 0.5 < mean(lambda b: b.size_q[i]) / c.real.size_q[i] < 2.0, i
    assert abs(mean(lambda b: b.wide) - c.real.wide) < 0.1
    assert 0.5 < mean(lambda b: b.spread_mean) / c.real.spread_mean < 2.0
