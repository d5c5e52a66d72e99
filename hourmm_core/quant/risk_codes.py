"""Reason codes and modes shared by the compiled risk checks and the trading engine.

Plain Python (no extension needed) so journals, control-plane responses and tests can
name codes; ``hourmm_core.quant.risk`` returns these integers (a test pins them equal).
"""
from __future__ import annotations

from enum import IntEnum


class RiskReason(IntEnum):
    """Why a risk check refused (0 = passed). First failing check wins, in this order:
    MODE_HALT/BAD_MODE, BAD_ORDER/BAD_PRICE/BAD_SIZE, MODE_REDUCE_ONLY/MODE_FLATTEN,
    ORDER_SIZE, POSITION, CAPITAL, OPEN_ORDERS, STALE, PRICE_BAND."""

    OK = 0
    ORDER_SIZE = 1
    POSITION = 2
    CAPITAL = 3
    OPEN_ORDERS = 4
    PRICE_BAND = 5
    STALE = 6
    MODE_HALT = 7
    MODE_REDUCE_ONLY = 8
    MODE_FLATTEN = 9
    BAD_PRICE = 10
    BAD_SIZE = 11
    BAD_ORDER = 12
    BAD_MODE = 13


class RiskMode(IntEnum):
    """Trading mode: NORMAL quotes both ways; REDUCE_ONLY and FLATTEN pass only orders
    that sell held inventory (FLATTEN is the end-of-hour unwind); HALT passes nothing."""

    NORMAL = 0
    REDUCE_ONLY = 1
    FLATTEN = 2
    HALT = 3


class Token(IntEnum):
    UP = 0
    DOWN = 1


class Side(IntEnum):
    BUY = 0
    SELL = 1
