"""``hourmm calibrate DATA``: the command line of the pricer calibration.

With 1m klines in DATA (or ``--protocol klines``) it runs the issue-11 kline protocol
(:mod:`hourmm_core.research.kline_calibration`); otherwise the tick protocol of
:mod:`hourmm_core.research.calibration` (``--tune`` grids the old EWMA digital).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from hourmm_core.clock import HOUR_MS
from hourmm_core.config import ConfigError
from hourmm_core.research.calibration import (
    MINUTE_MS,
    PricerParams,
    TuneGrid,
    as_arrays,
    calibrate,
    format_table,
    load_history,
    log,
    result_json,
    tune,
    write_tuned_config,
)
from hourmm_core.research.kline_calibration import DEFAULT_TRAIN_SPAN, DEFAULT_VALID_SPAN, main_klines


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of numbers") from None


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _floats(s))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hourmm calibrate",
                                 description="Score the pricer's P(close >= open) against realized hours.")
    ap.add_argument("data", nargs="?", default=None,
                    help="data dir or file of Binance dumps (default: hourmm_core.data.find_data_dir(); "
                         "synthetic stand-in when none)")
    ap.add_argument("--out", default="out/calibration", help="directory for PNG plots, index.html, result.json")
    ap.add_argument("--config", default=None, help="YAML overlaying configs/research.yaml")
    ap.add_argument("--step-ms", type=int, default=None, help="sampling step inside each hour (ms)")
    ap.add_argument("--bins", type=int, default=None, help="reliability buckets")
    ap.add_argument("--halflives", type=_floats, default=None, help="e.g. 30,120,600 (first drives the pricer)")
    ap.add_argument("--sample-ms", type=int, default=None, help="vol sampling grid (ms)")
    ap.add_argument("--nu", type=float, default=None, help="Student-t dof (0 = normal)")
    ap.add_argument("--tune", action="store_true", help="grid-search on a training span, score on the later span")
    ap.add_argument("--train-frac", type=float, default=None)
    ap.add_argument("--grid-halflife", type=_floats, default=None)
    ap.add_argument("--grid-sample-ms", type=_ints, default=None)
    ap.add_argument("--grid-nu", type=_floats, default=None)
    ap.add_argument("--write-config", default=None, help="with --tune: write tuned VOL_*/PRICER_* YAML here")
    ap.add_argument("--synthetic-hours", type=int, default=None,
                    help="hours of seeded synthetic ticks when no real data (default from the data module)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--protocol", choices=("auto", "klines", "ticks"), default="auto",
                    help="klines: the issue-11 protocol on 1m klines (score_predictions.py points), every model "
                         "on the train and validation spans; ticks: the old tick sampler; auto: klines when the "
                         "data has 1m klines")
    ap.add_argument("--predictions", default=None,
                    help="klines protocol: write hour_ms,minute,p of the shipped model for every point here")
    ap.add_argument("--ece-floor", type=int, default=200,
                    help="klines protocol: runs of the perfect-forecaster ECE floor per span, next to the shipped "
                         "model's ECE and its hour-bootstrap interval (0 = off)")
    ap.add_argument("--train-span", default=":".join(DEFAULT_TRAIN_SPAN), help="YYYY-MM-DD:YYYY-MM-DD (end excl.)")
    ap.add_argument("--valid-span", default=":".join(DEFAULT_VALID_SPAN), help="YYYY-MM-DD:YYYY-MM-DD (end excl.)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """`hourmm calibrate DATA` entry point: prints the table, writes plots + HTML; exit code."""
    ap = build_parser()
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        from hourmm_core.logsetup import setup_logging
        setup_logging("INFO")
    try:
        from hourmm_core.research.settings import load_research_config

        rcfg = load_research_config(args.config)
        ccfg, tcfg = rcfg.get("calibration", {}), rcfg.get("tuning", {})
        step_ms = int(args.step_ms or ccfg.get("step_ms", MINUTE_MS))
        bins = int(args.bins or ccfg.get("bins", 10))
        warmup_ms = int(ccfg.get("warmup_ms", HOUR_MS))
        train_frac = float(args.train_frac or tcfg.get("train_frac", 0.7))
        metric = str(tcfg.get("metric", "log_loss"))
        if not (0.0 < train_frac < 1.0):
            raise ValueError("--train-frac must be in (0, 1)")
        if args.protocol != "ticks":
            from hourmm_core.data.binance_dumps import load_klines

            explicit = args.protocol == "klines" or bool(args.predictions)
            kl = load_klines(args.data) if (args.data or explicit) else None   # None: find_data_dir()
            if kl is not None and kl["open_ms"].size > 120 and np.any(np.diff(kl["open_ms"]) == MINUTE_MS):
                return main_klines(args, kl)
            if explicit:
                raise ValueError(f"no 1m klines found in {args.data!r} (the klines protocol needs them)")
        ticks = load_history(args.data, args.synthetic_hours)
        ts, price, source = as_arrays(ticks)
        if source == "synthetic":
            log.warning("calibrating on SYNTHETIC ticks (no real Binance data found): scores are not market evidence")
        base = PricerParams()
        params = PricerParams(args.halflives or base.halflives_s, args.sample_ms or base.sample_ms,
                              base.nu if args.nu is None else args.nu)
        if args.tune:
            g0 = TuneGrid.from_mapping(tcfg.get("grid", {}))
            grid = TuneGrid(args.grid_halflife or g0.halflife_s, args.grid_sample_ms or g0.sample_ms,
                            args.grid_nu or g0.nu, params.halflives_s)
            tr = tune((ts, price, source), train_frac=train_frac, grid=grid, metric=metric, step_ms=step_ms,
                      n_bins=bins, default=params, warmup_ms=warmup_ms)
            res = tr.test
            if args.write_config:
                write_tuned_config(args.write_config, tr.best, f"source={source}, train<{tr.split_ms}")
        else:
            res = calibrate((ts, price, source), params, step_ms=step_ms, n_bins=bins, warmup_ms=warmup_ms)
    except (ValueError, OSError, ImportError, ConfigError) as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(res))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result_json(res), indent=1))
    if not args.no_plots:
        from hourmm_core.research import plots

        page = plots.calibration_report(res, out, format_table(res))
        print(f"report: {page}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
