"""``hourmm backtest``: one backtest (per-hour table, plots, result JSON) or a sweep grid.

Reads the ``backtest:`` and ``sweep:`` sections of configs/research.yaml (overlaid by
``--config``) and ``--set KEY=VALUE`` overrides (flat knob names, see
:meth:`hourmm_core.research.backtest.BacktestParams.replace`).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from hourmm_core.config import shipped_trader_config
from hourmm_core.errors import ConfigError
from hourmm_core.logsetup import setup_logging
from hourmm_core.research import calibration as cal
from hourmm_core.research.backtest import BacktestParams, format_backtest, result_json, run_backtest, sweep_backtest
from hourmm_core.research.settings import load_research_config


def params_from_config(cfg: Mapping[str, Any]) -> BacktestParams:
    """BacktestParams: the live trader's shipped defaults (configs/trader.yaml: strategy,
    limits, schedule, requote tolerances) overlaid by the ``backtest:`` section of
    configs/research.yaml (research-only knobs; an overlay may still set any flat knob)."""
    d = dict(cfg)
    agents = d.pop("agents", None) or {}
    if not isinstance(agents, Mapping):
        raise ValueError("backtest.agents must be a mapping of AgentConfig fields")
    fee = d.pop("fee", None) or {}
    return BacktestParams.from_trader_config(shipped_trader_config()).replace(fee=fee, agents=agents, **d)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hourmm backtest",
                                 description="Backtest strategy+ladder+risk against the simulator engine, hour by hour.")
    ap.add_argument("data", nargs="?", default=None, help="data dir/file (default: find_data_dir(); synthetic when none)")
    ap.add_argument("--config", default=None, help="YAML overlaying configs/research.yaml")
    ap.add_argument("--out", default="out/backtest", help="directory for backtest.png, index.html, result.json")
    ap.add_argument("--hours", type=int, default=None, help="backtest at most this many hours")
    ap.add_argument("--start", default=None, help="first hour (UTC, e.g. 2025-06-01 or 2025-06-01T05:00)")
    ap.add_argument("--end", default=None, help="end of the window (UTC, exclusive)")
    ap.add_argument("--every", type=int, default=1, help="keep every k-th hour of the window (systematic sample)")
    ap.add_argument("--synthetic-hours", type=int, default=None, help="size of the synthetic stand-in")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a backtest parameter, e.g. --set half_spread=0.03")
    ap.add_argument("--workers", type=int, default=1, help="processes to spread the hours (or sweep points) over")
    ap.add_argument("--sweep", action="store_true",
                    help="run the grid of configs/research.yaml `sweep.grid` instead of one backtest")
    ap.add_argument("--scheduler", default=None, help="with --sweep: Dask scheduler address (tcp://host:8786)")
    ap.add_argument("--no-plots", action="store_true")
    return ap


def _utc_ms(raw: str | None) -> int | None:
    """'2025-06-01' / '2025-06-01T05:00' (UTC) or epoch ms -> ms UTC; None passes through."""
    if raw is None:
        return None
    if raw.strip().isdigit():
        return int(raw)
    try:
        t = _dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"bad UTC time {raw!r}: use 2025-06-01 or 2025-06-01T05:00") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1000)


def _coerce(p: BacktestParams, key: str, raw: str) -> Any:
    cur = p.flat().get(key)
    if key == "latency":          # --set latency=MS: ConstantLatency(MS, MS)
        return int(raw)
    if cur is None or isinstance(cur, dict):
        raise ValueError(f"unknown backtest parameter {key!r}")
    return type(cur)(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """`hourmm backtest` entry point: prints the per-hour table, writes plots + JSON; exit code."""
    ap = build_parser()
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        setup_logging("INFO")
    try:
        params = params_from_config(load_research_config(args.config).get("backtest", {}))
        over = {}
        for kv in args.set:
            if "=" not in kv:
                raise ValueError(f"--set expects KEY=VALUE, got {kv!r}")
            k, v = kv.split("=", 1)
            over[k.strip()] = _coerce(params, k.strip(), v.strip())
        params = params.replace(**over)
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        from hourmm_core import data as hdata
        if (args.hours is not None and args.hours > 0 and args.start is None and args.end is None
                and max(1, args.every) == 1 and hdata.history_span(args.data) is not None):
            # real data and --hours: load just those hours (+2 h: the vol warm-up skips the first
            # hour and the one its first tick falls in) from the history's start
            ticks = hdata.load_first_hours(args.hours + 2, args.data)
        else:
            ticks = cal.load_history(args.data, args.synthetic_hours)
        if args.sweep:
            return _main_sweep(args, ticks, params, load_research_config(args.config).get("sweep", {}))
        res = run_backtest(ticks, params, max_hours=args.hours, keep_paths=12, workers=args.workers,
                           start_ms=_utc_ms(args.start), end_ms=_utc_ms(args.end), hour_stride=max(1, args.every))
    except (ValueError, TypeError, OSError, ImportError, ConfigError) as exc:
        print(f"backtest: error: {exc}", file=sys.stderr)
        return 2
    text = format_backtest(res)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result_json(res), indent=1))
    if not args.no_plots:
        from hourmm_core.research import plots  # noqa: PLC0415 - matplotlib only when plotting

        print(f"report: {plots.backtest_report(res, out, text)}")
    return 1 if res.errors else 0


def _main_sweep(args: argparse.Namespace, ticks: Any, params: BacktestParams, scfg: Mapping[str, Any]) -> int:
    grid = dict(scfg.get("grid") or {})
    if not grid:
        raise ValueError("configs/research.yaml has no sweep.grid")
    base = BacktestParams().flat()
    fixed = {k: v for k, v in params.flat().items() if k not in grid and v != base[k]}
    if args.hours is not None:
        fixed["max_hours"] = args.hours
    sw = sweep_backtest(ticks, grid, scheduler=args.scheduler, max_workers=args.workers, **fixed)
    src = getattr(ticks, "source", "?")
    print(f"data source: {src}" + ("  (SYNTHETIC stand-in, not market data)" if src == "synthetic" else ""))
    print(f"sweep backend: {sw.backend}  points: {len(sw.rows)}  failed: {len(sw.errors)}")
    print(sw.format())
    for i, err in sorted(sw.errors.items()):
        print(f"point {i} failed: {err}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.csv").write_text(sw.to_csv())
    print(f"table: {out / 'sweep.csv'}")
    return 0 if not sw.errors else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
