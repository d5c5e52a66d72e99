"""SQLite journal of container B: every decision, order event, mode/phase change, control action.

Schema (the operator guide queries these tables directly)::

    events    (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER, kind TEXT,
               market TEXT, order_id TEXT, payload TEXT  -- JSON)
    snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER, state TEXT -- JSON)

Why a writer thread: SQLite calls block, and the trading loop must not. Producers
call :meth:`Journal.event` / :meth:`Journal.snapshot`, which only enqueue (O(1),
thread-safe). One writer thread drains the queue and commits in batches.

Durability: WAL mode with ``synchronous=FULL`` (default; configurable): each batch
commit is fsync'd before it is acknowledged, so a row that :meth:`flush` reported
written survives a process kill *and* a power loss. ``NORMAL`` survives process
kills only; it is accepted for tests/benchmarks. Rows still in the queue when the
process is SIGKILLed are lost; the trader calls :meth:`flush` (or awaits
:meth:`aflush`) at points that matter (before/after posting orders is not needed —
the exchange is the source of truth at reconcile time).

Secrets never reach the file: payloads are scrubbed by key name (private_key, secret,
passphrase, ...) and by value (:func:`redact_registered` strips registered
secrets, including the private key registered at start-up). Order ids and
condition ids (0x + 64 hex) are kept: reconciliation needs them.

A batch that fails to write (disk full, locked file) is retried with backoff; after
``max_retries`` it is appended to ``<path>.failed.jsonl`` so nothing is silently lost,
and ``write_errors`` is counted.
"""
from __future__ import annotations

