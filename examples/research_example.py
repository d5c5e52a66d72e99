# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
# ---
# %% [markdown]
# # HourMM research walk-through
#
# Load BTC history, compute the compiled features, score the pricer's
# P(close >= open) against realized hours, backtest the strategy on simulated
# time, run a small sweep and plot. Units: ms UTC timestamps, sigma per
# sqrt(second) of log price, probabilities in [0, 1], money in USDC.
#
# Runs as a script (CI) or as a notebook (`examples/research_example.ipynb`,
# built from this file). It reads the first `HOURMM_EXAMPLE_HOURS` hours of the real
# BTC history in ../shared/data (or `HOURMM_DATA_DIR`): 1m klines from 2025-04-15 with
# ticks inside each minute from the seeded bridge (`binance-klines+bridge`). Only
# without any real data the seeded SYNTHETIC stand-in is used, and every output says so.

# %%
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

OUT = Path(os.environ.get("HOURMM_EXAMPLE_OUT", "out/research_example"))
HOURS = int(os.environ.get("HOURMM_EXAMPLE_HOURS", "12"))  # hours of history to load
DECISION_MS = int(os.environ.get("HOURMM_EXAMPLE_DECISION_MS", "1000"))  # trader re-quote interval (sim ms)

from hourmm_core.research import backtest as bt
from hourmm_core.research import calibration as cal
from hourmm_core.research import plots, sweep

# %% [markdown]
# ## 1. Load ticks (the real history's first hours, else the labelled synthetic stand-in)
# %%
from hourmm_core import data as hdata

ts, price, source = cal.as_arrays(hdata.load_first_hours(HOURS))
print(f"data source: {source}  ticks: {ts.size}  span: {(ts[-1] - ts[0]) / 3.6e6:.1f} h")

# %% [markdown]
# ## 2. Features from the compiled core
# %%
q = cal._quant()
feats = np.asarray(q.return_features_batch(ts, price)) if hasattr(q, "return_features_batch") else None
sig = cal.sigma_path(ts, price, (30.0, 120.0, 600.0), 1000)
print(f"sigma (per sqrt s) at the end: 30s={sig[-1, 0]:.2e} 120s={sig[-1, 1]:.2e} 600s={sig[-1, 2]:.2e}")
if feats is not None:
    names = getattr(q, "FEATURE_NAMES", [f"f{i}" for i in range(feats.shape[1])])
    print("last features:", {n: float(v) for n, v in zip(names, feats[-1])})

# %% [markdown]
# ## 3. Calibration: pricer vs constant 0.5 vs constant long-run sigma
# %%
res = cal.calibrate((ts, price, source))
text = cal.format_table(res)
print(text)
page = plots.calibration_report(res, OUT / "calibration", text)
print(f"calibration report: {page}")

# %% [markdown]
# ## 4. Tune the estimator on a training span, score on the later span it never saw
# %%
tr = cal.tune((ts, price, source), train_frac=0.6,
              grid=cal.TuneGrid((30.0, 300.0), (1000,), (0.0, 6.0), (30.0, 120.0, 600.0)))
print(f"tuned on {tr.split_ms}: {tr.best.to_config()}")
print(f"held-out log loss: tuned={tr.test.score('pricer').log_loss:.4f}  "
      f"const 0.5={tr.test.score('const_0.5').log_loss:.4f}")

# %% [markdown]
# ## 5. Sweep the pricer half-life (locally; pass scheduler="tcp://host:8786" for Dask)
# %%
sw = sweep.sweep_calibration((ts, price, source), {"halflife_s": [30.0, 300.0], "nu": [0.0, 6.0]},
                             max_workers=2)
print(sw.format())

# %% [markdown]
# ## 6. Backtest the trader (strategy, ladder, risk, order manager) against the simulator's
# matching engine and background agents, in-process on simulated time
# %%
params = bt.BacktestParams(decision_ms=DECISION_MS)
btr = bt.run_backtest((ts, price, source), params, max_hours=min(HOURS, 4), keep_paths=True)
btext = bt.format_backtest(btr)
print(btext)
print(f"backtest report: {plots.backtest_report(btr, OUT / 'backtest', btext)}")

# %% [markdown]
# ## 7. Sweep spread x skew on the backtest (same API; scheduler= for a Dask cluster)
# %%
bsw = bt.sweep_backtest((ts, price), {"half_spread": [0.02, 0.05], "skew": [0.0, 0.04]},
                        max_workers=2, max_hours=min(HOURS, 2), decision_ms=max(DECISION_MS, 5000))
print(bsw.format())
