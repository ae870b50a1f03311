"""Tables laid out like the papers (LoRA Table 2 for GLUE, Prefix-Tuning Table 1 for E2E/WebNLG/DART) and a
long table of every aggregated metric. Structure only; `render.py` writes Markdown and LaTeX.

Every value cell holds our aggregate (in the scale the paper prints for that column), the paper's value and
the difference ours - paper where both exist; cells we did not compute stay empty; a cell whose runs all
failed says so.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from bench.report.aggregate import Cell, Grid, RowKey
from bench.report.paper import PaperRow
from bench.report.units import (SPLIT_SHORT, arrow, convert, fmt_params, fmt_percent, metric_name, model_name,
                                rounded, table_tasks, task_name)
from bench.tasks import TASKS

PaperIndex = dict[tuple, PaperRow]


@dataclass(frozen=True)
class Entry:
    """One value cell. kind: value | failed | empty (no run, or no run wrote the metric) | missing (value left empty,
    reason in note) | unscaled (our value's scale cannot be converted to the column's)."""
    kind: str
    scale: str = ""
    ours: float | None = None
    std: float | None = None
    paper: float | None = None
    paper_std: float | None = None
    diff: float | None = None
    flags: str = ""
    our_scale: str = ""
    mark: str = ""          # best | tied (not distinguishable from the best, significance.py) | ""


@dataclass(frozen=True)
class Table:
    name: str                        # file stem
    title: str
    caption: str
    lead: list[str]                  # headers of the descriptive leading columns
    groups: list[tuple[str, int]]    # header groups spanning value columns ([] when none)
    columns: list[str]               # value column headers (with arrows)
    rows: list[tuple[list[str], list[Entry]]]
    notes: list[str]
    test: str = ""                   # what the best / not-distinguishable marks mean, the test named


def index_paper(rows: list[PaperRow]) -> PaperIndex:
    return {row.key(): row for row in rows}


def column_scale(paper: list[PaperRow], grid: Grid, task: str, split: str, metric: str) -> str:
    """The scale a column is shown in: the paper's for that (task, split, metric), else ours, else raw."""
    for row in paper:
        if (row.task, row.split, row.metric) == (task, split, metric):
            return row.scale
    scales = [c.stats[(split, metric)].scale for (_, t), c in grid.cells.items()
              if t == task and (split, metric) in c.stats and c.stats[(split, metric)].scale]
    return statistics.mode(scales) if scales else "raw"


def paper_row(index: PaperIndex, key: RowKey, task: str, split: str, metric: str) -> PaperRow | None:
    if not key.paper_method:
        return None
    return index.get((key.model, task, split, metric, key.paper_method, key.paper_params, key.paper_version))


def entry(cell: Cell | None, key: RowKey, task: str, split: str, metric: str, scale: str,
          index: PaperIndex) -> Entry:
    if cell is None:
        return Entry(kind="empty")
    flags = cell.flags
    if cell.n_ok == 0:
        return Entry(kind="failed", flags=f"{cell.n_failed} run" + ("s" if cell.n_failed > 1 else ""))
    stat = cell.stats.get((split, metric))
    if stat is None:
        return Entry(kind="empty")  # no run wrote this metric
    if stat.center is None:
        return Entry(kind="missing", flags=flags)  # written empty, with a reason in 'note
    ours = convert(stat.center, stat.scale, scale)
    std = convert(stat.std, stat.scale, scale)
    if ours is None:
        return Entry(kind="unscaled", ours=stat.center, std=stat.std, scale=stat.scale, our_scale=stat.scale,
                     flags=flags)
    prow = paper_row(index, key, task, split, metric)
    paper = prow.value if prow is not None else None
    if prow is not None and _cell_setting(index, prow):
        flags = "; ".join(f for f in (flags, f"paper: {prow.setting}") if f)
    return Entry(kind="value", scale=scale, ours=ours, std=std, paper=paper,
                 paper_std=prow.std if prow is not None else None,
                 diff=None if paper is None else rounded(ours, scale) - paper, flags=flags, our_scale=stat.scale)


def _cell_setting(index: PaperIndex, prow: PaperRow) -> bool:
    """Whether the paper row's setting is its cell's own: other cells of the same paper row (model, method,
    params, version) have another one (VeRA Table 2: only MRPC, RTE, STS-B start without MNLI). A setting shared
    by the whole row (LoRA's restricted block) goes into the table's notes instead."""
    if not prow.setting:
        return False
    same = (prow.model, prow.paper_method, prow.paper_params, prow.paper_version)
    return any((p.model, p.paper_method, p.paper_params, p.paper_version) == same and p.setting != prow.setting
               for p in index.values())


