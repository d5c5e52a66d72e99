"""Tick-to-wire hop breakdown on loopback, with the real simulators and both containers.

Run: ``python3 -m pytest benchmarks/test_bench_hops.py --benchmark-only`` (about 3 minutes;
``HOPS_JUMPS=N`` sets the jumps per mode, default 110; ``HOPS_GC=off`` runs every process with
CPython's default GC instead of what the runners do after start-up (hourmm_core.gc_tuning.settle_gc);
``HOPS_NICE=-10`` runs the three processes at that scheduling priority (root / CAP_SYS_NICE; in the
containers: ``cap_add: [SYS_NICE]``), to tell our own latency from other load on a shared box).

Where the tail comes from (``extra_info``): every garbage collection of each process is stamped
(``gc.callbacks``; ``gc_<process>_gen<g>``: count, p50 / max ms while the path ran), and per mode
``frame->cancel|order worst`` lists the three slowest jumps with their hops (>= 0.5 ms), the
trader's own CPU time and run-queue wait (``/proc/thread-self/schedstat``) from receipt to the decision,
whether the cycle lock was held at receipt, and the collections that overlapped them;
``frame->cancel|order jumps with a <process> gc`` counts jumps a collection landed in, ``... with a
trader sweep|heartbeat|journal`` jumps that overlapped that background work of the trader.

Chain (three processes like production: container A = Binance replay + PricerService,
container B = the Trader in this process, the venue = the Polymarket simulator; clock at
1x; perf_counter_ns stamps (CLOCK_MONOTONIC, shared by the processes) from
benchmark-only wrappers, see benchmarks/hops_procs.py; nothing in the product is changed
to measure):

  frame        Binance replay frame handed to container A (``SnapshotBuilder.on_message`` entry)
  priced       the compiled core repriced (``on_message`` returned)
  pushed       snapshot published (``SnapshotServer.publish``)
  recv         container B holds it (``SnapshotClient.ingest`` of that seq, push stream)
  decided      ``DecisionCore.decide`` returned the cancels/places for it
  cancel_sent  the cancel request's bytes left our process (client side: right after the
               socket write of ``DELETE /order(s)``)
  cancel       the cancel reached the venue (sim ``DELETE /order(s)`` handler entry)
  order_sent   a new signed order's bytes left our process (``POST /order(s)`` written)
  order        it reached the venue (sim ``POST /order(s)`` handler entry)

Diagnostics in the same samples: ``recv->decide_start`` (the snapshot waiting for the decision
pass: loop wake-up, roll/resync checks, books), ``decide`` (``DecisionCore.decide`` itself) and
``decided->*_sent cpu``: the trader thread's own CPU time (``time.thread_time_ns``) from the
decision to the request written, i.e. our work without the time the venue or another process held
the core (on 2 shared cores the wall-clock ``*_sent`` stamps include such preemption).

(The client stamp is taken after ``transport.write`` returns. On an oversubscribed box the write
can wake the venue and our process lose the CPU right there, so ``*_sent`` can come after the
venue's receipt: ``*_sent->cancel|order`` is then negative. On an idle box it is the loopback +
venue parsing time.)

The Binance path is synthetic: a seeded BTC-like random walk plus a 0.2 % jump every
second after a 5 s quiet start, alternating up/down across the hour's open (real data has no jumps at known
instants, and a jump is what forces quotes to be cancelled and replaced: the sniper race).
Each jump is one sample. The two modes alternate by pairs of jumps (one up, one down) in the same run (so they
share the machine's load): ``rate`` = only the fixed SNAPSHOT_PUBLISH_HZ=50 publish,
``push`` = plus publish on significant change (push delta 0.002).

Every jump is accounted for in ``extra_info`` (per mode): ``reacted`` (a decision with
actions within 100 ms of the snapshot), ``no_quotes`` (nothing resting when it arrived),
``not_endangered`` (quotes resting, none on the wrong side of the new fair value: no cancel
is needed), ``missed`` (a quote was on the wrong side and no decision acted within 100 ms:
a real miss), ``no_snapshot`` (container B never received a snapshot after the jump before
the next one). Per hop p50/p99 (ms) and the sample count. ``reacted_later``: the first pass
after the snapshot did nothing and a later one acted (the new quote waited for the book, e.g.
post-only against a book that had not moved yet); ``frame->* first pass`` leave those out.
``fast_path``: reactions by the trader's cancel fast path (a pass was in flight). No timed asserts: everything
shares 2 busy cores, so absolute figures are taken under whatever load there is.
"""
from __future__ import annotations

import asyncio
import bisect
import dataclasses
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REACT_MS = 100.0     # a decision later than this after the snapshot is not a reaction to it
EVERY_MS = 1000      # one jump per second (alternate modes)
PUSH_DELTA = 0.002
HOPS = ("frame->priced", "priced->pushed", "pushed->recv", "recv->decided", "recv->decide_start", "decide",
        "decided->cancel_sent", "decided->cancel_sent cpu", "cancel_sent->cancel", "decided->cancel",
        "decided->order_sent", "decided->order_sent cpu", "order_sent->order", "decided->order",
        "frame->cancel_sent", "frame->cancel", "frame->order_sent", "frame->order",
        "frame->cancel first pass", "frame->order first pass",
        "frame->cancel locked at recv", "frame->order locked at recv",
        "decided->cancel_sent runqueue", "decided->order_sent runqueue", "frame->endangered off book")
# the second of two close half-jumps (test_close_double_moves): its own rows, from its own frame
SECOND_HOPS = ("2nd: frame->pushed", "2nd: pushed->recv", "2nd: frame->cancel_sent", "2nd: frame->cancel",
               "2nd: frame->order_sent", "2nd: frame->order")
# the venue's own time per request, by mode (venue_post_ms)
VENUE_HOPS = ("venue POST entry->done", "venue DELETE entry->done")
SECOND_WITHIN_MS = 100.0   # a detected move this close after the previous one is its second half
_WIRE_KINDS = ((b"DELETE /order", "cancel"), (b"POST /order", "order"))


