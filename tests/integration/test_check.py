"""``hourmm check``: one PASS/FAIL line per connection test, non-zero exit on failure, no secrets.

Runs the real command in a subprocess against the real loopback simulators
(Binance replay; the Polymarket simulator when it is available) on ephemeral ports.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from hourmm_core.check import FAIL, PASS, SKIP, CheckResult, load_env_file
from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from tests.conftest import REPO_ROOT as ROOT
from tests.conftest import new_key

pytestmark = pytest.mark.timeout(120)
#: 2026-01-22T14:00:00Z: the synthetic stand-in's first hour
SYN_START = DEFAULT_SYNTHETIC_START_MS   # 2026-01-22T14:00Z, where synthetic_ticks starts


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PM_", "BINANCE_", "GAMMA_", "CLOB_", "HOURMM_SIM_CLOCK", "MARKET_SLUG"))}
    env.update(kw)
    return env


def _run_check(env: dict[str, str], *args: str, wait_s: int = 5) -> subprocess.CompletedProcess:
    """``wait_s`` is the check's own per-endpoint deadline: short where the answer is a refusal,
    generous where a simulator must start serving on a loaded 2-core CI machine (it only
    lengthens a failing run; a healthy one answers at once)."""
    return subprocess.run([sys.executable, "-m", "hourmm_core.cli", "check", "--timeout", str(wait_s), *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=6 * wait_s + 60)


def _dead_endpoints() -> dict[str, str]:
    import socket
    with socket.socket() as s:   # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"BINANCE_WS_URL": f"ws://127.0.0.1:{port}", "GAMMA_URL": f"http://127.0.0.1:{port}",
            "PM_WS_URL": f"ws://127.0.0.1:{port}", "CLOB_URL": f"http://127.0.0.1:{port}"}


class _Server:
    """A simulator child process that prints ``READY k=v ...`` on stdout."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 60
        self.fields: dict[str, str] = {}
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY"):
                self.fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                break
        if not self.fields:
            self.stop()
            raise RuntimeError(f"{argv} gave no READY line")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _clock(speed: int = 60, start: int = SYN_START + 30 * 60_000) -> str:
    return f"{speed},{start},{int(time.time() * 1000)}"


def test_everything_refused_fails_each_line_and_exits_nonzero():
    r = _run_check(_env(**_dead_endpoints()))
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 1, r.stdout + r.stderr
    assert lines[0].startswith("FAIL | Binance WebSocket")
    assert lines[1].startswith("FAIL | Gamma discovery")
    assert lines[2].startswith("FAIL | Polymarket market WebSocket")
    assert lines[3].startswith("SKIP | Order signing")
    assert lines[-1].startswith("FAIL | hourmm check:") and "3 failed" in lines[-1]


def test_credentials_never_printed_and_signing_failure_is_a_fail_line():
    key, address = new_key()
    secret = "s3cr3t-" + "q" * 20
    env = _env(**_dead_endpoints(), PM_PRIVATE_KEY=key, PM_FUNDER=address, PM_SIGNATURE_TYPE="1",
               PM_API_KEY="k-" + "z" * 10, PM_API_SECRET=secret, PM_PASSPHRASE="pp-" + "w" * 12)
    r = _run_check(env)
    out = r.stdout + r.stderr
    assert r.returncode == 1
    assert key not in out and key[2:] not in out and secret not in out and ("pp-" + "w" * 12) not in out
    assert re.search(r"^(PASS|FAIL) \| Order signing", r.stdout, re.M)
    assert re.search(r"^FAIL \| Authenticated read", r.stdout, re.M)


def test_malformed_credentials_are_one_clear_fail():
    env = _env(**_dead_endpoints(), PM_PRIVATE_KEY="0x1234", PM_FUNDER="0xabc", PM_SIGNATURE_TYPE="1")
    r = _run_check(env)
    assert r.returncode == 1
    assert "FAIL | Credentials: PM_PRIVATE_KEY is malformed" in r.stdout
    assert "0x1234" not in r.stdout


