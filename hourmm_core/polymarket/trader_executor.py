"""The trader's view of the venue: :class:`TraderExecutor` adapts :class:`~hourmm_core.polymarket.executor.Executor`
to the trader's ``Executor`` protocol (failures as values, venue time from the trader's clock), and
:func:`connect_trader_executor` starts it for container B with retries.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from hourmm_core.clock import Clock
from hourmm_core.config import Credentials
from hourmm_core.polymarket.executor import (
    AuthError,
    EngineRestarting,
    Executor,
    ExecutorError,
    OrderAck,
    OrderRequest,
    RateLimited,
    Rejected,
    TransientError,
    UnknownOutcome,
    tick_str,
)
from hourmm_core.trading.types import PlaceResult

log = logging.getLogger(__name__)


class TraderExecutor:
    """The interface the trader's ``Executor`` protocol expects, over :class:`Executor`.

    Never raises from :meth:`place` / :meth:`cancel_all` (failures are values the
    trader journals); :meth:`cancel` raises the typed errors so the trader can mark
    the cancels failed.
    """

    def __init__(self, executor: Executor) -> None:
        self.ex = executor

    @classmethod
    def from_config(cls, clob_url: str, chain_id: int, creds: Credentials, **kw: Any) -> "TraderExecutor":
        return cls(Executor(clob_url, chain_id, creds, **kw))

    async def start(self) -> str:
        return await self.ex.start()

    def bind_clock(self, clock: Clock) -> None:
        """The trader's clock = the venue's time (post-only window after an engine restart)."""
        self.ex.clock = clock

    @property
    def api_creds(self) -> tuple[str, str, str]:
        return self.ex.api_creds

    @property
    def api_key(self) -> str | None:
        return self.ex.api_key

    @property
    def heartbeat_ok(self) -> bool:
        return self.ex.heartbeat_ok

    @property
    def rest_ok(self) -> bool:
        return self.ex.rest_ok

    @staticmethod
    def _request(token_id: str, side: str, price: float, size: float, *, tick_size: float | str, neg_risk: bool,
                 post_only: bool, client_id: str, expiration_s: int = 0) -> OrderRequest:
        return OrderRequest(client_key=client_id, token_id=token_id, side=side, price=float(price),
                            size=float(size), tick_size=tick_str(tick_size), neg_risk=neg_risk,
                            post_only=post_only, expiration_s=expiration_s)

    @staticmethod
    def _outcome(res: "OrderAck | ExecutorError") -> PlaceResult:
        if isinstance(res, OrderAck):
            return PlaceResult(True, res.order_id, res.status)
        if isinstance(res, AuthError):
            return PlaceResult(False, error=f"REST authentication failed: {res}", auth_failed=True)
        if isinstance(res, (RateLimited, EngineRestarting)):
            what = "rate limited" if isinstance(res, RateLimited) else "matching engine restarting"
            return PlaceResult(False, error=f"{what} (retry after {res.retry_after_s:.2f}s): {res}",
                               rate_limited=True, retry_after_s=res.retry_after_s)
        if isinstance(res, UnknownOutcome):
            return PlaceResult(False, order_id=res.order_id, error=f"unknown outcome: {res}", unknown=True)
        if isinstance(res, Rejected):
            return PlaceResult(False, error=res.reason)
        if isinstance(res, TransientError):
            return PlaceResult(False, error=f"unknown outcome: {res}", unknown=True)
        return PlaceResult(False, error=f"{type(res).__name__}: {res}")

    async def presign(self, orders: list[dict[str, Any]]) -> list[Any]:
        """Sign orders ahead (each dict holds :meth:`place`'s arguments); nothing is sent.

        The trader calls it while the plan's cancels are in flight and hands the result to
        :meth:`place` / :meth:`place_many` only if the places may still go out; one opaque
        item per order (``None`` = sign again at placement)."""
        reqs: list[OrderRequest | None] = []
        for o in orders:
            try:
                reqs.append(self._request(**o))
            except ExecutorError:
                reqs.append(None)
        signed = iter(await self.ex.presign([r for r in reqs if r is not None]))
        return [next(signed) if r is not None else None for r in reqs]

    async def place(self, token_id: str, side: str, price: float, size: float, *, tick_size: float | str,
                    neg_risk: bool, post_only: bool, client_id: str, expiration_s: int = 0,
                    presigned: Any = None) -> PlaceResult:
        try:
            req = self._request(token_id, side, price, size, tick_size=tick_size, neg_risk=neg_risk,
                                post_only=post_only, client_id=client_id, expiration_s=expiration_s)
            return self._outcome(await self.ex.place(req, presigned))
        except ExecutorError as exc:
            return self._outcome(exc)
        finally:
            self.ex.forget(client_id)   # OM client ids are unique per intent; keep the map bounded

    async def place_many(self, orders: list[dict[str, Any]], presigned: list[Any] | None = None) -> list[PlaceResult]:
        """Several orders in one go (speed): each dict holds :meth:`place`'s arguments.

        Signed with the fast signer (or taken from ``presigned``, :meth:`presign`'s result for
        the same orders), posted as POST /orders batches of up to 15 (one HMAC, one round
        trip), one outcome per order in the same order; never raises for an executor error
        (they become outcomes, like :meth:`place`).
        """
        reqs = [self._request(**o) for o in orders]
        try:
            res: list[Any] = await self.ex.place_many(reqs, presigned)
        except ExecutorError as exc:
            res = [exc] * len(reqs)
        finally:
            for r in reqs:
                self.ex.forget(r.client_key)
        return [self._outcome(r) for r in res]

    async def cancel(self, order_ids: list[str]) -> tuple[list[str], dict[str, str]]:
        ids = [i for i in order_ids if i]
        if not ids:
            return [], {}
        res = await (self.ex.cancel(ids[0]) if len(ids) == 1 else self.ex.cancel_many(ids))
        failed = {str(k): str(v) for k, v in res.not_canceled.items()}
        done = list(res.canceled)
        for i in ids:   # an id the exchange did not mention is not known to be cancelled
            if i not in done and i not in failed:
                failed[i] = "not confirmed by the exchange"
        return done, failed

    async def cancel_all(self) -> bool:
        try:
            await self.ex.cancel_all()
            return True
        except ExecutorError as exc:
            log.error("Cancel-all failed: %s", exc)
            return False

    async def open_orders(self, market: str | None = None) -> list[dict[str, Any]]:
        return await self.ex.open_orders(market=market)

    async def lookup_order(self, order_id: str) -> dict[str, Any] | None:
        return await self.ex.lookup_order(order_id)

    async def trades(self, market: str | None = None) -> list[dict[str, Any]]:
        return await self.ex.trades(market=market)

    async def heartbeat(self) -> bool:
        return await self.ex.heartbeat()

    async def balance(self, token_id: str | None = None) -> float:
        return await self.ex.balance(token_id)

    async def close(self) -> None:
        await self.ex.close()


async def connect_trader_executor(clob_url: str, chain_id: int, creds: Credentials,
                                  attempts: int = 10) -> tuple[TraderExecutor | None, bool]:
    """Start the venue for container B: ``(executor, auth_failed)``.

    Transient failures (CLOB not up yet) are retried with exponential backoff; an
    authentication failure is not retried (the caller HALTs with the guide's
    ``REST authentication failed`` line). RuntimeError after ``attempts`` transient failures.
    """
    ex = TraderExecutor.from_config(clob_url, chain_id, creds)
    delay = 0.5
    for i in range(attempts):
        try:
            await ex.start()
            return ex, False
        except AuthError as exc:
            log.error("Could not authenticate with %s: %s", clob_url, exc)
            await ex.ex.close()
            return None, True
        except ExecutorError as exc:
            log.warning("CLOB not reachable yet (%s); retry %d/%d in %.1fs", exc, i + 1, attempts, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    await ex.ex.close()
    raise RuntimeError(f"CLOB at {clob_url} unreachable after {attempts} attempts")
