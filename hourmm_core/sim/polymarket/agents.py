"""Background participants of the simulated Polymarket: makers and takers on simulated time.

Why: an empty book never fills anyone, and a book of uninformed noise would reward any
quoter. These agents make the simulated venue behave like the real hourly market in the
two ways that matter to a market maker:

* **Makers** quote a small ladder around a *noisy* view of the true fair value
  ``P(close >= open)``, computed with :func:`hourmm_core.quant.digital_prob` from the
  replayed BTC path (same ticks the Binance replay serves) and the data's realised
  volatility. Each maker has its own persistent bias plus fresh noise at every requote,
  so the book is alive, a few ticks wide, and not exactly at fair.
* **Noise takers** arrive as a Poisson process and buy Up or Down at the touch
  (FAK, size random): a maker quoting sensibly earns the spread from them.
* **Informed takers** look ``lookahead_ms`` ahead on the real path; when the future
  fair value is beyond the best quote by more than ``informed_edge`` they take it
  (FAK). A quoter that does not move with BTC is picked off.

All agents only BUY (Up or Down): selling Up is economically the same as buying Down
through the engine's mint/merge complement, and buying needs only USDC, so agents never
need inventory. Deterministic: one ``random.Random(seed)``; for a given sequence of
``step(now_ms)`` calls the actions are identical (in server mode the step times follow
the wall clock, so only in-process runs with fixed steps are bit-reproducible).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.data.ticks import TickData
from hourmm_core.sim.polymarket.engine import BUY, Exchange, Market
from hourmm_core.sim.polymarket.fairpath import FairPath
from hourmm_core.sim.polymarket.flowcore import TouchMakers, takers

try:  # compiled core; the reference twin has the same algorithm
    from hourmm_core.quant import digital_prob
except ImportError:  # pragma: no cover - only on an unbuilt checkout
    from hourmm_core.quant.reference.pricer import digital_prob  # type: ignore


@dataclass
class AgentConfig:
    """Knobs of the background flow. Defaults: calibrated to the real 15-minute BTC books and
    trade counts scaled to an hourly market (docs/VENUE.md has the derivation and the check).

    * makers: ``n_makers`` quote a one-tick-wide touch around their own noisy view of fair
      (~130 shares at the touch, ~5k over five levels, as the real 15-minute books) and keep
      their queue position while their price does not change;
    * noise takers: ``noise_takers_per_min`` Poisson arrivals, log-normal sizes (median
      ``noise_size_median``, log-sd ``noise_size_logsd``; mean ~50 shares = $26 a trade);
    * informed takers: see ``informed_lookahead_ms`` of the real path ahead;
    * latency snipers (:mod:`hourmm_core.sim.polymarket.snipers`): see the real BTC price
      with zero delay and take any non-agent quote stale by more than their fee.
    ``maker_style="legacy"`` restores the old wide, slow makers (tests that predate the
    calibration use it).
    """

    n_makers: int = 3
    maker_style: str = "touch"           # "touch" (calibrated) | "legacy"
    maker_size: tuple[float, float] = (30.0, 60.0)        # touch level, per maker
    maker_depth_size: tuple[float, float] = (270.0, 600.0)  # each deeper level, per maker
    maker_half_spread: tuple[float, float] = (0.015, 0.04)  # legacy style only
    maker_bias_sd: float = 0.003         # persistent per-maker error of the fair value
    maker_noise_sd: float = 0.003        # fresh error at each requote
    maker_levels: int = 5
    maker_level_step: float = 0.01
    maker_requote_ms: int = 3_000
    maker_refill_ms: int = 2_000         # a maker tops its eaten levels up at most this often
    maker_stop_before_end_ms: int = 30_000
    noise_takers_per_min: float = 24.0
    noise_taker_size: tuple[float, float] = (5.0, 25.0)   # legacy style only (uniform)
    noise_size_median: float = 20.0
    noise_size_logsd: float = 1.4
    noise_size_max: float = 2_000.0
    noise_taker_slippage: float = 0.02
    informed_per_min: float = 6.0
    informed_lookahead_ms: int = 120_000
    informed_edge: float = 0.03
    informed_size: tuple[float, float] = (10.0, 40.0)     # legacy style only (uniform)
    fund_usdc: float = 10_000_000.0
    # latency snipers (0 share = off); reaction time log-uniform in sniper_reaction_ms
    sniper_share: float = 1.0
    sniper_reaction_ms: tuple[float, float] = (30.0, 300.0)
    sniper_min_edge: float = 0.0         # USDC per share beyond the taker fee
    sniper_max_size: float = 2_000.0

    @classmethod
    def legacy(cls, **kw: object) -> "AgentConfig":
        """The pre-calibration flow (3 wide makers, ~2.5 takers/min, no snipers)."""
        base: dict = dict(n_makers=3, maker_style="legacy", maker_size=(20.0, 60.0), maker_bias_sd=0.015,
                          maker_noise_sd=0.01, maker_levels=2, maker_level_step=0.02, maker_requote_ms=10_000,
                          noise_takers_per_min=1.5, informed_per_min=1.0, sniper_share=0.0)
        base.update(kw)
        return cls(**base)  # type: ignore[arg-type]


def realized_sigma(ts_ms: np.ndarray, price: np.ndarray, sample_ms: int = 1000) -> float:
    """Per-sqrt(second) log-price volatility of ``price`` on a ``sample_ms`` grid from its first to
    its last tick (5e-5 when there are too few points to tell)."""
    if len(ts_ms) < 3:
        return 5e-5
    grid = np.arange(int(ts_ms[0]), int(ts_ms[-1]), sample_ms, dtype=np.int64)
    if len(grid) < 3:
        return 5e-5
    idx = np.searchsorted(ts_ms, grid, side="right") - 1
    idx = np.clip(idx, 0, len(ts_ms) - 1)
    r = np.diff(np.log(price[idx]))
    s = float(np.std(r)) / math.sqrt(sample_ms / 1000.0)
    return s if s > 0 and math.isfinite(s) else 5e-5


class PricePath:
    """Point lookups on the replayed BTC path: last price at t, hour open, fair value.

    ``fast`` (default): the same numbers from the compiled
    :class:`~hourmm_core.sim.polymarket.fairpath.FairPath` (C binary search on the typed arrays, the
    hour's open and sigma cached, the compiled pricer's routine); ``fast=False`` is the plain numpy
    reference the tests compare against (tests/unit/sim/polymarket/test_fairpath.py)."""

    def __init__(self, ticks: TickData, sigma: float | None = None, fast: bool = True) -> None:
        self.ts = np.ascontiguousarray(ticks.ts_ms, dtype=np.int64)
        self.px = np.ascontiguousarray(ticks.price, dtype=np.float64)
        self.sigma = None if sigma is None else float(sigma)
        self._hour_sigma: dict[int, float] = {}
        self.fast = bool(fast)
        self.core: FairPath | None = FairPath(self.ts, self.px, self.sigma_for) if self.fast else None

    def price_at(self, t_ms: int) -> float | None:
        if self.core is not None:
            return self.core.price_at(t_ms)
        i = int(np.searchsorted(self.ts, t_ms, side="right")) - 1
        return float(self.px[i]) if i >= 0 else None

    def hour_open(self, hour_start_ms: int) -> float | None:
        """First trade at or after the hour start (Binance 1h kline open)."""
        if self.core is not None:
            return self.core.hour_open(hour_start_ms)
        i = int(np.searchsorted(self.ts, hour_start_ms, side="left"))
        if i >= len(self.ts) or self.ts[i] >= hour_start_ms + HOUR_MS:
            return None
        return float(self.px[i])

    def hour_close(self, hour_start_ms: int) -> float | None:
        i = int(np.searchsorted(self.ts, hour_start_ms + HOUR_MS, side="left")) - 1
        if i < 0 or self.ts[i] < hour_start_ms:
            return None
        return float(self.px[i])

    def fair_up(self, hour_start_ms: int, t_ms: int) -> float:
        """True P(close >= open) seen at ``t_ms`` (0.5 before the hour has an open)."""
        if self.core is not None:
            return self.core.fair_up(hour_start_ms, t_ms)
        return self._fair_up(hour_start_ms, t_ms)

    def _fair_up(self, hour_start_ms: int, t_ms: int) -> float:
        if t_ms < hour_start_ms:
            return 0.5
        k = self.hour_open(hour_start_ms)
        s = self.price_at(t_ms)
        if k is None or s is None:
            return 0.5
        tau_s = max(0.0, (hour_start_ms + HOUR_MS - t_ms) / 1000.0)
        return float(digital_prob(s, k, tau_s, self.sigma_for(hour_start_ms)))

    def sigma_for(self, hour_start_ms: int) -> float:
        """The per-sqrt-second vol the agents treat as true in this hour: the fixed ``sigma`` if one
        was given, else the hour's own realized vol on a 1 s grid (its ticks in [start, start + 1 h)).

        Why the hour's own: a vol taken over the whole loaded path made one hour's flow, and so its
        backtest result, depend on which other hours happened to be loaded with it (the same hour
        gave +9 or +125 USDC with its window starting 1 or 14 hours earlier). The agents already
        trade on the real path's future (informed takers, snipers), so knowing the hour's realized
        vol is the same kind of truth, and it is the same whatever else is loaded."""
        if self.sigma is not None:
            return self.sigma
        v = self._hour_sigma.get(hour_start_ms)
        if v is None:
            a = int(np.searchsorted(self.ts, hour_start_ms, side="left"))
            b = int(np.searchsorted(self.ts, hour_start_ms + HOUR_MS, side="left"))
            v = self._hour_sigma[hour_start_ms] = realized_sigma(self.ts[a:b], self.px[a:b])
        return v


def _tick_floor(p: float, tick: float) -> float:
    return math.floor(p / tick + 1e-9) * tick


@dataclass
class AgentStats:
    maker_quotes: int = 0
    maker_rejects: int = 0
    noise_trades: int = 0
    informed_trades: int = 0
    sniper_trades: int = 0
    taker_rejects: int = 0
    last_fair: dict[str, float] = field(default_factory=dict)


class BackgroundAgents:
    """Makers + noise/informed takers + latency snipers trading on ``exchange``; call :meth:`step`.

    ``targets``: owners the snipers watch (default: every owner that is not an agent, i.e.
    the market maker under test).

    ``fast`` (default True) runs the touch makers' pass compiled
    (:class:`hourmm_core.sim.polymarket.flowcore.TouchMakers`: typed state, the engine's maker place
    and cancel inline, and a maker's pass skipped when it provably does nothing - its view did not
    move and none of its resting orders changed since a pass that left every level at its target,
    per :attr:`Exchange.book_version`) and caches the fee a sniper must beat per price; the actions,
    the random draws and therefore every trade are the same as with ``fast=False`` (the plain-Python
    reference :meth:`_makers_touch` the equivalence tests run).
    """

    def __init__(self, exchange: Exchange, path: PricePath, seed: int = 0,
                 config: AgentConfig | None = None, targets: Iterable[str] | None = None,
                 fast: bool = True) -> None:
        from hourmm_core.sim.polymarket.snipers import LatencySniper

        self.ex = exchange
        self.path = path
        self.cfg = config or AgentConfig()
        self.rng = random.Random(seed)
        self.stats = AgentStats()
        self.makers = [f"agent-maker-{i}" for i in range(self.cfg.n_makers)]
        self.noise = "agent-noise"
        self.informed = "agent-informed"
        self.bias = {m: self.rng.gauss(0.0, self.cfg.maker_bias_sd) for m in self.makers}
        self.half = {m: self.rng.uniform(*self.cfg.maker_half_spread) for m in self.makers}
        self._next_quote: dict[tuple[str, str], int] = {}
        self._resting: dict[tuple[str, str], dict[tuple[str, float], list[str]]] = {}
        self._next_check: dict[tuple[str, str], tuple[int, int]] = {}   # (trade count, ms) of the last check
        self._last_ms: int | None = None
        self._view: dict[tuple[str, str], float] = {}
        self.fast = bool(fast)
        self.sniper = LatencySniper(exchange, path, self.cfg, random.Random(seed * 7919 + 1), self.stats,
                                    targets=targets, agent_owners=self.makers + [self.noise, self.informed],
                                    fast=fast)
        for o in self.makers + [self.noise, self.informed, self.sniper.owner]:
            exchange.deposit(o, self.cfg.fund_usdc)
        # fast path: the touch makers' pass compiled (flowcore.pyx), the reference twin is _makers_touch
        self._touch = TouchMakers(self) if self.fast and self.cfg.maker_style != "legacy" else None

    @property
    def owners(self) -> list[str]:
        return self.makers + [self.noise, self.informed, self.sniper.owner]

    def step(self, now_ms: int, markets: Iterable[Market], snipe: bool = True) -> None:
        """Advance all agents to ``now_ms`` on the given (listed, open) markets.

        ``snipe=False`` leaves the snipers to the caller (the backtest drives them at
        sub-step event times: :meth:`LatencySniper.fire_due` / :meth:`LatencySniper.scan`).
        """
        dt_ms = 0 if self._last_ms is None else max(0, now_ms - self._last_ms)
        self._last_ms = now_ms
        live = []
        for m in markets:
            if m.closed or not m.accepting or now_ms >= m.end_ms:
                continue
            live.append(m)
            hour = m.end_ms - HOUR_MS
            fair = self.path.fair_up(hour, now_ms)
            self.stats.last_fair[m.condition_id] = fair
            if self.cfg.maker_style == "legacy":
                self._makers_legacy(m, fair, now_ms)
            elif self._touch is not None:
                self._touch.run(m, fair, now_ms)
            else:
                self._makers_touch(m, fair, now_ms)
            if dt_ms and now_ms >= hour:
                if self.fast:     # the same takers compiled (flowcore.pyx); _takers is the reference twin
                    takers(self, m, fair, hour, now_ms, dt_ms)
                else:
                    self._takers(m, fair, hour, now_ms, dt_ms)
        if snipe and live:
            self.sniper.fire_due(now_ms)
            self.sniper.scan(now_ms, live)

    # ---------------------------------------------------------------- makers
    def _makers_touch(self, m: Market, fair: float, now_ms: int) -> None:
        """One-tick touch around each maker's view, deeper levels behind.

        Orders are keyed by (token, price): a maker whose view moves by a tick cancels only the
        level that left its ladder and adds the new one, and tops a level up (behind the queue)
        when takers ate it below its target size. Orders that stay keep their queue position.
        """
        c = self.cfg
        tick = m.tick_size
        stop = now_ms >= m.end_ms - c.maker_stop_before_end_ms
        for mk in self.makers:
            key = (mk, m.condition_id)
            rest = self._resting.setdefault(key, {})
            if stop:
                if rest:
                    self.ex.cancel_market(mk, m.condition_id, now_ms)
                    rest.clear()
                continue
            due = now_ms >= self._next_quote.get(key, 0)
            n_tr = len(self.ex._trades)     # the count (placeholders included): nothing built
            last_n, last_t = self._next_check.get(key, (-1, 0))
            if not due and (last_n == n_tr or now_ms < last_t + c.maker_refill_ms):
                continue      # nothing traded since the last look (or refilled just now)
            self._next_check[key] = (n_tr, now_ms)
            if due:
                self._next_quote[key] = now_ms + int(c.maker_requote_ms * self.rng.uniform(0.5, 1.5))
                v = min(0.98, max(0.02, fair + self.bias[mk] + self.rng.gauss(0.0, c.maker_noise_sd)))
                old = self._view.get(key)
                # hysteresis: move the touch only when the view left the current tick by a margin
                if old is None or abs(v - (_tick_floor(old, tick) + tick / 2)) > 0.75 * tick:
                    self._view[key] = v
            view = self._view.get(key, fair)
            b0 = _tick_floor(view, tick)                 # touch bid; ask one tick up
            want = {}
            for lvl in range(c.maker_levels):
                bid_up = round(b0 - lvl * c.maker_level_step, 4)
                bid_dn = round(1.0 - (b0 + tick) - lvl * c.maker_level_step, 4)   # ask Up at 1 - bid_dn
                for tok, px in ((m.up_token, bid_up), (m.down_token, bid_dn)):
                    if tick - 1e-9 <= px <= 1 - tick + 1e-9:
                        want[(tok, px)] = lvl
            for k, oids in list(rest.items()):
                if k not in want:
                    for oid in oids:
                        self.ex.cancel(mk, oid, now_ms)
                    del rest[k]
            orders = self.ex.orders
            for k, lvl in want.items():
                lo, hi = c.maker_size if lvl == 0 else c.maker_depth_size
                oids = [oid for oid in rest.get(k, []) if (o := orders.get(oid)) is not None and o.status == "LIVE"]
                have = sum(orders[oid].remaining_u for oid in oids) / 100.0
                if lvl == 0 and have > 2 * hi:     # a deep level became the touch: resize it
                    for oid in oids:
                        self.ex.cancel(mk, oid, now_ms)
                    oids, have = [], 0.0
                if have < lo:
                    r = self.ex.place(mk, k[0], BUY, k[1], round(self.rng.uniform(lo, hi) - have, 2), "GTC",
                                      post_only=True, now_ms=now_ms)
                    if r.ok:
                        self.stats.maker_quotes += 1
                        if r.status == "live":
                            oids.append(r.order_id)
                    else:
                        self.stats.maker_rejects += 1
                rest[k] = oids

    def _makers_legacy(self, m: Market, fair: float, now_ms: int) -> None:
        c = self.cfg
        tick = m.tick_size
        stop = now_ms >= m.end_ms - c.maker_stop_before_end_ms
        for mk in self.makers:
            key = (mk, m.condition_id)
            if not stop and now_ms < self._next_quote.get(key, 0):
                continue
            self.ex.cancel_market(mk, m.condition_id, now_ms)
            if stop:
                self._next_quote[key] = m.end_ms
                continue
            self._next_quote[key] = now_ms + int(c.maker_requote_ms * self.rng.uniform(0.5, 1.5))
            view = min(0.97, max(0.03, fair + self.bias[mk] + self.rng.gauss(0.0, c.maker_noise_sd)))
            h = self.half[mk]
            for lvl in range(c.maker_levels):
                off = h + lvl * c.maker_level_step
                size = round(self.rng.uniform(*c.maker_size), 2)
                bid_up = _tick_floor(view - off, tick)
                bid_dn = _tick_floor(1.0 - view - off, tick)       # == ask Up at 1 - bid_dn
                for tok, px in ((m.up_token, bid_up), (m.down_token, bid_dn)):
                    if px < tick or px > 1 - tick:
                        continue
                    r = self.ex.place(mk, tok, BUY, round(px, 4), size, "GTC", post_only=True, now_ms=now_ms)
                    if r.ok:
                        self.stats.maker_quotes += 1
                    else:
                        self.stats.maker_rejects += 1

    # ---------------------------------------------------------------- takers
    def _poisson(self, rate_per_min: float, dt_ms: int) -> int:
        lam = rate_per_min * dt_ms / 60_000.0
        if lam <= 0:
            return 0
        n, p, L = 0, 1.0, math.exp(-min(lam, 50.0))
        while True:
            p *= self.rng.random()
            if p <= L:
                return n
            n += 1

    def _size(self, legacy: tuple[float, float]) -> float:
        c = self.cfg
        if c.maker_style == "legacy":
            return self.rng.uniform(*legacy)
        return max(1.0, min(c.noise_size_max, c.noise_size_median * math.exp(self.rng.gauss(0.0, c.noise_size_logsd))))

    def _take(self, owner: str, m: Market, buy_up: bool, size: float, slip: float, now_ms: int) -> bool:
        tok = m.up_token if buy_up else m.down_token
        _, ask = self.ex.best(tok)
        if ask is None:
            return False
        px = min(1 - m.tick_size, _tick_floor(ask + slip, m.tick_size))
        ok = self.ex.place(owner, tok, BUY, round(px, 4), round(size, 2), "FAK", now_ms=now_ms).ok
        if not ok:
            self.stats.taker_rejects += 1
        return ok

    def _takers(self, m: Market, fair: float, hour: int, now_ms: int, dt_ms: int) -> None:
        c = self.cfg
        for _ in range(self._poisson(c.noise_takers_per_min, dt_ms)):
            if self._take(self.noise, m, self.rng.random() < 0.5, self._size(c.noise_taker_size),
                          c.noise_taker_slippage, now_ms):
                self.stats.noise_trades += 1
        for _ in range(self._poisson(c.informed_per_min, dt_ms)):
            t_f = min(now_ms + c.informed_lookahead_ms, m.end_ms - 1)
            f_fut = self.path.fair_up(hour, t_f)
            _, ask_up = self.ex.best(m.up_token)
            _, ask_dn = self.ex.best(m.down_token)
            size = self._size(c.informed_size)
            if ask_up is not None and f_fut > ask_up + c.informed_edge:
                if self._take(self.informed, m, True, size, 0.0, now_ms):
                    self.stats.informed_trades += 1
            elif ask_dn is not None and (1 - f_fut) > ask_dn + c.informed_edge:
                if self._take(self.informed, m, False, size, 0.0, now_ms):
                    self.stats.informed_trades += 1
