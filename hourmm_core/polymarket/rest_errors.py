"""Typed errors of the Polymarket CLOB REST API and the gates that pace requests after them.

:func:`map_exception` turns the official client's / httpx's exceptions into the typed hierarchy
(:class:`AuthError`, :class:`RateLimited`, :class:`Rejected`, :class:`TransientError`,
:class:`EngineRestarting`, :class:`UnknownOutcome`); :class:`RateGate` is the shared back-off of
one API key after HTTP 429 (Retry-After honoured, capped) and, with another base, after HTTP 425
(matching-engine restart). Used by :mod:`hourmm_core.polymarket.executor`.
"""
from __future__ import annotations

import asyncio
import random
import re
import threading
from typing import Any

from hourmm_core.binance.ws_client import backoff_delay


class ExecutorError(Exception):
    """Base of every executor failure."""


class AuthError(ExecutorError):
    """Credentials rejected (401/403, derive failed). Log ``REST authentication failed``."""


class RateLimited(ExecutorError):
    """HTTP 429 (or our own gate still closed after one): ``retry_after_s`` = the wait applied."""

    def __init__(self, msg: str, retry_after_s: float = 1.0) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s
        self.header_retry_after: float | None = None


class Rejected(ExecutorError):
    """The exchange (or client-side validation) refused the request; retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(ExecutorError):
    """Timeout, network error, 5xx or 425: outcome unknown / retryable."""


class EngineRestarting(ExecutorError):
    """HTTP 425 Too Early: the matching engine is restarting (weekly, ~90 s). Nothing was
    placed; back off (exponential from 1 s) and expect a post-only window afterwards."""

    def __init__(self, msg: str, retry_after_s: float = 1.0) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s


class UnknownOutcome(TransientError):
    """A POST whose outcome stayed unknown after every retry and lookup: the order (its id is
    the EIP-712 hash of the signed order, ``order_id``) may rest on the book. Never treat it
    as rejected; resolve it from the user channel, open orders or trades."""

    def __init__(self, msg: str, order_id: str) -> None:
        super().__init__(msg)
        self.order_id = order_id


class NotStarted(ExecutorError):
    """A trading call before :meth:`Executor.start` succeeded."""


RETRY_AFTER_CAP_S = 30.0      # never trust a Retry-After longer than this
ENGINE_RESTART_BASE_S = 2.0   # 425: first wait jittered in [1, 2] s, then doubling ("start at 1-2 seconds", docs)
POST_ONLY_WINDOW_MS = 120_000  # after a restart only post-only orders are accepted for 2 minutes (venue time)
RATE_BACKOFF_BASE_S = 0.5     # first wait after a 429 without Retry-After (then x2, jittered)
_tls = threading.local()      # Retry-After of the last 429 seen by this pool thread


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form); None when absent or not a number.

    The HTTP-date form is treated as absent (exponential backoff instead): the core never
    reads the wall clock to turn a date into a delay.
    """
    if value is None:
        return None
    try:
        x = float(value.strip())
    except (TypeError, ValueError):
        return None
    return x if x >= 0 and x == x and x != float("inf") else None


def _capture_retry_after(response: Any) -> None:
    """httpx response hook (runs in the calling pool thread): remember a 429's Retry-After."""
    if getattr(response, "status_code", None) == 429:
        _tls.retry_after = parse_retry_after(response.headers.get("Retry-After"))


def install_retry_after_hook() -> None:
    """Make the V2 client's shared httpx client report Retry-After (it keeps only the body)."""
    from py_clob_client_v2.http_helpers import helpers

    client = helpers._http_client
    hooks = client.event_hooks
    resp_hooks = list(hooks.get("response", []))
    if _capture_retry_after not in resp_hooks:
        resp_hooks.append(_capture_retry_after)
        client.event_hooks = {**hooks, "response": resp_hooks}


class RateGate:
    """Shared 429 back-off of one API key: while closed, nothing is sent (fail closed).

    A 429 closes it for ``Retry-After`` seconds (capped at ``cap_s``); without the header, for
    an exponentially growing, jittered delay. Any success resets the growth. ``now`` is the
    event loop's monotonic clock (a pacing timer, not market time).
    """

    def __init__(self, cap_s: float = RETRY_AFTER_CAP_S, base_s: float = RATE_BACKOFF_BASE_S,
                 seed: int | None = None) -> None:
        self.cap_s = cap_s
        self.base_s = base_s
        self._rng = random.Random(seed)
        self._until = 0.0
        self.streak = 0
        self.hits = 0
        self.delays: list[float] = []   # the last 32 waits applied (observability, tests)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def remaining(self) -> float:
        return max(0.0, self._until - self._now())

    def on_429(self, retry_after_s: float | None) -> float:
        self.hits += 1
        if retry_after_s is not None:
            delay = min(self.cap_s, retry_after_s)
        else:
            delay = backoff_delay(self.streak, self.base_s, self.cap_s, self._rng)
        self.streak += 1
        self._until = max(self._until, self._now() + delay)
        self.delays.append(delay)
        del self.delays[:-32]
        return delay

    def on_success(self) -> None:
        self.streak = 0


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        for k in ("error", "errorMsg", "message"):
            if err.get(k):
                return str(err[k])
        return str(err)
    return str(err)


def map_exception(exc: BaseException) -> ExecutorError:
    """Translate client/httpx exceptions into the typed hierarchy above."""
    if isinstance(exc, ExecutorError):
        return exc
    from py_clob_client_v2.exceptions import PolyApiException, PolyException

    if isinstance(exc, PolyApiException):
        code = exc.status_code
        text = _error_text(exc.error_msg)
        if code in (401, 403):
            return AuthError(f"HTTP {code}: {text}")
        if code == 429:
            ra = getattr(exc, "hourmm_retry_after", None)
            if ra is None:
                m = re.search(r"(\d+(?:\.\d+)?)\s*s", text)
                ra = float(m.group(1)) if m else None
            err = RateLimited(f"HTTP 429: {text}", ra if ra is not None else 1.0)
            err.header_retry_after = ra  # type: ignore[attr-defined]
            return err
        if code == 425:
            return EngineRestarting(f"HTTP 425: {text}")
        if code is None or code >= 500 or code == 408:
            return TransientError(f"HTTP {code}: {text}" if code else f"network: {text}")
        return Rejected(f"HTTP {code}: {text}")
    if isinstance(exc, PolyException):
        msg = getattr(exc, "msg", str(exc))
        if "API Credentials are needed" in str(msg) or "private key is needed" in str(msg):
            return AuthError(str(msg))
        return Rejected(str(msg))
    try:
        import httpx

        if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
            return TransientError(f"{type(exc).__name__}: {exc}")
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return Rejected(f"{type(exc).__name__}: {exc}")
    return TransientError(f"{type(exc).__name__}: {exc}")
