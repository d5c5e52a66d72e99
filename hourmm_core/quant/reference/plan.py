"""Reference (pure Python) twin of ``hourmm_core.quant.plan``; read that docstring for the why."""
from __future__ import annotations

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
