"""Clocks and hour arithmetic, all in integer milliseconds UTC.

The quant core never reads the wall clock: callers pass ``ts_ms`` in. Only the
runners and simulators own a :class:`Clock`, so the same code replays history,
runs the simulator at 60x and trades live.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Mapping, Protocol

from hourmm_core.errors import ConfigError

HOUR_MS = 3_600_000
SIM_CLOCK_ENV = "HOURMM_SIM_CLOCK"


def hour_start_ms(ts_ms: int) -> int:
    """Start of the UTC hour containing ``ts_ms`` (Binance 1h candles align to UTC hours)."""
    return ts_ms - ts_ms % HOUR_MS


def hour_end_ms(ts_ms: int) -> int:
    """End (exclusive) of the UTC hour containing ``ts_ms``."""
    return hour_start_ms(ts_ms) + HOUR_MS


class Clock(Protocol):
    speed: float

    def now_ms(self) -> int: ...

    def sleep_s_for_sim_ms(self, sim_ms: float) -> float: ...


@dataclass(frozen=True)
class WallClock:
    """Real time. Production."""

    speed: float = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep_s_for_sim_ms(self, sim_ms: float) -> float:
        return sim_ms / 1000.0


@dataclass(frozen=True)
class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall, anchored at a shared origin.

    Every process of a simulation is given the same anchor, so they all agree on
    "now" without talking to each other.
    """

    speed: float
    sim_start_ms: int
    wall_start_ms: int

    def now_ms(self) -> int:
        wall = time.time_ns() // 1_000_000
        return self.sim_start_ms + int((wall - self.wall_start_ms) * self.speed)

    def sleep_s_for_sim_ms(self, sim_ms: float) -> float:
        return sim_ms / 1000.0 / self.speed

    def to_env(self) -> str:
        return f"{self.speed:g},{self.sim_start_ms},{self.wall_start_ms}"


def clock_from_env(environ: Mapping[str, str] | None = None) -> Clock:
    """Build the clock the process should use: ``HOURMM_SIM_CLOCK`` set means simulated time."""
    env = os.environ if environ is None else environ
    raw = env.get(SIM_CLOCK_ENV, "").strip()
    if not raw:
        return WallClock()
    parts = raw.split(",")
    try:
        if len(parts) != 3:
            raise ValueError("expected 3 comma-separated fields")
        speed = float(parts[0])
        if not (0 < speed <= 10_000):
            raise ValueError("speed must be in (0, 10000]")
        return ScaledClock(speed, int(parts[1]), int(parts[2]))
    except ValueError as exc:
        raise ConfigError(
            f"{SIM_CLOCK_ENV}={raw!r} is invalid ({exc}); "
            "expected 'SPEED,SIM_START_MS,WALL_START_MS'"
        ) from None
