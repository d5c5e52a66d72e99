"""The default backtest components: the live trader's decision core against the simulator engine.

Why this shape: the quantity a researcher wants is "what would *our trader* have
earned", so nothing is re-implemented here. Each simulated hour:

* the venue is the Polymarket simulator's matching engine
  (:class:`hourmm_core.sim.polymarket.engine.Exchange`), driven in-process on
  simulated time, with its :class:`~hourmm_core.sim.polymarket.agents.BackgroundAgents`
  (makers, noise takers, informed takers that look ahead on the real path) as
  the other side of every trade;
* the trader is :class:`hourmm_core.trading.decision.DecisionCore` - session
  phases (ACTIVE / WIND_DOWN / FLATTEN / HARD_CUTOFF from ``t_wind_ms`` etc.),
  risk modes and limits, the strategy's ladder, the pre-trade check and the
  order manager's diff and rate limit - exactly the code container B runs;
* the trader's fair value is the research pricer (compiled ``fair_prob_batch``
  with the EWMA sigma of ``halflife_s``/``sample_ms``) on the same ticks, and its
  ``fair_unc`` is ``|p(sigma) - p(sigma of halflife_alt_s)|`` as in the live snapshot;
* at the close the engine stops the market and resolves it (1 USDC per winning
  token), and the research ledger settles the same way: the two must agree.

Order flags as the live executor sends them: ladder quotes are GTC post-only;
a reducing SELL priced at or through the token's best bid (the FLATTEN exit) is
sent without post-only so it can take liquidity, and pays the taker fee.

Fees: the engine charges the market's schedule ``params.fee``
(:mod:`hourmm_core.fees`, default the venue's crypto schedule) to every taker; the
ledger books exactly the fee the engine charged on each of our fills (makers pay
nothing), so the ledger's PnL equals the engine's to the micro-USDC.

Data freshness: historical ticks are treated as always fresh (``fresh=True``):
staleness is a property of the live feed, not of the price path.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np

from hourmm_core.clock import HOUR_MS

from .backtest import (BUY, DOWN, SELL, UP, BacktestParams, Components, Fill, HourLedger, HourResult,
                       fair_unc_path, hour_result)

log = logging.getLogger(__name__)

US = "hourmm-backtest"


class TraderEngineComponents(Components):
    """Trader decision core + simulator engine + background agents (see module docstring).

    ``sigma_truth``: per-sqrt-second sigma the agents use for the *true* fair value
    (default: realized over the whole loaded path, as the loopback simulator does).
    """

    name = "trader+engine"

    def __init__(self, sigma_truth: float | None = None) -> None:
        # fail early and clearly if a part is missing
        from hourmm_core.sim.polymarket import agents, engine  # noqa: F401
        from hourmm_core.trading import decision  # noqa: F401

        self.sigma_truth = sigma_truth
        self._path_key: tuple[int, int, int] | None = None
        self._path: Any = None

    def describe(self) -> str:
        return "trader DecisionCore (strategy, ladder, risk, order manager) vs sim Exchange + BackgroundAgents"

    # ------------------------------------------------------------------ helpers
    def _price_path(self, ts_ms: np.ndarray, price: np.ndarray) -> Any:
        from hourmm_core.sim.polymarket.agents import PricePath

        key = (id(ts_ms), int(ts_ms.size), int(ts_ms[0]) if ts_ms.size else 0)
        if self._path_key != key:
            sig = self.sigma_truth if self.sigma_truth is not None else _realized_sigma(ts_ms, price)
            self._path = PricePath(SimpleNamespace(ts_ms=ts_ms, price=price), sigma=sig)
            self._path_key = key
        return self._path

    # ------------------------------------------------------------------ one hour
    def run_hour(self, params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray, hour_start: int,
                 first: int, last: int, sigma: np.ndarray) -> tuple[HourResult, dict[str, Any]]:
        """Trade one hour on simulated time and settle it; returns (row, inventory path)."""
        from hourmm_core.sim.polymarket.agents import AgentConfig, BackgroundAgents
        from hourmm_core.sim.polymarket.engine import BUY as E_BUY
        from hourmm_core.sim.polymarket.engine import SELL as E_SELL
        from hourmm_core.sim.polymarket.engine import Exchange
        from hourmm_core.trading.decision import DecisionCore, MarketRef
        from hourmm_core.trading.order_manager import Fill as OmFill
        from hourmm_core.trading.risk_engine import Limits
        from hourmm_core.trading.session import Schedule
        from hourmm_core.trading.strategy import BookTop, StrategyParams

        end = hour_start + HOUR_MS
        hour_idx = hour_start // HOUR_MS
        grid, fair, _, unc = fair_unc_path(ts_ms, price, hour_start, first, params, sigma, params.decision_ms)

        ex = Exchange(seed=int(params.seed), fee=params.fee)
        cid, up_id, dn_id = f"bt-{hour_idx}", f"{hour_idx}1", f"{hour_idx}2"
        ex.list_market(cid, up_id, dn_id, hour_start, end, tick_size=params.tick_size, min_size=params.min_size)
        market = ex.markets[cid]
        capital = 2.0 * params.max_reserved_capital + 100.0
        ex.deposit(US, capital)
        agents = BackgroundAgents(ex, self._price_path(ts_ms, price), seed=int(params.seed) * 1_000_003 + hour_idx,
                                  config=AgentConfig(**dict(params.agents)))
        agents.step(hour_start - 1, [market])  # makers post their first quotes before the open

        sp = StrategyParams(**{k: getattr(params, k) for k in StrategyParams.__dataclass_fields__})
        limits = Limits(params.max_reserved_capital, params.max_position_size, params.max_order_size,
                        params.max_open_orders)
        core = DecisionCore(limits, Schedule(params.t_wind_ms, params.t_flatten_ms, params.hard_cutoff_ms), sp,
                            params.requote_price_tol, params.requote_size_tol)
        core.set_market(MarketRef(f"backtest-{hour_idx}", cid, up_id, dn_id, hour_start, end,
                                  params.tick_size, params.min_size))
        # in-process venue: our fills and the book are always visible (the live loop gets these
        # from the user/market WebSockets and REST health)
        core.risk.on_user_ws(True, hour_start)
        core.risk.on_market_ws(True, hour_start)
        core.risk.on_rest(True, hour_start)

        led = HourLedger(hour_start)
        counters = {"orders": 0, "cancels": 0, "risk_rejects": 0, "venue_rejects": 0, "taker_fills": 0, "merges": 0}
        path: dict[str, list] = {"ts_ms": [], "pos_up": [], "pos_down": [], "fair_up": []}
        seen_trades = 0
        tok_of = {up_id: UP, dn_id: DOWN}
        counterparty: list[str] = []          # taker owner of each of our fills ("" = we took)
        sniper = agents.sniper
        sniper.targets = {US}
        lat = max(0, int(params.order_latency_ms))

        def book(tok_id: str) -> BookTop:
            b, a = ex.best(tok_id)
            return BookTop(b, a)

        def apply(ts: int, token: int, side: int, px: float, size: float, maker: bool, trade_id: str,
                  order_id: str, fee: float, who: str) -> None:
            f = Fill(int(ts), token, side, float(px), float(size), float(fee), maker)
            led.apply(f)
            counterparty.append(who)
            core.om.on_fill(OmFill(trade_id, order_id, token, side, float(px), float(size), int(ts), float(fee)))

        def collect_maker_fills(ts: int) -> None:
            nonlocal seen_trades
            trades = ex.trades(US)  # our trade records (as taker or maker), in order
            while seen_trades < len(trades):
                tr = trades[seen_trades]
                seen_trades += 1
                for e in tr["maker_orders"]:
                    if e["owner"] != US:
                        continue
                    apply(int(tr.get("match_time_ms", ts)), tok_of[e["asset_id"]], BUY if e["side"] == E_BUY else SELL,
                          float(e["price"]), float(e["matched_amount"]), True, f"{tr['id']}:{e['order_id']}",
                          e["order_id"], 0.0, str(tr.get("owner", "")))

        def execute(t: int, actions: list, merge: float) -> None:
            """Our actions reach the venue (``lat`` ms after the decision that made them)."""
            if merge > 0:
                ok_sz = min(merge, ex.token_available(US, up_id), ex.token_available(US, dn_id),
                            led.pos[UP], led.pos[DOWN])
                ok_sz = int(ok_sz * 100 + 1e-9) / 100.0
                if ok_sz > 0:
                    ex.merge(US, cid, ok_sz, t)
                    led.merge(t, ok_sz)
                    core.om.on_merge(ok_sz)
                    counters["merges"] += 1
            for a in actions:
                o = a.order
                if a.kind == "cancel":
                    ok, why = ex.cancel(US, o.order_id, t)
                    counters["cancels"] += 1
                    collect_maker_fills(t)
                    if ok:
                        core.om.on_cancelled(o.order_id, t)
                    else:
                        core.om.on_cancel_failed(o.order_id, why, t)
                    continue
                tok_id = up_id if o.token == UP else dn_id
                best_bid = ex.best(tok_id)[0]
                marketable = o.side == SELL and o.reduce and best_bid is not None and o.price <= best_bid + 1e-9
                r = ex.place(US, tok_id, E_BUY if o.side == BUY else E_SELL, o.price, o.size, "GTC",
                             post_only=not marketable, now_ms=t)
                if not r.ok:
                    counters["venue_rejects"] += 1
                    core.om.on_reject(o, r.error_msg, t)
                    continue
                counters["orders"] += 1
                for j, f in enumerate(r.fills):  # we were the taker: price is in our token's terms
                    counters["taker_fills"] += 1
                    apply(t, o.token, o.side, f.price, f.size, False, f"{r.order_id}:t{j}", r.order_id, f.taker_fee, "")
                core.om.on_ack(o, r.order_id, r.status, t)
                collect_maker_fills(t)  # self-trades show up as maker fills too

        pending: list[tuple[int, list, float]] = []   # (lands_at, actions, merge size), in time order

        def run_until(t_end: int) -> None:
            """Venue events in (.., t_end] in time order: sniper shots and our landing actions."""
            while True:
                ts_s = sniper.next_due()
                ts_a = pending[0][0] if pending else None
                if ts_a is not None and ts_a <= t_end and (ts_s is None or ts_a <= ts_s):
                    ta, acts, mg = pending.pop(0)
                    execute(ta, acts, mg)
                    sniper.scan(ta, [market])          # the snipers see our new quotes at once
                elif ts_s is not None and ts_s <= t_end:
                    sniper.fire_due(ts_s)
                    collect_maker_fills(ts_s)
                else:
                    return

        g = grid.tolist()
        for i, t in enumerate(g):
            run_until(t - 1)
            agents.step(t, [market], snipe=False)
            collect_maker_fills(t)
            sniper.scan(t, [market])                 # zero-delay view of the price at t
            d = core.decide(t, float(fair[i]), float(unc[i]), True, book(up_id), book(dn_id))
            for a in d.actions:                      # the order manager's view: sent now, lands later
                if a.kind == "cancel":
                    core.om.on_cancel_sent(a.order, t)
                else:
                    core.om.on_sent(a.order, t)
            mg = float(getattr(d, "merge", 0.0) or 0.0)
            if lat == 0:
                execute(t, d.actions, mg)
                sniper.scan(t, [market])
            elif d.actions or mg > 0:
                pending.append((t + lat, d.actions, mg))
            counters["risk_rejects"] += len(d.plan.rejected) if d.plan is not None else 0
            core.om.prune(keep_final=5)  # bounded memory, as a long-running trader must
            path["ts_ms"].append(t)
            path["pos_up"].append(led.pos[UP])
            path["pos_down"].append(led.pos[DOWN])
            path["fair_up"].append(float(fair[i]))
        run_until(end - 1)

        open_px, close_px = float(price[first]), float(price[last])
        up_won = close_px >= open_px
        ex.stop_market(cid, end)
        collect_maker_fills(end)
        paid = ex.resolve(cid, up_won, end).get(US, 0.0)
        res = hour_result(led, open_px, close_px, grid, fair, counters)
        usdc_after = ex.balances(US)["usdc"]
        engine_pnl = usdc_after - capital
        # the engine and the research ledger must agree: same payout, same PnL (the same fees)
        gap = engine_pnl - res.pnl
        if abs(res.settlement - paid) > 1e-6 or abs(gap) > 1e-6:
            log.error("backtest hour %d: engine and ledger disagree: engine pnl %.6f paid %.6f, ledger pnl %.6f "
                      "settle %.6f", hour_start, engine_pnl, paid, res.pnl, res.settlement)
            counters["ledger_mismatch"] = 1
        from hourmm_core.research.evidence import hour_detail

        res.detail = hour_detail(led, counterparty, grid, fair, path, up_won, params, hour_start,
                                 snipes={"shots": sniper.shots, "misses": sniper.misses})
        path["engine_pnl"] = engine_pnl
        path["fills"] = [(f.ts_ms, f.token, f.side, f.price, f.size, f.fee, f.maker) for f in led.fills]
        path["agents"] = {"noise_trades": agents.stats.noise_trades, "informed_trades": agents.stats.informed_trades,
                          "sniper_trades": agents.stats.sniper_trades}
        path["counters"] = counters
        path["rejects"] = dict(core.rejects)
        return res, path


def _realized_sigma(ts_ms: np.ndarray, price: np.ndarray, sample_ms: int = 1000) -> float:
    """Per-sqrt-second log vol of the whole path on a ``sample_ms`` grid (what the agents treat as truth)."""
    if ts_ms.size < 3:
        return 5e-5
    grid = np.arange(int(ts_ms[0]), int(ts_ms[-1]), sample_ms, dtype=np.int64)
    if grid.size < 3:
        return 5e-5
    idx = np.clip(np.searchsorted(ts_ms, grid, side="right") - 1, 0, ts_ms.size - 1)
    r = np.diff(np.log(price[idx]))
    s = float(np.std(r)) / (sample_ms / 1000.0) ** 0.5
    return s if s > 0 and np.isfinite(s) else 5e-5
