"""Bugs 2 and 3 (issue 13): implausible Binance input is refused, counted, and never freezes the feed.

Prices and ids come from the real tick sample in /work/shared/data (BTCUSDT trades
2024-08-08 23:54 .. 2024-08-09 00:05 UTC, which crosses the 00:00 hour boundary). The
bogus frames (1e308, a 3x print, id 2^62) are synthetic: real data has none of them.
"""
from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import time

import pytest
import websockets

from hourmm_core.binance import BinanceStreamClient
from hourmm_core.clock import ScaledClock
from hourmm_core.pricing.snapshot import SnapshotBuilder
from tests.conftest import REAL_DATA

pytestmark = pytest.mark.timeout(60)
TRADES = str(REAL_DATA / "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.csv.gz")
H1 = 1_723_161_600_000  # 2024-08-09 00:00 UTC


@pytest.fixture(scope="module")
def real_trades() -> list[tuple[int, float, float, int, bool]]:
    if not os.path.exists(TRADES):
        pytest.skip("real tick sample not available")
    out = []
    with gzip.open(TRADES, "rt") as f:
        for row in csv.reader(f):
            out.append((int(row[0]), float(row[1]), float(row[2]), int(row[4]), row[5] == "True"))
    return out


def frame(tid: int, price: float | str, qty: float, ms: int, m: bool) -> str:
    return json.dumps({"stream": "btcusdt@trade", "data": {
        "e": "trade", "E": ms + 1, "s": "BTCUSDT", "t": tid, "p": str(price) if not isinstance(price, str) else price,
        "q": f"{qty:.8f}", "T": ms, "m": m, "M": True}})


def around_hour(real_trades, before=300, after=300):
    i = next(k for k, t in enumerate(real_trades) if t[3] >= H1)
    return real_trades[i - before:i + after], before


def run_feed(frames: list[str]):
    clk = ScaledClock(1.0, H1 - 10 * 60_000, time.time_ns() // 1_000_000)
    b = SnapshotBuilder("BTCUSDT")
    b.on_connect(H1 - 10 * 60_000)  # connected well before the hour: its first trade may set the open
    client = BinanceStreamClient("ws://127.0.0.1:9", "BTCUSDT", b.on_message, clk)
    delivered = [client.handle_raw(f, H1) for f in frames]
    return client, b, delivered


@pytest.mark.parametrize("bogus_price,kind", [("1e308", "price_absurd"), (None, "price_jump"),
                                              ("1e400", "trade"), ("0", "trade")])
def test_bogus_first_trade_of_the_hour_never_sets_open_nor_feeds_vol(real_trades, bogus_price, kind):
    rows, i = around_hour(real_trades)
    first = rows[i]
    good = [frame(*t) for t in rows]
    price = bogus_price if bogus_price is not None else repr(3.0 * first[1])
    # the bogus print arrives as the hour's first trade (id just before the real first one)
    bad = frame(first[0], price, 0.01, first[3], False)
    rows_b = [frame(t[0] + (1 if k >= i else 0), *t[1:]) for k, t in enumerate(rows)]
    with_bad = rows_b[:i] + [bad] + rows_b[i:]
    c0, b0, _ = run_feed(good)
    c1, b1, delivered = run_feed(with_bad)
    assert delivered[i] is None                       # the bogus frame reached nobody
    assert c1.stats.bad[kind] == 1 and c1.stats.bad_total == 1
    assert b1.hour.open_price == first[1] == b0.hour.open_price
    assert b1.last_price == b0.last_price
    s0, s1 = b0.snapshot(H1 + 300_000), b1.snapshot(H1 + 300_000)
    assert s1.sigmas == s0.sigmas and s1.fair_up == s0.fair_up and s1.sigma is not None
    assert b1.trades == b0.trades == len(rows)


def test_absurd_price_without_any_reference_is_refused(real_trades):
    t = real_trades[0]
    c, b, d = run_feed([frame(t[0], "1e308", 0.1, t[3], False), frame(*t)])
    assert d[0] is None and d[1] is not None
    assert c.stats.bad["price_absurd"] == 1 and b.last_price == t[1]


def test_price_guard_reanchors_on_a_repeated_new_level():
    """Synthetic shape: a genuine 20 % gap (e.g. after a long outage) must not freeze the feed."""
    from hourmm_core.binance import PriceGuard

    g = PriceGuard(max_jump_frac=0.10, confirm=5)
    assert g.check(60_000.0) is None
    assert [g.check(72_000.0 + k) for k in range(4)] == ["price_jump"] * 4
    assert g.check(72_010.0) is None and g.ref == 72_010.0 and g.reanchors == 1
    # a single isolated spike between good prints never accumulates
    g2 = PriceGuard(confirm=3)
    for k in range(10):
        assert g2.check(60_000.0 + k) is None
        assert g2.check(200_000.0) == "price_jump"
    assert g2.reanchors == 0


def test_bogus_trade_id_does_not_freeze_the_feed(real_trades):
    rows = real_trades[:400]
    frames = [frame(*t) for t in rows[:100]]
    frames.append(frame(2 ** 62, rows[100][1], 0.01, rows[100][3], False))
    frames += [frame(*t) for t in rows[100:]]
    c, b, d = run_feed(frames)
    assert d[100] is None and c.stats.bad["bad_id"] == 1
    assert all(x is not None for k, x in enumerate(d) if k != 100)
    assert b.trades == len(rows) and b.last_trade_id == rows[-1][0]


def test_bogus_id_as_a_connections_first_frame_recovers(real_trades):
    """No watermark yet, so 2^62 is taken; the run of 'out of order' real ids proves it wrong."""
    rows = real_trades[:300]
    frames = [frame(2 ** 62, rows[0][1], 0.01, rows[0][3], False)] + [frame(*t) for t in rows]
    c, b, d = run_feed(frames)
    assert c.watermark_resets == 1
    assert c.stats.bad["out_of_order"] == 49
    assert b.last_trade_id == rows[-1][0] and all(x is not None for x in d[50:])


async def test_watermark_resets_on_reconnect(real_trades):
    """Connection 1 ends right after a bogus id 2^62 + a few real frames; connection 2 must flow."""
    rows = real_trades[:200]
    conns = [[frame(2 ** 62, rows[0][1], 0.01, rows[0][3], False)] + [frame(*t) for t in rows[:10]],
             [frame(*t) for t in rows[10:]]]
    served = []

    async def handler(ws):
        k = len(served)
        served.append(k)
        for f in conns[min(k, 1)]:
            await ws.send(f)
        if k == 0:
            await ws.close()
        else:
            await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        clk = ScaledClock(1.0, H1, time.time_ns() // 1_000_000)
        got = []
        client = BinanceStreamClient(f"ws://127.0.0.1:{port}", "BTCUSDT", lambda m, r: got.append(m), clk,
                                     backoff_base_s=0.01, backoff_max_s=0.05, seed=1)
        task = asyncio.create_task(client.run())
        try:
            async def until(cond):
                while not cond():
                    await asyncio.sleep(0.01)
            try:
                await asyncio.wait_for(until(lambda: len(got) >= 1 + len(rows) - 10), 20)
            except asyncio.TimeoutError:
                raise AssertionError((client.connects, len(got), dict(client.stats.bad), served))
        finally:
            await client.stop()
            task.cancel()
    assert [m.trade_id for m in got[1:]] == [t[0] for t in rows[10:]]
    assert client.stats.bad["out_of_order"] == 10 and client.connects == 2
