"""Adapter from the venue executor (:mod:`hourmm_core.polymarket.executor`) to the trader's needs.

Why: the trader only wants "place / cancel these / cancel all / what is open" with
normalised results; the executor speaks typed exceptions and request objects. Keeping
the mapping here means the trader's logic never imports the CLOB client.
"""
from __future__ import annotations

import logging
from typing import Any

from hourmm_core.trading.trader import PlaceResult

log = logging.getLogger(__name__)


class VenueAuthError(Exception):
    """REST authentication failed (401/403): the trader latches HALT."""

    auth_failed = True


class ClobVenue:
    """Wraps ``hourmm_core.polymarket.executor.Executor`` (already started)."""

    def __init__(self, executor: Any) -> None:
        self.ex = executor

    @property
    def api_creds(self) -> tuple[str, str, str]:
        return self.ex.api_creds

    async def place(self, token_id: str, side: str, price: float, size: float, *, tick_size: float,
                    neg_risk: bool, post_only: bool, client_id: str) -> PlaceResult:
        from hourmm_core.polymarket.executor import AuthError, ExecutorError, OrderRequest, tick_str

        try:
            req = OrderRequest(client_id, token_id, side, round(price, 6), round(size, 2), tick_str(tick_size),
                               neg_risk, post_only)
            ack = await self.ex.place(req)
        except AuthError as exc:
            return PlaceResult(False, error=str(exc), auth_failed=True)
        except ExecutorError as exc:
            return PlaceResult(False, error=f"{type(exc).__name__}: {exc}")
        return PlaceResult(True, ack.order_id, ack.status)

    async def _guard(self, coro: Any) -> Any:
        from hourmm_core.polymarket.executor import AuthError

        try:
            return await coro
        except AuthError as exc:
            raise VenueAuthError(str(exc)) from None

    async def cancel(self, order_ids: list[str]) -> tuple[list[str], dict[str, str]]:
        r = await self._guard(self.ex.cancel_many(order_ids))
        return list(r.canceled), {str(k): str(v) for k, v in r.not_canceled.items()}

    async def cancel_all(self) -> bool:
        r = await self._guard(self.ex.cancel_all())
        if r.not_canceled:
            log.error("Cancel-all failed for %d order(s): %s", len(r.not_canceled), r.not_canceled)
        return not r.not_canceled

    async def open_orders(self) -> list[dict[str, Any]]:
        return await self._guard(self.ex.open_orders())

    async def heartbeat(self) -> bool:
        return await self.ex.heartbeat()

    def forget(self, client_id: str) -> None:
        self.ex.forget(client_id)

    async def close(self) -> None:
        await self.ex.close()
