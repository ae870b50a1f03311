"""`build_report`: results/PRESET.csv + results/paper.csv -> reports/PRESET/ (tables, plots, index.md)."""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import ConfigError
from bench.heldout import predictions_path
from bench.report.aggregate import Grid, build_grid
from bench.report.load import read_results
from bench.report.paper import PaperRow, read_paper
from bench.report.protocols import (marks_of, nlg_marks, plot_intervals, read_predictions, selection_markdown,
                                    table_note, verdicts)
from bench.report.render import long_markdown, to_latex, to_markdown
from bench.report.tables import glue_table, long_rows, nlg_table, unmatched_rows
from bench.report.units import model_name, task_name
from bench.tasks import TASKS

VERSIONS = {
    "arxiv-v2": "LoRA (Hu et al., arXiv 2106.09685 v2)",
    "arxiv-v1": "Prefix-Tuning (Li & Liang, arXiv 2101.00190 v1, Table 1)",
    "acl-2021": "Prefix-Tuning (Li & Liang, ACL 2021, Table 2)",
}


@dataclass
class ReportSummary:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    runs_complete: int = 0
    runs_failed: int = 0
    runs_missing: int = 0
    runs_superseded: int = 0
    empty: bool = False
    unmatched: list[str] = field(default_factory=list)  # rows naming a paper row that paper.csv lacks


def center_of(task: str) -> str:
    """The task record's: GLUE median over seeds (LoRA Table 2), generation mean (LoRA's GPT-2 tables); tasks
    the registry does not know: mean."""
    t = TASKS.get(task)
    return t.center if t is not None else "mean"


def default_paper_csv(results_dir: Path) -> Path:
    here = results_dir / "paper.csv"
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[2] / "results" / "paper.csv"


def build_report(preset: str, results_dir: Path = Path("results"), out_root: Path = Path("reports"),
                 paper_csv: Path | None = None, plots: bool = True) -> ReportSummary:
    """Write reports/PRESET/; raises ConfigError for a missing or malformed CSV."""
    csv_path = results_dir / f"{preset}.csv"
    rows = read_results(csv_path)
    paper_path = paper_csv or default_paper_csv(results_dir)
    paper = read_paper(paper_path)
    presets = {r["preset"] for r in rows if r["preset"]}
    if presets - {preset}:
        raise ConfigError(f"{csv_path}: holds rows of preset(s) {', '.join(sorted(presets - {preset}))}, "
                          f"expected only {preset!r}")
    out = out_root / preset
    if out.exists():
        shutil.rmtree(out)  # a report is rebuilt from scratch: no stale plot of a task that left the preset
    out.mkdir(parents=True)
    summary = ReportSummary(out_dir=out)
    grid = build_grid([r for r in rows if r["selection"] != "heldout"], center_of=center_of)
    winners = {(r.run_id, r.created_at) for r in grid.runs}
    heldout = [r for r in rows if r["selection"] == "heldout" and (r["run_id"], r["created_at"]) in winners]
    grids = {"dev": grid, **({"heldout": build_grid(heldout, center_of=center_of)} if heldout else {})}
    pred_path = predictions_path(csv_path)
    results = verdicts(grids, read_predictions(pred_path), center_of)
    summary.runs_complete, summary.runs_failed = grid.complete, len(grid.failed)
    summary.runs_missing, summary.runs_superseded = grid.missing, len(grid.superseded)
    summary.empty = not grid.runs
    summary.unmatched = [f"{k.model} {k.display} ({k.paper_method} {k.paper_params} {k.paper_version})"
                         for k in unmatched_rows(grid, paper)]
    tables = [t for t in (glue_table(grid, paper, marks_of(results, "dev"), table_note(results, "dev")),
                          nlg_table(grid, paper, *nlg_marks(results))) if t is not None]
    for table in tables:
        summary.files += _write(out / f"{table.name}.md", to_markdown(table))
        summary.files += _write(out / f"{table.name}.tex", to_latex(table))
    if results:
        summary.files += _write(out / "selection.md", selection_markdown(grids, results, pred_path))
    records = long_rows(grid, paper) + (long_rows(grids["heldout"], paper, "heldout") if "heldout" in grids else [])
    if records:
        summary.files += _write(out / "all_metrics.md", long_markdown(records))
        summary.files.append(_write_csv(out / "aggregated.csv", records))
    figures: list[Path] = []
    n_logs = 0
    if plots and grid.runs:
        from bench.report.curves import curve_plots  # matplotlib only when there is something to draw
        from bench.report.plots import params_plot, summary_plot
        for task in grid.tasks:
            figures += params_plot(grid, paper, task, out)
        figures += summary_plot(grid, paper, out, plot_intervals(results))
        curves, n_logs = curve_plots(grid, results_dir / "runs" / preset, out)
        figures += curves
    summary.files += figures
    text = index_markdown(preset, csv_path, paper_path, grid, paper, tables, records, figures, n_logs,
                          results_dir / "runs" / preset, selection=bool(results),
                          heldout_runs=len(grids["heldout"].runs) if "heldout" in grids else 0)
    summary.files += _write(out / "index.md", text)
    return summary


