"""Which differences are real: bootstrap intervals and paired comparisons from per-example predictions. numpy only.

The data of one cell (a table row x task x protocol) is a seeds x examples matrix of predictions on one dev set
with its gold. One bootstrap replicate draws, with replacement, the seeds (by position in the preset's seed
list) and the dev examples, once, and applies the same draw to every method of the task (paired over the same
examples and seeds); the cell's statistic is recomputed on it (the task's metric per drawn seed, then the
median or mean over the drawn seeds, as the tables). Intervals are the 2.5 and 97.5 percentiles of the
replicates. A method cannot be told apart from the best when the 95% percentile interval of the paired
difference (best - method) contains 0; the same test against the majority-class baseline (every example gets
the most frequent gold class, a constant that no draw changes) says whether any method beats it.

Corpus-level metrics (generation tasks: BLEU) are not means over examples. There a cell's vector for one seed is
an (inputs x k) array of per-input sufficient statistics (bench/scorers/bleu_stats.py) and `corpus` maps summed
statistics to the metric: a replicate's score is the metric of the statistics summed over its drawn inputs (an
input drawn twice counts twice), which on the whole set is exactly the scorer's corpus value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REPLICATES = 2000       # bootstrap replicates per task
SEED = 20220            # numpy Generator seed: the same draws on every report build
LEVEL = 0.95
TEST_NAME = (f"paired bootstrap over seeds and dev examples ({REPLICATES} replicates, the same draw for every "
             f"method of a task): a method is marked \u2248 when the {LEVEL:.0%} percentile interval of its "
             f"difference to the best contains 0")
CORPUS_TEST_NAME = (f"paired bootstrap over seeds and inputs ({REPLICATES} replicates, the same draw for every "
                    f"method of a task; corpus BLEU recomputed on each draw from per-input n-gram statistics): a "
                    f"method is marked \u2248 when the {LEVEL:.0%} percentile interval of its difference to the best "
                    f"contains 0")


# ---------------------------------------------------------------- metrics on rows of resampled examples
def metric_rows(metric: str, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """The metric (in percent) of each row of `pred` against the same row of `gold` (both B x n); NaN where it
    is undefined (a correlation with a constant row). Matthews and F1 follow bench.scorers.glue's conventions."""
    if metric == "accuracy":
        return 100.0 * np.mean(pred == gold, axis=1)
    if metric == "f1":
        tp = np.sum((pred == 1) & (gold == 1), axis=1)
        fp = np.sum((pred == 1) & (gold != 1), axis=1)
        fn = np.sum((pred != 1) & (gold == 1), axis=1)
        den = 2 * tp + fp + fn
        return 100.0 * np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)
    if metric == "matthews":
        return 100.0 * _matthews_rows(pred, gold)
    if metric in ("pearson", "spearman"):
        if metric == "spearman":
            from scipy.stats import rankdata

            pred, gold = rankdata(pred, axis=1), rankdata(gold, axis=1)
        return 100.0 * _pearson_rows(pred.astype(float), gold.astype(float))
    raise ValueError(f"no bootstrap metric for {metric!r}; expected accuracy, f1, matthews, pearson or spearman")


