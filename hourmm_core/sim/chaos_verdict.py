"""The verdict of a ``hourmm sim --chaos`` run, judged after the venue's trade history was read.

Why a module of its own: :mod:`hourmm_core.sim.chaos` drives the run (inject, wait for the
reaction); this one only reads what the run left (journal, venue legs, samples, output files)
and decides pass or fail, so the two jobs can be read and tested apart.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hourmm_core.sim.chaos_checks import fill_ledger_check, find_secrets, format_table, journal_events, venue_legs
from hourmm_core.sim.chaos_faults import FAULTS
from hourmm_core.sim.report import venue_markets

if TYPE_CHECKING:
    from hourmm_core.sim.chaos import ChaosRun


def judge_chaos(chaos: ChaosRun, summary: dict[str, Any], run: Any) -> None:
    """Add the chaos verdict to ``summary``: every fault reacted in time, the hour ended flat, every
    fill journaled exactly once, the restarted trader's inventory equalled the venue's, no secret
    anywhere, HALT only inside a user-WS drop. ``run`` is the finished sim run (report.finalize)."""
    failures: list[str] = summary["failures"]
    checks: dict[str, Any] = {}
    # HALT is the design only inside a user-WS drop (until the operator cleared it)
    slack = int(3_000 * chaos.speed)
    halts = [s["sim_ms"] for s in run.samples if s.get("risk_mode") == "HALT"]
    unexplained = [t for t in halts if not any(a <= t <= b + slack for a, b in chaos.halt_windows)]
    checks["halts"] = {"samples": len(halts), "outside_user_ws_drop": len(unexplained)}
    if not unexplained:
        summary["failures"] = failures = [f for f in failures if not f.startswith("risk mode HALT observed")]
    # flat at the end of every hour, nothing orphaned (the ordinary sim judges these too)
    hours = summary.get("hours") or []
    flat = all(h.get("net_inventory_at_cutoff") is not None and abs(h["net_inventory_at_cutoff"])
               <= run.cutoff_inventory_tol for h in hours)
    checks["flat"] = flat
    checks["orphaned_orders"] = summary.get("orphaned_orders")
    if not flat and not any("inventory left" in f for f in failures):
        failures.append("chaos: the hour did not end flat")
    # every fill exactly once: journal vs venue, leg by leg
    jf = journal_events(run.journal_path, 0, ("fill",)) if run.journal_path else []
    if run.trades is not None:
        legs = venue_legs(run.trades, {run.wallet, run.api_key})
        fl = fill_ledger_check(jf, legs)
        checks["fills"] = fl
        if fl["n_lost"] or fl["n_double"] or fl["n_phantom"]:
            failures.append(f"chaos: fills journal vs venue: {fl['n_lost']} lost, {fl['n_double']} double counted, "
                            f"{fl['n_phantom']} not at the venue (of {fl['venue_legs']} venue legs)")
        _check_restart_inventory(chaos, run, legs, checks, failures)
    else:
        checks["fills"] = None
        failures.append("chaos: venue trades unavailable: fills could not be checked")
    # no secret anywhere
    checks["secrets"] = _scan_secrets(chaos, run, summary, failures)
    # every fault reacted as designed, in time
    for r in chaos.records:
        if r.status == "not covered":
            continue
        if r.status != "ok":
            failures.append(f"chaos: {r.fault}: {r.status}" + (f" ({'; '.join(r.problems)})" if r.problems else ""))
    rows = [{"fault": r.fault, "reaction": FAULTS[r.fault].reaction, "deadline_s": FAULTS[r.fault].deadline_s,
             "injection": FAULTS[r.fault].injection, "design": FAULTS[r.fault].design, **asdict(r)}
            for r in chaos.records]
    for row in rows:
        row.pop("gap_s", None)
    ok = not failures
    chaos = {"ok": ok, "seed": chaos.seed, "speed": chaos.speed,
             "schedule": chaos.schedule, "faults": rows, "checks": checks,
             "not_covered": [r.fault for r in chaos.records if r.status == "not covered"],
             "restarts": chaos.restarts, "table": format_table(rows)}
    summary["chaos"] = chaos
    summary["ok"] = ok
    out = Path(run.out_dir)
    result = {"ok": ok, "failures": failures, "chaos": chaos, "data_label": summary.get("data_label"),
              "run": summary.get("run"), "fills": summary.get("fills"), "pnl_total": summary.get("pnl_total"),
              "hours": hours, "orphaned_orders": summary.get("orphaned_orders")}
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    summary.setdefault("files", {})["result"] = "result.json"


def _check_restart_inventory(chaos: ChaosRun, run: Any, legs: list[dict[str, Any]], checks: dict[str, Any],
                             failures: list[str]) -> None:
    """The restarted trader's reconciled inventory equals the venue's at that moment."""
    tokens = venue_markets(run.sim_state)
    for r in chaos.records:
        if r.fault != "trader_kill9" or "reconcile_sim_ms" not in r.details:
            continue
        rep = r.details["report"]
        slug = r.details.get("reconcile_market")
        toks = {t: v for t, v in tokens.items() if v.get("slug") == slug}

        def pos_at(t_ms: int) -> tuple[float, float]:
            up = down = 0.0
            for leg in legs:
                tok = toks.get(leg["asset_id"])
                if tok is None or leg["ts_ms"] is None or leg["ts_ms"] > t_ms:
                    continue
                q = leg["size"] if leg["side"] == "BUY" else -leg["size"]
                if tok["side"] == "Up":
                    up += q
                else:
                    down += q
            return round(up, 4), round(down, 4)
        got = (round(float(rep.get("yes_tokens") or 0.0), 4), round(float(rep.get("no_tokens") or 0.0), 4))
        cands = {pos_at(r.details["reconcile_sim_ms"]), pos_at(r.details["restart_sim_ms"]),
                 pos_at(r.injected_sim_ms or 0)}
        match = any(abs(got[0] - c[0]) < 1e-3 and abs(got[1] - c[1]) < 1e-3 for c in cands)
        checks["restart_inventory"] = {"reconciled": got, "venue": sorted(cands), "match": match}
        if not match:
            r.status = "FAIL"
            r.problems.append(f"reconciled inventory {got} != venue {sorted(cands)}")
            failures.append(f"chaos: trader_kill9: reconciled inventory Up/Down {got} but the venue held "
                            f"{sorted(cands)}")


def _scan_secrets(chaos: ChaosRun, run: Any, summary: Mapping[str, Any], failures: list[str]) -> dict[str, Any]:
    secrets = [s[2:] if s.startswith("0x") else s for s in chaos._secrets]
    if not secrets:
        failures.append("chaos: the secrets to look for could not be derived")
        return {"checked": 0, "found_in": []}
    out = Path(run.out_dir)
    texts: dict[str, bytes] = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.suffix not in (".png",):
            with contextlib.suppress(OSError):
                texts[str(p.relative_to(out))] = p.read_bytes()
    texts["<summary>"] = json.dumps(summary, default=str).encode()
    texts["<samples>"] = json.dumps(run.samples, default=str).encode()
    texts["<sim_state>"] = json.dumps(run.sim_state, default=str).encode()
    found = find_secrets(secrets, texts)
    if found:
        failures.append(f"chaos: a secret (wallet key / API secret / passphrase) appears in: {', '.join(found)}")
    return {"checked": len(texts), "secrets": len(secrets), "found_in": found}
