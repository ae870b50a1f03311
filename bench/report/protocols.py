"""Both selection protocols side by side, with intervals and the not-distinguishable-from-best marks.

Reads the rows of `results/PRESET.csv` (`selection` = dev | heldout | final) and the per-example predictions
`collect` writes beside it (`results/PRESET.predictions.jsonl`, bench/heldout.py), and writes `selection.md`.
The statistics are in `significance.py`; intervals and marks exist only for the tasks whose per-example
predictions the file holds. Generation tasks are compared on their dev metric, corpus BLEU, recomputed on each
bootstrap draw from per-input n-gram statistics (the other NLG metrics get no intervals).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.config import ConfigError
from bench.report.aggregate import Grid, RowKey
from bench.report.significance import CORPUS_TEST_NAME, TEST_NAME, CellData, TaskVerdict, compare
from bench.report.units import fmt, metric_name, model_name, task_name
from bench.tasks import TASKS

PROTOCOLS = ("dev", "heldout")
PROTOCOL_TEXT = {"dev": "dev selection (the papers': best epoch on the dev set that is scored)",
                 "heldout": "held-out selection (epoch chosen on one half of dev, scored on the other, both ways)"}


@dataclass
class Predictions:
    gold: dict[str, tuple[str, list]] = field(default_factory=dict)    # gold_id -> (task, values)
    # (run_id, created_at, selection, split) -> (gold_id, predictions)
    runs: dict[tuple[str, str, str, str], tuple[str, list]] = field(default_factory=dict)
    missing_gold: dict[str, str] = field(default_factory=dict)          # gold_id -> task, values not at hand


def read_predictions(path: Path) -> Predictions | None:
    """The per-example predictions file, or None when there is none; ConfigError naming the line if malformed.
    Gold values come from the gold file beside it (`<preset>.gold.jsonl`, not committed; each checked against
    its digest) or, in files written before it existed, from the gold lines; a gold id with neither has no
    entry in `gold`, and `missing_gold` names it."""
    from bench.heldout import gold_id, gold_path

    if not path.is_file():
        return None
    out = Predictions()
    values = _gold_values(gold_path(path))
    names = set()
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if "predictions" not in obj:              # a gold line: its digest (and values in older files)
                names.add(obj["gold_id"])
                gold = obj["gold"] if "gold" in obj else values.get(obj["gold_id"])
                if gold is not None and gold_id(obj["task"], obj["split"], gold) == obj["gold_id"]:
                    out.gold[obj["gold_id"]] = (obj["task"], gold)
                else:
                    out.missing_gold[obj["gold_id"]] = obj["task"]
            else:
                if obj["gold_id"] not in names:
                    raise KeyError(f"gold_id {obj['gold_id']!r} before its gold line")
                key = (obj["run_id"], obj.get("created_at", ""), obj["selection"], obj["split"])
                out.runs[key] = (obj["gold_id"], obj["predictions"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path} line {line_no}: not a predictions record ({exc}); expected the lines "
                              f"`peft-bench collect` writes") from None
    return out


def _gold_values(path: Path) -> dict[str, list]:
    if not path.is_file():
        return {}
    out = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
                out[obj["gold_id"]] = obj["gold"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(f"{path} line {line_no}: not a gold record ({exc})") from None
    return out


GOLD_MISSING = ("labels / references not at hand (dataset content is not committed): `peft-bench collect "
                "PRESET --data-dir D` rebuilds them from the release files")


@dataclass(frozen=True)
class TaskResult:
    task: str
    metric: str
    verdicts: dict[str, TaskVerdict]     # protocol -> verdict (only protocols with predictions for every seed run)
    note: str = ""                        # why there is no verdict
    unit: str = "examples"                # what the bootstrap draws: examples, or inputs of a generation task
    test: str = TEST_NAME                 # the test behind the marks
    table: tuple | None = None            # generation tasks: ((split, metric) of the NLG table, TaskVerdict)


def verdicts(grids: dict[str, Grid], preds: Predictions | None, center_of) -> dict[str, TaskResult]:
    """Per task of the dev grid: a TaskVerdict per protocol that has predictions. Classification and regression
    tasks on their table metric; generation tasks on dev BLEU (their selection metric)."""
    out: dict[str, TaskResult] = {}
    dev = grids["dev"]
    for task in dev.tasks:
        t = TASKS.get(task)
        if t is None:
            continue
        generate = t.kind == "generate"
        metric = t.select_metric if generate else t.columns()[0][1]
        kind = {"unit": "inputs", "test": CORPUS_TEST_NAME} if generate else {}
        if generate and metric != "bleu":
            continue
        if preds is None:
            out[task] = TaskResult(task, metric, {}, "no per-example predictions file", **kind)
            continue
        got, notes = {}, []
        for protocol in PROTOCOLS:
            grid = grids.get(protocol)
            if grid is None or task not in grid.tasks:
                continue
            cells, gold_ids = _cells(grid, task, protocol, preds, t.select_split)
            if len(gold_ids) > 1:
                notes.append(f"{protocol}: runs were scored on different dev sets")
                continue
            if not cells:
                continue
            if gold_ids & preds.missing_gold.keys():
                if GOLD_MISSING not in notes:
                    notes.append(GOLD_MISSING)
                continue
            gold = preds.gold[gold_ids.pop()][1]
            hib = next((m.higher_is_better for r in grid.runs for (s, name), m in r.metrics.items()
                        if r.text["task"] == task and name == metric and m.higher_is_better is not None), True)
            if generate:
                got[protocol] = _compare_bleu(task, cells, gold, hib, center_of(task))
            else:
                cells = {k: CellData([None if v is None else np.asarray(v) for v in c.predictions])
                         for k, c in cells.items()}
                got[protocol] = compare(cells, np.asarray(gold), metric, higher_is_better=hib,
                                        center=center_of(task), majority=t.kind == "classify")
        table = _table_verdict(t, dev, preds, center_of(task)) if generate else None
        if generate and table is None and task in preds.missing_gold.values() and GOLD_MISSING not in notes:
            notes.append(GOLD_MISSING)
        out[task] = TaskResult(task, metric, got, "; ".join(notes), **kind, table=table)
    return out


def _table_verdict(t, dev: Grid, preds: Predictions, center: str) -> tuple | None:
    """The NLG table's BLEU column (test, or WebNLG's test-all: every test input) under the runs' own protocol,
    from the test outputs and references runs keep; None when some run lacks them."""
    column = next(((s, m) for s, m in t.columns() if m == "bleu" and s in ("test", "test-all")), None)
    if column is None:
        return None
    cells, gold_ids = _cells(dev, t.name, "dev", preds, "test")
    if not cells or len(gold_ids) != 1 or gold_ids & preds.missing_gold.keys():
        return None
    hib = next((m.higher_is_better for r in dev.runs for (s, name), m in r.metrics.items()
                if r.text["task"] == t.name and (s, name) == column and m.higher_is_better is not None), True)
    return column, _compare_bleu(t.name, cells, preds.gold[gold_ids.pop()][1], hib, center)


def _compare_bleu(task: str, cells: dict, gold: list, higher_is_better: bool, center: str) -> TaskVerdict:
    """The bootstrap on corpus BLEU: each seed's outputs become per-input n-gram statistics once."""
    from bench.scorers.bleu_stats import bleu_from_statistics, bleu_statistics_many

    flat = [v for c in cells.values() for v in c.predictions if v is not None]
    done = iter(bleu_statistics_many(task, flat, gold))
    stats = {k: CellData([None if v is None else next(done) for v in c.predictions]) for k, c in cells.items()}
    return compare(stats, gold, "bleu", higher_is_better=higher_is_better, center=center,
                   corpus=lambda summed: bleu_from_statistics(task, summed))


