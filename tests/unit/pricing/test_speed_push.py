"""Container A: publish on significant change (SNAPSHOT_PUSH_DELTA, default 0.002) in addition to
the fixed SNAPSHOT_PUBLISH_HZ rate.

Messages are fed through the service's own callback (what the Binance client calls), so
this runs without sockets. Synthetic step path: the shape (flat, then one 0.5 % jump) is
what the test needs; real data has no guaranteed jump at a known tick.
"""
from __future__ import annotations

import time

from hourmm_core.binance.messages import parse_frame
from hourmm_core.clock import ScaledClock
from hourmm_core.config import PricerConfig
from hourmm_core.pricing import PricerService

H0 = 1_769_090_400_000


def _trade(i: int, ts: int, px: float):
    return parse_frame(f'{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ts},"s":"BTCUSDT","t":{i},'
                       f'"p":"{px:.2f}","q":"0.01","T":{ts},"m":false,"M":true}}}}')


def _service(push_delta: float | None, env: dict[str, str] | None = None) -> PricerService:
    cfg = PricerConfig.from_env({"SNAPSHOT_PUBLISH_HZ": "1", "VOL_HALFLIVES_S": "0.5,1,2", **(env or {})})
    clock = ScaledClock(1.0, H0 - 1_000, time.time_ns() // 1_000_000)   # connected before the hour: open seen
    svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1", push_delta=push_delta)
    svc.push_min_gap_s = svc.push_spacing_s = 0.0   # messages are fed back to back here; the pacing has its own tests
    svc._on_connect()
    return svc


def _feed(svc: PricerService) -> list[tuple[int, float, float]]:
    """Flat (0.5 bp wiggle) for 4 s, then one +0.5 % trade.

    Per message: (published count after it, fair after it, last published fair before it)."""
    rows = []
    px = 100_000.0
    msgs = [(H0 + (i - 1) * 20, px + (0.5 if i % 2 else 0.0)) for i in range(1, 201)] + [(H0 + 4_020, px * 1.005)]
    for i, (ts, p) in enumerate(msgs, 1):
        before = svc.server.latest.fair_up if svc.server.latest is not None else float("nan")
        svc._on_message(_trade(i, ts, p), ts)
        rows.append((svc.server.published, svc.builder.last_fair, before))
    return rows


def test_significant_move_is_published_at_once():
    svc = _service(0.002)
    rows = _feed(svc)
    n_prev = 0
    for n, fair, last in rows:
        moved = fair == fair and not abs(fair - last) < 0.002
        assert (n == n_prev + 1) == moved, (n, n_prev, fair, last)   # published iff fair moved >= delta
        n_prev = n
    assert rows[-1][1] > 0.7 and rows[-1][0] == rows[-2][0] + 1      # the jump went out with its message
    assert svc.server.latest.fair_up > 0.7 and svc.pushed_on_change == rows[-1][0]
    assert rows[-1][0] < len(rows)                                   # ... but not every wiggle did


def test_zero_turns_it_off_publishes_only_from_the_loop():
    svc = _service(None, {"SNAPSHOT_PUSH_DELTA": "0"})
    assert svc.push_delta == 0.0
    rows = _feed(svc)
    assert rows[-1][1] > 0.7 and rows[-1][0] == 0 and svc.pushed_on_change == 0


def test_on_by_default_from_the_config():
    """The shipped default (configs/pricer.yaml and the setting's own default) pushes a jump at once."""
    assert PricerConfig().snapshot_push_delta == 0.002
    svc = _service(None)
    assert svc.push_delta == PricerConfig.from_env({}).snapshot_push_delta == 0.002
    rows = _feed(svc)
    assert rows[-1][0] == rows[-2][0] + 1 and svc.server.latest.fair_up > 0.7


async def test_the_fixed_rate_still_publishes_when_nothing_moves():
    """USAGE's SNAPSHOT_PUBLISH_HZ stays the minimum: with push on and a flat price the loop
    alone keeps publishing (a condition, not a timing: it waits for 3 loop publishes)."""
    import asyncio

    svc = _service(None, {"SNAPSHOT_PUBLISH_HZ": "200"})
    svc._on_message(_trade(1, H0 - 500, 100_000.0), H0 - 500)
    pushed = svc.pushed_on_change
    task = asyncio.create_task(svc._publish_loop())
    try:
        for _ in range(2000):
            if svc.server.published >= pushed + 3:
                break
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
    assert svc.server.published >= pushed + 3 and svc.pushed_on_change == pushed


async def test_a_burst_of_moves_is_coalesced_not_dropped():
    """Inside PUSH_MIN_GAP_S of the last push a significant move is published when the gap ends
    (one snapshot for the burst), never lost; an isolated move goes out at once."""
    import asyncio

    svc = _service(0.002)
    for i in range(1, 201):                                             # flat start: the core is priced
        svc._on_message(_trade(i, H0 + (i - 1) * 20, 100_000.0 + (0.5 if i % 2 else 0.0)), H0 + (i - 1) * 20)
    assert svc.builder.last_fair == svc.builder.last_fair
    svc.push_min_gap_s = svc.push_spacing_s = 0.05                      # (spacing: the trades of one read)
    await asyncio.sleep(0.06)                                           # the last push is older than the gap
    n = svc.pushed_on_change
    svc._on_message(_trade(201, H0 + 4_000, 100_300.0), H0 + 4_000)    # isolated move: pushed at once
    assert svc.pushed_on_change == n + 1 and svc.server.latest.fair_up > 0.7
    n += 1
    for i, px in enumerate((99_700.0, 100_400.0, 99_600.0), 202):      # three big moves within the gap
        svc._on_message(_trade(i, H0 + 4_000 + i, px), H0 + 4_000 + i)
    assert svc.pushed_on_change == n and svc._push_timer is not None    # held for the end of the gap
    for _ in range(400):
        if svc.pushed_on_change == n + 1:
            break
        await asyncio.sleep(0.005)
    assert svc.pushed_on_change == n + 1                                # one snapshot for the burst ...
    assert svc.builder.last_fair < 0.4 and abs(svc.server.latest.fair_up - svc.builder.last_fair) < 0.05  # the last move


async def test_close_moves_go_out_at_once_up_to_the_burst_then_wait_for_a_token():
    """The second (and third) of close significant moves is pushed at once, not a whole gap later;
    beyond PUSH_BURST pushes within the gap the next waits for a token (the sustained rate stays
    one push per PUSH_MIN_GAP_S). A 10 s gap makes "within the gap" certain under any load."""
    svc = _service(0.002)
    svc.push_min_gap_s, svc.push_spacing_s = 10.0, 0.0
    assert svc.push_burst == 3.0
    for i in range(1, 201):                                             # flat start: the first priced one pushes
        svc._on_message(_trade(i, H0 + (i - 1) * 20, 100_000.0 + (0.5 if i % 2 else 0.0)), H0 + (i - 1) * 20)
    n = svc.pushed_on_change
    assert n == 1
    for k, px in enumerate((100_300.0, 99_700.0), 1):                  # two more close moves: both at once
        svc._on_message(_trade(200 + k, H0 + 4_000 + k, px), H0 + 4_000 + k)
        assert svc.pushed_on_change == n + k and svc._push_timer is None
        assert abs(svc.server.latest.fair_up - svc.builder.last_fair) < 1e-12
    svc._on_message(_trade(203, H0 + 4_003, 100_400.0), H0 + 4_003)    # a fourth within the gap: no token left
    assert svc.pushed_on_change == n + 2 and svc._push_timer is not None
    svc._push_timer.cancel()
