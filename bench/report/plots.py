"""Plots (PNG and SVG, matplotlib's Agg backend): score against stored parameters per task with the Pareto
front and the papers' points, and a per-method summary across tasks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.lines import Line2D  # noqa: E402

from bench.report.aggregate import Grid, RowKey  # noqa: E402
from bench.report.paper import PaperRow  # noqa: E402
from bench.report.tables import column_scale, index_paper, paper_row  # noqa: E402
from bench.report.units import (arrow, convert, headline, metric_name, model_name, task_name,  # noqa: E402
                                unit_label)

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*"]
COLORS = plt.get_cmap("tab10").colors
PAPER_GREY = "0.45"
FRONT_STYLES = ["--", ":", "-."]


@dataclass(frozen=True)
class Style:
    color: tuple
    marker: str
    label: str


def styles(grid: Grid) -> dict[RowKey, Style]:
    """One colour and marker per table row, the same in every plot; the model is named when there are several."""
    several = len({k.model for k in grid.rows}) > 1
    out = {}
    for i, key in enumerate(grid.rows):
        label = f"{model_name(key.model)} {key.display}" if several else key.display
        out[key] = Style(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)], label=label)
    return out


def plot_metric(grid: Grid, task: str) -> tuple[str, str] | None:
    """(split, metric) plotted for a task: the paper's headline metric, else the most common one of our runs."""
    known = headline(task)
    counts: dict[tuple[str, str], int] = {}
    for (_key, t), cell in grid.cells.items():
        if t == task:
            for k, stat in cell.stats.items():
                if stat.center is not None:
                    counts[k] = counts.get(k, 0) + 1
    if known is not None and known in counts:
        return known
    if not counts:
        return None
    dev_first = sorted(counts, key=lambda k: (not k[0].startswith("dev"), -counts[k]))
    return dev_first[0]


def axis_label(metric: str, split: str, scale: str, hib: bool | None) -> str:
    unit = unit_label(scale)
    text = f"{metric_name(metric)} {arrow(hib)} on {split}".replace("  ", " ")
    return f"{text} ({unit})" if unit else f"{text} (raw score)"


# Text stays text in the SVGs (smaller, searchable), and rebuilt figures are byte-identical (no date, fixed ids),
# so a committed report changes only when its numbers do.
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "peft-bench"
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{stem}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=METADATA[ext])
        paths.append(path)
    plt.close(fig)
    return paths


def pareto(points: list[tuple[float, float]], higher_is_better: bool) -> list[tuple[float, float]]:
    """Points no other point beats with at most as many parameters, sorted by parameters."""
    front: list[tuple[float, float]] = []
    best = None
    for x, y in sorted(points, key=lambda p: (p[0], -p[1] if higher_is_better else p[1])):
        if best is None or (y > best if higher_is_better else y < best):
            front.append((x, y))
            best = y
    return front


def _paper_points(grid: Grid, paper: list[PaperRow], task: str, split: str, metric: str) -> list[PaperRow]:
    pairs = {(k.model, k.paper_version) for k in grid.rows if k.paper_version}
    return [p for p in paper if (p.model, p.paper_version) in pairs and (p.task, p.split, p.metric) ==
            (task, split, metric) and p.params_approx]


def params_plot(grid: Grid, paper: list[PaperRow], task: str, out: Path) -> list[Path]:
    chosen = plot_metric(grid, task)
    if chosen is None:
        return []
    split, metric = chosen
    scale = column_scale(paper, grid, task, split, metric)
    style = styles(grid)
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    ours, hib, failed, xs = [], None, 0, []
    handles = []
    for key in grid.rows:
        cell = grid.cells.get((key, task))
        if cell is None:
            continue
        stat = cell.stats.get((split, metric))
        x = cell.param("params_stored")
        if cell.n_ok == 0 or stat is None or stat.center is None or not x:
            failed += cell.n_ok == 0
            continue
        y, err = convert(stat.center, stat.scale, scale), convert(stat.std, stat.scale, scale)
        if y is None:
            continue
        hib = stat.higher_is_better if hib is None else hib
        s = style[key]
        ax.errorbar([x], [y], yerr=None if err is None else [err], fmt=s.marker, color=s.color, ms=9,
                    mec="black", mew=0.6, capsize=3, zorder=3)
        handles.append(Line2D([], [], ls="", marker=s.marker, color=s.color, mec="black", ms=8,
                              label=f"ours: {s.label}" + (f" [{cell.flags}]" if cell.flags else "")))
        ours.append((key.model, x, y))
        xs.append(x)
    linked = {(k.paper_method, k.paper_params, k.model, k.paper_version): style[k] for k in grid.rows}
    for p in _paper_points(grid, paper, task, split, metric):
        hib = p.higher_is_better if hib is None else hib
        s = linked.get((p.paper_method, p.paper_params, p.model, p.paper_version))
        color, marker = (s.color, s.marker) if s else (PAPER_GREY, "D")
        ax.plot([p.params_approx], [p.value], ls="", marker=marker, ms=11, mfc="none", mec=color, mew=1.8,
                zorder=2)
        name = p.paper_method if p.paper_params in p.paper_method else f"{p.paper_method} {p.paper_params}".strip()
        xs.append(p.params_approx)
        if s is None:  # rows we did not run: name them on the plot, they share one grey marker
            ax.annotate(name, (p.params_approx, p.value), textcoords="offset points", xytext=(7, -3),
                        fontsize=7, color="0.3", va="center")
        handles.append(Line2D([], [], ls="", marker=marker, ms=9, mfc="none", mec=color, mew=1.8,
                              label=f"paper: {model_name(p.model)} {name} ({p.paper_version})"))
    if not ours and not handles:
        plt.close(fig)
        return []
    models = list(dict.fromkeys(m for m, _, _ in ours))
    for model, dash in zip(models, FRONT_STYLES * len(models)):  # one front per model: sizes differ by model
        front = pareto([(x, y) for m, x, y in ours if m == model], hib is not False)
        fx, fy = zip(*front)
        ax.plot(fx, fy, ls=dash, color="black", lw=1.2, zorder=1, drawstyle="steps-post")
        ax.plot(fx, fy, ls="", marker="o", ms=17, mfc="none", mec="black", mew=1.0, zorder=1)
        suffix = f", {model_name(model)}" if len(models) > 1 else ""
        handles.append(Line2D([], [], ls=dash, color="black", marker="o", mfc="none", ms=12,
                              label=f"Pareto front (ours{suffix})"))
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 2.5, max(xs) * 2.5)
    ax.set_xlabel("trainable parameters (stored, log scale)")
    ax.set_ylabel(axis_label(metric, split, scale, hib))
    title = f"{task_name(task)}: score vs trainable parameters"
    if failed:
        title += f"  ({failed} configuration(s) failed, not shown)"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title="filled = ours, hollow = paper (at the size it prints)", title_fontsize=8)
    return save_figure(fig, out, f"params_{task}")


