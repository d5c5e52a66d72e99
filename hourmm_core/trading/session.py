"""Session phases of one hourly market, computed from ``now_ms`` and the market's hour end.

Why a separate module: every other part of the trader (strategy, risk, order manager)
asks "what am I allowed to do right now?", and the answer must be a pure function of
time so a restart in the middle of an hour resumes the right phase with no memory.

Timeline of one market (``end`` = hour end, ms UTC)::

    IDLE  ...  start ... ACTIVE ... end-T_WIND ... WIND_DOWN ... end-T_FLATTEN ... FLATTEN
          ... end-HARD_CUTOFF ... HARD_CUTOFF ... end  -> ENDED (roll to the next market)

``IDLE`` also covers "no market selected" (discovery pending or failed).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hourmm_core.clock import HOUR_MS
from hourmm_core.fields import setting


class Phase(str, Enum):
    """What the trader may do; the string value is what ``/status`` shows as ``session_state``."""

    IDLE = "IDLE"                # no market, or before the market's hour starts
    ACTIVE = "ACTIVE"            # normal two-sided quoting
    WIND_DOWN = "WIND_DOWN"      # smaller, wider, inventory-reducing skew
    FLATTEN = "FLATTEN"          # only orders that reduce inventory
    HARD_CUTOFF = "HARD_CUTOFF"  # cancel everything, no new orders
    ENDED = "ENDED"              # the hour is over: roll to the next market

    @property
    def may_open(self) -> bool:
        """New inventory-increasing orders are allowed."""
        return self in _MAY_OPEN

    @property
    def may_trade(self) -> bool:
        """Any order at all is allowed (reducing ones included)."""
        return self in _MAY_TRADE


# the members as module constants: ``Phase.X`` is a class-attribute lookup through the enum
# metaclass (~0.2-0.3 us here), a global is a cached load (the decision pass is the hot path)
_IDLE, _ACTIVE, _WIND_DOWN, _FLATTEN, _HARD_CUTOFF, _ENDED = (
    Phase.IDLE, Phase.ACTIVE, Phase.WIND_DOWN, Phase.FLATTEN, Phase.HARD_CUTOFF, Phase.ENDED)
_MAY_OPEN = frozenset((_ACTIVE, _WIND_DOWN))
_MAY_TRADE = frozenset((_ACTIVE, _WIND_DOWN, _FLATTEN))


@dataclass(frozen=True)
class PhaseChange:
    """A transition, returned by :meth:`Session.update` so the trader can journal it."""

    old: Phase
    new: Phase
    ts_ms: int
    hour_end_ms: int | None


@dataclass(frozen=True)
class Schedule:
    """The three offsets before the hour end (ms), validated so the phases are ordered
    (env T_WIND_MS, T_FLATTEN_MS, HARD_CUTOFF_MS)."""

    t_wind_ms: int = setting(600_000, lo=0, hi=3_600_000)
    t_flatten_ms: int = setting(300_000, lo=0, hi=3_600_000)
    hard_cutoff_ms: int = setting(60_000, lo=0, hi=3_600_000)

    def __post_init__(self) -> None:
        if not (0 <= self.hard_cutoff_ms <= self.t_flatten_ms <= self.t_wind_ms <= HOUR_MS):
            raise ValueError(
                "need 0 <= HARD_CUTOFF_MS <= T_FLATTEN_MS <= T_WIND_MS <= 3600000, got "
                f"{self.hard_cutoff_ms}, {self.t_flatten_ms}, {self.t_wind_ms}")

    def phase_at(self, now_ms: int, hour_end_ms: int | None,
                 hour_start_ms: int | None = None) -> Phase:
        """The phase at ``now_ms`` for a market ending at ``hour_end_ms`` (None: no market)."""
        if hour_end_ms is None:
            return _IDLE
        start = hour_end_ms - HOUR_MS if hour_start_ms is None else hour_start_ms
        if now_ms < start:
            return _IDLE
        left = hour_end_ms - now_ms
        if left <= 0:
            return _ENDED
        if left <= self.hard_cutoff_ms:
            return _HARD_CUTOFF
        if left <= self.t_flatten_ms:
            return _FLATTEN
        if left <= self.t_wind_ms:
            return _WIND_DOWN
        return _ACTIVE

    def wind_progress(self, now_ms: int, hour_end_ms: int) -> float:
        """0 at the start of WIND_DOWN, 1 at FLATTEN: lets the strategy ramp smoothly."""
        span = self.t_wind_ms - self.t_flatten_ms
        if span <= 0:
            return 1.0
        x = (self.t_wind_ms - (hour_end_ms - now_ms)) / span
        return min(1.0, max(0.0, x))


    def flatten_progress(self, now_ms: int, hour_end_ms: int) -> float:
        """0 at the start of FLATTEN, 1 at HARD_CUTOFF: how hard to push inventory out."""
        span = self.t_flatten_ms - self.hard_cutoff_ms
        if span <= 0:
            return 1.0
        x = (self.t_flatten_ms - (hour_end_ms - now_ms)) / span
        return min(1.0, max(0.0, x))


class Session:
    """Tracks the current market's phase and reports transitions exactly once."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.hour_start_ms: int | None = None
        self.hour_end_ms: int | None = None
        self.phase: Phase = _IDLE

    def set_market(self, hour_start_ms: int | None, hour_end_ms: int | None) -> None:
        """Select the market whose hour we trade (None, None: no market)."""
        self.hour_start_ms = hour_start_ms
        self.hour_end_ms = hour_end_ms

    def update(self, now_ms: int) -> PhaseChange | None:
        """Recompute the phase; return the change if it differs from the last one."""
        new = self.schedule.phase_at(now_ms, self.hour_end_ms, self.hour_start_ms)
        if new is self.phase:
            return None
        change = PhaseChange(self.phase, new, now_ms, self.hour_end_ms)
        self.phase = new
        return change

    def ms_left(self, now_ms: int) -> int | None:
        return None if self.hour_end_ms is None else self.hour_end_ms - now_ms
