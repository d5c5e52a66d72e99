"""In-process Polymarket CLOB matching engine (binary Up/Down markets).

This is the exchange core of the loopback simulator. It has no I/O and never reads
the wall clock: every mutating call takes ``now_ms`` (ms UTC, simulated time). The
REST/WS servers (:mod:`hourmm_core.sim.polymarket.server`), the background agents
and the backtests all drive the same object.

Public API (prices/sizes are floats at the boundary, exact integers inside)::

    ex = Exchange(seed=0, fee=CRYPTO_FEES)        # fee: hourmm_core.fees.FeeSchedule (default none)
    ex.list_market(condition_id, up_token, down_token, start_ms, end_ms,
                   tick_size=0.01, min_size=5.0, neg_risk=False)
    ex.deposit(owner, usdc)                       # credit collateral
    r = ex.place(owner, token_id, "BUY"|"SELL", price, size, order_type="GTC",
                 post_only=False, expiration_ms=0, now_ms=..., order_id=None)
    r.order_id, r.status ("matched"|"live"|"unmatched"), r.fills, r.error_msg, r.ok
    ex.cancel(owner, order_id, now_ms) / ex.cancel_all(owner, now_ms)
    ex.cancel_market(owner, condition_id, now_ms, asset_id=None)
    ex.open_orders(owner), ex.order(order_id), ex.trades(owner)
    ex.book(token_id) -> {"bids": [(p, s), ...best first], "asks": [...]}
    ex.balances(owner) -> {"usdc", "usdc_available"}, ex.positions(owner) -> {token: size}
    ex.advance(now_ms)           # expire GTD orders
    ex.stop_market(condition_id, now_ms)          # end of hour: cancel all, refuse new orders
    ex.resolve(condition_id, up_wins, now_ms)     # pay 1 USDC per winning token, burn losers
    ex.merge(owner, condition_id, size, now_ms)   # CTF merge: Up+Down pair -> 1 USDC
    ex.set_tick_size(condition_id, tick, now_ms)
    ex.add_listener(fn)          # fn(event: dict) for every book/order/trade/market change

Units (why integers): money must be conserved exactly so the hypothesis tests can
assert equality, not closeness. Prices are held in 1e-4 units (finest Polymarket
tick is 0.0001), sizes in 1e-2 shares (Polymarket rounds order sizes to 2
decimals) and USDC in 1e-6 (USDC has 6 decimals). Then price*size is exactly a
number of USDC micro-units.

One book per market, in Up terms (documented decision). Like Polymarket's CLOB,
an order on the Down token is the mirror of an order on Up: BUY Down at q rests
as an ask on Up at 1-q, SELL Down at q as a bid on Up at 1-q. So ``book(down)``
is the mirror image of ``book(up)``. When a bid meets an ask at the maker's price
P (Up terms) the settlement depends on the two orders:

* BUY Up  x SELL Up   -> transfer: Up buyer pays P, Up seller delivers Up.
* BUY Down x SELL Down-> transfer at 1-P on Down.
* BUY Up  x BUY Down  -> MINT: each pays its price (P and 1-P), a full set is
  minted (1 USDC per pair moves into the collateral pool), each gets its token.
* SELL Up x SELL Down -> MERGE: each delivers its token, the pair is burned, each
  receives its price; the 1 USDC per pair leaves the pool.

Price-time priority: best price first, then arrival sequence. Trades execute at
the resting (maker) order's price; price improvement goes to the taker.
Self-trades are not prevented (documented simplification). A taker order that
matches several makers produces ONE trade record (like the CLOB's grouped trade
with ``maker_orders``) whose ``price`` is the size-weighted average in the taker's
token.

Fees: :mod:`hourmm_core.fees` (the project's one fee formula, the venue's current
schedule): ``fee = shares * rate * (p * (1 - p)) ** exponent`` floored to 0.00001
USDC, charged to the TAKER only, ``p`` the execution price of the taker's token,
``rate``/``exponent`` from the market's :class:`~hourmm_core.fees.FeeSchedule`.
Deviation: on chain a BUY taker's fee is taken out of the tokens it receives; here
every fee is charged in USDC (added to a BUY's cost, deducted from a SELL's
proceeds) and credited to the exchange fee account (``fees_collected``). Maker
rebates are paid by the venue daily, outside the match: not simulated here.

Order rules (error texts follow the real CLOB's documented strings where known: balance /
allowance, post-only crosses book, FOK, FAK, duplicated, tick size, minimum size; the
"not accepting orders" text is the simulator's own):

* tick: the price must be a multiple of the market tick and within
  [tick, 1 - tick];
* min size: GTC/GTD orders need ``size >= min_size`` (marketable FOK/FAK orders
  are exempt, as on Polymarket where market orders go by notional);
* post-only (GTC/GTD only): rejected if it would cross;
* GTC rests; GTD rests until ``expiration_ms`` (must be in the future);
  FOK fills completely or is rejected untouched; FAK fills what it can and the
  rest is cancelled (rejected if nothing at all can fill);
* balance: a BUY needs free USDC >= price*size (+ worst-case taker fee); a SELL
  needs free tokens >= size. Resting orders reserve what they may spend, exactly
  like the CLOB's "balance / allowance" check. No short selling.
"""
from __future__ import annotations

