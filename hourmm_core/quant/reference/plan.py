"""Reference (pure Python) twin of ``hourmm_core.quant.plan``; read that docstring for the why."""
from __future__ import annotations

import math
from typing import Any, Iterable


def match_quotes(desired: list, free: list, price_tol: float, size_tol: float) -> tuple[list, int]:
    missing: list = []
    kept = 0
    for q in desired:
        ztol = size_tol * q.size + 1e-9
        for j, o in enumerate(free):
            if (o.token == q.token and o.side == q.side and not abs(o.price - q.price) > price_tol
                    and abs(o.size - o.filled - q.size) <= ztol):
                del free[j]
                kept += 1
                break
        else:
            missing.append(q)
    return missing, kept


def order_aggregates(orders: Iterable[Any], final: Any) -> tuple[list, float, float, float, float, float]:
    opn: list = []
    bu = bd = su = sd = notional = 0.0
    for o in orders:
        if o.state in final:
            continue
        opn.append(o)
        rem = o.size - o.filled
        if rem <= 0.0:
            continue
        if o.side == 0:
            notional += o.price * rem
            if o.token == 0:
                bu += rem
            else:
                bd += rem
        elif o.token == 0:
            su += rem
        else:
            sd += rem
    return opn, bu, bd, su, sd, notional


class QuoteCheck:
    """Twin of the compiled ``QuoteCheck``; ``rc``: the limits, as an object with ``RiskChecker.check``'s
    call shape (a compiled ``RiskChecker``, or one answering with the reference ``check_order``)."""

    def __init__(self, rc: Any, mode: int, fair: float, unwind: bool, age: int, yes: float, no: float,
                 buy_up: float, buy_down: float, sell_up: float, sell_down: float, reserved: float,
                 open_orders: int = 0) -> None:
        self.rc = rc
        self.mode, self.fair, self.unwind, self.age = mode, fair, unwind, age
        self.yes, self.no = yes, no
        self.buy_up, self.buy_down, self.sell_up, self.sell_down = buy_up, buy_down, sell_up, sell_down
        self.reserved, self.open_orders = reserved, open_orders

    def check(self, q: Any) -> int:
        token, side, price, size = q.token, q.side, q.price, q.size
        fair = math.nan if (self.unwind and side != 0) else self.fair
        code = self.rc.check(self.mode, token, side, price, size, fair,
                             self.yes - self.sell_up if side != 0 else self.yes,
                             self.no - self.sell_down if side != 0 else self.no,
                             self.open_orders, self.reserved, self.age, self.buy_up, self.buy_down)
        if code != 0:
            return code
        if side == 0:
            if token == 0:
                self.buy_up += size
            else:
                self.buy_down += size
            self.reserved += price * size
        elif token == 0:
            self.sell_up += size
        else:
            self.sell_down += size
        self.open_orders += 1
        return 0


def plan_orders(want: list, working: list, cancelling: Any, price_tol: float, size_tol: float, budget: int,
                max_open: Any, places: bool, check: Any, new_order: Any, now_ms: Any,
                action: Any) -> tuple[list, int, list, int, int, list, int]:
    free = [o for o in working if o.state is not cancelling]
    actions: list = []
    unacked: list = []
    rejected: list = []
    dr = ds = 0
    missing, kept = match_quotes(want, free, price_tol, size_tol)
    for o in free:
        if o.order_id is None:
            unacked.append(o)
            continue
        if budget <= 0:
            dr += 1
            continue
        budget -= 1
        actions.append(action("cancel", o))
    n_cancel = len(actions)
    if places:
        slots = max_open - (len(working) - n_cancel)
        for q in missing:
            if slots <= 0:
                ds += 1
                continue
            if check is not None:
                code = check.check(q) if isinstance(check, QuoteCheck) else check(q)
                if code != 0:
                    rejected.append((q, code))
                    continue
            if budget <= 0:
                dr += 1
                continue
            budget -= 1
            slots -= 1
            actions.append(action("place", new_order(q, now_ms)))
    return actions, kept, rejected, dr, ds, unacked, n_cancel


def prune_order(orders: Iterable[Any], final: Any, keep: int) -> list:
    fin = [o for o in orders if o.state in final]
    if len(fin) <= keep:
        return []
    fin.sort(key=lambda o: o.updated_ms)
    return fin[: len(fin) - keep]