def summary_plot(grid: Grid, paper: list[PaperRow], out: Path, intervals: dict | None = None) -> list[Path]:
    """One panel per task: our score per method (center +- std) and the paper's value beside it; where
    `intervals` ({(row, task, split, metric): Interval in percent}, protocols.plot_intervals) has the cell, its
    95% bootstrap interval as a line under the point."""
    tasks = [t for t in grid.tasks if plot_metric(grid, t) is not None]
    if not tasks:
        return []
    style = styles(grid)
    ncols = min(4, len(tasks))
    nrows = (len(tasks) + ncols - 1) // ncols
    height = max(2.6, 0.42 * len(grid.rows) + 1.4)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 2.5, height * nrows), squeeze=False,
                             sharey=True)
    ys = {key: i for i, key in enumerate(reversed(grid.rows))}
    index = index_paper(paper)
    paper_drawn = interval_drawn = False
    for ax, task in zip(axes.flat, tasks):
        split, metric = plot_metric(grid, task)
        scale = column_scale(paper, grid, task, split, metric)
        hib = None
        for key in grid.rows:
            cell = grid.cells.get((key, task))
            if cell is None:
                continue
            s = style[key]
            stat = cell.stats.get((split, metric))
            if cell.n_ok == 0:
                ax.annotate("failed", (0.02, ys[key]), xycoords=("axes fraction", "data"), va="center",
                            fontsize=8, color="crimson")
                continue
            if stat is None or stat.center is None:
                continue
            hib = stat.higher_is_better if hib is None else hib
            y, err = convert(stat.center, stat.scale, scale), convert(stat.std, stat.scale, scale)
            if y is None:
                continue
            ax.errorbar([y], [ys[key]], xerr=None if err is None else [err], fmt=s.marker, color=s.color, ms=8,
                        mec="black", mew=0.6, capsize=3)
            interval = (intervals or {}).get((key, task, split, metric))
            if interval is not None:
                low, high = convert(interval.low, "percent", scale), convert(interval.high, "percent", scale)
                ax.plot([low, high], [ys[key] - 0.25] * 2, color=s.color, lw=2.2, solid_capstyle="butt")
                interval_drawn = True
            if cell.flags:  # an incomplete cell says so beside its point
                ax.annotate(cell.flags, (y, ys[key]), textcoords="offset points", xytext=(0, 7), ha="center",
                            fontsize=6.5, color="0.35")
            prow = paper_row(index, key, task, split, metric)
            if prow is not None:
                ax.plot([prow.value], [ys[key]], ls="", marker=s.marker, ms=11, mfc="none", mec=s.color,
                        mew=1.8)
                paper_drawn = True
        ax.set_title(f"{task_name(task)}", fontsize=10)
        ax.set_xlabel(axis_label(metric, split, scale, hib), fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
        ax.margins(x=0.15)
        ax.set_ylim(-0.6, len(grid.rows) - 0.2)  # headroom for the note above the top point
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_yticks(list(ys.values()), [style[k].label for k in ys])
    handles = [Line2D([], [], ls="", marker="o", color="0.5", mec="black", ms=8, label="ours (center \u00b1 std)")]
    if interval_drawn:
        handles.append(Line2D([], [], color="0.3", lw=2.2, label="95% interval (bootstrap over seeds and examples)"))
    if paper_drawn:
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", mew=1.8, ms=10, label="paper"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Per-method summary across tasks", fontsize=12)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return save_figure(fig, out, "summary")
