"""Evidence readers and checks of the chaos run's verdict: pricer metrics, journal events,
the venue's trade legs against the journal's fills, secrets in outputs, the result table.
Pure functions over what the run collected (:mod:`hourmm_core.sim.chaos` calls them)."""
from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Mapping

# ---------------------------------------------------------------------- small readers
_METRIC_RE = re.compile(r'^(\w+)(?:\{kind="([^"]*)"\})?\s+([-+0-9.eE]+|NaN)\s*$')


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> ``{"name" or "name{kind}": value}`` (only what the chaos run reads)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC_RE.match(line.strip())
        if m:
            name = m.group(1) + (f"{{{m.group(2)}}}" if m.group(2) is not None else "")
            with contextlib.suppress(ValueError):
                out[name] = float(m.group(3))
    return out


def bad_frames(metrics: Mapping[str, float]) -> dict[str, float]:
    pre = "hourmm_binance_bad_frames_total{"
    return {k[len(pre):-1]: v for k, v in metrics.items() if k.startswith(pre)}


def journal_events(path: Path, since_id: int = 0, kinds: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Committed journal rows after ``since_id`` (read-only; [] while the file does not exist)."""
    if not Path(path).exists():
        return []
    sql = "SELECT id, ts_ms, kind, market, order_id, payload FROM events WHERE id > ?"
    args: list[Any] = [since_id]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += list(kinds)
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = con.execute(sql + " ORDER BY id", args).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    out = []
    for r in rows:
        try:
            payload = json.loads(r[5]) if r[5] else {}
        except ValueError:
            payload = {}
        out.append({"id": r[0], "ts_ms": r[1], "kind": r[2], "market": r[3], "order_id": r[4],
                    "payload": payload if isinstance(payload, dict) else {}})
    return out


def venue_legs(trades: list[Mapping[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """Our legs of the venue's trade records: (trade id, our order id, asset, side, size, time)."""
    ids = {i.lower() for i in ids if i}
    legs = []
    for t in trades or []:
        if not isinstance(t, Mapping) or str(t.get("status", "")).upper() == "FAILED":
            continue
        ts = _match_ms(t)
        if str(t.get("trader_side", "TAKER")).upper() == "TAKER" and str(t.get("owner", "")).lower() in ids:
            legs.append({"trade_id": str(t.get("id")), "order_id": str(t.get("taker_order_id")),
                         "asset_id": str(t.get("asset_id")), "side": str(t.get("side", "")).upper(),
                         "size": float(t.get("size") or 0.0), "ts_ms": ts})
        for mo in t.get("maker_orders") or []:
            if isinstance(mo, Mapping) and str(mo.get("owner", "")).lower() in ids:
                legs.append({"trade_id": str(t.get("id")), "order_id": str(mo.get("order_id")),
                             "asset_id": str(mo.get("asset_id")), "side": str(mo.get("side", "")).upper(),
                             "size": float(mo.get("matched_amount") or 0.0), "ts_ms": ts})
    return legs


def _match_ms(t: Mapping[str, Any]) -> int | None:
    for k in ("match_time_ms", "match_time", "last_update"):
        v = t.get(k)
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        return int(x if x > 1e11 else x * 1000)
    return None


def fill_ledger_check(journal_fills: list[Mapping[str, Any]], legs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Journal vs venue, leg by leg: lost (venue only), double (journaled twice), phantom (journal only)."""
    jcount: dict[tuple[str, str], int] = {}
    for e in journal_fills:
        p = e.get("payload") or {}
        key = (str(p.get("trade_id")), str(p.get("order_id") or e.get("order_id")))
        jcount[key] = jcount.get(key, 0) + 1
    vkeys = {(str(v["trade_id"]), str(v["order_id"])) for v in legs}
    lost = sorted(vkeys - set(jcount))
    double = sorted(k for k, n in jcount.items() if n > 1)
    phantom = sorted(set(jcount) - vkeys)
    return {"venue_legs": len(vkeys), "journal_fills": sum(jcount.values()), "lost": lost[:20],
            "double": double[:20], "phantom": phantom[:20], "n_lost": len(lost), "n_double": len(double),
            "n_phantom": len(phantom)}


def find_secrets(secrets: list[str], texts: Mapping[str, bytes]) -> list[str]:
    """Names of the texts that contain any of the secrets (case-insensitive; never the secret itself)."""
    needles = [s.lower().encode() for s in secrets if s and len(s) >= 8]
    return sorted(name for name, blob in texts.items() if any(n in blob.lower() for n in needles))


def format_table(rows: list[Mapping[str, Any]]) -> list[str]:
    """The summary's chaos table: fault, reaction, time to react (deadline), outcome."""
    head = f"{'fault':<21}{'reaction (designed)':<58}{'time to react':>16}  outcome"
    lines = [head]
    for r in rows:
        t = "-" if r.get("react_ms") is None else f"{r['react_ms']:.0f} ms"
        t += f" / {r['deadline_s']:g} s"
        out = r["status"] + (f": {r['observed']}" if r.get("observed") else "")
        if r.get("problems"):
            out += " | " + "; ".join(r["problems"])
        lines.append(f"{r['fault']:<21}{r['reaction'][:57]:<58}{t:>16}  {out}")
    return lines
