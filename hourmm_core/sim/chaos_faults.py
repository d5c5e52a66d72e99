"""The chaos run's fault catalogue and its seeded schedule (what is injected, the designed
reaction and its deadline); :mod:`hourmm_core.sim.chaos` runs it."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

#: Default speed of a chaos run: slow enough that restarts (seconds of wall time under
#: load) fit in the hour's ACTIVE phase, fast enough for CI (the hour takes 2 minutes).
CHAOS_SPEED = 30.0
#: Faults start this long after the first full hour begins (the trader is quoting by then)...
START_AFTER_MS = 2 * 60_000
#: ... and none starts later than this into the hour (WIND_DOWN begins at 50 min).
LAST_START_MS = 46 * 60_000
SETTLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: how it is injected and the reaction the design promises."""

    name: str
    injection: str
    reaction: str
    deadline_s: float     # wall seconds from the injection to the reaction
    design: str           # where the designed behaviour lives
    optional: bool = False  # needs a simulator hook that may not exist (then "not covered")


FAULTS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("market_ws_drop", "simulator closes the market WS (drop_ws=market)",
              "book unknown: no order sent; WS reconnects", 5.0,
              "trading/risk_engine.py on_market_ws, polymarket/ws_base.py back-off 0.5 s"),
    FaultKind("user_ws_drop", "simulator closes the user WS (drop_ws=user)",
              "HALT + cancel-all, 0 orders at the venue", 2.0,
              "trading/risk_engine.py on_user_ws (HALT latched), trader.py cancel-all"),
    FaultKind("rest_5xx", "next 3 CLOB REST calls answer 503",
              "absorbed (lookup, same order re-posted); quoting goes on", 10.0,
              "polymarket/executor.py TransientError + _find_order, trader.py reject/cancel_reject"),
    FaultKind("rest_429", "next 5 CLOB REST calls answer 429, Retry-After 1 s",
              "gate closed for Retry-After, nothing sent meanwhile", 10.0,
              "polymarket/executor.py RateGate (issue 13 bug 4)"),
    FaultKind("rest_425", "matching-engine restart: 425 x3, then post-only window",
              "back off, nothing sent meanwhile; then post-only", 10.0,
              "polymarket/executor.py restart gate (issue 13 V2 operations)", optional=True),
    FaultKind("placed_then_503", "next order is placed but answered 503",
              "order kept as unknown, then resolved from the venue", 10.0,
              "polymarket/executor.py UnknownOutcome (issue 13 V2 operations)", optional=True),
    FaultKind("pricer_stale", "Binance replay sends nothing for 5 s wall (pause_ms)",
              "snapshot stale: REDUCE_ONLY, no new exposure", 3.0,
              "pricing: STALE_THRESHOLD_MS 500; trading/risk_engine.py on_snapshot_stale"),
    FaultKind("pricer_dead", "container A SIGKILLed, restarted 4 s later",
              "no snapshot: REDUCE_ONLY, no new exposure", 4.0,
              "trading/snapshot_client.py max age 1500 ms; risk_engine.py on_snapshot_stale"),
    FaultKind("trader_kill9", "container B SIGKILLed, restarted at once (same journal)",
              "restart reconciles orders + inventory from journal/venue", 60.0,
              "trading/reconcile.py, trader.py reconcile on market select"),
    FaultKind("binance_malformed", "Binance replay inserts 3 malformed frames",
              "frames refused and counted; pricing goes on", 3.0,
              "binance/messages.py parse_frame + FrameStats"),
    FaultKind("binance_out_of_range", "Binance replay inserts a trade at 1e308 and one with id 2^62",
              "refused (price_absurd, bad_id); price, vol, feed unharmed", 3.0,
              "binance/ws_client.py PriceGuard + id watermark (issue 13 bugs 2, 3)"),
)}


def build_schedule(seed: int, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The seeded order of the faults and the pause (wall s) before each; same seed, same schedule."""
    names = list(FAULTS) if names is None else list(names)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown chaos fault(s): {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    rng = random.Random(seed)
    rng.shuffle(names)
    return [{"fault": n, "gap_s": round(rng.uniform(1.0, 3.0), 2)} for n in names]


@dataclass
class FaultRecord:
    """What happened to one scheduled fault."""

    fault: str
    gap_s: float
    status: str = "not run"              # not run | ok | FAIL | not covered
    injected_sim_ms: int | None = None
    react_ms: float | None = None        # wall ms from injection to the designed reaction
    recover_ms: float | None = None      # wall ms from injection to normal operation again
    observed: str = ""
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def check_deadline(self, what: str) -> None:
        """Record a problem if the designed reaction (``what``) came later than its fault's deadline."""
        deadline_s = FAULTS[self.fault].deadline_s
        if self.react_ms is not None and self.react_ms > deadline_s * 1000:
            self.problems.append(f"{what} after {self.react_ms:.0f} ms > {deadline_s:g} s")
