"""Plot helpers: the Pareto front, the metric a task is plotted with, axis labels with units."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.aggregate import build_grid
from bench.report.load import read_log, read_results
from bench.report.plots import axis_label, pareto, plot_metric

FIX = Path(__file__).resolve().parent / "fixtures" / "report"


def test_pareto_higher_is_better():
    points = [(1e5, 93.0), (3e5, 95.0), (1e6, 94.0), (1e8, 94.8), (1e8, 95.5), (3e5, 92.0)]
    assert pareto(points, True) == [(1e5, 93.0), (3e5, 95.0), (1e8, 95.5)]


def test_pareto_lower_is_better():
    points = [(1e5, 0.50), (3e5, 0.40), (1e6, 0.45), (1e7, 0.30)]
    assert pareto(points, False) == [(1e5, 0.50), (3e5, 0.40), (1e7, 0.30)]


def test_axis_labels_carry_units():
    assert axis_label("accuracy", "dev", "percent", True) == "Acc \u2191 on dev (%)"
    assert axis_label("ter", "test-all", "fraction", False) == "TER \u2193 on test-all (0\u20131)"
    assert axis_label("nist", "test", "raw", True) == "NIST \u2191 on test (raw score)"


def test_plot_metric_is_the_papers_headline():
    grid = build_grid(read_results(FIX / "glue.csv"))
    assert plot_metric(grid, "rte") == ("dev", "accuracy")  # not f1 nor matthews, which rte also has
    nlg = build_grid(read_results(FIX / "nlg.csv"))
    assert plot_metric(nlg, "webnlg") == ("test-all", "bleu")


def test_read_log_series(tmp_path):
    log = read_log(FIX / "runs" / "fixture-glue" / "lora-sst2-s2" / "log.jsonl")
    assert log.points[0] == {"epoch": 1.0, "train_loss": 0.69}
    assert log.points[1] == {"epoch": 1.0, "dev_accuracy": 0.9}
    assert len(log.points) == 6 and log.select is None  # the line that is not JSON is skipped
    assert read_log(tmp_path / "absent.jsonl").points == []
    # the runner's own form: one object per epoch naming its selection series
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 1, "train_loss": 0.5, "dev_accuracy": 0.8, "dev_f1": 0.7, "select": "dev_f1"}\n')
    log = read_log(path)
    assert log.points == [{"epoch": 1.0, "train_loss": 0.5, "dev_accuracy": 0.8, "dev_f1": 0.7}]
    assert log.select == "dev_f1"


def test_dev_series_follows_the_runners_select_key():
    from bench.report.curves import dev_series

    grid = build_grid(read_results(FIX / "glue.csv"))
    run = next(r for r in grid.runs if r.run_id == "full-sst2-s2")
    log = read_log(FIX / "runs" / "fixture-glue" / "full-sst2-s2" / "log.jsonl")
    assert dev_series(log, "sst2", run) == ("dev_accuracy", "accuracy", "fraction", True)
    assert dev_series(read_log(FIX / "runs" / "fixture-glue" / "lora-sst2-s2" / "log.jsonl"), "sst2", run)[0] \
        == "dev_accuracy"


def test_numbers_are_rounded_as_printed():
    from bench.report.units import fmt, fmt_params, rounded

    assert fmt(56.25, "percent") == "56.3" and fmt(0.125, "fraction") == "0.13" and fmt(8.615, "raw") == "8.62"
    assert fmt(-1.25, "percent", signed=True) == "\u22121.3" and fmt(-0.04, "percent", signed=True) == "\u00b10.0"
    assert rounded(87.55, "percent") - 87.5 == pytest.approx(0.1)  # the difference of the printed numbers
    assert fmt_params(294912) == "0.3M" and fmt_params(124645632) == "124.6M" and fmt_params(2048) == "2.05K"
