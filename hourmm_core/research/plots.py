"""PNG plots and a small static HTML page for calibration and backtest results.

matplotlib runs on the non-interactive Agg backend, so this works in CI, in a
container and over SSH. Functions take result objects and an output directory
and return the paths they wrote; they never show windows.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def reliability_png(res: Any, path: str | Path) -> Path:
    """Predicted vs observed frequency per bucket, one line per model, with the diagonal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for name, rc in res.reliability.items():
        m = rc.count > 0
        ax.plot(rc.mean_pred[m], rc.obs_freq[m], marker="o", label=name)
    ax.set_xlabel("predicted P(close >= open)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability ({res.source} data)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def minutes_left_png(res: Any, path: str | Path, metric: str = "brier") -> Path:
    """Score per minutes-left bucket for each model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [r["minutes_left"] for r in res.by_minutes_left]
    x = np.arange(len(labels))
    for sc in res.scores:
        ax.plot(x, [r[f"{sc.name}.{metric}"] for r in res.by_minutes_left], marker="o", label=sc.name)
    ax.set_xticks(x, labels)
    ax.set_xlabel("minutes left in the hour")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by minutes left ({res.source} data)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def histogram_png(res: Any, path: str | Path) -> Path:
    """Distribution of pricer forecasts split by outcome (sharpness)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    p = res.predictions.get("pricer")
    y = res.outcomes
    if p is not None and p.size:
        bins = np.linspace(0, 1, 41)
        ax.hist(p[y == 1], bins=bins, alpha=0.6, label="resolved Up")
        ax.hist(p[y == 0], bins=bins, alpha=0.6, label="resolved Down")
        ax.legend(fontsize=8)
    ax.set_xlabel("pricer P(up)")
    ax.set_ylabel("samples")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _page(title: str, source: str, pre: str, images: Sequence[str], extra_html: str = "") -> str:
    warn = ""
    if source == "synthetic":
        warn = ("<p style='color:#b00;font-weight:bold'>SYNTHETIC data: seeded stand-in generated because no "
                "Binance history was found. These numbers are not market evidence.</p>")
    imgs = "\n".join(f"<p><img src='{html.escape(i)}' alt='{html.escape(i)}'></p>" for i in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif'><h1>{html.escape(title)}</h1>"
            f"<p>data source: <b>{html.escape(source)}</b></p>{warn}"
            f"<pre>{html.escape(pre)}</pre>{extra_html}{imgs}</body></html>")


def calibration_report(res: Any, out_dir: str | Path, table_text: str) -> Path:
    """Write reliability.png, minutes_left.png, forecast_hist.png and index.html into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    imgs = [reliability_png(res, out / "reliability.png").name,
            minutes_left_png(res, out / "minutes_left.png").name,
            histogram_png(res, out / "forecast_hist.png").name]
    page = out / "index.html"
    page.write_text(_page("HourMM pricer calibration", res.source, table_text, imgs))
    return page


def backtest_png(bt: Any, path: str | Path) -> Path:
    """Cumulative PnL by hour and per-hour end-of-hour-before-settlement inventory."""
    plt = _plt()
    hours = bt.hours
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    x = np.arange(len(hours))
    a1.plot(x, np.cumsum([h.pnl for h in hours]), label="cumulative PnL (USDC)")
    a1.plot(x, np.cumsum([-h.fees for h in hours]), label="cumulative fees paid", ls="--")
    a1.legend(fontsize=8)
    a1.set_ylabel("USDC")
    a2.bar(x, [h.up_at_close - h.down_at_close for h in hours], color="tab:purple")
    a2.set_ylabel("net Up tokens at close")
    a2.set_xlabel("hour #")
    a1.set_title(f"backtest ({bt.source} data)")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p


def inventory_png(bt: Any, path: str | Path, max_hours: int = 12) -> Path | None:
    """Intra-hour inventory paths (net Up tokens vs minutes into the hour) and the fair value,
    for the first ``max_hours`` hours whose paths were kept (``run_backtest(keep_paths=True)``)."""
    paths = [p for p in (getattr(bt, "paths", None) or []) if p]
    if not paths:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for h, p in zip(bt.hours[:max_hours], paths[:max_hours]):
        t = (np.asarray(p["ts_ms"]) - h.hour_start_ms) / 60_000.0
        a1.plot(t, np.asarray(p["pos_up"]) - np.asarray(p["pos_down"]), lw=0.8)
        a2.plot(t, p["fair_up"], lw=0.8)
    a1.set_ylabel("net Up tokens")
    a2.set_ylabel("fair P(up)")
    a2.set_xlabel("minutes into the hour")
    a1.set_title(f"inventory paths, first {min(max_hours, len(paths))} hours ({bt.source} data)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def backtest_report(bt: Any, out_dir: str | Path, table_text: str) -> Path:
    """Write backtest.png (+ inventory.png when paths were kept) and index.html into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    img = backtest_png(bt, out / "backtest.png").name
    inv = inventory_png(bt, out / "inventory.png")
    imgs = [img] + ([inv.name] if inv is not None else [])
    page = out / "index.html"
    page.write_text(_page("HourMM strategy backtest", bt.source, table_text, imgs))
    return page
