"""Evidence of a market-making backtest: what the issue asks a result to prove or disprove.

Per hour (:func:`hour_detail`, stored in ``HourResult.detail``) and over all hours
(:func:`summarize`, ``result.json["evidence"]``):

* after-fee PnL per hour with a bootstrap-by-hour 95 % CI (hours resampled with
  replacement; each hour is its own market, settled at its close); the maker rebate
  (:func:`hourmm_core.fees.maker_rebate_estimate` of each of our maker fills, paid by the
  venue later and pro rata, so uncertain) is reported apart and *not* in the headline PnL;
* fees paid, maker vs taker volume, CTF merges;
* markouts of our fills at 5 / 30 / 60 s against the fair value - ours (the research
  pricer's fair on the decision grid) and the venue's (the snipers' model: real price,
  realized vol of the path) - and against the settled outcome (1 for the winning token),
  size-weighted, in USDC per share: ``sign * (value - price)``, positive = we earned;
* who took our quotes: latency snipers, informed takers, noise takers, other makers;
* inventory: max per token, max |Up - Down|, the position at the start of each session
  phase (wind-down, flatten, hard cut-off) and at the close; ``flat`` means both tokens
  below the venue minimum at the hard cut-off (dust below 5 shares cannot be sold with a
  limit order and is held to settlement); ``limit_breach`` = a token above
  ``max_position_size``.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Mapping, Sequence

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.fees import maker_rebate_estimate

UP, DOWN, BUY = 0, 1, 0
HORIZONS_S = (5, 30, 60)


def _who(owner: str) -> str:
    if not owner:
        return "we_took"
    if owner == "agent-sniper":
        return "sniper"
    if owner == "agent-informed":
        return "informed"
    if owner == "agent-noise":
        return "noise"
    if owner.startswith("agent-maker"):
        return "maker"
    return "other"


def hour_detail(led: Any, counterparty: Sequence[str], grid: np.ndarray, fair: np.ndarray, path: dict,
                up_won: bool, params: Any, hour_start: int, snipes: dict | None = None,
                true_fair: np.ndarray | None = None) -> dict[str, Any]:
    """Evidence of one hour (see module docstring). ``counterparty[i]`` is the taker of fill i ("" = us)."""
    fills = led.fills
    end = hour_start + HOUR_MS
    d: dict[str, Any] = {"maker_volume": 0.0, "taker_volume": 0.0, "maker_notional": 0.0, "taker_notional": 0.0,
                         "rebate": 0.0, "merged": float(getattr(led, "merged", 0.0)),
                         "by_taker": {k: 0.0 for k in ("sniper", "informed", "noise", "maker", "other", "we_took")}}
    # plain lists: per fill and horizon a bisect (== searchsorted right) and two floats, no numpy scalars
    g = np.asarray(grid, dtype=np.int64).tolist()
    fu = np.asarray(fair, dtype=np.float64).tolist()
    tfu = np.asarray(true_fair, dtype=np.float64).tolist() if true_fair is not None else fu
    last_i = len(g) - 1
    mk = {f"mk_fair_{h}s": 0.0 for h in HORIZONS_S}
    mk.update({f"mk_true_{h}s": 0.0 for h in HORIZONS_S})
    mk["mk_settle"] = 0.0
    mk_maker = dict.fromkeys(mk, 0.0)
    size_all = size_maker = 0.0
    for f, who in zip(fills, counterparty):
        sgn = 1.0 if f.side == BUY else -1.0
        if f.maker:
            d["maker_volume"] += f.size
            d["maker_notional"] += f.price * f.size
            d["rebate"] += maker_rebate_estimate(f.price, f.size, params.fee)
        else:
            d["taker_volume"] += f.size
            d["taker_notional"] += f.price * f.size
        d["by_taker"][_who(who)] += f.size
        vals = {}
        for h in HORIZONS_S:
            th = min(f.ts_ms + h * 1000, end - 1)
            i = min(max(bisect_right(g, th) - 1, 0), last_i)
            v = fu[i] if f.token == UP else 1.0 - fu[i]
            vals[f"mk_fair_{h}s"] = sgn * (v - f.price) * f.size
            v = tfu[i] if f.token == UP else 1.0 - tfu[i]
            vals[f"mk_true_{h}s"] = sgn * (v - f.price) * f.size
        won = (f.token == UP) == up_won
        vals["mk_settle"] = sgn * ((1.0 if won else 0.0) - f.price) * f.size
        for k, v in vals.items():
            mk[k] += v
            if f.maker:
                mk_maker[k] += v
        size_all += f.size
        size_maker += f.size if f.maker else 0.0
    d["markout_sums"] = mk
    d["markout_sums_maker"] = mk_maker
    d["fill_size"] = size_all
    # inventory path on the decision grid (positions after the step's fills)
    ts = np.asarray(path["ts_ms"], dtype=np.int64)
    pu = np.asarray(path["pos_up"], dtype=np.float64)
    pdn = np.asarray(path["pos_down"], dtype=np.float64)
    d["max_up"] = float(max(pu.max(initial=0.0), max(led.path_up, default=0.0)))
    d["max_down"] = float(max(pdn.max(initial=0.0), max(led.path_down, default=0.0)))
    net = np.abs(pu - pdn)
    d["max_abs_net"] = float(net.max(initial=0.0))

    def at(ms_left: int) -> list[float]:
        i = int(np.searchsorted(ts, end - ms_left, side="left"))
        i = min(max(i, 0), ts.size - 1) if ts.size else 0
        return [float(pu[i]), float(pdn[i])] if ts.size else [0.0, 0.0]

    d["pos_at"] = {"wind_down": at(params.t_wind_ms), "flatten": at(params.t_flatten_ms),
                   "cutoff": at(params.hard_cutoff_ms), "close": [float(led.pos[UP]), float(led.pos[DOWN])]}
    phases = {"active": ts < end - params.t_wind_ms,
              "wind_down": (ts >= end - params.t_wind_ms) & (ts < end - params.t_flatten_ms),
              "flatten": (ts >= end - params.t_flatten_ms) & (ts < end - params.hard_cutoff_ms)}
    d["mean_abs_net"] = {k: float(net[m].mean()) if m.any() else 0.0 for k, m in phases.items()}
    cut = d["pos_at"]["close"]
    d["flat"] = bool(max(cut) < params.min_size)
    d["limit_breach"] = bool(max(d["max_up"], d["max_down"]) > params.max_position_size + 1e-9)
    if snipes:
        d["sniper_shots"] = int(snipes.get("shots", 0))
        d["sniper_misses"] = int(snipes.get("misses", 0))
    return d


def bootstrap_ci(x: Sequence[float], n_boot: int = 10_000, seed: int = 12, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling hours with replacement."""
    a = np.asarray(x, dtype=np.float64)
    if a.size < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def paired_difference(x: Mapping[int, float], base: Mapping[int, float], n_boot: int = 10_000,
                      seed: int = 12) -> dict[str, Any]:
    """Mean per-hour difference ``x - base`` over the hours both ran (keys: hour start, ms UTC),
    with a bootstrap-by-hour 95 % CI of that mean (the same hours resampled for both).

    Two variants run on the same hours with the same seeds share the hour's BTC path, flow seed
    and outcome, so most of the hour-to-hour noise cancels in the difference: a paired CI ranks
    variants that their own (unpaired) CIs cannot. ``unpaired`` counts hours only one side has
    (a failed hour); they are left out, never filled in."""
    common = sorted(set(x) & set(base))
    if not common:
        raise ValueError("no hour in common: a paired difference needs runs over the same hours")
    d = np.array([float(x[h]) - float(base[h]) for h in common])
    lo, hi = bootstrap_ci(d, n_boot=n_boot, seed=seed)
    return {"hours": len(common), "mean": float(d.mean()), "ci95": [lo, hi],
            "share_hours_better": float((d > 0).mean()), "unpaired": len(set(x) ^ set(base))}


