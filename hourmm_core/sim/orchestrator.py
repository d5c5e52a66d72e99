"""``hourmm sim``: the whole system end to end, offline, on loopback, in a few minutes.

Starts four SEPARATE processes that talk over real loopback HTTP and WebSockets
exactly as in production:

1. the Binance replay server (``hourmm_core.sim.binance_replay``),
2. the Polymarket simulator (``hourmm_core.sim.polymarket``: Gamma, CLOB REST,
   market/user WebSockets, background traders),
3. container A, ``python -m runners.binance_pricer``,
4. container B, ``python -m runners.polymarket_trader``,

with production settings except the URLs, ports and journal path (and a throwaway
wallet generated at run time, never printed). All four share one simulated clock
(``HOURMM_SIM_CLOCK``), started a few minutes before an hour boundary of the data
so discovery, wind-down, flatten, cutoff, settlement and the roll to the next
market all happen within the run. While it runs it prints a status line a person
can follow; at the end it stops everything (SIGTERM, then SIGKILL), writes the
journal, ``summary.json`` and a report (HTML + PNG plots) to the output folder,
and exits non-zero with the reasons when anything went wrong.

Why separate processes: the point of the sim is to exercise the shipped entry
points (the Dockerfile runs the same commands, see ``PRICER_ARGV``/``TRADER_ARGV``),
their start-up, their sockets and their shutdown, not an in-process shortcut.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import aiohttp

from hourmm_core.clock import HOUR_MS, SIM_CLOCK_ENV, ScaledClock, hour_start_ms

log = logging.getLogger("hourmm.sim")

#: Entry points of the production images (Dockerfile ENTRYPOINT); the sim runs exactly these.
PRICER_ARGV: tuple[str, ...] = ("python", "-m", "runners.binance_pricer")
TRADER_ARGV: tuple[str, ...] = ("python", "-m", "runners.polymarket_trader")
REPLAY_MODULE = "hourmm_core.sim.binance_replay"
PM_SIM_MODULE = "hourmm_core.sim.polymarket"

#: Log lines that make a run fail: the guide's "Critical" level and crashes.
_ERROR_RE = re.compile(r"(\bERROR \||\bCRITICAL \||^Traceback \(most recent call last\))")
#: ERROR lines that are the CLOB client library reporting an ordinary business rejection
#: (HTTP 400, e.g. "post-only order crosses book"): counted and shown, not a failed run.
#: Authentication (401/403), rate limits and 5xx stay failures.
_BENIGN_RE = re.compile(r"\[py_clob_client(_v2)?\] request error status=400\b")
_READY_RE = re.compile(r"^READY\s+(.*)$")

REPO_ROOT = Path(__file__).resolve().parents[2]


def _iso(ms: int | float | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_start(raw: str) -> int:
    """``--start`` as ms UTC: an integer (ms) or an ISO-8601 time (UTC when no zone given)."""
    raw = raw.strip()
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start {raw!r} is neither ms since the epoch nor an ISO-8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (children bind it right away)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_venue_trades(clob_url: str, key: str, chain_id: int = 137) -> tuple[list[dict[str, Any]], str]:
    """Our trades as the venue records them, read with the official CLOB V2 client (blocking).

    Why not the trader's journal: the summary must judge the trader against the
    exchange's own books, so a trader bug cannot hide in its own bookkeeping.
    Returns (trades, api_key); the key material never leaves this function.
    """
    from py_clob_client_v2.client import ClobClient

    client = ClobClient(clob_url, chain_id=chain_id, key=key, signature_type=1)
    creds = client.create_or_derive_api_key()
    client.set_api_creds(creds)
    return list(client.get_trades()), creds.api_key


def python_argv(argv: Sequence[str]) -> list[str]:
    """Replace the leading ``python`` of an image entry point by this interpreter."""
    argv = list(argv)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


@dataclass
class SimOptions:
    """Everything ``hourmm sim`` can be told; defaults give the README's 2-hour, 60x run."""

    hours: int = 2
    speed: float = 60.0
    start_ms: int | None = None      # first full hour to trade (rounded up to an hour boundary)
    seed: int = 7
    out_dir: Path | None = None
    data_dir: str | None = None
    lead_wall_s: float = 20.0        # wall seconds of simulated time before the first boundary (start-up)
    settle_sim_ms: int = 45_000      # simulated time after the last hour's end (settlement)
    status_every_s: float = 3.0      # wall seconds between status lines
    sample_every_s: float = 0.25     # wall seconds between samples for plots / Brier
    startup_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    cutoff_inventory_tol: float = 5.0  # venue minimum size: a smaller residual cannot be sold
    quiet: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    chaos_seed: int | None = None    # set: inject the seeded fault schedule of hourmm_core.sim.chaos
    chaos_faults: list[str] | None = None  # only these faults (default: all)


