"""The ``hourmm`` console script: dispatch, help, usage errors (exit 2), ``python -m hourmm_core.sim``."""
from __future__ import annotations

import subprocess
import sys

import pytest

from hourmm_core import cli
from hourmm_core.sim.orchestrator import build_parser, parse_start, python_argv
from tests.conftest import REPO_ROOT as ROOT

pytestmark = pytest.mark.timeout(120)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=100)


def test_help_lists_all_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("sim", "check", "calibrate", "backtest"):
        assert name in out


def test_no_command_and_unknown_command_are_usage_errors(capsys):
    assert cli.main([]) == 2
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["sim", "check", "calibrate", "backtest"])
def test_each_subcommand_has_help(cmd, capsys):
    assert cli.main([cmd, "--help"]) == 0
    assert f"hourmm {cmd}" in capsys.readouterr().out


def test_sim_rejects_bad_arguments(capsys):
    assert cli.main(["sim", "--hours", "0"]) == 2
    assert cli.main(["sim", "--speed", "100000"]) == 2
    assert cli.main(["sim", "--start", "yesterday-ish"]) == 2
    assert "neither ms since the epoch nor an ISO-8601" in capsys.readouterr().err


def test_parse_start_accepts_iso_and_ms():
    assert parse_start("1769090400000") == 1_769_090_400_000
    assert parse_start("2026-01-22T14:00:00Z") == 1_769_090_400_000
    assert parse_start("2026-01-22T14:00:00") == 1_769_090_400_000
    assert parse_start("2026-01-22T09:00:00-05:00") == 1_769_090_400_000


def test_sim_defaults_are_the_readme_run():
    a = build_parser().parse_args([])
    assert (a.hours, a.speed, a.seed) == (2, 60.0, 7)


def test_python_argv_swaps_in_this_interpreter():
    assert python_argv(["python", "-m", "runners.binance_pricer"]) == [sys.executable, "-m", "runners.binance_pricer"]


def test_console_module_and_sim_module_entry_points():
    r = _run("hourmm_core.cli", "--help")
    assert r.returncode == 0 and "calibrate" in r.stdout
    r = _run("hourmm_core.sim", "--help")
    assert r.returncode == 0 and "--hours" in r.stdout and "--speed" in r.stdout