def summarize(hours: Sequence[Any]) -> dict[str, Any]:
    """All-hours evidence from each HourResult's ``detail`` (empty dict if none has one)."""
    hs = [h for h in hours if getattr(h, "detail", None)]
    if not hs:
        return {}
    pnl = np.array([h.pnl for h in hs])
    reb = np.array([h.detail["rebate"] for h in hs])
    lo, hi = bootstrap_ci(pnl)
    lo_r, hi_r = bootstrap_ci(pnl + reb)
    size = sum(h.detail["fill_size"] for h in hs)
    maker = sum(h.detail["maker_volume"] for h in hs)

    def mkt(key: str, which: str = "markout_sums") -> float:
        tot = sum(h.detail[which][key] for h in hs)
        den = size if which == "markout_sums" else maker
        return tot / den if den > 0 else float("nan")

    by = {k: sum(h.detail["by_taker"][k] for h in hs) for k in hs[0].detail["by_taker"]}
    worst = int(np.argmin(pnl))
    pos = {ph: {"mean_up": float(np.mean([h.detail["pos_at"][ph][0] for h in hs])),
                "mean_down": float(np.mean([h.detail["pos_at"][ph][1] for h in hs])),
                "max": float(max(max(h.detail["pos_at"][ph]) for h in hs))}
           for ph in ("wind_down", "flatten", "cutoff", "close")}
    return {
        "hours": len(hs),
        "pnl_per_hour": float(pnl.mean()),
        "pnl_per_hour_ci95": [lo, hi],
        "pnl_total": float(pnl.sum()),
        "pnl_std": float(pnl.std(ddof=1)) if pnl.size > 1 else float("nan"),
        "rebate_total": float(reb.sum()),
        "pnl_with_rebate_per_hour": float((pnl + reb).mean()),
        "pnl_with_rebate_ci95": [lo_r, hi_r],
        "fees": float(sum(h.fees for h in hs)),
        "maker_volume": maker,
        "taker_volume": float(sum(h.detail["taker_volume"] for h in hs)),
        "maker_notional": float(sum(h.detail["maker_notional"] for h in hs)),
        "taker_notional": float(sum(h.detail["taker_notional"] for h in hs)),
        "merged": float(sum(h.detail["merged"] for h in hs)),
        "markout_fair": {f"{s}s": mkt(f"mk_fair_{s}s") for s in HORIZONS_S},
        "markout_true_fair": {f"{s}s": mkt(f"mk_true_{s}s") for s in HORIZONS_S},
        "markout_settle": mkt("mk_settle"),
        "markout_fair_maker": {f"{s}s": mkt(f"mk_fair_{s}s", "markout_sums_maker") for s in HORIZONS_S},
        "our_maker_fills_by_taker": by,
        "sniper_share_of_maker_fills": by["sniper"] / maker if maker > 0 else float("nan"),
        "max_inventory_token": float(max(max(h.detail["max_up"], h.detail["max_down"]) for h in hs)),
        "max_abs_net": float(max(h.detail["max_abs_net"] for h in hs)),
        "mean_abs_net_by_phase": {k: float(np.mean([h.detail["mean_abs_net"][k] for h in hs]))
                                  for k in ("active", "wind_down", "flatten")},
        "position_at_phase": pos,
        "flat_every_cutoff": bool(all(h.detail["flat"] for h in hs)),
        "hours_not_flat": int(sum(not h.detail["flat"] for h in hs)),
        "limit_breaches": int(sum(h.detail["limit_breach"] for h in hs)),
        "worst_hour": {"hour_start_ms": int(hs[worst].hour_start_ms), "pnl": float(pnl[worst])},
        "best_hour": float(pnl.max()),
        "share_hours_positive": float((pnl > 0).mean()),
    }


