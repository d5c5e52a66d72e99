"""The compiled background flow (flowcore.pyx, ``BackgroundAgents`` ``fast=True``: the touch makers'
pass, the noise/informed takers, the snipers' scan) against its plain-Python reference twins
(``BackgroundAgents._makers_touch`` / ``_takers`` and ``LatencySniper.scan``, ``fast=False``).

Two engines, two agent sets with the same seeds, stepped at the same times on a REAL BTC hour
(2025-05-22 14:00Z, the backtest's klines + seeded bridge), while an extra owner places and cancels
orders that cross the makers (fills, post-only rejects, levels eaten, deep levels becoming the
touch, quotes the snipers find stale): every 50 steps the engines' whole state (books, accounts,
every order and id, the id generator's random state, trades) and the agents' random states,
counters and the snipers' pending shots must be equal.
"""
from __future__ import annotations

import dataclasses
import random

import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.engine import BUY, SELL, Exchange, Order
from hourmm_core.sim.polymarket.flowcore import TouchMakers
from tests.conftest import real_ticks

H = 1_747_922_400_000          # 2025-05-22 14:00Z
_ORDER_FIELDS = [f.name for f in dataclasses.fields(Order) if f.name != "trade_ids"]


def _state(ex: Exchange) -> tuple:
    books = {cid: ({p: list(q) for p, q in m.bids.items()}, {p: list(q) for p, q in m.asks.items()},
                   list(m.bid_prices), list(m.ask_prices)) for cid, m in ex.markets.items()}
    accts = {o: (a.usdc_u, a.usdc_res_u, dict(a.tok_u), dict(a.tok_res_u)) for o, a in ex.accounts.items()}
    # every field of every order (values and types: booktop.new_order builds them without the dataclass
    # __init__); trade_ids below, once the deferred records are built
    orders = [(oid, tuple((getattr(o, f), type(getattr(o, f))) for f in _ORDER_FIELDS)) for oid, o in ex.orders.items()]
    live = {ow: list(d) for ow, d in ex._live.items()}
    trades = list(ex.trades_log)          # builds every deferred record (flowcore.LazyTrade) first
    trade_ids = {oid: list(o.trade_ids) for oid, o in ex.orders.items()}   # ids in their places
    per_owner = {ow: list(v) for ow, v in ex._owner_trades.items()}
    return (books, accts, orders, live, ex._seq, ex._rng.getstate(), dict(ex.book_version),
            trades, trade_ids, per_owner, ex.fees_u)


def _read_some(rng: random.Random, ex0: Exchange, ex1: Exchange) -> None:
    """Read parts of the trade records the way in-process readers do (one owner's new records, one
    order's trade ids) on both engines: builds some deferred records out of match order on the
    compiled one; what is read must be what the eager reference made."""
    n = ex0.trade_count("me")
    assert n == ex1.trade_count("me") and len(ex0._trades) == len(ex1._trades)
    k = rng.randint(0, n)
    assert ex0.trades_since("me", k) == ex1.trades_since("me", k)
    if rng.random() < 0.3:
        oid = rng.choice(list(ex1.orders))
        assert ex0.order(oid).trade_ids == ex1.order(oid).trade_ids


def _agents_state(ag: BackgroundAgents) -> tuple:
    s = ag.stats
    sn = ag.sniper
    return (ag.rng.getstate(), sn.rng.getstate(), s.maker_quotes, s.maker_rejects, s.noise_trades,
            s.informed_trades, s.taker_rejects, s.sniper_trades, dict(sn.pending), sn.shots, sn.misses,
            sn.size_taken)


@pytest.fixture(scope="module")
def path() -> PricePath:
    ts, px = real_ticks(H - HOUR_MS, H + 2 * HOUR_MS)
    from types import SimpleNamespace
    return PricePath(SimpleNamespace(ts_ms=ts, price=px))


def _pair(path: PricePath, seed: int, cfg: AgentConfig | None, listener: bool = False):
    out = []
    for fast in (True, False):
        ex = Exchange(seed=seed, fee=CRYPTO_FEES)
        m = ex.list_market("c", "U", "D", H, H + HOUR_MS, tick_size=0.01, min_size=5.0)
        ex.deposit("me", 50_000.0)
        ex.deposit("poor", 40.0)
        ex.compiled_place = fast      # the reference engine places through Exchange._place_ref only
        if listener:
            ex.add_listener(lambda ev: None)
        ag = BackgroundAgents(ex, path, seed=seed, config=cfg, targets=("me",), fast=fast)
        out.append((ex, m, ag))
    return out