async def _child(args: list[str]) -> tuple[asyncio.subprocess.Process, dict]:
    proc = await asyncio.create_subprocess_exec(sys.executable, str(HERE / "hops_procs.py"), *args,
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)      # type: ignore[union-attr]
    if not line:
        raise RuntimeError(f"hops child {args[0]} did not start")
    return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.stdin.close()                                              # type: ignore[union-attr]
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()


def _stamp_wire(ex: Any, sent: list[tuple[int, str]]) -> Any:
    """Record (perf_counter_ns, "cancel"|"order") right after the request bytes are written.

    The executor's wire exposes ``on_sent(method, path)`` (called after the socket write); an
    older aiohttp-based wire is stamped by wrapping aiohttp's StreamWriter writes. Returns an
    undo callable."""
    wire = getattr(ex, "_wire", None)
    if wire is not None and hasattr(wire, "on_sent"):
        def on_sent(method: str, path: str) -> None:
            t = time.perf_counter_ns()
            sent.append((t, "cancel" if method == "DELETE" else "order", time.thread_time_ns(), _run_delay_ns()))
        prev = wire.on_sent
        wire.on_sent = on_sent
        return lambda: setattr(wire, "on_sent", prev)
    from aiohttp import http_writer

    W = http_writer.StreamWriter
    ow, owl = W._write, W._writelines

    def kind(chunk: Any) -> str | None:
        head = bytes(chunk[:16])
        return next((k for p, k in _WIRE_KINDS if head.startswith(p)), None)

    def _write(self, chunk):
        ow(self, chunk)
        k = kind(chunk)
        if k:
            sent.append((time.perf_counter_ns(), k, None, None))

    def _writelines(self, chunks):
        chunks = list(chunks)
        owl(self, chunks)
        k = kind(chunks[0]) if chunks else None
        if k:
            sent.append((time.perf_counter_ns(), k, None, None))
    W._write, W._writelines = _write, _writelines

    def undo() -> None:
        W._write, W._writelines = ow, owl
    return undo


