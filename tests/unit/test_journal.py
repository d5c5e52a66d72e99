"""SQLite WAL journal: schema, async-safe writes, redaction, crash survival."""
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from hourmm_core.journal import Journal, JournalClosed, scrub
from hourmm_core.logsetup import register_secret


def test_schema_and_roundtrip(tmp_path):
    p = str(tmp_path / "j.db")
    with Journal(p) as j:
        j.event(1000, "order_intent", {"side": "BUY", "price": 0.48, "size": 5.0}, market="m1", order_id="c1")
        j.event(1001, "order_ack", {"order_id": "0xabc"}, market="m1", order_id="c1")
        j.snapshot(1002, {"mode": "NORMAL", "positions": {"up": 1.0}})
        assert j.flush(5)
        evs = j.events()
        assert [e.kind for e in evs] == ["order_intent", "order_ack"]
        assert evs[0].payload["price"] == 0.48 and evs[0].market == "m1" and evs[0].order_id == "c1"
        assert j.events("order_ack")[0].ts_ms == 1001
        assert j.events(newest_first=True, limit=1)[0].kind == "order_ack"
        assert j.last_state() == (1002, {"mode": "NORMAL", "positions": {"up": 1.0}})
        assert j.kinds() == {"order_intent": 1, "order_ack": 1}
    con = sqlite3.connect(p)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in con.execute("PRAGMA table_info(events)")]
    assert cols[:3] == ["id", "ts_ms", "kind"] and cols[-1] == "payload"
    assert [r[1] for r in con.execute("PRAGMA table_info(snapshots)")] == ["id", "ts_ms", "state"]
    # the guide's query works
    rows = con.execute("SELECT * FROM events ORDER BY id DESC LIMIT 10").fetchall()
    assert rows[0][2] == "order_ack"
    with pytest.raises(JournalClosed):
        j.event(1, "x")


def test_secrets_never_written(tmp_path):
    secret = "s3cr3t-" + "q" * 20
    register_secret(secret)
    key = "0x" + "ab" * 32
    register_secret(key)
    order_id = "0x" + "cd" * 32  # order ids / condition ids share the key's shape and must survive
    p = str(tmp_path / "j.db")
    with Journal(p) as j:
        j.event(1, "config", {"private_key": key, "api_secret": "x" * 10, "passphrase": "pp",
                              "note": f"leak {secret} and {key[2:]}", "token_id": "123",
                              "nested": [{"secret": "abc"}], "order": order_id})
        j.snapshot(2, {"creds": {"api_passphrase": "zzz"}, "nan": float("nan")})
        j.flush()
        assert j.events()[0].payload["token_id"] == "123"
        assert j.events()[0].payload["order"] == order_id
    raw = open(p, "rb").read() + (open(p + "-wal", "rb").read() if os.path.exists(p + "-wal") else b"")
    con = sqlite3.connect(p)
    text = " ".join(r[0] for r in con.execute("SELECT payload FROM events UNION ALL SELECT state FROM snapshots"))
    for s in (secret, key, key[2:], "x" * 10, "zzz"):
        assert s not in text
        assert s.encode() not in raw
    assert '"nan":null' in text


def test_scrub_odd_types():
    import enum

    class M(enum.IntEnum):
        HALT = 3

    assert scrub({"m": M.HALT, "t": (1, 2), "o": object}) ["m"] == "HALT"
    assert scrub({"t": (1, 2)}) == {"t": [1, 2]}


async def test_async_producers_do_not_block_and_aflush(tmp_path):
    j = Journal(str(tmp_path / "j.db"), synchronous="NORMAL")
    try:
        for i in range(2000):
            j.event(i, "tick", {"i": i})
        assert await j.aflush(10)
        assert j.count("tick") == 2000 and j.pending == 0
        ids = [e.id for e in j.events("tick")]
        assert ids == sorted(ids) and len(set(ids)) == 2000
    finally:
        j.close()


@pytest.mark.timeout(60)
def test_survives_sigkill(tmp_path):
    p = str(tmp_path / "crash.db")
    code = textwrap.dedent(f"""
        import sys, time
        from hourmm_core.journal import Journal
        j = Journal({p!r})
        for i in range(500):
            j.event(i, "fill", {{"i": i}})
        j.snapshot(999, {{"pos": 5}})
        assert j.flush(20)
        print("FLUSHED", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "FLUSHED"
        proc.kill()  # SIGKILL: no atexit, no close
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    j = Journal(p)
    try:
        assert j.count("fill") == 500
        assert j.last_state() == (999, {"pos": 5})
        j.event(1000, "restart", {})
        j.flush()
        assert j.events(newest_first=True, limit=1)[0].kind == "restart"
    finally:
        j.close()


def test_bad_path_fails_at_startup(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(Exception):
        Journal(str(f / "sub" / "j.db"))


def test_write_failure_spills_rows_to_file_not_lost(tmp_path):
    import json as _json

    p = str(tmp_path / "j.db")
    j = Journal(p, max_retries=1)
    try:
        j.event(1, "ok", {})
        assert j.flush()
        other = sqlite3.connect(p)
        other.execute("DROP TABLE events")   # every later insert fails for real
        other.commit()
        other.close()
        j.event(2, "fill", {"size": 5})
        assert j.flush(10)
        assert j.write_errors == 2 and j.rows_failed_to_file == 1
        rows = [_json.loads(line) for line in open(p + ".failed.jsonl")]
        assert rows == [{"table": "events", "row": [2, "fill", None, None, '{"size":5}']}]
    finally:
        j.close()


def test_concurrent_producers_from_threads(tmp_path):
    import threading

    j = Journal(str(tmp_path / "t.db"), synchronous="NORMAL")
    try:
        def produce(t):
            for i in range(300):
                j.event(i, f"k{t}", {"t": t, "i": i})

        ths = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        assert j.flush(20)
        assert j.kinds() == {f"k{t}": 300 for t in range(4)}
        # per producer, rows keep their enqueue order
        for t in range(4):
            assert [e.payload["i"] for e in j.events(f"k{t}")] == list(range(300))
    finally:
        j.close()
