"""The race-critical venue calls on the event loop: cancels and order posts written to the socket at once.

Why
---
``py_clob_client_v2`` is synchronous (a shared ``httpx.Client``), so the executor runs
every call in a thread pool: the hop into the pool, httpx's per-request overhead and the
GIL ping-pong with the event loop cost ~10 ms from "cancel decided" to "cancel on the
wire". An aiohttp request from the loop is better but still spends ~0.5 ms of Python
building the request, and on Python 3.11 writes the body from a separate task, one loop
iteration later (benchmarks/test_bench_hops.py measured both). A sniper race is lost in
those fractions of a millisecond.

What
----
:class:`AsyncWire` keeps a few warm keep-alive HTTP/1.1 connections to the CLOB (TLS for
``https``) and writes each request with one ``transport.write`` from the calling coroutine,
before its first ``await``: the bytes are in the kernel when :meth:`AsyncWire.request`
first yields. The fixed header block (host, the library's fixed headers, POLY_ADDRESS,
POLY_API_KEY, POLY_PASSPHRASE) is pre-built once per set of credentials; per request only
the timestamp, the HMAC (:func:`l2_signature`, the library's algorithm, checked equal to it
in tests) and the length are added. Replies are framed by ``httptools`` (llhttp: status line,
headers, Content-Length or chunked body, keep-alive), decoded here only when gzip/deflate;
one request per connection at a time; a
connection the server closed is replaced in the background so the next call finds one warm.

:func:`hot_calls` returns async twins for the executor's hot calls, keyed by the
function the executor would otherwise run in its pool:

* ``ClobClient.cancel_order`` / ``ClobClient.cancel_orders`` -> ``DELETE /order(s)``
  (no signature needed: the cancel-first path),
* ``Executor._post_payload`` / ``Executor._post`` -> ``POST /order(s)``,
* ``Executor._sign`` -> the same function called inline when it cannot block (the fast
  signer is installed and the venue version is cached; ``_sign`` seeds the tick size and
  passes neg_risk: pure CPU, ~0.1 ms) and in the pool otherwise.

Same bytes as the library: the body is serialized the same way, the L2 headers carry the
same values. Errors are raised as ``PolyApiException`` with the HTTP status (or none for a
network error), so the executor maps them exactly as before. Not used when the client
reads the server time for its headers (that would block the loop).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import ssl
import time
import zlib
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import httptools

from hourmm_core import safe_json

log = logging.getLogger(__name__)

__all__ = ["AsyncWire", "WireError", "hot_calls", "l2_signature"]

# the library's fixed headers, + an uncompressed reply asked for explicitly (small JSON: compression
# would only cost time; a gzip/deflate reply is still decoded)
_FIXED_HEADERS = (("User-Agent", "py_clob_client_v2"), ("Accept", "*/*"), ("Connection", "keep-alive"),
                  ("Content-Type", "application/json"), ("Accept-Encoding", "identity"))
MAX_HEAD = 64 * 1024            # a reply head larger than this is not a CLOB reply
MAX_BODY = 16 * 1024 * 1024


class WireError(ConnectionError):
    """The request may or may not have reached the venue (connection lost, bad reply framing)."""


def l2_signature(secret_raw: bytes, ts: int, method: str, path: str, body: str | None) -> str:
    """POLY_SIGNATURE: the library's HMAC-SHA256 (py_clob_client_v2.signing.hmac), with the
    secret already base64-decoded (done once per credentials instead of per request)."""
    msg = f"{ts}{method}{path}"
    if body:
        msg += body.replace("'", '"')
    return base64.urlsafe_b64encode(hmac.new(secret_raw, msg.encode("utf-8"), hashlib.sha256).digest()).decode()


class _Reply:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; at most one request in flight.

    The reply is framed by ``httptools`` (llhttp, the parser of Node.js and uvicorn): status,
    headers, Content-Length or chunked bodies, keep-alive. We only write the request bytes
    ourselves (pre-built, before the first await) and hand the parsed reply to the waiter.
    """

    def __init__(self, wire: "AsyncWire") -> None:
        self.wire = wire
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[_Reply] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._head_bytes = 0
        self._head_done = False
        self._done = False
        self._keep = False
        self.last_used = time.monotonic()
        self.served = 0                # replies completed on this connection (0 = fresh)
        self.got_bytes = False         # any byte of the current request's reply received

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():   # nothing asked: a server must not talk first
            self._fail(WireError("unsolicited data from the CLOB"))
            return
        self.got_bytes = True
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(WireError("the CLOB asked for a protocol upgrade"))
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, WireError) else exc
            self._fail(cause if isinstance(cause, WireError) else WireError(f"bad reply framing: {exc}"))
            return
        if self._done:
            keep = self._keep
            self._deliver(self._parser.get_status_code())
            if not keep:
                self._close()
            else:
                self.wire._release(self)

    def eof_received(self) -> bool | None:
        # A reply with neither Content-Length nor chunked framing ends when the server closes.
        if self._head_done and not self._done and self.waiter is not None and not self.waiter.done():
            assert self._parser is not None
            self._deliver(self._parser.get_status_code())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(WireError(f"connection lost: {exc or 'closed by the server'}"))
        self.waiter = None
        self.wire._lost(self)

    # -- httptools callbacks (raising here makes feed_data raise HttpParserCallbackError)
    def on_message_begin(self) -> None:
        if self._done:
            raise WireError("data after the reply body")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD:
            raise WireError("reply head too large")
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._head_done = True

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > MAX_BODY:
            raise WireError("reply body too large")

    def on_message_complete(self) -> None:
        assert self._parser is not None   # llhttp answers keep-alive only inside its callbacks
        self._keep = self._parser.should_keep_alive()
        self._done = True

    # -- request
    def send(self, data: bytes) -> "asyncio.Future[_Reply]":
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.last_used = time.monotonic()
        self.got_bytes = False
        self.transport.write(data)
        return self.waiter

    def _deliver(self, status: int) -> None:
        w, self.waiter = self.waiter, None
        headers, body = self._headers, bytes(self._body)
        self.served += 1
        self._reset()
        assert w is not None
        try:
            w.set_result(_Reply(status, headers, self._decode(headers, body)))
        except WireError as exc:
            w.set_exception(exc)
            self._close()

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.waiter = None
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _reset(self) -> None:
        self._parser = None            # a fresh parser per reply (cheap; no state carried over)
        self._headers, self._body, self._head_bytes = {}, bytearray(), 0
        self._head_done = self._done = self._keep = False

    @staticmethod
    def _decode(headers: dict[str, str], body: bytes) -> bytes:
        enc = headers.get("content-encoding", "").lower()
        try:
            if enc == "gzip":
                return zlib.decompress(body, 16 + zlib.MAX_WBITS)
            if enc == "deflate":
                try:
                    return zlib.decompress(body)
                except zlib.error:
                    return zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise WireError(f"bad {enc} body: {exc}") from None
        return body


