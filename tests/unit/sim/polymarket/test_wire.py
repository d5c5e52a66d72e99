"""The compiled wire strings (hourmm_core/sim/polymarket/wire.pyx) against their plain-Python reference
twins (:func:`hourmm_core.sim.polymarket.orders.sim_id_ref` with hashlib, :func:`orders.fmt_ref`): the
same strings, so the engine's order and trade ids (and everything ordered by them) and its decimal
strings do not change. Synthetic inputs on purpose: the ids only depend on the seed, the sequence
number and a float of the engine's random stream; the decimals on a float."""
from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from hourmm_core.sim.polymarket import wire
from hourmm_core.sim.polymarket.engine import Exchange
from hourmm_core.sim.polymarket.orders import _fmt, fmt_ref, sim_id_ref

EDGE_DRAWS = (0.0, 5e-324, 1e-5, 1e-16, 0.1, 1 / 3, 0.5, 0.9999999999999999, 1e-300, 2.5e-7, 123456.789)


@pytest.mark.parametrize("seed", [0, 7, -3, 2**40, "s"])
def test_ids_match_the_python_reference(seed):
    rng = random.Random(17)
    oh, th = wire.id_head("order", seed), wire.id_head("trade", seed)
    draws = list(EDGE_DRAWS) + [rng.random() for _ in range(3000)] + [rng.random() * 10 ** rng.randint(-12, 3)
                                                                      for _ in range(500)]
    for i, d in enumerate(draws):
        seq = rng.choice((i, rng.randint(0, 10**15), rng.choice((-1, -10, -(2**63), 2**63 - 1, 10**18, 9, 10))))
        assert wire.order_id(oh, seq, d) == sim_id_ref("order", seed, seq, d)
        assert wire.trade_id(th, seq, d) == sim_id_ref("trade", seed, seq, d)
    seqs = np.arange(len(draws), dtype=np.int64)
    assert wire.order_ids(oh, seqs, np.array(draws)) == [sim_id_ref("order", seed, int(s), d)
                                                        for s, d in zip(seqs, draws)]


def test_sha256_across_block_boundaries():
    """Message lengths 0..200 bytes cover the one- and two-block paddings (55/56/64 bytes)."""
    for n in range(0, 150):
        head = ("h" * n + ":").encode()
        want = "0x" + hashlib.sha256(head + b"42:0.25").hexdigest()
        assert wire.order_id(head, 42, 0.25) == want
        tid = "t" * (n + 40)
        assert wire.tx_hash(tid) == "0x" + hashlib.sha256(tid.encode()).hexdigest()
    with pytest.raises(ValueError):
        wire.order_id(b"x" * 200, 1, 0.5)
    with pytest.raises(ValueError):
        wire.order_ids(b"o:", np.arange(3), np.zeros(2))


def test_engine_ids_are_the_reference_ids():
    """An engine's order, trade and transaction ids are what the reference formula gives for its
    seed, sequence and its own random stream replayed."""
    ex = Exchange(seed=5)
    ex.list_market("c", "u", "d", 0, 3_600_000, tick_size=0.01, min_size=5.0)
    ex.deposit("a", 1000.0)
    ex.deposit("b", 1000.0)
    r1 = ex.place("a", "u", "BUY", 0.5, 10.0, now_ms=1)
    r2 = ex.place("b", "d", "BUY", 0.5, 10.0, now_ms=2)      # mints against r1
    replay = random.Random(5)
    assert r1.order_id == sim_id_ref("order", 5, 1, replay.random())
    assert r2.order_id == sim_id_ref("order", 5, 3, replay.random())
    tr = ex.trades_log[-1]
    assert tr["id"] == sim_id_ref("trade", 5, 5, replay.random())
    assert tr["transaction_hash"] == "0x" + hashlib.sha256(tr["id"].encode()).hexdigest()
    assert ex.place_maker("a", "u", 0.3, 10.0, now_ms=3) == sim_id_ref("order", 5, 6, replay.random())


def test_decimal_strings_match_the_python_reference():
    rng = random.Random(23)
    xs = [0.0, -0.0, 1.0, -1.0, 0.5, 0.52, 10.0, 12.5, 1e-7, 4e-7, 5e-7, 6e-7, -4e-7, 0.0000005, 1e15, 1e22,
          1e300, -1e300, 2.675, 0.1 + 0.2, float("inf"), float("-inf"), float("nan"), 5e-324, 123456789.0000004]
    xs += [rng.uniform(-1, 1) * 10 ** rng.randint(-8, 12) for _ in range(20000)]
    xs += [rng.randint(0, 10**6) / d for d in (100, 10_000, 1_000_000) for _ in range(2000)]
    for x in xs:
        assert wire.fmt_decimal(x) == fmt_ref(x), x
    assert _fmt is wire.fmt_decimal
    assert [_fmt(v) for v in (3, True, 2**60)] == [fmt_ref(v) for v in (3, True, 2**60)]
