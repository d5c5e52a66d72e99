"""Latency snipers: takers that see the real BTC price with zero delay and pick off stale quotes.

Why: on the real venue the main cost of quoting a fast binary market is not the noise
flow, it is the bots that watch Binance directly and hit any resting order whose price
no longer matches the fair value by more than their own taker fee, faster than the
quoter can cancel. A simulator without them rewards any quoter that is merely roughly
right; with them, a quote that is stale for longer than the snipers' reaction time
loses.

Model (all on simulated time, deterministic for a given call sequence):

* the sniper's fair value is :meth:`PricePath.fair_up` - the real (replayed) BTC price
  at that very ms and the realized volatility of the whole path, i.e. a *better* model
  than ours;
* :meth:`LatencySniper.scan` looks at every live order of the target owners (the
  market maker under test). An order is *stale* when buying the token it lets a taker
  buy is worth more than its price plus the venue's taker fee (the engine's schedule,
  :mod:`hourmm_core.fees`: 0.07 p (1 - p) per share on crypto markets) plus ``sniper_min_edge``. A resting BUY Up at
  ``b`` lets a taker buy Down at ``1 - b``; a SELL Up at ``a`` lets it buy Up at ``a``
  (likewise for Down);
* the first time an order is seen stale the sniper decides, with probability
  ``sniper_share``, to go for it, and draws a reaction time log-uniformly in
  ``sniper_reaction_ms``; the order stays targeted while it stays stale;
* :meth:`LatencySniper.fire_due` fires the due shots: if the order is still live and
  still stale at the fair value of the firing time, the sniper sends a FAK BUY at the
  order's price for everything that crosses up to that price (price-time priority:
  better-priced and earlier orders at the level fill first, so our queue position
  matters), capped at ``sniper_max_size``. If we cancelled in time, the shot misses.
"""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Iterable

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import FeeSchedule, taker_fee
from hourmm_core.sim.polymarket.engine import BUY, PRICE_SCALE, SIZE_SCALE, Exchange, Market
from hourmm_core.sim.polymarket.flowcore import place_taker, sniper_scan

if TYPE_CHECKING:
    from hourmm_core.sim.polymarket.agents import AgentConfig, AgentStats, PricePath

SNIPER_OWNER = "agent-sniper"


def taker_fee_per_share(fs: FeeSchedule, price: float) -> float:
    """Taker fee per share at ``price`` under the market's schedule (:func:`hourmm_core.fees.taker_fee`
    of 100 shares / 100, so the venue's 1e-5 flooring does not zero it)."""
    return taker_fee(price, 100.0, fs) / 100.0


