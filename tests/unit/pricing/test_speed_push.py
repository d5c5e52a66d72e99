"""Container A: optional publish-on-significant-change (PricerService(push_delta=...)).

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


def _service(push_delta: float) -> PricerService:
    cfg = PricerConfig.from_env({"SNAPSHOT_PUBLISH_HZ": "1", "VOL_HALFLIVES_S": "0.5,1,2"})
    clock = ScaledClock(1.0, H0 - 1_000, time.time_ns() // 1_000_000)   # connected before the hour: open seen
    svc = PricerService(cfg, clock, http_port=0, http_host="127.0.0.1", push_delta=push_delta)
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


def test_off_by_default_publishes_only_from_the_loop():
    svc = _service(0.0)
    rows = _feed(svc)
    assert rows[-1][1] > 0.7 and rows[-1][0] == 0 and svc.pushed_on_change == 0
