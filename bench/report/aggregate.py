"""From tidy rows to aggregated cells: runs, deduplication, seeds, median/mean and std, grid completeness.

- A *run attempt* is the set of rows with the same (run_id, created_at).
- Deduplication: attempts with the same run_id or the same settings (model, task, method, method_config, seed,
  lr, epochs, batch_size, grad_accum, recipe) are one run, transitively; the newest complete (status ok) attempt
  wins, and only when none is complete the newest failed one. The others are counted as superseded.
- A *table row* is a model x method configuration (label, recipe, paper join keys); a *cell* is a row x task,
  aggregating its seeds. Failed runs are counted, never averaged. Best-epoch selection happened in the runner.
- Grouping uses pandas; the centers and stds are `statistics.median` / `fmean` / `stdev` (exact sums).
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from bench.report.load import Row
from bench.report.units import convert

SETTINGS = ("model", "task", "method", "method_config", "seed", "lr", "epochs", "batch_size", "grad_accum",
            "recipe")
CENTERS = ("median", "mean")


@dataclass(frozen=True)
class Metric:
    value: float | None
    scale: str
    higher_is_better: bool | None
    best_epoch: float | None
    note: str


@dataclass(frozen=True)
class Run:
    run_id: str
    created_at: str
    status: str
    error: str
    line: int
    text: dict[str, str]          # settings and provenance columns of the first row
    num: dict[str, float | None]  # numeric columns of the first row (seed, lr, params_*, timings)
    metrics: dict[tuple[str, str], Metric] = field(default_factory=dict)

    @property
    def seed(self) -> float | None:
        return self.num["seed"]

    def settings(self) -> tuple:
        return tuple(self.num[c] if c in self.num else self.text[c] for c in SETTINGS)


@dataclass(frozen=True)
class RowKey:
    model: str
    label: str
    method: str
    method_config: str
    recipe: str
    paper_table: str
    paper_version: str
    paper_method: str
    paper_params: str
    variant: str = ""   # "lr=..., epochs=..., batch=..." only when the preset sweeps them for one seed

    @property
    def display(self) -> str:
        return f"{self.label} [{self.variant}]" if self.variant else self.label


@dataclass(frozen=True)
class Stat:
    center: float | None
    std: float | None
    n: int
    values: tuple[float, ...]
    scale: str
    higher_is_better: bool | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    row: RowKey
    task: str
    runs: tuple[Run, ...]
    expected_seeds: int
    stats: dict[tuple[str, str], Stat]

    @property
    def n_ok(self) -> int:
        return sum(r.status == "ok" for r in self.runs)

    @property
    def n_failed(self) -> int:
        return sum(r.status == "failed" for r in self.runs)

    @property
    def flags(self) -> str:
        """'2/5 seeds', '1 failed', ... ('' for a complete cell)."""
        parts = []
        if self.n_ok < self.expected_seeds:
            parts.append(f"{self.n_ok}/{self.expected_seeds} seeds")
        if self.n_failed:
            parts.append(f"{self.n_failed} failed")
        return ", ".join(parts)

    def param(self, column: str) -> float | None:
        values = [r.num[column] for r in self.runs if r.num.get(column) is not None]
        return statistics.median(values) if values else None


@dataclass(frozen=True)
class Grid:
    rows: list[RowKey]
    tasks: list[str]
    seeds: list[float | None]
    cells: dict[tuple[RowKey, str], Cell]
    runs: list[Run]              # the winners
    superseded: list[Run]
    missing: int                 # (row, task, seed) combinations seen nowhere, inferred from the rows/tasks/seeds

    @property
    def complete(self) -> int:
        return sum(r.status == "ok" for r in self.runs)

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "failed"]


def runs_from_rows(rows: list[Row]) -> list[Run]:
    """Group rows into run attempts by (run_id, created_at); an attempt with any failed row is failed."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["run_id"], row["created_at"])].append(row)
    runs = []
    for (run_id, created_at), members in groups.items():
        first = members[0]
        failed = [m for m in members if m["status"] == "failed"]
        metrics = {}
        for m in members:
            if m["status"] != "ok" or not m["metric"]:
                continue
            metrics[(m["split"], m["metric"])] = Metric(
                value=m.num["value"], scale=m["scale"], higher_is_better=m.higher_is_better,
                best_epoch=m.num["best_epoch"], note=m["note"])
        runs.append(Run(
            run_id=run_id, created_at=created_at, status="failed" if failed else "ok",
            error=failed[0]["error"] if failed else "", line=first.line, text=dict(first.text),
            num=dict(first.num), metrics=metrics))
    return runs