def _interfere(rng: random.Random, pair, now: int) -> None:
    """The same order (or cancel) on both engines: crossing BUY/SELLs at the touch and through it
    (fills against the makers), post-only quotes, orders of a poor owner, cancels."""
    kind = rng.random()
    (ex0, m0, _), (ex1, m1, _) = pair
    if kind < 0.55:
        who = "me" if rng.random() < 0.85 else "poor"
        tok = rng.choice(("U", "D"))
        b, a = ex0.best(tok)
        assert (b, a) == ex1.best(tok)
        ref = a if a is not None else 0.5
        px = round(min(0.99, max(0.01, ref + rng.choice((-0.02, -0.01, 0.0, 0.0, 0.01, 0.03)))), 2)
        size = round(rng.choice((rng.uniform(5.0, 40.0), rng.uniform(100.0, 900.0))), 2)
        otype = rng.choice(("GTC", "GTC", "FAK"))
        po = otype == "GTC" and rng.random() < 0.3
        side = BUY
        if rng.random() < 0.2 and ex0.token_available(who, tok) >= size:
            side = SELL
        r0 = ex0.place(who, tok, side, px, size, otype, post_only=po, now_ms=now)
        r1 = ex1.place(who, tok, side, px, size, otype, post_only=po, now_ms=now)
        assert (r0.order_id, r0.status, r0.error_msg, r0.fills) == (r1.order_id, r1.status, r1.error_msg, r1.fills)
    elif kind < 0.8:
        live = [o.order_id for o in ex0.open_orders("me")]
        if live:
            oid = rng.choice(live)
            assert ex0.cancel("me", oid, now) == ex1.cancel("me", oid, now)


@pytest.mark.parametrize("seed,cfg,listener", [
    (3, None, False),                                    # the calibrated defaults (snipers on)
    (8, AgentConfig(n_makers=5, maker_levels=3, maker_level_step=0.02, maker_refill_ms=500), False),
    (5, None, True),                                     # a listener attached: the engine's own methods
    (9, AgentConfig.legacy(sniper_share=0.7, noise_takers_per_min=30.0, informed_per_min=12.0), False),
])
def test_compiled_flow_equals_python_reference(path, seed, cfg, listener):
    pair = _pair(path, seed, cfg, listener)
    rng = random.Random(seed * 31 + 7)
    (ex0, m0, ag0), (ex1, m1, ag1) = pair
    assert ag1._touch is None and (isinstance(ag0._touch, TouchMakers) or ag0.cfg.maker_style == "legacy")
    steps = 0
    tops_seen: set = set()
    deferred = False
    # the makers' first quotes before the open, then 25 minutes of the hour and its last 40 seconds
    times = [H - 1] + list(range(H, H + 25 * 60_000, 1000)) + list(range(H + HOUR_MS - 40_000, H + HOUR_MS, 1000))
    for t in times:
        ag0.step(t, [m0])
        ag1.step(t, [m1])
        for _ in range(rng.choice((0, 0, 1, 2))):
            _interfere(rng, pair, t)
        deferred = deferred or any(type(x) is not dict for x in ex0._trades[-5:])
        _read_some(rng, ex0, ex1)
        for ex, m in ((ex0, m0), (ex1, m1)):     # the compiled book top (booktop.pyx) vs Exchange._top
            top = (ex._top(m, True), ex._top(m, False))
            want = tuple(None if p is None else p / 10_000 for p in top)
            assert ex.best_pair(m)[0] == want == ex.best("U")
            tops_seen.add(top)
        steps += 1
        if steps % 50 == 0:
            assert _state(ex0) == _state(ex1)
            assert _agents_state(ag0) == _agents_state(ag1)
    assert _state(ex0) == _state(ex1)
    assert _agents_state(ag0) == _agents_state(ag1)
    ex0.check_invariants()
    # the comparison must have exercised the pass: quotes, rejects, fills against makers, cancels
    s = ag0.stats
    assert s.maker_quotes > 300 and s.noise_trades > 10 and s.informed_trades > 0 and ag0.sniper.shots > 0
    assert any(o.owner == "me" and o.filled_u > 0 for o in ex0.orders.values())
    assert len(tops_seen) > 20
    # the compiled engine deferred records (never with a listener: the live server's events need them)
    assert deferred == (not listener) and all(type(t) is dict for t in ex1._trades)
    if ag0._touch is not None:
        assert s.maker_rejects > 0
        assert sum(1 for o in ex0.orders.values() if o.owner.startswith("agent-maker") and o.status == "CANCELED") > 50