def _cells(grid: Grid, task: str, protocol: str, preds: Predictions, split: str,
           ) -> tuple[dict[RowKey, CellData], set]:
    """The rows of `task` whose every complete run has predictions under `protocol` (final runs under dev)."""
    cells, gold_ids = {}, set()
    for key in grid.rows:
        cell = grid.cells.get((key, task))
        if cell is None or cell.n_ok == 0:
            continue
        vectors: list = [None] * len(grid.seeds)
        for run in cell.runs:
            if run.status != "ok":
                continue
            sel = run.text["selection"] if protocol == "dev" else protocol
            hit = preds.runs.get((run.run_id, run.created_at, sel, split))
            if hit is None:
                break
            gold_ids.add(hit[0])
            vectors[grid.seeds.index(run.seed)] = hit[1]
        else:
            cells[key] = CellData(vectors)
    return cells, gold_ids


def marks_of(results: dict[str, TaskResult], protocol: str) -> dict[tuple[RowKey, str], str]:
    """{(row, task): "best" | "tied"} for the tables."""
    out = {}
    for task, res in results.items():
        v = res.verdicts.get(protocol)
        if v is None or v.best is None:
            continue
        out[(v.best, task)] = "best"
        out.update({(k, task): "tied" for k in v.tied})
    return out


