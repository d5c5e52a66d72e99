"""The live Trader and the backtest take the same decisions on the same real hour, same models.

Both run on one REAL hour of BTC (the Binance 1-minute klines in /work/shared/data, as the
open/close of each minute; through :func:`hourmm_core.data.load_ticks` once it serves kline
data) against identical simulator venues (:func:`engine_backtest.open_hour`: the matching
engine with the venue's fee schedule and the simulator's background agents, same seed), with
``ConstantLatency(0, 0)``:

* the backtest is :func:`hourmm_core.research.engine_backtest.run_hour`;
* the live side is the real :class:`hourmm_core.trading.trader.Trader` (its ``cycle`` -
  decision, cancel-all, ``_execute`` with the live execution rules - and its executor
  protocol), stepped on the same decision grid by a simulated clock, with the engine behind
  a tiny executor adapter. Our fills reach the trader's order manager as the user WebSocket
  handler would deliver them.

Every decision (time, and each action's kind/token/side/price/size) must be identical.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from hourmm_core import data
from hourmm_core.clock import HOUR_MS
from hourmm_core.config import TraderConfig
from hourmm_core.research import calibration as cal
from hourmm_core.research import engine_backtest as eb
from hourmm_core.research.backtest import BacktestParams
from hourmm_core.research.fair import fair_unc_path
from hourmm_core.sim.polymarket.engine import BUY as E_BUY
from hourmm_core.trading.snapshot_client import Snapshot
from hourmm_core.trading.trader import Trader
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Fill, PlaceResult
from tests.conftest import REAL_DATA as DATA
from tests.conftest import real_minutes

pytestmark = pytest.mark.timeout(600)

HOUR = 1_747_922_400_000          # 2025-05-22 14:00Z (tuning window April-May 2025)
DECISION_MS = 5_000


def _real_ticks() -> tuple[np.ndarray, np.ndarray]:
    """Two hours (warm-up + the traded hour) of real BTC prices."""
    try:
        t = data.load_ticks(HOUR - HOUR_MS, HOUR + HOUR_MS, data_dir=DATA, allow_synthetic=False)
        if len(t) and t.source != data.SOURCE_SYNTHETIC:
            return np.asarray(t.ts_ms, dtype=np.int64), np.asarray(t.price, dtype=np.float64)
    except FileNotFoundError:
        pass
    return real_minutes(HOUR - HOUR_MS, HOUR + HOUR_MS, min_minutes=110)


class _Clock:
    """Simulated time set by the test (the Clock protocol)."""

    speed = 1.0

    def __init__(self) -> None:
        self.t = 0

    def now_ms(self) -> int:
        return self.t

    def sleep_s_for_sim_ms(self, sim_ms: float) -> float:
        return sim_ms / 1000.0


class _EngineExecutor:
    """The trader's executor protocol over the simulator engine (our account ``eb.US``)."""

    def __init__(self, v: eb.HourVenue, clock: _Clock, trader: list) -> None:
        self.v, self.clock, self.trader = v, clock, trader

    async def place(self, token_id, side, price, size, *, tick_size, neg_risk, post_only, client_id):
        t = self.clock.t
        r = self.v.ex.place(eb.US, token_id, side, price, size, "GTC", post_only=post_only, now_ms=t)
        self.v.flow.react(t, [self.v.market])   # the snipers see our new quote at once
        if not r.ok:
            return PlaceResult(False, error=r.error_msg)
        tok = UP if token_id == self.v.up_id else DOWN
        for j, f in enumerate(r.fills):  # our taker fills, as the user WS reports them
            self.trader[0].core.om.on_fill(Fill(f"{r.order_id}:t{j}", r.order_id, tok, BUY if side == "BUY" else SELL,
                                                f.price, f.size, t, f.taker_fee, False))
        return PlaceResult(True, r.order_id, r.status)

    async def cancel(self, order_ids):
        done, failed = [], {}
        for oid in order_ids:
            ok, why = self.v.ex.cancel(eb.US, oid, self.clock.t)
            (done.append(oid) if ok else failed.__setitem__(oid, why))
        self.v.flow.react(self.clock.t, [self.v.market])
        return done, failed

    async def cancel_all(self):
        self.v.ex.cancel_all(eb.US, self.clock.t)
        return True

    async def open_orders(self):
        return []


