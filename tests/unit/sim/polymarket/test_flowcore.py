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

import random

import pytest

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.engine import BUY, SELL, Exchange
from hourmm_core.sim.polymarket.flowcore import TouchMakers
from tests.conftest import real_ticks

H = 1_747_922_400_000          # 2025-05-22 14:00Z


def _state(ex: Exchange) -> tuple:
    books = {cid: ({p: list(q) for p, q in m.bids.items()}, {p: list(q) for p, q in m.asks.items()},
                   list(m.bid_prices), list(m.ask_prices)) for cid, m in ex.markets.items()}
    accts = {o: (a.usdc_u, a.usdc_res_u, dict(a.tok_u), dict(a.tok_res_u)) for o, a in ex.accounts.items()}
    orders = [(oid, o.owner, o.token_id, o.side, o.price_u, o.size_u, o.filled_u, o.status, o.seq, o.res_usdc_u,
               o.created_ms, o.order_type, o.post_only, o.is_up) for oid, o in ex.orders.items()]
    live = {ow: list(d) for ow, d in ex._live.items()}
    return (books, accts, orders, live, ex._seq, ex._rng.getstate(), dict(ex.book_version),
            [t["id"] for t in ex.trades_log], ex.fees_u)


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
    # the makers' first quotes before the open, then 25 minutes of the hour and its last 40 seconds
    times = [H - 1] + list(range(H, H + 25 * 60_000, 1000)) + list(range(H + HOUR_MS - 40_000, H + HOUR_MS, 1000))
    for t in times:
        ag0.step(t, [m0])
        ag1.step(t, [m1])
        for _ in range(rng.choice((0, 0, 1, 2))):
            _interfere(rng, pair, t)
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
    if ag0._touch is not None:
        assert s.maker_rejects > 0
        assert sum(1 for o in ex0.orders.values() if o.owner.startswith("agent-maker") and o.status == "CANCELED") > 50