async def _run(jumps_per_mode: int, tmp: Any, loop_name: str = "asyncio", fast_ab: bool = False,
               ack_delay_ms: int = 0, double_ms: int = 0, inflight_ab: bool = False,
               check_ab: bool = False) -> dict[str, Any]:
    """``fast_ab``: publish on change in both modes, and the trader's cancel fast path only in
    mode 1 (off in mode 0): an A/B of the fast path in one run; ``inflight_ab``: publish on change
    in both modes, the trader's cancel before the ack (``Trader.cancel_in_flight``, by the signed
    order's hash) only in mode 1 (mode 0 = as before it); ``ack_delay_ms``: the venue holds
    every POST that long (a slow round trip, so jumps land inside passes in flight);
    ``double_ms``: publish on change in both modes, mode 1's jumps come as two half-jumps this
    many ms apart (modes ``single`` / ``double``); ``check_ab``: publish on change in both modes, the
    venue checks each POSTed order's signature as before session 10 in mode 0 (eth-account's generic
    EIP-712 encoder and recovery) and as now in mode 1 (clob_orders: the order's words concatenated,
    libsecp256k1 directly)."""
    from eth_account import Account

    from hourmm_core.clock import HOUR_MS, ScaledClock
    from hourmm_core.config import Credentials, TraderConfig
    from hourmm_core.gc_tuning import settle_gc
    from hourmm_core.journal import Journal
    from hourmm_core.polymarket.trader_executor import TraderExecutor
    from hourmm_core.trading.order_manager import TokenBucket
    from hourmm_core.trading.trader import Trader

    seconds = 5.0 + 2 * jumps_per_mode * EVERY_MS / 1000.0 + 0.5
    H = 1_767_225_600_000 + 3 * HOUR_MS
    start = H + 10 * 60_000
    wall0 = time.time_ns() // 1_000_000
    clock = ScaledClock(1.0, start, wall0)
    common = ["--start-ms", str(start), "--wall0", str(wall0), "--seconds", str(seconds + 20)]
    vout, pout = tmp / "venue.json", tmp / "pricer.json"
    gc_mode = os.environ.get("HOPS_GC", "settle")
    if gc_mode not in ("settle", "off"):
        raise ValueError(f"HOPS_GC={gc_mode!r}: expected settle or off")
    nice = int(os.environ.get("HOPS_NICE", "0"))
    common += ["--gc", gc_mode, "--nice", str(nice)]
    nice0 = os.getpriority(os.PRIO_PROCESS, 0)
    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)   # the trader's (this) thread; restored at the end
    venue, vinfo = await _child(["venue", *common, "--sim-start", str(H), "--out", str(vout),
                                 "--ack-delay-ms", str(ack_delay_ms), "--every-ms", str(EVERY_MS),
                                 *(["--check-ab"] if check_ab else [])])
    pricer = None
    try:
        pricer, pinfo = await _child(["pricer", *common, "--push-delta", str(PUSH_DELTA),
                                      "--every-ms", str(EVERY_MS), "--out", str(pout),
                                      "--double-ms", str(double_ms),
                                      *(["--always-push"] if fast_ab or double_ms or inflight_ab or check_ab else [])])
        ev: dict[str, list] = {"recv": [], "decided": [], "sent": []}
        acct = Account.create()
        key = acct.key.hex()
        creds = Credentials(key if key.startswith("0x") else "0x" + key, acct.address, 1)
        u = vinfo["urls"]
        env = {"GAMMA_URL": u["gamma"], "CLOB_URL": u["clob"], "PM_WS_URL": u["ws"],
               "SNAPSHOT_URL": pinfo["url"] + "/snapshot/latest",
               "SNAPSHOT_STREAM_URL": pinfo["url"].replace("http", "ws") + "/snapshot/stream",
               "SQLITE_PATH": str(tmp / "hops.db")}
        cfg = dataclasses.replace(TraderConfig.from_env(env), control_port=0)
        ex = TraderExecutor.from_config(cfg.clob_url, cfg.chain_id, creds)
        await ex.start()
        undo = _stamp_wire(ex.ex, ev["sent"])
        tr = Trader(cfg, clock, creds, ex, journal=Journal(cfg.sqlite_path, synchronous="NORMAL"),
                    housekeeping_s=1.0, discovery_every_s=0.5)
        tr.core.om.bucket = TokenBucket(1000.0, 1000.0)
        orig_ingest = tr.snapshots.ingest

        async def ingest(payload):
            t, cpu, rq = time.perf_counter_ns(), time.thread_time_ns(), _run_delay_ns()
            busy = tr._executing or tr._fast is not None     # a pass / fast cancel awaiting its requests
            locked = tr._cycle_lock.locked()
            snap = await orig_ingest(payload)
            if snap is not None:
                ev["recv"].append((t, snap.seq, busy, locked, cpu, rq))
            return snap
        tr.snapshots.ingest = ingest
        orig_decide = tr.core.decide
        om = tr.core.om
        if inflight_ab:
            sys.path.insert(0, str(HERE))
            from hops_procs import jump_index, mode_of

        # the open orders decide() lists itself (OrderManager.aggregates, once per pass): the bench
        # reads what rested from them instead of scanning every order (~200 final ones kept) on the path
        opened: list = [()]
        orig_aggregates = om.aggregates

        def aggregates():
            r = orig_aggregates()
            opened[0] = r[0]
            return r
        om.aggregates = aggregates
        from hourmm_core.trading.order_manager import OrderState
        SENT, CANCELLING = OrderState.SENT, OrderState.CANCELLING

        def decide(now, fair, *a, **kw):
            if inflight_ab:   # the A/B switch, by the jump interval this decision falls in
                tr.cancel_in_flight = mode_of(jump_index(now, start + 300, EVERY_MS)) == 1
            cpu_in, rq_in = time.thread_time_ns(), _run_delay_ns()
            t_in = time.perf_counter_ns()
            d = orig_decide(now, fair, *a, **kw)
            t_out, cpu_out = time.perf_counter_ns(), time.thread_time_ns()
            # what rested when this decision began: (token, side, price, id or hash) of working orders
            # with an id, or being posted (SENT: about to rest, a taker's target as soon as it does);
            # the states are those decide() saw (nothing changes them before the actions run).
            # A tuple of tuples of numbers and strings: the collector untracks it, so the bench's own
            # stamps do not grow the trader's GC work over the run
            resting = tuple((o.token, o.side, o.price, o.order_id or o.local_id) for o in opened[0]
                            if (o.order_id or o.state is SENT) and o.state is not CANCELLING)
            n_c = sum(1 for x in d.actions if x.kind == "cancel")
            n_p = len(d.actions) - n_c
            if not kw.get("places", True) and getattr(tr, "cancel_in_flight", False) and d.plan is not None:
                # the fast path also cancels, by their hashes, the orders being posted (race.py)
                n_c += sum(1 for o in d.plan.unacked if om.cancellable_before_ack(o))
            # places=False: the trader's cancel fast path (a pass was in flight); its replacement
            # orders come from the next full pass
            ev["decided"].append((t_out, fair, resting, n_c, n_p, kw.get("places", True), t_in, cpu_out,
                                  cpu_in, rq_in))
            return d
        tr.core.decide = decide
        if fast_ab:
            sys.path.insert(0, str(HERE))
            from hops_procs import jump_index, mode_of

            orig_fast = tr.fast_cancel

            async def fast_cancel():
                snap = tr.snapshots.latest
                if snap is None or mode_of(jump_index(snap.ts_ms, start + 300, EVERY_MS)) == 0:
                    return []                     # mode 0 of the A/B: the fast path off
                return await orig_fast()
            tr.fast_cancel = fast_cancel
        sys.path.insert(0, str(HERE))
        from hops_procs import gc_recorder
        ev["gc_trader"] = []
        undo_gc = gc_recorder(ev["gc_trader"])
        undo_bg = _stamp_background(tr, ev.setdefault("bg", []))
        trader_stats: dict[str, Any] = {}
        thresholds = gc.get_threshold()
        try:
            await tr.start()
            if gc_mode == "settle":
                settle_gc()    # what runners/polymarket_trader.py does once the trader is started
            ev["started_ns"] = time.perf_counter_ns()   # all three processes started (and settled)
            tracked0 = len(gc.get_objects())
            await asyncio.sleep(seconds + 3.0)
        finally:
            undo_gc()
            undo_bg()
            gc.collect()
            # objects the collector scans (not frozen), after start-up and at the end of the path
            trader_stats["gc_tracked_start_end"] = (tracked0, len(gc.get_objects()))
            gc.unfreeze()      # this is the pytest process: leave its GC as it was
            gc.set_threshold(*thresholds)
            await tr.stop()
            undo()
        trader_stats.update({"fast_cancels": tr.fast_cancels, "rechecks_dropped": getattr(tr, "rechecks_dropped", None),
                             "early_cancels": getattr(tr, "early_cancels", None),
                             "recancels": getattr(tr, "recancels", None)})
    finally:
        if pricer is not None:
            await _stop(pricer)
        await _stop(venue)
    if nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice0)
    ev.update(json.loads(vout.read_text()))
    ev.update(json.loads(pout.read_text()))
    if os.environ.get("HOPS_DUMP"):
        Path(os.environ["HOPS_DUMP"]).write_text(json.dumps(ev))
    names = ("fast_off", "fast_on") if fast_ab else ("inflight_off", "inflight_on") if inflight_ab else \
        ("check_before", "check_now") if check_ab else \
        ("single", "double") if double_ms else ("rate", "push")
    res = _hops(ev, names, double=double_ms > 0)
    res.update(venue_post_ms(ev, names))
    res["event_loop"] = loop_name
    res["gc"] = gc_mode
    res["nice"] = nice
    res.update(gc_stats(ev, ev.get("started_ns")))
    res["pricer_push"] = ev.get("push_stats", {})
    res["trader"] = trader_stats     # whole run: cancels sent by the fast path, plans stopped by the last look
    return res