def _write(path: Path, text: str) -> list[Path]:
    path.write_text(text, encoding="utf-8")
    return [path]


def _write_csv(path: Path, records: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return path


def _seeds(grid: Grid) -> str:
    return ", ".join("(none)" if s is None else f"{s:g}" for s in grid.seeds)


def _distinct(grid: Grid, column: str) -> str:
    values = sorted({r.text.get(column, "") for r in grid.runs} - {""})
    return ", ".join(values) if values else "(not recorded)"


SELECT_TEXT = {"best": "the best epoch on the dev set by the task's selection metric",
               "final": "the final epoch's state (no selection, as the Prefix-Tuning script saved it)"}
LOSS_TEXT = {"token_mean": "token mean", "sentence_sum": "each sentence's summed token losses averaged over the batch"}


def _training_variants(grid: Grid) -> list[str]:
    """One line per recipe: which state its runs kept and which loss trained them, naming the rows of each."""
    by_recipe: dict[str, dict[tuple[str, str], set[str]]] = {}
    for r in grid.runs:
        key = (r.text.get("select", "") or "best", r.text.get("loss", "") or "token_mean")
        by_recipe.setdefault(r.text.get("recipe", "") or "(not recorded)", {}).setdefault(key, set()).add(
            r.text.get("label", "") or r.text.get("method", ""))
    lines = []
    for recipe, variants in sorted(by_recipe.items()):
        parts = []
        for (select, loss), labels in sorted(variants.items()):
            rows = f" ({', '.join(sorted(labels))})" if len(variants) > 1 else ""
            parts.append(f"kept {SELECT_TEXT.get(select, select)}, loss {LOSS_TEXT.get(loss, loss)}{rows}")
        lines.append(f"- recipe `{recipe}`: " + "; ".join(parts) + ".")
    return ["- training variants (chosen by the runner, `select` / `loss` / `best_epoch` in the CSV; the report "
            "does no selection of its own):", *[f"  {line}" for line in lines]]


def index_markdown(preset: str, csv_path: Path, paper_path: Path, grid: Grid, paper: list[PaperRow], tables,
                   records, figures: list[Path], n_logs: int, runs_dir: Path, selection: bool = False,
                   heldout_runs: int = 0) -> str:
    lines = [f"# Report: preset `{preset}`", "",
             f"Built by `peft-bench report {preset}` from `{csv_path}` and `{paper_path}`.", ""]
    if not grid.runs:
        lines += [f"**No runs**: `{csv_path}` holds no result rows for this preset yet "
                  f"(run `peft-bench grid {preset}` and `peft-bench collect {preset}`).", ""]
        return "\n".join(lines)
    total = grid.complete + len(grid.failed) + grid.missing
    lines += ["## Runs", "",
              f"- complete: **{grid.complete}**, failed: **{len(grid.failed)}**, missing: **{grid.missing}** "
              f"(of {total} expected = table rows \u00d7 the tasks of their model \u00d7 seeds, inferred from the "
              f"CSV itself)",
              f"- superseded by a newer attempt of the same run (same run_id or same settings; the newest "
              f"complete attempt wins): {len(grid.superseded)}",
              f"- models: {', '.join(model_name(m) for m in dict.fromkeys(k.model for k in grid.rows))}; "
              f"tasks: {', '.join(task_name(t) for t in grid.tasks)}; methods (table rows): {len(grid.rows)}",
              f"- recipe(s): {_distinct(grid, 'recipe')} (paper = as published, script = the authors' released "
              f"scripts, own = ours where nothing was published)",
              f"- device(s): {_distinct(grid, 'device')}; torch {_distinct(grid, 'torch_version')}; "
              f"transformers {_distinct(grid, 'transformers_version')}; git commit(s): "
              f"{_distinct(grid, 'git_commit')}", ""]
    versions = sorted({k.paper_version for k in grid.rows if k.paper_version})
    lines += ["## Protocol", "",
              f"- seeds: {_seeds(grid)} ({len(grid.seeds)} per configuration); a cell with fewer complete seeds "
              f"is marked `[k/{len(grid.seeds)} seeds]`, failed runs are counted (`[n failed]`), never averaged.",
              *_training_variants(grid),
              f"- selection protocols: the tables hold each run's own rows (`dev`: epoch chosen on the dev set "
              f"they score, as the papers; `final`: no choice); {heldout_runs} of {grid.complete} complete runs "
              f"also have `heldout` rows (epoch chosen on the other half of dev, collect derives them from "
              f"per-epoch predictions)" + ("; both in [selection.md](selection.md)." if selection else "."),
              "- aggregation: GLUE tasks median over seeds (LoRA Table 2), generation and other tasks mean over "
              "seeds (LoRA's GPT-2 tables); \u00b1 is the sample standard deviation over seeds.",
              "- scorers: the values are those the runner computed with the suite's scorers (GLUE: accuracy, "
              "Matthews, Pearson; E2E/WebNLG/DART: the official-equivalent scorers, see docs/scorers.md); the "
              "report converts only between percent and fraction to print them in the paper's units.",
              "- parameters: `params_stored` (what must be saved per task, task head excluded), the papers' "
              "convention.",
              "- paper version(s) compared against: " +
              ("; ".join(f"`{v}` = {VERSIONS.get(v, v)}" for v in versions) if versions else
               "none (no row of this preset names a paper row)"), ""]
    unmatched = unmatched_rows(grid, paper)
    if unmatched:
        lines += ["**Rows naming a paper row that results/paper.csv does not have** (no paper values shown for "
                  "them; the CSV's paper_method / paper_params / paper_version must be spelled as in "
                  "results/paper.csv):", ""]
        lines += [f"- {model_name(k.model)} {k.display}: paper_method={k.paper_method!r}, "
                  f"paper_params={k.paper_params!r}, paper_version={k.paper_version!r}" for k in unmatched]
        lines.append("")
    lines += ["## Tables", ""]
    if tables:
        for t in tables:
            lines.append(f"- {t.title}: [{t.name}.md]({t.name}.md), [{t.name}.tex]({t.name}.tex)")
    else:
        lines.append("- no GLUE or E2E/WebNLG/DART task in this preset: no paper-layout table.")
    if selection:
        lines.append("- dev vs held-out selection, 95% intervals, not-distinguishable-from-best marks, the "
                     "majority-class baseline: [selection.md](selection.md)")
    if records:
        lines.append("- every aggregated metric: [all_metrics.md](all_metrics.md), "
                     "[aggregated.csv](aggregated.csv)")
    lines += ["", "## Plots", ""]
    pngs = [f for f in figures if f.suffix == ".png"]
    if not any(f.stem.startswith(("params_", "summary")) for f in pngs):
        lines += ["No score plots: no complete run with a score and a parameter count.", ""]
    for f in pngs:
        lines += [f"### {f.stem}", "", f"![{f.stem}]({f.name}) ([svg]({f.with_suffix('.svg').name}))", ""]
    if not any(f.stem.startswith("curves_") for f in pngs):
        lines += [f"No learning curves: no per-epoch logs (`log.jsonl`) under `{runs_dir}`.", ""]
    else:
        lines += [f"Learning curves read {n_logs} per-epoch logs under `{runs_dir}`.", ""]
    if grid.failed:
        lines += ["## Failed runs", "", "| run_id | model | task | method | seed | error |",
                  "|---|---|---|---|---|---|"]
        for r in grid.failed:
            error = (r.error or "(no message)").replace("|", "\\|").replace("\n", " ")[:200]
            seed = "" if r.seed is None else f"{r.seed:g}"
            label = (r.text["label"] or f"{r.text['method']} {r.text['method_config']}").replace("|", "\\|")
            lines.append(f"| {r.run_id} | {r.text['model']} | {r.text['task']} | {label} | {seed} | {error} |")
        lines.append("")
    return "\n".join(lines)