def _hib(grid: Grid, paper: list[PaperRow], task: str, split: str, metric: str) -> bool | None:
    for cell in grid.cells.values():
        stat = cell.stats.get((split, metric))
        if cell.task == task and stat is not None and stat.higher_is_better is not None:
            return stat.higher_is_better
    for row in paper:
        if (row.task, row.split, row.metric) == (task, split, metric):
            return row.higher_is_better
    return None


def _params_text(grid: Grid, key: RowKey, tasks: list[str]) -> str:
    values = sorted({c.param("params_stored") for t in tasks if (c := grid.cells.get((key, t))) is not None}
                    - {None})
    if not values:
        return ""
    text = fmt_params(values[0]) if len(values) == 1 else f"{fmt_params(values[0])}\u2013{fmt_params(values[-1])}"
    return f"{text} (paper {key.paper_params})" if key.paper_params else text


def _percent_text(grid: Grid, key: RowKey, tasks: list[str]) -> str:
    values = sorted({c.param("params_percent") for t in tasks if (c := grid.cells.get((key, t))) is not None}
                    - {None})
    if not values:
        return ""
    return "/".join(fmt_percent(v) for v in values)


def _rows_for(grid: Grid, tasks: list[str]) -> list[RowKey]:
    return [key for key in grid.rows if any((key, t) in grid.cells for t in tasks)]


def glue_table(grid: Grid, paper: list[PaperRow], marks: dict | None = None, test: str = "") -> Table | None:
    """`marks`: {(row, task): "best" | "tied"} from protocols.marks_of, explained by `test`."""
    glue = table_tasks("glue")
    tasks = [t for t in glue if t in grid.tasks]
    if not tasks:
        return None
    index = index_paper(paper)
    columns, rows = [], []
    column = {t: TASKS[t].columns()[0] for t in tasks}  # (split, metric): one column per GLUE task
    for task in tasks:
        hib = _hib(grid, paper, task, *column[task])
        columns.append(f"{task_name(task)} ({metric_name(column[task][1])} {arrow(hib)})".replace(" )", ")"))
    columns.append("Avg.")
    for key in _rows_for(grid, tasks):
        entries = [entry(grid.cells.get((key, t)), key, t, *column[t], "percent", index) for t in tasks]
        entries = [replace(e, mark=(marks or {}).get((key, t), "")) if e.kind == "value" else e
                   for e, t in zip(entries, tasks)]
        rows.append(([model_name(key.model), key.display, _params_text(grid, key, tasks)],
                     entries + [_glue_average(entries, key, index, len(glue))]))
    caption = ("GLUE dev sets in the layout of LoRA Table 2: MNLI matched accuracy, CoLA Matthews correlation, "
               "STS-B Pearson correlation, accuracy elsewhere, all in %. Each cell: median over seeds \u00b1 "
               f"sample std of our runs ({kept_text(grid, tasks)}), then (paper value, \u0394 = ours \u2212 paper) "
               "where the paper has the row. # trainable parameters = stored parameters without the task head. "
               "Avg. is the mean of the task medians; it is compared to the paper only over all 8 tasks.")
    return Table(name="glue", title="GLUE (LoRA Table 2 layout)", caption=caption,
                 lead=["Model", "Method", "# Trainable Params"], groups=[], columns=columns, rows=rows,
                 notes=_notes(grid, tasks, paper), test=test if marks else "")


def _glue_average(entries: list[Entry], key: RowKey, index: PaperIndex, n_tasks: int) -> Entry:
    values = [e.ours for e in entries if e.kind == "value"]
    if not values:
        return Entry(kind="empty")
    mean = statistics.fmean(values)
    flags = "" if len(values) == n_tasks else f"{len(values)}/{n_tasks} tasks"
    prow = paper_row(index, key, "glue-avg", "dev", "average") if not flags else None
    paper = prow.value if prow is not None else None
    return Entry(kind="value", scale="percent", ours=mean, paper=paper,
                 diff=None if paper is None else rounded(mean, "percent") - paper, flags=flags,
                 our_scale="percent")