def _stamp_background(tr: Any, out: list) -> Any:
    """Stamp (start_ns, end_ns, kind) of the trader's background work that can delay a reaction:
    the stray sweep (holds the cycle lock over an open-orders GET), the heartbeat (a request in
    the executor's thread pool: Python in another thread, i.e. GIL hand-offs with the loop) and
    the journal writer thread's batches (SQLite + the GIL). Returns an undo callable."""
    undo = []

    def wrap(obj: Any, name: str, kind: str) -> None:
        f = getattr(obj, name, None)
        if f is None:
            return
        if asyncio.iscoroutinefunction(f):
            async def w(*a, **kw):
                t = time.perf_counter_ns()
                try:
                    return await f(*a, **kw)
                finally:
                    out.append((t, time.perf_counter_ns(), kind))
        else:
            def w(*a, **kw):
                t = time.perf_counter_ns()
                try:
                    return f(*a, **kw)
                finally:
                    out.append((t, time.perf_counter_ns(), kind))
        setattr(obj, name, w)
        undo.append(lambda: delattr(obj, name) if name in vars(obj) else None)
    wrap(tr, "sweep_strays", "sweep")
    wrap(tr.executor, "heartbeat", "heartbeat")
    wrap(tr.journal, "_write", "journal")
    return lambda: [u() for u in undo]


_SCHEDSTAT: dict[int, int] = {}   # thread id -> its open /proc/thread-self/schedstat


def _run_delay_ns() -> int | None:
    """This thread's time spent runnable but waiting for a CPU (ns, /proc/thread-self/schedstat's
    second field; None where the kernel has no schedstat): tells a preempted trader from a busy one.
    The file stays open per thread (a pread is ~6 us; opening it each time was ~50 us under load,
    on the measured path)."""
    tid = threading.get_ident()
    try:
        fd = _SCHEDSTAT.get(tid)
        if fd is None:
            fd = _SCHEDSTAT[tid] = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        return int(os.pread(fd, 128, 0).split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _first(xs, lo, hi, key=lambda x: x):
    for x in xs:
        v = key(x)
        if lo <= v < hi:
            return x
    return None


def endangered(resting: list[tuple[int, int, float]], fair_up: float | None) -> int:
    """Resting quotes on the wrong side of the new fair value (a taker gains by hitting them):
    a buy priced at or above the token's fair value, a sell at or below it."""

    if fair_up is None:
        return 0
    return len(endangered_ids(resting, fair_up))


def endangered_ids(resting: list[tuple], fair_up: float | None) -> list[str | None]:
    """The venue ids (or signed hashes, for an order being posted) of the quotes :func:`endangered`
    counts (None for one posted without a known hash)."""
    from hourmm_core.trading.types import BUY, UP

    if fair_up is None:
        return []
    out = []
    for tok, side, px, *oid in resting:
        f = fair_up if tok == UP else 1.0 - fair_up
        if (px >= f) if side == BUY else (px <= f):
            out.append(oid[0] if oid else None)
    return out


def book_exits(book: list[tuple[int, str, str, str]]) -> dict[str, tuple[int, int | None, str]]:
    """From the venue's order events (hops_procs.venue): order id -> (placed on the book, left it
    or None, how: "cancelled" / "matched"), perf_counter_ns. An order that never rested (rejected,
    or matched in full on placement) is absent."""
    out: dict[str, list] = {}
    for t, oid, typ, status in book:
        if oid is None:
            continue
        cur = out.get(oid)
        if typ == "PLACEMENT":
            if cur is None and status == "LIVE":
                out[oid] = [t, None, ""]
        elif cur is not None and cur[1] is None and (typ == "CANCELLATION" or status in ("MATCHED", "CANCELED")):
            cur[1], cur[2] = t, "matched" if status == "MATCHED" else "cancelled"
    return {k: tuple(v) for k, v in out.items()}


def _pcts(v: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(v, 50)), 3), round(float(np.percentile(v, 99)), 3)


