"""The backtest loop: the live trader's decision core, under the live execution rules, against the
simulator engine, with pluggable latency / flow / fee models (:mod:`hourmm_core.research.models`).

Why this shape: the quantity a researcher wants is "what would *our trader* have
earned", so nothing is re-implemented here. Each simulated hour:

* the venue is the Polymarket simulator's matching engine
  (:class:`hourmm_core.sim.polymarket.engine.Exchange`), driven in-process on simulated
  time and charging the market's fee schedule (``models.fee``), with the counterparty
  flow of ``models.flow`` (default: the simulator's background agents - makers, noise
  takers, informed takers that look ahead on the real path) as the other side of trades;
* the trader is :class:`hourmm_core.trading.decision.DecisionCore` - session phases,
  risk modes and limits, the strategy's ladder, the pre-trade check and the order
  manager's diff and rate limit - exactly the code container B runs;
* its actions are sent by the live Trader's rules (:func:`~hourmm_core.trading.decision.
  post_only_for`, :func:`~hourmm_core.trading.decision.places_allowed`): cancels first;
  the places of a plan only once those cancels are answered and only if none failed on a
  still-open order; the batch is post-only except while flattening;
* ``models.latency`` delays each send (``entry_ms``) and each answer (``response_ms``) on
  a due-time queue; with ``ConstantLatency(0, 0)`` everything happens at the decision
  instant;
* the trader's fair value is container A's (:mod:`hourmm_core.research.fair`: the model and
  parameters of ``PricerConfig``, ``fair_up``/``fair_unc`` as the live snapshot publishes them,
  None before the hour's first trade) on the same ticks;
* at the close the engine stops the market and resolves it (1 USDC per winning token);
  the research ledger books the fee the engine charged on every fill of ours, so the
  ledger's PnL and the engine's balance must agree exactly (checked every hour).

Data freshness: historical ticks are treated as always fresh (``fresh=True``):
staleness is a property of the live feed, not of the price path.
"""
from __future__ import annotations

import gc
import heapq
import itertools
import logging
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.evidence import hour_detail
from hourmm_core.research.fair import fair_unc_path
from hourmm_core.research.ledger import HourLedger, HourResult, hour_result
from hourmm_core.sim.polymarket.agents import PricePath
from hourmm_core.sim.polymarket.engine import BUY as E_BUY
from hourmm_core.sim.polymarket.engine import SELL as E_SELL
from hourmm_core.sim.polymarket.engine import Exchange, Market
from hourmm_core.trading.decision import DecisionCore, MarketRef, places_allowed, post_only_for
from hourmm_core.trading.order_manager import Order
from hourmm_core.trading.strategy import BookTop
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Fill

if TYPE_CHECKING:  # the params module imports this one at run time, not the reverse
    from hourmm_core.research.backtest import BacktestParams

log = logging.getLogger(__name__)

US = "hourmm-backtest"

_PATH_CACHE: dict[tuple[int, int, int, float | None, bool], PricePath] = {}


def describe() -> str:
    return "trader DecisionCore (strategy, ladder, risk, order manager) under the live execution rules " \
           "vs sim Exchange + flow model"


def _price_path(ts_ms: np.ndarray, price: np.ndarray, sigma_truth: float | None, fast: bool = True) -> PricePath:
    """The agents' view of the real path (cached per loaded array: building it costs a pass)."""
    key = (id(ts_ms), int(ts_ms.size), int(ts_ms[0]) if ts_ms.size else 0, sigma_truth, bool(fast))
    p = _PATH_CACHE.get(key)
    if p is None:
        _PATH_CACHE.clear()
        # sigma_truth None: each hour's own realized vol (PricePath.sigma_for), whatever else is loaded
        p = _PATH_CACHE[key] = PricePath(SimpleNamespace(ts_ms=ts_ms, price=price), sigma=sigma_truth, fast=fast)
    return p


