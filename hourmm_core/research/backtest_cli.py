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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from hourmm_core.config import shipped_trader_config
from hourmm_core.errors import ConfigError
from hourmm_core.logsetup import setup_logging
from hourmm_core.research import calibration as cal
from hourmm_core.research.backtest import (
    DAY_MS,
    BacktestParams,
    backtest_days_task,
    format_backtest,
    result_json,
    run_backtest,
    run_backtest_days,
    sweep_backtest,
)
from hourmm_core.research.evidence import paired_difference
from hourmm_core.research.settings import load_research_config
from hourmm_core.research.sweep import SweepResult, run_sweep


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
    ap.add_argument("--days", default=None, metavar="SPEC",
                    help="whole UTC days, each loaded with 24 h of warm-up (real data): "
                         "2025-06-05,2025-06-15 or 2025-06-05..2025-06-30/10 (every 10th day, end inclusive)")
    ap.add_argument("--day-hours", type=int, default=24, metavar="N",
                    help="with --days: only the first N hours of each day (quick checks)")
    ap.add_argument("--points", default=None, metavar="FILE",
                    help="with --sweep: YAML with `points:` (a list of named knob sets; the first is the "
                         "baseline every other point is paired with) and optionally `days:` (as --days)")
    ap.add_argument("--synthetic-hours", type=int, default=None, help="size of the synthetic stand-in")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a backtest parameter, e.g. --set half_spread=0.03")
    ap.add_argument("--workers", type=int, default=1, help="processes to spread the hours (or sweep points) over")
    ap.add_argument("--sweep", action="store_true",
                    help="run the grid of configs/research.yaml `sweep.grid` instead of one backtest")
    ap.add_argument("--resume", action="store_true",
                    help="with --sweep --points/--days: reuse the points of the same run already in OUT/points.jsonl")
    ap.add_argument("--scheduler", default=None,
                    help="with --sweep: Dask scheduler address (tcp://host:8786), or 'local' for a local Dask "
                         "cluster of --workers processes")
    ap.add_argument("--table", default=None, metavar="SWEEP_JSON",
                    help="print the markdown table of a days sweep's sweep.json (paired differences included) and "
                         "exit; given its points.jsonl (the finished points), also write OUT/sweep.json from it")
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


def parse_days(spec: str) -> list[int]:
    """``--days``: '2025-06-05,2025-06-15' or '2025-06-05..2025-06-30/10' (from the first day every
    10th day up to the last, inclusive; '/1' or no step = every day) -> 00:00 UTC of each day, ms."""
    out: list[int] = []
    for part in (x.strip() for x in spec.split(",")):
        if not part:
            continue
        if ".." in part:
            rng, _, step_s = part.partition("/")
            a, _, b = rng.partition("..")
            step = int(step_s) if step_s.strip() else 1
            if step < 1:
                raise ValueError(f"--days step must be >= 1, got {step}")
            lo, hi = _day_ms(a), _day_ms(b)
            if hi < lo:
                raise ValueError(f"--days range {part!r} ends before it starts")
            out += list(range(lo, hi + 1, step * DAY_MS))
        else:
            out.append(_day_ms(part))
    if not out:
        raise ValueError(f"--days {spec!r} names no day")
    if len(set(out)) != len(out):
        raise ValueError(f"--days {spec!r} names a day twice")
    return sorted(out)


def _day_ms(raw: str) -> int:
    try:
        d = _dt.date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise ValueError(f"bad day {raw!r}: use YYYY-MM-DD") from exc
    return int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)


def _iso_day(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).strftime("%Y-%m-%d")


