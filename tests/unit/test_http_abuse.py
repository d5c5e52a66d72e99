"""Bug 5 (issue 13): oversized request lines / headers get a 400 and at most one WARNING, never an
ERROR with a traceback (a log flood anyone could cause), on the pricer's HTTP server and on the
trader's control plane. Synthetic requests: real traffic has no such shapes."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from hourmm_core.pricing.server import SnapshotServer
from hourmm_core.trading.control_plane import ControlPlane
from hourmm_core.trading.decision import DecisionCore
from hourmm_core.trading.risk_engine import Limits
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams

pytestmark = pytest.mark.timeout(60)

ABUSE = [
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
    b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
    b"POST /set_limits HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
] * 3


async def _send_raw(port: int, payload: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        await w.drain()
        return await asyncio.wait_for(r.read(100), 20)
    finally:
        w.close()


async def _abuse(port: int, health_path: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    for p in ABUSE:
        reply = await _send_raw(port, p)
        assert reply.startswith(b"HTTP/1.") and b" 400 " in reply[:20], reply
    async with aiohttp.ClientSession() as s:  # still serving
        async with s.get(f"http://127.0.0.1:{port}{health_path}") as r:
            assert r.status in (200, 503)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:200] for r in errors]
    warns = [r for r in caplog.records if r.levelno == logging.WARNING and "malformed HTTP" in r.getMessage()]
    assert len(warns) == 1 and warns[0].exc_info is None


async def test_pricer_http_server_refuses_oversized_requests_quietly(caplog) -> None:
    srv = SnapshotServer("127.0.0.1", 0, lambda: (True, None))
    await srv.start()
    try:
        await _abuse(srv.port, "/health", caplog)
        assert srv.http_log.refused == len(ABUSE) and srv.http_log.suppressed == len(ABUSE) - 1
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{srv.url}/metrics") as r:
                assert f"hourmm_pricer_http_malformed_total {len(ABUSE)}" in await r.text()
    finally:
        await srv.stop()


async def test_control_plane_refuses_oversized_requests_quietly(caplog) -> None:
    core = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
    cp = ControlPlane(core, "127.0.0.1", 0)
    port = await cp.start()
    try:
        await _abuse(port, "/status", caplog)
        assert cp.http_log.refused == len(ABUSE)
    finally:
        await cp.stop()


async def test_a_handler_bug_still_logs_error(caplog) -> None:
    """The quiet path is only for unparsable requests: an exception in our own handler stays ERROR."""
    srv = SnapshotServer("127.0.0.1", 0, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    await srv.start()
    caplog.set_level(logging.DEBUG)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{srv.url}/health") as r:
                assert r.status == 500
        assert any(r.levelno >= logging.ERROR and r.exc_info for r in caplog.records)
    finally:
        await srv.stop()
