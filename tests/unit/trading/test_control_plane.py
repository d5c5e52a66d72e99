"""Control plane over real aiohttp on an ephemeral port: every call, bad input, auth, journal."""
import json

import aiohttp
import pytest

from hourmm_core.trading.control_plane import ControlPlane
from hourmm_core.trading.decision import DecisionCore, MarketRef
from hourmm_core.trading.risk_engine import Limits, Mode
from hourmm_core.trading.session import Schedule
from hourmm_core.trading.strategy import StrategyParams

pytestmark = pytest.mark.timeout(30)
END = 1_700_002_800_000


async def make(token: str = ""):
    core = DecisionCore(Limits(1000.0, 500.0, 100.0, 4), Schedule(), StrategyParams())
    core.set_market(MarketRef("bitcoin-up-or-down-x", "0xcond", "u", "d", END - 3_600_000, END))
    core.risk.on_user_ws(True, 0)
    core.risk.on_snapshot_stale(False, 0)
    hooks: list[str] = []

    async def hook(what: str) -> None:
        hooks.append(what)

    core.on_control = hook
    journal: list[tuple[str, dict]] = []
    cp = ControlPlane(core, "127.0.0.1", 0, token, journal=lambda k, p: journal.append((k, p)))
    port = await cp.start()
    return core, cp, f"http://127.0.0.1:{port}", journal, hooks


async def test_status_shape_and_all_actions() -> None:
    core, cp, base, journal, hooks = await make()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/status") as r:
                st = await r.json()
            assert r.status == 200
            for k in ("session_state", "risk_mode", "positions", "open_orders", "health", "market_id"):
                assert k in st
            assert set(st["positions"]) == {"yes_tokens", "no_tokens"}
            assert set(st["health"]) == {"market_ws", "user_ws", "rest", "binance_stale"}
            assert st["market_id"] == "0xcond" and st["risk_mode"] == "NORMAL"
            # curl -d without a content type (form encoded) must still work
            async with s.post(base + "/pause_quoting", data='{"pause": true}') as r:
                assert r.status == 200 and (await r.json())["paused"] is True
            assert core.paused
            async with s.post(base + "/pause_quoting", json={"pause": False}) as r:
                assert r.status == 200
            assert not core.paused
            async with s.post(base + "/set_mode", json={"mode": "REDUCE_ONLY"}) as r:
                assert r.status == 200
            assert core.risk.mode is Mode.REDUCE_ONLY
            async with s.post(base + "/flatten_now") as r:
                assert r.status == 200 and (await r.json())["risk_mode"] == "FLATTEN"
            async with s.post(base + "/set_limits", json={"max_reserved_capital": 500.0, "max_order_size": 50.0}) as r:
                body = await r.json()
                assert r.status == 200 and body["limits"]["max_order_size"] == 50.0
            assert core.risk.limits.max_reserved_capital == 500.0 and core.risk.limits.max_position_size == 500.0
            async with s.get(base + "/status") as r:
                assert (await r.json())["limits"]["max_order_size"] == 50.0
        assert hooks == ["pause_quoting", "pause_quoting", "set_mode", "flatten_now", "set_limits"]
        assert [k for k, _ in journal] == ["control"] * 5
    finally:
        await cp.stop()


@pytest.mark.parametrize("path,body", [
    ("/pause_quoting", "{}"), ("/pause_quoting", '{"pause": "yes"}'), ("/pause_quoting", '{"pause": 1}'),
    ("/pause_quoting", "not json"), ("/pause_quoting", ""), ("/pause_quoting", "[true]"),
    ("/pause_quoting", '{"pause": true, "x": 1}'),
    ("/set_mode", '{"mode": "PANIC"}'), ("/set_mode", "{}"), ("/set_mode", '{"mode": 2}'),
    ("/flatten_now", '{"now": true}'), ("/flatten_now", "garbage"),
    ("/set_limits", "{}"), ("/set_limits", '{"max_order_size": -5}'), ("/set_limits", '{"max_order_size": "5"}'),
    ("/set_limits", '{"max_open_orders": 2.5}'), ("/set_limits", '{"max_leverage": 3}'),
    ("/set_limits", '{"max_order_size": 10, "max_position_size": null}'),
])
async def test_bad_input_400_no_state_change(path: str, body: str) -> None:
    core, cp, base, journal, hooks = await make()
    before = (json.dumps(core.status(), sort_keys=True), core.paused)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(base + path, data=body) as r:
                assert r.status == 400
                err = await r.json()
        assert isinstance(err.get("error"), str) and err["error"]
        assert (json.dumps(core.status(), sort_keys=True), core.paused) == before
        assert hooks == [] and journal and journal[-1][0] == "control_rejected"
    finally:
        await cp.stop()


async def test_halt_cannot_be_cleared_while_user_ws_down() -> None:
    core, cp, base, journal, hooks = await make()
    core.risk.on_user_ws(False, 1)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/set_mode", json={"mode": "NORMAL"}) as r:
                assert r.status == 400 and "user WebSocket" in (await r.json())["error"]
        assert core.risk.mode is Mode.HALT
    finally:
        await cp.stop()


async def test_bearer_token_required() -> None:
    core, cp, base, journal, hooks = await make(token="s3cret-token")
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/status") as r:
                assert r.status == 401 and "error" in await r.json()
            async with s.post(base + "/set_mode", json={"mode": "HALT"},
                              headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            assert core.risk.mode is Mode.NORMAL
            h = {"Authorization": "Bearer s3cret-token"}
            async with s.post(base + "/set_mode", json={"mode": "HALT"}, headers=h) as r:
                assert r.status == 200
            async with s.get(base + "/status", headers=h) as r:
                assert (await r.json())["risk_mode"] == "HALT"
            async with s.get(base + "/nope", headers=h) as r:
                assert r.status == 404
        assert core.risk.mode is Mode.HALT
        assert all("s3cret" not in json.dumps(p) for _, p in journal)
    finally:
        await cp.stop()


@pytest.mark.parametrize("body,needle", [
    ('{"max_order_size": 1e308}', "at most"),
    ('{"max_reserved_capital": 1e400}', "out of range"),
    ('{"max_position_size": ' + "9" * 5000 + "}", "too many digits"),
    ('{"max_order_size": 0.' + "1" * 5000 + "}", "characters"),
    ('{"max_open_orders": NaN}', "not allowed"),
    ('{"max_order_size": -Infinity}', "not allowed"),
    ('{"max_open_orders": 1000000}', "at most"),
])
async def test_set_limits_refuses_absurd_numbers_cleanly(body: str, needle: str) -> None:
    """Bug 6 (issue 13): 1e308 was accepted; a 5,000-digit number echoed Python's internal error."""
    core, cp, base, journal, hooks = await make()
    before = core.risk.limits
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(base + "/set_limits", data=body) as r:
                assert r.status == 400
                err = (await r.json())["error"]
        assert needle in err, err
        assert "set_int_max_str_digits" not in err and "Exceeds the limit" not in err and len(err) < 200
        assert core.risk.limits == before and hooks == []
        assert journal[-1][0] == "control_rejected"
    finally:
        await cp.stop()

