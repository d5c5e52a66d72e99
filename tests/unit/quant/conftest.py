"""Fixtures shared by the quant core's tests."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from tests.conftest import REAL_DATA

TRADES = REAL_DATA / "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz"


@pytest.fixture(scope="module")
def trades():
    """The real Binance trade slice (19,904 trades across 00:00 UTC): (ts_ms int64, price f64)."""
    if not TRADES.exists():
        pytest.skip(f"real trade slice not found under {REAL_DATA}")
    a = np.loadtxt(gzip.open(TRADES, "rt"), delimiter=",", usecols=(1, 4))
    return a[:, 1].astype(np.int64), a[:, 0].astype(np.float64)
