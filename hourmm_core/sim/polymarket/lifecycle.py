"""The exchange's second job: everything after an order rests, and the reads of owners' state.

:class:`~hourmm_core.sim.polymarket.engine.Exchange` (engine.py) holds the first job: listing,
deposits, the book's plumbing and top, ids, ``place`` and the match/settle of a taker. This
mixin holds the rest of the same object's behaviour, on the same attributes (``orders``,
``accounts``, ``_live``, ``_gtd``, ``markets`` ... created by ``Exchange.__init__``):

* owner/order views: balances, positions, open orders, one order, trades;
* cancels (one, many, all, per market) and GTD expiry (``advance``);
* market lifecycle: tick size change, stop at the end of the hour, CTF merge, resolution;
* the accounting and book invariants the tests check.

It is not usable alone (no ``__init__``); ``from hourmm_core.sim.polymarket.engine import Exchange``
stays the one entry point.
"""
from __future__ import annotations

import bisect
from typing import Any, Iterable

from hourmm_core.fees import PRICE_SCALE, SIZE_SCALE, USDC_SCALE
from hourmm_core.sim.polymarket.flowcore import build_trades
from hourmm_core.sim.polymarket.orders import BUY, EngineError, Order, _fmt, price_to_units, size_to_units


class Lifecycle:
    """Views, cancels, expiry, stop/merge/resolve and invariants of :class:`Exchange` (a mixin)."""

    # ------------------------------------------------------------------ views
    def balances(self, owner: str) -> dict[str, float]:
        a = self._acct(owner)
        return {"usdc": a.usdc_u / USDC_SCALE, "usdc_available": (a.usdc_u - a.usdc_res_u) / USDC_SCALE}

    def positions(self, owner: str) -> dict[str, float]:
        a = self._acct(owner)
        return {t: v / SIZE_SCALE for t, v in a.tok_u.items() if v}

    def token_available(self, owner: str, token_id: str) -> float:
        a = self._acct(owner)
        return (a.tok_u.get(token_id, 0) - a.tok_res_u.get(token_id, 0)) / SIZE_SCALE

    def open_orders(self, owner: str | None = None, condition_id: str | None = None,
                    token_id: str | None = None) -> list[Order]:
        """Live orders (optionally filtered), in arrival order."""
        if owner is None:
            pool = [o for d in self._live.values() for o in d.values()]
        else:
            pool = list(self._live.get(owner, {}).values())
        out = [o for o in pool if o.status == "LIVE"
               and (owner is None or o.owner == owner)
               and (condition_id is None or o.condition_id == condition_id)
               and (token_id is None or o.token_id == token_id)]
        out.sort(key=lambda o: o.seq)
        return out

    def order(self, order_id: str) -> Order | None:
        o = self.orders.get(order_id)
        if o is not None and self._lazy:
            build_trades(o.trade_ids)        # its trade ids, as built records have them
        return o

    def trades(self, owner: str | None = None) -> list[dict[str, Any]]:
        if owner is None:
            return list(self.trades_log)
        lst = self._owner_trades.get(owner, [])
        if self._lazy:
            build_trades(lst)
        return list(lst)

    def trade_count(self, owner: str) -> int:
        """How many trade records involve ``owner`` (taker or maker): with :meth:`trades_since`,
        an in-process reader follows its trades without copying the whole list each time."""
        return len(self._owner_trades.get(owner, ()))

    def trades_since(self, owner: str, start: int) -> list[dict[str, Any]]:
        """``owner``'s trade records from index ``start`` on (the records themselves, in order)."""
        lst = self._owner_trades.get(owner, [])
        if self._lazy:
            build_trades(lst, start)
        return lst[start:]

    # ------------------------------------------------------------------ cancels and expiry
    def _drop_gtd(self, o: Order) -> None:
        if o.order_type == "GTD":
            i = bisect.bisect_left(self._gtd, (o.expiration_ms, o.seq, o.order_id))
            if i < len(self._gtd) and self._gtd[i][2] == o.order_id:
                self._gtd.pop(i)

    def _release(self, o: Order) -> None:
        a = self._acct(o.owner)
        if o.res_usdc_u:
            a.usdc_res_u -= o.res_usdc_u
            o.res_usdc_u = 0
        if o.res_tok_u:
            a.tok_res_u[o.token_id] -= o.res_tok_u
            o.res_tok_u = 0

    def _cancel_order(self, o: Order, now_ms: int, reason: str = "CANCELED") -> None:
        m = self.markets[o.condition_id]
        self._remove(m, o)
        self._release(o)
        self._drop_gtd(o)
        o.status = "CANCELED"
        if not self._listeners:
            return
        ev = {"event_type": "order", "type": "CANCELLATION", "order": o.to_dict(), "ts_ms": now_ms,
              "reason": reason}
        self._emit(ev)

    def cancel(self, owner: str, order_id: str, now_ms: int = 0) -> tuple[bool, str]:
        """Cancel one live order of ``owner``. Returns (ok, reason-if-not)."""
        o = self.orders.get(order_id)
        if o is None or o.owner != owner:
            return False, "order not found"
        if o.status != "LIVE":
            return False, "order can't be found - already canceled or matched"
        if self._listeners or o.order_type == "GTD" or o.res_tok_u:
            self._cancel_order(o, now_ms)
            self._flush_book_events(now_ms)
            return True, ""
        # in-process (no listeners) GTC/FAK BUY: _cancel_order + _flush_book_events inlined
        m = self.markets[o.condition_id]
        live = self._live.get(owner)
        if live is not None:
            live.pop(order_id, None)
        self.book_version[owner] = self.book_version.get(owner, 0) + 1
        p = o.price_u if o.is_up else PRICE_SCALE - o.price_u
        book, prices = (m.bids, m.bid_prices) if (o.side == BUY) == o.is_up else (m.asks, m.ask_prices)
        q = book.get(p)
        if q is not None:
            try:
                q.remove(order_id)
            except ValueError:
                q = None
            if q is not None and not q:
                del book[p]
                i = bisect.bisect_left(prices, p)
                if i < len(prices) and prices[i] == p:
                    prices.pop(i)
        if o.res_usdc_u:
            self._acct(owner).usdc_res_u -= o.res_usdc_u
            o.res_usdc_u = 0
        o.status = "CANCELED"
        self._touched.clear()
        return True, ""

    def cancel_many(self, owner: str, order_ids: Iterable[str], now_ms: int = 0) -> dict[str, Any]:
        """CLOB-shaped ``{"canceled": [...], "not_canceled": {id: reason}}``."""
        canceled, not_canceled = [], {}
        for oid in order_ids:
            o = self.orders.get(oid)
            if o is None or o.owner != owner:
                not_canceled[oid] = "order not found"
            elif o.status != "LIVE":
                not_canceled[oid] = "order can't be found - already canceled or matched"
            else:
                self._cancel_order(o, now_ms)
                canceled.append(oid)
        self._flush_book_events(now_ms)
        return {"canceled": canceled, "not_canceled": not_canceled}

    def cancel_all(self, owner: str, now_ms: int = 0) -> dict[str, Any]:
        return self.cancel_many(owner, [o.order_id for o in self.open_orders(owner)], now_ms)

    def cancel_market(self, owner: str, condition_id: str | None = None, now_ms: int = 0,
                      asset_id: str | None = None) -> dict[str, Any]:
        ids = [o.order_id for o in self.open_orders(owner) if (not condition_id or o.condition_id == condition_id)
               and (not asset_id or o.token_id == asset_id)]
        return self.cancel_many(owner, ids, now_ms)

    def advance(self, now_ms: int) -> int:
        """Expire GTD orders whose expiration has passed; returns how many expired."""
        n = 0
        while self._gtd and self._gtd[0][0] <= now_ms:
            _, _, oid = self._gtd.pop(0)
            o = self.orders.get(oid)
            if o is not None and o.status == "LIVE":
                self._cancel_order(o, now_ms, reason="EXPIRED")
                n += 1
        if n:
            self._flush_book_events(now_ms)
        return n

    # ------------------------------------------------------------------ lifecycle
    def set_tick_size(self, condition_id: str, tick_size: float, now_ms: int = 0) -> None:
        """Change a market's tick (resting orders stay) and emit ``tick_size_change`` per token."""
        m = self.markets.get(condition_id)
        if m is None:
            raise EngineError(f"unknown market {condition_id}")
        tu = price_to_units(tick_size)
        if tu <= 0 or PRICE_SCALE % tu:
            raise EngineError(f"invalid tick size {tick_size}")
        old = m.tick_size
        m.tick_u = tu
        for tok in (m.up_token, m.down_token):
            self._emit({"event_type": "tick_size_change", "market": condition_id, "asset_id": tok,
                        "old_tick_size": _fmt(old), "new_tick_size": _fmt(m.tick_size), "ts_ms": now_ms})

    def stop_market(self, condition_id: str, now_ms: int = 0) -> int:
        """Stop accepting orders and cancel everything resting (end of the hour)."""
        m = self.markets.get(condition_id)
        if m is None:
            raise EngineError(f"unknown market {condition_id}")
        m.accepting = False
        m.closed = True
        live = self.open_orders(condition_id=condition_id)
        for o in live:
            self._cancel_order(o, now_ms, reason="MARKET_CLOSED")
        self._flush_book_events(now_ms)
        self._emit({"event_type": "market_status", "market": condition_id, "status": "closed", "ts_ms": now_ms})
        return len(live)

    def merge(self, owner: str, condition_id: str, size: float, now_ms: int = 0) -> float:
        """CTF merge: burn ``size`` Up + ``size`` Down of ``owner`` (free, unreserved tokens) for
        ``size`` USDC from the collateral pool. Any amount (no venue minimum); returns the USDC paid.
        """
        m = self.markets.get(condition_id)
        if m is None:
            raise EngineError(f"unknown market {condition_id}")
        if m.resolved:
            raise EngineError(f"market {condition_id} already resolved")
        x = size_to_units(size)
        if x <= 0:
            raise EngineError(f"invalid merge size {size!r}")
        a = self._acct(owner)
        for tok in (m.up_token, m.down_token):
            if a.tok_u.get(tok, 0) - a.tok_res_u.get(tok, 0) < x:
                raise EngineError(f"merge of {size} needs {size} free {tok} tokens")
        a.tok_u[m.up_token] -= x
        a.tok_u[m.down_token] -= x
        a.usdc_u += x * PRICE_SCALE
        m.pairs_u -= x
        self._emit({"event_type": "merge", "market": condition_id, "owner": owner, "size": _fmt(x / SIZE_SCALE),
                    "ts_ms": now_ms})
        return x * PRICE_SCALE / USDC_SCALE

    def resolve(self, condition_id: str, up_wins: bool, now_ms: int = 0) -> dict[str, float]:
        """Settle: each winning token pays exactly 1 USDC from the pool, losing tokens are burned.

        Returns the USDC paid per owner. Idempotent guard: a resolved market raises.
        """
        m = self.markets.get(condition_id)
        if m is None:
            raise EngineError(f"unknown market {condition_id}")
        if m.resolved:
            raise EngineError(f"market {condition_id} already resolved")
        if not m.closed:
            self.stop_market(condition_id, now_ms)
        win, lose = (m.up_token, m.down_token) if up_wins else (m.down_token, m.up_token)
        paid: dict[str, float] = {}
        total_win = 0
        for owner, a in self.accounts.items():
            w = a.tok_u.pop(win, 0)
            a.tok_u.pop(lose, None)
            a.tok_res_u.pop(win, None)
            a.tok_res_u.pop(lose, None)
            if w:
                a.usdc_u += w * PRICE_SCALE
                total_win += w
                paid[owner] = w * PRICE_SCALE / USDC_SCALE
        if total_win != m.pairs_u:
            # Cannot happen if the engine is correct; surfaced loudly rather than hidden.
            raise AssertionError(f"token supply {total_win} != pairs {m.pairs_u} in {condition_id}")
        self.paid_out_u += total_win * PRICE_SCALE
        m.pairs_u = 0
        m.resolved = True
        m.up_wins = bool(up_wins)
        self._emit({"event_type": "market_status", "market": condition_id, "status": "resolved",
                    "up_wins": bool(up_wins), "ts_ms": now_ms})
        return paid

    # ------------------------------------------------------------------ invariants
    def total_usdc_u(self) -> int:
        return sum(a.usdc_u for a in self.accounts.values())

    def pool_u(self) -> int:
        """USDC locked as collateral for outstanding full sets (1 USDC per pair)."""
        return sum(m.pairs_u for m in self.markets.values()) * PRICE_SCALE

    def check_invariants(self) -> None:
        """Raise AssertionError if any accounting or book invariant is broken (used by tests)."""
        assert self.total_usdc_u() + self.pool_u() + self.fees_u == self.deposited_u - self.withdrawn_u, \
            "USDC not conserved"
        for m in self.markets.values():
            up = sum(a.tok_u.get(m.up_token, 0) for a in self.accounts.values())
            dn = sum(a.tok_u.get(m.down_token, 0) for a in self.accounts.values())
            assert up == dn == m.pairs_u, f"token supply mismatch in {m.condition_id}: {up} {dn} {m.pairs_u}"
            if m.bid_prices and m.ask_prices:
                assert m.bid_prices[-1] < m.ask_prices[0], f"crossed book in {m.condition_id}"
            assert m.bid_prices == sorted(m.bids) and m.ask_prices == sorted(m.asks)
        live_idx = {oid for d in self._live.values() for oid in d}
        live = {o.order_id for o in self.orders.values() if o.status == "LIVE" and o.order_type in ("GTC", "GTD")}
        assert live_idx == live, "live-order index out of sync"
        for owner, a in self.accounts.items():
            res_u = sum(o.res_usdc_u for o in self.orders.values() if o.owner == owner and o.status == "LIVE")
            assert a.usdc_res_u == res_u, f"reservation drift for {owner}"
            assert 0 <= a.usdc_res_u <= a.usdc_u, f"negative free USDC for {owner}"
            for tok, v in a.tok_u.items():
                assert v >= 0, f"negative tokens {owner} {tok}"
                assert 0 <= a.tok_res_u.get(tok, 0) <= v