async def test_live_trader_and_backtest_take_the_same_decisions_on_a_real_hour(tmp_path):
    ts, price = _real_ticks()
    cfg = dataclasses.replace(TraderConfig.from_env({"SQLITE_PATH": str(tmp_path / "j.db")}), control_port=0,
                              snapshot_max_age_ms=10 * DECISION_MS)
    params = BacktestParams.from_trader_config(cfg, decision_ms=DECISION_MS, seed=3).replace(latency=0)
    sigma = cal.sigma_path(ts, price, (params.halflife_s, params.halflife_alt_s), params.sample_ms)
    first = int(np.searchsorted(ts, HOUR))
    last = int(np.searchsorted(ts, HOUR + HOUR_MS)) - 1
    assert price[first] > 10_000, "expected real BTC prices"

    # --- the backtest
    res, path = eb.run_hour(params, ts, price, HOUR, first, last, sigma)
    assert "ledger_mismatch" not in path["counters"]
    bt_decisions = path["decisions"]

    # --- the live Trader on an identical venue
    v = eb.open_hour(params, ts, price, HOUR)
    clock = _Clock()
    holder: list = []
    tr = Trader(cfg, clock, None, executor=_EngineExecutor(v, clock, holder))
    holder.append(tr)
    live_decisions = []
    try:
        core = tr.core
        assert core.om.price_tol == params.requote_price_tol and core.params == params.strategy
        core.quoting_enabled = True
        core.set_market(v.market_ref)
        for fn in (core.risk.on_user_ws, core.risk.on_market_ws, core.risk.on_rest):
            fn(True, HOUR)

        class _Book:
            def __init__(self, tok):
                self.tok, self.tick_size = tok, v.market_ref.tick_size

            def top(self):
                b, a = v.ex.best(self.tok)
                return SimpleNamespace(bid=b, ask=a)

        tr.market_ws = SimpleNamespace(connected=True, books={v.up_id: _Book(v.up_id), v.dn_id: _Book(v.dn_id)})
        tr.user_ws = SimpleNamespace(api_key=None)
        real_decide = core.decide

        def recording_decide(now, *a, **kw):
            d = real_decide(now, *a, **kw)
            if d.actions:
                live_decisions.append((now, tuple((x.kind, x.order.token, x.order.side, x.order.price, x.order.size)
                                                  for x in d.actions)))
            return d

        core.decide = recording_decide
        grid, fair, _, unc = fair_unc_path(ts, price, HOUR, first, params, sigma, DECISION_MS)
        seen = 0
        tok_of = {v.up_id: UP, v.dn_id: DOWN}
        def fire_flow_events(t_end):          # the snipers' shots between decisions
            while (tf := v.flow.next_event_ms()) is not None and tf <= t_end:
                v.flow.fire(tf)

        for i, t in enumerate(grid.tolist()):
            fire_flow_events(t - 1)
            clock.t = t
            v.flow.step(t, [v.market])
            trades = v.ex.trades(eb.US)
            while seen < len(trades):  # our maker fills, as the user WS delivers them
                tr_ = trades[seen]
                seen += 1
                for e in tr_["maker_orders"]:
                    if e["owner"] == eb.US:
                        core.om.on_fill(Fill(f"{tr_['id']}:{e['order_id']}", e["order_id"], tok_of[e["asset_id"]],
                                             BUY if e["side"] == E_BUY else SELL, float(e["price"]),
                                             float(e["matched_amount"]), t, 0.0, True))
            v.flow.react(t, [v.market])
            ok = bool(np.isfinite(fair[i]))   # container A publishes null before the hour's first trade
            tr.snapshots.latest = Snapshot(i + 1, t, HOUR, HOUR + HOUR_MS, float(fair[i]) if ok else None,
                                           float(unc[i]) if ok else None, False)
            await tr.cycle("tick")
            fire_flow_events(t)
    finally:
        tr.journal.close()

    assert len(bt_decisions) > 50, "the trader barely acted on a real hour"
    assert any(a[0] == "cancel" for _, acts in bt_decisions for a in acts)
    assert res.n_fills > 0
    assert live_decisions == bt_decisions
