"""Risk engine: modes, escalation, HALT latch, operator de-escalation, limits validation."""
import logging

import pytest

from hourmm_core.trading.risk_engine import Limits, Mode, RiskEngine


def engine() -> RiskEngine:
    r = RiskEngine(Limits(1000.0, 500.0, 100.0, 4))
    r.on_user_ws(True, 0)
    r.on_market_ws(True, 0)
    r.on_rest(True, 0)
    r.on_snapshot_stale(False, 0)
    return r


def test_starts_normal_when_healthy() -> None:
    assert engine().mode is Mode.NORMAL


def test_stale_snapshot_reduce_only_and_recovers() -> None:
    r = engine()
    ch = r.on_snapshot_stale(True, 5)
    assert ch and ch.new is Mode.REDUCE_ONLY and r.mode is Mode.REDUCE_ONLY
    ch = r.on_snapshot_stale(False, 6)
    assert ch and ch.new is Mode.NORMAL


def test_user_ws_drop_halts_sticky(caplog: pytest.LogCaptureFixture) -> None:
    r = engine()
    with caplog.at_level(logging.WARNING):
        ch = r.on_user_ws(False, 10)
    assert ch and ch.new is Mode.HALT
    assert "WS user disconnected - escalating to HALT" in caplog.text
    r.on_user_ws(True, 11)
    assert r.mode is Mode.HALT  # sticky after recovery
    r.set_mode(Mode.NORMAL, 12)
    assert r.mode is Mode.NORMAL


def test_cannot_leave_halt_while_user_ws_down() -> None:
    r = engine()
    r.on_user_ws(False, 10)
    with pytest.raises(ValueError):
        r.set_mode(Mode.NORMAL, 11)
    assert r.mode is Mode.HALT and r.operator_mode is Mode.NORMAL


def test_rest_auth_failure_halts(caplog: pytest.LogCaptureFixture) -> None:
    r = engine()
    with caplog.at_level(logging.ERROR):
        ch = r.on_rest(False, 3, auth_failed=True)
    assert ch.new is Mode.HALT and "REST authentication failed" in caplog.text


def test_breach_reduce_only_until_within_limits() -> None:
    r = engine()
    assert r.on_portfolio(501.0, 0.0, 100.0, 1).new is Mode.REDUCE_ONLY
    assert r.may_place(reduces=True) and not r.may_place(reduces=False)
    assert r.on_portfolio(400.0, 0.0, 100.0, 2).new is Mode.NORMAL
    assert r.on_portfolio(1.0, 0.0, 1000.5, 3).new is Mode.REDUCE_ONLY


def test_operator_modes_and_severity() -> None:
    r = engine()
    r.set_mode(Mode.FLATTEN, 1)
    r.on_snapshot_stale(True, 2)
    assert r.mode is Mode.FLATTEN  # more severe than the stale REDUCE_ONLY
    r.set_mode(Mode.HALT, 3)
    assert r.mode is Mode.HALT and not r.may_place(True)
    r.set_mode(Mode.NORMAL, 4)
    assert r.mode is Mode.REDUCE_ONLY  # stale still active


def test_mode_parse() -> None:
    assert Mode.parse("reduce_only") is Mode.REDUCE_ONLY
    for bad in ("", "PANIC", 3, None):
        with pytest.raises(ValueError):
            Mode.parse(bad)
    assert [m.level for m in Mode] == [0, 1, 2, 3]


def test_limits_validation_is_all_or_nothing() -> None:
    r = engine()
    before = r.limits
    for bad in ({"max_order_size": -1}, {"max_order_size": "x"}, {"nope": 1},
                {"max_open_orders": 2.5}, {}, {"max_order_size": float("nan")},
                {"max_order_size": 10, "max_position_size": True}):
        with pytest.raises(ValueError):
            r.set_limits(bad)
        assert r.limits == before
    new = r.set_limits({"max_reserved_capital": 500, "max_open_orders": 6})
    assert new.max_reserved_capital == 500.0 and new.max_open_orders == 6 and new.max_order_size == 100.0
