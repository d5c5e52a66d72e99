"""What a backtest process pays before its first hour: the imports it does not need stay out.

``hourmm_core.pricing`` and ``hourmm_core.binance`` export their names lazily
(:mod:`hourmm_core.lazy`): the backtest reads container A's model parameters
(``pricing.snapshot``) and frame types (``binance.messages``) but never runs a server or
a network client, whose imports (aiohttp, websockets, an SSL context) cost ~0.3 s a process.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

NETWORK = ("aiohttp", "websockets", "yarl", "multidict")


def test_backtest_cli_does_not_import_network_clients():
    code = ("import json, sys; import hourmm_core.research.backtest_cli, hourmm_core.research.engine_backtest; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))" % (NETWORK,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("package", ["hourmm_core.pricing", "hourmm_core.binance"])
def test_lazy_exports_are_the_submodules_objects(package):
    pkg = importlib.import_module(package)
    assert set(pkg.__all__) == set(pkg._WHERE)
    for name in pkg.__all__:
        assert name in dir(pkg)
        assert getattr(pkg, name) is getattr(importlib.import_module(f"{package}.{pkg._WHERE[name]}"), name)
    with pytest.raises(AttributeError, match="no attribute 'not_exported'"):
        pkg.not_exported  # noqa: B018


def test_the_fair_warm_up_reads_only_the_files_of_its_window(monkeypatch):
    """``fair.history_klines`` asks ``kline_history`` for its window only (the other months are
    not parsed) and gets the rows the whole history has there."""
    from hourmm_core.data.klines import kline_history
    from hourmm_core.research import fair
    from tests.conftest import MAY_KLINES, REAL_DATA

    if not (REAL_DATA / MAY_KLINES).exists():
        pytest.skip("real data not found")
    first = 1_747_872_000_000 + 5 * 3_600_000 + 123_456        # 2025-05-22 05:02:03.456Z
    fair._HISTORY.clear()
    fair.use_history_dir(REAL_DATA)
    try:
        got = fair.history_klines(first, 672)
        files = fair._HISTORY["kh"].files
    finally:
        fair.use_history_dir(None)
        fair._HISTORY.clear()
    assert files and all("2025-04" in f or "2025-05" in f for f in files)
    whole = kline_history(REAL_DATA, "BTCUSDT")
    assert len(whole.files) > len(files)
    start = first - first % 3_600_000 - 673 * 3_600_000
    w = whole.window(start, first - first % 60_000)
    assert got is not None and len(got[0]) == len(w["open_ms"]) > 672 * 60
    for mine, col in zip(got, ("open_ms", "open", "close")):
        assert np.array_equal(mine, w[col])
