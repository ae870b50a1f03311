"""`peft-bench report`: files, table cells beside the paper, robustness to any CSV in the schema, bad input."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import ConfigError
from bench.report import build_report
from bench.schema import COLUMNS

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures" / "report"


def _results(tmp_path: Path, *names: str) -> Path:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(FIX / f"{name}.csv", results / f"fixture-{name}.csv")
    return results


@pytest.fixture(scope="module")
def glue_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glue")
    results = _results(tmp, "glue")
    shutil.copytree(FIX / "runs", results / "runs")
    summary = build_report("fixture-glue", results_dir=results, out_root=tmp / "reports")
    return summary


def test_glue_report_files(glue_report):
    out = glue_report.out_dir
    names = {p.name for p in out.iterdir()}
    for stem in ("params_sst2", "params_rte", "summary", "curves_sst2"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    assert {"glue.md", "glue.tex", "index.md", "all_metrics.md", "aggregated.csv"} <= names
    assert "nlg.md" not in names  # only tables of the tasks present
    assert (glue_report.runs_complete, glue_report.runs_failed, glue_report.runs_missing,
            glue_report.runs_superseded) == (16, 1, 1, 3)


def test_glue_table_cells(glue_report):
    md = (glue_report.out_dir / "glue.md").read_text()
    lora = next(line for line in md.splitlines() if "LoRA (r=8)" in line)
    # seeds 0.960 (newest attempt), 0.950, 0.946 -> median 95.0; paper 95.1
    assert "95.0 \u00b1 0.7 (paper 95.1, \u0394 \u22120.1)" in lora
    assert "0.3M (paper 0.3M)" in lora
    assert "[2/3 seeds]" in lora  # RTE ran 2 of 3 seeds
    bitfit = next(line for line in md.splitlines() if "| BitFit |" in line)
    assert "77.5 \u00b1 0.7 (paper 81.5, \u0394 \u22124.0) [2/3 seeds, 1 failed]" in bitfit
    assert "SST-2 (Acc \u2191)" in md and "[2/8 tasks]" in md
    assert "MNLI" not in md.split("|---")[0].splitlines()[-1]  # no column for a task we did not run
    assert "not computed (seed 1: constant predictions)" in md
    assert "RoBERTa-base FT: the paper's row (FT 125.0M, arxiv-v2) is quoted from earlier work" in md
    tex = (glue_report.out_dir / "glue.tex").read_text()
    assert r"95.0$_{\pm 0.7}$ {\scriptsize(95.1, $-$0.1)}" in tex
    assert r"\# Trainable Params" in tex and r"$\uparrow$" in tex
    assert tex.isascii()  # every symbol spelled as a LaTeX command
    body = tex.replace(r"\{", "").replace(r"\}", "")
    assert body.count("{") == body.count("}") and body.count("$") % 2 == 0


def test_index_states_protocol_and_counts(glue_report):
    index = (glue_report.out_dir / "index.md").read_text()
    assert "complete: **16**, failed: **1**, missing: **1**" in index
    assert "seeds: 1, 2, 3" in index and "best epoch on the dev set" in index
    assert "`arxiv-v2`" in index and "median over seeds" in index
    assert "RuntimeError: CUDA out of memory" in index
    for link in ("glue.md", "glue.tex", "params_sst2.png", "summary.png", "curves_sst2.png"):
        assert f"({link})" in index


def test_nlg_report(tmp_path):
    results = _results(tmp_path, "nlg")
    summary = build_report("fixture-nlg", results_dir=results, out_root=tmp_path / "reports")
    md = (summary.out_dir / "nlg.md").read_text()
    prefix = next(line for line in md.splitlines() if "Prefix (len 5)" in line)
    # METEOR written as a fraction, printed in % like the paper's E2E column (arxiv-v1 PREFIX: 46.1)
    assert "46.4 \u00b1 0.1 (paper 46.1, \u0394 +0.3)" in prefix
    assert "0.40 \u00b1 0.00 (paper 0.35, \u0394 +0.05)" in prefix  # WebNLG TER-S, a fraction
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    assert "WebNLG TER-S \u2193" in header and "DART" not in header
    top2 = next(line for line in md.splitlines() if "FT-top2" in line)
    cells = [c.strip() for c in top2.strip("|").split("|")][4:]
    assert cells[:5] == ["failed [1 run]"] * 5  # E2E: a failed run is shown as failed, not as a number
    assert cells[5:] == [""] * 9                 # WebNLG: never run, empty
    assert not (summary.out_dir / "glue.md").exists()
    assert "No learning curves" in (summary.out_dir / "index.md").read_text()
    assert (summary.out_dir / "params_e2e.png").is_file()


def test_empty_preset(tmp_path):
    results = _results(tmp_path, "empty")
    summary = build_report("fixture-empty", results_dir=results, out_root=tmp_path / "reports")
    assert summary.empty
    assert "No runs" in (summary.out_dir / "index.md").read_text()
    assert [p.name for p in summary.out_dir.iterdir()] == ["index.md"]


def _write(path: Path, header: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def _fixture_rows() -> list[dict]:
    with (FIX / "glue.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_missing_column_names_it(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    header = [c for c in COLUMNS if c != "params_stored"]
    _write(results / "bad.csv", header, [{k: v for k, v in r.items() if k in header} for r in _fixture_rows()])
    with pytest.raises(ConfigError, match="missing column.*'params_stored'"):
        build_report("bad", results_dir=results, out_root=tmp_path / "reports")


def test_non_numeric_value_names_column_and_row(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    rows = _fixture_rows()
    rows[4]["value"] = "n/a"
    _write(results / "bad.csv", COLUMNS, rows)
    with pytest.raises(ConfigError, match=r"bad.csv line 6 \(run_id lora-rte-s1\): column 'value' is not a "
                                          r"number: 'n/a'"):
        build_report("bad", results_dir=results, out_root=tmp_path / "reports")
    code = main(["report", "bad", "--results", str(results), "--out", str(tmp_path / "reports")])
    assert code == 2
    assert "column 'value'" in capsys.readouterr().err


@pytest.mark.parametrize("column,value,message", [
    ("seed", "one", "column 'seed' is not a number"),
    ("value", "nan", "must be left empty"),
    ("status", "running", "column 'status' is 'running'"),
    ("higher_is_better", "maybe", "column 'higher_is_better'"),
])
def test_bad_cells(tmp_path, column, value, message):
    results = tmp_path / "results"
    results.mkdir()
    rows = _fixture_rows()
    rows[0][column] = value
    _write(results / "bad.csv", COLUMNS, rows)
    with pytest.raises(ConfigError, match=message):
        build_report("bad", results_dir=results, out_root=tmp_path / "reports")


def test_rows_of_another_preset_are_refused(tmp_path):
    results = _results(tmp_path, "glue")
    shutil.copy(results / "fixture-glue.csv", results / "other.csv")
    with pytest.raises(ConfigError, match="holds rows of preset\\(s\\) fixture-glue, expected only 'other'"):
        build_report("other", results_dir=results, out_root=tmp_path / "reports")


def test_missing_results_file(tmp_path):
    with pytest.raises(ConfigError, match="collect"):
        build_report("nope", results_dir=tmp_path, out_root=tmp_path / "reports")


def test_any_schema_csv_builds(tmp_path):
    """Unknown tasks, empty labels, missing seeds and paper columns, unknown scales, extra columns: no error."""
    results = tmp_path / "results"
    results.mkdir()
    base = {c: "" for c in COLUMNS}
    rows = []
    for i, (task, metric, scale, seed) in enumerate([("mytask", "f1", "", ""), ("mytask", "f1", "weird", "2"),
                                                     ("cola", "matthews", "fraction", "1"),
                                                     ("dart", "bleurt", "fraction", "1")]):
        rows.append({**base, "preset": "any", "run_id": f"r{i}", "model": "tiny", "task": task, "method": "m",
                     "seed": seed, "split": "dev" if task != "dart" else "test", "metric": metric,
                     "value": str(0.5 + i / 10), "scale": scale, "status": "ok", "extra": "x",
                     "params_stored": "" if i == 3 else "1000"})
    _write(results / "any.csv", COLUMNS + ["extra"], rows)
    summary = build_report("any", results_dir=results, out_root=tmp_path / "reports")
    names = {p.name for p in summary.out_dir.iterdir()}
    assert {"glue.md", "nlg.md", "all_metrics.md", "summary.png", "params_mytask.png"} <= names
    assert "mytask" in (summary.out_dir / "all_metrics.md").read_text()


def test_cli_report(tmp_path, capsys):
    results = _results(tmp_path, "glue")
    code = main(["report", "fixture-glue", "--results", str(results), "--out", str(tmp_path / "r"), "--no-plots"])
    assert code == 0
    out = capsys.readouterr().out
    assert "16 complete, 1 failed, 1 missing, 3 superseded" in out
    assert not list((tmp_path / "r" / "fixture-glue").glob("*.png"))


def test_report_never_imports_torch(tmp_path):
    results = _results(tmp_path, "glue")
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        f"rc = main(['report', 'fixture-glue', '--results', {str(results)!r}, '--out', {str(tmp_path / 'o')!r}])\n"
        "assert rc == 0, rc\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('clean')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout
    assert (tmp_path / "o" / "fixture-glue" / "params_sst2.png").is_file()


def test_unmatched_paper_keys_are_reported(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    rows = _fixture_rows()
    for row in rows:
        if row["paper_method"] == "BitFit":
            row["paper_method"] = "Bitfit"  # a typo: must not silently lose the paper's numbers
    _write(results / "fixture-glue.csv", COLUMNS, rows)
    code = main(["report", "fixture-glue", "--results", str(results), "--out", str(tmp_path / "r"), "--no-plots"])
    assert code == 0
    warning = "warning: no paper row in paper.csv for roberta-base BitFit (Bitfit 0.1M arxiv-v2)"
    assert warning in capsys.readouterr().out
    index = (tmp_path / "r" / "fixture-glue" / "index.md").read_text()
    assert "paper_method='Bitfit'" in index
    glue = (tmp_path / "r" / "fixture-glue" / "glue.md").read_text()
    bitfit = next(line for line in glue.splitlines() if "| BitFit |" in line)
    assert "paper" not in bitfit.split("|", 4)[4]  # no paper value in its cells


def test_latex_escapes_labels():
    from bench.report.render import tex_escape

    assert tex_escape("LoRA\u2020 (r=8, \u03b1=16)") == r"LoRA\textsuperscript{\dag} (r=8, $\alpha$=16)"
    assert tex_escape("Adapter^P 3% & b_64 #1") == r"Adapter\textasciicircum{}P 3\% \& b\_64 \#1"


def test_rebuilt_report_is_byte_identical(tmp_path):
    """A committed report changes only when its inputs do: no dates or random ids in any file."""
    results = _results(tmp_path, "nlg")
    first = build_report("fixture-nlg", results_dir=results, out_root=tmp_path / "a")
    second = build_report("fixture-nlg", results_dir=results, out_root=tmp_path / "b")
    names = sorted(p.name for p in first.out_dir.iterdir())
    assert names == sorted(p.name for p in second.out_dir.iterdir()) and "summary.svg" in names
    for name in names:
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name


def test_runner_output_as_written(tmp_path):
    """results/smoke.csv and two log.jsonl exactly as `peft-bench grid smoke --tasks sst2` + collect wrote them
    (tiny RoBERTa on the SST-2 fixture, 2 epochs: real output of the runner, numbers meaningless)."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(FIX / "runner_smoke.csv", results / "smoke.csv")
    shutil.copytree(FIX / "runs" / "smoke", results / "runs" / "smoke")
    summary = build_report("smoke", results_dir=results, out_root=tmp_path / "reports")
    assert (summary.runs_complete, summary.runs_failed, summary.runs_missing) == (8, 0, 0)
    md = (summary.out_dir / "glue.md").read_text()
    assert "| tiny RoBERTa | LoRA (r=8) | 2.05K | 56.3 | 56.3 [1/8 tasks] |" in md
    assert (summary.out_dir / "curves_sst2.png").is_file()
    assert "Learning curves read 2 per-epoch logs" in (summary.out_dir / "index.md").read_text()