import bisect
import random
from collections import deque
from typing import Any

from hourmm_core.fees import NO_FEES, PRICE_SCALE, SIZE_SCALE, USDC_SCALE, FeeSchedule, taker_fee_units
from hourmm_core.sim.polymarket.booktop import top_pair
from hourmm_core.sim.polymarket.flowcore import flush_trades, forget_unread_trades
from hourmm_core.sim.polymarket.lifecycle import Lifecycle
from hourmm_core.sim.polymarket.orders import (  # noqa: F401 - re-exported: the engine's public names
    BUY,
    ERR_BALANCE,
    ERR_DUPLICATE,
    ERR_EXPIRATION,
    ERR_FAK,
    ERR_FOK,
    ERR_NOT_ACCEPTING,
    ERR_NOT_READY,
    ERR_POST_ONLY,
    ORDER_TYPES,
    SELL,
    Account,
    EngineError,
    Fill,
    Listener,
    Market,
    Order,
    PlaceResult,
    _buy_covered,
    _fmt,
    price_to_units,
    sim_id_ref,
    size_to_units,
)
from hourmm_core.sim.polymarket.placecore import place_fast
from hourmm_core.sim.polymarket.wire import id_head, order_id, trade_id, tx_hash


class Exchange(Lifecycle):
    """Matching engine for many binary markets; deterministic given ``seed`` and call order.

    This file holds setup, the book (plumbing, top, levels), ids, ``place`` and the match/settle;
    the views of owners' state, cancels, GTD expiry, stop/merge/resolve and the invariants are
    :class:`~hourmm_core.sim.polymarket.lifecycle.Lifecycle` (lifecycle.py), a mixin of the same object."""

    def __init__(self, seed: int = 0, fee: FeeSchedule = NO_FEES) -> None:
        if not isinstance(fee, FeeSchedule):
            raise EngineError(f"fee must be a hourmm_core.fees.FeeSchedule, got {fee!r}")
        self.fee = fee
        self.seed = seed
        self._rng = random.Random(seed)
        # the constant "{prefix}:{seed}:" of the ids (wire.pyx): the seed is fixed for the engine's life
        self._order_head = id_head("order", seed)
        self._trade_head = id_head("trade", seed)
        self.markets: dict[str, Market] = {}
        self.token_market: dict[str, Market] = {}
        self.orders: dict[str, Order] = {}
        self.accounts: dict[str, Account] = {}
        # the trade records in order (read them as ``trades_log``); an in-process run's compiled match
        # (flowcore) appends a placeholder built into the record only when something reads it: see
        # :meth:`flush_trades`. ``len(self._trades)`` is the count either way.
        self._trades: list[dict[str, Any]] = []
        self._owner_trades: dict[str, list[dict[str, Any]]] = {}
        self._lazy: list = []          # placeholders appended since the last flush (some may be built)
        self._seq = 0
        self._listeners: list[Listener] = []
        self.deposited_u = 0
        self.withdrawn_u = 0
        self.fees_u = 0
        self.paid_out_u = 0
        self._gtd: list[tuple[int, int, str]] = []     # (expiration_ms, seq, order_id)
        self._touched: set[tuple[str, bool, int]] = set()
        self.listener_errors = 0
        self._pending_updates: list[Order] = []
        self._live: dict[str, dict[str, Order]] = {}   # owner -> resting orders (index for open_orders)
        # owner -> count of changes to its resting orders (rested, removed, filled): lets an agent
        # know its book presence is exactly as it left it without re-reading every order
        self.book_version: dict[str, int] = {}
        # place() through the compiled placecore.place_fast when nobody listens (False: the reference only)
        self.compiled_place = True

    # ------------------------------------------------------------------ setup
    def add_listener(self, fn: Listener) -> None:
        """Register ``fn(event)``; called synchronously after each state change."""
        self.flush_trades()      # a listener's readers (the live server) see built records only
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _emit(self, ev: dict[str, Any]) -> None:
        for fn in list(self._listeners):
            try:
                fn(ev)
            except Exception:  # a broken subscriber must never corrupt the exchange
                self.listener_errors += 1

    def list_market(self, condition_id: str, up_token: str, down_token: str, start_ms: int, end_ms: int,
                    tick_size: float = 0.01, min_size: float = 5.0, neg_risk: bool = False,
                    fee: FeeSchedule | None = None) -> Market:
        """Create a market; orders are accepted from listing until ``end_ms`` (or stop_market)."""
        if condition_id in self.markets:
            raise EngineError(f"market {condition_id} already listed")
        if up_token == down_token or up_token in self.token_market or down_token in self.token_market:
            raise EngineError("token ids must be distinct and new")
        if end_ms <= start_ms:
            raise EngineError("end_ms must be after start_ms")
        tick_u = price_to_units(tick_size)
        if tick_u <= 0 or PRICE_SCALE % tick_u:
            raise EngineError(f"invalid tick size {tick_size}")
        m = Market(condition_id, up_token, down_token, int(start_ms), int(end_ms), tick_u,
                   size_to_units(min_size), bool(neg_risk),
                   fee=self.fee if fee is None else fee)
        self.markets[condition_id] = m
        self.token_market[up_token] = m
        self.token_market[down_token] = m
        return m

    def deposit(self, owner: str, usdc: float) -> None:
        """Credit ``usdc`` collateral to ``owner`` (tracked for conservation checks)."""
        u = int(round(float(usdc) * USDC_SCALE))
        if u < 0:
            raise EngineError("deposit must be >= 0")
        self._acct(owner).usdc_u += u
        self.deposited_u += u

    def _acct(self, owner: str) -> Account:
        a = self.accounts.get(owner)
        if a is None:
            a = self.accounts[owner] = Account()
        return a

    def market_of(self, token_id: str) -> Market:
        m = self.token_market.get(str(token_id))
        if m is None:
            raise EngineError(f"unknown token id {token_id}")
        return m

    # ------------------------------------------------------------------ views
    # (owner/order views: balances, positions, open orders, trades are in lifecycle.py)
    def _levels(self, m: Market, bid: bool) -> list[tuple[int, int]]:
        prices = m.bid_prices if bid else m.ask_prices
        book = m.bids if bid else m.asks
        it = reversed(prices) if bid else iter(prices)
        out = []
        for p in it:
            tot = sum(self.orders[oid].remaining_u for oid in book[p])
            if tot > 0:
                out.append((p, tot))
        return out

    def book(self, token_id: str, depth: int | None = None) -> dict[str, list[tuple[float, float]]]:
        """Aggregated levels for one token, best first. Down is the mirror of the Up book."""
        m = self.market_of(token_id)
        bids = self._levels(m, True)
        asks = self._levels(m, False)
        if token_id == m.up_token:
            b = [(p / PRICE_SCALE, s / SIZE_SCALE) for p, s in bids]
            a = [(p / PRICE_SCALE, s / SIZE_SCALE) for p, s in asks]
        else:
            b = [((PRICE_SCALE - p) / PRICE_SCALE, s / SIZE_SCALE) for p, s in asks]
            a = [((PRICE_SCALE - p) / PRICE_SCALE, s / SIZE_SCALE) for p, s in bids]
        if depth is not None:
            b, a = b[:depth], a[:depth]
        return {"bids": b, "asks": a}

    def _top(self, m: Market, bid: bool) -> int | None:
        """Best Up-terms price of one side with size left (reference twin of the compiled booktop.top)."""
        prices = m.bid_prices if bid else m.ask_prices
        book = m.bids if bid else m.asks
        orders = self.orders
        for p in (reversed(prices) if bid else prices):
            for oid in book[p]:
                o = orders[oid]
                if o.size_u - o.filled_u > 0:
                    return p
        return None

    def best(self, token_id: str) -> tuple[float | None, float | None]:
        """(best bid, best ask) of one token, None when that side is empty."""
        m = self.token_market.get(token_id)
        if m is None:
            m = self.market_of(token_id)
        b, a = top_pair(self.orders, m)     # compiled (booktop.pyx); _top is its reference twin
        if token_id != m.up_token:
            b, a = (None if a is None else PRICE_SCALE - a), (None if b is None else PRICE_SCALE - b)
        return (None if b is None else b / PRICE_SCALE, None if a is None else a / PRICE_SCALE)

    def best_pair(self, m: Market) -> tuple[tuple[float | None, float | None], tuple[float | None, float | None]]:
        """``(best(m.up_token), best(m.down_token))`` from one walk of the Up book (the Down book
        is its mirror): the same numbers, half the work."""
        b, a = top_pair(self.orders, m)
        up = (None if b is None else b / PRICE_SCALE, None if a is None else a / PRICE_SCALE)
        dn = (None if a is None else (PRICE_SCALE - a) / PRICE_SCALE, None if b is None else (PRICE_SCALE - b) / PRICE_SCALE)
        return up, dn

    def level_size(self, token_id: str, side: str, price: float) -> float:
        """Aggregate size at one price of one token's book (``side`` BUY=bids, SELL=asks)."""
        m = self.market_of(token_id)
        pu = price_to_units(price)
        up = token_id == m.up_token
        bid = (side == BUY) if up else (side == SELL)
        bp = pu if up else PRICE_SCALE - pu
        q = (m.bids if bid else m.asks).get(bp)
        return sum(self.orders[o].remaining_u for o in q) / SIZE_SCALE if q else 0.0

    # ------------------------------------------------------------------ book plumbing
    def _insert(self, m: Market, o: Order) -> None:
        bid = o.book_is_bid
        book, prices = (m.bids, m.bid_prices) if bid else (m.asks, m.ask_prices)
        p = o.book_price_u
        q = book.get(p)
        if q is None:
            q = book[p] = deque()
            bisect.insort(prices, p)
        q.append(o.order_id)
        self._live.setdefault(o.owner, {})[o.order_id] = o
        self.book_version[o.owner] = self.book_version.get(o.owner, 0) + 1
        self._touched.add((m.condition_id, bid, p))

    def _remove(self, m: Market, o: Order) -> None:
        self._live.get(o.owner, {}).pop(o.order_id, None)
        self.book_version[o.owner] = self.book_version.get(o.owner, 0) + 1
        bid = o.book_is_bid
        book, prices = (m.bids, m.bid_prices) if bid else (m.asks, m.ask_prices)
        p = o.book_price_u
        q = book.get(p)
        if q is None:
            return
        try:
            q.remove(o.order_id)
        except ValueError:
            return
        if not q:
            del book[p]
            i = bisect.bisect_left(prices, p)
            if i < len(prices) and prices[i] == p:
                prices.pop(i)
        self._touched.add((m.condition_id, bid, p))

    def _flush_book_events(self, now_ms: int) -> None:
        """Emit one ``price_change`` per market for the levels touched by the last operation."""
        if not self._touched:
            return
        if not self._listeners:
            self._touched.clear()
            return
        touched, self._touched = self._touched, set()
        by_market: dict[str, list[tuple[bool, int]]] = {}
        for cid, bid, p in touched:
            by_market.setdefault(cid, []).append((bid, p))
        for cid, lv in by_market.items():
            m = self.markets[cid]
            changes = []
            for bid, p in sorted(lv):
                q = (m.bids if bid else m.asks).get(p)
                size_u = sum(self.orders[o].remaining_u for o in q) if q else 0
                size = _fmt(size_u / SIZE_SCALE)
                changes.append({"asset_id": m.up_token, "price": _fmt(p / PRICE_SCALE),
                                "side": BUY if bid else SELL, "size": size})
                changes.append({"asset_id": m.down_token, "price": _fmt((PRICE_SCALE - p) / PRICE_SCALE),
                                "side": SELL if bid else BUY, "size": size})
            self._emit({"event_type": "price_change", "market": cid, "changes": changes, "ts_ms": now_ms})

    # ------------------------------------------------------------------ trade records
    @property
    def trades_log(self) -> list[dict[str, Any]]:
        """Every trade record in order (the grouped record of each taker's match)."""
        if self._lazy:
            self.flush_trades()
        return self._trades

    def flush_trades(self) -> None:
        """Build every trade record still held as a placeholder (flowcore's in-process match defers
        the record's strings and hashes until read: :class:`~hourmm_core.sim.polymarket.flowcore.LazyTrade`).
        The readers here (``trades_log``, ``trades``, ``trades_since``, ``order``) call it or build
        just what they return; a record, its place in every list and its id in the orders'
        ``trade_ids`` are the same as if it had been built at the match."""
        if self._lazy:
            flush_trades(self)

    def forget_unread_trades(self) -> None:
        """Discard the trade records nobody has read yet (the in-process run is over): reading one
        afterwards raises. Why: an unread placeholder and the orders and lists it stands in hold each
        other, so without this the hour's whole venue waits for the cyclic collector
        (:func:`~hourmm_core.sim.polymarket.flowcore.forget_unread_trades`)."""
        if self._lazy:
            forget_unread_trades(self)

    # ------------------------------------------------------------------ ids
    def _new_id(self, prefix: str) -> str:
        """The next id: SHA-256 of ``"{prefix}:{seed}:{seq}:{draw}"`` (a draw of the engine's stream),
        computed in C (wire.pyx) with the same text as the plain-Python :func:`orders.sim_id_ref`."""
        self._seq += 1
        if prefix == "order":
            return order_id(self._order_head, self._seq, self._rng.random())
        if prefix == "trade":
            return trade_id(self._trade_head, self._seq, self._rng.random())
        return sim_id_ref(prefix, self.seed, self._seq, self._rng.random())

    # ------------------------------------------------------------------ orders
    def _reject(self, oid: str, msg: str) -> PlaceResult:
        return PlaceResult(order_id=oid, status="", error_msg=msg)

    def place(self, owner: str, token_id: str, side: str, price: float, size: float, order_type: str = "GTC",
              post_only: bool = False, expiration_ms: int = 0, now_ms: int = 0,
              order_id: str | None = None) -> PlaceResult:
        """Validate, match (price-time, maker price) and rest the remainder per ``order_type``.

        Never raises for a bad order: the reason is in ``error_msg`` (the REST layer
        returns it as ``errorMsg`` with ``success: false``). In-process (no listeners, no given id,
        ``compiled_place``) the compiled twin :func:`placecore.place_fast` takes the usual orders;
        :meth:`_place_ref` is the reference (and the path of everything unusual).
        """
        if order_id is None and self.compiled_place and not self._listeners:
            r = place_fast(self, owner, token_id, side, price, size, order_type, post_only, expiration_ms, now_ms)
            if r is not None:
                return r
        return self._place_ref(owner, token_id, side, price, size, order_type, post_only, expiration_ms, now_ms,
                               order_id)

    def _place_ref(self, owner: str, token_id: str, side: str, price: float, size: float, order_type: str,
                   post_only: bool, expiration_ms: int, now_ms: int, order_id: str | None) -> PlaceResult:
        """:meth:`place` in plain Python (the reference twin of :func:`placecore.place_fast`)."""
        if self._gtd and self._gtd[0][0] <= now_ms:
            self.advance(now_ms)
        oid = order_id if order_id else self._new_id("order")
        try:
            m = self.market_of(token_id)
            if side != BUY and side != SELL:
                side = str(side).upper()
                if side not in (BUY, SELL):
                    return self._reject(oid, f"invalid order side {side!r}")
            if order_type not in ORDER_TYPES:
                order_type = str(order_type).upper()
            if order_type not in ORDER_TYPES:
                return self._reject(oid, f"invalid order type {order_type!r}")
            pu = price_to_units(price)
            su = size_to_units(size)
        except EngineError as e:
            return self._reject(oid, str(e))
        if oid in self.orders:
            return self._reject(oid, ERR_DUPLICATE)
        if m.closed or not m.accepting or now_ms >= m.end_ms:
            return self._reject(oid, ERR_NOT_ACCEPTING)
        if pu % m.tick_u or pu < m.tick_u or pu > PRICE_SCALE - m.tick_u:
            return self._reject(oid, f"order {oid} is invalid. Price ({_fmt(price)}) breaks minimum tick size "
                                     f"rule: {_fmt(m.tick_size)}")
        if su <= 0:
            return self._reject(oid, f"order {oid} is invalid. Size ({_fmt(size)}) must be positive")
        if order_type in ("GTC", "GTD") and su < m.min_size_u:
            return self._reject(oid, f"order {oid} is invalid. Size ({_fmt(size)}) lower than the minimum: "
                                     f"{_fmt(m.min_size)}")
        if post_only and order_type not in ("GTC", "GTD"):
            return self._reject(oid, "invalid post-only order: only GTC and GTD orders can be post-only")
        if order_type == "GTD":
            if expiration_ms <= now_ms:
                return self._reject(oid, ERR_EXPIRATION)
        else:
            expiration_ms = 0
        up = token_id == m.up_token
        self._seq += 1
        o = Order(oid, owner, m.condition_id, token_id, "Up" if up else "Down", side, pu, su, order_type,
                  bool(post_only), int(expiration_ms), int(now_ms), self._seq, is_up=up)
        a = self._acct(owner)
        if side == BUY:
            if not _buy_covered(a.usdc_u - a.usdc_res_u, pu, su, m.fee):
                return self._reject(oid, ERR_BALANCE)
        else:
            if a.tok_u.get(token_id, 0) - a.tok_res_u.get(token_id, 0) < su:
                return self._reject(oid, ERR_BALANCE)

        limit_b = o.book_price_u
        is_bid = o.book_is_bid
        if post_only and self._crossable(m, is_bid, limit_b, owner) > 0:
            return self._reject(oid, ERR_POST_ONLY)
        if order_type == "FOK" and self._crossable(m, is_bid, limit_b, owner, cap=su) < su:
            return self._reject(oid, ERR_FOK)
        if order_type == "FAK" and self._crossable(m, is_bid, limit_b, owner, cap=1) <= 0:
            return self._reject(oid, ERR_FAK)

        self.orders[oid] = o
        if post_only:      # passed the cross check above: nothing to match
            self._pending_updates = []
            fills, trade = [], None
        else:
            fills, trade = self._match(m, o, now_ms)
        res = PlaceResult(order_id=oid, status="matched" if fills else "live", fills=fills)
        if trade is not None:
            res.trade_ids.append(trade["id"])
            filled_cost = sum(f.price * f.size for f in fills)
            filled_size = sum(f.size for f in fills)
            if side == BUY:
                res.making_amount, res.taking_amount = _fmt(filled_cost), _fmt(filled_size)
            else:
                res.making_amount, res.taking_amount = _fmt(filled_size), _fmt(filled_cost)
        rem = o.remaining_u
        if rem > 0 and order_type in ("GTC", "GTD"):
            if side == BUY:
                o.res_usdc_u = pu * rem
                a.usdc_res_u += o.res_usdc_u
            else:
                o.res_tok_u = rem
                a.tok_res_u[token_id] = a.tok_res_u.get(token_id, 0) + rem
            self._insert(m, o)
            if order_type == "GTD":
                bisect.insort(self._gtd, (o.expiration_ms, o.seq, oid))
        elif rem > 0:
            o.status = "CANCELED"   # FAK remainder killed
        else:
            o.status = "MATCHED"
        if not fills and o.status == "LIVE":
            res.status = "live"
        if not self._listeners:      # in-process backtests: nobody listens, skip building the events
            self._pending_updates = []
            self._touched.clear()
            return res
        self._emit({"event_type": "order", "type": "PLACEMENT", "order": o.to_dict(), "ts_ms": now_ms})
        if trade is not None:
            self._emit({"event_type": "trade", "trade": trade, "ts_ms": now_ms})
            self._emit({"event_type": "last_trade_price", "market": m.condition_id, "asset_id": token_id,
                        "price": trade["price"], "size": trade["size"], "side": side,
                        "fee_rate_bps": str(m.fee_rate_bps), "ts_ms": now_ms})
        for mo in self._pending_updates:
            self._emit({"event_type": "order", "type": "UPDATE", "order": mo.to_dict(), "ts_ms": now_ms})
        self._pending_updates = []
        if o.status == "CANCELED":
            self._emit({"event_type": "order", "type": "CANCELLATION", "order": o.to_dict(), "ts_ms": now_ms})
        self._flush_book_events(now_ms)
        return res

    def _fast_buy(self, owner: str, token_id: str, price: float, size: float, now_ms: int,
                  resting: bool) -> tuple[Market, Account, int, float, int, int] | bool | None:
        """The common start of :meth:`place_maker` / :meth:`place_taker`, step for step what
        :meth:`place` does for a BUY: GTD expiry, the id generator's draw (kept even when the order
        is then rejected; only its hash is deferred), price/size units, the tick rule, a positive
        size and (``resting``: GTC) the minimum size, the order's own sequence number, then the
        balance check (free USDC >= notional + worst-case taker fee).

        Returns ``(market, account, id_seq, id_draw, price_u, size_u)``; False when the venue rejects
        the order on those rules; None (before any draw) when the caller must take the general path:
        listeners (a live server wants the events), an unknown or closed market, non-float or
        out-of-range numbers."""
        m = self.token_market.get(token_id)
        if (self._listeners or m is None or m.closed or not m.accepting or now_ms >= m.end_ms
                or type(price) is not float or type(size) is not float
                or not (0.0 <= price <= 1.0 and 0.0 < size < 1e12)):
            return None
        if self._gtd and self._gtd[0][0] <= now_ms:
            self.advance(now_ms)     # cancels expired GTD orders; never closes a market
        self._seq += 1
        id_seq = self._seq
        id_draw = self._rng.random()
        x = price * PRICE_SCALE
        pu = round(x)
        su = int(size * SIZE_SCALE + 1e-7)
        tick_u = m.tick_u
        if (abs(pu - x) > 1e-6 or pu % tick_u or pu < tick_u or pu > PRICE_SCALE - tick_u or su <= 0
                or (resting and su < m.min_size_u)):
            return False
        self._seq += 1
        a = self.accounts.get(owner)
        if a is None:
            a = self._acct(owner)
        if not _buy_covered(a.usdc_u - a.usdc_res_u, pu, su, m.fee):
            return False
        return m, a, id_seq, id_draw, pu, su

    def place_maker(self, owner: str, token_id: str, price: float, size: float, now_ms: int = 0) -> str | None:
        """The background makers' post-only GTC BUY: exactly ``place(owner, token_id, BUY, price, size,
        "GTC", post_only=True, now_ms=now_ms)`` (same checks in the same order, same ids, same random
        draws, same book), returning the resting order's id or None when the venue rejected it.

        Why a second entry: the calibrated makers rest ~6,000 orders an hour and meet ~2,500 post-only
        rejects; this skips the result object, the event plumbing and, on a reject, the id's hash (a
        rejected id is never stored: only its draw of the id generator is kept).
        tests/unit/research/test_fast_path.py compares it with :meth:`place` on real hours."""
        head = self._fast_buy(owner, token_id, price, size, now_ms, True)
        if head is None:     # a live server (events wanted) or unusual inputs: the general path
            r = self.place(owner, token_id, BUY, price, size, "GTC", post_only=True, now_ms=now_ms)
            return r.order_id if r.ok and r.status == "live" else None
        if head is False:
            return None
        m, a, id_seq, id_draw, pu, su = head
        up = token_id == m.up_token
        orders = self.orders
        if up:     # a bid in the Up book at pu: crosses any ask at or below
            limit_b = pu
            for p in m.ask_prices:
                if p > limit_b:
                    break
                for oid in m.asks[p]:
                    mo = orders[oid]
                    if mo.size_u - mo.filled_u > 0:
                        return None
        else:      # BUY Down = an ask in the Up book at 1 - pu: crosses any bid at or above
            limit_b = PRICE_SCALE - pu
            for p in reversed(m.bid_prices):
                if p < limit_b:
                    break
                for oid in m.bids[p]:
                    mo = orders[oid]
                    if mo.size_u - mo.filled_u > 0:
                        return None
        oid = order_id(self._order_head, id_seq, id_draw)
        if oid in orders:    # pragma: no cover - a SHA-256 collision
            return None
        o = Order(oid, owner, m.condition_id, token_id, "Up" if up else "Down", BUY, pu, su, "GTC",
                  True, 0, int(now_ms), self._seq, res_usdc_u=pu * su, is_up=up)
        orders[oid] = o
        a.usdc_res_u += pu * su
        # _insert (a BUY Up rests as a bid at pu, a BUY Down as an ask at 1 - pu); no listeners, so
        # the touched levels are not recorded (place() clears them before returning anyway)
        if up:
            book, prices = m.bids, m.bid_prices
        else:
            book, prices = m.asks, m.ask_prices
        q = book.get(limit_b)
        if q is None:
            q = book[limit_b] = deque()
            bisect.insort(prices, limit_b)
        q.append(oid)
        live = self._live.get(owner)
        if live is None:
            live = self._live[owner] = {}
        live[oid] = o
        self.book_version[owner] = self.book_version.get(owner, 0) + 1
        if self._pending_updates:    # what place() resets before returning (usually already empty)
            self._pending_updates = []
        if self._touched:
            self._touched.clear()
        return oid

    def place_taker(self, owner: str, token_id: str, price: float, size: float, now_ms: int = 0) -> list[Fill] | None:
        """The background takers' (noise, informed, snipers) FAK BUY: exactly ``place(owner, token_id,
        BUY, price, size, "FAK", now_ms=now_ms)`` (same checks in the same order, same ids, same random
        draws, same matching), returning the fills, or None when the venue rejected the order.

        Why a second entry: ~1,600 takes an hour read nothing but whether and what they filled; this
        skips the result object and its amount strings, and a rejected order's id is not hashed (its
        draw of the id generator is kept; a rejected id is never stored). Falls back to :meth:`place`
        with listeners (a live server wants the events) and for unusual inputs.
        tests/unit/research/test_fast_path.py compares it with :meth:`place`."""
        head = self._fast_buy(owner, token_id, price, size, now_ms, False)
        if head is None:     # a live server (events wanted) or unusual inputs: the general path
            r = self.place(owner, token_id, BUY, price, size, "FAK", now_ms=now_ms)
            return r.fills if r.ok else None
        if head is False:
            return None
        m, _, id_seq, id_draw, pu, su = head
        up = token_id == m.up_token
        limit_b = pu if up else PRICE_SCALE - pu
        if self._crossable(m, up, limit_b, owner, cap=1) <= 0:    # a BUY Up is a bid, a BUY Down an ask
            return None
        oid = order_id(self._order_head, id_seq, id_draw)
        if oid in self.orders:    # pragma: no cover - a SHA-256 collision
            return None
        o = Order(oid, owner, m.condition_id, token_id, "Up" if up else "Down", BUY, pu, su, "FAK",
                  False, 0, int(now_ms), self._seq, is_up=up)
        self.orders[oid] = o
        fills, _ = self._match(m, o, now_ms)
        o.status = "CANCELED" if o.size_u - o.filled_u > 0 else "MATCHED"
        if self._pending_updates:
            self._pending_updates = []
        if self._touched:
            self._touched.clear()
        return fills

    def _crossable(self, m: Market, is_bid: bool, limit_b: int, owner: str, cap: int | None = None) -> int:
        """Size available on the opposite side at prices crossing ``limit_b`` (Up terms)."""
        tot = 0
        orders = self.orders
        if is_bid:
            prices = m.ask_prices
            book = m.asks
            it = iter(prices)
        else:
            prices = m.bid_prices
            book = m.bids
            it = reversed(prices)
        for p in it:      # sorted: the first level that does not cross ends the walk
            if (p > limit_b) if is_bid else (p < limit_b):
                break
            for oid in book[p]:
                tot += orders[oid].remaining_u
                if cap is not None and tot >= cap:
                    return tot
        return tot

    def _match(self, m: Market, t: Order, now_ms: int) -> tuple[list[Fill], dict[str, Any] | None]:
        """Cross taker ``t`` against the book; settle each fill; build one grouped trade record."""
        self._pending_updates = []
        fills: list[Fill] = []
        maker_entries: list[dict[str, Any]] = []
        is_bid = t.book_is_bid
        limit_b = t.book_price_u
        book = m.asks if is_bid else m.bids
        prices = m.ask_prices if is_bid else m.bid_prices
        total_fee_u = 0
        while t.remaining_u > 0 and prices:
            p = prices[0] if is_bid else prices[-1]
            if (is_bid and p > limit_b) or (not is_bid and p < limit_b):
                break
            q = book[p]
            while q and t.remaining_u > 0:
                mk = self.orders[q[0]]
                x = min(t.remaining_u, mk.remaining_u)
                kind, fee_u = self._settle(m, t, mk, p, x)
                total_fee_u += fee_u
                t.filled_u += x
                mk.filled_u += x
                self.book_version[mk.owner] = self.book_version.get(mk.owner, 0) + 1
                taker_px = p if t.is_up else PRICE_SCALE - p
                maker_px = mk.price_u
                fills.append(Fill(mk.order_id, mk.owner, t.order_id, t.owner, taker_px / PRICE_SCALE,
                                  x / SIZE_SCALE, kind, fee_u / USDC_SCALE))
                maker_entries.append({"order_id": mk.order_id, "owner": mk.owner, "maker_address": mk.owner,
                                      "matched_amount": _fmt(x / SIZE_SCALE),
                                      "price": _fmt(maker_px / PRICE_SCALE),
                                      "fee_rate_bps": "0", "asset_id": mk.token_id, "outcome": mk.outcome,
                                      "side": mk.side})
                self._touched.add((m.condition_id, not is_bid, p))
                if mk.remaining_u == 0:
                    mk.status = "MATCHED"
                    q.popleft()
                    self._live.get(mk.owner, {}).pop(mk.order_id, None)
                    self._drop_gtd(mk)
                # each maker order is visited once per match (it is filled or the taker is): no repeats
                self._pending_updates.append(mk)
            if not q:
                del book[p]
                if is_bid:
                    prices.pop(0)
                else:
                    prices.pop()
        if not fills:
            return fills, None
        size_u = sum(int(round(f.size * SIZE_SCALE)) for f in fills)
        vwap = sum(f.price * f.size for f in fills) / (size_u / SIZE_SCALE)
        tid = self._new_id("trade")
        trade = {
            "id": tid, "taker_order_id": t.order_id, "market": m.condition_id, "asset_id": t.token_id,
            "side": t.side, "size": _fmt(size_u / SIZE_SCALE), "fee_rate_bps": str(m.fee_rate_bps),
            "price": _fmt(round(vwap, 6)), "status": "MATCHED", "match_time": str(now_ms // 1000),
            "match_time_ms": now_ms, "last_update": str(now_ms // 1000), "outcome": t.outcome,
            "owner": t.owner, "maker_address": t.owner, "transaction_hash": tx_hash(tid),
            "bucket_index": 0, "maker_orders": maker_entries, "trader_side": "TAKER",
            "taker_fee": _fmt(total_fee_u / USDC_SCALE), "type": "TRADE",
        }
        t.trade_ids.append(tid)
        self._trades.append(trade)
        self._owner_trades.setdefault(t.owner, []).append(trade)
        seen = {t.owner}
        for e in maker_entries:
            mk = self.orders[e["order_id"]]
            if tid not in mk.trade_ids:
                mk.trade_ids.append(tid)
            if e["owner"] not in seen:
                seen.add(e["owner"])
                self._owner_trades.setdefault(e["owner"], []).append(trade)
        m.last_trade_price = fills[-1].price if t.is_up else 1.0 - fills[-1].price
        return fills, trade

    def _settle(self, m: Market, t: Order, mk: Order, p_b: int, x: int) -> tuple[str, int]:
        """Move USDC/tokens for ``x`` units at Up-terms price ``p_b``; returns (kind, taker fee units)."""
        accounts = self.accounts     # both exist: the taker passed its balance check, the maker rested
        ta = accounts.get(t.owner) or self._acct(t.owner)
        ma = accounts.get(mk.owner) or self._acct(mk.owner)
        tp = p_b if t.is_up else PRICE_SCALE - p_b        # taker token price
        mp = mk.price_u                                    # maker token price (== p_b mirrored)
        fee_u = taker_fee_units(tp, x, m.fee)
        # maker side: release its reservation and move its own leg
        if mk.side == BUY:
            cost = mp * x
            mk.res_usdc_u -= cost
            ma.usdc_res_u -= cost
            ma.usdc_u -= cost
            ma.tok_u[mk.token_id] = ma.tok_u.get(mk.token_id, 0) + x
        else:
            mk.res_tok_u -= x
            ma.tok_res_u[mk.token_id] -= x
            ma.tok_u[mk.token_id] -= x
            ma.usdc_u += mp * x
        # taker side (fees in USDC)
        if t.side == BUY:
            ta.usdc_u -= tp * x + fee_u
            ta.tok_u[t.token_id] = ta.tok_u.get(t.token_id, 0) + x
        else:
            ta.tok_u[t.token_id] -= x
            ta.usdc_u += tp * x - fee_u
        self.fees_u += fee_u
        if t.token_id == mk.token_id:
            return "transfer", fee_u
        if t.side == BUY:                 # BUY Up x BUY Down: mint full sets
            m.pairs_u += x
            return "mint", fee_u
        m.pairs_u -= x                    # SELL x SELL: merge
        return "merge", fee_u
