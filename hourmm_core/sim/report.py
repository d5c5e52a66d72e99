"""What ``hourmm sim`` observed, judged and written down.

The orchestrator only collects raw observations (container A's snapshots, container
B's ``/status``, the venue's ``/_sim/state``, the children's logs, the journal);
this module turns them into: one live status line, the summary (fills, volume,
fees, PnL per hour after settlement, inventory at the cutoff, quote uptime, the
pricer's Brier score, HALTs and errors), the verdict with its reasons, and the
files in the output folder (``summary.json``, ``report.html``, PNG plots).

Why separate from the orchestrator: the judging rules are the product's
definition of "a clean run" and are tested on their own, without processes.
Every extractor is tolerant: a missing or malformed field yields ``None`` and is
reported, never a crash after a two-minute run.
"""
from __future__ import annotations

import html
import json
import math
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from hourmm_core.clock import HOUR_MS
from hourmm_core.research.ledger import HourLedger
from hourmm_core.trading.types import BUY, DOWN, SELL, UP, Fill

HALT = "HALT"


def _iso(ms: int | float | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _f(x: Any) -> float | None:
    """A finite float or None (JSON nulls, strings and garbage alike)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _dig(d: Any, *paths: str) -> Any:
    """First non-None value among dotted ``paths`` in nested dicts."""
    for p in paths:
        cur = d
        for part in p.split("."):
            if isinstance(cur, Mapping) and part in cur:
                cur = cur[part]
            else:
                cur = None
                break
        if cur is not None:
            return cur
    return None


def account_view(state: Any, wallet: str) -> dict[str, Any]:
    """Our account in the simulator's ``/_sim/state`` (by wallet address, case-insensitive)."""
    if not isinstance(state, Mapping):
        return {}
    accts = state.get("accounts")
    w = wallet.lower()
    if isinstance(accts, Mapping):
        for k, v in accts.items():
            if str(k).lower() == w and isinstance(v, Mapping):
                return dict(v)
    if isinstance(accts, list):
        for v in accts:
            if isinstance(v, Mapping) and str(v.get("address", v.get("wallet", ""))).lower() == w:
                return dict(v)
    bal = state.get("balances")
    if isinstance(bal, Mapping):
        for k, v in bal.items():
            if str(k).lower() == w and isinstance(v, Mapping):
                return dict(v)
    acct = state.get("account")
    return dict(acct) if isinstance(acct, Mapping) else {}


def our_open_orders(state: Any, wallet: str) -> int | None:
    """Our orders still live at the venue (``/_sim/state`` lists only non-background owners)."""
    if not isinstance(state, Mapping) or not isinstance(state.get("open_orders"), list):
        return None
    w = wallet.lower()
    n = 0
    for o in state["open_orders"]:
        if not isinstance(o, Mapping):
            continue
        owner = str(o.get("maker_address") or o.get("owner") or "").lower()
        if not w or not owner or owner == w:
            n += 1
    return n


def venue_markets(state: Any) -> dict[str, dict[str, Any]]:
    """token id -> {hour_start_ms, side 'Up'/'Down', condition_id, slug} from ``/_sim/state``."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(state, Mapping):
        return out
    for m in state.get("markets") or []:
        if not isinstance(m, Mapping) or _f(m.get("start_ms")) is None:
            continue
        for key, side in (("up_token", "Up"), ("down_token", "Down")):
            if m.get(key):
                out[str(m[key])] = {"hour_start_ms": int(m["start_ms"]), "side": side,
                                    "condition_id": m.get("condition_id"), "slug": m.get("slug")}
    return out


def our_fills(trades: Iterable[Mapping[str, Any]], wallet: str, api_key: str = "") -> list[dict[str, Any]]:
    """Our legs of the venue's trade records (CLOB ``/data/trades`` shape): taker leg and maker legs."""
    ids = {x.lower() for x in (wallet, api_key) if x}
    fills = []
    for t in trades:
        if not isinstance(t, Mapping):
            continue
        if str(t.get("trader_side", "TAKER")).upper() == "TAKER" and \
                str(t.get("owner") or t.get("maker_address") or "").lower() in ids:
            fills.append({"trade_id": t.get("id"), "role": "taker", "side": str(t.get("side", "")).upper(),
                          "size": _f(t.get("size")) or 0.0, "price": _f(t.get("price")) or 0.0,
                          "asset_id": str(t.get("asset_id")), "fee": _f(t.get("taker_fee")) or 0.0,
                          "ts_ms": t.get("match_time_ms")})
        for mo in t.get("maker_orders") or []:
            if isinstance(mo, Mapping) and str(mo.get("owner") or mo.get("maker_address") or "").lower() in ids:
                fills.append({"trade_id": t.get("id"), "role": "maker", "side": str(mo.get("side", "")).upper(),
                              "size": _f(mo.get("matched_amount")) or 0.0, "price": _f(mo.get("price")) or 0.0,
                              "asset_id": str(mo.get("asset_id")), "fee": 0.0, "ts_ms": t.get("match_time_ms")})
    return fills


def hour_accounts(fills: Iterable[Mapping[str, Any]], tokens: Mapping[str, Mapping[str, Any]],
                  outcomes: Mapping[int, bool], cutoff_ms: int = 60_000) -> dict[int, dict[str, Any]]:
    """Per hour: fills, volume (notional), fees, final Up/Down inventory, PnL after settlement.

    The accounting is the research :class:`~hourmm_core.research.ledger.HourLedger` (one
    definition of an hour's PnL: sells - buys - fees + 1 USDC per winning token held at
    the close); exact because every hour is its own market with its own tokens. A fill
    the ledger refuses (a sale of more than held, a price outside (0, 1)) is counted in
    ``unbooked_fills`` and left out.
    """
    acc: dict[int, dict[str, Any]] = {}
    ledgers: dict[int, HourLedger] = {}
    for f in fills:
        tok = tokens.get(str(f["asset_id"]))
        if tok is None:
            continue
        hs = tok["hour_start_ms"]
        a = acc.setdefault(hs, {"fills": 0, "maker_fills": 0, "late_fills": 0, "unbooked_fills": 0})
        led = ledgers.setdefault(hs, HourLedger(hs))
        ts = _f(f.get("ts_ms"))
        maker = f.get("role") == "maker"
        try:
            led.apply(Fill(str(f.get("trade_id")), None, UP if tok["side"] == "Up" else DOWN,
                           BUY if f["side"] == "BUY" else SELL, float(f["price"]), float(f["size"]),
                           int(ts) if ts is not None else hs, float(f["fee"]), maker))
        except ValueError:
            a["unbooked_fills"] += 1
            continue
        if ts is not None and ts >= hs + HOUR_MS - cutoff_ms:
            a["late_fills"] += 1
        a["fills"] += 1
        a["maker_fills"] += maker
    for hs, a in acc.items():
        led = ledgers[hs]
        up = outcomes.get(hs)
        a["volume"], a["fees"], a["cash"] = led.notional, led.fees, led.cash
        a["up_tokens"], a["down_tokens"] = round(led.pos[UP], 6), round(led.pos[DOWN], 6)
        a["payout"] = None if up is None else led.settle(bool(up))
        a["pnl"] = None if a["payout"] is None else led.pnl
        a["hour_start_ms"] = hs
    return acc


def market_mid(state: Any, status: Any) -> float | None:
    """The Up token's market mid: from the trader's status if it shows it, else the venue's book."""
    mid = _f(_dig(status, "market.mid", "book.mid", "market_mid", "mid"))
    if mid is not None:
        return mid
    if isinstance(state, Mapping):
        now = _f(state.get("now_ms"))
        for m in state.get("markets") or []:
            if not isinstance(m, Mapping) or now is None:
                continue
            if not (_f(m.get("start_ms")) or 0) <= now < (_f(m.get("end_ms")) or 0):
                continue
            book = m.get("book_up") if isinstance(m.get("book_up"), Mapping) else {}
            bid, ask = _best(book.get("bids"), max), _best(book.get("asks"), min)
            if bid is not None and ask is not None:
                return (bid + ask) / 2
    return None


def _best(levels: Any, pick: Any) -> float | None:
    """Best price of a book side given as [[p, s], ...] or [{"price": p, "size": s}, ...]."""
    prices = []
    for lv in levels or []:
        p = _f(lv.get("price")) if isinstance(lv, Mapping) else (_f(lv[0]) if isinstance(lv, (list, tuple)) and lv else None)
        if p is not None:
            prices.append(p)
    return pick(prices) if prices else None


def extract_sample(sim_ms: int, snap: Any, status: Any, state: Any, wallet: str = "") -> dict[str, Any]:
    """One observation row: fair (container A), inventory/orders/mode (container B), market mid (venue)."""
    snap = snap if isinstance(snap, Mapping) else {}
    status = status if isinstance(status, Mapping) else {}
    yes = _f(_dig(status, "positions.yes_tokens", "positions.up_tokens"))
    no = _f(_dig(status, "positions.no_tokens", "positions.down_tokens"))
    oo = _dig(status, "open_orders")
    if isinstance(oo, list):
        oo = len(oo)
    return {
        "sim_ms": int(sim_ms),
        "hour_start_ms": snap.get("hour_start_ms"),
        "fair_up": _f(snap.get("fair_up")),
        "stale": snap.get("stale"),
        "btc_mid": _f(snap.get("mid")),
        "mid": market_mid(state, status),
        "yes": yes,
        "no": no,
        "open_orders": int(oo) if _f(oo) is not None else None,
        "venue_open_orders": our_open_orders(state, wallet) if wallet else None,
        "risk_mode": status.get("risk_mode"),
        "session_state": status.get("session_state"),
        "market_id": status.get("market_id"),
        "pnl": _f(_dig(status, "pnl.total", "pnl.realized", "pnl")),
        "status_ok": bool(status),
        "snapshot_ok": bool(snap),
    }


def format_status(s: Mapping[str, Any], first_hour_ms: int, hours: int) -> str:
    """The live line: sim time, hour progress bar, time left, phase/mode, fair vs mid, inventory, PnL."""
    now = int(s["sim_ms"])
    k = (now - first_hour_ms) // HOUR_MS
    hs = first_hour_ms + k * HOUR_MS
    left = hs + HOUR_MS - now
    if now < first_hour_ms:
        label, bar = "pre-open", " " * 20
        left = first_hour_ms - now
    else:
        label = f"hour {min(k + 1, hours)}/{hours}"
        filled = max(0, min(20, int(20 * (now - hs) / HOUR_MS)))
        bar = "#" * filled + "-" * (20 - filled)
        if k >= hours:
            label, bar, left = "settling", "#" * 20, 0

    def num(x: Any, fmt: str) -> str:
        return "  -  " if x is None else format(x, fmt)

    mm, ss = divmod(max(0, left) // 1000, 60)
    return (f"{_iso(now)[11:19]}Z {label:>9} [{bar}] {mm:02d}:{ss:02d} left | "
            f"{(s.get('session_state') or '-'):<11} {(s.get('risk_mode') or '-'):<11} | "
            f"fair {num(s.get('fair_up'), '.3f')} mid {num(s.get('mid'), '.3f')} | "
            f"inv Up {num(s.get('yes'), '6.1f')} Down {num(s.get('no'), '6.1f')} | "
            f"orders {num(s.get('open_orders'), 'd')} | PnL {num(s.get('pnl'), '+.2f')}")


@dataclass
class RunData:
    """Raw observations of one run, handed from the orchestrator to :func:`finalize`."""

    out_dir: Path
    hours: int
    speed: float
    seed: int
    first_hour_ms: int
    end_sim_ms: int
    sim_start_ms: int
    wall_s: float
    data: dict[str, Any]
    samples: list[dict[str, Any]]
    status_log: list[dict[str, Any]]
    sim_state: dict[str, Any] | None
    children: dict[str, dict[str, Any]]
    failures: list[str]
    wallet: str = ""
    journal_path: Path | None = None
    cutoff_inventory_tol: float = 5.0
    limits: dict[str, float] = field(default_factory=dict)
    trades: list[dict[str, Any]] | None = None   # venue's /data/trades for our key (official client)
    api_key: str = ""
    trades_error: str | None = None
    judge: Any = None   # callable(summary, run): extra verdict (the chaos run), after summarize()


def brier(samples: Iterable[Mapping[str, Any]], hours: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Brier score of container A's fair_up against each hour's realized outcome (close >= open)."""
    outcome = {int(h["hour_start_ms"]): 1.0 if h["up"] else 0.0 for h in hours}
    per: dict[int, list[float]] = {}
    for s in samples:
        p, hs = s.get("fair_up"), s.get("hour_start_ms")
        if p is None or hs is None or int(hs) not in outcome:
            continue
        per.setdefault(int(hs), []).append((p - outcome[int(hs)]) ** 2)
    allv = [v for vs in per.values() for v in vs]
    return {"brier": (sum(allv) / len(allv)) if allv else None, "n": len(allv),
            "by_hour": {_iso(h): sum(v) / len(v) for h, v in sorted(per.items())},
            "baseline_0.5": 0.25}


def journal_stats(path: Path | None) -> dict[str, Any]:
    """Counts from the trader's SQLite journal (``events`` table): by type, and HALT mentions."""
    out: dict[str, Any] = {"path": str(path) if path else None, "exists": bool(path and Path(path).exists())}
    if not out["exists"]:
        return out
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(events)")]
            out["events"] = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            typ = next((c for c in ("type", "event_type", "kind", "event") if c in cols), None)
            if typ:
                out["by_type"] = dict(con.execute(
                    f"SELECT {typ}, COUNT(*) FROM events GROUP BY {typ} ORDER BY 2 DESC").fetchall())
            if typ and "market" in cols:
                out["fills_by_market"] = dict(con.execute(
                    f"SELECT market, COUNT(*) FROM events WHERE {typ} = 'fill' GROUP BY market").fetchall())
            out["tables"] = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if "snapshots" in out["tables"]:
                out["snapshots"] = con.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        out["error"] = str(exc)
    return out


def _hour_rows(run: RunData, acct: Mapping[str, Any], journal: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per traded hour: outcome, fills, volume, fees, PnL after settlement, inventory at cutoff."""
    from hourmm_core.config import TraderConfig

    cutoff_ms = TraderConfig().hard_cutoff_ms
    venue_hours = acct.get("hours") if isinstance(acct.get("hours"), (list, dict)) else []
    if run.trades is not None:
        outcomes = {int(h["hour_start_ms"]): bool(h["up"]) for h in run.data.get("hours", [])}
        venue_hours = list(hour_accounts(our_fills(run.trades, run.wallet, run.api_key),
                                         venue_markets(run.sim_state), outcomes, cutoff_ms).values())
    if isinstance(venue_hours, dict):
        venue_hours = [dict(v, hour_start_ms=v.get("hour_start_ms", k)) for k, v in venue_hours.items()]
    by_start: dict[int, Mapping[str, Any]] = {}
    for v in venue_hours:
        if isinstance(v, Mapping) and _f(v.get("hour_start_ms")) is not None:
            by_start[int(v["hour_start_ms"])] = v
    rows = []
    for h in run.data.get("hours", []):
        hs = int(h["hour_start_ms"])
        he = hs + HOUR_MS
        v = by_start.get(hs, {})
        cut = [s for s in run.samples if he - cutoff_ms <= s["sim_ms"] < he and s.get("yes") is not None]
        inv_status = None
        if cut:
            last = cut[-1]
            inv_status = {"yes": last["yes"], "no": last["no"] or 0.0}
        inv_venue = None
        if run.trades is not None and not v:
            inv_venue = {"yes": 0.0, "no": 0.0}   # no fill in this hour: nothing to hold
        elif _f(v.get("inventory_at_close_up")) is not None or _f(v.get("up_tokens")) is not None:
            inv_venue = {"yes": _f(v.get("inventory_at_close_up", v.get("up_tokens"))) or 0.0,
                         "no": _f(v.get("inventory_at_close_down", v.get("down_tokens"))) or 0.0}
        inv = inv_venue or inv_status
        slug = next((m.get("slug") for m in ((run.sim_state or {}).get("markets") or [])
                     if isinstance(m, Mapping) and m.get("start_ms") == hs), None) \
            if isinstance(run.sim_state, Mapping) else None
        jf = (journal or {}).get("fills_by_market")
        rows.append({
            "hour": h["hour"], "hour_start_ms": hs, "open": h["open"], "close": h["close"], "slug": slug,
            "journal_fills": (int(jf.get(slug, 0)) if isinstance(jf, Mapping) and slug else None),
            "partial": bool(h.get("partial")),
            "outcome": "Up" if h["up"] else "Down",
            "fills": v.get("fills", 0 if run.trades is not None else None),
            "volume": _f(v.get("volume", 0.0 if run.trades is not None else None)),
            "fees": _f(v.get("fees", 0.0 if run.trades is not None else None)),
            "pnl": _f(v.get("pnl", v.get("settled_pnl", 0.0 if run.trades is not None else None))),
            "late_fills": v.get("late_fills"),
            "inventory_at_cutoff": inv,
            "net_inventory_at_cutoff": (inv["yes"] - inv["no"]) if inv else None,
            "inventory_source": "venue" if inv_venue else ("trader /status" if inv_status else None),
        })
    return rows


def summarize(run: RunData) -> dict[str, Any]:
    """The summary dict (what summary.json holds) and the verdict with its reasons."""
    from hourmm_core.config import TraderConfig

    tc = TraderConfig()
    limits = run.limits or {"max_position_size": tc.max_position_size, "max_open_orders": tc.max_open_orders}
    acct = account_view(run.sim_state, run.wallet)
    failures = list(run.failures)
    journal = journal_stats(run.journal_path)
    hours = _hour_rows(run, acct, journal)
    traded = [s for s in run.samples if run.first_hour_ms <= s["sim_ms"] < run.first_hour_ms + run.hours * HOUR_MS]
    quoting_phase = [s for s in traded if s.get("session_state") in ("ACTIVE", "WIND_DOWN")]
    quoted = [s for s in quoting_phase if (s.get("open_orders") or 0) > 0]
    modes = sorted({s["risk_mode"] for s in run.samples if s.get("risk_mode")})
    halts = [s for s in run.samples if s.get("risk_mode") == HALT]
    errors = {n: c.get("errors", []) for n, c in run.children.items() if c.get("errors")}
    orphans = acct.get("open_orders")
    if isinstance(orphans, list):
        orphans = len(orphans)
    if orphans is None:
        orphans = our_open_orders(run.sim_state, run.wallet)
    fills = acct.get("fills") if not isinstance(acct.get("fills"), list) else len(acct["fills"])
    if fills is None and any(h["fills"] is not None for h in hours):
        fills = sum(int(h["fills"] or 0) for h in hours)
    if fills is None and run.trades is not None:
        fills = 0
    if run.trades_error:
        failures.append(f"venue trades could not be read with the official client: {run.trades_error}")

    # ---- verdict
    if not run.samples and not failures:
        failures.append("no observations were collected")
    if run.samples and not any(s.get("fair_up") is not None for s in traded):
        failures.append("container A published no fair probability during the traded hours")
    for n, errs in errors.items():
        failures.append(f"{n}: {len(errs)} ERROR/Traceback line(s), first: {errs[0]}")
    if halts:
        failures.append(f"risk mode HALT observed ({len(halts)} sample(s), first at sim {_iso(halts[0]['sim_ms'])})")
    max_pos = max((max(s.get("yes") or 0.0, s.get("no") or 0.0) for s in run.samples), default=0.0)
    max_oo = max((s.get("open_orders") or 0 for s in run.samples), default=0)
    venue_oo = [s["venue_open_orders"] for s in run.samples if s.get("venue_open_orders") is not None]
    max_venue_oo = max(venue_oo, default=None)
    if max_pos > limits["max_position_size"] + 1e-9:
        failures.append(f"risk limit breached: position {max_pos:g} > MAX_POSITION_SIZE {limits['max_position_size']:g}")
    # Working orders are judged at the venue (what can actually fill); the trader's own count
    # is used only when the venue's view is unavailable.
    judged_oo = max_venue_oo if max_venue_oo is not None else max_oo
    if judged_oo > limits["max_open_orders"]:
        where = "live at the venue" if max_venue_oo is not None else "reported by the trader"
        failures.append(f"risk limit breached: {judged_oo} open orders {where} > MAX_OPEN_ORDERS "
                        f"{limits['max_open_orders']}")
    for h in hours:
        if run.trades is not None and h.get("journal_fills") is not None and h["journal_fills"] != h["fills"]:
            failures.append(f"the trader's journal has {h['journal_fills']} fill(s) for {h['slug']} but the "
                            f"venue recorded {h['fills']} of ours")
        if h.get("late_fills"):
            failures.append(f"{h['late_fills']} fill(s) of ours after the hard cutoff of {h['hour']}")
        net = h["net_inventory_at_cutoff"]
        if net is not None and abs(net) > run.cutoff_inventory_tol:
            failures.append(f"inventory left after the cutoff of {h['hour']}: net {net:+g} Up tokens "
                            f"(tolerance {run.cutoff_inventory_tol:g}, the venue minimum size)")
    for m in (run.sim_state or {}).get("markets") or [] if isinstance(run.sim_state, Mapping) else []:
        res = m.get("resolution") if isinstance(m, Mapping) else None
        h = next((h for h in hours if h["hour_start_ms"] == m.get("start_ms")), None)
        if h is None or not isinstance(res, Mapping):
            continue
        if not res.get("resolved"):
            failures.append(f"the venue did not resolve {h['hour']}: {res.get('reason', 'unknown')}")
        elif bool(res.get("up_wins")) != (h["outcome"] == "Up"):
            failures.append(f"the venue resolved {h['hour']} as {'Up' if res.get('up_wins') else 'Down'} "
                            f"(open {res.get('open')}, close {res.get('close')}) but the Binance replay's 1 h "
                            f"candle says {h['outcome']} (open {h['open']}, close {h['close']})")
    if _f(orphans) and orphans > 0:
        failures.append(f"{orphans} orphaned open order(s) at the venue after the trader stopped")
    if run.sim_state is None and not run.failures:
        failures.append("the Polymarket simulator's /_sim/state was never readable")

    pnl_total = _f(acct.get("pnl", acct.get("total_pnl")))
    if pnl_total is None and any(h["pnl"] is not None for h in hours):
        pnl_total = sum(h["pnl"] or 0.0 for h in hours)
    return {
        "ok": not failures,
        "failures": failures,
        "output_dir": str(run.out_dir),
        "data": {k: v for k, v in run.data.items() if k != "hours"},
        "data_label": ("SYNTHETIC (seeded stand-in, NOT market data)" if run.data.get("synthetic")
                       else f"real {run.data.get('source')} {run.data.get('data_start')} .. "
                            f"{run.data.get('data_end')}") if run.data else "none",
        "run": {"hours": run.hours, "speed": run.speed, "seed": run.seed, "sim_start": _iso(run.sim_start_ms),
                "first_hour": _iso(run.first_hour_ms), "sim_end": _iso(run.end_sim_ms),
                "wall_seconds": round(run.wall_s, 1), "samples": len(run.samples)},
        "fills": fills,
        "volume": _f(acct.get("volume")) if _f(acct.get("volume")) is not None else
        (sum(h["volume"] or 0.0 for h in hours) if hours else None),
        "fees": _f(acct.get("fees")) if _f(acct.get("fees")) is not None else
        (sum(h["fees"] or 0.0 for h in hours) if hours else None),
        "pnl_total": pnl_total,
        "hours": hours,
        "quote_uptime": (len(quoted) / len(quoting_phase)) if quoting_phase else None,
        "brier": brier(run.samples, run.data.get("hours", [])),
        "risk_modes_seen": modes,
        "halts": len(halts),
        "max_position": max_pos,
        "max_open_orders": max_oo,
        "max_open_orders_at_venue": max_venue_oo,
        "orphaned_orders": orphans,
        "venue_rejections": sum(int(c.get("venue_rejections") or 0) for c in run.children.values()),
        "errors": errors,
        "children": run.children,
        "journal": journal,
        "venue_account": {k: v for k, v in acct.items() if not isinstance(v, (list, dict))},
        "files": {},
    }


def write_plots(out: Path, samples: list[dict[str, Any]], first_hour_ms: int, hours: int) -> dict[str, str]:
    """fair_vs_mid.png, inventory.png, pnl.png (matplotlib Agg); returns name -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, str] = {}
    t = [(s["sim_ms"] - first_hour_ms) / 60_000 for s in samples]

    def series(key: str) -> list[float]:
        return [float("nan") if s.get(key) is None else s[key] for s in samples]

    def bounds(ax: Any) -> None:
        for k in range(hours + 1):
            ax.axvline(60 * k, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("minutes since the first traded hour")
        ax.grid(alpha=0.3)

    specs = [
        ("fair_vs_mid.png", "Fair P(Up) (container A) vs market mid (Up token)",
         [("fair_up", "fair_up"), ("mid", "market mid")], "probability"),
        ("inventory.png", "Inventory (tokens)", [("yes", "Up"), ("no", "Down")], "tokens"),
        ("pnl.png", "PnL (trader /status, USDC)", [("pnl", "PnL")], "USDC"),
    ]
    for fname, title, keys, ylabel in specs:
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
        for key, label in keys:
            ax.plot(t, series(key), label=label, lw=1.2)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        bounds(ax)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname)
        plt.close(fig)
        files[fname.rsplit(".", 1)[0]] = fname
    return files


def write_html(out: Path, summary: Mapping[str, Any], text: str) -> Path:
    """report.html: verdict, the text summary, the plots."""
    imgs = "".join(f'<h3>{html.escape(k)}</h3><img src="{html.escape(v)}" style="max-width:100%">'
                   for k, v in summary.get("files", {}).items() if v.endswith(".png"))
    color = "#1a7f37" if summary.get("ok") else "#cf222e"
    verdict = "PASS" if summary.get("ok") else "FAIL"
    fails = "".join(f"<li>{html.escape(str(f))}</li>" for f in summary.get("failures", []))
    cols = ("hour", "outcome", "fills", "journal_fills", "volume", "fees", "pnl", "net_inventory_at_cutoff")
    rows = "".join("<tr>" + "".join(f"<td>{html.escape('-' if h.get(c) is None else str(h.get(c)))}"
                                    f"{'*' if c == 'hour' and h.get('partial') else ''}</td>" for c in cols)
                   + "</tr>" for h in summary.get("hours", []))
    logs = "".join(f"<li><a href='{html.escape(os.path.relpath(c['log'], out))}'>{html.escape(n)}</a></li>"
                   for n, c in (summary.get("children") or {}).items() if c.get("log"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>HourMM sim report</title>"
            f"<style>td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}</style></head>"
            f"<body style='font-family:sans-serif;max-width:1000px;margin:auto'>"
            f"<h1>HourMM sim report <span style='color:{color}'>{verdict}</span></h1>"
            f"<p><b>Data:</b> {html.escape(str(summary.get('data_label')))}</p>"
            + (f"<h2>Failures</h2><ul style='color:{color}'>{fails}</ul>" if fails else "")
            + f"<h2>Hours</h2><table><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{rows}</table>"
            f"<h2>Summary</h2><pre>{html.escape(text)}</pre>{imgs}"
            f"<h2>Logs</h2><ul>{logs}</ul></body></html>")
    p = out / "report.html"
    p.write_text(page, encoding="utf-8")
    return p


def format_summary(summary: Mapping[str, Any]) -> str:
    """Human-readable summary printed at the end of ``hourmm sim``."""
    def n(x: Any, fmt: str = ".2f") -> str:
        return "-" if x is None else format(x, fmt)

    r = summary.get("run", {})
    b = summary.get("brier", {})
    lines = [
        "=" * 78,
        f"HourMM sim summary: {'PASS' if summary.get('ok') else 'FAIL'}",
        f"data:          {summary.get('data_label')}",
        f"run:           {r.get('hours')} h from {r.get('first_hour')} at {n(r.get('speed'), 'g')}x, "
        f"{n(r.get('wall_seconds'), '.1f')} s wall, {r.get('samples')} samples",
        f"fills:         {summary.get('fills') if summary.get('fills') is not None else '-'}"
        f"   volume {n(summary.get('volume'))} USDC   fees {n(summary.get('fees'), '.4f')} USDC",
        f"PnL total:     {n(summary.get('pnl_total'), '+.4f')} USDC (after settlement)",
        f"quote uptime:  {n(None if summary.get('quote_uptime') is None else 100 * summary['quote_uptime'], '.1f')} % "
        f"of ACTIVE/WIND_DOWN time with orders working",
        f"pricer Brier:  {n(b.get('brier'), '.4f')} over {b.get('n', 0)} snapshots (0.5 constant = 0.2500)",
        f"risk modes:    {', '.join(summary.get('risk_modes_seen') or []) or '-'}   HALTs: {summary.get('halts', 0)}"
        f"   max position {n(summary.get('max_position'), 'g')}   max open orders {summary.get('max_open_orders')}"
        f" (trader) / {summary.get('max_open_orders_at_venue', '-')} (venue)",
        f"orphaned orders at the end: {'-' if summary.get('orphaned_orders') is None else summary['orphaned_orders']}"
        f"   venue rejections (HTTP 400, e.g. post-only cross): {summary.get('venue_rejections', 0)}",
        "",
        f"{'hour (UTC)':<21}{'outcome':>8}{'fills':>7}{'journal':>8}{'volume':>10}{'fees':>9}{'PnL':>10}"
        "  inventory at cutoff",
    ]
    for h in summary.get("hours", []):
        inv = h.get("inventory_at_cutoff")
        inv_s = (f"Up {inv['yes']:g} / Down {inv['no']:g} ({h.get('inventory_source')})" if inv else "-")
        fills = n(h.get("fills"), "d") if isinstance(h.get("fills"), int) else "-"
        lines.append(f"{h['hour'] + ('*' if h.get('partial') else ''):<21}{h['outcome']:>8}{fills:>7}"
                     f"{h['journal_fills'] if h.get('journal_fills') is not None else '-':>8}"
                     f"{n(h.get('volume')):>10}{n(h.get('fees'), '.4f'):>9}{n(h.get('pnl'), '+.3f'):>10}  {inv_s}")
    if any(h.get("partial") for h in summary.get("hours", [])):
        lines.append("* the hour the run starts in: only its last minutes are traded (wind-down, flatten, cutoff)")
    chaos = summary.get("chaos")
    if isinstance(chaos, Mapping) and chaos.get("table"):
        lines.append("")
        lines.append(f"chaos run (seed {chaos.get('seed')}): {'PASS' if chaos.get('ok') else 'FAIL'}"
                     + (f"   not covered: {', '.join(chaos['not_covered'])}" if chaos.get("not_covered") else ""))
        lines.extend(str(x) for x in chaos["table"])
    if summary.get("failures"):
        lines.append("")
        lines.append("FAILURES:")
        lines.extend(f"  - {f}" for f in summary["failures"])
    files = summary.get("files", {})
    if files:
        lines.append("")
        lines.append(f"output: {summary.get('output_dir')}  ({', '.join(sorted(files.values()))})")
    lines.append("=" * 78)
    return "\n".join(lines)


def finalize(run: RunData) -> dict[str, Any]:
    """Summarize, write plots + HTML + summary.json + samples; returns the summary."""
    out = Path(run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(run)
    if run.judge is not None:
        try:
            run.judge(summary, run)
        except Exception as exc:  # noqa: BLE001 - a judging bug must fail the run, not hide the summary
            summary["failures"].append(f"report: the extra verdict failed ({type(exc).__name__}: {exc})")
            summary["ok"] = False
    files: dict[str, str] = dict(summary.get("files") or {})
    try:
        files.update(write_plots(out, run.samples, run.first_hour_ms, run.hours))
    except Exception as exc:  # noqa: BLE001 - a plotting problem must not hide the verdict
        summary["failures"].append(f"report: plots could not be written ({type(exc).__name__}: {exc})")
        summary["ok"] = False
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in run.samples), encoding="utf-8")
    files["samples"] = "samples.jsonl"
    if run.sim_state is not None:
        (out / "sim_state.json").write_text(json.dumps(run.sim_state, indent=1, default=str), encoding="utf-8")
        files["sim_state"] = "sim_state.json"
    if run.journal_path and Path(run.journal_path).exists():
        files["journal"] = Path(run.journal_path).name
    files["summary"] = "summary.json"
    files["report"] = "report.html"
    summary["files"] = files
    text = format_summary(summary)
    write_html(out, summary, text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return summary
