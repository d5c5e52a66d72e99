"""Pluggable models of the backtest (in the style of hftbacktest's ``models/{fee,latency,queue}``).

The backtest (:mod:`hourmm_core.research.engine_backtest`) is one loop: the trader's own
:class:`~hourmm_core.trading.decision.DecisionCore` under the live execution rules, against
the simulator's matching engine. What varies is a small model object, never the loop:

* **Fee** - :class:`hourmm_core.fees.FeeSchedule`, the market's fee schedule (default the
  venue's crypto schedule :data:`~hourmm_core.fees.CRYPTO_FEES`). The engine charges it to
  every taker; makers pay nothing.
* **Latency** - :class:`LatencyModel`: ``entry_ms`` is the delay from the decision to the
  venue acting on an order or cancel (the order manager sees the order as *sent* in between,
  as live); ``response_ms`` the delay from the venue's answer (ack, reject, cancel result)
  to the trader seeing it. Units: ms of simulated time, integers >= 0; 0 means "at the
  decision instant" and ``ConstantLatency(0, 0)`` is the no-latency backtest; the default
  is ``ConstantLatency(150, 0)`` (``order_latency_ms``: our snapshot -> order at the venue,
  what lets latency snipers pick off stale quotes). Fills are
  booked in the research ledger at the venue's time; the trader's order manager learns of
  a fill ``response_ms`` later. (Negative values are refused: unlike hftbacktest, a
  rejection is a venue answer here, not a negative latency.)
* **Queue / fill** - price-time priority of the engine itself: our resting order fills
  only when a taker reaches it through the orders ahead of it at its price. There is no
  probabilistic queue model to choose.
* **Flow** - :class:`FlowModel`: who trades against our quotes. :class:`AgentFlow` is the
  simulator's :class:`~hourmm_core.sim.polymarket.agents.BackgroundAgents` (makers, noise
  takers, informed takers looking ahead on the real path, latency snipers reacting to the
  real BTC price on sub-second event times), with ``AgentConfig`` overrides.

Every model is a frozen dataclass so it pickles into the worker pool and appears in the
result JSON (``params.models``).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Protocol

from hourmm_core.fees import CRYPTO_FEES, FeeSchedule
from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents, PricePath
from hourmm_core.sim.polymarket.engine import Exchange, Market

# ----------------------------------------------------------------------------- latency
#: Default order-entry latency of the backtest (ms): our snapshot -> order/cancel at the venue,
#: what lets the latency snipers pick off stale quotes (the strategy issue's calibration).
DEFAULT_ENTRY_MS = 150

class LatencyModel(Protocol):
    """Order-entry and response delays in ms of simulated time (>= 0)."""

    def entry_ms(self, ts_ms: int, rng: random.Random) -> int: ...
    def response_ms(self, ts_ms: int, rng: random.Random) -> int: ...


@dataclass(frozen=True)
class ConstantLatency:
    """The same delay for every order: ``ConstantLatency(0, 0)`` acts at the decision instant."""

    entry: int = 0
    response: int = 0

    def __post_init__(self) -> None:
        if self.entry < 0 or self.response < 0:
            raise ValueError(f"latencies must be >= 0 ms, got entry={self.entry} response={self.response}")

    def entry_ms(self, ts_ms: int, rng: random.Random) -> int:
        return int(self.entry)

    def response_ms(self, ts_ms: int, rng: random.Random) -> int:
        return int(self.response)


@dataclass(frozen=True)
class SampledLatency:
    """Delays drawn (uniformly, with the backtest's seeded RNG) from measured samples, e.g.
    the journal's intent -> ack gaps of a live or simulated run."""

    entry: tuple[int, ...]
    response: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.entry or not self.response:
            raise ValueError("SampledLatency needs at least one entry and one response sample")
        if min(self.entry) < 0 or min(self.response) < 0:
            raise ValueError("latency samples must be >= 0 ms")
        object.__setattr__(self, "entry", tuple(int(x) for x in self.entry))
        object.__setattr__(self, "response", tuple(int(x) for x in self.response))

    def entry_ms(self, ts_ms: int, rng: random.Random) -> int:
        return self.entry[rng.randrange(len(self.entry))]

    def response_ms(self, ts_ms: int, rng: random.Random) -> int:
        return self.response[rng.randrange(len(self.response))]


# ----------------------------------------------------------------------------- flow
class Flow(Protocol):
    """A running counterparty flow of one backtest hour, driven on simulated time.

    ``step`` is the periodic flow at each decision time (makers requote, takers arrive);
    sub-second events (latency snipers' shots) are exposed as a due-time stream
    (``next_event_ms`` / ``fire``) that the loop interleaves with our own orders landing;
    ``react`` lets the flow see the book right after our orders landed (snipers aim)."""

    def step(self, now_ms: int, markets: Iterable[Market]) -> None: ...
    def next_event_ms(self) -> int | None: ...
    def fire(self, ts_ms: int) -> None: ...
    def react(self, ts_ms: int, markets: Iterable[Market]) -> None: ...


class FlowModel(Protocol):
    """Builds the counterparty flow of one hour on the engine; ``targets``: our owner id(s)."""

    def build(self, exchange: Exchange, path: PricePath, seed: int, targets: Iterable[str],
              fast: bool = True) -> Flow: ...


class AgentRun:
    """:class:`BackgroundAgents` (makers, noise/informed takers, latency snipers) as a :class:`Flow`."""

    def __init__(self, agents: BackgroundAgents, targets: Iterable[str]) -> None:
        self.agents = agents
        self.sniper = agents.sniper
        self.sniper.targets = set(targets)
        self.stats = agents.stats

    def step(self, now_ms: int, markets: Iterable[Market]) -> None:
        self.agents.step(now_ms, markets, snipe=False)   # the loop drives the snipers on event times

    def next_event_ms(self) -> int | None:
        return self.sniper.next_due()

    def fire(self, ts_ms: int) -> None:
        self.sniper.fire_due(ts_ms)

    def react(self, ts_ms: int, markets: Iterable[Market]) -> None:
        self.sniper.scan(ts_ms, markets)

    def snipes(self) -> dict[str, int]:
        return {"shots": self.sniper.shots, "misses": self.sniper.misses}


@dataclass(frozen=True)
class AgentFlow:
    """The simulator's background agents; ``overrides``: ``(AgentConfig field, value)`` pairs.
    ``sigma_truth``: per-sqrt-second sigma the agents treat as true (None: each hour's own realized
    vol, :meth:`PricePath.sigma_for`, as the loopback simulator does)."""

    overrides: tuple[tuple[str, Any], ...] = ()
    sigma_truth: float | None = None

    def __post_init__(self) -> None:
        known = set(AgentConfig.__dataclass_fields__)
        bad = sorted(k for k, _ in self.overrides if k not in known)
        if bad:
            raise ValueError(f"unknown AgentConfig field(s): {', '.join(bad)}")

    def config(self) -> AgentConfig:
        return AgentConfig(**dict(self.overrides))

    def build(self, exchange: Exchange, path: PricePath, seed: int, targets: Iterable[str] = (),
              fast: bool = True) -> AgentRun:
        """``fast=False``: the agents' reference path (same trades, no skipping or caching)."""
        return AgentRun(BackgroundAgents(exchange, path, seed=seed, config=self.config(), fast=fast), targets)


# ----------------------------------------------------------------------------- all models
@dataclass(frozen=True)
class BacktestModels:
    """The models of one backtest: latency, counterparty flow, fee schedule."""

    latency: ConstantLatency | SampledLatency = ConstantLatency(DEFAULT_ENTRY_MS, 0)
    flow: AgentFlow = field(default_factory=AgentFlow)
    fee: FeeSchedule = CRYPTO_FEES

    def as_dict(self) -> dict[str, Any]:
        return {"latency": {"model": type(self.latency).__name__, **asdict(self.latency)},
                "flow": {"model": type(self.flow).__name__, **asdict(self.flow)},
                "fee": asdict(self.fee)}
