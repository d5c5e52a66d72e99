"""Reference (pure Python) twin of ``hourmm_core.quant.risk``; read that docstring for the why."""
from __future__ import annotations

import math

from hourmm_core.quant.risk_codes import RiskMode, RiskReason

_TOL = 1e-9


def check_order(mode: int, token: int, side: int, price: float, size: float, fair: float,
                inv_up: float, inv_down: float, open_orders: int, reserved_capital: float,
                data_age_ms: int, max_order_size: float, max_position: float, max_capital: float,
                max_open_orders: int, price_band: float, stale_ms: int, pending_up: float = 0.0,
                pending_down: float = 0.0, tick: float = 0.0, min_size: float = 0.0) -> int:
    fin = math.isfinite
    if mode == RiskMode.HALT:
        return RiskReason.MODE_HALT
    if not RiskMode.NORMAL <= mode <= RiskMode.HALT:
        return RiskReason.BAD_MODE
    if token not in (0, 1) or side not in (0, 1):
        return RiskReason.BAD_ORDER
    if not (fin(price) and 0.0 < price < 1.0):
        return RiskReason.BAD_PRICE
    if tick > 0.0:
        k = price / tick
        if abs(k - math.floor(k + 0.5)) > 1e-6:
            return RiskReason.BAD_PRICE
    if not (fin(size) and size > 0.0 and size >= min_size - _TOL):
        return RiskReason.BAD_SIZE
    held = inv_up if token == 0 else inv_down
    pending = pending_up if token == 0 else pending_down
    if not fin(held) or not fin(pending):
        return RiskReason.POSITION
    reducing = side == 1 and size <= held + _TOL
    if not reducing:
        if mode == RiskMode.REDUCE_ONLY:
            return RiskReason.MODE_REDUCE_ONLY
        if mode == RiskMode.FLATTEN:
            return RiskReason.MODE_FLATTEN
    if not size <= max_order_size + _TOL:
        return RiskReason.ORDER_SIZE
    if side == 0:
        if not held + pending + size <= max_position + _TOL:
            return RiskReason.POSITION
        if not reserved_capital + price * size <= max_capital + _TOL:
            return RiskReason.CAPITAL
    elif not reducing:
        return RiskReason.POSITION
    if not open_orders + 1 <= max_open_orders:
        return RiskReason.OPEN_ORDERS
    if not reducing and (data_age_ms > stale_ms or not fin(fair)):
        return RiskReason.STALE
    if fin(fair):
        fair_tok = fair if token == 0 else 1.0 - fair
        if not abs(price - fair_tok) <= price_band + _TOL:
            return RiskReason.PRICE_BAND
    return RiskReason.OK


def check_portfolio(mode: int, inv_up: float, inv_down: float, open_orders: int, reserved_capital: float,
                    data_age_ms: int, max_position: float, max_capital: float, max_open_orders: int,
                    stale_ms: int, pending_up: float = 0.0, pending_down: float = 0.0) -> int:
    if not RiskMode.NORMAL <= mode <= RiskMode.HALT:
        return RiskReason.BAD_MODE
    if not (inv_up + pending_up <= max_position + _TOL and inv_down + pending_down <= max_position + _TOL):
        return RiskReason.POSITION
    if not reserved_capital <= max_capital + _TOL:
        return RiskReason.CAPITAL
    if not open_orders <= max_open_orders:
        return RiskReason.OPEN_ORDERS
    if data_age_ms > stale_ms:
        return RiskReason.STALE
    return RiskReason.OK


class RiskChecker:
    """Twin of the compiled ``RiskChecker``: the limits bound once, ``check`` = :func:`check_order`."""

    def __init__(self, max_order_size: float, max_position: float, max_capital: float, max_open_orders: int,
                 price_band: float, stale_ms: int, tick: float = 0.0, min_size: float = 0.0) -> None:
        self.limits = (max_order_size, max_position, max_capital, max_open_orders, price_band, stale_ms)
        self.tick, self.min_size = tick, min_size

    def check(self, mode: int, token: int, side: int, price: float, size: float, fair: float, inv_up: float,
              inv_down: float, open_orders: int, reserved_capital: float, data_age_ms: int,
              pending_up: float = 0.0, pending_down: float = 0.0) -> int:
        return check_order(mode, token, side, price, size, fair, inv_up, inv_down, open_orders, reserved_capital,
                           data_age_ms, *self.limits, pending_up=pending_up, pending_down=pending_down,
                           tick=self.tick, min_size=self.min_size)
