"""``hourmm`` console script: one entry point for the operator and the researcher.

Subcommands only parse arguments and hand over to the module that owns the job,
so each job stays importable and testable on its own:

* ``hourmm sim``       end-to-end simulation (:mod:`hourmm_core.sim.orchestrator`)
* ``hourmm check``     connection tests of the guide (:mod:`hourmm_core.check`)
* ``hourmm calibrate`` pricer calibration (:mod:`hourmm_core.research.calibrate_cli`)
* ``hourmm backtest``  strategy backtest (:mod:`hourmm_core.research.backtest`)
* ``hourmm data``      what real data is there (:mod:`hourmm_core.data.inventory`)

Heavy modules are imported lazily so ``hourmm check`` in a slim container does
not pay for matplotlib or Dask.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

#: name -> (module, function taking argv and returning the exit code, help)
_SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "sim": ("hourmm_core.sim.orchestrator", "main", "run the whole system end to end on loopback simulators"),
    "check": ("hourmm_core.check", "main", "connection tests: Binance WS, Polymarket WS, Gamma, signing + auth"),
    "calibrate": ("hourmm_core.research", "main_calibrate", "pricer calibration on historical data (Brier, log loss)"),
    "backtest": ("hourmm_core.research", "main_backtest", "strategy backtest on historical data"),
    "data": ("hourmm_core.data.inventory", "main", "real data found: kinds, spans, rows per source"),
}


def build_parser() -> argparse.ArgumentParser:
    """Top-level parser; each subcommand's own options are parsed by its module."""
    ap = argparse.ArgumentParser(
        prog="hourmm",
        description="HourMM: market maker for Polymarket's hourly Bitcoin Up or Down markets.",
        epilog="Run 'hourmm <command> --help' for the options of a command.",
    )
    sub = ap.add_subparsers(dest="command", metavar="command")
    for name, (_mod, _fn, help_text) in _SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``hourmm <command> [options]`` to ``<module>.main(options)``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    if not args or args[0] in ("-h", "--help"):
        ap.print_help()
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in _SUBCOMMANDS:
        ap.print_usage(sys.stderr)
        print(f"hourmm: error: unknown command {name!r} (choose from {', '.join(_SUBCOMMANDS)})",
              file=sys.stderr)
        return 2
    module_name, func_name, _help = _SUBCOMMANDS[name]
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        print(f"hourmm {name}: cannot load {module_name}.{func_name}: {exc}", file=sys.stderr)
        return 2
    rc = func(rest)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
