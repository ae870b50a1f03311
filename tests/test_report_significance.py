"""Intervals and not-distinguishable-from-best marks on synthetic predictions whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from bench.report import build_report
from bench.report.significance import CellData, compare, metric_rows
from bench.scorers import score_classification
from tests.report_synth import noisy, write_preset


def _gold(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=n)


@pytest.mark.parametrize("task,metric,classes", [("sst2", "accuracy", 2), ("mrpc", "f1", 2), ("cola", "matthews", 2),
                                                 ("mnli", "accuracy", 3), ("stsb", "pearson", 0),
                                                 ("stsb", "spearman", 0)])
def test_bootstrap_metrics_equal_the_runners_scorers(task, metric, classes):
    rng = np.random.default_rng(1)
    for _ in range(5):
        if classes:
            gold, pred = rng.integers(0, classes, 60), rng.integers(0, classes, 60)
        else:
            gold = rng.normal(size=60).round(1)
            pred = gold + rng.normal(size=60)
        ours = metric_rows(metric, pred[None, :], gold[None, :])[0]
        theirs = score_classification(task, pred.tolist(), gold.tolist())[metric].value
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_multiclass_matthews_equals_the_runners_scorer():
    rng = np.random.default_rng(2)
    gold, pred = rng.integers(0, 3, 80), rng.integers(0, 3, 80)
    pred[:40] = gold[:40]
    from sklearn.metrics import matthews_corrcoef

    assert metric_rows("matthews", pred[None, :], gold[None, :])[0] == pytest.approx(
        100 * matthews_corrcoef(gold, pred))


def test_a_method_better_by_a_clear_margin_is_best_and_the_weak_one_is_not_tied():
    rng = np.random.default_rng(3)
    gold = _gold(800)
    cells = {"strong": CellData([noisy(gold, 0.90, rng) for _ in range(3)]),
             "weak": CellData([noisy(gold, 0.75, rng) for _ in range(3)])}
    v = compare(cells, gold, "accuracy")
    assert v.best == "strong" and v.tied == set()
    assert v.intervals["strong"].low > v.intervals["weak"].high
    assert v.beats_majority == {"strong", "weak"}


def test_identical_distributions_are_not_told_apart():
    rng = np.random.default_rng(4)
    gold = _gold(800)
    same = [noisy(gold, 0.8, rng) for _ in range(3)]
    twin = [noisy(gold, 0.8, rng) for _ in range(3)]    # same accuracy, other examples wrong
    v = compare({"a": CellData(same), "b": CellData(twin), "copy": CellData([p.copy() for p in same])}, gold,
                "accuracy")
    assert v.best in ("a", "b", "copy")
    assert v.tied == {"a", "b", "copy"} - {v.best}


def test_a_tiny_dev_set_gives_wide_intervals():
    rng = np.random.default_rng(5)
    widths = {}
    for n in (20, 2000):
        gold = _gold(n, seed=n)
        v = compare({"m": CellData([noisy(gold, 0.8, rng) for _ in range(3)])}, gold, "accuracy")
        widths[n] = v.intervals["m"].high - v.intervals["m"].low
    assert widths[20] > 20.0            # points: 20 examples cannot pin an accuracy
    assert widths[2000] < 5.0
    assert widths[20] > 5 * widths[2000]


def test_chance_methods_do_not_differ_from_the_majority_class():
    rng = np.random.default_rng(6)
    gold = np.array([0] * 60 + [1] * 40)
    v = compare({"coin": CellData([rng.integers(0, 2, 100) for _ in range(3)]),
                 "majority-ish": CellData([np.zeros(100, dtype=int) for _ in range(3)])}, gold, "accuracy")
    assert v.majority == pytest.approx(60.0)
    assert v.beats_majority == set()


def test_the_report_marks_the_tables_and_writes_both_protocols(tmp_path):
    rng = np.random.default_rng(7)
    gold = _gold(400)
    methods = {"Strong": {"dev": [noisy(gold, 0.92, rng) for _ in range(3)],
                          "heldout": [noisy(gold, 0.90, rng) for _ in range(3)]},
               "Twin": {"dev": [noisy(gold, 0.92, rng) for _ in range(3)],
                        "heldout": [noisy(gold, 0.89, rng) for _ in range(3)]},
               "Weak": {"dev": [noisy(gold, 0.70, rng) for _ in range(3)],
                        "heldout": [noisy(gold, 0.66, rng) for _ in range(3)]}}
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, methods)
    build_report("syn", results_dir=results, out_root=tmp_path / "reports", plots=False)
    glue = (tmp_path / "reports" / "syn" / "glue.md").read_text()
    lines = {line.split(" | ")[1]: line for line in glue.splitlines() if line.startswith("| tiny")}
    assert "**" in lines["Strong"] or "**" in lines["Twin"]
    assert "\u2248" in lines["Strong"] or "\u2248" in lines["Twin"]
    assert "**" not in lines["Weak"] and "\u2248" not in lines["Weak"]
    assert "paired bootstrap over seeds and dev examples" in glue
    sel = (tmp_path / "reports" / "syn" / "selection.md").read_text()
    weak = next(line for line in sel.splitlines() if "| Weak |" in line)
    assert weak.count("[") == 2                                  # an interval under each protocol
    assert weak.split(" | ")[-1].strip(" |") == "+4.0"           # dev 70.0 - heldout 66.0
    assert "3 of 3 methods better at 95%" in sel
    assert "\\textbf{" in (tmp_path / "reports" / "syn" / "glue.tex").read_text()


def test_a_task_where_no_method_beats_the_majority_class_says_so_under_the_table(tmp_path):
    rng = np.random.default_rng(11)
    gold = np.array([0] * 70 + [1] * 50)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {"A": {"dev": [rng.integers(0, 2, 120) for _ in range(3)]},
                                               "B": {"dev": [np.zeros(120, dtype=int) for _ in range(3)]}})
    build_report("syn", results_dir=results, out_root=tmp_path / "reports", plots=False)
    out = tmp_path / "reports" / "syn"
    assert "SST-2: no method differs from the majority-class baseline at 95%." in (out / "glue.md").read_text()
    assert "**No method differs from the majority-class baseline** (58.3) at 95%." in (out / "selection.md").read_text()


def test_a_report_without_predictions_says_so_and_marks_nothing(tmp_path):
    rng = np.random.default_rng(8)
    gold = _gold(100)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {"A": {"dev": [noisy(gold, 0.9, rng)]},
                                               "B": {"dev": [noisy(gold, 0.6, rng)]}})
    (results / "syn.predictions.jsonl").unlink()
    build_report("syn", results_dir=results, out_root=tmp_path / "reports", plots=False)
    out = tmp_path / "reports" / "syn"
    assert "**" not in (out / "glue.md").read_text().split("| tiny", 1)[1]
    sel = (out / "selection.md").read_text()
    assert "No heldout rows" in sel and "no per-example predictions file" in sel


def test_the_summary_plot_draws_the_intervals(tmp_path, monkeypatch):
    import bench.report.curves  # noqa: F401 - bound to the real save_figure before it is replaced here
    import bench.report.plots as plots

    captured = {}

    def keep(fig, out, stem):
        captured[stem] = fig
        return []

    monkeypatch.setattr(plots, "save_figure", keep)
    rng = np.random.default_rng(9)
    gold = _gold(200)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {"A": {"dev": [noisy(gold, 0.9, rng) for _ in range(3)]},
                                               "B": {"dev": [noisy(gold, 0.6, rng) for _ in range(3)]}})
    build_report("syn", results_dir=results, out_root=tmp_path / "reports")
    fig = captured["summary"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("95% interval" in label for label in labels)
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) == 2]
    spans = sorted((min(ln.get_xdata()), max(ln.get_xdata())) for ln in lines)
    assert len(spans) == 2 and spans[0][1] < spans[1][0]          # B's interval lies wholly below A's


def test_an_unknown_selection_value_stops_the_report_naming_line_and_column(tmp_path):
    from bench.config import ConfigError

    rng = np.random.default_rng(10)
    gold = _gold(50)
    results = tmp_path / "results"
    results.mkdir()
    write_preset(results, "syn", "sst2", gold, {"A": {"dev": [noisy(gold, 0.9, rng)]}})
    path = results / "syn.csv"
    path.write_text(path.read_text().replace(",dev,accuracy,dev,", ",dev,accuracy,heldin,"))
    with pytest.raises(ConfigError, match=r"line 2 .*'selection' is 'heldin', expected one of dev, heldout, final"):
        build_report("syn", results_dir=results, out_root=tmp_path / "reports", plots=False)
