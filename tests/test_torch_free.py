"""`peft-bench show`, `collect` and `report` run on a machine without torch (and without transformers,
datasets or accelerate): each runs in a fresh interpreter in which importing those packages fails."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "transformers", "datasets", "accelerate", "peft", "tokenizers", "safetensors")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    from bench.cli import main
    code = main(sys.argv[1:])
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({BLOCKED!r}))
    assert not loaded, loaded
    sys.exit(code)
""")


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    # this checkout's code first: from another directory `bench` would resolve to whichever checkout the
    # environment has installed
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", BLOCKER, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_the_blocker_blocks():
    res = subprocess.run([sys.executable, "-c", BLOCKER.replace("from bench.cli import main", "import torch")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "blocked in this test" in res.stderr


@pytest.mark.parametrize("argv", [["show", "smoke"], ["show", "minilm-glue"], ["collect", "smoke"]])
def test_show_and_collect_run_without_torch(argv, tmp_path):
    res = _cli(*argv, "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()
    if argv[0] == "collect":
        assert (tmp_path / "results" / "smoke.csv").is_file()


DATA = REPO.parent / "shared" / "data"      # the release files, where this machine has them


def test_report_runs_without_torch_on_the_committed_csv(tmp_path):
    """A clone has the CSV and the predictions but no gold (dataset content is not committed): the tables keep
    their values, the marks are left out, and the report says how to get them."""
    results = tmp_path / "results"
    results.mkdir()
    for name in ("minilm-glue.csv", "minilm-glue.predictions.jsonl", "paper.csv"):
        shutil.copy(REPO / "results" / name, results / name)
    res = _cli("report", "minilm-glue", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "reports" / "minilm-glue"
    committed = (REPO / "reports" / "minilm-glue" / "glue.md").read_text()
    unmarked = committed.replace("**", "").replace(" \u2248", "")
    got = (out / "glue.md").read_text()
    table_rows = [line for line in got.splitlines() if line.startswith("| MiniLM-L6")]
    assert table_rows and all(row in unmarked.splitlines() for row in table_rows)       # same values, no marks
    assert not any("**" in row or "\u2248" in row for row in table_rows)
    assert "not at hand" in (out / "selection.md").read_text()
    assert (out / "summary.png").is_file()


def _clone_of_the_runs(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(REPO / "results" / "runs" / "minilm-glue", results / "runs" / "minilm-glue",
                    ignore=shutil.ignore_patterns("*.gold.jsonl", "state.pt", "*.lock", "*.tmp"))
    shutil.copy(REPO / "results" / "paper.csv", results / "paper.csv")
    return results


def test_a_clone_rebuilds_the_gold_from_the_release_files_and_reproduces_the_committed_report(tmp_path):
    results = _clone_of_the_runs(tmp_path)
    assert not list(results.rglob("*.gold.jsonl")) and list(results.rglob("dev.gold.id"))
    res = _cli("collect", "minilm-glue", "--results-dir", str(results), cwd=tmp_path)
    assert res.returncode == 2 and "--data-dir" in res.stderr and "nothing was written" in res.stderr
    assert not (results / "minilm-glue.csv").exists()
    if not (DATA / "glue").is_dir():
        pytest.skip(f"no release files at {DATA}")
    res = _cli("collect", "minilm-glue", "--results-dir", str(results), "--data-dir", str(DATA), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("minilm-glue.csv", "minilm-glue.predictions.jsonl"):
        assert (results / name).read_text() == (REPO / "results" / name).read_text(), name
    assert (results / "minilm-glue.gold.jsonl").is_file()
    res = _cli("report", "minilm-glue", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "reports" / "minilm-glue"
    assert (out / "glue.md").read_text() == (REPO / "reports" / "minilm-glue" / "glue.md").read_text()
    selection = (out / "selection.md").read_text().replace(f"{results}/", "results/")
    assert selection == (REPO / "reports" / "minilm-glue" / "selection.md").read_text()


def test_rebuilt_gold_that_is_not_the_scored_one_is_refused(tmp_path):
    from bench.config import ConfigError
    from bench.heldout import GoldSource, gold_id_file, read_gold
    from bench.tasks import get_task

    folder = tmp_path / "run"
    gold_id_file(folder, "dev").parent.mkdir(parents=True)
    gold_id_file(folder, "dev").write_text("0123456789ab\n")
    task = get_task("sst2")

    class Source(GoldSource):
        def get(self, task, split, n):
            return [0, 1, 1][:n]

    with pytest.raises(ConfigError, match="not the one the run was scored on"):
        read_gold(folder, "dev", task, Source("somewhere"), 3)


def test_report_computes_intervals_and_marks_without_torch(tmp_path):
    """Both protocols, bootstrap intervals and marks, from a CSV and its per-example predictions file alone."""
    import numpy as np

    from tests.report_synth import noisy, write_preset

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 300)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {
        "A": {"dev": [noisy(gold, 0.9, rng) for _ in range(3)], "heldout": [noisy(gold, 0.88, rng) for _ in range(3)]},
        "B": {"dev": [noisy(gold, 0.7, rng) for _ in range(3)], "heldout": [noisy(gold, 0.65, rng) for _ in range(3)]}})
    shutil.copy(REPO / "results" / "paper.csv", results / "paper.csv")
    res = _cli("report", "syn", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=REPO)
    assert res.returncode == 0, res.stderr
    sel = (tmp_path / "reports" / "syn" / "selection.md").read_text()
    assert "| A | **90.0** [" in sel and "+5.0" in sel


def test_collect_derives_heldout_rows_without_torch(tmp_path):
    """A run folder with per-epoch predictions (written here, as the runner writes them) -> heldout rows."""
    import csv
    import json

    from bench.grid import plan
    from bench.heldout import epoch_file, gold_file
    from bench.results import base_row, run_dir, write_atomic

    spec = next(s for s in plan("smoke") if s.task == "sst2")
    folder = run_dir(tmp_path / "results", "smoke", spec.run_id)
    gold = [i % 2 for i in range(40)]
    epochs = {1: [1 - g for g in gold], 2: gold, 3: [0] * 40}
    for epoch, preds in epochs.items():
        write_atomic(epoch_file(folder, "dev", epoch), "".join(f"{p}\n" for p in preds))
    write_atomic(gold_file(folder, "dev"), "".join(f"{json.dumps(g)}\n" for g in gold))
    write_atomic(folder / "predictions" / "dev.txt", "".join(f"{p}\n" for p in epochs[2]))
    row = {**base_row(spec), "split": "dev", "metric": "accuracy", "value": 100.0, "scale": "percent",
           "higher_is_better": "true", "best_epoch": 2, "status": "ok", "created_at": "t0"}
    write_atomic(folder / "rows.json", json.dumps([row]))
    res = _cli("collect", "smoke", "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "results" / "smoke.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(r["selection"], float(r["value"])) for r in table] == [("dev", 100.0), ("heldout", 100.0)]
    assert (tmp_path / "results" / "smoke.predictions.jsonl").is_file()


def test_nlg_report_marks_and_collects_heldout_generation_rows_without_torch(tmp_path):
    """Generation tasks: the report's corpus-BLEU bootstrap, and collect's held-out rows (Java scorers, no torch)."""
    import csv
    import json

    from bench.grid import plan
    from bench.heldout import epoch_file, gold_file
    from bench.results import base_row, run_dir, write_atomic
    from tests.test_significance_nlg import _gold, _system, _write_nlg_preset

    dev, test = _gold(60, seed=1), _gold(60, seed=2)
    systems = {"A": [{"dev": _system(dev, 0.1, s), "test": _system(test, 0.1, s)} for s in range(2)],
               "B": [{"dev": _system(dev, 0.5, s), "test": _system(test, 0.5, s)} for s in range(2)]}
    results = tmp_path / "results"
    _write_nlg_preset(results, "nlgsyn", systems, dev, test)
    shutil.copy(REPO / "results" / "paper.csv", results / "paper.csv")
    res = _cli("report", "nlgsyn", "--results", str(results), "--out", str(tmp_path / "reports"), cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert "| A | 1K |  | **" in (tmp_path / "reports" / "nlgsyn" / "nlg.md").read_text()

    spec = next(s for s in plan("smoke") if s.task == "e2e")
    folder = run_dir(results, "smoke", spec.run_id)
    epochs = {1: ["x y"] * 60, 2: [refs[0] for refs in dev]}
    for epoch, preds in epochs.items():
        write_atomic(epoch_file(folder, "dev", epoch), "".join(f"{p}\n" for p in preds))
    write_atomic(gold_file(folder, "dev"), "".join(f"{json.dumps(g)}\n" for g in dev))
    write_atomic(folder / "predictions" / "dev.txt", "".join(f"{p}\n" for p in epochs[2]))
    row = {**base_row(spec), "split": "dev", "metric": "bleu", "value": 100.0, "scale": "percent",
           "higher_is_better": "true", "best_epoch": 2, "status": "ok", "created_at": "t0"}
    write_atomic(folder / "rows.json", json.dumps([row]))
    res = _cli("collect", "smoke", "--results-dir", str(results), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with open(results / "smoke.csv", newline="") as fh:
        table = [r for r in csv.DictReader(fh) if r["run_id"] == spec.run_id]
    assert [(r["selection"], float(r["value"])) for r in table] == [("dev", 100.0), ("heldout", 100.0)]
