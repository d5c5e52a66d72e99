"""The simulator's Gamma routes (``/gamma/events``, ``/gamma/markets``): the hourly catalog as
:mod:`hourmm_core.sim.polymarket.gamma` renders it, with Gamma's query filters and paging.

Split from :mod:`hourmm_core.sim.polymarket.server` (one job per file); :class:`GammaRoutes` is a
mixin of :class:`~hourmm_core.sim.polymarket.server.PolymarketSim` and uses its state.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from hourmm_core.sim.polymarket.gamma import HourMarket, event_json, market_json

log = logging.getLogger("hourmm.sim.polymarket")


class GammaRoutes:
    """Gamma REST handlers (mixin of PolymarketSim)."""

    # ------------------------------------------------------------------ gamma
    def _gamma_market(self, hm: HourMarket, now: int) -> dict[str, Any]:
        return market_json(hm, self.ex.markets[hm.condition_id], self.resolutions.get(hm.condition_id),
                           self.cfg.list_ahead_ms, now, self.ex.best(hm.up_token))

    def _gamma_event(self, hm: HourMarket, now: int) -> dict[str, Any]:
        return event_json(hm, self.ex.markets[hm.condition_id], self._gamma_market(hm, now), self.cfg.list_ahead_ms)

    def _bool_q(self, v: str | None) -> bool | None:
        if v is None:
            return None
        if v.lower() in ("true", "1"):
            return True
        if v.lower() in ("false", "0"):
            return False
        raise web.HTTPBadRequest(text=json.dumps({"error": f"invalid boolean {v!r}"}), content_type="application/json")

    def _limit(self, q: Any) -> tuple[int, int]:
        try:
            lim = int(q.get("limit", 100))
            off = int(q.get("offset", 0))
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "limit/offset must be integers"}),
                                     content_type="application/json") from None
        return max(0, lim), max(0, off)

    async def h_gamma_events(self, request: web.Request) -> web.Response:
        now = self.now_ms()
        q = request.query
        slugs = set(q.getall("slug", []))
        closed = self._bool_q(q.get("closed"))
        lim, off = self._limit(q)
        out = []
        for hm in self.hours:
            if not self.listed(hm, now) or (slugs and hm.slug not in slugs):
                continue
            if closed is not None and self.ex.markets[hm.condition_id].closed != closed:
                continue
            out.append(self._gamma_event(hm, now))
        return web.json_response(out[off:off + lim])

    async def h_gamma_markets(self, request: web.Request) -> web.Response:
        now = self.now_ms()
        q = request.query
        slugs = set(q.getall("slug", []))
        cids = set(q.getall("condition_ids", []))
        closed = self._bool_q(q.get("closed"))
        lim, off = self._limit(q)
        out = []
        for hm in self.hours:
            if not self.listed(hm, now) or (slugs and hm.slug not in slugs) or (cids and hm.condition_id not in cids):
                continue
            if closed is not None and self.ex.markets[hm.condition_id].closed != closed:
                continue
            out.append(self._gamma_market(hm, now))
        return web.json_response(out[off:off + lim])