def _hops(ev: dict[str, list], names: tuple[str, str] = ("rate", "push"), double: bool = False) -> dict[str, Any]:
    """One sample per price jump: follow it through each hop (first event after the previous one).

    ``double``: moves of half a jump count too; the second of two moves less than SECOND_WITHIN_MS
    apart is not a jump of its own but the second half of the one before (its rows: SECOND_HOPS)."""
    frames = [f for f in ev["frame"] if f[2] is not None]
    moves = [f for prev, f in zip(frames, frames[1:]) if abs(f[2] / prev[2] - 1.0) > (0.0007 if double else 0.0015)]
    jumps: list = []
    second: dict[int, Any] = {}
    for f in moves:
        if double and jumps and (f[0] - jumps[-1][0]) * 1e-6 < SECOND_WITHIN_MS and len(jumps) - 1 not in second:
            second[len(jumps) - 1] = f
        else:
            jumps.append(f)
    sent = {k: [(t, cpu, rq) for t, kk, cpu, *rq in ev["sent"] if kk == k] for k in ("cancel", "order")}
    exits = book_exits(ev.get("book", []))
    out: dict[str, Any] = {"jumps": len(jumps)}
    ms = 1e-6
    far = 1 << 62
    for mode_i, mode in enumerate(names):
        samples: dict[str, list[float]] = {h: [] for h in HOPS + SECOND_HOPS}
        count = {"jumps": 0, "reacted": 0, "no_quotes": 0, "not_endangered": 0, "missed": 0, "no_snapshot": 0,
                 "reacted_without_cancel": 0, "endangered_total": 0, "fast_path": 0,
                 "reacted_later": 0, "endangered_matched": 0, "endangered_on_book_at_next_jump": 0,
                 "endangered_never_rested": 0}
        rows: list[dict[str, Any]] = []
        if double:
            count.update({"2nd_moves": 0, "2nd_no_snapshot": 0, "2nd_endangered": 0, "2nd_not_endangered": 0,
                          "2nd_cancelled": 0,
                          "2nd_fast_path": 0, "2nd_placed": 0, "2nd_in_flight": 0})
        for k, (t0, t1, _px, jm) in enumerate(jumps):
            if jm != mode_i:    # the pricer alternates the mode by pairs of jumps (hops_procs.mode_of)
                continue
            count["jumps"] += 1
            nxt = jumps[k + 1][0] if k + 1 < len(jumps) else far
            if k in second:     # the second half-jump: followed on its own, whatever the first's outcome
                _second(ev, second[k], nxt, sent, samples, count)
            pub = _first(ev["pushed"], t1, nxt, key=lambda x: x[0])
            rec = None if pub is None else next(
                (r for r in ev["recv"] if pub[0] <= r[0] < nxt and r[1] >= pub[1]), None)
            if rec is None:
                count["no_snapshot"] += 1
                continue
            lim = min(nxt, rec[0] + int(REACT_MS * 1e6))
            first = _first(ev["decided"], rec[0], lim, key=lambda x: x[0])     # the pass that saw it
            dec = _first(ev["decided"], rec[0], lim, key=lambda x: x[0] if x[3] + x[4] else -1)
            seen = first if first is not None else dec
            ids = endangered_ids(seen[2], seen[1]) if seen is not None else []
            n_end = len(ids)
            count["endangered_total"] += n_end
            if ids:
                # venue side: how long the quotes this jump endangered stayed on the book after it
                # (from the jump's frame, or from their placement if they reached the book later):
                # the honest figure when an early cancel missed (the re-cancel took them off)
                off = []
                for oid in ids:
                    e = exits.get(oid) if oid else None
                    if e is None:
                        count["endangered_never_rested"] += 1
                    elif e[1] is None or e[1] >= nxt:
                        count["endangered_on_book_at_next_jump"] += 1
                    else:
                        count["endangered_matched"] += e[2] == "matched"
                        off.append((e[1] - max(t0, e[0])) * 1e-6)
                if off:
                    samples["frame->endangered off book"].append(max(off))
            if dec is None:
                if seen is None or not seen[2]:
                    count["no_quotes"] += 1
                elif n_end == 0:
                    count["not_endangered"] += 1
                else:
                    count["missed"] += 1
                continue
            count["reacted"] += 1
            td = dec[0]
            # this decision's own requests: before the next decision (cycles are serialised, so the
            # next decide() runs only after this one's cancels and places were sent)
            end = min(nxt, next((d[0] for d in ev["decided"] if d[0] > td), far))
            # a fast-path decision (cancels only) is followed by the full pass that places: the
            # new orders are that pass's (before the decision after it)
            full = td if dec[5] else next((d[0] for d in ev["decided"] if d[0] > td and d[5]), far)
            end_o = min(nxt, next((d[0] for d in ev["decided"] if d[0] > full), far))
            if not dec[5]:
                count["fast_path"] += 1
            prompt = dec is first   # the first pass that saw the snapshot acted (else a later one did:
            if not prompt:          # e.g. the new quote waited for the book to move; not our latency)
                count["reacted_later"] += 1
            # venue receipts are matched from the decision, not from the client stamp: on a busy box
            # the write itself can hand the CPU to the venue, which then stamps its receipt before our
            # process runs again to stamp "sent" (so sent->venue can even be negative under load)
            cs_, os__ = (_first(sent[k], td, e, key=lambda x: x[0]) for k, e in (("cancel", end), ("order", end_o)))
            cs, os_ = (None if x is None else x[0] for x in (cs_, os__))
            cv = _first(ev["cancel"], td, end)
            ov = _first(ev["order"], td, end_o)
            # our own CPU time from the decision to the request written (thread CPU clock: what the
            # trader itself spent, without the time another process held the core)
            for name, x in (("decided->cancel_sent cpu", cs_), ("decided->order_sent cpu", os__)):
                if x is not None and x[1] is not None and x[0] > td:
                    samples[name].append((x[1] - dec[7]) * ms)
                    # time runnable but waiting for a core (the rest of the wall time not spent on
                    # our CPU is waiting for a reply, the GIL or the loop)
                    if x[2] and x[2][0] is not None and dec[9] is not None:   # (from the decision's start)
                        samples[name.replace(" cpu", " runqueue")].append((x[2][0] - dec[9]) * ms)
            if cs is None and cv is None:
                count["reacted_without_cancel"] += 1
            samples["frame->priced"].append((t1 - t0) * ms)
            samples["priced->pushed"].append((pub[0] - t1) * ms)
            samples["pushed->recv"].append((rec[0] - pub[0]) * ms)
            samples["recv->decided"].append((td - rec[0]) * ms)
            samples["recv->decide_start"].append((dec[6] - rec[0]) * ms)
            samples["decide"].append((td - dec[6]) * ms)
            for name, a, b in (("decided->cancel_sent", td, cs), ("cancel_sent->cancel", cs, cv),
                               ("decided->cancel", td, cv), ("decided->order_sent", td, os_),
                               ("order_sent->order", os_, ov), ("decided->order", td, ov),
                               ("frame->cancel_sent", t0, cs), ("frame->cancel", t0, cv),
                               ("frame->order_sent", t0, os_), ("frame->order", t0, ov)):
                if a is not None and b is not None:
                    samples[name].append((b - a) * ms)
            for name, b in (("frame->cancel first pass", cv), ("frame->order first pass", ov)):
                if prompt and b is not None:
                    samples[name].append((b - t0) * ms)
            for name, b in (("frame->cancel locked at recv", cv), ("frame->order locked at recv", ov)):
                if rec[3] and b is not None:   # a pass (or the stray sweep) held the cycle lock at receipt
                    samples[name].append((b - t0) * ms)
            rows.append({"t0": t0, "cv": cv, "ov": ov, "hops": {
                "frame->priced": (t1 - t0) * ms, "priced->pushed": (pub[0] - t1) * ms,
                "pushed->recv": (rec[0] - pub[0]) * ms, "recv->decide_start": (dec[6] - rec[0]) * ms,
                "decide": (td - dec[6]) * ms,
                "recv->decide_start cpu": (dec[8] - rec[4]) * ms,
                "recv->decide_start runqueue": None if rec[5] is None or dec[9] is None else (dec[9] - rec[5]) * ms,
                "decided->cancel_sent cpu": None if cs_ is None or cs_[1] is None else (cs_[1] - dec[7]) * ms,
                "decided->cancel_sent runqueue": None if cs_ is None or not cs_[2] or cs_[2][0] is None
                or dec[9] is None else (cs_[2][0] - dec[9]) * ms,
                "locked at recv": float(rec[3]),
                "decided->cancel_sent": None if cs is None else (cs - td) * ms,
                "cancel_sent->cancel": None if cs is None or cv is None else (cv - cs) * ms,
                "decided->order_sent": None if os_ is None else (os_ - td) * ms,
                "order_sent->order": None if os_ is None or ov is None else (ov - os_) * ms,
                "frame->cancel": None if cv is None else (cv - t0) * ms,
                "frame->order": None if ov is None else (ov - t0) * ms}})
        out.update(_tail(ev, rows, mode))
        for c, n in count.items():
            out[f"{mode}_{c}"] = n
        for h, v in samples.items():
            _put_pcts(out, f"{mode}_{h}", v)
    return out


