"""Container A's push channel: the snapshot frame written from ``SnapshotServer.publish``
itself (no task wake-up), byte-identical to what aiohttp's own writer sends, and the writer
task kept for a subscriber whose socket holds unsent bytes (conflation)."""
import contextlib
import json

import aiohttp
import pytest
from aiohttp._websocket.writer import WebSocketWriter

from hourmm_core.clock import WallClock
from hourmm_core.pricing.server import SnapshotServer, ws_text_frame
from tests.conftest import wait_for
from tests.unit.trading.test_snapshot_client import psnap

pytestmark = pytest.mark.timeout(30)


class _Transport:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, b: bytes) -> None:
        self.out += b

    def is_closing(self) -> bool:
        return False


class _Proto:
    _paused = False


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 600, 65535, 65536, 70000])
async def test_frame_is_what_aiohttps_server_writer_sends(n: int) -> None:
    payload = bytes((i * 7) % 251 for i in range(n))
    t = _Transport()
    await WebSocketWriter(_Proto(), t, use_mask=False).send_frame(payload, aiohttp.WSMsgType.TEXT)
    assert ws_text_frame(payload) == bytes(t.out)


@contextlib.asynccontextmanager
async def _subscribed(direct: bool = True):
    """A started SnapshotServer with one push subscriber: (server, client WebSocket)."""
    srv = SnapshotServer("127.0.0.1", 0, lambda: (False, 5))
    srv.direct_push = direct
    await srv.start()
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(srv.url.replace("http", "ws") + "/snapshot/stream")
            assert await wait_for(lambda: srv.subscribers == 1)
            yield srv, ws
            await ws.close()
    finally:
        await srv.stop()


async def test_publish_writes_the_frame_in_the_call_and_the_client_reads_it() -> None:
    clock = WallClock()
    async with _subscribed() as (srv, ws):
        got = []
        for seq in range(1, 6):
            snap = psnap(seq, clock.now_ms())
            srv.publish(snap)
            # written before publish returned: no loop pass in between
            assert srv.push_direct == seq and srv.push_sent == seq
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.TEXT
            got.append(json.loads(msg.data))
            assert msg.data.encode() == snap.json
        assert [g["seq"] for g in got] == [1, 2, 3, 4, 5]


class _Busy:
    """A transport that reports unsent bytes (a slow subscriber); writes go to the real one."""

    def __init__(self, real) -> None:
        self._real = real

    def get_write_buffer_size(self) -> int:
        return 1 << 20

    def __getattr__(self, name):
        return getattr(self._real, name)


async def test_a_subscriber_with_unsent_bytes_is_left_to_its_writer_task() -> None:
    """Direct push off for a socket that has not drained (as if the reader were slow): the
    writer task sends the newest snapshot and the skipped ones count as conflated."""
    clock = WallClock()
    async with _subscribed() as (srv, ws):
        sub = next(iter(srv._subs))
        real = sub.transport
        sub.transport = _Busy(real)
        for seq in range(1, 4):                      # three publishes in one loop pass
            srv.publish(psnap(seq, clock.now_ms()))
        assert srv.push_direct == 0 and srv.push_conflated == 2
        msg = await ws.receive(timeout=10)
        assert json.loads(msg.data)["seq"] == 3      # the newest, once
        assert await wait_for(lambda: srv.push_sent == 1)
        sub.transport = real                         # drained: direct again
        srv.publish(psnap(4, clock.now_ms()))
        assert srv.push_direct == 1
        assert json.loads((await ws.receive(timeout=10)).data)["seq"] == 4


async def test_direct_push_off_sends_through_the_writer_task() -> None:
    async with _subscribed(direct=False) as (srv, ws):
        srv.publish(psnap(1, WallClock().now_ms()))
        assert srv.push_direct == 0
        assert json.loads((await ws.receive(timeout=10)).data)["seq"] == 1
        assert srv.push_sent == 1