def dedup(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(winners, superseded): one winner per run_id / settings, the newest complete attempt first."""
    if not runs:
        return [], []
    frame = pd.DataFrame({"id": [r.run_id for r in runs], "settings": [repr(r.settings()) for r in runs],
                          "ok": [r.status == "ok" for r in runs], "created_at": [r.created_at for r in runs],
                          "line": [r.line for r in runs]})
    group = pd.Series(range(len(runs)))
    while True:  # connected components: attempts that share a run_id or the settings, transitively
        new = group.groupby(frame["id"]).transform("min").groupby(frame["settings"]).transform("min")
        if new.equals(group):
            break
        group = new
    best = set(frame.assign(group=group).sort_values(["ok", "created_at", "line"]).groupby("group").tail(1).index)
    winners = sorted((runs[i] for i in best), key=lambda r: r.line)  # ties: the later line
    return winners, [r for i, r in enumerate(runs) if i not in best]


def row_key(run: Run, variant: str = "") -> RowKey:
    t = run.text
    label = t["label"] or (f"{t['method']} ({t['method_config']})" if t["method_config"] else t["method"])
    return RowKey(model=t["model"], label=label, method=t["method"], method_config=t["method_config"],
                  recipe=t["recipe"], paper_table=t["paper_table"], paper_version=t["paper_version"],
                  paper_method=t["paper_method"], paper_params=t["paper_params"], variant=variant)


def _variant(run: Run) -> str:
    n = run.num
    parts = [f"lr={n['lr']:g}" if n["lr"] is not None else "", f"epochs={n['epochs']:g}" if n["epochs"] else "",
             _batch_text(n["batch_size"], n["grad_accum"])]
    return ", ".join(p for p in parts if p)


def _batch_text(batch: float | None, accum: float | None) -> str:
    if not batch:
        return ""
    return f"batch={batch:g}" if accum in (None, 1) else f"batch={batch:g}x{accum:g}"


def _stats(runs: list[Run], center: str) -> dict[tuple[str, str], Stat]:
    """Per (split, metric): center and sample std over the runs, in the scale the first run gives it."""
    frame = pd.DataFrame([{"key": key, "seed": run.seed, "value": m.value, "scale": m.scale or None,
                           "hib": m.higher_is_better, "note": m.note}
                          for run in runs for key, m in run.metrics.items()],
                         dtype=object)  # keep None as None (a float column would make it NaN)
    out: dict[tuple[str, str], Stat] = {}
    if frame.empty:
        return out
    for key, g in frame.groupby("key", sort=False):
        scale = g["scale"].dropna().iloc[0] if g["scale"].notna().any() else ""
        hib = g["hib"].dropna().iloc[0] if g["hib"].notna().any() else None
        values, notes = [], []
        for row in g.itertuples():
            value = convert(row.value, row.scale or "", scale) if row.value is not None else None
            if value is None:
                why = row.note or (f"scale {row.scale or ''} vs {scale}" if row.value is not None else "empty")
                notes.append(f"seed {row.seed:g}: {why}" if row.seed is not None else why)
            else:
                values.append(value)
        mid = (statistics.median(values) if center == "median" else statistics.fmean(values)) if values else None
        out[key] = Stat(center=mid, std=statistics.stdev(values) if len(values) >= 2 else None, n=len(values),
                        values=tuple(values), scale=scale, higher_is_better=hib, notes=tuple(notes))
    return out


def build_grid(rows: list[Row], center_of=lambda task: "median") -> Grid:
    """Aggregate rows into a Grid; `center_of(task)` picks "median" or "mean" over seeds for that task."""
    winners, superseded = dedup(runs_from_rows(rows))
    runs = pd.DataFrame({"run": winners, "key": [row_key(r) for r in winners],
                         "task": [r.text["task"] for r in winners], "seed": [r.seed for r in winners]}, dtype=object)
    # a row x task x seed that holds several runs is a sweep: tell its rows apart by lr/epochs/batch
    slots = runs.groupby(["key", "task", "seed"], dropna=False, sort=False)["run"].transform("size")
    swept = set(runs.loc[slots > 1, "key"])
    runs["key"] = [row_key(r, _variant(r)) if k in swept else k for r, k in zip(runs["run"], runs["key"])]
    seeds = sorted(pd.unique(runs["seed"]).tolist(), key=lambda s: (s is None, s or 0.0))
    cells = {}
    for (key, task), g in runs.groupby(["key", "task"], sort=False):
        center = center_of(task)
        if center not in CENTERS:
            raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
        ok = [r for r in g["run"] if r.status == "ok"]
        cells[(key, task)] = Cell(row=key, task=task, runs=tuple(g["run"]), expected_seeds=len(seeds),
                                  stats=_stats(ok, center))
    present = runs.drop_duplicates(["key", "task", "seed"])
    tasks_of = runs.groupby(runs["key"].map(lambda k: k.model))["task"].nunique()
    rows_order = pd.unique(runs["key"]).tolist()
    expected = sum(tasks_of[k.model] * len(seeds) for k in rows_order)
    return Grid(rows=rows_order, tasks=pd.unique(runs["task"]).tolist(), seeds=seeds, cells=cells, runs=winners,
                superseded=superseded, missing=max(expected - len(present), 0))
