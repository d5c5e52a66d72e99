"""``hourmm sim --chaos``: a seeded schedule of faults injected while the system trades a real hour.

Why: the fail-closed design (HALT on a lost user channel, REDUCE_ONLY on a stale pricer,
the 429 gate, restart reconciliation, the Binance frame guards) is only worth something
if every reaction happens in the running system, with the real processes and sockets,
and trading still ends clean. This module drives that run on top of the ordinary
``hourmm sim`` orchestrator (four processes on loopback) and judges it.

How a run goes
--------------
1. :func:`build_schedule` turns ``--chaos-seed`` into an order of the faults and a pause
   (wall seconds) before each; the same seed gives the same schedule.
2. :class:`ChaosRun.run` waits until the first full hour trades (ACTIVE, NORMAL, orders
   working), then injects the faults one after the other, each only once the system
   has recovered from the previous one ("settled": NORMAL, every feed up). Each fault
   is injected through an existing hook: the Polymarket simulator's ``POST /_sim/fault``
   (WS drops, REST error windows and, when the simulator has them, 425 restarts and
   placed-then-503), the Binance replay's ``POST /_sim/fault`` (feed pause, malformed and
   out-of-range frames), or a signal to a child process (container A stopped, container
   B ``kill -9``) followed by a restart with the same command and environment.
3. For each fault it waits for the designed reaction (:data:`FAULTS`), measured from
   the trader's journal (``ts_ms`` on the shared simulated clock), the children's log
   lines (stamped when read) and the pricer's ``/metrics``; times are reported in wall
   ms (simulated ms / speed), since every deadline of the design is in wall time
   (``STALE_THRESHOLD_MS``, the snapshot max age, Retry-After, WS back-off).
4. :meth:`ChaosRun.judge` (:mod:`hourmm_core.sim.chaos_verdict`) runs inside :func:`hourmm_core.sim.report.finalize` after the
   venue's trade history was read: every fault reacted within its deadline, the hour
   ended flat, no order orphaned, every fill of ours at the venue is in the journal
   exactly once (and nothing else is), the restarted trader's inventory equalled the
   venue's, no secret (wallet key, API secret, passphrase) in any log, the journal or
   the outputs, and HALT was seen only inside a user-WS drop. The table (fault,
   reaction, time to react, outcome) goes to the printed summary, ``summary.json``
   (``chaos``) and ``result.json``.

Operator steps the run takes itself (as the guide tells an operator): after a user-WS
drop the HALT is latched, so once the channel is back it posts ``/set_mode NORMAL``;
a killed process is started again with its command unchanged.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import aiohttp

from hourmm_core.sim.chaos_checks import (
    bad_frames,
    fill_ledger_check,
    find_secrets,
    format_table,
    journal_events,
    parse_metrics,
    venue_legs,
)
from hourmm_core.sim.chaos_faults import (
    CHAOS_SPEED,
    FAULTS,
    LAST_START_MS,
    SETTLE_TIMEOUT_S,
    START_AFTER_MS,
    FaultKind,
    FaultRecord,
    build_schedule,
)
from hourmm_core.sim.chaos_verdict import judge_chaos
from hourmm_core.sim.report import _f as _num
from hourmm_core.sim.report import our_open_orders

log = logging.getLogger("hourmm.sim.chaos")

__all__ = ["CHAOS_SPEED", "FAULTS", "LAST_START_MS", "SETTLE_TIMEOUT_S", "START_AFTER_MS", "ChaosRun", "FaultKind",
           "FaultRecord", "bad_frames", "build_schedule", "fill_ledger_check", "find_secrets", "format_table",
           "journal_events", "parse_metrics", "venue_legs"]


# ---------------------------------------------------------------------- the run
class ChaosRun:
    """Drives the faults of one ``hourmm sim --chaos`` run and judges it.

    ``orch`` is the :class:`hourmm_core.sim.orchestrator.Orchestrator` (duck-typed: this
    module must not import it, the orchestrator imports this one).
    """

    def __init__(self, orch: Any, seed: int, names: list[str] | None = None) -> None:
        self.orch = orch
        self.seed = seed
        self.schedule = build_schedule(seed, names)
        self.records = [FaultRecord(s["fault"], s["gap_s"]) for s in self.schedule]
        self.lines: list[tuple[int, str, str]] = []   # (sim ms when read, child, line)
        self.halt_windows: list[list[int]] = []  # [from, to] sim ms during which HALT is the design
        self.restarts: list[dict[str, Any]] = []
        self._secrets: list[str] = []
        self.started = False
        self.finished = False

    # ------------------------------------------------------------ plumbing
    def on_line(self, child: str, line: str) -> None:
        """Every line a child prints (hooked into the orchestrator's reader), stamped on arrival."""
        clk = self.orch.clock
        self.lines.append((clk.now_ms() if clk else 0, child, line))

    @property
    def speed(self) -> float:
        return float(self.orch.opts.speed)

    def now(self) -> int:
        return self.orch.clock.now_ms()

    def wall_ms(self, sim_ms_delta: float) -> float:
        return sim_ms_delta / self.speed

    async def _get(self, url: str) -> Any:
        return await self.orch._get_json(url)

    async def _post(self, url: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        try:
            async with self.orch._http.post(url, json=dict(body), timeout=aiohttp.ClientTimeout(total=5)) as r:
                txt = await r.text()
                try:
                    return r.status, json.loads(txt)
                except ValueError:
                    return r.status, txt
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return 0, type(exc).__name__

    async def _text(self, url: str) -> str | None:
        try:
            async with self.orch._http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as r:
                return await r.text() if r.status == 200 else None
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def status(self) -> dict[str, Any] | None:
        s = await self._get(self.orch.urls["control"] + "/status")
        return s if isinstance(s, dict) else None

    async def pm_fault(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        return await self._post(self.orch.urls["clob"].rstrip("/") + "/_sim/fault", body)

    async def replay_fault(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        return await self._post(self.orch.urls["binance_rest"].rstrip("/") + "/_sim/fault", body)

    async def sim_state(self) -> dict[str, Any] | None:
        s = await self._get(self.orch.urls["sim_state"])
        return s if isinstance(s, dict) else None

    async def metrics(self) -> dict[str, float]:
        txt = await self._text(self.orch.urls["pricer"] + "/metrics")
        return parse_metrics(txt) if txt else {}

    async def events(self, since_id: int = 0, *kinds: str) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, journal_events, self.orch.sqlite_path, since_id, kinds)

    async def last_event_id(self) -> int:
        loop = asyncio.get_running_loop()

        def q() -> int:
            p = Path(self.orch.sqlite_path)
            if not p.exists():
                return 0
            try:
                con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0)
                try:
                    return int(con.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
                finally:
                    con.close()
            except sqlite3.Error:
                return 0
        return await loop.run_in_executor(None, q)

    @staticmethod
    async def wait_for(fn: Callable[[], Awaitable[Any]], timeout_s: float, every_s: float = 0.05) -> Any:
        """Poll ``fn`` until it returns something truthy (returned) or ``timeout_s`` wall seconds pass (None)."""
        deadline = time.monotonic() + timeout_s
        while True:
            r = await fn()
            if r:
                return r
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(every_s)

    async def first_event(self, since_id: int, kind: str, pred: Callable[[dict[str, Any]], bool],
                          timeout_s: float) -> dict[str, Any] | None:
        async def probe() -> dict[str, Any] | None:
            return next((e for e in await self.events(since_id, kind) if pred(e)), None)
        return await self.wait_for(probe, timeout_s, 0.1)

    def lines_after(self, sim_ms: int, child: str, needle: str) -> list[tuple[int, str]]:
        return [(t, ln) for t, c, ln in list(self.lines) if t >= sim_ms and c == child and needle in ln]

    def _react(self, rec: FaultRecord, at_sim_ms: int | None) -> None:
        if at_sim_ms is not None and rec.injected_sim_ms is not None:
            rec.react_ms = round(max(0.0, self.wall_ms(at_sim_ms - rec.injected_sim_ms)), 1)

    def _recover(self, rec: FaultRecord, at_sim_ms: int | None) -> None:
        if at_sim_ms is not None and rec.injected_sim_ms is not None:
            rec.recover_ms = round(max(0.0, self.wall_ms(at_sim_ms - rec.injected_sim_ms)), 1)

    # ------------------------------------------------------------ process control
    async def kill9(self, name: str) -> Any:
        """SIGKILL a child's whole process group (no clean-up runs), like ``kill -9`` / a crash."""
        ch = self.orch.children[name]
        await ch.stop(15.0, sig=signal.SIGKILL)   # marks it stopped by us: the monitor sees no crash
        return ch

    async def restart(self, old: Any, health_url: str, key: str | None) -> Any:
        """Start ``old``'s command again (same env, same log file) and wait until it answers."""
        new = type(old)(old.name, old.argv, old.env, old.log_path)
        new.error_lines, new.rejections, new.warning_count = old.error_lines, old.rejections, old.warning_count
        new.on_line = self.on_line
        await new.start()
        self.orch.children[old.name] = new
        self.restarts.append({"child": old.name, "sim_ms": self.now(), "old_exit": old.proc.returncode})
        await self.orch._await_http(new, health_url, key=key)
        return new

    # ------------------------------------------------------------ schedule
    async def _settled(self) -> bool:
        """NORMAL, every feed up, quoting phase: the system is back to ordinary trading."""
        async def probe() -> bool:
            s = await self.status()
            if not s:
                return False
            h = s.get("health") or {}
            return (s.get("risk_mode") == "NORMAL" and s.get("session_state") == "ACTIVE"
                    and all(h.get(k) for k in ("market_ws", "user_ws")) and not h.get("binance_stale"))
        return bool(await self.wait_for(probe, SETTLE_TIMEOUT_S, 0.1))

    async def run(self) -> None:
        """Wait for the hour to trade, then inject every scheduled fault in turn."""
        o = self.orch
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            self._secrets = await loop.run_in_executor(None, _derive_secrets, o.urls["clob"], o._key)
        t_start = o.first_hour_ms + START_AFTER_MS
        while self.now() < t_start:
            await asyncio.sleep(min(0.5, max(0.01, (t_start - self.now()) / self.speed / 1000)))
        self.started = True
        for rec in self.records:
            if self.now() >= o.first_hour_ms + LAST_START_MS:
                rec.problems.append("no time left in the hour's ACTIVE phase")
                continue
            settled = await self._settled()
            if not settled:
                rec.details["not_settled_before"] = True
            await asyncio.sleep(rec.gap_s)
            if self.now() >= o.first_hour_ms + LAST_START_MS:
                rec.problems.append("no time left in the hour's ACTIVE phase")
                continue
            fn = getattr(self, "f_" + rec.fault)
            try:
                await fn(rec)
            except Exception as exc:  # noqa: BLE001 - a harness problem is this fault's failure, not a crash
                rec.status = "FAIL"
                rec.problems.append(f"harness: {type(exc).__name__}: {exc}")
                log.warning("chaos %s: %s: %s", rec.fault, type(exc).__name__, exc)
            if rec.status == "not run":
                rec.status = "ok" if not rec.problems else "FAIL"
            if not o.opts.quiet:
                t = "-" if rec.react_ms is None else f"{rec.react_ms:.0f} ms"
                print(f"chaos: {rec.fault}: {rec.status} (react {t}) {rec.observed}"
                      + (f" | {'; '.join(rec.problems)}" if rec.problems else ""), flush=True)
        self.finished = True

    def _begin(self, rec: FaultRecord) -> int:
        rec.injected_sim_ms = self.now()
        return rec.injected_sim_ms

    async def _inject(self, rec: FaultRecord, target: str, body: Mapping[str, Any], what: str = "") -> bool:
        """Start ``rec``'s clock and post the fault to the Polymarket sim (``pm``) or the Binance
        replay; False (recorded) when it was not applied, "not covered" when the hook does not exist."""
        self._begin(rec)
        code, reply = await (self.pm_fault(body) if target == "pm" else self.replay_fault(body))
        if code == 200:
            return True
        if what and code == 400 and "no known fault key" in str(reply):
            rec.status = "not covered"
            rec.observed = f"the simulator has no {what} fault"
        else:
            rec.problems.append(f"fault not applied: HTTP {code} {str(reply)[:120]}")
        return False

    # ------------------------------------------------------------ faults
    async def f_market_ws_drop(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        eid = await self.last_event_id()
        if not await self._inject(rec, "pm", {"drop_ws": "market"}):
            return
        down = await self.first_event(eid, "ws", lambda e: e["payload"].get("channel") == "market"
                                      and e["payload"].get("connected") is False, kind.deadline_s + 5)
        if down is None:
            rec.problems.append("the trader never saw the market WS go down")
            return
        self._react(rec, down["ts_ms"])
        up = await self.first_event(down["id"], "ws", lambda e: e["payload"].get("channel") == "market"
                                    and e["payload"].get("connected") is True, 20)
        if up is None:
            rec.problems.append("market WS not reconnected within 20 s")
            return
        self._recover(rec, up["ts_ms"])
        evs = [e for e in await self.events(eid, "decision", "intent", "cancel") if e["id"] < up["id"]]
        decisions = [e["id"] for e in evs if e["kind"] == "decision"]
        cancelled = {e["payload"].get("client_id") for e in evs if e["kind"] == "cancel" and e["id"] > down["id"]}
        placed = [e for e in evs if e["kind"] == "intent" and e["id"] > down["id"]]
        # a plan decided on the valid book before the loss may still send its places (its cancels
        # were in flight when the drop was seen): allowed only if the next pass pulls them
        in_flight = [e for e in placed if max((d for d in decisions if d < e["id"]), default=0) < down["id"]]
        fresh = [e for e in placed if e not in in_flight]
        not_pulled = [e for e in in_flight if e["payload"].get("client_id") not in cancelled]
        rec.details.update(sent_while_down=len(placed), in_flight_from_earlier_plan=len(in_flight))
        rec.observed = (f"down, reconnected in {rec.recover_ms:.0f} ms, {len(fresh)} order(s) decided while down"
                        + (f", {len(in_flight)} in flight from a plan decided before (pulled)" if in_flight else ""))
        if fresh:
            rec.problems.append(f"{len(fresh)} order(s) decided and sent while the book was unknown")
        if not_pulled:
            rec.problems.append(f"{len(not_pulled)} in-flight order(s) not pulled while the book was unknown")
        if rec.recover_ms is not None and rec.recover_ms > kind.deadline_s * 1000:
            rec.problems.append(f"reconnect took {rec.recover_ms:.0f} ms > {kind.deadline_s:g} s")

    async def f_user_ws_drop(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        eid = await self.last_event_id()
        if not await self._inject(rec, "pm", {"drop_ws": "user"}):
            return
        t0 = rec.injected_sim_ms or 0
        halt = await self.first_event(eid, "mode", lambda e: e["payload"].get("new") == "HALT", kind.deadline_s + 5)
        window = [t0, t0]
        self.halt_windows.append(window)   # updated in place until HALT is cleared
        if halt is None:
            rec.problems.append("no HALT after the user WS dropped")
            return
        self._react(rec, halt["ts_ms"])
        ca = await self.first_event(eid, "cancel_all", lambda e: True, 10)
        st = await self.sim_state()
        venue_open = our_open_orders(st, self.orch.wallet_address) if st else None
        parts = ["HALT"]
        if ca is None or not ca["payload"].get("ok"):
            rec.problems.append("no successful cancel-all after the HALT")
        else:
            parts.append("cancel-all ok")
        parts.append(f"{venue_open} order(s) at the venue")
        if venue_open:
            rec.problems.append(f"{venue_open} order(s) of ours still at the venue after the cancel-all")
        rec.check_deadline("HALT")
        # the operator's step: once the user channel is back, clear the latched HALT
        up = await self.first_event(halt["id"], "ws", lambda e: e["payload"].get("channel") == "user"
                                    and e["payload"].get("connected") is True, 20)
        if up is None:
            rec.problems.append("user WS not reconnected within 20 s")
            window[1] = self.now()
            return

        async def clear() -> bool:
            c, _ = await self._post(self.orch.urls["control"] + "/set_mode", {"mode": "NORMAL"})
            return c == 200
        if not await self.wait_for(clear, 10, 0.2):
            rec.problems.append("operator /set_mode NORMAL refused for 10 s")
        # the control plane journals the operator's action with the mode it left the trader in
        cleared = await self.first_event(halt["id"], "control", lambda e: e["payload"].get("action") == "set_mode"
                                         and (e["payload"].get("result") or {}).get("risk_mode") != "HALT", 10)
        window[1] = cleared["ts_ms"] if cleared else self.now()
        self._recover(rec, cleared["ts_ms"] if cleared else None)
        if cleared is None:
            rec.problems.append("HALT still latched after the operator's /set_mode NORMAL")
        else:
            parts.append(f"user WS back, operator cleared HALT at +{rec.recover_ms:.0f} ms")
        rec.observed = ", ".join(parts)

    async def _drain(self, key: str = "rest_error_count", timeout_s: float = 30.0) -> int | None:
        """Wait until the simulator's fault counter ``key`` reached 0; the sim ms when it did."""
        async def probe() -> int | None:
            st = await self.sim_state()
            if st and int((st.get("faults") or {}).get(key) or 0) <= 0:
                return self.now()
            return None
        return await self.wait_for(probe, timeout_s, 0.1)

    async def f_rest_5xx(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        eid = await self.last_event_id()
        st0 = await self.sim_state() or {}
        n0 = int((st0.get("errors") or {}).get("fault_503") or 0)
        if not await self._inject(rec, "pm", {"rest_error": 503, "count": 3}):
            return
        t0 = rec.injected_sim_ms or 0
        drained = await self._drain(timeout_s=kind.deadline_s + 20)
        if drained is None:
            rec.problems.append("the trader made fewer than 3 REST calls in 30 s")
            return
        st1 = await self.sim_state() or {}
        answered = int((st1.get("errors") or {}).get("fault_503") or 0) - n0
        # what the trader made of them: most are absorbed by the executor (an ambiguous POST is
        # looked up on the venue and the same signed order re-posted; reads are retried)
        seen = self.lines_after(t0, "polymarket_trader", "503")
        jseen = [e for e in await self.events(eid, "reject", "cancel_reject")
                 if "503" in str(e["payload"].get("error"))]
        ack = await self.first_event(eid, "ack", lambda e: e["ts_ms"] >= drained, kind.deadline_s + 10)
        self._react(rec, ack["ts_ms"] if ack else None)
        self._recover(rec, ack["ts_ms"] if ack else None)
        evs = await self.events(eid, "ack", "mode")
        halts = [e for e in evs if e["kind"] == "mode" and e["payload"].get("new") == "HALT"]
        by_client: dict[str, set[str]] = {}
        for e in evs:
            if e["kind"] == "ack" and e["payload"].get("client_id"):
                by_client.setdefault(str(e["payload"]["client_id"]), set()).add(str(e["order_id"]))
        doubles = [c for c, ids in by_client.items() if len(ids) > 1]
        rec.details.update(answered_503=answered, journaled=len(jseen), log_lines=len(seen))
        rec.observed = (f"{answered} x 503 answered, {len(jseen)} reject/cancel_reject journaled, "
                        + (f"next ack +{rec.react_ms:.0f} ms" if ack else "no ack after")
                        + f", {len(doubles)} double post(s)")
        if answered < 3:
            rec.problems.append(f"only {answered} of 3 503s were answered")
        if ack is None:
            rec.problems.append(f"quoting did not resume (no ack) within {kind.deadline_s + 10:g} s after the 503s")
        if halts:
            rec.problems.append("HALT on a 5xx window")
        if doubles:
            rec.problems.append(f"{len(doubles)} order(s) acked twice under different ids (double post)")
        rec.check_deadline("quoting resumed")

    async def f_rest_429(self, rec: FaultRecord) -> None:
        ra, count = 1.0, 5
        if not await self._inject(rec, "pm", {"rest_error": 429, "count": count, "retry_after_s": ra}):
            return
        t0 = rec.injected_sim_ms or 0
        drained = await self._drain(timeout_s=60)
        await asyncio.sleep(0.3)   # the last 429's log line
        lines = self.lines_after(t0, "polymarket_trader", "HTTP 429 from the CLOB: sending nothing for")
        if drained is None:
            rec.problems.append(f"{count} 429s not used up within 60 s")
        if not lines:
            rec.problems.append("the trader logged no 429 back-off")
            return
        self._react(rec, lines[0][0])
        pauses = []
        for _, ln in lines:
            m = re.search(r"sending nothing for ([0-9.]+)s", ln)
            if m:
                pauses.append(float(m.group(1)))
        window = 0.75 * ra
        worst = self._gate_bursts(rec, lines, t0, ra)
        span = rec.details["times_s"][-1] - rec.details["times_s"][0]
        rec.details.update(pauses=pauses)
        rec.observed = (f"{len(lines)} x 429 over {span:.2f} s, gate {min(pauses, default=0):.2f}-"
                        f"{max(pauses, default=0):.2f} s, <= {worst} per {window:g} s")
        if not pauses or min(pauses) < ra - 0.01:
            rec.problems.append(f"gate shorter than Retry-After {ra:g} s: {pauses}")
        if worst > 4:
            rec.problems.append(f"{worst} 429s within {window:g} s: Retry-After not honoured")
        rec.check_deadline("first 429")

    def _gate_bursts(self, rec: FaultRecord, lines: list[tuple[int, str]], t0: int, gap_s: float) -> int:
        """Most refusals the trader logged within any ``0.75 * gap_s`` window (a closed gate sends
        nothing, so only the requests already in flight can be refused together)."""
        times = [self.wall_ms(t - t0) / 1000 for t, _ in lines]
        worst = max((sum(1 for u in times if t <= u < t + 0.75 * gap_s) for t in times), default=0)
        rec.details.update(times_s=[round(t, 3) for t in times], max_in_window=worst)
        return worst

    async def f_rest_425(self, rec: FaultRecord) -> None:
        count = 3
        eid = await self.last_event_id()
        if not await self._inject(rec, "pm", {"engine_restart": {"count_425": count, "post_only_s": 5}},
                                  "engine_restart (425)"):
            return
        t0 = rec.injected_sim_ms or 0
        drained = await self._drain("restart_425", timeout_s=60)
        await asyncio.sleep(0.3)
        # the executor's line per 425 answer (the trader's per-order reject lines of one refused batch
        # also quote "HTTP 425" and are not separate requests)
        lines = self.lines_after(t0, "polymarket_trader", "HTTP 425 from the CLOB")
        if drained is None:
            rec.problems.append(f"{count} 425s not used up within 60 s")
        if not lines:
            rec.problems.append("the trader logged no 425 back-off")
            return
        self._react(rec, lines[0][0])
        waits = [float(m.group(1)) for _, ln in lines if (m := re.search(r"sending nothing for ([0-9.]+)s", ln))]
        rec.details.update(backoff_s=waits)
        worst = self._gate_bursts(rec, lines, t0, 1.0)   # the first back-off is at least 1 s
        # back to trading: the next order acknowledged after the 425s (the gate open again)
        ack = await self.first_event(eid, "ack", lambda e: e["ts_ms"] >= (drained or t0), 30)
        self._recover(rec, ack["ts_ms"] if ack else None)
        rec.observed = (f"{len(lines)} x 425, back-off {min(waits, default=0):.2f}-{max(waits, default=0):.2f} s, "
                        f"<= {worst} per 0.75 s, "
                        + (f"next ack +{rec.recover_ms:.0f} ms" if ack else "no ack within 30 s"))
        if not waits or min(waits) < 0.99:
            rec.problems.append(f"back-off shorter than the designed first wait of 1-2 s: {waits}")
        if worst > 4:
            rec.problems.append(f"{worst} 425s within 0.75 s: no back-off")
        if ack is None:
            rec.problems.append("no order acknowledged within 30 s after the 425s")
        rec.check_deadline("first 425")

    async def f_placed_then_503(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        eid = await self.last_event_id()
        # the venue takes the next order but answers 503, and stays down for the client's 2 lookups
        if not await self._inject(rec, "pm", {"place_then_503": 1, "outage_after": 2}, "place_then_503"):
            return
        drained = await self._drain("place_then_503", timeout_s=60)
        if drained is None:
            rec.problems.append("no order was placed within 60 s")
            return
        wallet = self.orch.wallet_address.lower()

        # the design: the order that is on the book despite the 503 is never lost: the trader
        # tracks it (kept as `unknown` and resolved, or acked after the lookup / the re-post of
        # the same signed order); every order of ours at the venue is one the journal knows
        async def probe() -> tuple[int, list[str]] | None:
            st = await self.sim_state()
            evs = await self.events(0, "ack", "unknown")
            if st is None or not any(e["id"] > eid and e["ts_ms"] >= drained for e in evs):
                return None
            known = {e["order_id"] for e in evs}
            venue = [str(o.get("id")) for o in st.get("open_orders") or []
                     if str(o.get("maker_address") or o.get("owner") or "").lower() == wallet]
            untracked = [i for i in venue if i not in known]
            return None if untracked else (self.now(), venue)
        got = await self.wait_for(probe, kind.deadline_s, 0.2)
        unknown = await self.events(eid, "unknown")
        if got is None:
            rec.problems.append(f"an order of ours at the venue stayed unknown to the journal for {kind.deadline_s:g} s")
            return
        self._react(rec, got[0])
        if unknown:
            res = await self.first_event(unknown[0]["id"], "unknown_resolved",
                                         lambda e: e["order_id"] == unknown[0]["order_id"], 30)
            self._recover(rec, res["ts_ms"] if res else None)
            rec.observed = ("kept as unknown, resolved (" + str(res["payload"].get("how")) + f") at +{rec.recover_ms:.0f} ms"
                            if res else "kept as unknown, NOT resolved within 30 s")
            if res is None:
                rec.problems.append("the unknown order was not resolved within 30 s")
        else:
            rec.observed = f"tracked (acked after the lookup / same-order re-post); {len(got[1])} venue order(s), all journaled"
        rec.check_deadline("tracked")

    async def _no_new_exposure(self, rec: FaultRecord, from_id: int, to_id: int | None) -> None:
        evs = [e for e in await self.events(from_id, "intent") if to_id is None or e["id"] < to_id]
        bad = [e for e in evs if not e["payload"].get("reduce")]
        rec.details["orders_sent_degraded"] = len(evs)
        if bad:
            rec.problems.append(f"{len(bad)} order(s) adding exposure sent while degraded")

    async def f_pricer_stale(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        pause_wall_s = 5.0
        eid = await self.last_event_id()
        if not await self._inject(rec, "replay", {"pause_ms": int(pause_wall_s * self.speed * 1000)}):
            return
        red = await self.first_event(eid, "mode", lambda e: e["payload"].get("new") == "REDUCE_ONLY"
                                     and "stale" in str(e["payload"].get("reason")), kind.deadline_s + 5)
        if red is None:
            rec.problems.append("no REDUCE_ONLY (stale) while the feed was silent")
            return
        self._react(rec, red["ts_ms"])
        back = await self.first_event(red["id"], "mode", lambda e: e["payload"].get("old") == "REDUCE_ONLY",
                                      pause_wall_s + 30)
        self._recover(rec, back["ts_ms"] if back else None)
        await self._no_new_exposure(rec, red["id"], back["id"] if back else None)
        rec.observed = (f"REDUCE_ONLY, {rec.details.get('orders_sent_degraded', 0)} order(s) sent meanwhile, "
                        + (f"{back['payload'].get('new')} again at +{rec.recover_ms:.0f} ms" if back else "not recovered"))
        if back is None:
            rec.problems.append("not back to NORMAL within 30 s of the feed resuming")
        rec.check_deadline("REDUCE_ONLY")

    async def f_pricer_dead(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        down_wall_s = 4.0
        eid = await self.last_event_id()
        self._begin(rec)
        old = await self.kill9("binance_pricer")
        t_kill = time.monotonic()
        red = await self.first_event(eid, "mode", lambda e: e["payload"].get("new") == "REDUCE_ONLY",
                                     kind.deadline_s + 5)
        await asyncio.sleep(max(0.0, down_wall_s - (time.monotonic() - t_kill)))
        await self.restart(old, self.orch.urls["pricer"] + "/health", "healthy")
        if red is None:
            rec.problems.append("no REDUCE_ONLY while container A was down")
            return
        self._react(rec, red["ts_ms"])
        back = await self.first_event(red["id"], "mode", lambda e: e["payload"].get("old") == "REDUCE_ONLY", 60)
        self._recover(rec, back["ts_ms"] if back else None)
        await self._no_new_exposure(rec, red["id"], back["id"] if back else None)
        rec.observed = (f"REDUCE_ONLY, A restarted, {rec.details.get('orders_sent_degraded', 0)} order(s) "
                        "sent meanwhile, " + (f"NORMAL again at +{rec.recover_ms:.0f} ms" if back else "not recovered"))
        if back is None:
            rec.problems.append("not back to NORMAL within 60 s of container A's restart")
        rec.check_deadline("REDUCE_ONLY")

    async def f_trader_kill9(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        eid = await self.last_event_id()
        self._begin(rec)
        old = await self.kill9("polymarket_trader")
        rec.details["exit_code"] = old.proc.returncode
        await self.restart(old, self.orch.urls["control"] + "/status", None)
        restart_ms = self.now()
        rep = await self.first_event(eid, "reconcile", lambda e: e["ts_ms"] >= (rec.injected_sim_ms or 0),
                                     kind.deadline_s)
        if rep is None:
            rec.problems.append(f"the restarted trader journaled no reconciliation within {kind.deadline_s:g} s")
            return
        self._react(rec, rep["ts_ms"])
        p = rep["payload"]
        rec.details.update(restart_sim_ms=restart_ms, reconcile_sim_ms=rep["ts_ms"], reconcile_market=rep["market"],
                           report={k: p.get(k) for k in ("adopted", "strays", "fills_replayed", "fills_from_exchange",
                                                         "yes_tokens", "no_tokens", "errors")})
        rec.observed = (f"exit {old.proc.returncode}, restarted; reconciled: {len(p.get('adopted') or [])} adopted, "
                        f"{len(p.get('strays') or [])} stray(s) cancelled, {p.get('fills_replayed')} fill(s) from the "
                        f"journal + {p.get('fills_from_exchange')} from the venue, Up {p.get('yes_tokens'):g} / "
                        f"Down {p.get('no_tokens'):g}")
        if p.get("errors"):
            rec.problems.append(f"reconciliation errors: {p['errors']}")

    async def _trades_flow(self, since: float, n: int = 20, timeout_s: float = 10) -> bool:
        """Wait until container A has counted ``n`` more good trade frames than ``since``."""
        async def flowing() -> bool:
            m = await self.metrics()
            return m.get("hourmm_binance_frames_total{trade}", 0.0) >= since + n
        return bool(await self.wait_for(flowing, timeout_s))

    async def f_binance_malformed(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        n = 3
        eid = await self.last_event_id()
        before = await self.metrics()
        b0 = sum(bad_frames(before).values())
        g0 = before.get("hourmm_binance_frames_total{trade}", 0.0)
        if not await self._inject(rec, "replay", {"malformed": n}):
            return

        async def counted() -> int | None:
            m = await self.metrics()
            return self.now() if m and sum(bad_frames(m).values()) >= b0 + n else None
        at = await self.wait_for(counted, kind.deadline_s + 5)
        self._react(rec, at)
        await self._trades_flow(g0)
        after = await self.metrics()
        g1 = after.get("hourmm_binance_frames_total{trade}", 0.0)
        degraded = [e for e in await self.events(eid, "mode") if e["payload"].get("new") in ("REDUCE_ONLY", "HALT")]
        rec.observed = (f"{sum(bad_frames(after).values()) - b0:g} bad frame(s) counted, "
                        f"{g1 - g0:g} good trades meanwhile, {len(degraded)} mode change(s)")
        if at is None:
            rec.problems.append(f"fewer than {n} bad frames counted by container A")
        if g1 < g0 + 20:
            rec.problems.append("fewer than 20 good trades in 10 s after the malformed frames: the feed stopped")
        if degraded:
            rec.problems.append("the trader degraded on malformed frames")
        rec.check_deadline("counted")

    async def f_binance_out_of_range(self, rec: FaultRecord) -> None:
        kind = FAULTS[rec.fault]
        before = await self.metrics()
        bad0 = bad_frames(before)
        g0 = before.get("hourmm_binance_frames_total{trade}", 0.0)
        snap0 = await self._get(self.orch.urls["pricer"] + "/snapshot/latest") or {}
        if not await self._inject(rec, "replay", {"out_of_range": 2}):
            return

        async def counted() -> int | None:
            b = bad_frames(await self.metrics())
            ok = all(b.get(k, 0) >= bad0.get(k, 0) + 1 for k in ("price_absurd", "bad_id"))
            return self.now() if ok else None
        at = await self.wait_for(counted, kind.deadline_s + 5)
        self._react(rec, at)
        flows = await self._trades_flow(g0)
        snap1 = await self._get(self.orch.urls["pricer"] + "/snapshot/latest") or {}
        p0, p1 = _num(snap0.get("last_price")), _num(snap1.get("last_price"))
        s1 = _num(snap1.get("sigma"))
        rec.details.update(last_price_before=p0, last_price_after=p1, sigma_after=s1)
        rec.observed = (f"price_absurd + bad_id counted; last price {p0} -> {p1}, sigma {s1:.2e}"
                        if s1 is not None else "no sigma after")
        if at is None:
            rec.problems.append("container A did not count both frames as refused (price_absurd, bad_id)")
        if not flows:
            rec.problems.append("fewer than 20 good trades in 10 s after the bogus id: the feed froze")
        if p0 is None or p1 is None or abs(p1 / p0 - 1.0) > 0.02:
            rec.problems.append(f"last price moved {p0} -> {p1}")
        if s1 is None or s1 > 0.01:
            rec.problems.append(f"sigma {s1} after the bogus prints (a 1e308 print would make it ~255)")
        rec.check_deadline("refused")

    # ------------------------------------------------------------ verdict
    def judge(self, summary: dict[str, Any], run: Any) -> None:
        """Add the chaos verdict to ``summary`` (called by report.finalize after summarize)."""
        judge_chaos(self, summary, run)


def _derive_secrets(clob_url: str, key: str) -> list[str]:
    """The wallet key and the API secret + passphrase the venue derives for it (blocking; memory only)."""
    from py_clob_client_v2.client import ClobClient  # noqa: PLC0415 - heavy, only when a chaos run starts

    client = ClobClient(clob_url, chain_id=137, key=key, signature_type=1)
    creds = client.derive_api_key()
    return [key, creds.api_secret, creds.api_passphrase]
