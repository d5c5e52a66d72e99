"""The one fee formula (hourmm_core.fees): known values, venue client agreement, real Gamma schedules."""
from __future__ import annotations

import csv
import gzip
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client_v2.fees import adjust_buy_amount_for_fees

from hourmm_core.fees import (
    CRYPTO_FEES,
    NO_FEES,
    FeeError,
    FeeSchedule,
    fill_fee,
    maker_rebate_estimate,
    max_taker_fee_units,
    taker_fee,
    taker_fee_units,
)
from tests.conftest import REAL_DATA

PM_DATA = REAL_DATA / "polymarket"


@pytest.mark.parametrize("price,shares,fee", [
    (0.50, 100, 1.75),        # 100 * 0.07 * 0.25: the peak, 3.5% of notional
    (0.54, 100, 1.7388),      # 100 * 0.07 * 0.2484
    (0.01, 100, 0.0693),      # 100 * 0.07 * 0.0099
    (0.99, 100, 0.0693),      # symmetric
    (0.01, 1, 0.00069),       # 0.000693 floored to 5 decimals (0.00001 USDC)
    (0.30, 5, 0.0735),
    (0.0, 100, 0.0),
    (1.0, 100, 0.0),
])
def test_crypto_schedule_known_values(price, shares, fee):
    assert taker_fee(price, shares, CRYPTO_FEES) == pytest.approx(fee, abs=1e-12)
    assert fill_fee(price, shares, False, CRYPTO_FEES) == pytest.approx(fee, abs=1e-12)
    assert fill_fee(price, shares, True, CRYPTO_FEES) == 0.0          # makers never pay
    assert taker_fee(price, shares, NO_FEES) == 0.0


def test_units_and_float_forms_agree_and_rebate():
    assert taker_fee_units(5000, 10_000, CRYPTO_FEES) == 1_750_000
    assert max_taker_fee_units(10_000, CRYPTO_FEES) == 1_750_000
    assert maker_rebate_estimate(0.5, 100, CRYPTO_FEES) == pytest.approx(0.35)
    sq = FeeSchedule(rate=0.25, exponent=2)
    assert taker_fee(0.5, 100, sq) == pytest.approx(100 * 0.25 * 0.0625)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000_000), st.sampled_from([0.0, 0.01, 0.07, 0.1, 1.0]),
       st.integers(0, 3))
def test_exact_integer_floor(pu, su, rate, e):
    """micro-USDC fee == floor(shares*rate*(p(1-p))^e to 1e-5 USDC), computed with exact fractions."""
    fs = FeeSchedule(rate=rate, exponent=e)
    pq = Fraction(pu, 10_000) * Fraction(10_000 - pu, 10_000)
    exact = Fraction(su, 100) * Fraction(rate).limit_denominator(10**6) * pq ** e
    assert taker_fee_units(pu, su, fs) == math.floor(exact * 100_000) * 10


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 999).map(lambda c: c / 1000), st.floats(0.01, 5000).map(lambda x: round(x, 2)))
def test_matches_py_clob_client_v2_fee(price, shares):
    """The venue client's own fee (py_clob_client_v2.fees) within the 0.00001 USDC floor."""
    amount = price * shares
    client_fee = amount - adjust_buy_amount_for_fees(amount, price, amount, 0.07, 1, 0.0)
    assert taker_fee(price, shares, CRYPTO_FEES) == pytest.approx(client_fee, abs=1.01e-5)
    assert taker_fee(price, shares, CRYPTO_FEES) <= client_fee + 1e-9


def test_schedule_parsed_from_real_gamma_rows():
    files = sorted(PM_DATA.glob("btc5m_markets_gamma_*.csv.gz"))
    if not files:
        pytest.skip("real Polymarket data not present")
    n = 0
    for f in files:
        with gzip.open(f, "rt") as fh:
            for row in csv.DictReader(fh):
                assert row["fee_type"] == "crypto_fees_v2"
                assert FeeSchedule.from_market(row) == CRYPTO_FEES
                n += 1
    assert n >= 500


def test_parse_gamma_clob_and_errors():
    g = {"feeType": "crypto_fees_v2", "feeSchedule": {"exponent": 1, "rate": 0.07, "takerOnly": True, "rebateRate": 0.2}}
    assert FeeSchedule.from_market(g) == CRYPTO_FEES
    assert FeeSchedule.from_market({"feeSchedule": '{"rate": 0.07, "exponent": 1, "takerOnly": true, "rebateRate": 0.2}'}) \
        == CRYPTO_FEES
    assert FeeSchedule.from_market({"fd": {"r": 0.07, "e": 1, "to": True}}) == FeeSchedule(0.07, 1)
    assert FeeSchedule.from_market({"fd": CRYPTO_FEES.as_fd()}).rate == 0.07
    assert FeeSchedule.from_market({"feeSchedule": CRYPTO_FEES.as_gamma()}) == CRYPTO_FEES
    assert FeeSchedule.from_market({}) == NO_FEES
    for bad in ({"feeSchedule": {"rate": "x"}}, {"feeSchedule": {"rate": -0.1}}, {"feeSchedule": "{nope"},
                {"fd": {"r": 0.07, "e": 1.5}}, {"feeSchedule": {"rate": 0.07, "takerOnly": False}}):
        with pytest.raises(FeeError):
            FeeSchedule.from_market(bad)
    with pytest.raises(FeeError):
        taker_fee(1.5, 1, CRYPTO_FEES)
    with pytest.raises(FeeError):
        taker_fee(0.5, -1, CRYPTO_FEES)
