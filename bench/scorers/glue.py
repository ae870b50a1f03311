"""GLUE metrics as the GLUE benchmark defines them, in percent as LoRA Table 2 prints them.

accuracy (all classification tasks), F1 of the positive class (MRPC, QQP), Matthews correlation (CoLA),
Pearson and Spearman correlation (STS-B). Degenerate inputs are explicit: constant predictions give MCC 0
(its limit, as scikit-learn and GLUE define it); a correlation with a constant input is undefined and is
reported as None with the reason, never as NaN.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bench.config import ConfigError
from bench.scorers.base import Score, percent
from bench.tasks import TASKS, Task

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews", "pearson", "spearman")


def _as_array(values: Sequence, what: str, task: str, regression: bool) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1:
        raise ConfigError(f"{task}: {what} must be a flat list of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ConfigError(f"{task}: {what}[{bad}] is {arr[bad]!r}; expected a finite number")
    if not regression and not np.all(arr == np.round(arr)):
        bad = int(np.flatnonzero(arr != np.round(arr))[0])
        raise ConfigError(f"{task}: {what}[{bad}] is {arr[bad]!r}; expected an integer class id")
    return arr


def _matthews(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    if len(np.unique(pred)) < 2 or len(np.unique(gold)) < 2:
        return 0.0  # the limit scikit-learn and GLUE use for a constant column (0/0)
    return float(matthews_corrcoef(gold, pred))


def _correlation(kind: str, pred: np.ndarray, gold: np.ndarray) -> Score:
    from scipy import stats

    constant = [name for name, arr in (("predictions", pred), ("labels", gold)) if np.all(arr == arr[0])]
    if constant or len(pred) < 2:
        why = f"the {' and '.join(constant)} are constant" if constant else "fewer than 2 examples"
        return Score(kind, None, "percent", True, note=f"undefined: {why}, so the {kind} correlation is 0/0")
    fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
    value = float(fn(pred, gold)[0])
    if not math.isfinite(value):
        return Score(kind, None, "percent", True, note=f"undefined: {kind} correlation is {value}")
    return percent(kind, value)


def classification_task(task_name: str) -> Task:
    """The registered classification or regression task `task_name`; ConfigError listing them otherwise."""
    task = TASKS.get(task_name)
    if task is None or task.kind == "generate":
        names = [t.name for t in TASKS.values() if t.kind != "generate"]
        raise ConfigError(f"unknown GLUE task {task_name!r}; expected one of {', '.join(names)}")
    return task


def score_classification(task_name: str, predictions: Sequence, labels: Sequence) -> dict[str, Score]:
    """Score one GLUE-like task's predictions against gold labels (class ids; floats for regression), with
    the metrics its Task record names, in that order."""
    task = classification_task(task_name)
    if len(predictions) != len(labels):
        raise ConfigError(f"{task_name}: {len(predictions)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        raise ConfigError(f"{task_name}: nothing to score (0 labels)")
    regression = task.kind == "regress"
    pred = _as_array(predictions, "predictions", task_name, regression)
    gold = _as_array(labels, "labels", task_name, regression)
    out: dict[str, Score] = {}
    for metric in task.metric_names:
        if metric == "accuracy":
            out[metric] = percent(metric, float(np.mean(pred == gold)))
        elif metric == "f1":
            tp = float(np.sum((pred == 1) & (gold == 1)))
            fp = float(np.sum((pred == 1) & (gold != 1)))
            fn = float(np.sum((pred != 1) & (gold == 1)))
            # F1 = 2TP / (2TP + FP + FN); with no positive anywhere it is 0/0: scikit-learn (GLUE) reports 0.
            out[metric] = percent(metric, 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0)
        elif metric == "matthews":
            out[metric] = percent(metric, _matthews(pred, gold))
        elif metric in ("pearson", "spearman"):
            out[metric] = _correlation(metric, pred, gold)
        else:
            raise ConfigError(f"{task_name}: no scorer for metric {metric!r}; classification metrics are: "
                              f"{', '.join(CLASSIFICATION_METRICS)}")
    return out
