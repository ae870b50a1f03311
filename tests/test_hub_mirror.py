"""The Hub path through the real clients (datasets, huggingface_hub, transformers) against the local mirror.

Fast checks run in `make test`; the end-to-end ones (every task's examples equal the local files', a short grid
to a report) carry the `hub` marker and run in .ci/run (`pytest -m hub`).
"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

from dataclasses import replace

import pytest

from bench.data import load_split
from bench.tasks import TASKS
from tests.conftest import REPO


def _run(args, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_glue_loads_with_classlabel_names_and_the_local_rows(hub_mirror, tmp_path):
    code = ("import datasets, json; ds = datasets.load_dataset('nyu-mll/glue', 'rte', split='validation'); "
            "print(json.dumps([ds.features['label'].names, ds.num_rows, ds.column_names]))")
    out = _run(["-c", code], hub_mirror.env(tmp_path / "hf"))
    assert out.returncode == 0, out.stderr[-2000:]
    names, rows, columns = json.loads(out.stdout.strip().splitlines()[-1])
    assert names == ["entailment", "not_entailment"]
    assert columns == ["sentence1", "sentence2", "label", "idx"]
    src = hub_mirror.sources[("rte", "dev")]
    assert rows == len(load_split("rte", "dev", src.data_dir))


def test_preflight_names_what_is_wrong_in_one_line(hub_mirror, tmp_path):
    out = _run(["-m", "tests.hub.probe", "problems", str(tmp_path / "p.json")], hub_mirror.env(tmp_path / "hf"))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = json.loads((tmp_path / "p.json").read_text())
    assert all(line is None or "\n" not in line for line in lines.values())
    assert "the repository does not exist" in lines["wrong repo id"] and "nyu-mll/glue-typo" in lines["wrong repo id"]
    assert "the revision does not exist" in lines["missing revision"]
    assert "refs/convert/parquet-v9" in lines["missing revision"]
    assert "no files for split 'valid'" in lines["missing split"]
    assert "validation" in lines["missing split"]          # the splits the config has
    assert "no column 'sentence1', 'sentence2'" in lines["missing column"]
    assert lines["good"] is None
    assert "FacebookAI/roberta-bass" in lines["model typo-model"] and "does not exist" in lines["model typo-model"]
    # the paper models' repos hold config and tokenizer files but no weights: the one thing missing is named
    assert "no weights" in lines["model gpt2-medium"] and "tokenizer" not in lines["model gpt2-medium"]
    assert "no tokenizer" in lines["model roberta-base"] and "weights" in lines["model roberta-base"]
    assert lines["model hub-tiny-roberta"] is None and lines["model hub-tiny-gpt2"] is None


def test_offline_with_an_empty_cache_stops_every_paper_grid_before_any_run(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith("HF_") and k != "PEFT_BENCH_METRIC_MODELS"}   # DART's metric models: the Hub
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty"))
    out = _run(["-m", "bench.cli", "grid", "nlg-gpt2-medium", "--seeds", "0", "--results-dir", str(tmp_path / "r")],
               env, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    head, *lines = out.stderr.strip().splitlines()
    assert "preflight: 13 of the grid's datasets/models cannot be had" in head
    splits = [f"task {t}, split {s}" for t in ("dart", "e2e", "webnlg") for s in ("dev", "test", "train")]
    assert sorted(line.split(":")[0].strip() for line in lines) == sorted(
        ["model gpt2-medium", *splits, "metric moverscore (DART), model distilbert-base-uncased",
         "metric bertscore (DART), model roberta-large", "metric bleurt (DART), model Elron/bleurt-tiny-128"])
    assert all("HF_HUB_OFFLINE=1" in line for line in lines)
    assert not (tmp_path / "r").exists()


@pytest.mark.hub
def test_every_task_gives_the_local_examples_through_the_mirror(hub_mirror, tmp_path):
    out = _run(["-m", "tests.hub.probe", "examples", str(tmp_path / "ex.pickle"), *TASKS],
               hub_mirror.env(tmp_path / "hf"), timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    got = pickle.loads((tmp_path / "ex.pickle").read_bytes())
    assert set(got) == {(t, s) for t, task in TASKS.items() for s in task.splits}
    for (task, split), examples in got.items():
        src = hub_mirror.sources[(task, split)]
        local = load_split(task, split, src.data_dir)
        if TASKS[task].kind == "regress":  # nyu-mll/glue stores STS-B scores as float32
            import numpy as np

            local = [replace(ex, label=None if ex.label is None else float(np.float32(ex.label))) for ex in local]
        assert examples == local, (task, split, src.data_dir)


@pytest.mark.hub
def test_a_short_grid_runs_to_a_report_through_the_mirror(hub_mirror, tmp_path):
    env = hub_mirror.env(tmp_path / "hf")
    env["OMP_NUM_THREADS"] = "1"
    results = tmp_path / "results"
    grid = _run(["-m", "tests.hub.cli", "grid", "hub-short", "--results-dir", str(results), "--no-progress"],
                env, timeout=1200)
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-3000:]
    assert "5 ok, 0 failed" in grid.stdout
    collect = _run(["-m", "tests.hub.cli", "collect", "hub-short", "--results-dir", str(results)], env)
    assert collect.returncode == 0, collect.stderr[-2000:]
    import csv

    rows = list(csv.DictReader((results / "hub-short.csv").open()))
    assert {r["task"] for r in rows} == {"sst2", "stsb", "mnli", "rte", "e2e"}
    assert all(r["status"] == "ok" for r in rows)
    assert {r["metric"] for r in rows if r["task"] == "stsb"} >= {"pearson"}
    assert {r["metric"] for r in rows if r["task"] == "e2e"} >= {"bleu"}
    report = _run(["-m", "tests.hub.cli", "report", "hub-short", "--results", str(results),
                   "--out", str(tmp_path / "reports")], env)
    assert report.returncode == 0, report.stderr[-2000:]
    assert any((tmp_path / "reports").rglob("*.md"))