def nlg_table(grid: Grid, paper: list[PaperRow], marks: dict | None = None, test: str = "") -> Table | None:
    """`marks`: {(row, task, split, metric): "best" | "tied"} from protocols.nlg_marks, explained by `test`."""
    tasks = [t for t in table_tasks("nlg") if t in grid.tasks]
    if not tasks:
        return None
    index = index_paper(paper)
    groups, columns, specs = [], [], []
    for task in tasks:
        groups.append((task_name(task), len(TASKS[task].columns())))
        for split, metric in TASKS[task].columns():
            hib = _hib(grid, paper, task, split, metric)
            short = SPLIT_SHORT.get(split, "")
            columns.append(f"{metric_name(metric)}{'-' + short if short else ''} {arrow(hib)}".strip())
            specs.append((task, split, metric, column_scale(paper, grid, task, split, metric)))
    rows = []
    for key in _rows_for(grid, tasks):
        entries = [entry(grid.cells.get((key, t)), key, t, s, m, scale, index) for t, s, m, scale in specs]
        entries = [replace(e, mark=(marks or {}).get((key, t, s, m), "")) if e.kind == "value" else e
                   for e, (t, s, m, _) in zip(entries, specs)]
        rows.append(([model_name(key.model), key.display, _params_text(grid, key, tasks),
                      _percent_text(grid, key, tasks)], entries))
    caption = ("Table-to-text test sets in the layout of Prefix-Tuning Table 1 (WebNLG: S seen, U unseen, A all "
               f"categories). Each cell: mean over seeds \u00b1 sample std of our runs ({kept_text(grid, tasks)}), "
               "then (paper value, \u0394 = ours \u2212 paper) where the paper has the row, in the paper's units "
               "(BLEU, and E2E METEOR and ROUGE-L in %; NIST and CIDEr raw; WebNLG/DART METEOR, TER and the "
               "learned metrics as fractions). # params = stored parameters.")
    return Table(name="nlg", title="Table-to-text (Prefix-Tuning Table 1 layout)", caption=caption,
                 lead=["Model", "Method", "# Params (stored)", "% of base"], groups=groups, columns=columns,
                 rows=rows, notes=_notes(grid, tasks, paper), test=test if marks else "")


def kept_text(grid: Grid, tasks: list[str]) -> str:
    """Which state the runs of `tasks` kept, as the runner's `select` recorded it (empty: the old default, best)."""
    kept = {r.text.get("select", "") or "best" for r in grid.runs if r.text.get("task", "") in tasks}
    if kept == {"final"}:
        return "each run's final state, no selection"
    if kept <= {"best"}:
        return "best epoch on dev per run"
    return "best dev epoch or final state per run, as each recipe keeps it: index.md"


def _notes(grid: Grid, tasks: list[str], paper: list[PaperRow]) -> list[str]:
    notes = []
    settings = {(p.model, p.paper_method, p.paper_params, p.paper_version): p.setting for p in paper if p.setting}
    for key in _rows_for(grid, tasks):
        setting = settings.get((key.model, key.paper_method, key.paper_params, key.paper_version))
        if setting:
            notes.append(f"{model_name(key.model)} {key.display}: the paper's row "
                         f"({key.paper_method} {key.paper_params}, {key.paper_version}) is {setting}; "
                         f"our recipe: {key.recipe or 'not recorded'}")
    for key in grid.rows:
        for task in tasks:
            cell = grid.cells.get((key, task))
            if cell is None:
                continue
            for (split, metric), stat in cell.stats.items():
                for note in stat.notes:
                    notes.append(f"{model_name(key.model)} {key.display}, {task_name(task)} {split} {metric}: "
                                 f"not computed ({note})")
    return notes


def long_rows(grid: Grid, paper: list[PaperRow], selection: str = "dev") -> list[dict]:
    """Every aggregated (row, task, split, metric) as a flat record: the report's aggregated.csv. `selection`
    names the protocol of `grid`'s rows (dev, which includes select=final runs, or heldout)."""
    index = index_paper(paper)
    out = []
    for key in grid.rows:
        for task in grid.tasks:
            cell = grid.cells.get((key, task))
            if cell is None:
                continue
            stats = cell.stats.items() if cell.stats else [(("", ""), None)]
            for (split, metric), stat in stats:
                prow = paper_row(index, key, task, split, metric) if stat is not None else None
                ours = convert(stat.center, stat.scale, prow.scale) if (prow and stat) else None
                out.append({
                    "model": key.model, "label": key.display, "method": key.method,
                    "method_config": key.method_config, "recipe": key.recipe, "task": task, "split": split,
                    "metric": metric, "selection": selection,
                    "center": "" if stat is None or stat.center is None else stat.center,
                    "std": "" if stat is None or stat.std is None else stat.std,
                    "scale": stat.scale if stat else "", "n_ok": cell.n_ok, "n_failed": cell.n_failed,
                    "expected_seeds": cell.expected_seeds,
                    "params_stored": "" if cell.param("params_stored") is None else cell.param("params_stored"),
                    "paper_version": key.paper_version, "paper_method": key.paper_method,
                    "paper_params": key.paper_params, "paper_value": prow.value if prow else "",
                    "paper_scale": prow.scale if prow else "",
                    "diff": "" if ours is None or prow is None else ours - prow.value,
                })
    return out


def unmatched_rows(grid: Grid, paper: list[PaperRow]) -> list[RowKey]:
    """Rows that name a paper row (paper_method set) for which results/paper.csv has no row at all, for the
    same model, method, printed size and version: a typo there would silently drop the paper's numbers."""
    known = {(p.model, p.paper_method, p.paper_params, p.paper_version) for p in paper}
    return [k for k in grid.rows
            if k.paper_method and (k.model, k.paper_method, k.paper_params, k.paper_version) not in known]