class AsyncWire:
    """Warm keep-alive HTTP/1.1 connections that send L2-signed JSON requests like ``ClobClient``.

    ``on_sent(method, path)``, when set, is called right after a request's bytes were
    written to the socket (benchmarks stamp "on the wire" with it).
    """

    def __init__(self, client: Any, *, timeout_s: float = 15.0, warm: int = 2, max_conns: int = 16) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.warm = warm
        self.max_conns = max_conns
        u = urlsplit(client.host)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"CLOB URL {client.host!r} must be http(s)://host[:port]")
        self.scheme, self.host = u.scheme, u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.base_path = u.path.rstrip("/")
        default_port = self.port == (443 if u.scheme == "https" else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if u.scheme == "https" else None
        self._idle: list[_Conn] = []
        self._all: set[_Conn] = set()
        self._refill: asyncio.Task[None] | None = None
        self._closing = False
        self._tmpl_key: tuple[Any, ...] | None = None
        self._tmpl = b""
        self._secret_raw = b""
        self.sent = 0
        self.connects = 0
        self.retried = 0
        self.on_sent: Callable[[str, str], None] | None = None

    # -- connections
    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port, ssl=self._ssl,
                                               server_hostname=self.host if self._ssl else None)
        self.connects += 1
        self._all.add(conn)
        return conn

    async def start(self) -> None:
        """Open the warm connections now (not on the first, race-critical request)."""
        await self._fill()

    async def _fill(self) -> None:
        while not self._closing and len(self._idle) < self.warm and len(self._all) < self.max_conns:
            try:
                conn = await self._connect()
            except OSError as exc:
                log.debug("CLOB warm connection failed: %s", exc)
                return
            self._idle.append(conn)

    def _release(self, conn: _Conn) -> None:
        if self._closing or conn.closed:
            return
        if len(self._idle) >= self.max_conns:
            conn._close()
            return
        self._idle.append(conn)

    def _lost(self, conn: _Conn) -> None:
        self._all.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if not self._closing and (self._refill is None or self._refill.done()):
            try:
                self._refill = asyncio.get_running_loop().create_task(self._fill())
            except RuntimeError:   # no running loop (interpreter shutdown)
                pass

    def _take(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()    # most recently used first: the likeliest to be alive
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    # -- requests
    def _template(self) -> bytes:
        c = self.client
        cr = c.creds
        addr = c.signer.address()
        key = (cr.api_key, cr.api_secret, cr.api_passphrase, addr)
        if key != self._tmpl_key:
            fields = [("Host", self.host_header), *_FIXED_HEADERS, ("POLY_ADDRESS", addr),
                      ("POLY_API_KEY", cr.api_key), ("POLY_PASSPHRASE", cr.api_passphrase)]
            for k, v in fields:
                if any(ch in str(v) for ch in "\r\n\0"):
                    raise ValueError(f"header {k} holds a line break")
            self._tmpl = "".join(f"{k}: {v}\r\n" for k, v in fields).encode("latin-1")
            self._secret_raw = base64.urlsafe_b64decode(cr.api_secret)
            self._tmpl_key = key
        return self._tmpl

    def build(self, method: str, path: str, payload: Any) -> bytes:
        """The request bytes: pre-built fixed headers + timestamp, HMAC and length of this body."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        tmpl = self._template()
        ts = int(time.time())
        sig = l2_signature(self._secret_raw, ts, method, path, body)
        raw = body.encode("utf-8")
        head = (f"{method} {self.base_path}{path} HTTP/1.1\r\n").encode("latin-1") + tmpl + (
            f"POLY_SIGNATURE: {sig}\r\nPOLY_TIMESTAMP: {ts}\r\nContent-Length: {len(raw)}\r\n\r\n").encode("latin-1")
        return head + raw

    async def request(self, method: str, path: str, payload: Any) -> Any:
        """Send one request; the JSON reply (or its text). Raises ``PolyApiException`` like the library.

        The bytes are written before the first ``await`` whenever a warm connection is idle."""
        from py_clob_client_v2.exceptions import PolyApiException

        data = self.build(method, path, payload)
        try:
            for attempt in range(2):
                conn = self._take()
                if conn is None:
                    if len(self._all) >= self.max_conns:
                        raise WireError("all CLOB connections busy")
                    conn = await self._connect()
                fut = conn.send(data)
                self.sent += 1
                if self.on_sent is not None:
                    self.on_sent(method, path)
                try:
                    reply = await fut
                    break
                except asyncio.CancelledError:
                    conn._close()    # the reply would arrive on a connection nobody reads: drop it
                    raise
                except WireError:
                    # A kept-alive connection the server closed just as we wrote (idle timeout):
                    # nothing came back. A cancel (DELETE, idempotent) is sent once more on a fresh
                    # connection, like aiohttp/httpx do; a POST is not (the executor resolves an
                    # ambiguous post by looking the order up before any re-post).
                    if attempt or method != "DELETE" or not conn.served or conn.got_bytes:
                        raise
                    self.retried += 1
        except (WireError, OSError, ssl.SSLError) as exc:
            log.debug("wire %s %s failed: %s", method, path, exc)
            raise PolyApiException(error_msg="Request exception!") from None
        text = reply.body.decode("utf-8", errors="replace")
        try:
            body: Any = safe_json.loads(text, what="CLOB reply")
        except ValueError:
            body = text
        if reply.status != 200:
            err = PolyApiException(error_msg=body)
            err.status_code = reply.status
            retry_after = reply.headers.get("retry-after")
            if reply.status == 429 and retry_after is not None:
                try:   # the executor's 429 gate honours the header, as on the library path
                    err.hourmm_retry_after = max(0.0, float(retry_after))  # type: ignore[attr-defined]
                except ValueError:
                    pass
            raise err
        return body

    async def close(self) -> None:
        self._closing = True
        if self._refill is not None:
            self._refill.cancel()
        for conn in list(self._all):
            conn._close()
        self._idle.clear()
        self._all.clear()


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
        if sign_inline(client):
            return executor._sign(req)   # pure CPU (~0.1 ms): cheaper than two thread hops
        return await asyncio.get_running_loop().run_in_executor(executor._pool, executor._sign, req)

    def sign_inline(c: Any) -> bool:
        return (isinstance(c.builder, FastOrderBuilder) and c.builder.fast_enabled
                and getattr(c, "_ClobClient__cached_version", None) is not None
                and isinstance(getattr(c, "_ClobClient__tick_sizes", None), dict))

    return wire, {
        ClobClient.cancel_order: cancel_order,
        ClobClient.cancel_orders: cancel_orders,
        ex_cls._post_payload: post_payload,
        ex_cls._post: post,
        ex_cls._sign: sign,
    }