@dataclass
class Child:
    """One child process: its command, its log file, what it printed that matters."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Future | None = None
    ready_fields: dict[str, str] = field(default_factory=dict)
    error_lines: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    warning_count: int = 0
    reader: asyncio.Task | None = None
    exit_code: int | None = None
    stopped_by_us: bool = False
    on_line: Any = None              # callable(name, line) for each line (the chaos run times reactions)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=str(REPO_ROOT),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=2**20)
        self.reader = asyncio.create_task(self._read(), name=f"read-{self.name}")

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as fh:
            while True:
                try:
                    raw = await self.proc.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    fh.write("<line longer than 1 MiB dropped>\n")
                    continue
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                fh.write(line + "\n")
                fh.flush()
                if self.on_line is not None:
                    self.on_line(self.name, line)
                m = _READY_RE.match(line.strip())
                if m and self.ready and not self.ready.done():
                    self.ready_fields = dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)
                    self.ready.set_result(self.ready_fields)
                if _BENIGN_RE.search(line):
                    self.rejections.append(line[:300])
                elif _ERROR_RE.search(line):
                    self.error_lines.append(line[:300])
                elif " WARNING |" in line:
                    self.warning_count += 1
        rc = await self.proc.wait()
        self.exit_code = rc
        if self.ready and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"{self.name} exited with code {rc} before READY"))
            self.ready.exception()  # mark retrieved: children without a READY line are awaited over HTTP

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout_s: float, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM (or ``sig``, e.g. SIGKILL for a crash) the child's process group, SIGKILL after
        ``timeout_s``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.stopped_by_us = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs of SIGTERM: SIGKILL", self.name, timeout_s)
                self.error_lines.append(f"{self.name} ignored SIGTERM for {timeout_s:.0f}s (killed)")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        if self.reader:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        self.exit_code = self.proc.returncode
        return self.exit_code


class Orchestrator:
    """Runs one simulation; :meth:`run` returns the summary dict (``summary["ok"]``)."""

    def __init__(self, opts: SimOptions) -> None:
        self.opts = opts
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        # absolute: the children run with cwd=REPO_ROOT, the user may start the sim anywhere
        self.out = (Path(opts.out_dir) if opts.out_dir else Path("sim_out") / stamp).resolve()
        self.children: dict[str, Child] = {}
        self.failures: list[str] = []
        self.samples: list[dict[str, Any]] = []      # fine-grained: fair, mid, inventory, pnl
        self.status_log: list[dict[str, Any]] = []   # every /status seen (coarse)
        self.sim_state: dict[str, Any] | None = None
        self.urls: dict[str, str] = {}
        self.clock: ScaledClock | None = None
        self.data_info: dict[str, Any] = {}
        self.wallet_address = ""
        self.first_hour_ms = 0
        self.end_sim_ms = 0
        self.sqlite_path = self.out / "journal.db"
        self.replay_hours = opts.hours + 2
        self._http: aiohttp.ClientSession | None = None
        self._key = ""                                # throwaway wallet key: never logged or written
        self.trades: list[dict[str, Any]] | None = None
        self.api_key = ""
        self.trades_error: str | None = None
        self.paused_at_end = False
        self.last_cutoff_ms = 0
        self.chaos: Any = None
        if opts.chaos_seed is not None:
            from hourmm_core.sim.chaos import ChaosRun
            self.chaos = ChaosRun(self, opts.chaos_seed, opts.chaos_faults)

    # ------------------------------------------------------------------ set-up
    def choose_window(self) -> None:
        """Pick the first full hour and the clock anchor from the data (real if present).

        The replay server loads ``[hour_start(sim_start), +hours_arg+1 h)`` itself; the
        outcome of each hour is computed here from the very same window (same seed for
        the synthetic stand-in, whose path depends on its start), and re-read from the
        replay server's own 1 h klines at the end of the run.
        """
        from hourmm_core.data import default_sim_start, load_ticks

        o = self.opts
        if o.start_ms is not None:
            first = hour_start_ms(o.start_ms + HOUR_MS - 1)
        else:
            # real data: an interesting real hour of the klines (see default_sim_start), without
            # loading the whole history; no real data: the synthetic stand-in's 2nd hour
            real_first = default_sim_start(o.data_dir, o.hours)
            if real_first is not None:
                first = real_first
            else:
                probe = load_ticks(data_dir=o.data_dir, synthetic_hours=max(o.hours + 3, 24), seed=o.seed)
                if len(probe) == 0:
                    raise RuntimeError("no ticks in the data")
                first = hour_start_ms(int(probe.start_ms)) + HOUR_MS
        # at least 3 simulated minutes, at most 50 (the replay loads from the start hour on)
        lead_ms = int(min(max(o.lead_wall_s * o.speed * 1000, 180_000), 50 * 60_000))
        sim_start = first - lead_ms
        end = first + o.hours * HOUR_MS + o.settle_sim_ms
        lo = hour_start_ms(sim_start)
        self.replay_hours = o.hours + 2
        ticks = load_ticks(lo, lo + self.replay_hours * HOUR_MS + HOUR_MS, data_dir=o.data_dir,
                           synthetic_hours=self.replay_hours + 1, seed=o.seed)
        if len(ticks) == 0:
            raise RuntimeError(f"no ticks around {_iso(first)} in the data")
        if ticks.start_ms > first - 60_000 or ticks.end_ms < first + o.hours * HOUR_MS - 60_000:
            raise RuntimeError(
                f"data covers {_iso(ticks.start_ms)} .. {_iso(ticks.end_ms)}, the run needs "
                f"{_iso(sim_start)} .. {_iso(end)}: choose --start / --hours inside the data")
        self.first_hour_ms, self.end_sim_ms = first, end
        from hourmm_core.config import TraderConfig
        self.last_cutoff_ms = first + o.hours * HOUR_MS - TraderConfig.from_env({}).hard_cutoff_ms
        self.data_info = {"source": ticks.source, "synthetic": ticks.is_synthetic, "bbo": ticks.bbo,
                          "symbol": ticks.symbol, "ticks": int(len(ticks)),
                          "data_start": _iso(ticks.start_ms), "data_end": _iso(ticks.end_ms),
                          "data_dir": str(o.data_dir or "") or None, "outcome_source": "data"}
        hours = []
        # The hour the run starts in is traded too (its last minutes: wind-down, flatten,
        # cutoff) and is judged like the others, marked partial.
        for k in range(-1, o.hours):
            h = first + k * HOUR_MS
            sl = ticks.slice_time(h, h + HOUR_MS)
            if len(sl):
                op, cl = float(sl.price[0]), float(sl.price[-1])
                hours.append({"hour_start_ms": h, "hour": _iso(h), "open": op, "close": cl,
                              "up": bool(cl >= op), "partial": k < 0})
        self.data_info["hours"] = hours
        wall_now = time.time_ns() // 1_000_000
        self.clock = ScaledClock(o.speed, sim_start, wall_now)

    async def fetch_outcomes(self) -> None:
        """Each traded hour's open/close from the replay server's 1 h klines (what the venue saw)."""
        url = self.urls.get("binance_rest", "").rstrip("/") + "/api/v3/klines"
        if not url.startswith("http"):
            return
        rows = await self._get_json(f"{url}?symbol=BTCUSDT&interval=1h&startTime={self.first_hour_ms - HOUR_MS}"
                                    f"&limit={self.opts.hours + 1}")
        if not isinstance(rows, list):
            return
        got = {}
        for r in rows:
            try:
                got[int(r[0])] = (float(r[1]), float(r[4]))
            except (TypeError, ValueError, IndexError):
                continue
        for h in self.data_info.get("hours", []):
            if h["hour_start_ms"] in got:
                op, cl = got[h["hour_start_ms"]]
                h.update(open=op, close=cl, up=bool(cl >= op))
                self.data_info["outcome_source"] = "replay klines"

    def base_env(self) -> dict[str, str]:
        # Credentials, endpoints and ports of a real deployment must not leak into the sim;
        # HOURMM_DATA_DIR / HOURMM_CONFIG / HOURMM_CACHE_DIR are kept so every process sees the
        # same data and settings as this one.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PM_", "CONTROL_", "BINANCE_", "GAMMA_", "CLOB_", "SNAPSHOT_", "HTTP_",
                                    "SQLITE_", SIM_CLOCK_ENV))}
        env.update({SIM_CLOCK_ENV: self.clock.to_env(), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"})
        if self.opts.data_dir:
            env["HOURMM_DATA_DIR"] = str(self.opts.data_dir)
        pp = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
        env.update(self.opts.extra_env)
        return env

    async def _start_child(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        ch = Child(name, argv, env, self.out / "logs" / f"{name}.log")
        ch.on_line = self.chaos.on_line if self.chaos else None
        self.children[name] = ch
        await ch.start()
        log.info("started %s (pid %s): %s", name, ch.proc.pid if ch.proc else "?", " ".join(argv[1:]))
        return ch

    async def _await_ready(self, ch: Child) -> dict[str, str]:
        try:
            return await asyncio.wait_for(asyncio.shield(ch.ready), self.opts.startup_timeout_s)
        except TimeoutError:
            raise RuntimeError(f"{ch.name} printed no READY line within {self.opts.startup_timeout_s:.0f}s "
                               f"(see {ch.log_path})") from None
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (see {ch.log_path})") from None

    async def _await_http(self, ch: Child, url: str, key: str | None = None) -> None:
        """Wait until ``url`` answers (below 500; and JSON ``key`` true when given), like compose's healthcheck."""
        deadline = time.monotonic() + self.opts.startup_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if not ch.alive:
                await asyncio.sleep(0.2)
                raise RuntimeError(f"{ch.name} exited with code {ch.proc.returncode if ch.proc else '?'} "
                                   f"during start-up (see {ch.log_path})")
            try:
                async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500 and key is None:
                        return
                    if r.status < 500:
                        body = await r.json(content_type=None)
                        if isinstance(body, dict) and body.get(key):
                            return
                        last = f"{key} is not true yet"
                    else:
                        last = f"HTTP {r.status}"
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{ch.name} did not answer {url} within {self.opts.startup_timeout_s:.0f}s "
                           f"({last}; see {ch.log_path})")

    def venue_argv(self) -> list[str]:
        """The Polymarket simulator's command. Deliberately no ``--no-fees`` / ``--no-agents``:
        the venue charges the real crypto fee schedule and runs the same hostile flow (touch
        makers, noise/informed takers, latency snipers: ``AgentConfig()``) as ``hourmm backtest``."""
        o = self.opts
        return [sys.executable, "-m", PM_SIM_MODULE, "--host", "127.0.0.1", "--port", "0",
                "--speed", f"{o.speed:g}", "--hours", str(self.replay_hours),
                "--seed", str(o.seed)] + (["--data-dir", str(o.data_dir)] if o.data_dir else [])

    async def start_all(self) -> None:
        from eth_account import Account

        o = self.opts
        env = self.base_env()
        hours_arg = str(self.replay_hours)
        # No --start-ms: both simulators then take "now" from HOURMM_SIM_CLOCK, like the runners.
        replay = await self._start_child("binance_replay", [
            sys.executable, "-m", REPLAY_MODULE, "--host", "127.0.0.1", "--port", "0",
            "--speed", f"{o.speed:g}", "--hours", hours_arg,
            "--seed", str(o.seed)] + (["--data-dir", str(o.data_dir)] if o.data_dir else []), env)
        pm = await self._start_child("polymarket_sim", self.venue_argv(), env)
        rf = await self._await_ready(replay)
        self.urls.update({"binance_ws": rf["ws"], "binance_rest": rf["rest"]})
        http_port, control_port = free_port(), free_port()
        self.urls["pricer"] = f"http://127.0.0.1:{http_port}"
        self.urls["control"] = f"http://127.0.0.1:{control_port}"
        pricer_env = dict(env, BINANCE_WS_URL=self.urls["binance_ws"], BINANCE_REST_URL=self.urls["binance_rest"],
                          HTTP_HOST="127.0.0.1", HTTP_PORT=str(http_port))
        pricer = await self._start_child("binance_pricer", python_argv(PRICER_ARGV), pricer_env)
        pf = await self._await_ready(pm)
        self.urls.update({"gamma": pf["gamma"], "clob": pf["clob"], "pm_ws": pf["ws"]})
        self.urls["sim_state"] = pf.get("state") or (self.urls["clob"].rstrip("/") + "/_sim/state")
        # the trader starts once container A is healthy (docker-compose: depends_on service_healthy)
        await self._await_http(pricer, self.urls["pricer"] + "/health", key="healthy")

        acct = Account.create()  # throwaway wallet: lives only in this process and the trader's env
        from hourmm_core.logsetup import register_secret
        register_secret(acct.key.hex())
        self.wallet_address = acct.address
        key_hex = acct.key.hex()
        key_hex = key_hex if key_hex.startswith("0x") else "0x" + key_hex
        self._key = key_hex
        trader_env = dict(env, GAMMA_URL=self.urls["gamma"], CLOB_URL=self.urls["clob"],
                          PM_WS_URL=self.urls["pm_ws"],
                          SNAPSHOT_URL=self.urls["pricer"] + "/snapshot/latest",
                          SQLITE_PATH=str(self.sqlite_path), CONTROL_HOST="127.0.0.1",
                          CONTROL_PORT=str(control_port), PM_PRIVATE_KEY=key_hex,
                          PM_FUNDER=acct.address, PM_SIGNATURE_TYPE="1")
        trader = await self._start_child("polymarket_trader", python_argv(TRADER_ARGV), trader_env)
        await self._await_http(trader, self.urls["control"] + "/status")

    # ------------------------------------------------------------------ running
    async def _get_json(self, url: str) -> Any:
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status != 200:
                    return None
                return await r.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    def _sample_from(self, now: int, snap: Any, status: Any, state: Any) -> dict[str, Any]:
        from hourmm_core.sim.report import extract_sample

        return extract_sample(now, snap, status, state, self.wallet_address)

    async def monitor(self) -> None:
        """Sample the three observation endpoints and print a status line until the end time."""
        from hourmm_core.sim.report import format_status

        o = self.opts
        next_status = 0.0
        while True:
            now = self.clock.now_ms()
            if now >= self.end_sim_ms:
                break
            dead = [c for c in self.children.values() if not c.alive and not c.stopped_by_us]
            if dead:
                for c in dead:
                    self.failures.append(f"{c.name} exited with code {c.proc.returncode} at sim "
                                         f"{_iso(now)} (see {c.log_path})")
                break
            if not self.paused_at_end and now >= self.last_cutoff_ms:
                await self.pause_quoting()
            t0 = time.monotonic()
            want_status = t0 >= next_status
            snap, status, state = await asyncio.gather(
                self._get_json(self.urls["pricer"] + "/snapshot/latest"),
                self._get_json(self.urls["control"] + "/status"),
                self._get_json(self.urls["sim_state"]))
            if isinstance(state, dict):
                self.sim_state = state
            s = self._sample_from(now, snap, status, state if isinstance(state, dict) else self.sim_state)
            self.samples.append(s)
            if isinstance(status, dict):
                self.status_log.append({"sim_ms": now, **status})
            if want_status:
                next_status = t0 + o.status_every_s
                if not o.quiet:
                    print(format_status(s, self.first_hour_ms, o.hours), flush=True)
            await asyncio.sleep(max(0.0, o.sample_every_s - (time.monotonic() - t0)))

    async def pause_quoting(self) -> None:
        """At the last hour's hard cutoff, pause quoting through the operator control plane.

        Why: the run ends shortly after the last traded hour settles; without this
        the trader would open positions in the next hour's market that the run
        never settles. It also exercises the guide's ``/pause_quoting`` call.
        """
        self.paused_at_end = True
        url = self.urls["control"] + "/pause_quoting"
        try:
            async with self._http.post(url, json={"pause": True}, timeout=aiohttp.ClientTimeout(total=5)) as r:
                ok = r.status == 200
                body = await r.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            ok, body = False, type(exc).__name__
        if not ok:
            self.failures.append(f"POST /pause_quoting at the last cutoff failed: {body[:200]}")
        elif not self.opts.quiet:
            print(f"{_iso(self.clock.now_ms())[11:19]}Z last hour's cutoff: POST /pause_quoting "
                  "{\"pause\": true} (no quoting into the next, unsettled hour)", flush=True)

    async def stop_all(self) -> None:
        """Trader first (it cancels its orders on SIGTERM), then the pricer, then the venues."""
        for name in ("polymarket_trader", "binance_pricer"):
            ch = self.children.get(name)
            if ch:
                was_alive = ch.alive
                rc = await ch.stop(self.opts.stop_timeout_s)
                if was_alive and rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
                    self.failures.append(f"{name} exited with code {rc} on SIGTERM (see {ch.log_path})")
        # The venue's view after the trader is gone: anything still open is an orphan.
        if "sim_state" in self.urls:
            st = await self._get_json(self.urls["sim_state"])
            if isinstance(st, dict):
                self.sim_state = st
        pm = self.children.get("polymarket_sim")
        if self._key and pm and pm.alive:
            loop = asyncio.get_running_loop()
            try:
                self.trades, self.api_key = await asyncio.wait_for(
                    loop.run_in_executor(None, fetch_venue_trades, self.urls["clob"], self._key), 30)
            except Exception as exc:  # noqa: BLE001 - reported in the summary, never a crash
                from hourmm_core.logsetup import redact
                self.trades_error = redact(f"{type(exc).__name__}: {exc}")
        for name in ("polymarket_sim", "binance_replay"):
            ch = self.children.get(name)
            if ch:
                await ch.stop(self.opts.stop_timeout_s)

    async def run(self) -> dict[str, Any]:
        from hourmm_core.sim import report

        o = self.opts
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(exist_ok=True)
        wall0 = time.monotonic()
        try:
            self.choose_window()
        except (RuntimeError, ValueError, OSError) as exc:
            self.failures.append(f"data: {exc}")
            return self._finish(report, wall0)
        if self.data_info.get("synthetic"):
            log.warning("SYNTHETIC DATA: no real Binance dumps found; this run replays the seeded synthetic "
                        "stand-in -- NOT market data. Set HOURMM_DATA_DIR or put dumps in ../shared/data.")
        if not o.quiet:
            print(f"hourmm sim: {o.hours} hour(s) from {_iso(self.first_hour_ms)} at {o.speed:g}x "
                  f"(~{(self.end_sim_ms - self.clock.sim_start_ms) / o.speed / 1000:.0f}s wall), "
                  f"data: {'SYNTHETIC' if self.data_info.get('synthetic') else 'real'} {self.data_info['source']} "
                  f"{self.data_info['data_start']} .. {self.data_info['data_end']}, output: {self.out}"
                  + (f"\nchaos: seed {self.chaos.seed}, faults in this order: "
                     f"{', '.join(s['fault'] for s in self.chaos.schedule)}" if self.chaos else ""), flush=True)
        self._http = aiohttp.ClientSession()
        # SIGTERM (e.g. a CI timeout) stops the run like Ctrl-C: children are still shut down
        # in order and the summary is written, instead of leaving four orphaned processes.
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, me.cancel)
        try:
            try:
                await self.start_all()
                if not o.quiet:
                    print(f"all 4 processes up in {time.monotonic() - wall0:.1f}s wall; sim time "
                          f"{_iso(self.clock.now_ms())}", flush=True)
                chaos_task = asyncio.create_task(self.chaos.run(), name="chaos") if self.chaos else None
                try:
                    await self.monitor()
                finally:
                    if chaos_task is not None:
                        chaos_task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await chaos_task
                await self.fetch_outcomes()
            except RuntimeError as exc:
                self.failures.append(f"start-up: {exc}")
            except asyncio.CancelledError:
                self.failures.append("interrupted")
            finally:
                await asyncio.shield(self.stop_all())
        finally:
            await self._http.close()
        return self._finish(report, wall0)

    def _finish(self, report: Any, wall0: float) -> dict[str, Any]:
        children = {n: {"exit_code": c.exit_code, "errors": c.error_lines[:20], "warnings": c.warning_count,
                        "venue_rejections": len(c.rejections), "log": str(c.log_path)}
                    for n, c in self.children.items()}
        run = report.RunData(
            out_dir=self.out, hours=self.opts.hours, speed=self.opts.speed, seed=self.opts.seed,
            first_hour_ms=self.first_hour_ms, end_sim_ms=self.end_sim_ms,
            sim_start_ms=self.clock.sim_start_ms if self.clock else 0,
            wall_s=time.monotonic() - wall0, data=self.data_info, samples=self.samples,
            status_log=self.status_log, sim_state=self.sim_state, children=children,
            failures=list(self.failures), wallet=self.wallet_address,
            journal_path=self.sqlite_path, cutoff_inventory_tol=self.opts.cutoff_inventory_tol,
            trades=self.trades, api_key=self.api_key, trades_error=self.trades_error,
            judge=self.chaos.judge if self.chaos else None)
        return report.finalize(run)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hourmm sim",
        description="Run the whole HourMM system end to end on loopback simulators, N real hours compressed.")
    ap.add_argument("--hours", type=int, default=2, help="full hours to trade (default 2; 1 with --chaos)")
    ap.add_argument("--speed", type=float, default=60.0,
                    help="simulated seconds per wall second (default 60; 30 with --chaos)")
    ap.add_argument("--start", default=None,
                    help="first hour to trade, ISO-8601 UTC or ms (default on real klines: 2025-05-22T14:00Z, "
                         "the May 2025 all-time-high day; else the 2nd hour of the data)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the simulator and synthetic data (default 7)")
    ap.add_argument("--out", default=None, help="output folder (default ./sim_out/<timestamp>)")
    ap.add_argument("--data-dir", default=None,
                    help="Binance dumps (default: $HOURMM_DATA_DIR, then ../shared/data; else synthetic)")
    ap.add_argument("--status-every", type=float, default=3.0, help="wall seconds between status lines")
    ap.add_argument("--quiet", action="store_true", help="no live status lines, only the summary")
    ap.add_argument("--vs-backtest", action="store_true",
                    help="after the run, backtest the same full hours (hourmm backtest's shipped parameters) "
                         "and print both per hour side by side (also in summary.json)")
    ap.add_argument("--chaos", action="store_true",
                    help="inject a seeded schedule of faults while trading and judge every reaction "
                         "(docs/CHAOS.md)")
    ap.add_argument("--chaos-seed", type=int, default=None, metavar="N",
                    help="seed of the fault schedule (implies --chaos; default: --seed)")
    ap.add_argument("--chaos-faults", default=None, metavar="A,B",
                    help="only these faults, comma-separated (default: all; names in docs/CHAOS.md)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``hourmm sim``: returns 0 when the run was clean, 1 with the reasons otherwise, 2 on usage errors."""
    ap = build_parser()
    try:
        argv = list(argv) if argv is not None else sys.argv[1:]
        args = ap.parse_args(argv)
        chaos = args.chaos or args.chaos_seed is not None or args.chaos_faults is not None

        def given(opt: str) -> bool:
            return any(a == opt or a.startswith(opt + "=") for a in argv)
        if chaos and not given("--hours"):
            args.hours = 1
        if chaos and not given("--speed"):
            from hourmm_core.sim.chaos import CHAOS_SPEED
            args.speed = CHAOS_SPEED
        faults = [f.strip() for f in args.chaos_faults.split(",") if f.strip()] if args.chaos_faults else None
        if faults:
            from hourmm_core.sim.chaos import build_schedule
            build_schedule(0, faults)   # ValueError names an unknown fault
        if args.hours < 1 or args.hours > 48:
            ap.error("--hours must be in 1..48")
        if not (1 <= args.speed <= 600):
            ap.error("--speed must be in 1..600")
        start = parse_start(args.start) if args.start else None
    except SystemExit as exc:
        return int(exc.code or 0)
    except ValueError as exc:
        print(f"hourmm sim: error: {exc}", file=sys.stderr)
        return 2
    from hourmm_core.logsetup import setup_logging

    setup_logging("INFO", name="sim")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # the CLOB client's per-request lines
    opts = SimOptions(hours=args.hours, speed=args.speed, start_ms=start, seed=args.seed,
                      out_dir=Path(args.out) if args.out else None, data_dir=args.data_dir,
                      status_every_s=args.status_every, quiet=args.quiet,
                      chaos_seed=(args.chaos_seed if args.chaos_seed is not None else args.seed) if chaos else None,
                      chaos_faults=faults)
    orch = Orchestrator(opts)
    try:
        summary = asyncio.run(orch.run())
    except KeyboardInterrupt:
        print("hourmm sim: interrupted", file=sys.stderr)
        return 130
    from hourmm_core.sim.report import format_summary

    print(format_summary(summary), flush=True)
    if args.vs_backtest:
        vs_backtest(summary, orch.out, args.data_dir)
    return 0 if summary.get("ok") else 1


def vs_backtest(summary: dict[str, Any], out: Path, data_dir: str | None) -> dict[str, Any] | None:
    """Backtest the run's full hours, print the side-by-side table, add it to summary.json.

    Runs after the four processes stopped (synchronous: no event loop is running any more).
    A backtest failure is printed, never turns a clean sim run into a failed one."""
    from hourmm_core.sim import vs_backtest as vb

    full = [h for h in summary.get("hours", []) if not h.get("partial")]
    if not any(h.get("pnl") is not None for h in full):
        print("hourmm sim: --vs-backtest: no full hour with a venue PnL to compare", file=sys.stderr)
        return None
    try:
        bt = vb.backtest_hours(int(full[0]["hour_start_ms"]), len(full), data_dir=data_dir)
    except Exception as exc:  # noqa: BLE001 - the comparison is an extra; report it, keep the verdict
        print(f"hourmm sim: --vs-backtest failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    cmp = vb.compare(summary.get("hours", []), bt)
    print(vb.format_compare(cmp), flush=True)
    summary["vs_backtest"] = cmp
    path = Path(out) / "summary.json"
    if path.exists():
        path.write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return cmp


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
