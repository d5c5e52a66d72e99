"""The synchronous brain of container B: one call per new snapshot -> order actions.

Why separate from :mod:`hourmm_core.trading.trader`: everything that decides (session
phase, risk mode, strategy, pre-trade check, order diff) is pure and fast — it is what
the < 50 us benchmark measures and what the unit tests drive without sockets. The async
Trader only feeds it events and executes the returned actions.

Decision pipeline (``DecisionCore.decide``)::

    session phase -> risk mode (stale, portfolio limits) -> strategy quotes
      -> compiled-style pre-trade check per quote -> OrderManager diff -> actions

It also implements the control plane's :class:`ControlTarget`, so the operator acts on
exactly the state the loop uses.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Mapping

from hourmm_core.fees import NO_FEES, FeeSchedule
from hourmm_core.quant import QuoteCheck
from hourmm_core.trading.order_manager import Action, Order, OrderManager, PlanResult
from hourmm_core.trading.risk_engine import _FLATTEN as _FLATTEN_M  # enum members as globals: hot path
from hourmm_core.trading.risk_engine import (
    _HALT,
    _LEVEL,
    _NORMAL,
    _REDUCE_ONLY,
    _STALE_AGE_MS,
    Exposure,
    Limits,
    Mode,
    ModeChange,
    Reason,
    RiskEngine,
    _checker,
)
from hourmm_core.trading.session import _ACTIVE, _MAY_TRADE, _WIND_DOWN, Phase, PhaseChange, Schedule, Session
from hourmm_core.trading.session import _FLATTEN as _FLATTEN_P
from hourmm_core.trading.strategy import (
    BookTop,
    MarketState,
    StrategyParams,
    desired_quotes,
    kernel_quotes,
    merge_size,
    quote_kernel,
)
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Quote

log = logging.getLogger(__name__)
_NAN = float("nan")


# ----------------------------------------------------------------------------- execution rules
# How a plan's actions are sent. One definition, used by the live Trader
# (:meth:`hourmm_core.trading.trader.Trader._execute`) and by the research backtest
# (:mod:`hourmm_core.research.engine_backtest`), so the backtest runs the trader's rules.
def post_only_for(phase: Phase, mode: Mode) -> bool:
    """Orders are post-only (never take liquidity) except while flattening (session phase
    FLATTEN or risk mode FLATTEN), when the reducing exit may cross the spread and pays the
    taker fee. Applies to the whole batch of places of one plan."""
    return not (phase is _FLATTEN_P or mode is _FLATTEN_M)


def places_allowed(failed_cancels: Iterable[Order | None]) -> bool:
    """A plan's places are sent only if none of its cancels failed on an order that is
    still open (``om.on_cancel_failed`` returns it; ``None`` or a final order means the
    order is gone anyway): placing the replacement next to a live old order could
    double the exposure. The dropped places are re-planned on the next decision."""
    return all(o is None or o.state.final for o in failed_cancels)


@dataclass(frozen=True)
class MarketRef:
    """The market being traded (subset of polymarket.gamma.MarketInfo)."""

    slug: str
    condition_id: str
    up_token_id: str
    down_token_id: str
    start_ms: int
    end_ms: int
    tick_size: float = 0.01
    min_size: float = 5.0
    neg_risk: bool = False  # selects the exchange contract the order is signed for
    fee: FeeSchedule = NO_FEES  # the market's fee schedule (Gamma ``feeSchedule``), hourmm_core.fees

    @classmethod
    def from_info(cls, info: Any) -> "MarketRef":
        return cls(info.slug, info.condition_id, info.up_token_id, info.down_token_id,
                   info.start_ms, info.end_ms, info.tick_size, info.min_size,
                   bool(getattr(info, "neg_risk", False)), getattr(info, "fee", NO_FEES))

    def token_id(self, token: int) -> str:
        return self.up_token_id if token == UP else self.down_token_id

    def token_index(self, token_id: str) -> int | None:
        if token_id == self.up_token_id:
            return UP
        if token_id == self.down_token_id:
            return DOWN
        return None


@dataclass(slots=True)
class Decision:
    """Result of one pass (journaled by the trader)."""

    ts_ms: int
    actions: list[Action]
    quotes: list[Quote] = field(default_factory=list)
    phase_change: PhaseChange | None = None
    mode_changes: list[ModeChange] = field(default_factory=list)
    plan: PlanResult | None = None
    cancel_all: bool = False
    merge: float = 0.0      # Up+Down pairs to merge (CTF) before the actions; the runner executes it


ControlHook = Callable[[str], Awaitable[None]]


class DecisionCore:
    """Session + risk + strategy + order manager for the current market."""

    def __init__(self, limits: Limits, schedule: Schedule, params: StrategyParams,
                 price_tol: float = 0.005, size_tol: float = 0.2,
                 rate_per_s: float = 10.0, burst: float = 20.0) -> None:
        self.session = Session(schedule)
        self.risk = RiskEngine(limits)
        self.params = params
        self.om = OrderManager(price_tol, size_tol, rate_per_s, burst)
        self.market: MarketRef | None = None
        self.paused = False
        self.quoting_enabled = True      # False without credentials (market data only)
        self.fair_up: float | None = None
        self.fair_unc = 0.0
        self.fresh = False
        self.on_control: ControlHook | None = None
        self.rejects: dict[str, int] = {}
        self.last_quotes: list[Quote] = []
        self.extra_status: dict[str, Any] = {}
        self.status_hook: Callable[[], dict[str, Any]] | None = None  # live extras (the Trader's feeds)
        # (ts, fair) of recent fresh decisions: the fast-move check compares with the fair of
        # ``pull_window_ms`` ago, so it means the same at the backtest's 1 s decision grid and
        # at the live trader's per-snapshot cadence (50 Hz: per-decision jumps are tiny)
        self._fair_hist: deque[tuple[int, float]] = deque()
        self._pull = 0
        self._pull_until = 0
        # (params, limits, market, QuoteKernel, RiskChecker) of the last pass: see decide()
        self._bound: list = [None, None, None, None, None]

    # ---- market -----------------------------------------------------------------------
    def set_market(self, market: MarketRef | None, keep_orders: bool = False) -> None:
        """Switch to a new market (the hour roll). Orders/inventory restart from zero."""
        self.market = market
        self._fair_hist.clear()
        self._pull, self._pull_until = 0, 0
        if not keep_orders:
            self.om.reset(prefix="c")
        if market is None:
            self.session.set_market(None, None)
        else:
            self.session.set_market(market.start_ms, market.end_ms)

    # ---- decision ---------------------------------------------------------------------
    def exposure(self) -> Exposure:
        om = self.om
        return Exposure(om.yes_tokens, om.no_tokens, om.open_size(UP, BUY), om.open_size(DOWN, BUY),
                        om.open_size(UP, SELL), om.open_size(DOWN, SELL), om.reserved_capital(), 0)

    def decide(self, now_ms: int, fair_up: float | None, fair_unc: float | None, fresh: bool,
               up: BookTop | None, down: BookTop | None, places: bool = True) -> Decision:
        """One pass of the loop; returns the actions to execute (cancels first).

        ``places=False``: the same pass, but the plan holds only its cancels (the orders this
        snapshot endangers); the trader's cancel fast path, while another pass is in flight."""
        self.fair_up, self.fair_unc, self.fresh = fair_up, fair_unc or 0.0, fresh
        phase_change = self.session.update(now_ms)
        risk = self.risk
        om = self.om
        opn, bu, bd, su, sd, notional = om.aggregates()   # one pass over the orders (hot path)
        cost = om.cost
        held_cost = cost[UP] + cost[DOWN]
        reserved = held_cost + notional
        yes, no = om.yes_tokens, om.no_tokens
        ch_stale = risk.on_snapshot_stale(not fresh, now_ms)
        ch_limits = risk.on_portfolio(yes, no, reserved, now_ms)
        mode_changes = [] if ch_stale is None and ch_limits is None else \
            [ch for ch in (ch_stale, ch_limits) if ch is not None]
        mode = risk._effective       # == risk.mode: on_portfolio has just brought it up to date
        phase = self.session.phase
        m = self.market
        if (m is None or mode is _HALT or phase not in _MAY_TRADE or not self.quoting_enabled
                or not risk.health.user_ws):  # no quoting while our fills would be invisible
            return Decision(now_ms, om.cancel_all_actions(), [], phase_change, mode_changes, None, True)
        prm = self.params
        # fast move: pull the side it made stale for pull_hold_ms (fresh fair values only)
        if fresh and fair_up is not None:
            ref = self._pull_reference(now_ms, prm.pull_window_ms)
            if prm.pull_move > 0 and ref is not None and abs(fair_up - ref) >= prm.pull_move:
                self._pull = 1 if fair_up > ref else -1
                self._pull_until = now_ms + prm.pull_hold_ms
            self._fair_hist.append((now_ms, fair_up))
        if now_ms >= self._pull_until:
            self._pull = 0
        # merge Up+Down pairs not reserved by resting sells; quote on what is left after it
        merge = merge_size(yes - su, no - sd, prm)   # su/sd == om.open_size(UP|DOWN, SELL)
        lim = risk.limits
        bound = self._bound
        if bound[0] is not prm or bound[1] is not lim or bound[2] is not m:
            # the pre-trade limits and the ladder kernel (built on first use), bound once per
            # (params, limits, market): all three are frozen, so a change of any is a new object
            bound = self._bound = [prm, lim, m, None, _checker(lim, prm.price_band, m.tick_size, m.min_size)]
        if ((mode is _NORMAL or mode is _REDUCE_ONLY) and (phase is _ACTIVE or phase is _WIND_DOWN)
                and fresh and fair_up is not None and up is not None and down is not None and not self.paused):
            # the common case: desired_quotes' ladder branch, compiled whole (same floats)
            wind = phase is _WIND_DOWN
            end_ms = m.end_ms
            kernel = bound[3]
            if kernel is None:
                kernel = bound[3] = quote_kernel(prm, lim, m.tick_size, m.min_size)
            quotes = kernel_quotes(kernel, fair_up, self.fair_unc, yes - merge, no - merge, up, wind,
                                   self.session.schedule.wind_progress(now_ms, end_ms) if wind else 0.0,
                                   float(end_ms - now_ms), held_cost, self._pull, mode is _REDUCE_ONLY)
        else:
            sched = self.session.schedule
            end_ms = m.end_ms
            state = MarketState(fair_up, self.fair_unc, fresh, yes - merge, no - merge,
                                up, down, phase, mode, sched.wind_progress(now_ms, end_ms),
                                m.tick_size, m.min_size, self.paused, held_cost,
                                sched.flatten_progress(now_ms, end_ms), float(end_ms - now_ms), self._pull)
            quotes = desired_quotes(state, prm, lim)
        self.last_quotes = quotes
        # open orders the plan keeps count against the limit; the manager frees cancelled slots.
        # The pre-trade check of every quote the plan places, compiled (risk_engine.check_quote's rule)
        check = QuoteCheck(bound[4], _LEVEL[mode], _NAN if fair_up is None else fair_up,
                           phase is _FLATTEN_P or mode is _FLATTEN_M, 0 if fresh else _STALE_AGE_MS,
                           yes, no, bu, bd, su, sd, reserved, 0)
        plan = om.plan(quotes, now_ms, lim.max_open_orders, check, places, working=opn)
        if plan.rejected:
            rejects = self.rejects
            for _q, code in plan.rejected:
                name = Reason(code).name
                rejects[name] = rejects.get(name, 0) + 1
        return Decision(now_ms, plan.actions, quotes, phase_change, mode_changes, plan, False, merge)

    def _pull_reference(self, now_ms: int, window_ms: int) -> float | None:
        """The fair the fast-move check compares with: that of the latest fresh decision at
        least ``window_ms`` ago (``window_ms`` 0: the previous fresh decision). None before
        there is one. On a decision grid of exactly ``window_ms`` this IS the previous
        decision, so the backtest (1 s grid, window 1 s) is unchanged by the window."""
        h = self._fair_hist
        if window_ms <= 0:
            return h[-1][1] if h else None
        cut = now_ms - window_ms
        while len(h) >= 2 and h[1][0] <= cut:
            h.popleft()                 # keep only the latest entry old enough (and what follows)
        return h[0][1] if h and h[0][0] <= cut else None

    # ---- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The guide's /status shape plus extras (slug, paused, limits, pnl, ...)."""
        m = self.market
        om = self.om
        out: dict[str, Any] = {
            "session_state": self.session.phase.value,
            "risk_mode": self.risk.mode.value,
            "positions": {"yes_tokens": round(om.yes_tokens, 6), "no_tokens": round(om.no_tokens, 6)},
            "open_orders": om.working_count,
            "health": self.risk.health.as_dict(),
            "market_id": m.condition_id if m else None,
            "slug": m.slug if m else None,
            "paused": self.paused,
            "quoting_enabled": self.quoting_enabled,
            "halt_reason": self.risk.halt_reason,
            "limit_breach": self.risk.breach,
            "limits": self.risk.limits.as_dict(),
            "reserved_capital": round(om.reserved_capital(), 6),
            "pnl": None if (p := om.pnl(self.fair_up)) is None else round(p, 6),
            "fills": om.n_fills,
            "fair_up": self.fair_up,
            "rejects": dict(self.rejects),
        }
        out.update(self.extra_status)
        if self.status_hook is not None:
            try:
                out.update(self.status_hook())
            except Exception:  # status must always answer
                log.exception("status hook failed")
        return out

    # ---- ControlTarget ----------------------------------------------------------------
    def current_limits(self) -> Limits:
        return self.risk.limits

    async def _after(self, what: str) -> None:
        if self.on_control is not None:
            await self.on_control(what)

    async def pause_quoting(self, pause: bool) -> dict[str, Any]:
        self.paused = pause
        await self._after("pause_quoting")
        return {"paused": self.paused}

    async def set_mode(self, mode: Mode, now_ms: int = 0) -> dict[str, Any]:
        self.risk.set_mode(mode, now_ms)  # ValueError (-> 400) if HALT cannot be left yet
        await self._after("set_mode")
        return {"mode": mode.value, "risk_mode": self.risk.mode.value}

    async def flatten_now(self) -> dict[str, Any]:
        self.risk.set_mode(Mode.FLATTEN, 0)
        await self._after("flatten_now")
        return {"risk_mode": self.risk.mode.value}

    async def set_limits(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        lim = self.risk.set_limits(changes)
        await self._after("set_limits")
        return {"limits": lim.as_dict()}
