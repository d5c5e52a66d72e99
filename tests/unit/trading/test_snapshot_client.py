"""Snapshot intake against container A's real SnapshotServer on an ephemeral port (poll + push)."""
import asyncio

import pytest
from aiohttp import web

from hourmm_core.clock import ScaledClock, WallClock
from hourmm_core.pricing.server import SnapshotServer
from hourmm_core.pricing.snapshot import Snapshot as PSnap
from hourmm_core.trading.snapshot_client import Snapshot, SnapshotClient, SnapshotError
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(30)


def psnap(seq: int, ts_ms: int, fair: float | None = 0.55, stale: bool = False) -> PSnap:
    d = dict(schema_version=1, seq=seq, ts_ms=ts_ms, exchange_ts_ms=ts_ms, recv_ts_ms=ts_ms, symbol="BTCUSDT",
             hour_start_ms=ts_ms - ts_ms % 3_600_000, hour_end_ms=ts_ms - ts_ms % 3_600_000 + 3_600_000,
             open_price=50000.0, last_price=50010.0, bid=50009.0, ask=50011.0, mid=50010.0, microprice=50010.0,
             sigma=1e-4, sigmas={"30s": 1e-4}, features={}, tau_ms=1000, fair_up=fair, fair_unc=0.01,
             stale=stale, age_ms=5)
    return PSnap(**d, json=PSnap.render(d))


@pytest.mark.parametrize("push", [False, True])
async def test_poll_and_push_receive_new_seqs(push: bool) -> None:
    srv = SnapshotServer("127.0.0.1", 0, lambda: (False, 5))
    await srv.start()
    clock = WallClock()
    got: list[int] = []
    cli = SnapshotClient(srv.url + "/snapshot/latest", clock, hz=200,
                         stream_url=(srv.url.replace("http", "ws") + "/snapshot/stream") if push else "",
                         max_age_ms=1500, on_snapshot=lambda s: got.append(s.seq))
    try:
        await cli.start()
        await asyncio.sleep(0.1)
        assert cli.latest is None and not cli.fresh(clock.now_ms())  # 503 before the first one
        for seq in range(1, 4):
            srv.publish(psnap(seq, clock.now_ms()))
            assert await wait_for(lambda: cli.latest is not None and cli.latest.seq == seq)
        assert got == [1, 2, 3]  # each new seq exactly once, none repeated
        assert cli.fresh(clock.now_ms())
        srv.publish(psnap(4, clock.now_ms(), stale=True))
        assert await wait_for(lambda: cli.latest.seq == 4)
        assert not cli.fresh(clock.now_ms())  # container A says stale
        srv.publish(psnap(5, clock.now_ms() - 5_000))
        assert await wait_for(lambda: cli.latest.seq == 5)
        assert not cli.fresh(clock.now_ms())  # too old
    finally:
        await cli.stop()
        await srv.stop()


async def test_age_judged_in_wall_ms_under_scaled_clock() -> None:
    clock = ScaledClock(600.0, 1_700_000_000_000, WallClock().now_ms())
    cli = SnapshotClient("http://127.0.0.1:1/x", clock, max_age_ms=1500)
    now = clock.now_ms()
    await cli.ingest(psnap(1, now - 600_000).to_dict())  # 10 sim minutes = 1 wall second at 600x
    assert cli.fresh(now)
    await cli.ingest(psnap(2, now - 1_200_000).to_dict() | {"seq": 2, "ts_ms": now - 1_200_000 + 1})
    assert cli.latest.seq == 2


async def test_bad_payloads_counted_never_raise() -> None:
    app = web.Application()
    bodies = iter(["not json", '{"schema_version": 2}', '[1]', "{}"])

    async def h(request: web.Request) -> web.Response:
        return web.Response(text=next(bodies, "{}"), content_type="application/json")

    app.router.add_get("/snapshot/latest", h)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    cli = SnapshotClient(f"http://127.0.0.1:{port}/snapshot/latest", WallClock(), hz=100)
    try:
        await cli.start()
        assert await wait_for(lambda: sum(cli.errors.values()) >= 4)
        assert cli.errors.get("bad_json", 0) >= 1 and cli.errors.get("invalid", 0) >= 3
        assert cli.latest is None
    finally:
        await cli.stop()
        await runner.cleanup()
    unreachable = SnapshotClient(f"http://127.0.0.1:{port}/snapshot/latest", WallClock(), hz=100)
    await unreachable.start()
    try:
        assert await wait_for(lambda: unreachable.errors.get("unreachable", 0) >= 1)
    finally:
        await unreachable.stop()


@pytest.mark.parametrize("bad", [{"schema_version": 1}, {**psnap(1, 5).to_dict(), "fair_up": 1.5},
                                 {**psnap(1, 5).to_dict(), "stale": "no"}, {**psnap(1, 5).to_dict(), "seq": "x"},
                                 {**psnap(1, 5).to_dict(), "fair_up": float("nan")}])
def test_parse_rejects(bad: dict) -> None:
    with pytest.raises(SnapshotError):
        Snapshot.parse(bad)
    assert Snapshot.parse(psnap(1, 5).to_dict()).fair_up == 0.55
