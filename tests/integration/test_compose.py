"""Packaging: docker-compose.yml as the operator guide says, Dockerfile entrypoints == the sim's commands.

No Docker engine runs here; ``docker-compose config`` (Debian's, installed by .ci/run)
validates the file, and the structure is asserted from the YAML itself. The images are
built and the stack is run for real by ``deploy/container-smoke`` (CI runs it after the tests).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from hourmm_core.data.synthetic import DEFAULT_SYNTHETIC_START_MS
from hourmm_core.sim.orchestrator import PRICER_ARGV, TRADER_ARGV
from tests.conftest import REPO_ROOT as ROOT

HEALTHCHECK = ROOT / "deploy" / "healthcheck"
SECRET_VARS = ["PM_PRIVATE_KEY", "PM_FUNDER", "PM_SIGNATURE_TYPE", "PM_API_KEY", "PM_API_SECRET", "PM_PASSPHRASE",
               "CONTROL_TOKEN"]
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
    text = (ROOT / "Dockerfile").read_text()
    # production builds on the official slim image; CI passes --build-arg BASE=localhost/...
    assert re.search(r"^ARG BASE=python:3\.12-slim$", text, re.M)
    assert stages["builder"][0].startswith("FROM ${BASE}") and stages["runtime"][0].startswith("FROM ${BASE}")
    assert any(l.startswith("USER ") and "root" not in l for l in stages["runtime"])
    assert "PM_PRIVATE_KEY" not in text and ".env" not in text
    for target, which in (("binance_pricer", "pricer"), ("polymarket_trader", "trader")):
        hc = [l for l in stages[target] if l.upper().startswith("HEALTHCHECK")]
        assert len(hc) == 1 and json.loads(hc[0].split("CMD", 1)[1]) == ["hourmm-healthcheck", which]


def test_dockerignore_keeps_data_caches_and_secrets_out():
    ignore = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", "sim_out/", "data/", "**/__pycache__", ".pytest_cache/", "deploy/*", "*.env",
                    "**/*.env", "**/*.db"):
        assert pattern in ignore, pattern
    assert "!deploy/healthcheck" in ignore      # the one deploy file the images need


def test_compose_structure_matches_the_guide():
    c = _compose()
    svc = c["services"]
    assert set(svc) == {"binance_pricer", "polymarket_trader"}
    a, b = svc["binance_pricer"], svc["polymarket_trader"]
    assert a["container_name"] == "hourmm-binance-pricer"
    assert b["container_name"] == "hourmm-polymarket-trader"
    # container A gets its own env file; the wallet secrets reach container B only, as a
    # read-only file (not an env_file: `docker inspect` would show those values)
    assert a["env_file"] == ["deploy/pricer.env"] and b["env_file"] == ["deploy/trader.env"]
    assert "volumes" not in a and not any("secret" in str(v).lower() for v in a.get("environment", {}).values())
    assert "./deploy/secrets.env:/run/secrets/hourmm.env:ro" in b["volumes"]
    assert b["environment"]["HOURMM_SECRETS_FILE"] == "/run/secrets/hourmm.env"
    for s, which in ((a, "pricer"), (b, "trader")):
        assert s["restart"] == "unless-stopped"
        # no argument with a space: podman 4.3 behind docker-compose splits them
        assert s["healthcheck"]["test"] == ["CMD", "hourmm-healthcheck", which]
        assert all(p.startswith("127.0.0.1:") for p in s["ports"]), s["ports"]
    assert a["ports"] == ["127.0.0.1:8080:8080"] and b["ports"] == ["127.0.0.1:9000:9000"]
    assert b["volumes"][0] == "hourmm_journal:/data" and "hourmm_journal" in c["volumes"]
    assert b["depends_on"]["binance_pricer"]["condition"] == "service_healthy"
    assert b["environment"]["CONTROL_HOST"] == "0.0.0.0"
    assert b["environment"]["SQLITE_PATH"].startswith("/data/")
    assert a["build"]["target"] == "binance_pricer" and b["build"]["target"] == "polymarket_trader"


def test_env_examples_document_every_variable_and_keep_secrets_apart():
    files = {n: (ROOT / "deploy" / f"{n}.env.example").read_text() for n in ("pricer", "trader", "secrets")}
    for var in GUIDE_VARS:
        assert any(re.search(rf"^#?\s*{var}=", t, re.M) for t in files.values()), f"{var} in no deploy/*.env.example"
    for var in SECRET_VARS:   # credentials only in the secrets file
        assert re.search(rf"^#?\s*{var}=", files["secrets"], re.M), var
        assert not re.search(rf"^#?\s*{var}=", files["pricer"] + files["trader"], re.M), var
    for t in files.values():
        assert not re.search(r"0x[0-9a-fA-F]{40}", t)   # no key or address, not even an example one
    gitignore = (ROOT / ".gitignore").read_text().split()
    for name in ("deploy/prod.env", "deploy/pricer.env", "deploy/trader.env", "deploy/secrets.env"):
        assert name in gitignore, name


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed (.ci/run installs it)")
def test_docker_compose_config_validates(tmp_path):
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    for n in ("pricer", "trader", "secrets"):
        shutil.copy(ROOT / "deploy" / f"{n}.env.example", tmp_path / "deploy" / f"{n}.env")
    r = subprocess.run(["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["services"]["polymarket_trader"]["depends_on"]["binance_pricer"]["condition"] == "service_healthy"
    assert cfg["services"]["polymarket_trader"]["ports"][0].startswith("127.0.0.1:9000:9000")
    # the secrets are a file, not environment: the rendered config holds no PM_PRIVATE_KEY
    assert "PM_PRIVATE_KEY" not in json.dumps(cfg["services"]["binance_pricer"])
    assert "PM_PRIVATE_KEY" not in json.dumps(cfg["services"]["polymarket_trader"].get("environment", {}))


def _healthcheck(which: str, env: dict, **kw) -> subprocess.CompletedProcess:
    """The image's ``hourmm-healthcheck <which>`` (deploy/healthcheck), run as the container would."""
    import sys

    return subprocess.run([sys.executable, str(HEALTHCHECK), which], env=env, timeout=30, capture_output=True,
                          text=True, **kw)


