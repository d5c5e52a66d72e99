"""hourmm_core.gc_tuning.settle_gc: start-up objects frozen out of every later collection."""
from __future__ import annotations

import gc

import pytest

from hourmm_core.gc_tuning import settle_gc


@pytest.fixture
def restore_gc():
    th = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*th)


def test_freezes_what_lives_and_keeps_cpython_thresholds(restore_gc):
    th = gc.get_threshold()
    keep = [[i] for i in range(1000)]          # tracked containers alive at "start-up"
    out = settle_gc()
    assert out["frozen"] == gc.get_freeze_count() >= len(keep)
    assert out["thresholds"] == gc.get_threshold() == th
    in_generations = {id(o) for o in gc.get_objects()}   # what later collections scan
    assert all(gc.is_tracked(x) and id(x) not in in_generations for x in keep)


def test_later_cycles_are_still_collected(restore_gc):
    settle_gc()
    collected = []
    gc.callbacks.append(cb := lambda phase, info: collected.append(info["collected"]) if phase == "stop" else None)
    try:
        a: list = []
        a.append(a)                            # a cycle made after start-up
        del a
        gc.collect()
    finally:
        gc.callbacks.remove(cb)
    assert sum(collected) >= 1


def test_thresholds_given_are_set(restore_gc):
    assert settle_gc((1000, 11, 12))["thresholds"] == (1000, 11, 12)


@pytest.mark.parametrize("bad", [(0, 10, 10), (700, 10), (700.0, 10, 10), (True, 10, 10), (700, -1, 10)])
def test_bad_thresholds_are_refused_before_anything_changes(bad, restore_gc):
    n = gc.get_freeze_count()
    with pytest.raises(ValueError, match="three positive integers"):
        settle_gc(bad)                          # type: ignore[arg-type]
    assert gc.get_freeze_count() == n
