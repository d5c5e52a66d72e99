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
    with pytest.raises(FileNotFoundError, match="no real Binance trade dumps"):
        hd.load_ticks(data_dir=tmp_path)
    assert hd.load_ticks(data_dir=tmp_path, allow_synthetic=True, synthetic_hours=1).is_synthetic