def _put_pcts(out: dict[str, Any], key: str, v: list[float]) -> None:
    """``<key>_p50_ms``, ``<key>_p99_ms`` and ``<key>_n`` of the samples ``v`` (none if empty)."""
    if v:
        out[f"{key}_p50_ms"], out[f"{key}_p99_ms"] = _pcts(v)
        out[f"{key}_n"] = len(v)


def venue_post_ms(ev: dict[str, list], names: tuple[str, str]) -> dict[str, Any]:
    """The venue's time per POST (handler entered -> its first order placed on the book, from the
    engine's events) and per cancel (DELETE entered -> first order cancelled), by the mode of the
    jump interval the request came in (the simulator handles one request at a time: a cancel that
    arrives meanwhile waits for it)."""
    frames = [f for f in ev["frame"] if f[2] is not None]
    marks = [(f[0], f[3]) for prev, f in zip(frames, frames[1:]) if abs(f[2] / prev[2] - 1.0) > 0.0015]
    starts = [t for t, _ in marks]
    out: dict[str, Any] = {}
    for kind, typ in (("POST", "PLACEMENT"), ("DELETE", "CANCELLATION")):
        done = sorted(t for t, _oid, ty, _st in ev.get("book", []) if ty == typ)
        per: dict[int, list[float]] = {0: [], 1: []}
        for t in ev["order" if kind == "POST" else "cancel"]:
            i = bisect.bisect_right(starts, t) - 1
            j = bisect.bisect_left(done, t)
            if i < 0 or j >= len(done) or done[j] - t > 100_000_000:
                continue
            per[marks[i][1]].append((done[j] - t) * 1e-6)
        for m, v in per.items():
            _put_pcts(out, f"{names[m]}_venue {kind} entry->done", v)
    return out


GC_PROCS = ("trader", "venue", "pricer")


def _tail(ev: dict[str, list], rows: list[dict[str, Any]], mode: str, worst: int = 3) -> dict[str, Any]:
    """Where the tail comes from: per process, garbage collections overlapping each jump's window
    (frame in -> its cancel / new order at the venue): how many jumps had one, and their share of
    the slowest jumps; the ``worst`` slowest jumps with their hops and the GCs inside them."""
    ms = 1e-6
    gcs = {p: ev.get(f"gc_{p}", []) for p in GC_PROCS}
    out: dict[str, Any] = {}

    bg = ev.get("bg", [])

    def inside(t0: int, t1: int) -> dict[str, list]:
        d = {p: [(round((b - a) * ms, 2), g) for a, b, g in gcs[p] if a < t1 and b > t0] for p in GC_PROCS}
        for a, b, k in bg:     # the trader's background work overlapping (ms, kind)
            if a < t1 and b > t0:
                d.setdefault("trader background", []).append((round((b - a) * ms, 2), k))
        return d
    for kind, key in (("cancel", "cv"), ("order", "ov")):
        done = [r for r in rows if r[key] is not None]
        if not done:
            continue
        done.sort(key=lambda r: r[key] - r["t0"])
        for p in GC_PROCS:
            out[f"{mode}_frame->{kind} jumps with a {p} gc"] = sum(1 for r in done if inside(r["t0"], r[key])[p])
        for k in ("sweep", "heartbeat", "journal"):
            out[f"{mode}_frame->{kind} jumps with a trader {k}"] = sum(
                1 for r in done if any(kk == k for _, kk in inside(r["t0"], r[key]).get("trader background", ())))
        out[f"{mode}_frame->{kind} worst"] = [
            {"ms": round((r[key] - r["t0"]) * ms, 2),
             "hops": {h: round(v, 2) for h, v in r["hops"].items() if v is not None and abs(v) >= 0.5},
             "gc": {p: g for p, g in inside(r["t0"], r[key]).items() if g}}
            for r in done[-worst:][::-1]]
    return out


def gc_stats(ev: dict[str, list], t0: int | None) -> dict[str, Any]:
    """Per process: collections by generation and the slowest one (ms) once everything was started
    (``t0``; not the start-up ones, nor settle_gc's own full collection)."""
    out: dict[str, Any] = {}
    t0 = t0 or 0
    for p in GC_PROCS:
        g = [x for x in ev.get(f"gc_{p}", []) if x[0] >= t0]
        for gen in (0, 1, 2):
            d = [(b - a) * 1e-6 for a, b, gg in g if gg == gen]
            if d:
                out[f"gc_{p}_gen{gen}"] = f"{len(d)} x, p50 {np.percentile(d, 50):.2f} / max {max(d):.2f} ms"
    return out


