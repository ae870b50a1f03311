"""GLUE metrics: definitions, percent units, degenerate inputs."""
import math

import pytest
from scipy import stats

from bench.config import ConfigError
from bench.scorers import Score, score_classification


def test_accuracy_and_positive_class_f1_in_percent():
    pred = [1, 1, 0, 0, 1]
    gold = [1, 0, 0, 1, 1]
    out = score_classification("mrpc", pred, gold)
    assert list(out) == ["accuracy", "f1"]
    assert out["accuracy"].value == pytest.approx(60.0)
    # TP=2, FP=1, FN=1 -> F1 = 4/6
    assert out["f1"].value == pytest.approx(100 * 4 / 6)
    assert out["f1"].scale == "percent" and out["f1"].higher_is_better


def test_f1_with_no_positive_anywhere_is_zero_as_sklearn():
    out = score_classification("qqp", [0, 0], [0, 0])
    assert out["f1"].value == 0.0
    assert out["accuracy"].value == 100.0


def test_matthews_matches_definition_and_constant_predictions_give_zero():
    pred = [1, 0, 1, 1, 0, 0]
    gold = [1, 0, 0, 1, 0, 1]
    tp, tn, fp, fn = 2, 2, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert score_classification("cola", pred, gold)["matthews"].value == pytest.approx(100 * mcc)
    assert score_classification("cola", [1, 1, 1, 1], [1, 0, 1, 0])["matthews"].value == 0.0
    assert score_classification("cola", [0, 1, 0, 1], [1, 1, 1, 1])["matthews"].value == 0.0


def test_stsb_correlations_and_constant_input_is_none_with_reason():
    pred = [0.5, 2.0, 3.1, 4.9, 1.0]
    gold = [1.0, 2.0, 3.0, 5.0, 0.0]
    out = score_classification("stsb", pred, gold)
    assert out["pearson"].value == pytest.approx(100 * stats.pearsonr(pred, gold)[0])
    assert out["spearman"].value == pytest.approx(100 * stats.spearmanr(pred, gold)[0])
    const = score_classification("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 3.0])
    for name in ("pearson", "spearman"):
        assert const[name].value is None
        assert "constant" in const[name].note and "predictions" in const[name].note


def test_bad_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="3 predictions but 2 labels"):
        score_classification("sst2", [1, 0, 1], [1, 0])
    with pytest.raises(ConfigError, match="unknown GLUE task"):
        score_classification("squad", [1], [1])
    with pytest.raises(ConfigError, match="class id"):
        score_classification("rte", [0.5], [1])
    with pytest.raises(ConfigError, match="0 labels"):
        score_classification("rte", [], [])


def test_score_record_refuses_nan_and_unexplained_none():
    with pytest.raises(ValueError, match="finite"):
        Score("pearson", float("nan"), "percent", True)
    with pytest.raises(ValueError, match="note"):
        Score("pearson", None, "percent", True)


def test_score_split_accepts_glue_examples():
    from dataclasses import dataclass

    from bench.scorers import score_split

    @dataclass(frozen=True)
    class Ex:
        label: int | None

    assert score_split("rte", "dev", [1, 0], [Ex(1), Ex(1)])["dev"]["accuracy"].value == 50.0
    with pytest.raises(ConfigError, match="no gold labels"):
        score_split("rte", "test", [1], [Ex(None)])
