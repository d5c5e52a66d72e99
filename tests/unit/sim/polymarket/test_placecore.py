"""The compiled ``Exchange.place`` (:func:`hourmm_core.sim.polymarket.placecore.place_fast`, used when
nobody listens) against its plain-Python reference twin :meth:`Exchange._place_ref`.

Two engines with the same seed, one placing through the compiled path (``compiled_place=True``), one
through the reference only, fed the same seeded order flow: BUYs and SELLs of both tokens, GTC, GTD
(some expiring), FOK and FAK, post-only on and off, crossing and resting orders (transfers, mints,
merges), orders the venue rejects for balance, post-only crossing, FOK/FAK, bad ticks, sizes under the
minimum, non-float numbers, a closed market; cancels in between. Every result and, every few
operations, the engines' whole state and trade records must be equal. Synthetic order flow on purpose
(the shapes of the requests matter, not prices); test_flowcore.py runs the same comparison inside a
real hour's background flow.
"""
from __future__ import annotations

import random

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import CRYPTO_FEES
from hourmm_core.sim.polymarket import engine as engine_mod
from hourmm_core.sim.polymarket.engine import BUY, SELL, Exchange
from tests.unit.sim.polymarket.test_flowcore import _state


def _res(r) -> tuple:
    return (r.order_id, r.status, r.error_msg, r.fills, r.making_amount, r.taking_amount, r.trade_ids)


def test_compiled_place_equals_reference_place(monkeypatch):
    calls = {"fast": 0, "handed_back": 0}
    real = engine_mod.place_fast

    def counting(*a):
        r = real(*a)
        calls["fast" if r is not None else "handed_back"] += 1
        return r

    monkeypatch.setattr(engine_mod, "place_fast", counting)
    engines = [Exchange(seed=21, fee=CRYPTO_FEES), Exchange(seed=21, fee=CRYPTO_FEES)]
    engines[1].compiled_place = False
    for ex in engines:
        ex.list_market("c", "u", "d", 0, HOUR_MS, tick_size=0.01, min_size=5.0)
        ex.list_market("c2", "u2", "d2", 0, HOUR_MS, tick_size=0.001, min_size=5.0)
        for o in ("a", "b", "me"):
            ex.deposit(o, 200_000.0)
        ex.deposit("poor", 25.0)
    rng = random.Random(11)
    errors: set[str] = set()
    kinds: set[str] = set()
    for step in range(4000):
        now = step * 50
        if step == 3500:
            for ex in engines:
                ex.stop_market("c2", now)
        op = rng.random()
        if op < 0.8:
            who = rng.choice(("a", "b", "me", "me", "poor"))
            tok = rng.choice(("u", "d", "u", "d", "u2", "d2"))
            side = BUY
            if rng.random() < 0.35:
                side = SELL
            px = rng.choice((round(rng.randint(1, 99) / 100.0, 2), round(rng.randint(30, 70) / 100.0, 2),
                             0.555, 0.5, 1.0, 0.0))
            if rng.random() < 0.25:                                # at the opposite touch (post-only crosses)
                b, a = engines[0].best(tok)
                px = (a if side == BUY else b) or px
            if rng.random() < 0.02:
                px = 1                                             # an int price: the reference's path
            size = round(rng.choice((rng.uniform(5.0, 60.0), rng.uniform(100.0, 800.0), 2.0, 4.999)), 2)
            otype = rng.choice(("GTC", "GTC", "GTC", "GTD", "FOK", "FAK"))
            po = rng.random() < 0.4
            exp = now + rng.choice((-10, 0, 1, 200, 5000)) if otype == "GTD" else 0
            rs = [ex.place(who, tok, side, px, size, otype, post_only=po, expiration_ms=exp, now_ms=now)
                  for ex in engines]
            assert _res(rs[0]) == _res(rs[1]), (step, who, tok, side, px, size, otype, po)
            errors.add(rs[0].error_msg)
        else:
            live = [o.order_id for o in engines[0].open_orders()]
            if live:
                oid = rng.choice(live)
                owner = engines[0].orders[oid].owner
                assert engines[0].cancel(owner, oid, now) == engines[1].cancel(owner, oid, now)
        if step % 25 == 0:
            assert _state(engines[0]) == _state(engines[1]), step
            assert engines[0]._gtd == engines[1]._gtd
            assert engines[0].trades_log == engines[1].trades_log
    for ex in engines:
        ex.check_invariants()
    assert _state(engines[0]) == _state(engines[1])
    assert engines[0].trades_log == engines[1].trades_log and engines[0]._gtd == engines[1]._gtd
    for t in engines[0].trades_log:
        for e in t["maker_orders"]:
            kinds.add((t["side"], e["side"], t["asset_id"] == e["asset_id"]))
    # the flow exercised the compiled path, the hand-backs and the venue's answers
    assert calls["fast"] > 800 and calls["handed_back"] > 300, calls
    assert {"", "not enough balance / allowance", "invalid post-only order: order crosses book"} <= errors
    assert any(e.startswith("order couldn't be fully filled") for e in errors)
    assert any(e.startswith("no orders found to match with FAK") for e in errors)
    assert any(e.startswith("order 0x") for e in errors)                 # tick / size rejects
    assert len(kinds) >= 4 and sum(1 for o in engines[0].orders.values() if o.order_type == "GTD") > 50