class _DueQueue:
    """Our events (callbacks) ordered by due time, then by the order they were scheduled.
    ``venue``: the event acts on the venue (the flow then sees the book at once)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[int], None], bool]] = []
        self._seq = itertools.count()

    def at(self, due_ms: int, fn: Callable[[int], None], venue: bool = False) -> None:
        heapq.heappush(self._heap, (int(due_ms), next(self._seq), fn, venue))

    def next_due(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop_run(self) -> tuple[int, bool]:
        due, _, fn, venue = heapq.heappop(self._heap)
        fn(due)
        return due, venue


@dataclass
class HourVenue:
    """The simulated venue of one backtest hour: engine, market, counterparty flow, our account."""

    ex: Exchange
    cid: str
    up_id: str
    dn_id: str
    market: Market
    market_ref: MarketRef
    flow: Any
    capital: float


def open_hour(params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray, hour_start: int,
              fast: bool = True) -> HourVenue:
    """List the hour's market on a fresh engine (fee ``params.models.fee``), fund our account,
    start the flow model and let its makers post their first quotes before the open. Also
    what a test uses to drive the live Trader on the very same venue."""
    models = params.models
    end = hour_start + HOUR_MS
    hour_idx = hour_start // HOUR_MS
    ex = Exchange(seed=int(params.seed), fee=models.fee)
    cid, up_id, dn_id = f"bt-{hour_idx}", f"{hour_idx}1", f"{hour_idx}2"
    market = ex.list_market(cid, up_id, dn_id, hour_start, end, tick_size=params.tick_size, min_size=params.min_size)
    capital = 2.0 * params.limits.max_reserved_capital + 100.0
    ex.deposit(US, capital)
    flow = models.flow.build(ex, _price_path(ts_ms, price, models.flow.sigma_truth, fast),
                             int(params.seed) * 1_000_003 + hour_idx, targets=(US,), fast=fast)
    flow.step(hour_start - 1, [market])  # makers post their first quotes before the open
    ref = MarketRef(f"backtest-{hour_idx}", cid, up_id, dn_id, hour_start, end, params.tick_size, params.min_size,
                    fee=models.fee)
    return HourVenue(ex, cid, up_id, dn_id, market, ref, flow, capital)


def run_hour(params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray, hour_start: int,
             first: int, last: int, sigma: np.ndarray, fast: bool = True) -> tuple[HourResult, dict[str, Any]]:
    """Trade one hour on simulated time and settle it; returns (row, inventory path).

    ``fast=False`` runs the reference path (the venue's agents without their exact
    shortcuts); the results are identical (tests/unit/research/test_fast_path.py).

    The cyclic garbage collector is paused for the hour (and restored, whatever happens): the
    loop allocates ~10^5 short-lived objects an hour, none of them left in reference cycles (the
    venue's unread trade placeholders are discarded at the hour's end), so the
    collector's generation-0 passes found nothing and cost ~5 % of the hour's CPU. Results do not
    depend on it (refcounting frees everything as before; cycles wait for the next collection)."""
    if not gc.isenabled():
        return _run_hour(params, ts_ms, price, hour_start, first, last, sigma, fast)
    gc.disable()
    try:
        return _run_hour(params, ts_ms, price, hour_start, first, last, sigma, fast)
    finally:
        gc.enable()


def _run_hour(params: BacktestParams, ts_ms: np.ndarray, price: np.ndarray, hour_start: int,
              first: int, last: int, sigma: np.ndarray, fast: bool) -> tuple[HourResult, dict[str, Any]]:
    models = params.models
    end = hour_start + HOUR_MS
    hour_idx = hour_start // HOUR_MS
    grid, fair, _, unc = fair_unc_path(ts_ms, price, hour_start, first, params, sigma, params.decision_ms)

    v = open_hour(params, ts_ms, price, hour_start, fast)
    ex, cid, up_id, dn_id, market, flow = v.ex, v.cid, v.up_id, v.dn_id, v.market, v.flow
    lat = models.latency
    rng = random.Random(int(params.seed) * 7_919 + hour_idx)

    core = DecisionCore(params.limits, params.schedule, params.strategy,
                        params.requote_price_tol, params.requote_size_tol)
    core.set_market(v.market_ref)
    om = core.om
    # in-process venue: our fills and the book are always visible (the live loop gets these
    # from the user/market WebSockets and REST health)
    core.risk.on_user_ws(True, hour_start)
    core.risk.on_market_ws(True, hour_start)
    core.risk.on_rest(True, hour_start)

    led = HourLedger(hour_start)
    counters = {"orders": 0, "cancels": 0, "risk_rejects": 0, "venue_rejects": 0, "taker_fills": 0,
                "dropped_places": 0, "merges": 0}
    path: dict[str, Any] = {"ts_ms": [], "pos_up": [], "pos_down": [], "fair_up": [], "decisions": []}
    counterparty: list[str] = []          # taker owner of each of our fills ("" = we took)
    seen_trades = 0
    tok_of = {up_id: UP, dn_id: DOWN}
    q = _DueQueue()

    def book(tok_id: str) -> BookTop:
        b, a = ex.best(tok_id)
        return BookTop(b, a)

    def book_fill(f: Fill, who: str) -> None:
        """The ledger books the fill at the venue's time; the trader sees it ``response_ms`` later."""
        led.apply(f)
        counterparty.append(who)
        q.at(f.ts_ms + lat.response_ms(f.ts_ms, rng), lambda _t, f=f: om.on_fill(f))

    def collect_maker_fills(ts: int) -> None:
        nonlocal seen_trades
        if ex.trade_count(US) == seen_trades:
            return
        for tr in ex.trades_since(US, seen_trades):  # our new trade records (as taker or maker), in order
            seen_trades += 1
            for e in tr["maker_orders"]:
                if e["owner"] != US:
                    continue
                book_fill(Fill(f"{tr['id']}:{e['order_id']}", e["order_id"], tok_of[e["asset_id"]],
                               BUY if e["side"] == E_BUY else SELL, float(e["price"]),
                               float(e["matched_amount"]), int(tr.get("match_time_ms", ts)), 0.0, True),
                          str(tr.get("owner", "")))

    # ---- sending, as Trader._execute does: cancels, their answers, then the places (one batch) ----
    def send_merge(size: float, t: int) -> None:
        """CTF merge of Up+Down pairs (``Decision.merge``), landing ``entry_ms`` after the decision."""
        def at_venue(tv: int) -> None:
            ok_sz = min(size, ex.token_available(US, up_id), ex.token_available(US, dn_id),
                        led.pos[UP], led.pos[DOWN])
            ok_sz = int(ok_sz * 100 + 1e-9) / 100.0
            if ok_sz > 0:
                ex.merge(US, cid, ok_sz, tv)
                led.merge(tv, ok_sz)
                om.on_merge(ok_sz)
                counters["merges"] += 1

        q.at(t + lat.entry_ms(t, rng), at_venue, venue=True)

    def send_places(places: list[Order], failed: list[Order | None], t: int) -> None:
        if not places:
            return
        if not places_allowed(failed):
            counters["dropped_places"] += len(places)
            for o in places:
                om.on_reject(o, "not sent: a cancel of the same plan failed", t)
            return
        post_only = post_only_for(core.session.phase, core.risk.mode)
        for o in places:
            om.on_sent(o, t)
        q.at(t + lat.entry_ms(t, rng), lambda tv: places_at_venue(places, post_only, tv), venue=True)

    def places_at_venue(places: list[Order], post_only: bool, t: int) -> None:
        for o in places:
            tok_id = up_id if o.token == UP else dn_id
            r = ex.place(US, tok_id, E_BUY if o.side == BUY else E_SELL, o.price, o.size, "GTC",
                         post_only=post_only, now_ms=t)
            fills: list[Fill] = []
            if r.ok:
                counters["orders"] += 1
                for j, f in enumerate(r.fills):  # we were the taker: price is in our token's terms
                    counters["taker_fills"] += 1
                    fills.append(Fill(f"{r.order_id}:t{j}", r.order_id, o.token, o.side, f.price, f.size, t,
                                      f.taker_fee, False))
                    led.apply(fills[-1])
                    counterparty.append("")
            else:
                counters["venue_rejects"] += 1
            q.at(t + lat.response_ms(t, rng), lambda tr, o=o, r=r, fills=fills: place_answer(o, r, fills, tr))
            collect_maker_fills(t)  # self-trades show up as maker fills too

    def place_answer(o: Order, r: Any, fills: list[Fill], t: int) -> None:
        if not r.ok:
            om.on_reject(o, r.error_msg, t)
            return
        for f in fills:
            om.on_fill(f)
        om.on_ack(o, r.order_id, r.status, t)

    def send_cancels(cancels: list[Order], places: list[Order], t: int) -> None:
        for o in cancels:
            om.on_cancel_sent(o, t)

        def at_venue(tv: int) -> None:
            res = []
            for o in cancels:
                counters["cancels"] += 1
                res.append((o, *ex.cancel(US, o.order_id, tv)))
                collect_maker_fills(tv)
            q.at(tv + lat.response_ms(tv, rng), lambda ta: cancels_answered(res, places, ta))

        q.at(t + lat.entry_ms(t, rng), at_venue, venue=True)

    def cancels_answered(res: list[tuple[Order, bool, str]], places: list[Order], t: int) -> None:
        failed = []
        for o, ok, why in res:
            if ok:
                om.on_cancelled(o.order_id, t)
            else:
                failed.append(om.on_cancel_failed(o.order_id, why, t))
        send_places(places, failed, t)

    heap = q._heap                        # the due-time queue's heap: its head read in place (hot loop)
    pop_run = q.pop_run
    next_flow = flow.next_event_ms

    def run_events(t_end: int) -> None:
        """Our due events and the flow's sub-second events in (.., t_end], in time order
        (ours first on a tie); the flow sees the book right after our orders landed."""
        while True:
            ta, tf = heap[0][0] if heap else None, next_flow()
            if ta is not None and ta <= t_end and (tf is None or ta <= tf):
                due, venue = pop_run()
                if venue:
                    flow.react(due, mkts)
            elif tf is not None and tf <= t_end:
                flow.fire(tf)
                collect_maker_fills(tf)
            else:
                return

    def run_ours(t_end: int) -> None:
        while heap and heap[0][0] <= t_end:
            due, venue = pop_run()
            if venue:
                flow.react(due, mkts)

    mkts = [market]
    # decide()'s fair arguments per grid step: the same floats as float(fair[i]) (no numpy scalars),
    # None where the fair is NaN (container A publishes fair_up null before the hour's first trade)
    fair_l = fair.tolist()
    fair_in = [f if f == f else None for f in fair_l]
    unc_in = [u if f == f else None for f, u in zip(fair_l, unc.tolist())]
    decide = core.decide
    best_pair = ex.best_pair
    tops: dict[tuple, BookTop] = {}
    flow_step, flow_react = flow.step, flow.react
    prune = om.prune
    decisions = path["decisions"].append
    p_ts, p_up, p_dn, p_fair = (path["ts_ms"].append, path["pos_up"].append, path["pos_down"].append,
                                path["fair_up"].append)
    for i, t in enumerate(grid.tolist()):
        run_events(t - 1)
        flow_step(t, mkts)
        collect_maker_fills(t)
        if heap and heap[0][0] <= t:
            run_ours(t)               # e.g. those fills reaching the trader (zero response latency)
        flow_react(t, mkts)           # zero-delay view of the price at t
        if fast:
            up_key, dn_key = best_pair(market)
            up_top = tops.get(up_key)     # BookTop is immutable: one object per (bid, ask) seen
            if up_top is None:
                up_top = tops[up_key] = BookTop(*up_key)
            dn_top = tops.get(dn_key)
            if dn_top is None:
                dn_top = tops[dn_key] = BookTop(*dn_key)
        else:
            up_top, dn_top = book(up_id), book(dn_id)
        d = decide(t, fair_in[i], unc_in[i], True, up_top, dn_top)
        actions = d.actions
        mg = d.merge
        if actions:
            rec, cancels, places = [], [], []
            for a in actions:             # one pass: the record, the cancels (acked ones), the places
                o = a.order
                kind = a.kind
                rec.append((kind, o.token, o.side, o.price, o.size))
                if kind == "place":
                    places.append(o)
                elif kind == "cancel" and o.order_id:
                    cancels.append(o)
            decisions((t, tuple(rec)))
            if mg > 0:
                send_merge(mg, t)
            if cancels:
                send_cancels(cancels, places, t)
            else:
                send_places(places, [], t)
        elif mg > 0:
            send_merge(mg, t)
        run_events(t)
        plan = d.plan
        if plan is not None and plan.rejected:
            counters["risk_rejects"] += len(plan.rejected)
        prune(keep_final=5)  # bounded memory, as a long-running trader must
        pos = led.pos                 # (a merge replaces the ledger's list)
        p_ts(t)
        p_up(pos[UP])
        p_dn(pos[DOWN])
        p_fair(fair_l[i])

    run_events(end - 1)  # answers due after the close are moot: the market is over
    open_px, close_px = float(price[first]), float(price[last])
    up_won = close_px >= open_px
    ex.stop_market(cid, end)
    collect_maker_fills(end)
    paid = ex.resolve(cid, up_won, end).get(US, 0.0)
    res = hour_result(led, open_px, close_px, grid, fair, counters)
    usdc_after = ex.balances(US)["usdc"]
    engine_pnl = usdc_after - v.capital
    # the engine and the research ledger must agree: same payout, same PnL (the same fees)
    gap = engine_pnl - res.pnl
    if abs(res.settlement - paid) > 1e-6 or abs(gap) > 1e-6:
        log.error("backtest hour %d: engine and ledger disagree: engine pnl %.6f paid %.6f, ledger pnl %.6f "
                  "settle %.6f", hour_start, engine_pnl, paid, res.pnl, res.settlement)
        counters["ledger_mismatch"] = 1
    truth = _price_path(ts_ms, price, params.models.flow.sigma_truth, fast)   # the venue's (snipers') fair
    true_fair = np.array([truth.fair_up(hour_start, t) for t in grid.tolist()])   # (compiled when fast)
    res.detail = hour_detail(led, counterparty, grid, fair, path, up_won, params, hour_start,
                             snipes=flow.snipes() if hasattr(flow, "snipes") else None, true_fair=true_fair)
    path["engine_pnl"] = engine_pnl
    path["fills"] = [(f.ts_ms, f.token, f.side, f.price, f.size, f.fee, f.maker) for f in led.fills]
    stats = getattr(flow, "stats", None)
    if stats is not None:
        path["agents"] = {"noise_trades": stats.noise_trades, "informed_trades": stats.informed_trades,
                          "sniper_trades": getattr(stats, "sniper_trades", 0)}
    path["counters"] = counters
    path["rejects"] = dict(core.rejects)
    ex.forget_unread_trades()   # the hour is read: its unread trade placeholders would keep the venue in cycles
    return res, path
