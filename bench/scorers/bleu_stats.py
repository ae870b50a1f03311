"""Per-input BLEU sufficient statistics of each NLG task's official BLEU, and corpus BLEU from their sum.

Corpus BLEU is a function of sums over inputs: hypothesis length, closest reference length and, per order
n = 1..4, the clipped n-gram matches and the hypothesis n-grams. `bleu_statistics` gives these ten numbers per
input (sacrebleu's segment statistics, with the text prepared exactly as `score_split` prepares it for the
task), and `bleu_from_statistics` turns summed rows back into the task's BLEU. The sum over every input of a
set gives the scorer's own corpus BLEU (tests check equality); the sum over a half, or over a bootstrap draw
of inputs, gives that subset's corpus BLEU without re-reading any text. Torch-free (numpy, sacrebleu).

E2E uses mteval-v13a's formula (its smoothing of orders with no match, brevity penalty on the closest
reference length), WebNLG and DART multi-bleu.perl's (no smoothing: an order with no match gives 0).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sacrebleu.metrics import BLEU

from bench.config import ConfigError
from bench.scorers.mteval import _mteval_slots
from bench.scorers.normalize import (DART_MAX_REFS, WEBNLG_MAX_REFS, ascii_lower, dart_reference, e2e_reference,
                                     webnlg_hypothesis, webnlg_reference)

ORDER = 4
WIDTH = 2 + 2 * ORDER    # columns: hyp_len, ref_len, correct_1..4, total_1..4
TASKS = ("e2e", "webnlg", "dart")


def _hypothesis(task: str, text: str) -> str:
    if task == "e2e":       # generation.py's strip, mteval's ASCII lower-casing
        return ascii_lower(str(text).strip())
    if task == "webnlg":    # the WebNLG normalisation, multi-bleu -lc
        return ascii_lower(webnlg_hypothesis(str(text)))
    return dart_reference(str(text))     # split.py: DART outputs put in the form of the .lex references


def _streams(task: str, references: Sequence[Sequence[str]]) -> tuple[list[list], str]:
    """(reference streams, sacrebleu tokenizer) as each task's BLEU reads the raw references."""
    refs = [["" if r is None else str(r) for r in slots] for slots in references]
    if task == "e2e":   # split.py's e2e_reference, generation.py's strip, mteval's slots
        refs = [[e2e_reference(r).strip() for r in slots] for slots in refs]
        width = max(len(r) for r in refs)
        slots = [_mteval_slots(r + [""] * (width - len(r))) for r in refs]
        return [[s[j] for s in slots] for j in range(width)], "13a"
    if task == "webnlg":
        refs = [[ascii_lower(webnlg_reference(r)) for r in (slots + [""] * WEBNLG_MAX_REFS)[:WEBNLG_MAX_REFS]]
                for slots in refs]
        return [[r[j] for r in refs] for j in range(WEBNLG_MAX_REFS)], "none"
    if task == "dart":
        refs = [[dart_reference(r) for r in (slots + [""] * DART_MAX_REFS)[:DART_MAX_REFS]] for slots in refs]
        return [[r[j] for r in refs] for j in range(DART_MAX_REFS)], "none"
    raise ConfigError(f"no BLEU statistics for task {task!r}; expected one of {', '.join(TASKS)}")


def bleu_statistics_many(task: str, outputs: Sequence[Sequence[str]],
                         references: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """`bleu_statistics` of several output vectors on the same references (their n-grams are read once)."""
    n = len(references)
    for hypotheses in outputs:
        if len(hypotheses) != n or not n:
            raise ConfigError(f"{task}: {len(hypotheses)} hypotheses for {n} reference lists; expected the same "
                              f"non-zero number")
    streams, tokenize = _streams(task, references)
    bleu = BLEU(tokenize=tokenize, lowercase=False, smooth_method="none", force=True)
    bleu._ref_cache = bleu._cache_references(streams)
    return [np.asarray(bleu._extract_corpus_statistics([_hypothesis(task, h) for h in hypotheses], None),
                       dtype=np.int64).reshape(n, WIDTH) for hypotheses in outputs]


def bleu_statistics(task: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """An (inputs x 10) int64 array: per input [hyp_len, ref_len, correct_1..4, total_1..4] of the task's BLEU.
    `references[i]` are the raw reference texts of input i (as the run's gold file keeps them)."""
    if task not in TASKS:
        raise ConfigError(f"no BLEU statistics for task {task!r}; expected one of {', '.join(TASKS)}")
    return bleu_statistics_many(task, [hypotheses], references)[0]


def bleu_from_statistics(task: str, stats: np.ndarray) -> np.ndarray:
    """The task's BLEU (percent, as its scorer reports it) of each row of summed statistics (... x 10)."""
    stats = np.asarray(stats, dtype=float)
    sys_len, ref_len = stats[..., 0], stats[..., 1]
    correct, total = stats[..., 2:2 + ORDER], stats[..., 2 + ORDER:]
    safe_sys = np.where(sys_len > 0, sys_len, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if task == "e2e":
            # mteval: an order never reached counts log(1); each order with no match doubles the smoothing
            zero = (correct == 0) & (total > 0)
            smooth = 2.0 ** np.cumsum(zero, axis=-1)
            logs = np.where(total == 0, 0.0,
                            np.where(zero, -np.log(smooth * np.where(total > 0, total, 1.0)),
                                     np.log(np.where(correct > 0, correct, 1.0) / np.where(total > 0, total, 1.0))))
            bp = np.exp(np.minimum(0.0, 1.0 - ref_len / safe_sys))
            return np.where(sys_len > 0, 100.0 * bp * np.exp(logs.sum(axis=-1) / ORDER), 0.0)
        if task in ("webnlg", "dart"):
            # sacrebleu with smooth_method="none": any order without a match gives 0
            ok = np.all(correct > 0, axis=-1)
            logs = np.log(np.where(correct > 0, correct, 1.0) / np.where(total > 0, total, 1.0)).sum(axis=-1)
            bp = np.where(sys_len < ref_len, np.exp(1.0 - ref_len / safe_sys), 1.0)
            bp = np.where(sys_len > 0, bp, 0.0)
            return np.where(ok, 100.0 * bp * np.exp(logs / ORDER), 0.0)
    raise ConfigError(f"no BLEU formula for task {task!r}; expected one of {', '.join(TASKS)}")


def corpus_bleu(task: str, stats: np.ndarray, members: Sequence[int] | None = None) -> float:
    """Corpus BLEU (percent) of the inputs `members` (all when None) from per-input statistics."""
    rows = stats if members is None else stats[list(members)]
    return float(bleu_from_statistics(task, rows.sum(axis=0)))
