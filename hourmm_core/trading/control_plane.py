"""Operator control plane of container B (aiohttp), exactly the guide's endpoints.

Why separate from the trader: the HTTP surface (validation, auth, error shapes) is
tested on its own against any object implementing :class:`ControlTarget`; the
trader implements it. Every request body is fully validated *before* the target is
called, so a bad request returns ``400 {"error": ...}`` and changes nothing.

Endpoints:
    GET  /status          {session_state, risk_mode, positions:{yes_tokens,no_tokens},
                           open_orders, health:{market_ws,user_ws,rest,binance_stale},
                           market_id, ...extra}
    POST /pause_quoting   {"pause": bool}
    POST /set_mode        {"mode": "NORMAL"|"REDUCE_ONLY"|"FLATTEN"|"HALT"}
    POST /flatten_now     (no body)
    POST /set_limits      {max_reserved_capital?, max_position_size?, max_order_size?,
                           max_open_orders?}  (at least one)

When ``token`` is set every endpoint needs ``Authorization: Bearer <token>`` (401
otherwise). Every POST (accepted or refused) is journaled through ``journal``.
"""
from __future__ import annotations

import hmac
import logging
from typing import Any, Awaitable, Callable, Mapping, Protocol

from aiohttp import web

from hourmm_core import safe_json
from hourmm_core.httplog import ProtocolErrorLogger
from hourmm_core.trading.risk_engine import Limits, Mode

log = logging.getLogger(__name__)


class ControlTarget(Protocol):
    """What the control plane drives (the Trader)."""

    def status(self) -> dict[str, Any]: ...
    def current_limits(self) -> Limits: ...
    async def pause_quoting(self, pause: bool) -> dict[str, Any]: ...
    async def set_mode(self, mode: Mode) -> dict[str, Any]: ...
    async def flatten_now(self) -> dict[str, Any]: ...
    async def set_limits(self, changes: Mapping[str, Any]) -> dict[str, Any]: ...


JournalFn = Callable[[str, dict[str, Any]], None]


MAX_BODY_BYTES = 16 * 1024   # the largest valid body is ~150 bytes
# Sanity caps for /set_limits (USDC / shares / orders): far above any real account of this
# strategy, far below values that would make the risk arithmetic meaningless (1e308).
LIMIT_CAPS = {"max_reserved_capital": 1e6, "max_position_size": 1e6, "max_order_size": 1e6,
              "max_open_orders": 1000}


class BadRequest(ValueError):
    """Validation failure -> HTTP 400 with this message."""


def _err(status: int, msg: str) -> web.Response:
    return web.json_response({"error": msg}, status=status)


async def _body(request: web.Request, allow_empty: bool = False) -> dict[str, Any]:
    """The JSON object in the body, whatever the Content-Type (curl -d sends form type)."""
    raw = await request.text()
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("request body must be a JSON object")
    try:
        data = safe_json.loads(raw, max_bytes=MAX_BODY_BYTES, max_depth=8, what="request body")
    except safe_json.JsonInputError as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _only(data: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequest(f"unknown field(s): {', '.join(extra)}; allowed: {', '.join(sorted(allowed)) or 'none'}")


class ControlPlane:
    """The aiohttp server; :meth:`start` returns the bound port (0 = ephemeral)."""

    def __init__(self, target: ControlTarget, host: str = "127.0.0.1", port: int = 9000,
                 token: str = "", journal: JournalFn | None = None) -> None:
        self.target = target
        self.host = host
        self.port = port
        self._token = token or ""
        self._journal = journal
        self.counts = {"requests": 0, "bad_request": 0, "unauthorized": 0}
        self.http_log = ProtocolErrorLogger(__name__)
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._auth])
        self.app.router.add_get("/status", self._status)
        self.app.router.add_post("/pause_quoting", self._wrap("pause_quoting", self._pause))
        self.app.router.add_post("/set_mode", self._wrap("set_mode", self._set_mode))
        self.app.router.add_post("/flatten_now", self._wrap("flatten_now", self._flatten))
        self.app.router.add_post("/set_limits", self._wrap("set_limits", self._set_limits))

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None, logger=self.http_log)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        log.info("Control plane listening on %s:%d%s", self.host, self.port,
                 " (bearer token required)" if self._token else "")
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- middleware -------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        self.counts["requests"] += 1
        if self._token:
            got = request.headers.get("Authorization", "")
            want = "Bearer " + self._token
            if not hmac.compare_digest(got.encode(), want.encode()):
                self.counts["unauthorized"] += 1
                self._record("control_unauthorized", {"path": request.path})
                return _err(401, "unauthorized: missing or wrong bearer token")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return _err(exc.status, exc.reason or "error")

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if self._journal is not None:
            try:
                self._journal(kind, payload)
            except Exception:  # journaling must never break the control plane
                log.exception("journal write failed for control action")

    def _wrap(self, action: str, fn: Callable[[web.Request], Awaitable[dict[str, Any]]]
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                result = await fn(request)
            except (BadRequest, ValueError) as exc:
                self.counts["bad_request"] += 1
                self._record("control_rejected", {"action": action, "error": str(exc)})
                log.warning("Control %s rejected: %s", action, exc)
                return _err(400, str(exc))
            self._record("control", {"action": action, "result": result})
            log.info("Control %s: %s", action, result)
            return web.json_response({"ok": True, **result})
        return handler

    # ---- handlers ---------------------------------------------------------------------
    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.target.status())

    async def _pause(self, request: web.Request) -> dict[str, Any]:
        data = await _body(request)
        _only(data, {"pause"})
        if "pause" not in data or not isinstance(data["pause"], bool):
            raise BadRequest('"pause" must be true or false')
        return await self.target.pause_quoting(data["pause"])

    async def _set_mode(self, request: web.Request) -> dict[str, Any]:
        data = await _body(request)
        _only(data, {"mode"})
        if "mode" not in data:
            raise BadRequest('"mode" is required: one of NORMAL, REDUCE_ONLY, FLATTEN, HALT')
        mode = Mode.parse(data["mode"])
        return await self.target.set_mode(mode)

    async def _flatten(self, request: web.Request) -> dict[str, Any]:
        data = await _body(request, allow_empty=True)
        _only(data, set())
        return await self.target.flatten_now()

    async def _set_limits(self, request: web.Request) -> dict[str, Any]:
        data = await _body(request)
        for k, v in data.items():
            cap = LIMIT_CAPS.get(k)
            if cap is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v > cap:
                raise BadRequest(f"{k} must be at most {cap:g}")
        self.target.current_limits().updated(data)  # validate fully first: ValueError -> 400
        return await self.target.set_limits(data)
