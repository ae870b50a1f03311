"""From tidy rows to aggregated cells: runs, deduplication, seeds, median/mean and std, grid completeness.

- A *run attempt* is the set of rows with the same (run_id, created_at).
- Deduplication: attempts with the same run_id or the same settings (model, task, method, method_config, seed,
  lr, epochs, batch_size, recipe) are one run; the newest complete (status ok) attempt wins, and only when
  none is complete the newest failed one. The others are counted as superseded.
- A *table row* is a model x method configuration (label, recipe, paper join keys); a *cell* is a row x task,
  aggregating its seeds. Failed runs are counted, never averaged. Best-epoch selection happened in the runner.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

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
    parent: dict[int, int] = {i: i for i in range(len(runs))}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[tuple, int] = {}
    for i, run in enumerate(runs):
        for key in (("id", run.run_id), ("settings", run.settings())):
            if key in first_of:
                parent[find(i)] = find(first_of[key])
            else:
                first_of[key] = i
    groups: dict[int, list[Run]] = defaultdict(list)
    for i, run in enumerate(runs):
        groups[find(i)].append(run)
    winners, superseded = [], []
    for members in groups.values():
        best = max(members, key=lambda r: (r.status == "ok", r.created_at, r.line))  # ties: the later line
        winners.append(best)
        superseded.extend(m for m in members if m is not best)
    winners.sort(key=lambda r: r.line)
    return winners, superseded


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


def _stat(runs: list[Run], key: tuple[str, str], center: str) -> Stat:
    scale, hib, values, notes = "", None, [], []
    for run in runs:
        metric = run.metrics.get(key)
        if metric is None:
            continue
        scale = scale or metric.scale
        hib = metric.higher_is_better if hib is None else hib
        value = convert(metric.value, metric.scale, scale) if metric.value is not None else None
        if value is None:
            why = metric.note or ("scale " + metric.scale + " vs " + scale if metric.value is not None else "empty")
            notes.append(f"seed {run.seed:g}: {why}" if run.seed is not None else why)
            continue
        values.append(value)
    mid = None
    if values:
        mid = statistics.median(values) if center == "median" else statistics.fmean(values)
    std = statistics.stdev(values) if len(values) >= 2 else None
    return Stat(center=mid, std=std, n=len(values), values=tuple(values), scale=scale, higher_is_better=hib,
                notes=tuple(notes))


def build_grid(rows: list[Row], center_of=lambda task: "median") -> Grid:
    """Aggregate rows into a Grid; `center_of(task)` picks "median" or "mean" over seeds for that task."""
    winners, superseded = dedup(runs_from_rows(rows))
    # a row x task x seed that holds several runs is a sweep: tell its rows apart by lr/epochs/batch
    by_slot: dict[tuple, int] = defaultdict(int)
    for run in winners:
        by_slot[(row_key(run), run.text["task"], run.seed)] += 1
    swept = {key for (key, _, _), n in by_slot.items() if n > 1}
    keyed = [(row_key(run, _variant(run) if row_key(run) in swept else ""), run) for run in winners]

    rows_order: list[RowKey] = []
    tasks: list[str] = []
    seeds: list[float | None] = []
    members: dict[tuple[RowKey, str], list[Run]] = defaultdict(list)
    model_tasks: dict[str, set[str]] = defaultdict(set)
    for key, run in keyed:
        task = run.text["task"]
        if key not in rows_order:
            rows_order.append(key)
        if task not in tasks:
            tasks.append(task)
        if run.seed not in seeds:
            seeds.append(run.seed)
        members[(key, task)].append(run)
        model_tasks[key.model].add(task)
    cells = {}
    for (key, task), runs in members.items():
        center = center_of(task)
        if center not in CENTERS:
            raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
        ok = [r for r in runs if r.status == "ok"]
        metric_keys = list(dict.fromkeys(k for r in ok for k in r.metrics))
        cells[(key, task)] = Cell(row=key, task=task, runs=tuple(runs), expected_seeds=len(seeds),
                                  stats={k: _stat(ok, k, center) for k in metric_keys})
    seeds.sort(key=lambda s: (s is None, s or 0.0))
    present = {(key, run.text["task"], run.seed) for key, run in keyed}
    expected = sum(len(model_tasks[key.model]) * len(seeds) for key in rows_order)
    return Grid(rows=rows_order, tasks=tasks, seeds=seeds, cells=cells, runs=winners, superseded=superseded,
                missing=max(expected - len(present), 0))