import asyncio
import enum
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from hourmm_core import logsetup

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    market TEXT,
    order_id TEXT,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, id);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    state TEXT
);
"""

SECRET_KEYS = frozenset({
    "private_key", "privatekey", "pm_private_key", "secret", "api_secret", "apisecret",
    "pm_api_secret", "passphrase", "api_passphrase", "pm_passphrase", "password",
    "control_token", "authorization", "poly_signature", "poly_passphrase", "poly_api_key",
    "api_key", "apikey", "pm_api_key", "auth",
})


def scrub(obj: Any, _depth: int = 0) -> Any:
    """Deep copy of ``obj`` made JSON-safe, with secret-named keys replaced by ``"***"``.

    Non-finite floats become None (JSON has no NaN), unknown objects their ``str``.
    """
    if _depth > 20:
        return "<too deep>"
    if isinstance(obj, enum.Enum):
        return str(obj.name)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            ks = str(k)
            if ks.lower() in SECRET_KEYS and v not in (None, ""):
                out[ks] = "***"
            else:
                out[ks] = scrub(v, _depth + 1)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [scrub(v, _depth + 1) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if hasattr(obj, "_asdict"):
        return scrub(obj._asdict(), _depth + 1)
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return scrub(asdict(obj), _depth + 1)
    return str(obj)


def redact_registered(text: str) -> str:
    """Remove every secret registered with :func:`hourmm_core.logsetup.register_secret`.

    Unlike the log filter this does *not* blank every 0x+64-hex string: Polymarket
    order ids and condition ids have exactly that shape and the journal must keep them
    for reconciliation. The private key is registered at start-up, so it is removed.
    """
    for s in sorted(getattr(logsetup, "_SECRETS", ()), key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    return text


def to_json(obj: Any) -> str:
    """Scrubbed, redacted JSON text for the journal."""
    return redact_registered(json.dumps(scrub(obj), separators=(",", ":"), sort_keys=True))


@dataclass(frozen=True)
class JournalEvent:
    id: int
    ts_ms: int
    kind: str
    market: str | None
    order_id: str | None
    payload: Any


class JournalClosed(RuntimeError):
    """Write attempted after :meth:`Journal.close`."""


_STOP = object()


class Journal:
    """Append-only SQLite journal with a background writer thread.

    Use as a context manager or call :meth:`close`. Reads use their own connection
    and see everything committed so far (WAL allows concurrent readers).
    """

    def __init__(self, path: str, *, synchronous: str = "FULL", batch_max: int = 512,
                 max_retries: int = 5) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = path
        self.synchronous = synchronous.upper()
        self.batch_max = batch_max
        self.max_retries = max_retries
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._q: "queue.Queue[Any]" = queue.Queue()
        self._cv = threading.Condition()
        self._enqueued = 0
        self._written = 0
        self.write_errors = 0
        self.rows_failed_to_file = 0
        self._closed = False
        # Create schema synchronously so a bad path fails at start-up, loudly.
        conn = self._connect()
        conn.executescript(SCHEMA)
        conn.commit()
        conn.close()
        self._read_conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    # -- producers (non-blocking) -----------------------------------------------------
    def event(self, ts_ms: int, kind: str, payload: Any = None, *, market: str | None = None,
              order_id: str | None = None) -> None:
        """Enqueue one event row. Never blocks on disk. Serialisation happens here so a
        payload mutated later by the caller is journalled as it was at call time."""
        if self._closed:
            raise JournalClosed("journal is closed")
        if not isinstance(kind, str) or not kind:
            raise ValueError("journal event kind must be a non-empty string")
        row = (int(ts_ms), kind, market, order_id, to_json(payload if payload is not None else {}))
        with self._cv:
            self._enqueued += 1
        self._q.put(("e", row))

    def snapshot(self, ts_ms: int, state: Any) -> None:
        """Enqueue one state snapshot (positions, open orders, mode, phase...)."""
        if self._closed:
            raise JournalClosed("journal is closed")
        row = (int(ts_ms), to_json(state))
        with self._cv:
            self._enqueued += 1
        self._q.put(("s", row))

    # -- writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        conn = self._connect()
        stop = False
        while not stop:
            item = self._q.get()
            batch = []
            if item is _STOP:
                stop = True
            else:
                batch.append(item)
            while len(batch) < self.batch_max:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    continue
                batch.append(item)
            if batch:
                self._write(conn, batch)
        conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list) -> None:
        ev = [r for k, r in batch if k == "e"]
        sn = [r for k, r in batch if k == "s"]
        delay = 0.05
        for attempt in range(self.max_retries + 1):
            try:
                with conn:
                    if ev:
                        conn.executemany(
                            "INSERT INTO events (ts_ms, kind, market, order_id, payload) VALUES (?,?,?,?,?)", ev)
                    if sn:
                        conn.executemany("INSERT INTO snapshots (ts_ms, state) VALUES (?,?)", sn)
                break
            except sqlite3.Error as exc:
                self.write_errors += 1
                log.error("Journal write failed (attempt %d): %s", attempt + 1, exc)
                if attempt == self.max_retries:
                    self._spill(batch)
                    break
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        with self._cv:
            self._written += len(batch)
            self._cv.notify_all()

    def _spill(self, batch: list) -> None:
        try:
            with open(self.path + ".failed.jsonl", "a", encoding="utf-8") as f:
                for k, r in batch:
                    f.write(json.dumps({"table": "events" if k == "e" else "snapshots", "row": list(r)}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.rows_failed_to_file += len(batch)
            log.error("Journal: %d rows written to %s.failed.jsonl", len(batch), self.path)
        except OSError as exc:
            log.error("Journal: could not spill %d rows: %s", len(batch), exc)

    # -- synchronisation ------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every row enqueued before this call is committed. True on success."""
        with self._cv:
            target = self._enqueued
            return self._cv.wait_for(lambda: self._written >= target, timeout=timeout)

    async def aflush(self, timeout: float = 10.0) -> bool:
        """:meth:`flush` without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, self.flush, timeout)

    @property
    def pending(self) -> int:
        with self._cv:
            return self._enqueued - self._written

    def close(self, timeout: float = 10.0) -> None:
        """Flush everything and stop the writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._q.put(_STOP)
        self._thread.join(timeout)
        with self._read_lock:
            if self._read_conn is not None:
                self._read_conn.close()
                self._read_conn = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- queries (synchronous; call from an executor inside async code) ------------------
    def _reader(self) -> sqlite3.Connection:
        if self._read_conn is None:
            self._read_conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        return self._read_conn

    def events(self, kind: str | Iterable[str] | None = None, *, since_id: int = 0,
               since_ts_ms: int | None = None, market: str | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[JournalEvent]:
        """Committed events filtered by kind(s), id, time and market."""
        sql = "SELECT id, ts_ms, kind, market, order_id, payload FROM events WHERE id > ?"
        args: list[Any] = [since_id]
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        if since_ts_ms is not None:
            sql += " AND ts_ms >= ?"
            args.append(since_ts_ms)
        if market is not None:
            sql += " AND market = ?"
            args.append(market)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._read_lock:
            rows = self._reader().execute(sql, args).fetchall()
        return [JournalEvent(r[0], r[1], r[2], r[3], r[4], _loads(r[5])) for r in rows]

    def count(self, kind: str | None = None) -> int:
        with self._read_lock:
            if kind is None:
                return self._reader().execute("SELECT COUNT(*) FROM events").fetchone()[0]
            return self._reader().execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]

    def last_state(self) -> tuple[int, Any] | None:
        """(ts_ms, state) of the newest snapshot, or None (used by start-up reconciliation)."""
        with self._read_lock:
            r = self._reader().execute(
                "SELECT ts_ms, state FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
        return None if r is None else (r[0], _loads(r[1]))

    def kinds(self) -> dict[str, int]:
        """Event counts per kind (the sim report)."""
        with self._read_lock:
            rows = self._reader().execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall()
        return {k: n for k, n in rows}


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def open_readonly(path: str) -> sqlite3.Connection:
    """Read-only connection for reports/tools that must not create or modify the file."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