def nlg_marks(results: dict[str, TaskResult]) -> tuple[dict, str]:
    """({(row, task, split, metric): "best" | "tied"}, the note under the NLG table) from the test BLEU verdicts."""
    marks, tasks = {}, []
    for task, res in results.items():
        if res.table is None or res.table[1].best is None:
            continue
        (split, metric), v = res.table
        tasks.append(f"{task_name(task)} ({v.examples} test inputs)")
        marks[(v.best, task, split, metric)] = "best"
        marks.update({(k, task, split, metric): "tied" for k in v.tied})
    if not marks:
        return {}, ""
    where = ("Dev BLEU under dev and held-out selection, with intervals: selection.md." if any(
        res.verdicts for res in results.values() if res.table is not None) else
        "The intervals of these BLEU columns: selection.md.")
    return marks, (f"BLEU columns of {', '.join(tasks)}: **bold** the best mean over seeds, \u2248 not "
                   f"distinguishable from it at 95% ({CORPUS_TEST_NAME}). The other metrics carry no marks. {where}")


def plot_intervals(results: dict[str, TaskResult], protocol: str = "dev") -> dict[tuple, object]:
    """{(row, task, "dev", metric): Interval} for the summary plot."""
    return {(key, task, "dev", res.metric): iv for task, res in results.items()
            if (v := res.verdicts.get(protocol)) is not None for key, iv in v.intervals.items()}


def table_note(results: dict[str, TaskResult], protocol: str) -> str:
    """The line under a marked table: what bold and \u2248 mean and which test decided them."""
    results = {t: r for t, r in results.items() if r.test == TEST_NAME}    # the GLUE table's tasks
    if not any(protocol in r.verdicts for r in results.values()):
        return ""
    flat = [task_name(t) for t, r in results.items()
            if (v := r.verdicts.get(protocol)) is not None and v.majority is not None and not v.beats_majority]
    text = (f"**bold**: the best center of the column (median over seeds); \u2248: not distinguishable from it at "
            f"95% ({TEST_NAME}). Intervals, the held-out protocol and the majority-class baseline: selection.md.")
    if flat:
        text += f" {', '.join(flat)}: no method differs from the majority-class baseline at 95%."
    return text


# ---------------------------------------------------------------- selection.md
def selection_markdown(grids: dict[str, Grid], results: dict[str, TaskResult], pred_path: Path) -> str:
    dev, held = grids["dev"], grids.get("heldout")
    lines = ["# Selection protocols, 95% intervals and which differences are real", "",
             f"- **dev**: {PROTOCOL_TEXT['dev']}; what the tables compare with the papers. Runs with "
             f"`select=final` made no selection and have this one protocol (`final`).",
             f"- **heldout**: {PROTOCOL_TEXT['heldout']}. The halves are fixed per task (a hash of the task and "
             f"the example index, docs/report.md); the two held-out halves are scored together as one prediction "
             f"vector per run.",
             "- **dev selection adds**: dev \u2212 heldout, in points of the task's metric (centers over seeds).",
             f"- intervals: 95% percentile bootstrap over seeds and dev examples; marks: {TEST_NAME}.",
             *([f"- generation tasks (dev BLEU, the metric that selects their epoch; no intervals for the other "
                f"NLG metrics): {CORPUS_TEST_NAME}."] if any(r.test == CORPUS_TEST_NAME for r in results.values())
               else []),
             f"- per-example predictions: `{pred_path}`" + ("" if pred_path.is_file() else " (absent: no "
                                                             "intervals or marks)"), ""]
    final_only = {task for task in results if _all_final(dev, task)}
    if held is None and final_only == set(results):
        lines += ["**No heldout rows**: every run kept its final state (`select=final`): no epoch was chosen, so "
                  "there is no selection for a held-out protocol to redo.", ""]
    elif held is None:
        lines += ["**No heldout rows**: the runs of this CSV kept no per-epoch dev predictions (run folders from "
                  "before they were kept, or removed), so the held-out protocol cannot be derived without "
                  "rerunning the grid and `peft-bench collect`.", ""]
    for task, res in results.items():
        if task in final_only and not res.verdicts:
            lines += _final_table(dev, task, res) if res.table is not None else [
                f"## {task_name(task)}", "", "Every run kept its final state (`select=final`) and dev was not scored: "
                "one protocol, nothing selected.", "", *_verdict_lines(res)]
            continue
        lines += [f"## {task_name(task)} ({metric_name(res.metric)}, %)", ""]
        lines += ["| Model | Method | dev | heldout | dev selection adds |", "|---|---|--:|--:|--:|"]
        for key in dev.rows:
            cell = dev.cells.get((key, task))
            if cell is None:
                continue
            dev_text, dev_c = _cell_text(dev, key, task, res, "dev")
            held_text, held_c = _cell_text(held, key, task, res, "heldout") if held else ("", None)
            gap = "" if dev_c is None or held_c is None else fmt(dev_c - held_c, "percent", signed=True)
            if held is not None and held_c is None and (key, task) not in held.cells and dev_c is not None:
                finals = {r.text["selection"] for r in cell.runs if r.status == "ok"}
                held_text = "one protocol (final)" if finals == {"final"} else held_text
            lines.append(f"| {model_name(key.model)} | {key.display.replace('|', '/')} | {dev_text} | {held_text} "
                         f"| {gap} |")
        lines.append("")
        lines += _verdict_lines(res)
    return "\n".join(lines) + "\n"


