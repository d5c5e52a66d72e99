"""fast_wire.AsyncWire: the raw keep-alive HTTP/1.1 client of the race-critical venue calls.

Against a scripted loopback TCP server (canned HTTP replies: the framings a real server
may use, which the CLOB simulator does not all produce) and against the library's own
header builder. The end-to-end path (executor -> simulator, status mapping) is covered
by tests/integration/test_speed_batching.py.
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from py_clob_client_v2.clob_types import ApiCreds, RequestArgs
from py_clob_client_v2.exceptions import PolyApiException
from py_clob_client_v2.headers.headers import create_level_2_headers
from py_clob_client_v2.signer import Signer

from hourmm_core.polymarket.fast_wire import AsyncWire

SECRET = base64.urlsafe_b64encode(os.urandom(32)).decode()   # made at run time, like every test credential


class Script:
    """Loopback server: records each request (head, body) and answers with the next canned reply."""

    def __init__(self, replies: list[list[bytes]]) -> None:
        self.replies = replies
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.conns = 0
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.conns += 1
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await r.readexactly(int(hdrs.get("Content-Length", "0")))
                self.requests.append((lines[0], hdrs, body))
                for part in self.replies.pop(0):
                    if part == b"<close>":
                        w.close()
                        return
                    w.write(part)
                    await w.drain()
                    await asyncio.sleep(0.005)      # split across reads on purpose
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            w.close()

    async def __aenter__(self) -> "Script":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def client(url: str) -> Any:
    acct = Account.create()
    key = acct.key.hex()
    signer = Signer(key if key.startswith("0x") else "0x" + key, 137)
    return SimpleNamespace(host=url, signer=signer, creds=ApiCreds("key-1", SECRET, "phrase-1"))


def ok(body: bytes, extra: str = "") -> list[bytes]:
    return [f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body]


async def test_headers_are_the_librarys_and_the_body_is_the_same_bytes():
    async with Script([ok(b'{"canceled":["0xa"],"not_canceled":{}}')]) as s:
        c = client(s.url)
        wire = AsyncWire(c)
        try:
            res = await wire.request("DELETE", "/orders", ["0xa", "it's"])
        finally:
            await wire.close()
        assert res == {"canceled": ["0xa"], "not_canceled": {}}
        line, hdrs, body = s.requests[0]
        assert line == "DELETE /orders HTTP/1.1"
        serialized = json.dumps(["0xa", "it's"], separators=(",", ":"), ensure_ascii=False)
        assert body == serialized.encode()
        lib = create_level_2_headers(c.signer, c.creds, RequestArgs(method="DELETE", request_path="/orders",
                                                                    body=["0xa", "it's"], serialized_body=serialized),
                                     timestamp=int(hdrs["POLY_TIMESTAMP"]))
        for k, v in lib.items():
            assert hdrs[k] == v, k
        assert hdrs["User-Agent"] == "py_clob_client_v2" and hdrs["Content-Type"] == "application/json"


async def test_replies_in_every_framing_and_keep_alive_reuses_one_connection():
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b'7\r\n{"a": 1\r\n', b"1\r\n}\r\n",
               b"0\r\n\r\n"]
    gz = gzip.compress(b'{"b": 2}')
    async with Script([chunked, ok(gz, "Content-Encoding: gzip\r\n"), ok(b'[1, 2]'),
                       [b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"c": 3}', b"<close>"],
                       ok(b'{"d": 4}')]) as s:
        wire = AsyncWire(client(s.url), warm=1)
        try:
            await wire.start()
            assert await wire.request("POST", "/order", {"x": 1}) == {"a": 1}
            assert await wire.request("POST", "/order", {"x": 2}) == {"b": 2}
            assert await wire.request("POST", "/order", {"x": 3}) == [1, 2]
            assert s.conns == 1                                   # keep-alive
            assert await wire.request("POST", "/order", {"x": 4}) == {"c": 3}   # body until close
            assert await wire.request("POST", "/order", {"x": 5}) == {"d": 4}   # a new connection
            assert s.conns >= 2 and wire.sent == 5              # (+ the background refill of the warm one)
        finally:
            await wire.close()


async def test_errors_keep_status_and_retry_after_and_a_lost_connection_is_a_request_exception():
    body = b'{"error":"too many"}'
    async with Script([[f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: {len(body)}\r\n\r\n"
                        .encode() + body], [b"<close>"], ok(b"{}")]) as s:
        wire = AsyncWire(client(s.url), warm=1)
        try:
            with pytest.raises(PolyApiException) as e:
                await wire.request("POST", "/order", {})
            assert e.value.status_code == 429 and e.value.hourmm_retry_after == 2.0
            assert e.value.error_msg == {"error": "too many"}
            with pytest.raises(PolyApiException) as e:           # closed without a reply: a POST is not re-sent
                await wire.request("POST", "/order", {"n": 1})
            assert getattr(e.value, "status_code", None) is None and "Request exception" in str(e.value.error_msg)
            assert await wire.request("DELETE", "/order", {"orderID": "0x2"}) == {}   # recovers
            assert wire.retried == 0 and len(s.requests) == 3
        finally:
            await wire.close()


async def test_bytes_leave_before_the_first_yield():
    """With a warm connection the request is written in the caller's own step: after one pass
    of the loop the write has happened (an aiohttp request writes its body a step later)."""
    async with Script([ok(b"{}")]) as s:
        wire = AsyncWire(client(s.url), warm=1)
        stamps: list[tuple[str, str]] = []
        wire.on_sent = lambda m, p: stamps.append((m, p))
        try:
            await wire.start()
            task = asyncio.ensure_future(wire.request("DELETE", "/order", {"orderID": "0x1"}))
            await asyncio.sleep(0)                               # the task's first step only
            assert stamps == [("DELETE", "/order")] and wire.sent == 1 and not task.done()
            assert await task == {}
        finally:
            await wire.close()


async def test_changed_credentials_rebuild_the_header_template_and_bad_values_are_refused():
    async with Script([ok(b"{}"), ok(b"{}")]) as s:
        c = client(s.url)
        wire = AsyncWire(c)
        try:
            await wire.request("POST", "/order", {})
            c.creds.api_passphrase = "phrase-2"
            await wire.request("POST", "/order", {})
            assert [r[1]["POLY_PASSPHRASE"] for r in s.requests] == ["phrase-1", "phrase-2"]
            c.creds.api_key = "key\r\nX-Evil: 1"
            with pytest.raises(ValueError):
                wire.build("POST", "/order", {})
        finally:
            await wire.close()


async def test_a_cancel_on_a_keep_alive_connection_the_server_just_closed_is_sent_once_more():
    """Idle keep-alive race: the server drops the connection as our DELETE arrives (no reply byte);
    a cancel is idempotent, so it goes once more on a fresh connection (aiohttp/httpx do the same)."""
    async with Script([ok(b"{}"), [b"<close>"], ok(b'{"canceled":["0x1"]}')]) as s:
        wire = AsyncWire(client(s.url), warm=1)
        try:
            await wire.start()
            assert await wire.request("POST", "/order", {}) == {}              # the connection is now reused
            assert await wire.request("DELETE", "/order", {"orderID": "0x1"}) == {"canceled": ["0x1"]}
            assert wire.retried == 1 and [r[0] for r in s.requests] == ["POST /order HTTP/1.1",
                                                                         "DELETE /order HTTP/1.1",
                                                                         "DELETE /order HTTP/1.1"]
        finally:
            await wire.close()


@pytest.mark.parametrize("reply, why", [
    ([b"HELLO WORLD\r\n\r\n"], "not HTTP"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n"], "data after the reply body"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"], "bad chunk size"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n{}"], "bad Content-Length"),
    ([b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"], "bad gzip body"),
    ([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 2\r\n\r\n{}"], "head too large"),
])
async def test_a_malformed_reply_is_a_request_exception_and_its_connection_is_dropped(reply, why):
    """Framing errors (found by httptools/llhttp, or by our size and decoding limits) never yield a
    half-parsed reply: the call fails like a lost connection and the next call gets a fresh one."""
    async with Script([reply, ok(b'{"ok": 1}')]) as s:
        wire = AsyncWire(client(s.url), warm=1)
        try:
            await wire.start()
            with pytest.raises(PolyApiException) as e:
                await wire.request("POST", "/order", {})
            assert getattr(e.value, "status_code", None) is None, why
            assert "Request exception" in str(e.value.error_msg), why
            assert await wire.request("POST", "/order", {"n": 2}) == {"ok": 1}, why
            assert s.conns >= 2, why
        finally:
            await wire.close()