def test_healthcheck_script_usage_error():
    r = _healthcheck("bogus", {})
    assert r.returncode != 0 and "usage" in r.stderr


@pytest.mark.timeout(120)
def test_pricer_healthcheck_command_against_a_running_pricer():
    """The health check, run for real against container A's runner on loopback: 503 until healthy."""
    import os
    import socket
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "BINANCE_", "HTTP_"))}
    env["HOURMM_SIM_CLOCK"] = f"60,{DEFAULT_SYNTHETIC_START_MS + 30 * 60_000},{int(time.time() * 1000)}"
    dead = _healthcheck("pricer", dict(env, HTTP_PORT=str(port)))
    assert dead.returncode != 0 and "unhealthy" in dead.stdout    # nothing listening
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
        deadline, rc, seen_503 = time.monotonic() + 60, None, False
        while time.monotonic() < deadline:
            r = _healthcheck("pricer", penv)
            rc, seen_503 = r.returncode, seen_503 or "HTTP 503" in r.stdout
            if rc == 0:
                break
            time.sleep(0.2)
        assert rc == 0
        body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5))
        assert set(body) == {"healthy", "has_snapshot", "stale", "seq", "age_ms"} and body["healthy"] is True
        # stop the feed: the pricer goes stale and /health answers 503 with the same JSON fields
        replay.terminate()
        replay.wait(15)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _healthcheck("pricer", penv).returncode == 0:
            time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
        assert err.value.code == 503
        body = json.load(err.value)
        assert set(body) == {"healthy", "has_snapshot", "stale", "seq", "age_ms"}
        assert body["healthy"] is False and body["stale"] is True
    finally:
        for p in (pricer, replay):
            if p is not None:
                p.terminate()
                p.wait(15)


