"""``hourmm sim --vs-backtest``: the in-process backtest on the very hours a sim run traded.

Why: the June evidence comes from ``hourmm backtest``; ``hourmm sim`` runs the real processes
(replay, venue simulator, containers A and B) with the same shipped strategy
(configs/trader.yaml, see :func:`hourmm_core.config.shipped_trader_config`), the same fee
schedule and the same background flow. Putting the two per-hour results side by side on the
same real hours (the same bridged ticks: the bridge is keyed by absolute minute, so any
window gives the same ticks inside an hour) is how we check the backtest's sign holds on the
real stack, and where it does not, which hours to look at.

The backtest side is :func:`hourmm_core.research.backtest.run_backtest_span` with
``hourmm backtest``'s own parameters (:func:`hourmm_core.research.backtest_cli.params_from_config`
over configs/research.yaml): nothing is re-defined here.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.backtest import run_backtest_span
from hourmm_core.research.backtest_cli import params_from_config
from hourmm_core.research.settings import load_research_config

#: The backtest's warm-up before the first compared hour (the June reference used 24 h).
DEFAULT_WARMUP_MS = 24 * HOUR_MS


def backtest_hours(first_hour_ms: int, hours: int, data_dir: str | None = None,
                   warmup_ms: int = DEFAULT_WARMUP_MS, research_config: str | None = None) -> dict[int, dict[str, Any]]:
    """Per-hour backtest rows (``hour_start_ms`` -> row) for ``hours`` hours from ``first_hour_ms``,
    with ``hourmm backtest``'s shipped parameters (optionally overlaid by ``research_config``)."""
    params = params_from_config(load_research_config(research_config).get("backtest", {}))
    res = run_backtest_span(hours, start_ms=first_hour_ms, params=params, data_dir=data_dir,
                            warmup_ms=warmup_ms)
    if res.errors:
        raise RuntimeError(f"backtest failed on {len(res.errors)} hour(s): {res.errors}")
    out: dict[int, dict[str, Any]] = {}
    for h in res.hours:
        d = h.detail or {}
        out[int(h.hour_start_ms)] = {
            "pnl": float(h.pnl), "fees": float(h.fees), "fills": int(h.n_fills), "volume": float(h.volume),
            "flat": bool(d.get("flat", max(h.up_at_close, h.down_at_close) < 5.0)),
            "limit_breach": bool(d.get("limit_breach", False)),
            "max_inventory": float(max(d.get("max_up", math.nan), d.get("max_down", math.nan))),
            "source": res.source}
    return out


def _sign(x: float | None) -> int | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return (x > 0) - (x < 0)


def compare(sim_hours: Iterable[Mapping[str, Any]], bt: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Side by side on the sim's FULL hours (the partial first hour is left out): rows, totals,
    means per hour and whether the two means have the same sign."""
    rows = []
    for h in sim_hours:
        if h.get("partial"):
            continue
        hs = int(h["hour_start_ms"])
        b = bt.get(hs)
        rows.append({"hour": h.get("hour"), "hour_start_ms": hs, "outcome": h.get("outcome"),
                     "sim_pnl": h.get("pnl"), "sim_fees": h.get("fees"), "sim_fills": h.get("fills"),
                     "sim_flat": (abs(h["net_inventory_at_cutoff"]) < 5.0
                                  if h.get("net_inventory_at_cutoff") is not None else None),
                     "bt_pnl": b["pnl"] if b else None, "bt_fees": b["fees"] if b else None,
                     "bt_fills": b["fills"] if b else None, "bt_flat": b["flat"] if b else None,
                     "bt_breach": b["limit_breach"] if b else None})
    both = [r for r in rows if r["sim_pnl"] is not None and r["bt_pnl"] is not None]
    n = len(both)
    sim_tot = sum(r["sim_pnl"] for r in both)
    bt_tot = sum(r["bt_pnl"] for r in both)
    out = {"rows": rows, "hours": n,
           "sim_pnl_total": sim_tot, "bt_pnl_total": bt_tot,
           "sim_pnl_per_hour": sim_tot / n if n else None, "bt_pnl_per_hour": bt_tot / n if n else None,
           "sim_fees_total": sum(r["sim_fees"] or 0.0 for r in both),
           "bt_fees_total": sum(r["bt_fees"] or 0.0 for r in both),
           "hours_same_sign": sum(_sign(r["sim_pnl"]) == _sign(r["bt_pnl"]) for r in both)}
    out["same_sign"] = (n > 0 and _sign(out["sim_pnl_per_hour"]) == _sign(out["bt_pnl_per_hour"]))
    return out


def format_compare(c: Mapping[str, Any]) -> str:
    """The side-by-side table printed after the sim summary (and kept in summary.json)."""
    def n(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    lines = ["hourmm sim vs hourmm backtest on the same hours (shipped defaults, real fees, same flow):",
             f"{'hour (UTC)':<22}{'outcome':>8}{'sim PnL':>10}{'fees':>8}{'fills':>7}"
             f"{'bt PnL':>10}{'fees':>8}{'fills':>7}"]
    for r in c["rows"]:
        lines.append(f"{r['hour'] or '-':<22}{r['outcome'] or '-':>8}{n(r['sim_pnl'], '+.2f'):>10}"
                     f"{n(r['sim_fees'], '.2f'):>8}{n(r['sim_fills'], 'd'):>7}{n(r['bt_pnl'], '+.2f'):>10}"
                     f"{n(r['bt_fees'], '.2f'):>8}{n(r['bt_fills'], 'd'):>7}")
    lines.append(f"per hour over {c['hours']} h: sim {n(c['sim_pnl_per_hour'], '+.2f')}  "
                 f"backtest {n(c['bt_pnl_per_hour'], '+.2f')}  "
                 f"same sign: {'yes' if c['same_sign'] else 'NO'} "
                 f"({c['hours_same_sign']}/{c['hours']} hours agree)")
    return "\n".join(lines)