def test_env_file_is_read_and_bad_file_fails(tmp_path):
    f = tmp_path / "prod.env"
    f.write_text("# comment\nexport MARKET_SLUG='bitcoin-up-or-down'\nMAX_OPEN_ORDERS=4\n\n")
    assert load_env_file(str(f)) == {"MARKET_SLUG": "bitcoin-up-or-down", "MAX_OPEN_ORDERS": "4"}
    bad = tmp_path / "bad.env"
    bad.write_text("NOT A SETTING\n")
    r = _run_check(_env(**_dead_endpoints()), "--env-file", str(bad))
    assert r.returncode == 1 and "FAIL | Configuration" in r.stdout


def test_result_line_format():
    assert CheckResult("X", PASS, "ok").line() == "PASS | X: ok"
    assert {PASS, FAIL, SKIP} == {"PASS", "FAIL", "SKIP"}


@pytest.mark.timeout(300)
def test_binance_ws_passes_against_the_replay_server():
    clock = _clock()
    env = _env(HOURMM_SIM_CLOCK=clock)
    srv = _Server([sys.executable, "-m", "hourmm_core.sim.binance_replay", "--port", "0", "--hours", "1"], env)
    try:
        dead = _dead_endpoints()
        r = _run_check(_env(HOURMM_SIM_CLOCK=clock, BINANCE_WS_URL=srv.fields["ws"],
                            GAMMA_URL=dead["GAMMA_URL"], PM_WS_URL=dead["PM_WS_URL"]), wait_s=20)
    finally:
        srv.stop()
    assert re.search(r"^PASS \| Binance WebSocket: .*(trade|BBO) \d", r.stdout, re.M), r.stdout + r.stderr
    assert r.returncode == 1  # the Polymarket side was pointed at a dead port


def _pm_sim_available() -> bool:
    return (ROOT / "hourmm_core" / "sim" / "polymarket" / "__main__.py").exists()


@pytest.mark.timeout(400)
@pytest.mark.skipif(not _pm_sim_available(), reason="Polymarket simulator server not built yet")
def test_all_checks_pass_against_both_simulators():
    clock = _clock()
    env = _env(HOURMM_SIM_CLOCK=clock)
    replay = _Server([sys.executable, "-m", "hourmm_core.sim.binance_replay", "--port", "0", "--hours", "2"], env)
    try:
        pm = _Server([sys.executable, "-m", "hourmm_core.sim.polymarket", "--port", "0", "--hours", "2",
                      "--speed", "60", "--start-ms", str(SYN_START), "--seed", "7"], env)
        try:
            key, address = new_key()
            urls = dict(BINANCE_WS_URL=replay.fields["ws"], GAMMA_URL=pm.fields["gamma"],
                        CLOB_URL=pm.fields["clob"], PM_WS_URL=pm.fields["ws"])
            r = _run_check(_env(HOURMM_SIM_CLOCK=clock, **urls, PM_PRIVATE_KEY=key, PM_FUNDER=address,
                                PM_SIGNATURE_TYPE="1"), wait_s=20)
            # a year later there is no such hourly market: Gamma FAILs, the exit code says so
            later = _run_check(_env(HOURMM_SIM_CLOCK=_clock(start=SYN_START + 365 * 24 * 3_600_000), **urls))
        finally:
            pm.stop()
    finally:
        replay.stop()
    assert key not in r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("Binance WebSocket", "Gamma discovery", "Polymarket market WebSocket",
                 "Order signing", "Authenticated read"):
        assert re.search(rf"^PASS \| {name}:", r.stdout, re.M), (name, r.stdout)
    assert later.returncode == 1
    # the slug has no year: the 2026 market answers, and is refused because it is not this hour's
    assert re.search(r"^FAIL \| Gamma discovery: market bitcoin-up-or-down-january-22-\d+(am|pm)-et "
                     r"(not found|found but it is for 2026-01-22)", later.stdout, re.M), later.stdout