@pytest.mark.timeout(120)
def test_trader_healthcheck_command_with_bearer_token(tmp_path):
    """As compose runs it: the trader reads CONTROL_TOKEN from HOURMM_SECRETS_FILE (not its
    environment), and the health check reaches /status with that token (or one in the env)."""
    import os
    import socket
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        with socket.socket() as s2:
            s2.bind(("127.0.0.1", 0))
            port = s2.getsockname()[1]
    token = "tok-" + "k" * 16
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"# test\nCONTROL_TOKEN={token}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "CONTROL_", "HOURMM_"))}
    env.update(CONTROL_PORT=str(port), SQLITE_PATH=str(tmp_path / "j.db"), PYTHONPATH=str(ROOT),
               GAMMA_URL=f"http://127.0.0.1:{dead}", CLOB_URL=f"http://127.0.0.1:{dead}",
               PM_WS_URL=f"ws://127.0.0.1:{dead}", SNAPSHOT_URL=f"http://127.0.0.1:{dead}/snapshot/latest")
    with_file = dict(env, HOURMM_SECRETS_FILE=str(secrets))
    trader = subprocess.Popen([sys.executable, *TRADER_ARGV[1:]], env=with_file, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, rc = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            rc = _healthcheck("trader", with_file).returncode
            if rc == 0:
                break
            time.sleep(0.5)
        assert rc == 0
        r = _healthcheck("trader", env)            # no token anywhere: the trader took it from the file
        assert r.returncode != 0 and "HTTP 401" in r.stdout and token not in r.stdout
        r = _healthcheck("trader", dict(env, CONTROL_TOKEN=token))
        assert r.returncode == 0, r.stdout + r.stderr
        assert token not in r.stdout + r.stderr
    finally:
        trader.terminate()
        trader.wait(20)


def test_healthcheck_reads_the_token_like_the_runner(tmp_path, monkeypatch):
    """deploy/healthcheck's own CONTROL_TOKEN reader agrees with hourmm_core.check.load_env_file."""
    import importlib.machinery
    import importlib.util

    from hourmm_core.check import load_env_file

    loader = importlib.machinery.SourceFileLoader("hourmm_healthcheck", str(HEALTHCHECK))
    hc = importlib.util.module_from_spec(importlib.util.spec_from_loader("hourmm_healthcheck", loader))
    loader.exec_module(hc)
    monkeypatch.delenv("CONTROL_TOKEN", raising=False)
    cases = ["CONTROL_TOKEN=abc\n", "# CONTROL_TOKEN=commented\nexport CONTROL_TOKEN = 'q t'\n",
             'PM_FUNDER=x\n  CONTROL_TOKEN="dq"  \nOTHER=1\n', "CONTROL_TOKEN=first\nCONTROL_TOKEN=second\n",
             "NOTHING=here\n", "CONTROL_TOKEN=\n"]
    for i, text in enumerate(cases):
        f = tmp_path / f"s{i}.env"
        f.write_text(text)
        monkeypatch.setenv("HOURMM_SECRETS_FILE", str(f))
        assert hc._control_token() == load_env_file(str(f)).get("CONTROL_TOKEN", "").strip(), text


def test_trader_refuses_a_secrets_file_it_cannot_read(tmp_path):
    """A missing bind-mount source becomes a directory under docker: a clear error, exit 2."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "CONTROL_", "HOURMM_"))}
    for path, why in ((tmp_path, "is a directory"), (tmp_path / "nope.env", "cannot be read")):
        r = subprocess.run([sys.executable, *TRADER_ARGV[1:]], env=dict(env, HOURMM_SECRETS_FILE=str(path)),
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and why in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)


def test_smoke_override_only_adds_the_simulators_and_points_the_urls():
    """deploy/docker-compose.smoke.yml is the only difference from production in the container smoke run."""
    over = yaml.safe_load((ROOT / "deploy" / "docker-compose.smoke.yml").read_text())["services"]
    prod = _compose()["services"]
    assert set(over) == set(prod) | {"binance_replay", "polymarket_sim"}
    allowed = {"HOURMM_SIM_CLOCK", "BINANCE_WS_URL", "BINANCE_REST_URL", "GAMMA_URL", "CLOB_URL", "PM_WS_URL"}
    for name in prod:
        assert set(over[name]) == {"environment"}, name          # no port, volume, image or env_file change
        assert set(over[name]["environment"]) <= allowed, name
    for name, module in (("binance_replay", "hourmm_core.sim.binance_replay"), ("polymarket_sim", "hourmm_core.sim.polymarket")):
        sim = over[name]
        assert sim["image"] == prod["polymarket_trader"]["image"]     # the same image as production
        assert sim["entrypoint"] == ["python", "-m", module]
        assert all(v.endswith(":ro") for v in sim["volumes"])          # real data, read-only
        assert all(p.startswith("127.0.0.1:") for p in sim.get("ports", []))
    smoke = (ROOT / "deploy" / "container-smoke").read_text()
    assert "docker-compose.smoke.yml" in smoke and os.access(ROOT / "deploy" / "container-smoke", os.X_OK)
