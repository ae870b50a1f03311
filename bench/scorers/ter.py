"""TER as tercom 0.7.25 computes it with its defaults (case-insensitive, no normalisation, no punctuation removal),
via sacrebleu's `TER()`, parallelised over segments.

Corpus TER = (sum over segments of the fewest edits against any reference) / (sum over segments of the average
reference length). Each worker returns per-segment (edits, average length) pairs; they are summed here in segment
order, so the parallel result is bit-for-bit the serial one.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from tqdm import tqdm

PARALLEL_MIN_SEGMENTS = 400  # below this a process pool costs more than it saves
CHUNK = 100                  # segments per task


def segment_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[tuple[float, float]]:
    """(fewest edits, average reference length) per segment; references[i] = the references of segment i."""
    from sacrebleu.metrics import TER

    ter = TER()
    out = []
    for hyp, refs in zip(hypotheses, references, strict=True):
        s = ter.sentence_score(hyp, list(refs))
        out.append((float(s.num_edits), float(s.ref_length)))
    return out


def _chunk_task(args) -> list[tuple[float, float]]:
    hyps, refs = args
    return segment_statistics(hyps, refs)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def parallel_segment_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                                workers: int | None = None, progress: bool = True) -> list[tuple[float, float]]:
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(hypotheses) < PARALLEL_MIN_SEGMENTS:
        return segment_statistics(hypotheses, references)
    tasks = [(list(hypotheses[i:i + CHUNK]), [list(r) for r in references[i:i + CHUNK]])
             for i in range(0, len(hypotheses), CHUNK)]
    out: list[tuple[float, float]] = []
    # spawn: never fork a process that may hold threads (the METEOR pipe readers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part in tqdm(pool.map(_chunk_task, tasks), total=len(tasks), desc="TER", unit="chunk",
                         disable=None if progress else True, leave=False):
            out.extend(part)
    return out


def corpus_ter(stats: Sequence[tuple[float, float]]) -> float:
    """TER as a fraction from per-segment statistics (tercom's 'Total TER')."""
    edits = 0.0
    length = 0.0
    for e, l in stats:
        edits += e
        length += l
    if length > 0:
        return edits / length
    return 1.0 if edits > 0 else 0.0
