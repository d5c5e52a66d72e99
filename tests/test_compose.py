"""Packaging: docker-compose.yml as the operator guide says, Dockerfile entrypoints == the sim's commands.

No Docker engine runs here; ``docker-compose config`` (Debian's, installed by .ci/run)
validates the file, and the structure is asserted from the YAML itself.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hourmm_core.sim.orchestrator import PRICER_ARGV, TRADER_ARGV

ROOT = Path(__file__).resolve().parent.parent
GUIDE_VARS = [
    "PM_PRIVATE_KEY", "PM_FUNDER", "PM_SIGNATURE_TYPE", "PM_API_KEY", "PM_API_SECRET", "PM_PASSPHRASE",
    "MARKET_SLUG", "MAX_RESERVED_CAPITAL", "MAX_POSITION_SIZE", "MAX_ORDER_SIZE", "MAX_OPEN_ORDERS",
    "BINANCE_SYMBOL", "HTTP_PORT", "STALE_THRESHOLD_MS", "SNAPSHOT_PUBLISH_HZ", "LOG_LEVEL",
    "SNAPSHOT_URL", "POLL_SNAPSHOT_HZ", "SQLITE_PATH", "CONTROL_PORT", "T_WIND_MS", "T_FLATTEN_MS",
    "HARD_CUTOFF_MS",
]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile_stages() -> dict[str, list[str]]:
    """stage name -> its instruction lines (continuations joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    cur = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            cur = m.group(2) or m.group(1)
            stages[cur] = [line]
        elif cur:
            stages[cur].append(line)
    return stages


def _entrypoint(stage: list[str]) -> list[str]:
    eps = [json.loads(l.split(None, 1)[1]) for l in stage if l.upper().startswith("ENTRYPOINT")]
    assert len(eps) == 1, stage
    return eps[0]


def test_dockerfile_entrypoints_are_the_sims_commands():
    stages = _dockerfile_stages()
    assert _entrypoint(stages["binance_pricer"]) == list(PRICER_ARGV)
    assert _entrypoint(stages["polymarket_trader"]) == list(TRADER_ARGV)


def test_dockerfile_builder_wheel_slim_runtime_non_root_no_secrets():
    stages = _dockerfile_stages()
    assert any("pip wheel" in l for l in stages["builder"])
    assert stages["runtime"][0].startswith("FROM python:3.12-slim")
    assert any(l.startswith("USER ") and "root" not in l for l in stages["runtime"])
    text = (ROOT / "Dockerfile").read_text()
    assert "PM_PRIVATE_KEY" not in text and "prod.env" not in text
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "deploy/prod.env" in ignore and ".git" in ignore


def test_compose_structure_matches_the_guide():
    c = _compose()
    svc = c["services"]
    assert set(svc) == {"binance_pricer", "polymarket_trader"}
    a, b = svc["binance_pricer"], svc["polymarket_trader"]
    assert a["container_name"] == "hourmm-binance-pricer"
    assert b["container_name"] == "hourmm-polymarket-trader"
    for s in (a, b):
        assert s["env_file"] == ["deploy/prod.env"]
        assert s["restart"] == "unless-stopped"
        assert re.search(r"/(health|status)\b", " ".join(s["healthcheck"]["test"]))
        assert "curl" not in " ".join(s["healthcheck"]["test"])
        assert all(p.startswith("127.0.0.1:") for p in s["ports"]), s["ports"]
    assert a["ports"] == ["127.0.0.1:8080:8080"] and b["ports"] == ["127.0.0.1:9000:9000"]
    assert b["volumes"] == ["hourmm_journal:/data"] and "hourmm_journal" in c["volumes"]
    assert b["depends_on"]["binance_pricer"]["condition"] == "service_healthy"
    assert "/health" in " ".join(a["healthcheck"]["test"])
    assert b["environment"]["CONTROL_HOST"] == "0.0.0.0"
    assert b["environment"]["SQLITE_PATH"].startswith("/data/")
    assert a["build"]["target"] == "binance_pricer" and b["build"]["target"] == "polymarket_trader"


def test_prod_env_example_documents_every_variable_without_secrets():
    text = (ROOT / "deploy" / "prod.env.example").read_text()
    for var in GUIDE_VARS:
        assert re.search(rf"^#?\s*{var}=", text, re.M), f"{var} missing from deploy/prod.env.example"
    assert not re.search(r"0x[0-9a-fA-F]{64}", text)
    assert "deploy/prod.env" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed (.ci/run installs it)")
def test_docker_compose_config_validates(tmp_path):
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / "deploy" / "prod.env.example", tmp_path / "deploy" / "prod.env")
    r = subprocess.run(["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["services"]["polymarket_trader"]["depends_on"]["binance_pricer"]["condition"] == "service_healthy"
    assert cfg["services"]["polymarket_trader"]["ports"][0].startswith("127.0.0.1:9000:9000")


def test_healthcheck_one_liners_are_valid_python():
    for name, s in _compose()["services"].items():
        test = s["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"<healthcheck {name}>", "exec")


@pytest.mark.timeout(120)
def test_pricer_healthcheck_command_against_a_running_pricer():
    """The compose healthcheck one-liner, run for real against container A's runner on loopback."""
    import os
    import socket
    import sys
    import time
    import urllib.request

    hc = _compose()["services"]["binance_pricer"]["healthcheck"]["test"][3]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "BINANCE_", "HTTP_"))}
    env["HOURMM_SIM_CLOCK"] = f"60,{1_769_090_400_000 + 30 * 60_000},{int(time.time() * 1000)}"
    dead = subprocess.run([sys.executable, "-c", hc], env=dict(env, HTTP_PORT=str(port)), timeout=30,
                          capture_output=True)
    assert dead.returncode != 0            # nothing listening: unhealthy
    replay = subprocess.Popen([sys.executable, "-m", "hourmm_core.sim.binance_replay", "--port", "0", "--hours", "1"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pricer = None
    try:
        line = replay.stdout.readline()
        assert line.startswith("READY"), line
        urls = dict(kv.split("=", 1) for kv in line.split()[1:])
        penv = dict(env, BINANCE_WS_URL=urls["ws"], BINANCE_REST_URL=urls["rest"], HTTP_HOST="127.0.0.1",
                    HTTP_PORT=str(port))
        pricer = subprocess.Popen([sys.executable, *PRICER_ARGV[1:]], env=penv, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, rc = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            rc = subprocess.run([sys.executable, "-c", hc], env=penv, timeout=30, capture_output=True).returncode
            if rc == 0:
                break
            time.sleep(0.5)
        assert rc == 0
        body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5))
        assert set(body) == {"healthy", "has_snapshot", "stale", "seq", "age_ms"}
    finally:
        for p in (pricer, replay):
            if p is not None:
                p.terminate()
                p.wait(15)


@pytest.mark.timeout(120)
def test_trader_healthcheck_command_with_bearer_token(tmp_path):
    """The trader's healthcheck reaches /status with CONTROL_TOKEN (as the container's env has it)."""
    import os
    import socket
    import sys
    import time

    hc = _compose()["services"]["polymarket_trader"]["healthcheck"]["test"][3]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        with socket.socket() as s2:
            s2.bind(("127.0.0.1", 0))
            port = s2.getsockname()[1]
    token = "tok-" + "k" * 16
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "CONTROL_", "HOURMM_SIM_CLOCK"))}
    env.update(CONTROL_PORT=str(port), CONTROL_TOKEN=token, SQLITE_PATH=str(tmp_path / "j.db"),
               GAMMA_URL=f"http://127.0.0.1:{dead}", CLOB_URL=f"http://127.0.0.1:{dead}",
               PM_WS_URL=f"ws://127.0.0.1:{dead}", SNAPSHOT_URL=f"http://127.0.0.1:{dead}/snapshot/latest")
    trader = subprocess.Popen([sys.executable, *TRADER_ARGV[1:]], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, rc = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            rc = subprocess.run([sys.executable, "-c", hc], env=env, timeout=30, capture_output=True).returncode
            if rc == 0:
                break
            time.sleep(0.5)
        assert rc == 0
        no_token = {k: v for k, v in env.items() if k != "CONTROL_TOKEN"}
        assert subprocess.run([sys.executable, "-c", hc], env=no_token, timeout=30,
                              capture_output=True).returncode != 0   # 401 without the bearer token
    finally:
        trader.terminate()
        trader.wait(20)
