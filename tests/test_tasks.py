"""The task registry: eleven declarative records whose names and metrics match the papers' result table."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.config import ConfigError
from bench.decode.protocol import PREFIX_TUNING, Decoding
from bench.tasks import TASKS, Task, get_task

PAPER = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "paper_results.csv"
GLUE = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
NLG = ("e2e", "webnlg", "dart")
KNOWN_METRICS = {"accuracy", "f1", "matthews", "pearson", "spearman", "bleu", "nist", "meteor", "rouge_l",
                 "cider", "ter", "moverscore", "bertscore", "bleurt"}


def test_registry_has_the_eleven_tasks_in_order():
    assert tuple(TASKS) == GLUE + NLG
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name
        assert task.summary and task.hub_id and task.loader
        assert set(task.metric_names) <= KNOWN_METRICS, name
        assert task.select_metric in task.metric_names, name
        assert task.select_split in task.splits and set(task.eval_splits) <= set(task.splits)
        assert {ours for ours, _ in task.hub_splits} == set(task.splits), name


def test_selection_metrics_follow_lora_table_2():
    select = {name: TASKS[name].select_metric for name in GLUE}
    assert select == {"mnli": "accuracy", "sst2": "accuracy", "mrpc": "accuracy", "cola": "matthews",
                      "qnli": "accuracy", "qqp": "accuracy", "rte": "accuracy", "stsb": "pearson"}


def test_kinds_labels_and_decoding():
    for name in GLUE:
        task = TASKS[name]
        assert task.decoding is None
        if name == "stsb":
            assert task.kind == "regress" and task.num_labels == 1 and task.label_names == ()
        else:
            assert task.kind == "classify" and task.num_labels == len(task.label_names) >= 2
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    for name in NLG:
        task = TASKS[name]
        assert task.kind == "generate" and task.num_labels == 0
        assert isinstance(task.decoding, Decoding) and task.decoding == PREFIX_TUNING
        assert task.decoding.num_beams == 5 and task.decoding.max_new_tokens == 100
    assert TASKS["webnlg"].subsets == ("all", "seen", "unseen")


def test_mnli_dev_is_matched_and_mismatched_is_a_split():
    mnli = TASKS["mnli"]
    assert mnli.hub_split("dev") == "validation_matched"
    assert mnli.hub_split("dev-mismatched") == "validation_mismatched"
    assert "dev-mismatched" in mnli.eval_splits
    assert TASKS["sst2"].hub_split("dev") == "validation"


def test_metrics_cover_the_papers_result_table():
    if not PAPER.is_file():
        pytest.skip(f"no {PAPER}")
    with PAPER.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["task"] in TASKS:
            metric = TASKS[row["task"]].metric(row["metric"])
            assert (metric.scale, metric.higher_is_better) == (row["scale"], True if row["metric"] != "ter" else False)
            split = row["split"].split("-")[0]
            assert split in TASKS[row["task"]].splits


def test_get_task_errors_list_the_names():
    assert get_task("rte") is TASKS["rte"]
    assert get_task(TASKS["rte"]) is TASKS["rte"]
    with pytest.raises(ConfigError, match="unknown task 'glue'.*mnli, sst2"):
        get_task("glue")
    with pytest.raises(ConfigError, match="no split 'validation'"):
        TASKS["rte"].hub_split("validation")
    with pytest.raises(ConfigError, match="no split 'dev-mismatched'"):
        TASKS["rte"].check_split("dev-mismatched")


def test_ls_tasks_lists_every_task(capsys):
    from bench.cli import main

    assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(TASKS)
    assert all(len(line.split(None, 1)) == 2 for line in out)


def test_every_task_names_a_release_format_with_its_files():
    from bench.data.formats import FORMATS

    for task in TASKS.values():
        assert task.loader in FORMATS, task.name
        if task.loader in ("glue", "e2e"):  # single-file formats: one file per split
            assert [f.split for f in task.files] == list(task.splits), task.name
        if task.loader == "glue":
            assert all(f.columns is not None for f in task.files) and task.hub_columns is not None
            test_files = [f for f in task.files if f.split.startswith("test")]
            assert test_files and all(f.columns.label is None for f in test_files), task.name
            if task.kind == "classify":
                assert len(task.label_values) == len(task.label_names), task.name


def test_classification_scorer_computes_exactly_the_tasks_metrics_in_its_units():
    from bench.scorers.glue import score_classification

    for task in TASKS.values():
        if task.kind == "generate":
            continue
        pred, gold = ([0.5, 1.5, 2.0, 4.0], [1.0, 1.0, 2.5, 3.5]) if task.kind == "regress" else ([0, 1, 1, 0],
                                                                                                   [0, 1, 0, 0])
        scores = score_classification(task.name, pred, gold)
        assert tuple(scores) == task.metric_names, task.name  # CoLA: Matthews only, as LoRA Table 2 reports it
        for m in task.metrics:
            assert (scores[m.name].scale, scores[m.name].higher_is_better) == (m.scale, m.higher_is_better)


def test_report_reads_the_task_records():
    from bench.report.units import headline, table_tasks, task_name

    assert table_tasks("glue") == list(GLUE) and table_tasks("nlg") == list(NLG)
    assert task_name("sst2") == "SST-2" and task_name("not-a-task") == "not-a-task"
    assert headline("cola") == ("dev", "matthews") and headline("webnlg") == ("test-all", "bleu")
    assert TASKS["webnlg"].columns()[:3] == (("test-seen", "bleu"), ("test-unseen", "bleu"), ("test-all", "bleu"))


def test_tasks_module_imports_neither_torch_nor_datasets():
    import subprocess
    import sys

    code = ("import sys; import bench.tasks, bench.report.units, bench.data.formats; "
            "bad = [m for m in ('torch', 'datasets', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
