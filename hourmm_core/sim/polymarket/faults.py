"""The simulator's control surface: ``GET /_sim/state`` and ``POST /_sim/fault`` (and the middleware
that applies REST faults: errors with Retry-After, counted requests).

Split from :mod:`hourmm_core.sim.polymarket.server` (one job per file); :class:`SimControl` is a
mixin of :class:`~hourmm_core.sim.polymarket.server.PolymarketSim` and uses its state.
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from hourmm_core.clock import HOUR_MS
from hourmm_core.sim.polymarket.engine import (
    USDC_SCALE,
    EngineError,
)

log = logging.getLogger("hourmm.sim.polymarket")
ORDER_ENDPOINTS = frozenset({"POST /order", "POST /orders", "DELETE /order", "DELETE /orders", "DELETE /cancel-all",
                             "DELETE /cancel-market-orders", "GET /data/orders", "GET /data/order"})


class SimControl:
    """Fault injection and state (mixin of PolymarketSim)."""

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler: Any) -> web.StreamResponse:
        p = request.path
        if not (p.startswith("/_sim") or p.startswith("/ws/") or p.startswith("/gamma")):
            self.requests[f"{request.method} {p}"] += 1   # every CLOB REST attempt, faulted or not
            f = self.faults
            if f["rest_error"] and f["rest_error_count"] > 0:
                f["rest_error_count"] -= 1
                code = int(f["rest_error"])
                self.errors[f"fault_{code}"] += 1
                if code == 429:  # retry_after_s None -> no Retry-After header (client must back off itself)
                    ra = f["retry_after_s"]
                    return web.json_response({"error": "Too Many Requests"}, status=429,
                                             headers={"Retry-After": f"{ra:g}"} if ra is not None else None)
                return web.json_response({"error": "Internal Server Error (sim fault)"}, status=code)
            ep = request.method + " " + ("/data/order" if p.startswith("/data/order/") else p)
            if f["restart_425"] > 0 and ep in ORDER_ENDPOINTS:
                # weekly matching-engine restart: 425 Too Early on every order endpoint, then a
                # post-only window (docs.polymarket.com/trading/matching-engine)
                f["restart_425"] -= 1
                self.errors["fault_425"] += 1
                if f["restart_425"] == 0:
                    f["post_only_until"] = self.clock.now_ms() + float(f["post_only_s"]) * 1000   # venue time
                return web.json_response({"error": "Too Early: the matching engine is restarting (sim fault)"},
                                         status=425)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as e:  # never crash on a bad request: count, log, 500 with a clear message
            self.errors["handler_exception"] += 1
            log.exception("handler %s failed", p)
            return web.json_response({"error": f"internal error: {type(e).__name__}"}, status=500)

    # ------------------------------------------------------------------ control
    def state(self) -> dict[str, Any]:
        now = self.now_ms()
        mkts = []
        for hm in self.hours:
            m = self.ex.markets[hm.condition_id]
            mkts.append({"slug": hm.slug, "condition_id": hm.condition_id, "up_token": hm.up_token,
                         "down_token": hm.down_token, "start_ms": hm.hour_ms, "end_ms": hm.hour_ms + HOUR_MS,
                         "listed": self.listed(hm, now), "accepting": m.accepting and not m.closed and now < m.end_ms,
                         "closed": m.closed, "tick_size": m.tick_size, "resolution": self.resolutions.get(hm.condition_id),
                         "book_up": self.ex.book(hm.up_token, depth=5),
                         "fair_up": self.agents.stats.last_fair.get(hm.condition_id) if self.agents else None})
        users = sorted(o for o in self.ex.accounts if o not in self.agent_owners)
        return {
            "now_ms": now, "speed": getattr(self.clock, "speed", 1.0), "synthetic_data": bool(self.synthetic),
            "markets": mkts,
            "balances": {o: {**self.ex.balances(o), "positions": self.ex.positions(o)} for o in users},
            "open_orders": [self._order_json(o) for o in self.ex.open_orders() if o.owner not in self.agent_owners],
            "agents": (self.agents.stats.__dict__ | {"n_open": len([o for o in self.ex.open_orders()
                                                                  if o.owner in self.agent_owners])})
            if self.agents else None,
            "heartbeats": len(self.heartbeats), "heartbeat_cancels": self.hb_cancels,
            "faults": dict(self.faults), "errors": dict(self.errors),
            "order_versions": dict(self.order_versions), "allowed_versions": list(self.cfg.allowed_versions),
            "fees_collected": self.ex.fees_u / USDC_SCALE,
            "ws_connections": {"market": sum(c.kind == "market" for c in self.conns),
                               "user": sum(c.kind == "user" for c in self.conns)},
        }

    async def h_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def h_fault(self, request: web.Request) -> web.Response:
        b = self._json_body(await request.text())
        if not isinstance(b, dict) or not b:
            return self._bad("fault body must be a JSON object")
        applied: dict[str, Any] = {}
        try:
            if "drop_ws" in b:
                kind = b["drop_ws"]
                if kind not in ("market", "user", "all"):
                    return self._bad("drop_ws must be market|user|all")
                n = 0
                for c in list(self.conns):
                    if kind == "all" or c.kind == kind:
                        n += 1
                        self.conns.discard(c)
                        c.q.put_nowait(None)
                        await c.ws.close(code=1011, message=b"sim fault: drop")
                applied["drop_ws"] = n
            if "rest_error" in b:
                code = int(b["rest_error"])
                if code not in (429, 500, 502, 503, 504):
                    return self._bad("rest_error must be 429 or 5xx")
                ra = b.get("retry_after_s", 1)
                if ra is not None and (isinstance(ra, bool) or not isinstance(ra, (int, float)) or not 0 <= ra <= 3600):
                    return self._bad("retry_after_s must be a number of seconds in [0, 3600] or null")
                self.faults.update(rest_error=code, rest_error_count=int(b.get("count", 1)), retry_after_s=ra)
                applied["rest_error"] = code
            if "engine_restart" in b:
                er = b["engine_restart"]
                if not isinstance(er, dict) or not isinstance(er.get("count_425", 0), int) \
                        or not isinstance(er.get("post_only_s", 0), (int, float)):
                    return self._bad("engine_restart must be {count_425: int, post_only_s: seconds of sim time}")
                self.faults.update(restart_425=int(er.get("count_425", 3)), post_only_s=float(er.get("post_only_s", 120)))
                applied["engine_restart"] = {"count_425": self.faults["restart_425"],
                                             "post_only_s": self.faults["post_only_s"]}
            for key in ("ack_delay_ms", "reject_next", "clock_skew_ms", "place_then_503", "outage_after"):
                if key in b:
                    self.faults[key] = int(b[key])
                    applied[key] = self.faults[key]
            if "tick_size" in b:
                tok = str(b.get("token_id", ""))
                m = self.ex.token_market.get(tok)
                if m is None:
                    return self._bad("tick_size fault needs a known token_id")
                self.ex.set_tick_size(m.condition_id, float(b["tick_size"]), self.now_ms())
                applied["tick_size"] = m.tick_size
        except (TypeError, ValueError, EngineError) as e:
            return self._bad(f"invalid fault: {e}")
        if not applied:
            return self._bad("no known fault key (drop_ws, rest_error, engine_restart, place_then_503, ack_delay_ms, "
                             "reject_next, tick_size, "
                             "clock_skew_ms)")
        log.warning("Sim fault injected: %s", applied)
        return web.json_response({"ok": True, "applied": applied})
