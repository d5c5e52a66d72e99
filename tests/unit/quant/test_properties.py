"""Property tests: compiled quant core == Python reference (rel 1e-9) and the safety properties."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hourmm_core import quant as q
from hourmm_core.quant import reference as R
from hourmm_core.quant.risk_codes import RiskMode, RiskReason

SET = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000


@st.composite
def tick_paths(draw, max_n=300):
    n = draw(st.integers(1, max_n))
    gaps = draw(st.lists(st.sampled_from([0, 0, 1, 7, 120, 999, 1000, 1500, 4000, 61_000, 400_000, 3_700_000]),
                         min_size=n, max_size=n))
    rets = draw(st.lists(st.floats(-0.01, 0.01), min_size=n, max_size=n))
    start = T0 + draw(st.integers(0, 3_599_999))
    ts = start + np.cumsum(np.array(gaps, dtype=np.int64))
    px = 50_000.0 * np.exp(np.cumsum(rets))
    # sprinkle bad ticks: NaN, negative, time going backwards
    bad = draw(st.lists(st.integers(0, n - 1), max_size=4))
    for j in bad:
        kind = j % 3
        if kind == 0:
            px[j] = float("nan")
        elif kind == 1:
            px[j] = -1.0
        elif j > 0:
            ts[j] = ts[j - 1] - 5
    return ts, px


def _close(a, b, rel=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    np.testing.assert_allclose(a[m], b[m], rtol=rel, atol=1e-300)


# ------------------------------------------------------------------ vol / features
@SET
@given(tick_paths(), st.sampled_from([(30.0,), (30.0, 120.0, 600.0), (5.0, 3600.0)]),
       st.sampled_from([250, 1000, 5000]))
def test_vol_compiled_equals_reference(path, hls, sample_ms):
    ts, px = path
    _close(q.ewma_vol_batch(ts, px, hls, sample_ms, 1e-12), R.ewma_vol_batch(ts, px, hls, sample_ms, 1e-12))
    a, b = q.EwmaVol(hls, sample_ms), R.EwmaVol(hls, sample_ms)
    for t, p in zip(ts.tolist(), px.tolist()):
        assert a.update(t, p) == b.update(t, p)
    assert a.ready == b.ready and a.n_bad == b.n_bad
    assert np.all(a.sigmas() >= math.sqrt(1e-12))


@SET
@given(tick_paths())
def test_features_compiled_equals_reference(path):
    ts, px = path
    _close(q.return_features_batch(ts, px), R.return_features_batch(ts, px))


@SET
@given(tick_paths(max_n=120), st.floats(1_000.0, 100_000.0))
def test_features_streaming_with_explicit_open(path, open_px):
    ts, px = path
    a, b = q.ReturnFeatures(), R.ReturnFeatures()
    a.set_hour_open(T0, open_px)
    b.set_hour_open(T0, open_px)
    for t, p in zip(ts.tolist(), px.tolist()):
        assert a.update(t, p) == b.update(t, p)
        _close(a.values(), b.values())
    assert a.n_bad == b.n_bad
    assert not (a.rv_hour < 0.0) and not (a.bv_hour < 0.0)     # NaN before the first good tick


# ------------------------------------------------------------------ pricer
prices = st.floats(1.0, 1e6)
taus = st.one_of(st.just(0.0), st.floats(0.0, 3600.0))
sigmas = st.one_of(st.just(0.0), st.floats(1e-7, 1e-2))
nus = st.sampled_from([0.0, 2.5, 3.0, 5.0, 12.0, 100.0])
pmins = st.sampled_from([0.0, 0.001, 0.01])


@SET
@given(prices, prices, taus, sigmas, nus, pmins)
def test_pricer_compiled_equals_reference_and_in_range(S, K, tau, sig, nu, p_min):
    p = q.digital_prob(S, K, tau, sig, nu, p_min)
    assert p == pytest.approx(R.digital_prob(S, K, tau, sig, nu, p_min), rel=1e-9, abs=1e-300)
    assert p_min <= p <= 1.0 - p_min
    if S == K:
        assert p == 0.5


@SET
@given(prices, st.floats(-0.05, 0.05), st.floats(1.0, 3600.0), st.floats(1e-6, 1e-3), nus)
def test_pricer_symmetry(K, x, tau, sig, nu):
    up = q.digital_prob(K * math.exp(x), K, tau, sig, nu, 0.0)
    down = q.digital_prob(K * math.exp(-x), K, tau, sig, nu, 0.0)
    assert up + down == pytest.approx(1.0, abs=1e-9)


@SET
@given(prices, st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=20), taus, sigmas, nus, pmins)
def test_pricer_monotone_in_S(K, xs, tau, sig, nu, p_min):
    xs = sorted(xs)
    S = K * np.exp(np.array(xs))
    p = q.fair_prob_batch(S, np.full_like(S, K), np.full_like(S, tau), np.full_like(S, sig), nu, p_min)
    assert np.all(np.diff(p) >= -1e-12)
    ref = R.fair_prob_batch(S, np.full_like(S, K), np.full_like(S, tau), np.full_like(S, sig), nu, p_min)
    _close(p, ref)


# ------------------------------------------------------------------ ladder
@st.composite
def ladder_inputs(draw):
    tick = draw(st.sampled_from([0.01, 0.001]))
    n = round(1 / tick)
    fair = draw(st.floats(0.0, 1.0))
    bb_t = draw(st.integers(0, n - 1))
    ba_t = draw(st.integers(bb_t + 1, n))
    best_bid = bb_t / n if bb_t > 0 else float("nan")
    best_ask = ba_t / n if ba_t < n else float("nan")
    kw = dict(
        tick=tick,
        min_size=draw(st.sampled_from([0.0, 1.0, 5.0])),
        n_levels=draw(st.integers(0, 6)),
        base_size=draw(st.sampled_from([1.0, 5.0, 12.5, 200.0])),
        half_spread=draw(st.floats(0.0, 0.1)),
        level_step=draw(st.sampled_from([0.0, 0.001, 0.005, 0.01, 0.02])),
        unc_mult=draw(st.floats(0.0, 3.0)),
        skew=draw(st.floats(0.0, 0.2)),
        max_order_size=draw(st.sampled_from([0.0, 5.0, 10.0, 100.0])),
        max_position=draw(st.sampled_from([0.0, 10.0, 50.0, 500.0])),
        capital_free=draw(st.sampled_from([0.0, 3.0, 20.0, 1000.0, math.inf])),
        post_only=draw(st.booleans()),
        reduce_only=draw(st.booleans()),
        spread_mult=draw(st.sampled_from([1.0, 2.0])),
        size_mult=draw(st.sampled_from([0.5, 1.0])),
    )
    inv_up = draw(st.sampled_from([0.0, 3.0, 7.0, 40.0, 600.0]))
    inv_down = draw(st.sampled_from([0.0, 3.0, 7.0, 40.0, 600.0]))
    unc = draw(st.floats(0.0, 0.1))
    return (fair, unc, inv_up, inv_down, best_bid, best_ask), kw


@SET
@given(ladder_inputs())
def test_ladder_compiled_equals_reference(inp):
    args, kw = inp
    a, b = q.build_ladder(*args, **kw), R.build_ladder(*args, **kw)
    assert a.orders() == b.orders()
    assert a.reservation == pytest.approx(b.reservation, rel=1e-12, abs=1e-15)


@settings(max_examples=400, deadline=None)
@given(ladder_inputs())
def test_ladder_never_crosses_or_breaches(inp):
    (fair, unc, inv_up, inv_down, best_bid, best_ask), kw = inp
    lad = q.build_ladder(fair, unc, inv_up, inv_down, best_bid, best_ask, **kw)
    tick, n = kw["tick"], round(1 / kw["tick"])
    tol = 1e-9
    buy_up = buy_down = sell_up = sell_down = capital = 0.0
    up_bids, up_asks = [], []
    for token, side, price, size, level in lad.orders():
        assert tick - tol <= price <= 1 - tick + tol
        assert abs(price * n - round(price * n)) < 1e-6          # on the tick grid
        assert size >= kw["min_size"] - tol and size > 0
        assert size <= kw["max_order_size"] + tol
        assert abs(size * 100 - round(size * 100)) < 1e-6       # 0.01 size grid
        up_equiv = price if token == 0 else 1.0 - price
        is_bid = (token, side) in ((0, 0), (1, 1))                # buy Up == sell Down
        (up_bids if is_bid else up_asks).append(up_equiv)
        if side == 0:
            assert not kw["reduce_only"]
            capital += price * size
            if token == 0:
                buy_up += size
            else:
                buy_down += size
        elif token == 0:
            sell_up += size
        else:
            sell_down += size
    assert buy_up <= max(kw["max_position"] - inv_up, 0.0) + tol
    assert buy_down <= max(kw["max_position"] - inv_down, 0.0) + tol
    assert sell_up <= inv_up + tol and sell_down <= inv_down + tol
    assert capital <= kw["capital_free"] + 1e-6
    if up_bids and up_asks:
        assert max(up_bids) < min(up_asks) - tol                  # never self-crosses
    if kw["post_only"]:
        if not math.isnan(best_ask):
            assert all(b <= best_ask - tick + tol for b in up_bids)
        if not math.isnan(best_bid):
            assert all(a >= best_bid + tick - tol for a in up_asks)
    assert len(set(up_bids)) == len(up_bids) and len(set(up_asks)) == len(up_asks)


def test_ladder_skew_and_down_equivalent():
    flat = q.build_ladder(0.5, 0.0, 0.0, 0.0, float("nan"), float("nan"), n_levels=1, skew=0.05)
    assert flat.orders() == [(0, 0, 0.48, 5.0, 0), (1, 0, 0.48, 5.0, 0)]   # ask 0.52 -> BUY Down 0.48
    long_up = q.build_ladder(0.5, 0.0, 250.0, 0.0, float("nan"), float("nan"), n_levels=1, skew=0.05)
    assert long_up.reservation == pytest.approx(0.475)
    assert long_up.orders() == [(0, 0, 0.45, 5.0, 0), (0, 1, 0.5, 5.0, 0)]  # holds Up: ask is a SELL of Up
    reduce = q.build_ladder(0.5, 0.0, 0.0, 20.0, 0.4, 0.6, n_levels=2, reduce_only=True)
    assert all(side == 1 and token == 1 for token, side, *_ in reduce.orders()) and reduce.count == 2
    with pytest.raises(ValueError):
        q.build_ladder(1.5, 0.0, 0.0, 0.0, 0.4, 0.6)
    with pytest.raises(ValueError):
        q.build_ladder(0.5, 0.0, 0.0, 0.0, 0.4, 0.6, tick=0.03)
    with pytest.raises(ValueError):
        q.build_ladder(0.5, float("nan"), 0.0, 0.0, 0.4, 0.6)


def test_ladder_post_only_pushes_back_from_book():
    # fair 0.60 but the book is 0.50/0.52: our bid must stay below 0.52, ask above 0.50
    lad = q.build_ladder(0.60, 0.0, 0.0, 0.0, 0.50, 0.52, n_levels=2, half_spread=0.01)
    bids = [p for t, s, p, *_ in lad.orders() if (t, s) == (0, 0)]
    assert bids == [0.51]                 # both levels pushed to 0.51; the duplicate level 1 is dropped
    asks = [round(1 - p, 10) for t, s, p, *_ in lad.orders() if (t, s) == (1, 0)]
    assert asks == [0.61, 0.62]           # asks (as BUY Down at 1 - ask) are untouched by a lower book


# ------------------------------------------------------------------ risk
LIM = dict(max_order_size=100.0, max_position=500.0, max_capital=1000.0, max_open_orders=4,
           price_band=0.15, stale_ms=500)


@st.composite
def order_inputs(draw):
    return dict(
        mode=draw(st.integers(-1, 4)),
        token=draw(st.sampled_from([0, 1, 0, 1, 2])),
        side=draw(st.sampled_from([0, 1, 0, 1, -1])),
        price=draw(st.one_of(st.floats(-0.1, 1.1), st.sampled_from([0.01, 0.5, 0.99, float("nan")]))),
        size=draw(st.one_of(st.floats(-1.0, 300.0), st.sampled_from([5.0, 100.0, float("inf")]))),
        fair=draw(st.one_of(st.floats(0.0, 1.0), st.just(float("nan")))),
        inv_up=draw(st.sampled_from([0.0, 10.0, 450.0, 500.0, 600.0])),
        inv_down=draw(st.sampled_from([0.0, 10.0, 450.0, 500.0])),
        open_orders=draw(st.integers(0, 6)),
        reserved_capital=draw(st.floats(0.0, 1200.0)),
        data_age_ms=draw(st.integers(0, 2000)),
        pending_up=draw(st.sampled_from([0.0, 20.0, 100.0])),
        pending_down=draw(st.sampled_from([0.0, 20.0])),
    )


def _call(fn, o, **lim):
    return fn(o["mode"], o["token"], o["side"], o["price"], o["size"], o["fair"], o["inv_up"], o["inv_down"],
              o["open_orders"], o["reserved_capital"], o["data_age_ms"], lim["max_order_size"],
              lim["max_position"], lim["max_capital"], lim["max_open_orders"], lim["price_band"],
              lim["stale_ms"], o["pending_up"], o["pending_down"], lim.get("tick", 0.0), lim.get("min_size", 0.0))


@settings(max_examples=600, deadline=None)
@given(order_inputs())
def test_risk_compiled_equals_reference_and_never_passes_over_limit(o):
    code = _call(q.check_order, o, **LIM)
    assert code == _call(R.check_order, o, **LIM)
    checker = q.RiskChecker(LIM["max_order_size"], LIM["max_position"], LIM["max_capital"],
                            LIM["max_open_orders"], LIM["price_band"], LIM["stale_ms"])
    assert code == checker.check(o["mode"], o["token"], o["side"], o["price"], o["size"], o["fair"], o["inv_up"],
                                 o["inv_down"], o["open_orders"], o["reserved_capital"], o["data_age_ms"],
                                 o["pending_up"], o["pending_down"])
    if code != RiskReason.OK:
        return
    held = o["inv_up"] if o["token"] == 0 else o["inv_down"]
    pending = o["pending_up"] if o["token"] == 0 else o["pending_down"]
    assert o["mode"] in (0, 1, 2) and o["token"] in (0, 1) and o["side"] in (0, 1)
    assert 0.0 < o["price"] < 1.0 and 0.0 < o["size"] <= LIM["max_order_size"] + 1e-9
    assert o["open_orders"] + 1 <= LIM["max_open_orders"]
    if o["side"] == 0:
        assert o["mode"] == RiskMode.NORMAL
        assert held + pending + o["size"] <= LIM["max_position"] + 1e-9
        assert o["reserved_capital"] + o["price"] * o["size"] <= LIM["max_capital"] + 1e-9
        assert o["data_age_ms"] <= LIM["stale_ms"] and math.isfinite(o["fair"])
    else:
        assert o["size"] <= held + 1e-9
    if math.isfinite(o["fair"]):
        fair_tok = o["fair"] if o["token"] == 0 else 1 - o["fair"]
        assert abs(o["price"] - fair_tok) <= LIM["price_band"] + 1e-9


@SET
@given(st.integers(-1, 4), st.floats(0, 700), st.floats(0, 700), st.integers(0, 8), st.floats(0, 1500),
       st.integers(0, 2000), st.floats(0, 100), st.floats(0, 100))
def test_portfolio_compiled_equals_reference(mode, up, down, oo, cap, age, pu, pd):
    args = (mode, up, down, oo, cap, age, 500.0, 1000.0, 4, 500, pu, pd)
    code = q.check_portfolio(*args)
    assert code == R.check_portfolio(*args)
    if code == RiskReason.OK:
        assert up + pu <= 500 + 1e-9 and down + pd <= 500 + 1e-9 and cap <= 1000 + 1e-9 and oo <= 4 and age <= 500


def test_every_reason_code_is_reachable_and_named():
    base = dict(mode=0, token=0, side=0, price=0.5, size=10.0, fair=0.5, inv_up=0.0, inv_down=0.0,
                open_orders=0, reserved_capital=0.0, data_age_ms=0, pending_up=0.0, pending_down=0.0)
    cases = {
        RiskReason.OK: {},
        RiskReason.MODE_HALT: dict(mode=3),
        RiskReason.BAD_MODE: dict(mode=9),
        RiskReason.BAD_ORDER: dict(token=5),
        RiskReason.BAD_PRICE: dict(price=1.0),
        RiskReason.BAD_SIZE: dict(size=0.0),
        RiskReason.MODE_REDUCE_ONLY: dict(mode=1),
        RiskReason.MODE_FLATTEN: dict(mode=2),
        RiskReason.ORDER_SIZE: dict(size=101.0),
        RiskReason.POSITION: dict(inv_up=495.0),
        RiskReason.CAPITAL: dict(reserved_capital=996.0),
        RiskReason.OPEN_ORDERS: dict(open_orders=4),
        RiskReason.STALE: dict(data_age_ms=501),
        RiskReason.PRICE_BAND: dict(price=0.7),
    }
    assert set(cases) == set(RiskReason)
    for want, over in cases.items():
        o = {**base, **over}
        assert _call(q.check_order, o, **LIM) == want, want
        assert _call(R.check_order, o, **LIM) == want, want
    # reducing orders pass in FLATTEN even on stale data; off-grid prices are refused when tick is set
    o = {**base, "mode": 2, "side": 1, "inv_up": 20.0, "data_age_ms": 10_000}
    assert _call(q.check_order, o, **LIM) == RiskReason.OK
    assert _call(q.check_order, {**base, "price": 0.505}, **LIM, tick=0.01) == RiskReason.BAD_PRICE
    assert _call(q.check_order, {**base, "size": 2.0}, **LIM, min_size=5.0) == RiskReason.BAD_SIZE


@SET
@given(tick_paths(max_n=150), st.sampled_from([0.0, 4.0]))
def test_price_path_batch_equals_reference_and_parts(path, nu):
    ts, px = path
    sig, feat, p = q.price_path_batch(ts, px, (30.0, 600.0), 1000, 1e-12, nu, 0.001)
    rsig, rfeat, rp = R.price_path_batch(ts, px, (30.0, 600.0), 1000, 1e-12, nu, 0.001)
    _close(sig, rsig)
    _close(feat, rfeat)
    _close(p, rp)
    _close(sig, q.ewma_vol_batch(ts, px, (30.0, 600.0), 1000, 1e-12))
    _close(feat, q.return_features_batch(ts, px))
    ok = ~np.isnan(p)
    assert np.all((p[ok] >= 0.001) & (p[ok] <= 0.999))


@SET
@given(tick_paths(max_n=150), st.sampled_from([0.0, 5.0]), st.booleans())
def test_tick_pricer_equals_reference(path, nu, explicit_open):
    ts, px = path
    a, b = q.TickPricer(nu=nu), R.TickPricer(nu=nu)
    if explicit_open:
        a.set_hour_open(T0, 50_000.0)
        b.set_hour_open(T0, 50_000.0)
    for t, p in zip(ts.tolist(), px.tolist()):
        S = p * 1.00001 if t % 2 else float("nan")           # mid given, or priced at the trade
        x, y = a.update(t, p, S), b.update(t, p, S)
        assert a.ready == b.ready
        assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-9)
        if not math.isnan(x):
            assert 0.001 <= x <= 0.999 and a.p_unc == pytest.approx(b.p_unc, rel=1e-9, abs=1e-15)
            assert a.tau_s == b.tau_s and 0.0 < a.tau_s <= 3600.0
    assert a.n_bad == b.n_bad
    _close(a.features.values(), b.features.values())
