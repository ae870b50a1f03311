"""TER: tercom semantics via sacrebleu, the faster edit distance is result-identical, parallel == serial."""
import random

import pytest
from sacrebleu.metrics import TER

from bench.scorers import fast_ter, ter

GOLDEN_HYPS = ["a cat sits on the mat", "heavy rain falls in paris"]
GOLDEN_REFS = [["the cat sat on a red mat today", "the feline was sitting on the mat"],
               ["it is raining heavily in paris"]]


def _sacrebleu_stats(hyps, refs):
    t = TER()
    return [(float(s.num_edits), float(s.ref_length)) for s in (t.sentence_score(h, r) for h, r in zip(hyps, refs))]


def _random_corpus(n, seed, max_len=25):
    rng = random.Random(seed)
    vocab = "the a cat dog sat on mat in paris rain falls heavy Big big small , . and of was is".split()
    hyps, refs = [], []
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, max_len))]
        hyp = ref[:]
        rng.shuffle(hyp) if rng.random() < 0.3 else None
        for _ in range(rng.randint(0, 8)):  # local edits and block moves
            i = rng.randrange(len(hyp) + 1)
            op = rng.random()
            if op < 0.3 and hyp:
                del hyp[min(i, len(hyp) - 1)]
            elif op < 0.6:
                hyp.insert(i, rng.choice(vocab))
            elif hyp:
                j = rng.randrange(len(hyp))
                k = min(len(hyp), j + rng.randint(1, 5))
                block, rest = hyp[j:k], hyp[:j] + hyp[k:]
                p = rng.randrange(len(rest) + 1)
                hyp = rest[:p] + block + rest[p:]
        extra = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, max_len))) for _ in range(rng.randint(0, 2))]
        hyps.append(" ".join(hyp))
        refs.append([" ".join(ref), *extra])
    return hyps, refs


def test_golden_case_ter():
    stats = ter.segment_statistics(GOLDEN_HYPS, GOLDEN_REFS)
    assert round(ter.corpus_ter(stats), 6) == 0.592593


def test_fast_edit_distance_equals_sacrebleu_exactly():
    hyps, refs = _random_corpus(80, seed=0)
    hyps += ["", "a", "The Cat", "x " * 30]
    refs += [["a b"], [""], ["the cat"], ["x y " * 20]]
    assert [fast_ter.segment_statistics(h, r) for h, r in zip(hyps, refs)] == _sacrebleu_stats(hyps, refs)


def test_empty_hypothesis_and_empty_reference():
    assert ter.segment_statistics([""], [["a b c"]]) == [(3.0, 3.0)]  # three insertions
    assert ter.segment_statistics(["a b"], [[""]]) == [(2.0, 0.0)]
    assert ter.corpus_ter([(2.0, 0.0)]) == 1.0 and ter.corpus_ter([(0.0, 0.0)]) == 0.0
    with pytest.raises(ValueError, match="at least one reference"):
        ter.segment_statistics(["a"], [[]])


def test_parallel_equals_serial_bit_for_bit(monkeypatch):
    hyps, refs = _random_corpus(24, seed=1, max_len=15)
    serial = ter.segment_statistics(hyps, refs)
    monkeypatch.setattr(ter, "PARALLEL_MIN_SEGMENTS", 1)
    parallel = ter.parallel_segment_statistics(hyps, refs, workers=2, progress=False)
    assert parallel == serial
    assert ter.corpus_ter(parallel) == ter.corpus_ter(serial)
    t = TER().corpus_score(hyps, [[r[k] if k < len(r) else None for r in refs] for k in range(3)])
    assert ter.corpus_ter(parallel) * 100 == pytest.approx(t.score, abs=1e-9)