class LatencySniper:
    """Zero-delay BTC watcher that takes target owners' stale quotes after a reaction time."""

    owner = SNIPER_OWNER

    def __init__(self, exchange: Exchange, path: "PricePath", config: "AgentConfig", rng: random.Random,
                 stats: "AgentStats", targets: Iterable[str] | None = None,
                 agent_owners: Iterable[str] = (), fast: bool = True) -> None:
        self.ex = exchange
        self.path = path
        self.cfg = config
        self.rng = rng
        self.stats = stats
        self.targets = None if targets is None else set(targets)
        self.agent_owners = set(agent_owners) | {SNIPER_OWNER}
        self.pending: dict[str, int] = {}      # order id -> fire time (ms); -1 = decided not to
        self.shots = 0
        self.misses = 0
        self.size_taken = 0.0
        self.fast = bool(fast)
        self._fee_ps: dict[float, float] = {}   # fast: taker fee per share by price (the schedule is fixed)
        self._due: int | None | bool = False     # fast: cached next_due() (False = recompute)
        self._scan_targets = None                # fast: flowcore.ScanTargets of the last scan

    # ------------------------------------------------------------------ helpers
    def _target_orders(self, markets: Iterable[Market]) -> list[Any]:
        cids = {m.condition_id for m in markets}
        owners = self.targets if self.targets is not None else [o for o in self.ex._live if o not in self.agent_owners]
        out = []
        for ow in owners:
            out.extend(o for o in self.ex._live.get(ow, {}).values() if o.condition_id in cids and o.status == "LIVE")
        return out

    def _edge(self, o: Any, fair_up: float) -> tuple[float, str, float]:
        """(edge after fee per share, token the taker buys, taker price) for a taker against order ``o``."""
        m = self.ex.markets[o.condition_id]
        px = o.price_u / PRICE_SCALE
        if o.side == BUY:     # resting BUY X at px <=> taker buys the other token at 1 - px
            tok = m.down_token if o.is_up else m.up_token
            q = 1.0 - px
        else:                 # resting SELL X at px <=> taker buys X at px
            tok = o.token_id
            q = px
        value = fair_up if tok == m.up_token else 1.0 - fair_up
        if self.fast:
            fee = self._fee_ps.get(q)
            if fee is None:
                fee = self._fee_ps[q] = taker_fee_per_share(self.ex.fee, q)
            return value - q - fee, tok, q
        return value - q - taker_fee_per_share(self.ex.fee, q), tok, q

    def _fair(self, m: Market, now_ms: int) -> float:
        return self.path.fair_up(m.end_ms - HOUR_MS, now_ms)

    # ------------------------------------------------------------------ API
    def scan(self, now_ms: int, markets: Iterable[Market]) -> int:
        """Look at the target quotes at ``now_ms``; schedule shots at the stale ones. Returns #scheduled."""
        if self.fast:     # the same scan compiled (flowcore.pyx); this method is its reference twin
            return sniper_scan(self, now_ms, markets)
        c = self.cfg
        if c.sniper_share <= 0:
            return 0
        mk = [m for m in markets if m.accepting and not m.closed and m.end_ms - HOUR_MS <= now_ms < m.end_ms]
        if not mk:
            return 0
        targets = self._target_orders(mk)
        fair = {m.condition_id: self._fair(m, now_ms) for m in mk}
        new = 0
        live_ids = set()
        for o in targets:
            live_ids.add(o.order_id)
            edge, _, _ = self._edge(o, fair[o.condition_id])
            if edge <= c.sniper_min_edge:
                if self.pending.get(o.order_id, 0) == -1:
                    del self.pending[o.order_id]     # fresh again: a later staleness is a new chance
                continue
            if o.order_id in self.pending:
                continue
            if self.rng.random() >= c.sniper_share:
                self.pending[o.order_id] = -1
                continue
            lo, hi = c.sniper_reaction_ms
            react = math.exp(self.rng.uniform(math.log(max(1.0, lo)), math.log(max(lo, hi, 1.0))))
            self.pending[o.order_id] = now_ms + int(round(react))
            self._due = False
            new += 1
        for oid in [k for k in self.pending if k not in live_ids and self.pending[k] == -1]:
            del self.pending[oid]
        return new

    def next_due(self) -> int | None:
        """Earliest scheduled shot time (ms) or None."""
        if self.fast and self._due is not False:
            return self._due      # type: ignore[return-value]
        ts = [t for t in self.pending.values() if t >= 0]
        self._due = min(ts) if ts else None
        return self._due

    def fire_due(self, now_ms: int) -> int:
        """Fire every shot due at or before ``now_ms``; returns the number of trades made."""
        due = sorted((t, oid) for oid, t in self.pending.items() if 0 <= t <= now_ms)
        if due:
            self._due = False
        n = 0
        for _, oid in due:
            self.pending.pop(oid, None)
            o = self.ex.order(oid)
            if o is None or o.status != "LIVE":
                self.misses += 1
                continue
            m = self.ex.markets[o.condition_id]
            if not m.accepting or m.closed or now_ms >= m.end_ms:
                continue
            edge, tok, q = self._edge(o, self._fair(m, now_ms))
            if edge <= self.cfg.sniper_min_edge:
                self.misses += 1
                continue
            # everything that crosses up to the stale order's price (better prices and the queue ahead too)
            is_up = tok == m.up_token
            limit_b = int(round(q * PRICE_SCALE)) if is_up else PRICE_SCALE - int(round(q * PRICE_SCALE))
            avail = self.ex._crossable(m, is_up, limit_b, self.owner) / SIZE_SCALE
            size = round(min(avail, self.cfg.sniper_max_size), 2)
            if size <= 0:
                continue
            if self.fast:     # the same FAK BUY without the result object, compiled (flowcore.place_taker)
                fills = place_taker(self.ex, self.owner, tok, round(q, 4), size, now_ms)
            else:
                r = self.ex.place(self.owner, tok, BUY, round(q, 4), size, "FAK", now_ms=now_ms)
                fills = r.fills if r.ok else None
            self.shots += 1
            if fills:
                n += 1
                self.stats.sniper_trades += 1
                self.size_taken += sum(f.size for f in fills)
        return n