def _all_final(grid: Grid, task: str) -> bool:
    """Whether every complete run of `task` kept its final state (no selection, one protocol)."""
    runs = [r for (_, t), cell in grid.cells.items() if t == task for r in cell.runs if r.status == "ok"]
    return bool(runs) and all(r.text.get("selection") == "final" for r in runs)


def _final_table(grid: Grid, task: str, res: TaskResult) -> list[str]:
    """A generation task whose runs all kept their final state: the NLG table's test BLEU with its intervals."""
    (split, metric), v = res.table
    lines = [f"## {task_name(task)} ({split} {metric_name(metric)}, %)", "",
             f"Every run kept its final state (`select=final`) and dev was not scored: one protocol, nothing "
             f"selected. The NLG table's {split} {metric_name(metric)}, mean over seeds, with 95% intervals:", "",
             f"| Model | Method | {split} | 95% interval |", "|---|---|--:|--:|"]
    for key in grid.rows:
        cell = grid.cells.get((key, task))
        stat = cell.stats.get((split, metric)) if cell is not None else None
        if stat is None or stat.center is None:
            continue
        text = fmt(stat.center, "percent")
        text = f"**{text}**" if v.best == key else (f"{text} \u2248" if key in v.tied else text)
        iv = v.intervals.get(key)
        interval = f"[{fmt(iv.low, 'percent')}, {fmt(iv.high, 'percent')}]" if iv is not None else ""
        lines.append(f"| {model_name(key.model)} | {key.display.replace('|', '/')} | {text} | {interval} |")
    tied = len(v.tied)
    return lines + ["", f"- {split}: {v.examples} {res.unit}, {v.replicates} replicates; {tied} method"
                        f"{'s' if tied != 1 else ''} not distinguishable from the best.", ""]


def _cell_text(grid: Grid, key: RowKey, task: str, res: TaskResult, protocol: str) -> tuple[str, float | None]:
    cell = grid.cells.get((key, task))
    stat = cell.stats.get(("dev", res.metric)) if cell is not None else None
    if stat is None or stat.center is None:
        return "", None
    text = fmt(stat.center, "percent")
    v = res.verdicts.get(protocol)
    if v is not None and key in v.intervals:
        iv = v.intervals[key]
        text = f"**{text}**" if v.best == key else (f"{text} \u2248" if key in v.tied else text)
        text += f" [{fmt(iv.low, 'percent')}, {fmt(iv.high, 'percent')}]"
    return text, stat.center


def _verdict_lines(res: TaskResult) -> list[str]:
    if not res.verdicts:
        return [f"No intervals or marks: {res.note or 'no per-example predictions for this task'}.", ""]
    lines = []
    for protocol, v in res.verdicts.items():
        tied = len(v.tied)
        line = (f"- {protocol}: {v.examples} dev {res.unit}, {v.replicates} replicates; "
                f"{tied} method{'s' if tied != 1 else ''} not distinguishable from the best.")
        if v.majority is not None:
            if v.beats_majority:
                line += (f" Majority-class baseline {fmt(v.majority, 'percent')}: {len(v.beats_majority)} of "
                         f"{len(v.intervals)} methods better at 95%.")
            else:
                line += (f" **No method differs from the majority-class baseline** ({fmt(v.majority, 'percent')}) "
                         f"at 95%.")
        lines.append(line)
    if res.note:
        lines.append(f"- {res.note}")
    return lines + [""]
