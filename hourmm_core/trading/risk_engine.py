"""Risk modes, escalation rules and limits for container B.

Why: the trader must degrade safely on its own (lost feeds, auth failures, breaches)
and only an operator may re-arm it after the serious cases. The mode the rest of the
trader obeys is the *effective* mode: the most severe of the operator's choice and
every active automatic condition.

Modes (severity order): NORMAL < REDUCE_ONLY < FLATTEN < HALT.

Escalation rules (automatic):

=================================  =======================================================
condition                          effect
=================================  =======================================================
Binance snapshot stale / missing   REDUCE_ONLY while it lasts; strategy quotes nothing
                                   priced off fair value (clears by itself on recovery)
market WS lost / book invalid      no new orders and working quotes cancelled (the book is
                                   unknown); mode unchanged; clears when the book resyncs
user WS lost                       HALT + cancel all, WARNING
                                   ``WS user disconnected - escalating to HALT``; sticky
REST authentication failure        HALT + cancel all, ERROR ``REST authentication failed``;
                                   sticky
position / reserved over a limit   REDUCE_ONLY until back within the limits (automatic)
operator /set_mode, /flatten_now   that mode, until the operator changes it
=================================  =======================================================

De-escalation: automatic conditions clear themselves when their cause recovers, except
HALT, which is *latched*: only an operator ``/set_mode`` (any mode below HALT) clears
it, and only if the cause is gone (a HALT while the user WS is still down is refused,
because fills would go unseen).

Every order also passes the compiled pre-trade check (``hourmm_core.quant.check_order``)
in :meth:`RiskEngine.check_order`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Mapping

from hourmm_core.fields import setting
from hourmm_core.quant import QuoteCheck, RiskChecker
from hourmm_core.quant.risk_codes import RiskMode, RiskReason

if TYPE_CHECKING:
    from hourmm_core.trading.types import Quote

log = logging.getLogger(__name__)


class Mode(str, Enum):
    """Risk mode; the value is what ``/status`` shows as ``risk_mode``."""

    NORMAL = "NORMAL"
    REDUCE_ONLY = "REDUCE_ONLY"
    FLATTEN = "FLATTEN"
    HALT = "HALT"

    @property
    def level(self) -> int:
        """``hourmm_core.quant.RiskMode`` of the same name (NORMAL=0 .. HALT=3)."""
        return _LEVEL[self]

    @classmethod
    def parse(cls, raw: Any) -> "Mode":
        if not isinstance(raw, str) or raw.strip().upper() not in cls.__members__:
            raise ValueError(f"mode must be one of {', '.join(cls.__members__)}, got {raw!r}")
        return cls[raw.strip().upper()]


# the members as module constants (a global load, not an enum class-attribute lookup: hot path)
_NORMAL, _REDUCE_ONLY, _FLATTEN, _HALT = Mode.NORMAL, Mode.REDUCE_ONLY, Mode.FLATTEN, Mode.HALT
# the level is the compiled core's RiskMode (one definition); looked up once, not per order
_LEVEL = {m: int(RiskMode[m.name]) for m in Mode}


@dataclass(frozen=True)
class Limits:
    """Hard limits (USDC / tokens), mutable at run time through ``/set_limits``; the one
    definition (env MAX_RESERVED_CAPITAL, MAX_POSITION_SIZE, MAX_ORDER_SIZE, MAX_OPEN_ORDERS,
    defaults as the operator guide)."""

    max_reserved_capital: float = setting(1000.0, lo=0.0)
    max_position_size: float = setting(500.0, lo=0.0)
    max_order_size: float = setting(100.0, lo=0.0)
    max_open_orders: int = setting(4, lo=0, hi=1000)

    def updated(self, changes: Mapping[str, Any]) -> "Limits":
        """A validated copy with ``changes`` applied; ValueError names the bad field.

        All fields are checked before anything is applied, so a bad request changes nothing.
        """
        if not isinstance(changes, Mapping):
            raise ValueError("body must be a JSON object of limits")
        known = {f for f in asdict(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(map(str, unknown))}; "
                             f"allowed: {', '.join(sorted(known))}")
        if not changes:
            raise ValueError(f"no limits given; allowed: {', '.join(sorted(known))}")
        out: dict[str, Any] = {}
        for k, v in changes.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{k} must be a number, got {v!r}")
            if not math.isfinite(float(v)) or v < 0:
                raise ValueError(f"{k} must be a finite number >= 0, got {v!r}")
            if k == "max_open_orders":
                if float(v) != int(v) or v > 1000:
                    raise ValueError(f"max_open_orders must be an integer in [0, 1000], got {v!r}")
                out[k] = int(v)
            else:
                out[k] = float(v)
        return replace(self, **out)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Health:
    """Connectivity as ``/status`` reports it under ``health``."""

    market_ws: bool = False
    user_ws: bool = False
    rest: bool = False
    binance_stale: bool = True

    def as_dict(self) -> dict[str, bool]:
        return {"market_ws": self.market_ws, "user_ws": self.user_ws,
                "rest": self.rest, "binance_stale": self.binance_stale}


@dataclass(frozen=True)
class ModeChange:
    """Effective mode transition, for the journal."""

    old: Mode
    new: Mode
    reason: str
    ts_ms: int


@dataclass
class RiskEngine:
    """Holds the operator mode, the latched HALT and the automatic conditions."""

    limits: Limits
    operator_mode: Mode = Mode.NORMAL
    halt_reason: str | None = None
    health: Health = field(default_factory=Health)
    breach: str | None = None
    _effective: Mode = Mode.NORMAL
    counts: dict[str, int] = field(default_factory=dict)

    # ---- effective mode -------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        """The mode everything obeys: most severe of operator, latch and auto conditions."""
        if self.halt_reason:
            return _HALT
        op = self.operator_mode
        if (self.health.binance_stale or self.breach) and op is _NORMAL:
            return _REDUCE_ONLY
        return op

    def _changed(self, reason: str, ts_ms: int) -> ModeChange | None:
        new = self.mode
        if new is self._effective:
            return None
        ch = ModeChange(self._effective, new, reason, ts_ms)
        self._effective = new
        return ch

    # ---- escalations ----------------------------------------------------------------
    def halt(self, reason: str, ts_ms: int) -> ModeChange | None:
        """Latch HALT (sticky until the operator clears it)."""
        self.counts["halt"] = self.counts.get("halt", 0) + 1
        if self.halt_reason is None:
            self.halt_reason = reason
        return self._changed(reason, ts_ms)

    def on_user_ws(self, connected: bool, ts_ms: int) -> ModeChange | None:
        """User channel up/down. Down means fills are invisible: HALT + cancel all."""
        was = self.health.user_ws
        self.health.user_ws = connected
        if not connected and was:
            log.warning("WS user disconnected - escalating to HALT")
            return self.halt("user WS disconnected", ts_ms)
        return self._changed("user WS connected", ts_ms)

    def on_market_ws(self, connected: bool, ts_ms: int) -> ModeChange | None:
        """Market channel up/down: quotes are pulled by the strategy while it is down."""
        self.health.market_ws = connected
        return self._changed("market WS " + ("connected" if connected else "lost"), ts_ms)

    def on_rest(self, ok: bool, ts_ms: int, auth_failed: bool = False) -> ModeChange | None:
        """REST health; an authentication failure latches HALT."""
        self.health.rest = ok
        if auth_failed:
            log.error("REST authentication failed")
            return self.halt("REST authentication failed", ts_ms)
        return self._changed("REST " + ("ok" if ok else "failing"), ts_ms)

    def on_snapshot_stale(self, stale: bool, ts_ms: int) -> ModeChange | None:
        """Binance snapshot stale/missing: REDUCE_ONLY while it lasts."""
        if stale is self.health.binance_stale:
            return None
        if stale and not self.health.binance_stale:
            log.warning("Binance snapshot stale - no quotes (REDUCE_ONLY)")
        self.health.binance_stale = stale
        return self._changed("Binance snapshot " + ("stale" if stale else "fresh"), ts_ms)

    def on_portfolio(self, yes_tokens: float, no_tokens: float, reserved_capital: float,
                     ts_ms: int) -> ModeChange | None:
        """Portfolio check against the limits; a breach means REDUCE_ONLY until it clears."""
        lim = self.limits
        why = None
        if max(yes_tokens, no_tokens) > lim.max_position_size + 1e-9:
            why = (f"position {max(yes_tokens, no_tokens):.4f} > max_position_size "
                   f"{lim.max_position_size:g}")
        elif reserved_capital > lim.max_reserved_capital + 1e-9:
            why = f"reserved capital {reserved_capital:.4f} > max_reserved_capital {lim.max_reserved_capital:g}"
        if why and not self.breach:
            log.warning("Risk limit breached: %s - REDUCE_ONLY", why)
            self.counts["breach"] = self.counts.get("breach", 0) + 1
        self.breach = why
        return self._changed(why or "limits ok", ts_ms)

    # ---- operator -------------------------------------------------------------------
    def set_mode(self, mode: Mode, ts_ms: int) -> ModeChange | None:
        """Operator command. Setting a mode below HALT clears the HALT latch if safe.

        Raises ValueError (nothing changed) when HALT cannot be cleared yet.
        """
        if mode is not _HALT and self.halt_reason is not None:
            if not self.health.user_ws and self.halt_reason.startswith("user WS"):
                raise ValueError("cannot leave HALT: the user WebSocket is still disconnected")
            self.halt_reason = None
        self.operator_mode = mode
        return self._changed(f"operator set_mode {mode.value}", ts_ms)

    def set_limits(self, changes: Mapping[str, Any]) -> Limits:
        """Validate and apply; ValueError leaves the limits untouched."""
        self.limits = self.limits.updated(changes)
        return self.limits

    # ---- per-order ------------------------------------------------------------------
    def may_place(self, reduces: bool) -> bool:
        """Coarse gate before the compiled check: does the mode allow this kind of order?"""
        m = self.mode
        if m is _HALT:
            return False
        if m is _NORMAL:
            return True
        return reduces


#: Pre-trade check result codes (0 = pass): the compiled core's ``RiskReason``.
Reason = RiskReason


@dataclass
class Exposure:
    """Book-keeping the pre-trade check needs; updated as a plan accepts quotes."""

    yes_tokens: float
    no_tokens: float
    open_buy_up: float       # remaining size of open BUY Up orders
    open_buy_down: float
    open_sell_up: float      # remaining size of open SELL Up orders (tokens committed)
    open_sell_down: float
    reserved_capital: float  # held cost + open buy notional (USDC)
    open_orders: int


_CHECKERS: dict[tuple, Any] = {}
_NEVER_STALE_MS = 1
_STALE_AGE_MS = 1 << 40


def _checker(lim: Limits, price_band: float, tick: float, min_size: float) -> Any:
    """A compiled ``RiskChecker`` bound to these limits (cached; rebuilt when they change)."""
    key = (lim.max_order_size, lim.max_position_size, lim.max_reserved_capital, lim.max_open_orders,
           price_band, tick, min_size)
    rc = _CHECKERS.get(key)
    if rc is None:
        if len(_CHECKERS) > 64:
            _CHECKERS.clear()
        rc = RiskChecker(lim.max_order_size, lim.max_position_size, lim.max_reserved_capital,
                         lim.max_open_orders, price_band, _NEVER_STALE_MS, tick, min_size)
        _CHECKERS[key] = rc
    return rc


def check_quote(q: "Quote", mode: Mode, lim: Limits, ex: Exposure, fair_up: float | None,
                fresh: bool, price_band: float, tick: float = 0.0, min_size: float = 0.0,
                unwind: bool = False, rc: Any = None) -> int:
    """One order through the compiled pre-trade check (``hourmm_core.quant.RiskChecker``).

    Checks mode, order sanity (tick grid, min size), order size, position (held + open
    buys), reserved capital, open orders, staleness and the price band around fair.
    Sells are checked against the tokens still free (held minus open sells), so two
    sells can never oversell. ``unwind`` (FLATTEN) skips the band: getting out at the
    best bid matters more than the price. On OK the exposure is updated so the next
    quote of the same plan sees it. Returns a :class:`Reason` code. ``rc``: the checker of
    ``_checker(lim, price_band, tick, min_size)`` if the caller holds it already (one per plan).
    The rule is the compiled ``hourmm_core.quant.QuoteCheck`` (one definition; the decision pass
    hands one to the order manager's plan, which checks all the plan's quotes without leaving C).
    """
    if rc is None:
        rc = _checker(lim, price_band, tick, min_size)
    qc = QuoteCheck(rc, _LEVEL[mode], math.nan if fair_up is None else fair_up, unwind, 0 if fresh else _STALE_AGE_MS,
                    ex.yes_tokens, ex.no_tokens, ex.open_buy_up, ex.open_buy_down, ex.open_sell_up,
                    ex.open_sell_down, ex.reserved_capital, ex.open_orders)
    code = qc.check(q)
    if code != 0:
        return code
    ex.open_buy_up, ex.open_buy_down, ex.open_sell_up, ex.open_sell_down = (qc.buy_up, qc.buy_down, qc.sell_up,
                                                                            qc.sell_down)
    ex.reserved_capital, ex.open_orders = qc.reserved, qc.open_orders
    return Reason.OK
