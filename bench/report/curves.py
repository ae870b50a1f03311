"""Learning curves from the runner's per-epoch logs: results/runs/<preset>/<run_id>/log.jsonl.

Each log line is a JSON object with "epoch" and numeric keys; {"split", "metric", "value"} lines are the
series "<split>_<metric>" (the runner writes "dev_accuracy" directly). Per task: training loss and the dev selection
metric against the epoch, one line
per run (colour = method, as in the other plots), the selected epoch marked. No logs: no figure.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from bench.report.aggregate import Grid, Run
from bench.report.load import Log, read_log
from bench.report.plots import save_figure, axis_label, plot_metric, styles
from bench.report.units import convert, task_name
from bench.tasks import TASKS

LOSS_KEYS = ("train_loss", "loss", "train/loss")
DEV = "dev"


def dev_series(log: Log, task: str, run: Run) -> tuple[str, str, str, bool | None] | None:
    """(series key, metric, scale, higher_is_better) of the dev selection metric in a log, if it has one:
    the series the runner names in "select", else "dev_<selection metric>", else the first "dev_*" series."""
    keys = {k for p in log.points for k in p}
    prefix = f"{DEV}_"
    wanted = TASKS[task].select_metric if task in TASKS else "bleu"
    if log.select in keys:
        key = log.select
    elif prefix + wanted in keys:
        key = prefix + wanted
    else:
        dev = sorted(k for k in keys if k.startswith(prefix))
        if not dev:
            return None
        key = dev[0]
    metric = key[len(prefix):] if key.startswith(prefix) else key
    logged = run.metrics.get((DEV, metric))
    return key, metric, logged.scale if logged else "", logged.higher_is_better if logged else None


def curve_plots(grid: Grid, runs_dir: Path, out: Path) -> tuple[list[Path], int]:
    """(files written, number of runs with a log)."""
    style = styles(grid)
    run_key = {}
    for (key, _task), cell in grid.cells.items():
        for run in cell.runs:
            run_key[run.run_id] = key
    written, n_logs = [], 0
    for task in grid.tasks:
        runs = [(run, run_key[run.run_id]) for run in grid.runs if run.text["task"] == task]
        logs = []
        for run, key in runs:
            log = read_log(runs_dir / run.run_id / "log.jsonl")
            if log.points:
                logs.append((run, key, log))
        if not logs:
            continue
        n_logs += len(logs)
        chosen = plot_metric(grid, task)
        target_scale = "percent" if task in TASKS and TASKS[task].kind != "generate" else ""
        fig, (ax_loss, ax_dev) = plt.subplots(1, 2, figsize=(12, 4.6))
        dev_label = None
        by_key: dict = {}
        for run, key, log in logs:
            points = log.points
            s = style[key]
            ls = ":" if run.status == "failed" else "-"
            loss_key = next((k for k in LOSS_KEYS if any(k in p for p in points)), None)
            loss = [(p["epoch"], p[loss_key]) for p in points if loss_key in p] if loss_key else []
            dev = []
            series = dev_series(log, task, run)
            if series is not None:
                skey, metric, scale, hib = series
                shown = target_scale if target_scale and convert(1.0, scale, target_scale) is not None else scale
                dev = [(p["epoch"], convert(p[skey], scale, shown)) for p in points if skey in p]
                dev_label = axis_label(metric, DEV, shown, hib) if shown else f"{metric} on dev (as logged)"
            for ax, xy in ((ax_loss, loss), (ax_dev, dev)):
                if xy:  # each seed thin, the median over seeds bold (below)
                    ax.plot(*zip(*xy), ls=ls, lw=0.8, color=s.color, alpha=0.35)
            best = run.metrics.get(chosen) if chosen else None
            if best is not None and best.best_epoch is not None:
                at = [y for x, y in dev if x == best.best_epoch]
                if at:
                    ax_dev.plot([best.best_epoch], [at[0]], marker="*", ms=12, color=s.color, mec="black", mew=0.5,
                                ls="", alpha=0.9, zorder=4)
            if run.status == "ok":
                by_key.setdefault(key, []).append((loss, dev))
        for key, curves in by_key.items():
            s = style[key]
            n = len(curves)
            for ax, idx in ((ax_loss, 0), (ax_dev, 1)):
                med = _median_curve([c[idx] for c in curves])
                if med:
                    ax.plot(*zip(*med), lw=2.2, marker=s.marker, ms=5, color=s.color, mec="black", mew=0.4,
                            label=(f"{s.label} (median of {n} seeds)" if n > 1 else f"{s.label} (1 seed)")
                            if idx == 0 else None, zorder=3)
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss (mean per epoch)")
        ax_loss.set_title(f"{task_name(task)}: training loss")
        ax_dev.set_xlabel("epoch")
        ax_dev.set_ylabel(dev_label or "dev metric (not logged)")
        ax_dev.set_title(f"{task_name(task)}: dev selection metric (\u2605 = selected epoch)")
        for ax in (ax_loss, ax_dev):
            ax.grid(True, alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        handles, labels = ax_loss.get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
                   title="bold: median over seeds\nthin: each seed", title_fontsize=8)
        written += save_figure(fig, out, f"curves_{task}")
    return written, n_logs


def _median_curve(curves: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Per epoch, the median over the runs that logged that epoch."""
    by_epoch: dict[float, list[float]] = {}
    for curve in curves:
        for x, y in curve:
            if y is not None:
                by_epoch.setdefault(x, []).append(y)
    return [(x, statistics.median(ys)) for x, ys in sorted(by_epoch.items())]
