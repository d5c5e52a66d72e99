"""The race-critical venue calls on the event loop: cancels and order posts without a thread hop.

Why
---
``py_clob_client_v2`` is synchronous (a shared ``httpx.Client``), so the executor runs
every call in a thread pool. On a busy 2-core box the hop into the pool, httpx's
per-request overhead and the GIL ping-pong with the event loop cost ~10 ms from
"cancel decided" to "cancel on the wire" (measured: benchmarks/test_bench_hops.py),
while the same bytes sent with aiohttp from the event loop take under 1 ms. A sniper
race is lost in those milliseconds.

What
----
:func:`hot_calls` returns async twins for the executor's hot calls, keyed by the
function the executor would otherwise run in its pool:

* ``ClobClient.cancel_order`` / ``ClobClient.cancel_orders`` -> ``DELETE /order(s)``
  (no signature needed: the cancel-first path),
* ``Executor._post_payload`` / ``Executor._post`` -> ``POST /order(s)``,
* ``Executor._sign`` -> the same function called inline when it cannot block (the fast
  signer is installed and the venue version is cached; ``_sign`` seeds the tick size and
  passes neg_risk: pure CPU, ~0.1 ms) and in the pool otherwise.

Same bytes as the library: the body is serialized the same way and the L2 headers come
from the client's own ``_l2_headers`` (HMAC over exactly the serialized body) plus the
library's fixed headers. Errors are raised as ``PolyApiException`` with the HTTP status
(or none for a network error), so the executor maps them exactly as before. Not used
when the client reads the server time for its headers (that would block the loop).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

import aiohttp

from hourmm_core import safe_json

log = logging.getLogger(__name__)

__all__ = ["AsyncWire", "hot_calls"]

_FIXED_HEADERS = {"User-Agent": "py_clob_client_v2", "Accept": "*/*", "Connection": "keep-alive",
                  "Content-Type": "application/json"}


class AsyncWire:
    """aiohttp session (keep-alive) that sends L2-signed JSON requests like ``ClobClient``."""

    def __init__(self, client: Any, *, timeout_s: float = 15.0) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=16, keepalive_timeout=60.0),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def request(self, method: str, path: str, payload: Any) -> Any:
        from py_clob_client_v2.exceptions import PolyApiException

        c = self.client
        serialized = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        headers = {**c._l2_headers(method, path, body=payload, serialized_body=serialized), **_FIXED_HEADERS}
        try:
            async with self._sess().request(method, c.host + path, data=serialized.encode("utf-8"),
                                            headers=headers) as r:
                text = await r.text()
                status = r.status
                retry_after = r.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.debug("wire %s %s failed: %s", method, path, exc)
            raise PolyApiException(error_msg="Request exception!") from None
        self.sent += 1
        try:
            body: Any = safe_json.loads(text, what="CLOB reply")
        except ValueError:
            body = text
        if status != 200:
            err = PolyApiException(error_msg=body)
            err.status_code = status
            err.retry_after_header = retry_after  # type: ignore[attr-defined]  # 429: parsed by the executor
            raise err
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def hot_calls(executor: Any, client: Any) -> tuple[AsyncWire | None, dict[Any, Callable[..., Awaitable[Any]]]]:
    """(wire, {function the executor would run in its pool: async twin}); empty when unsafe."""
    from py_clob_client_v2.client import ClobClient

    from hourmm_core.polymarket.order_signer import FastOrderBuilder

    if getattr(client, "use_server_time", False):
        return None, {}
    wire = AsyncWire(client, timeout_s=getattr(executor, "call_timeout_s", 15.0))
    ex_cls = type(executor)

    async def post_payload(payload: Any, endpoint: str) -> Any:
        res = await wire.request("POST", endpoint, payload)
        if client._is_order_version_mismatch(res):
            refresh = getattr(client, "_ClobClient__resolve_version", None)
            if refresh is not None:   # rare; a blocking GET /version: keep it off the loop
                await asyncio.get_running_loop().run_in_executor(None, lambda: refresh(force_update=True))
        return res

    async def post(signed: Any, req: Any) -> Any:
        return await post_payload(executor._payload(signed, req.order_type, req.post_only), "/order")

    async def cancel_order(payload: Any) -> Any:
        return await wire.request("DELETE", "/order", {"orderID": payload.orderID})

    async def cancel_orders(order_hashes: list) -> Any:
        return await wire.request("DELETE", "/orders", list(order_hashes))

    async def sign(req: Any) -> Any:
        # Executor._sign seeds the tick-size cache and passes neg_risk, so with the venue version
        # cached create_order makes no request: only then is it safe on the loop.
        inline = (isinstance(client.builder, FastOrderBuilder) and client.builder.fast_enabled
                  and getattr(client, "_ClobClient__cached_version", None) is not None
                  and isinstance(getattr(client, "_ClobClient__tick_sizes", None), dict))
        if inline:
            return executor._sign(req)   # pure CPU (~0.1 ms): cheaper than two thread hops
        return await asyncio.get_running_loop().run_in_executor(executor._pool, executor._sign, req)

    return wire, {
        ClobClient.cancel_order: cancel_order,
        ClobClient.cancel_orders: cancel_orders,
        ex_cls._post_payload: post_payload,
        ex_cls._post: post,
        ex_cls._sign: sign,
    }
