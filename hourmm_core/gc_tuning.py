"""Garbage-collector settings for the latency-critical processes (containers A and B).

Why
---
CPython's cyclic collector stops the whole process while it runs. A full (generation-2)
collection walks every tracked object of the process: with aiohttp, numpy, the Polymarket
client and eth-account loaded that is hundreds of thousands of objects, and
benchmarks/test_bench_hops.py measured single full collections of 50-170 ms in the pricer,
the venue simulator and the trader (``gc.callbacks`` stamps), each one a lost race when it
lands between a Binance frame and our cancel. Almost all of those objects are created at
start-up (modules, configuration, compiled tables) and live for the whole process.

What
----
:func:`settle_gc` (called by the runners once the service is started): one full collection,
then ``gc.freeze()`` moves every surviving object to the permanent generation, which no
later collection scans (CPython's documented use of ``gc.freeze``). Cycles created later are
still collected; only objects that existed at start-up are exempt. The thresholds stay
CPython's (700, 10, 10) unless given: the hop benchmark measured (7000, 20, 20) in the trader
as fewer but longer pauses (young collections 0.9 ms p50 / 1.9 ms max instead of 0.2 ms, one
middle collection of 8.8 ms instead of 1-1.7 ms), i.e. a worse worst case.
"""
from __future__ import annotations

import gc
from typing import Any


def settle_gc(thresholds: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Collect once, freeze the survivors, set ``thresholds`` when given. Returns what was done
    (for a log line): objects frozen and the thresholds. Raises ValueError on a bad threshold."""
    if thresholds is not None and (len(thresholds) != 3 or any(
            not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in thresholds)):
        raise ValueError(f"gc thresholds must be three positive integers, got {thresholds!r}")
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    return {"frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()}
