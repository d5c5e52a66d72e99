"""The on-disk cache of parsed kline files (``klines._parsed_rows``): a real month parses once,
later processes load the rows from ``HOURMM_CACHE_DIR`` by the hash of the file's bytes, and the
rows are the parser's to the bit."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from hourmm_core.data import klines
from tests.conftest import MAY_KLINES, REAL_DATA, needs_real_data

pytestmark = needs_real_data()


def _parse(p: Path) -> tuple[np.ndarray, int]:
    got = klines._fast_rows(p)
    return got if got is not None else klines._parse_rows(p)


def _same(a: tuple[np.ndarray, int], b: tuple[np.ndarray, int]) -> None:
    assert a[1] == b[1]
    assert a[0].dtype == b[0].dtype == np.float64 and a[0].shape == b[0].shape
    assert a[0].tobytes() == b[0].tobytes()


def _no_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(p: Path) -> None:
        raise AssertionError(f"{p} parsed although cached")
    monkeypatch.setattr(klines, "_fast_rows", boom)
    monkeypatch.setattr(klines, "_parse_rows", boom)


def test_a_real_month_is_parsed_once_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURMM_CACHE_DIR", str(tmp_path / "c"))
    p = REAL_DATA / MAY_KLINES
    want = _parse(p)
    assert want[0].shape[0] > 40_000
    _same(klines._parsed_rows(p), want)
    entries = list((tmp_path / "c").iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("klines-v1-")
    with monkeypatch.context() as m:
        _no_parse(m)
        _same(klines._parsed_rows(p), want)
    entries[0].write_bytes(b"not an npz")          # a broken entry: parsed again, rewritten
    _same(klines._parsed_rows(p), want)
    with monkeypatch.context() as m:
        _no_parse(m)
        _same(klines._parsed_rows(p), want)


def test_the_key_is_the_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURMM_CACHE_DIR", str(tmp_path / "c"))
    src = REAL_DATA / MAY_KLINES
    lines = gzip.decompress(src.read_bytes()).decode().splitlines(keepends=True)
    cols = lines[100].split(",")
    cols[4] = f"{float(cols[4]) + 0.01:.8f}"       # another close in row 101
    lines[100] = ",".join(cols)
    edited = tmp_path / MAY_KLINES
    edited.write_bytes(gzip.compress("".join(lines).encode(), mtime=0))
    a = klines._parsed_rows(src)
    b = klines._parsed_rows(edited)
    assert b[0][100, 4] == pytest.approx(a[0][100, 4] + 0.01)
    b[0][100, 4] = a[0][100, 4]
    assert b[0].tobytes() == a[0].tobytes()
    assert len(list((tmp_path / "c").iterdir())) == 2
    copy = tmp_path / "copy" / MAY_KLINES                # same bytes elsewhere: the same entry
    copy.parent.mkdir()
    copy.write_bytes(src.read_bytes())
    with monkeypatch.context() as m:
        _no_parse(m)
        _same(klines._parsed_rows(copy), a)


def test_cache_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURMM_CACHE_DIR", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    _same(klines._parsed_rows(REAL_DATA / MAY_KLINES), _parse(REAL_DATA / MAY_KLINES))
    assert list(tmp_path.iterdir()) == []