def _second(ev: dict[str, list], f2: Any, nxt: int, sent: dict[str, list], samples: dict[str, list[float]],
            count: dict[str, int]) -> None:
    """The second half-jump ``f2`` (frame in, priced, price, mode), until the next jump ``nxt``:
    when its snapshot was pushed and received, and, when it left resting quotes on the wrong side
    of the fair value (``2nd_endangered``: how many, at the first decision on it), the first cancel /
    new order sent by a decision on it (any decision after it was received sees it: the trader
    decides on the latest snapshot); ``2nd_not_endangered``: moves that left none.
    ``2nd_in_flight``: a pass (or fast cancel) was awaiting its requests when it was received;
    ``2nd_fast_path``: its cancel came from the cancel fast path."""
    ms = 1e-6
    t0, t1 = f2[0], f2[1]
    count["2nd_moves"] += 1
    pub = _first(ev["pushed"], t1, nxt, key=lambda x: x[0])
    rec = None if pub is None else next((r for r in ev["recv"] if pub[0] <= r[0] < nxt and r[1] >= pub[1]), None)
    if rec is None:
        count["2nd_no_snapshot"] += 1
        return
    samples["2nd: frame->pushed"].append((pub[0] - t0) * ms)
    samples["2nd: pushed->recv"].append((rec[0] - pub[0]) * ms)
    lim = min(nxt, rec[0] + int(REACT_MS * 1e6))
    first = _first(ev["decided"], rec[0], lim, key=lambda x: x[0])
    n_end = endangered(first[2], first[1]) if first is not None else 0
    count["2nd_endangered"] += n_end
    count["2nd_in_flight"] += bool(rec[2])
    if n_end == 0:
        # nothing resting on the wrong side of the latest fair value when the trader first decided on
        # it (e.g. the first half's replacements were still being posted, or dropped by the last look):
        # later cancels / orders are not a reaction to this move
        count["2nd_not_endangered"] += 1
        return
    for kind, col, done in (("cancel", 3, "2nd_cancelled"), ("order", 4, "2nd_placed")):
        # the first decision after it with cancels (places), and that decision's first request
        d = _first(ev["decided"], rec[0], lim, key=lambda x, c=col: x[0] if x[c] else -1)
        if d is None:
            continue
        count[done] += 1
        if kind == "cancel":
            count["2nd_fast_path"] += not d[5]
        end = min(nxt, next((x[0] for x in ev["decided"] if x[0] > d[0]), 1 << 62))
        sent_at, at_venue = _first(sent[kind], d[0], end, key=lambda x: x[0]), _first(ev[kind], d[0], end)
        if sent_at is not None:
            samples[f"2nd: frame->{kind}_sent"].append((sent_at[0] - t0) * ms)
        if at_venue is not None:
            samples[f"2nd: frame->{kind}"].append((at_venue - t0) * ms)


def table(res: dict[str, Any], names: tuple[str, str] = ("rate", "push"),
          heads: tuple[str, str] = ("fixed 50 Hz publish", "+ publish on change"),
          hops: tuple[str, ...] = HOPS) -> str:
    """The README's hop table (markdown) from one run's extra_info."""
    rows = [f"| hop | {heads[0]}: p50 / p99 ms (n) | {heads[1]}: p50 / p99 ms (n) |", "|---|---|---|"]
    for h in hops:
        cells = []
        for mode in names:
            k = f"{mode}_{h}"
            cells.append(f"{res[k + '_p50_ms']} / {res[k + '_p99_ms']} ({res[k + '_n']})" if k + "_n" in res else "-")
        rows.append(f"| {h} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(600)
def test_tick_to_wire_hops(benchmark, tmp_path):
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    smoke = getattr(benchmark, "disabled", False)
    jumps = 6 if smoke else int(os.environ.get("HOPS_JUMPS", "110"))
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_run(jumps, tmp_path))), rounds=1, iterations=1)
    res["load_average"] = os.getloadavg()
    benchmark.extra_info.update(res)
    print("\n" + json.dumps(res, indent=1) + "\n" + table(res, hops=HOPS + VENUE_HOPS))
    assert res["jumps"] > 0, res
    # every jump is accounted for, in each mode
    for mode in ("rate", "push"):
        assert res[f"{mode}_jumps"] == sum(res[f"{mode}_{c}"] for c in
                                           ("reacted", "no_quotes", "not_endangered", "missed", "no_snapshot")), res
    assert res.get("push_frame->cancel_n", 0) + res.get("push_frame->order_n", 0) > 0, res