def code_version() -> str | None:
    """The git commit of this checkout ('+dirty' with uncommitted changes), for result files; None if unknown."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "") if rev else None


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
    if args.table:
        try:
            if args.table.endswith(".jsonl"):
                from hourmm_core.safe_json import json_safe

                doc = sweep_doc_from_log(args.table)
                out = Path(args.out)
                out.mkdir(parents=True, exist_ok=True)
                (out / "sweep.json").write_text(json.dumps(json_safe(doc), indent=1))
            else:
                doc = json.loads(Path(args.table).read_text())
            print(sweep_markdown(doc))
        except (OSError, ValueError) as exc:
            print(f"backtest: error: {exc}", file=sys.stderr)
            return 2
        return 0
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
        days = parse_days(args.days) if args.days else None
        if args.sweep:
            scfg = load_research_config(args.config).get("sweep", {})
            if args.points or days is not None:
                return _main_sweep_days(args, params, days)
        elif days is not None:
            return _main_days(args, params, days)
        elif args.points:
            raise ValueError("--points needs --sweep")
        from hourmm_core import data as hdata
        if (args.hours is not None and args.hours > 0 and args.start is None and args.end is None
                and max(1, args.every) == 1 and hdata.history_span(args.data) is not None):
            # real data and --hours: load just those hours (+2 h: the vol warm-up skips the first
            # hour and the one its first tick falls in) from the history's start
            ticks = hdata.load_first_hours(args.hours + 2, args.data)
        else:
            ticks = cal.load_history(args.data, args.synthetic_hours)
        if args.sweep:
            return _main_sweep(args, ticks, params, scfg)
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


def _main_days(args: argparse.Namespace, params: BacktestParams, days: list[int]) -> int:
    c0 = time.process_time()
    res = run_backtest_days(days, params, data_dir=args.data, workers=args.workers, hours_per_day=args.day_hours)
    text = format_backtest(res)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    js = result_json(res)
    js["run"] = {"days": [_iso_day(d) for d in days], "hours_per_day": args.day_hours, "warmup_h": 24, "workers": args.workers,
                 "cpu_s_parent": round(time.process_time() - c0, 1), "code": code_version(),
                 "loader": "hourmm_core.data.load_ticks per day (real 1m klines + seeded bridge), 24 h warm-up"}
    (out / "result.json").write_text(json.dumps(js, indent=1))
    if not args.no_plots:
        from hourmm_core.research import plots  # noqa: PLC0415 - matplotlib only when plotting

        print(f"report: {plots.backtest_report(res, out, text)}")
    return 1 if res.errors else 0


#: long per-hour columns of a days sweep: kept in sweep.json, left out of the printed table and the csv
_HOUR_COLS = ("hour_ms", "hour_pnl")


def load_points(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """``--points`` file: ``points`` (list of mappings of flat knobs, each with a unique ``name``)
    and optional ``days`` (a ``--days`` spec)."""
    from hourmm_core.config import read_yaml_mapping

    doc = read_yaml_mapping(Path(path), "sweep points file", "keys")
    pts = doc.get("points")
    if not isinstance(pts, list) or not pts or not all(isinstance(p, Mapping) for p in pts):
        raise ValueError(f"{path}: `points` must be a non-empty list of mappings")
    names = [str(p.get("name", i)) for i, p in enumerate(pts)]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: point names must be unique")
    days = doc.get("days")
    return [{**dict(p), "name": n} for p, n in zip(pts, names)], (str(days) if days is not None else None)


def add_paired(sw: SweepResult) -> dict[str, dict[str, Any]]:
    """Pair every row of a days sweep with the first (the baseline) hour by hour: adds
    ``d_vs_first``, ``d_lo``, ``d_hi`` (mean per-hour PnL difference and its bootstrap 95 % CI)
    to each row; returns the full :func:`paired_difference` of each row by name (or index)."""
    if not sw.rows or "hour_pnl" not in sw.rows[0]:
        raise ValueError("paired differences need a days sweep (per-hour PnL)")

    def by_hour(r: Mapping[str, Any]) -> dict[int, float]:
        hs, ps = r.get("hour_ms"), r.get("hour_pnl")
        return dict(zip(hs, ps)) if isinstance(hs, (tuple, list)) and isinstance(ps, (tuple, list)) else {}

    base = by_hour(sw.rows[0])
    out: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(sw.rows):
        cur = by_hour(r)
        key = str(r.get("name", i))
        if not cur or not base:
            r.update(d_vs_first=float("nan"), d_lo=float("nan"), d_hi=float("nan"))
            continue
        pd = out[key] = paired_difference(cur, base)
        r.update(d_vs_first=pd["mean"], d_lo=pd["ci95"][0], d_hi=pd["ci95"][1])
    for c in ("d_vs_first", "d_lo", "d_hi"):
        if c not in sw.metrics:
            sw.metrics.append(c)
    return out


def sweep_doc_from_log(path: str | Path) -> dict[str, Any]:
    """A ``sweep.json``-like document from a days sweep's ``points.jsonl`` (the points that
    finished, e.g. of a sweep stopped at a deadline): rows in grid order (file order for records
    without an index), paired with the first row. Refuses a file that mixes runs."""
    recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    recs = [r for r in recs if "__error__" not in r.get("out", {})]
    if not recs:
        raise ValueError(f"{path}: no finished point")
    if len({json.dumps(r.get("run"), sort_keys=True) for r in recs}) > 1:
        raise ValueError(f"{path} mixes points of different runs (days, base knobs or data differ)")
    recs = sorted(recs, key=lambda r: r.get("index", 0))
    params: list[str] = []
    metrics: list[str] = []
    for r in recs:
        params += [k for k in r["point"] if k not in params]
        metrics += [k for k in r["out"] if k not in metrics]
    sw = SweepResult(params, metrics, [{**r["point"], **r["out"]} for r in recs], f"points log {Path(path).name}")
    paired = add_paired(sw)
    run = recs[0].get("run") or {}
    return {"days": [_iso_day(int(d)) for d in run.get("days", [])], "hours_per_day": run.get("hours_per_day"),
            "base": run.get("base"), "code": sorted({str(r.get("code")) for r in recs}),
            "from_points_log": str(path), "points_finished": len(recs),
            "baseline": str(sw.rows[0].get("name", 0)), "rows": sw.rows, "paired_vs_first": paired}


def sweep_markdown(doc: Mapping[str, Any], baseline_label: str | None = None) -> str:
    """The markdown table of a days sweep's ``sweep.json`` (README / docs tables come from the
    tool's file, never typed by hand): one row per point, with the paired difference vs the first."""
    rows = doc.get("rows") or []
    if not rows:
        raise ValueError("sweep.json has no rows")
    base = baseline_label or str(rows[0].get("name", 0))

    def num(v: Any, fmt: str) -> str:
        return "n/a" if not isinstance(v, (int, float)) or v != v else format(v, fmt)

    head = ("| run | hours | PnL/hour | 95% CI | vs " + base + ", paired [95% CI] | fees | maker / taker shares "
            "| 30 s markout vs our fair | vs venue fair | vs settle | sniper share | max inv | worst hour "
            "| flat | breaches |")
    out = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for i, r in enumerate(rows):
        d = "(baseline)" if i == 0 else (f"{num(r.get('d_vs_first'), '+.2f')} [{num(r.get('d_lo'), '+.2f')}, "
                                         f"{num(r.get('d_hi'), '+.2f')}]")
        out.append(f"| {r.get('name', i)} | {r.get('hours', 0)} | {num(r.get('pnl_per_hour'), '+.2f')} | "
                   f"[{num(r.get('ci_lo'), '+.2f')}, {num(r.get('ci_hi'), '+.2f')}] | {d} | "
                   f"{num(r.get('fees'), '.2f')} | {num(r.get('maker_volume'), '.0f')} / "
                   f"{num(r.get('taker_volume'), '.0f')} | {num(r.get('mk30_fair'), '+.4f')} | "
                   f"{num(r.get('mk30_venue'), '+.4f')} | {num(r.get('mk_settle'), '+.4f')} | "
                   f"{num(r.get('sniper_share'), '.2f')} | {num(r.get('max_inv'), '.0f')} | "
                   f"{num(r.get('worst_hour'), '+.2f')} | {'yes' if r.get('flat') else 'no'} | "
                   f"{r.get('breaches', 'n/a')} |")
    return "\n".join(out)