def _matthews_rows(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Multiclass Matthews correlation per row (Gorodkin's R_K, as scikit-learn); 0 where it is 0/0."""
    classes = np.unique(np.concatenate([np.unique(pred), np.unique(gold)]))
    n = pred.shape[1]
    correct = np.sum(pred == gold, axis=1).astype(float)
    p = np.stack([np.sum(pred == c, axis=1) for c in classes], axis=1).astype(float)
    t = np.stack([np.sum(gold == c, axis=1) for c in classes], axis=1).astype(float)
    num = correct * n - np.sum(p * t, axis=1)
    den = np.sqrt((n * n - np.sum(p * p, axis=1)) * (n * n - np.sum(t * t, axis=1)))
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sum(x * y, axis=1) / den, np.nan)


# ---------------------------------------------------------------- the bootstrap
@dataclass(frozen=True)
class CellData:
    """One method's predictions on a task: `predictions[s]` is seed position s's vector (None: seed missing)."""
    predictions: list[np.ndarray | None]


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class TaskVerdict:
    intervals: dict          # key -> Interval (percent)
    best: object             # the key with the best center
    tied: set                # keys not distinguishable from the best (the best excluded)
    beats_majority: set      # keys whose difference to the majority-class baseline excludes 0
    majority: float | None   # the baseline's score (percent), None when it has none (regression)
    examples: int
    replicates: int


def _center(values: np.ndarray, center: str) -> np.ndarray:
    """Median or mean over axis 1, ignoring NaN (undefined seeds); NaN where every seed is undefined."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(values, axis=1) if center == "median" else np.nanmean(values, axis=1)


def draw_weights(example_draw: np.ndarray, n: int) -> np.ndarray:
    """(replicates x n) how many times each input is drawn in each replicate."""
    weights = np.zeros((example_draw.shape[0], n))
    np.add.at(weights, (np.arange(example_draw.shape[0])[:, None], example_draw), 1.0)
    return weights


def compare(cells: dict, gold, metric: str, *, higher_is_better: bool = True, center: str = "median",
            majority: bool = True, replicates: int = REPLICATES, seed: int = SEED, corpus=None) -> TaskVerdict:
    """Intervals, the best key, the keys tied with it and those better than the majority class, for the methods
    `cells` ({key: CellData}, every vector the length of `gold`) of one task under one protocol.

    `corpus`: for a corpus-level metric, a function from summed statistics (replicates x k) to the metric per
    row; each vector is then an (n x k) statistics array and there is no majority-class baseline."""
    n = len(gold)
    if corpus is None:
        gold = np.asarray(gold)
    else:
        majority = False
    n_seeds = max(len(c.predictions) for c in cells.values())
    rng = np.random.default_rng(seed)
    seed_draw = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    example_draw = rng.integers(0, n, size=(replicates, n))
    gold_b = gold[example_draw] if corpus is None else None
    weights = draw_weights(example_draw, n) if corpus is not None else None
    sign = 1.0 if higher_is_better else -1.0
    point, boot = {}, {}
    for key, cell in cells.items():
        per_seed = np.full((replicates, n_seeds), np.nan)
        full = np.full(n_seeds, np.nan)
        for s, vec in enumerate(cell.predictions):
            if vec is None:
                continue
            vec = np.asarray(vec)
            if corpus is not None:
                per_seed[:, s] = corpus(weights @ vec)
                full[s] = corpus(vec.sum(axis=0)[None, :])[0]
                continue
            per_seed[:, s] = metric_rows(metric, vec[example_draw], gold_b)
            full[s] = metric_rows(metric, vec[None, :], gold[None, :])[0]
        point[key] = float(_center(full[None, :], center)[0])
        boot[key] = _center(np.take_along_axis(per_seed, seed_draw, axis=1), center)
    intervals = {k: Interval(*np.nanpercentile(b, [50 * (1 - LEVEL), 50 * (1 + LEVEL)]).tolist())
                 for k, b in boot.items()}
    ranked = [k for k in point if not np.isnan(point[k])]
    best = max(ranked, key=lambda k: sign * point[k]) if ranked else None
    tied = {k for k in ranked if k != best and _contains_zero(sign * (boot[best] - boot[k]))}
    base, beats = None, set()
    if majority and metric != "pearson" and metric != "spearman":
        classes, counts = np.unique(gold, return_counts=True)
        constant = np.full_like(gold, classes[np.argmax(counts)])
        base = float(metric_rows(metric, constant[None, :], gold[None, :])[0])
        base_b = metric_rows(metric, constant[example_draw], gold_b)
        beats = {k for k in ranked if not _contains_zero(sign * (boot[k] - base_b)) and sign * (point[k] - base) > 0}
    return TaskVerdict(intervals=intervals, best=best, tied=tied, beats_majority=beats, majority=base, examples=n,
                       replicates=replicates)


def _contains_zero(diff: np.ndarray) -> bool:
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return True
    low, high = np.percentile(diff, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return bool(low <= 0.0 <= high)
