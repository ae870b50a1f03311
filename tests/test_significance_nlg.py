"""The paired bootstrap on corpus BLEU for generation tasks: known answers on synthetic outputs."""
from __future__ import annotations

import random

import numpy as np
import pytest

from bench.report.significance import CellData, compare, draw_weights
from bench.scorers import mteval
from bench.scorers.bleu_stats import bleu_from_statistics, bleu_statistics

VOCAB = [f"w{i}" for i in range(40)]


def _gold(n: int, seed: int = 0):
    rng = random.Random(seed)
    return [[" ".join(rng.choice(VOCAB) for _ in range(rng.randint(6, 12))) for _ in range(2)] for _ in range(n)]


def _system(gold, noise: float, seed: int):
    """Each output copies a reference and replaces a share `noise` of its words."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() >= noise else rng.choice(VOCAB) for w in refs[0].split()) for refs in gold]


def _verdict(gold, systems: dict, task: str = "dart", replicates: int = 1000):
    cells = {k: CellData([bleu_statistics(task, out, gold) for out in seeds]) for k, seeds in systems.items()}
    return compare(cells, gold, "bleu", replicates=replicates, corpus=lambda s: bleu_from_statistics(task, s))


def test_a_clearly_better_system_is_flagged_and_identical_ones_are_tied():
    gold = _gold(200)
    good = [_system(gold, 0.1, s) for s in range(3)]
    v = _verdict(gold, {"good": good, "same": [list(o) for o in good], "bad": [_system(gold, 0.5, s)
                                                                               for s in range(10, 13)]})
    assert v.best in ("good", "same") and v.tied == {"good", "same"} - {v.best}
    assert "bad" not in v.tied
    assert v.intervals["good"] == v.intervals["same"]
    assert v.intervals["bad"].high < v.intervals["good"].low
    assert v.majority is None and not v.beats_majority       # no majority-class baseline for generation


def test_the_cell_center_is_the_median_of_the_scorers_corpus_bleu_per_seed():
    gold = _gold(80, seed=1)
    seeds = [_system(gold, noise, s) for s, noise in enumerate((0.2, 0.3, 0.4))]
    refs = [[r for r in g] + [""] for g in gold]               # the scorer pads DART to 3 reference slots
    per_seed = [mteval.multi_bleu(out, refs, lowercase=False) for out in seeds]
    v = _verdict(gold, {"m": seeds})
    iv = v.intervals["m"]
    assert iv.low < float(np.median(per_seed)) < iv.high
    stats = bleu_statistics("dart", seeds[1], gold)
    assert float(bleu_from_statistics("dart", stats.sum(axis=0))) == pytest.approx(per_seed[1], abs=1e-9)


def test_draw_weights_count_each_drawn_input():
    draw = np.array([[0, 0, 2], [1, 2, 2]])
    assert draw_weights(draw, 3).tolist() == [[2, 0, 1], [0, 1, 2]]


def test_a_tiny_dev_set_gives_wider_intervals_than_a_large_one():
    widths = {}
    for n in (10, 400):
        gold = _gold(n, seed=2)
        v = _verdict(gold, {"m": [_system(gold, 0.3, s) for s in range(3)]}, task="e2e", replicates=500)
        widths[n] = v.intervals["m"].high - v.intervals["m"].low
    assert widths[10] > 3 * widths[400]