def _ab(benchmark: Any, tmp_path: Any, env: str, names: tuple[str, str], labels: tuple[str, str],
        hops: tuple[str, ...] = HOPS, ack_default: str = "5", **run_kw: Any) -> dict[str, Any]:
    """One opt-in A/B run (``<env>_JUMPS`` jumps per mode, default 60; the venue holds every POST
    ``<env>_ACK_MS``, default ``ack_default``: 5); prints the table, checks every jump is accounted for."""
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    smoke = getattr(benchmark, "disabled", False)
    jumps = 6 if smoke else int(os.environ.get(f"{env}_JUMPS", "60"))
    ack = int(os.environ.get(f"{env}_ACK_MS", ack_default))
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_run(jumps, tmp_path, ack_delay_ms=ack, **run_kw))),
                       rounds=1, iterations=1)
    res["load_average"] = os.getloadavg()
    res["ack_delay_ms"] = ack
    benchmark.extra_info.update(res)
    print("\n" + json.dumps(res, indent=1) + "\n" + table(res, names, labels, hops))
    for mode in names:
        assert res[f"{mode}_jumps"] == sum(res[f"{mode}_{c}"] for c in
                                           ("reacted", "no_quotes", "not_endangered", "missed", "no_snapshot")), res
    return res


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(600)
def test_cancel_fast_path_ab(benchmark, tmp_path):
    """The trader's cancel fast path, off / on by pairs of jumps in one run, publish on change in
    both, the venue holding every POST ``HOPS_AB_ACK_MS`` (default 5 ms) so that jumps land inside a
    pass's round trip (where the fast path acts). ``HOPS_AB_JUMPS`` jumps per mode (default 60).

    Opt-in (``HOPS_AB=1``): on this synthetic path a jump rarely lands inside a round trip (between
    jumps the fair value barely moves, so the trader seldom has a POST in flight when one comes;
    session 6: the fast path fired on 0 of 53 reactions even with a 5 ms POST delay), so the run
    shows no difference yet and is kept out of the default runs; tests/unit/trading/test_fast_cancel.py
    checks the behaviour itself."""
    if not os.environ.get("HOPS_AB"):
        pytest.skip("opt-in: HOPS_AB=1 runs the fast-path A/B (about 2.5 minutes)")
    res = _ab(benchmark, tmp_path, "HOPS_AB", ("fast_off", "fast_on"), ("fast path off", "fast path on"),
              fast_ab=True)
    assert res["fast_off_fast_path"] == 0, res      # the A/B switch works: no fast reaction with it off


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(600)
def test_cancel_in_flight_ab(benchmark, tmp_path):
    """Cancel before the ack (``Trader.cancel_in_flight``: the fast path cancels the orders being
    posted by their signed hashes), off / on by pairs of jumps in one run, publish on change in
    both; the venue holds every POST ``HOPS_INFLIGHT_ACK_MS`` (default 5; 0 = as fast as it can)
    so that more jumps land while a pass awaits its POST reply (rows ``frame->* locked at recv``).
    ``HOPS_INFLIGHT_JUMPS`` jumps per mode (default 60). Opt-in: ``HOPS_INFLIGHT_AB=1``."""
    if not os.environ.get("HOPS_INFLIGHT_AB"):
        pytest.skip("opt-in: HOPS_INFLIGHT_AB=1 runs the cancel-before-ack A/B (about 2.5 minutes)")
    res = _ab(benchmark, tmp_path, "HOPS_INFLIGHT", ("inflight_off", "inflight_on"),
              ("cancel before ack off", "cancel before ack on"), inflight_ab=True)
    assert res["trader"]["early_cancels"] > 0 or res["inflight_on_jumps"] < 10, res   # the switch did act


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(600)
def test_venue_order_check_ab(benchmark, tmp_path):
    """The venue's order check (clob_orders.verify_order on every POSTed order) as before session 10
    (eth-account's generic EIP-712 encoder + Account._recover_hash: ~2 ms per order) and as now (the
    V2 order's words concatenated, libsecp256k1 directly), by pairs of jumps in one run, publish on
    change in both. The simulator handles one request at a time, so its time per POST delays a cancel
    that arrives meanwhile, and it shares the box's cores with the trader (rows ``venue POST|DELETE
    entry->done``). ``HOPS_CHECK_JUMPS`` jumps per mode (default 60), ``HOPS_CHECK_ACK_MS`` (default 0).
    Opt-in: ``HOPS_CHECK_AB=1``."""
    if not os.environ.get("HOPS_CHECK_AB"):
        pytest.skip("opt-in: HOPS_CHECK_AB=1 runs the venue order-check A/B (about 2.5 minutes)")
    res = _ab(benchmark, tmp_path, "HOPS_CHECK", ("check_before", "check_now"),
              ("venue order check as before", "venue order check now"), check_ab=True,
              hops=HOPS + VENUE_HOPS, ack_default="0")
    assert res.get("check_before_venue POST entry->done_n", 0) > 0, res


@pytest.mark.benchmark(group="hops")
@pytest.mark.timeout(600)
def test_close_double_moves(benchmark, tmp_path):
    """Two close moves: in mode ``double`` each jump comes as two half-jumps ``HOPS_DOUBLE_MS``
    (default 4) ms apart, in mode ``single`` as one jump (both publish on change, alternating by
    pairs of jumps in one run). The second half lands while the trader still reacts to the first
    (its cancels / new orders in flight): it exercises the push token bucket (a second push within
    PUSH_MIN_GAP_S) and the trader's cancel fast path, measured from the second half's own frame
    (rows ``2nd: ...``; counts ``double_2nd_*``). ``HOPS_DOUBLE_JUMPS`` jumps per mode (default 60)."""
    pytest.importorskip("hourmm_core.sim.polymarket.server")
    smoke = getattr(benchmark, "disabled", False)
    jumps = 6 if smoke else int(os.environ.get("HOPS_DOUBLE_JUMPS", "60"))
    gap = int(os.environ.get("HOPS_DOUBLE_MS", "4"))
    res: dict[str, Any] = {}
    benchmark.pedantic(lambda: res.update(asyncio.run(_run(jumps, tmp_path, double_ms=gap))), rounds=1, iterations=1)
    res["load_average"] = os.getloadavg()
    res["double_ms"] = gap
    benchmark.extra_info.update(res)
    names = ("single", "double")
    print("\n" + json.dumps(res, indent=1) + "\n" + table(res, names, ("one jump", f"two half-jumps {gap} ms apart"),
                                                         HOPS + SECOND_HOPS))
    for mode in names:
        assert res[f"{mode}_jumps"] == sum(res[f"{mode}_{c}"] for c in
                                           ("reacted", "no_quotes", "not_endangered", "missed", "no_snapshot")), res
    # the path does what it is for: second halves were seen (each double jump has one, but the run
    # may stop between the two halves of its last jump) and pushed
    assert res["double_jumps"] - 1 <= res["double_2nd_moves"] <= res["double_jumps"], res
    assert res["double_2nd_moves"] > 0, res
    assert res["double_2nd_moves"] - res["double_2nd_no_snapshot"] == res.get("double_2nd: frame->pushed_n", 0), res