def format_summary(ev: dict[str, Any]) -> str:
    """Few-line text of :func:`summarize`."""
    if not ev:
        return ""
    f = lambda x: "nan" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"  # noqa: E731
    ci = ev["pnl_per_hour_ci95"]
    return "\n".join([
        f"after-fee pnl/hour {f(ev['pnl_per_hour'])}  95% CI [{f(ci[0])}, {f(ci[1])}]  (+ rebate "
        f"{f(ev['pnl_with_rebate_per_hour'])})  worst hour {f(ev['worst_hour']['pnl'])}  fees {f(ev['fees'])}",
        f"volume maker {f(ev['maker_volume'])} taker {f(ev['taker_volume'])} merged {f(ev['merged'])}  "
        f"sniper share {f(ev['sniper_share_of_maker_fills'])}",
        "markout vs our fair " + " ".join(f"{k}={f(v)}" for k, v in ev["markout_fair"].items())
        + "  vs venue fair " + " ".join(f"{k}={f(v)}" for k, v in ev.get("markout_true_fair", {}).items())
        + f"  vs settle={f(ev['markout_settle'])}",
        f"max inventory {f(ev['max_inventory_token'])}  max |net| {f(ev['max_abs_net'])}  flat every cutoff "
        f"{ev['flat_every_cutoff']} ({ev['hours_not_flat']} not)  limit breaches {ev['limit_breaches']}",
    ])
