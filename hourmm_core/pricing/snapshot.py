"""Container A's state -> immutable snapshots (schema v1, docs/DESIGN.md).

:class:`SnapshotBuilder` is fed every validated Binance message. On each trade
it updates the compiled core (EwmaVol, ReturnFeatures) and reprices
(FairPricer); on each bookTicker it updates the BBO and reprices. ``snapshot(now_ms)``
reprices at the publish time (so ``fair_up`` matches ``tau_ms``) and freezes
everything into a :class:`Snapshot` whose JSON is rendered once.

Pricer inputs: S = last trade price (settlement is on trades: close = last trade
of the hour), K = the hour's open, tau = hour_end - publish time.
``model="seasonal"`` (container A's default via configs/pricer.yaml, docs/PRICER.md):
``fair_up`` comes from the compiled ``MinutePricer`` (trades aggregated into 1-minute
bars, a seasonal EWMA forecast of the variance of the rest of the hour, the exact time
left); ``sigma`` is its effective sigma sqrt(V / tau). ``model="ewma"``: the old digital
with sigma = the first EWMA half-life. Either way ``fair_unc`` = |fair_up - the digital
with the last half-life's sigma|.
``fair_up`` is null until the open is known and the vol estimate is ready: no
number is better than an invented one.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hourmm_core.binance.messages import BookTicker, Message, Trade
from hourmm_core.clock import HOUR_MS
from hourmm_core.pricing.hour import HourTracker

SCHEMA_VERSION = 1
MAX_PENDING_TRADES = 2_000_000   # live trades kept while the history loads (~minutes of BTCUSDT)
log = logging.getLogger(__name__)


def _f(x: float | None) -> float | None:
    """JSON-safe float: NaN/inf -> None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Snapshot:
    """One published view of the market (schema v1). ``json`` is the exact bytes served."""

    schema_version: int
    seq: int
    ts_ms: int
    exchange_ts_ms: int | None
    recv_ts_ms: int | None
    symbol: str
    hour_start_ms: int
    hour_end_ms: int
    open_price: float | None
    last_price: float | None
    bid: float | None
    ask: float | None
    mid: float | None
    microprice: float | None
    sigma: float | None
    sigmas: dict[str, float | None]
    features: dict[str, float | None]
    tau_ms: int
    fair_up: float | None
    fair_unc: float | None
    stale: bool
    age_ms: int | None
    json: bytes = field(default=b"", repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("json")
        return d

    @staticmethod
    def render(d: dict[str, Any]) -> bytes:
        return json.dumps(d, separators=(",", ":"), allow_nan=False).encode()


def model_kwargs(cfg: Any) -> dict[str, Any]:
    """The fair-value model's parameters from a ``PricerConfig``: THE one mapping, used by
    :meth:`SnapshotBuilder.from_config` (container A) and ``research/fair.py`` (the backtest)."""
    return {"halflives_s": cfg.halflives(), "sample_ms": cfg.vol_sample_ms, "var_floor": cfg.vol_floor,
            "nu": cfg.pricer_nu, "p_min": cfg.pricer_p_min, "model": cfg.pricer_model, "season": cfg.season(),
            "halflife_min": cfg.pricer_halflife_min, "var_prior": cfg.pricer_var_prior,
            "var_scale": cfg.pricer_var_scale, "scale_window_h": cfg.scale_window_h,
            "scale_prior_h": cfg.pricer_scale_prior_hours}


class SnapshotBuilder:
    """Feeds the compiled core and freezes snapshots. Single-threaded (the event loop)."""

    def __init__(self, symbol: str, halflives_s: tuple[float, ...] = (30.0, 120.0, 600.0),
                 sample_ms: int = 1000, var_floor: float = 1e-12, nu: float = 0.0, p_min: float = 0.001,
                 stale_threshold_ms: int = 500, core: Any = None, speed: float = 1.0, model: str = "ewma",
                 season: Any = None, halflife_min: float = 60.0, var_prior: float = 1e-7,
                 var_scale: float = 1.0, scale_window_h: int = 0, scale_prior_h: float = 72.0) -> None:
        """``core`` defaults to the compiled ``hourmm_core.quant``; benchmarks pass the reference twins.

        ``speed`` is the clock's speed: data age and the stale threshold are judged in
        wall-clock ms (feed health is an infrastructure property; under the 60x simulator
        500 simulated ms would be 8 wall ms, i.e. scheduler jitter), so age = sim age / speed.
        """
        if core is None:
            import hourmm_core.quant as core
        EwmaVol, ReturnFeatures, FairPricer = core.EwmaVol, core.ReturnFeatures, core.FairPricer
        FEATURE_NAMES = core.FEATURE_NAMES
        self.symbol = symbol.upper()
        self.halflives_s = tuple(halflives_s)
        self.vol = EwmaVol(self.halflives_s, sample_ms, var_floor)
        self.features = ReturnFeatures()
        self.pricer = FairPricer(nu, p_min)
        if model not in ("seasonal", "ewma"):
            raise ValueError(f"model must be 'seasonal' or 'ewma', got {model!r}")
        self.model = model
        self.last_fair = math.nan   # fair after the latest message (NaN until priceable)
        if season is None:
            season = [1.0] * 1440
        self._core = core
        self._minute_args = (season, halflife_min, var_prior, var_scale, nu, p_min, int(scale_window_h),
                             float(scale_prior_h))
        self.minute = core.MinutePricer(*self._minute_args)
        self.scale_window_h = int(scale_window_h)
        # live trades since start-up, kept while the kline history is fetched (begin_history):
        # the warmed MinutePricer replays them, so it is what a pricer that saw it all would be
        self._pending: list[tuple[int, float]] | None = None
        self.history_rows = 0
        self.feature_names = tuple(FEATURE_NAMES)
        self._sigma_keys = tuple(f"{h:g}s" for h in self.halflives_s)
        self.stale_threshold_ms = stale_threshold_ms
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self.hour = HourTracker(on_open=self._on_open)
        self.seq = 0
        self.last_price: float | None = None
        self.last_trade_ms: int | None = None
        self.first_trade_id: int | None = None
        self.last_trade_id: int | None = None
        self.trades = 0
        self.books = 0
        self.bid = self.ask = self.bid_qty = self.ask_qty = math.nan
        self.exchange_ts_ms: int | None = None
        self.recv_ts_ms: int | None = None
        self.late_trades = 0

    @classmethod
    def from_config(cls, cfg: Any, core: Any = None, speed: float = 1.0) -> "SnapshotBuilder":
        """Container A's builder from a ``PricerConfig`` (the shipped model and its tables)."""
        return cls(cfg.binance_symbol, stale_threshold_ms=cfg.stale_threshold_ms, core=core, speed=speed,
                   **model_kwargs(cfg))

    # ------------------------------------------------------------ inputs
    def _on_open(self, hour_start: int, open_price: float, source: str) -> None:
        self.features.set_hour_open(hour_start, open_price)

    def on_connect(self, now_ms: int) -> None:
        self.hour.on_connect(now_ms)

    def on_disconnect(self) -> None:
        self.hour.on_disconnect()

    def on_message(self, msg: Message, recv_ms: int) -> None:
        """One validated message (any order of trades and bookTickers)."""
        self.recv_ts_ms = recv_ms
        if isinstance(msg, Trade):
            self.on_trade(msg)
        elif isinstance(msg, BookTicker):
            self.on_book(msg)

    def on_trade(self, t: Trade) -> None:
        ts = t.trade_ms
        if self.last_trade_ms is not None and ts < self.last_trade_ms:
            self.late_trades += 1  # never feed time backwards into the core
            ts = self.last_trade_ms
        self.trades += 1
        if self.first_trade_id is None:
            self.first_trade_id = t.trade_id
        self.last_trade_id = t.trade_id
        self.last_trade_ms = ts
        self.last_price = t.price
        self.exchange_ts_ms = t.event_ms or ts
        self.hour.on_trade(ts, t.price)
        self.vol.update(ts, t.price)
        self.features.update(ts, t.price)
        self.minute.on_trade(ts, t.price)
        if self._pending is not None:
            self._pending.append((ts, t.price))
            if len(self._pending) > MAX_PENDING_TRADES:
                self.abandon_history()
                log.warning("Pricer history: more than %d live trades arrived before the klines history did; "
                            "continuing without it", MAX_PENDING_TRADES)
        self._reprice(ts)

    def on_book(self, b: BookTicker) -> None:
        self.books += 1
        self.bid, self.bid_qty, self.ask, self.ask_qty = b.bid, b.bid_qty, b.ask, b.ask_qty
        if b.event_ms is not None:
            self.exchange_ts_ms = b.event_ms
        if self.last_trade_ms is not None:
            self._reprice(max(self.last_trade_ms, b.event_ms or 0))

    # ------------------------------------------------------------ kline history (adaptive scale)
    def begin_history(self) -> None:
        """Start keeping live trades for :meth:`install_history` (called before the stream starts)."""
        self._pending = []

    def abandon_history(self) -> None:
        self._pending = None

    def history_cut_ms(self, now_ms: int) -> int:
        """The minute from which the live trades take over from the klines: the first live trade's
        minute (else now's). Klines before it are fed whole, the one at it only as its open."""
        t = self._pending[0][0] if self._pending else now_ms
        return t - t % 60_000

    def warm_minute_pricer(self, open_ms: Any, open_: Any, close: Any, cut_ms: int) -> Any:
        """A fresh MinutePricer (this builder's model) warmed with 1m klines up to ``cut_ms``.
        Touches no shared state: safe to run in a worker thread while the loop keeps pricing."""
        import numpy as np

        om = np.asarray(open_ms, dtype=np.int64)
        mp = self._core.MinutePricer(*self._minute_args)
        k = int(np.searchsorted(om, cut_ms, side="left"))
        mp.warm_klines(om[:k], np.asarray(open_)[:k], np.asarray(close)[:k], cut_ms)
        if k < om.size and int(om[k]) == cut_ms:      # the cut minute: its real open, live trades go on
            mp.on_trade(int(om[k]), float(np.asarray(open_)[k]))
        return mp

    def install_history(self, mp: Any, rows: int) -> int:
        """Replay the kept live trades into the warmed pricer and make it the live one (on the loop
        thread, so no trade falls between); returns how many trades were replayed."""
        pend = self._pending or []
        for ts, px in pend:
            mp.on_trade(ts, px)
        self.minute = mp
        self._pending = None
        self.history_rows = int(rows)
        return len(pend)

    def _sigma_alt(self) -> float:
        return self.vol.sigma_at(len(self.halflives_s) - 1)

    def _reprice(self, ts_ms: int) -> float | None:
        K = self.hour.open_price
        end = self.hour.hour_end_ms
        if K is None or end is None or self.last_price is None or not self.vol.ready:
            return None
        if self.model == "ewma":
            p = self.pricer.update(ts_ms, self.last_price, K, end, self.vol.sigma, self._sigma_alt())
        else:
            p = self.minute.price(ts_ms, self.last_price, K, end)
            self.pricer.update(ts_ms, self.last_price, K, end, self.vol.sigma, self._sigma_alt())
        self.last_fair = p  # the service's publish-on-change trigger reads it
        return p

    def _fair_unc(self, p: float) -> float:
        return self.pricer.p_unc if self.model == "ewma" else abs(p - self.pricer.p_alt)

    def _sigma_out(self, sig0: float) -> float:
        return sig0 if self.model == "ewma" else self.minute.sigma

    # ------------------------------------------------------------ outputs
    def age_ms(self, now_ms: int) -> int | None:
        """Wall-clock ms since the last Binance message (None before the first)."""
        if self.recv_ts_ms is None:
            return None
        return max(0, int(round((now_ms - self.recv_ts_ms) / self.speed)))

    def is_stale(self, now_ms: int) -> bool:
        age = self.age_ms(now_ms)
        return age is None or age > self.stale_threshold_ms

    def snapshot(self, now_ms: int) -> Snapshot:
        """Reprice at ``now_ms`` and freeze; seq increases by one per call."""
        self.hour.advance(now_ms)
        hs = self.hour.hour_start_ms
        assert hs is not None
        he = hs + HOUR_MS
        p = self._reprice(now_ms)
        fair = _f(p) if p is not None else None
        unc = _f(self._fair_unc(p)) if fair is not None else None
        bid, ask = _f(self.bid), _f(self.ask)
        mid = micro = None
        if bid is not None and ask is not None:
            mid = 0.5 * (bid + ask)
            bq, aq = _f(self.bid_qty), _f(self.ask_qty)
            micro = (bid * aq + ask * bq) / (bq + aq) if bq is not None and aq is not None and bq + aq > 0 else mid
        sig = self.vol.sigmas()
        fv = self.features.values() if self.last_price is not None else [math.nan] * len(self.feature_names)
        self.seq += 1
        age = self.age_ms(now_ms)
        d = {
            "schema_version": SCHEMA_VERSION, "seq": self.seq, "ts_ms": int(now_ms),
            "exchange_ts_ms": self.exchange_ts_ms, "recv_ts_ms": self.recv_ts_ms, "symbol": self.symbol,
            "hour_start_ms": hs, "hour_end_ms": he, "open_price": self.hour.open_price,
            "last_price": self.last_price, "bid": bid, "ask": ask, "mid": mid, "microprice": micro,
            "sigma": _f(self._sigma_out(sig[0])) if self.last_price is not None else None,
            "sigmas": {k: (_f(v) if self.last_price is not None else None) for k, v in zip(self._sigma_keys, sig)},
            "features": {k: _f(v) for k, v in zip(self.feature_names, fv)},
            "tau_ms": max(0, he - int(now_ms)), "fair_up": fair, "fair_unc": unc,
            "stale": age is None or age > self.stale_threshold_ms, "age_ms": age,
        }
        return Snapshot(**d, json=Snapshot.render(d))