def _main_sweep_days(args: argparse.Namespace, params: BacktestParams, days: list[int] | None) -> int:
    if args.points:
        points, fdays = load_points(args.points)
        if days is None and fdays is not None:
            days = parse_days(fdays)
    else:
        grid = dict(load_research_config(args.config).get("sweep", {}).get("grid") or {})
        if not grid:
            raise ValueError("configs/research.yaml has no sweep.grid")
        from hourmm_core.research.sweep import expand_grid

        points = expand_grid(grid)
    if days is None:
        raise ValueError("a days sweep needs --days (or `days:` in the --points file)")
    dflt = BacktestParams().flat()
    base = {k: v for k, v in params.flat().items() if v != dflt[k]}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from hourmm_core.safe_json import json_safe

    # every finished point is appended to points.jsonl at once; --resume reuses the points of the
    # same run (same days, hours, base knobs, data) instead of running them again
    run_key = json_safe({"days": days, "hours_per_day": args.day_hours, "base": base, "data": args.data})
    log_path = out / "points.jsonl"
    norm = [json.loads(json.dumps(json_safe(p))) for p in points]
    done: dict[int, dict[str, Any]] = {}
    if args.resume and log_path.exists():
        for line in log_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("run") == run_key and rec.get("point") in norm and "__error__" not in rec.get("out", {}):
                o = rec["out"]
                done[norm.index(rec["point"])] = {k: (tuple(v) if k in _HOUR_COLS else v) for k, v in o.items()}
        print(f"resume: {len(done)} of {len(points)} points already in {log_path}")

    code = code_version()

    def save(i: int, p: Mapping[str, Any], o: Mapping[str, Any]) -> None:
        with log_path.open("a") as fh:
            fh.write(json.dumps({"run": run_key, "index": i, "code": code, "point": norm[i],
                                 "out": json_safe(dict(o))}) + "\n")

    c0 = time.perf_counter()
    sw = run_sweep(backtest_days_task, points,
                   {"days_ms": days, "data_dir": args.data, "base": base, "hours_per_day": args.day_hours},
                   scheduler=args.scheduler, max_workers=args.workers, on_result=save, done=done)
    paired = add_paired(sw)
    doc = {"days": [_iso_day(d) for d in days], "hours_per_day": args.day_hours, "base": base,
           "code": code, "backend": sw.backend,
           "wall_s": round(time.perf_counter() - c0, 1), "baseline": str(sw.rows[0].get("name", 0)),
           "rows": sw.rows, "paired_vs_first": paired, "errors": {str(k): v for k, v in sw.errors.items()}}

    (out / "sweep.json").write_text(json.dumps(json_safe(doc), indent=1))
    sw.metrics = [m for m in sw.metrics if m not in _HOUR_COLS]
    print(f"days: {', '.join(doc['days'])}  sweep backend: {sw.backend}  points: {len(sw.rows)}  "
          f"failed: {len(sw.errors)}  code: {doc['code']}")
    print(sw.format())
    for i, err in sorted(sw.errors.items()):
        print(f"point {i} failed: {err}", file=sys.stderr)
    (out / "sweep.csv").write_text(sw.to_csv())
    print(f"table: {out / 'sweep.csv'}  rows + per-hour PnL + paired differences: {out / 'sweep.json'}")
    return 0 if not sw.errors else 1


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