def test_compiled_taker_buy_equals_place_fak():
    """flowcore's FAK BUY (what its takers send) against ``Exchange.place(..., BUY, "FAK")`` on two
    engines fed the same seeded sequence: resting BUYs and SELLs of several owners on both tokens
    (transfers and mints), partial and multi-level fills, takers that cannot cross, bad ticks, a
    taker short of USDC, GTD makers. Synthetic order flow on purpose: the shapes matter, not prices."""
    from hourmm_core.sim.polymarket.flowcore import place_taker

    engines = [Exchange(seed=13, fee=CRYPTO_FEES), Exchange(seed=13, fee=CRYPTO_FEES)]
    for ex in engines:
        ex.list_market("c", "u", "d", 0, HOUR_MS, tick_size=0.01, min_size=5.0)
        for o in ("m0", "m1", "taker"):
            ex.deposit(o, 1_000_000.0)
        ex.deposit("poor", 3.0)
    rng = random.Random(6)
    took = multi = 0
    for step in range(2500):
        now = step * 100
        tok = rng.choice(("u", "d"))
        kind = rng.random()
        if kind < 0.6:
            owner = rng.choice(("m0", "m1"))
            side = BUY
            if rng.random() < 0.3 and engines[0].token_available(owner, tok) >= 5:
                side = SELL
            px = round(rng.randint(2, 98) / 100.0, 2)
            size = round(rng.uniform(5.0, 80.0), 2)
            otype, exp = ("GTD", now + rng.randint(1, 3000)) if rng.random() < 0.1 else ("GTC", 0)
            rs = [ex.place(owner, tok, side, px, size, otype, post_only=True, expiration_ms=exp, now_ms=now)
                  for ex in engines]
            assert (rs[0].order_id, rs[0].error_msg) == (rs[1].order_id, rs[1].error_msg)
        else:
            who = rng.choice(("taker", "taker", "taker", "poor"))
            px = rng.choice((0.99, round(rng.randint(1, 99) / 100.0, 2), 0.555))
            size = round(rng.choice((rng.uniform(1.0, 40.0), rng.uniform(100.0, 400.0))), 2)
            fills = place_taker(engines[0], who, tok, px, size, now)
            r = engines[1].place(who, tok, BUY, px, size, "FAK", now_ms=now)
            assert fills == (r.fills if r.ok else None)
            took += bool(fills)
            multi += bool(fills) and len(fills) > 1
        if step % 101 == 0:
            assert _state(engines[0]) == _state(engines[1])
            assert engines[0].trades_log == engines[1].trades_log
    assert _state(engines[0]) == _state(engines[1])
    assert engines[0].trades_log == engines[1].trades_log
    assert [m.last_trade_price for m in engines[0].markets.values()] == \
        [m.last_trade_price for m in engines[1].markets.values()]
    engines[0].check_invariants()
    kinds = {f["maker_orders"][0]["side"] for f in engines[0].trades_log}
    assert took > 100 and multi > 10 and kinds == {BUY, SELL}


def test_compiled_gauss_equals_random_gauss():
    """flowcore's C ``Random.gauss`` (the makers' view noise, the takers' sizes) against random.py's own
    on the same seeded streams: the same numbers and the same state after (draws and the spare normal),
    with other draws interleaved so both halves of a pair are used. A Random subclass takes its own method."""
    from hourmm_core.sim.polymarket.flowcore import gauss_c

    for seed in (0, 5, 2**40):
        a, b = random.Random(seed), random.Random(seed)
        for i in range(100_000):
            mu, sd = ((0.0, 0.37), (0.5, 1.0), (-2.0, 1e-3), (0.0, 0.0))[i % 4]
            assert gauss_c(a, mu, sd) == b.gauss(mu, sd)
            if i % 7 == 0:
                assert a.random() == b.random()
        assert a.getstate() == b.getstate() and a.gauss_next == b.gauss_next

    class Fixed(random.Random):
        def gauss(self, mu=0.0, sigma=1.0):
            return 42.0

    assert gauss_c(Fixed(1), 0.0, 1.0) == 42.0


def test_compiled_order_record_equals_the_dataclass():
    """booktop.new_order (the compiled paths' new order) against ``Order(...)`` with the same arguments:
    equal records, field by field with the same types, and a fresh ``trade_ids`` list each."""
    from hourmm_core.sim.polymarket.booktop import make_order

    rng = random.Random(3)
    for i in range(2000):
        up, post_only = rng.random() < 0.5, rng.random() < 0.5
        side = rng.choice((BUY, SELL))
        otype = rng.choice(("GTC", "GTD", "FAK", "FOK"))
        pu, su, seq = rng.randint(1, 9999), rng.randint(1, 10**9), rng.randint(0, 10**12)
        exp_ms, t_ms, res = rng.choice((0, rng.randint(1, 2**45))), rng.randint(0, 2**45), rng.choice((0, pu * su))
        a = make_order(f"0x{i:x}", "own", "cid", "tok", up, side, pu, su, otype, post_only, exp_ms, t_ms, seq, res)
        b = Order(f"0x{i:x}", "own", "cid", "tok", "Up" if up else "Down", side, pu, su, otype, post_only, exp_ms,
                  t_ms, seq, res_usdc_u=res, is_up=up)
        assert a == b
        assert [type(getattr(a, f.name)) for f in dataclasses.fields(Order)] == \
            [type(getattr(b, f.name)) for f in dataclasses.fields(Order)]
    c = make_order("x", "o", "c", "t", True, BUY, 1, 1, "GTC", True, 0, 0, 1, 0)
    d = make_order("y", "o", "c", "t", True, BUY, 1, 1, "GTC", True, 0, 0, 1, 0)
    assert c.trade_ids == [] and c.trade_ids is not d.trade_ids
