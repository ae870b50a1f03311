"""TER as tercom 0.7.25 computes it with its defaults (case-insensitive, no normalisation, no punctuation removal),
via sacrebleu's `TER()` (with a faster, result-identical edit distance: fast_ter.py), parallelised over
segments.

Corpus TER = (sum over segments of the fewest edits against any reference) / (sum over segments of the average
reference length). Worker processes return per-segment (edits, average length) pairs; they are put back in
segment order and summed here, so the parallel result is bit-for-bit the serial one.

The workers are plain `python -m bench.scorers.ter` subprocesses fed JSON on stdin (not multiprocessing): they
never re-import the caller's `__main__`, so scoring works from unguarded scripts, notebooks and threaded programs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

from tqdm import tqdm

from bench.scorers.base import ScorerError

PARALLEL_MIN_SEGMENTS = 400  # below this, worker start-up costs more than it saves
SHARDS_PER_WORKER = 4        # interleaved shards, so long and short segments spread evenly


def segment_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[tuple[float, float]]:
    """(fewest edits, average reference length) per segment; references[i] = the references of segment i."""
    try:
        from bench.scorers.fast_ter import segment_statistics as one
    except (ImportError, AttributeError):  # sacrebleu internals moved: use its public (slower) TER
        one = _sacrebleu_segment
    out = []
    for hyp, refs in zip(hypotheses, references, strict=True):
        if not refs:
            raise ValueError("TER needs at least one reference (possibly empty) per segment")
        out.append(one(hyp, list(refs)))
    return out


def _sacrebleu_segment(hypothesis: str, references: list[str]) -> tuple[float, float]:
    from sacrebleu.metrics import TER

    s = TER().sentence_score(hypothesis, references)
    return float(s.num_edits), float(s.ref_length)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _run_shard(payload: str) -> list[list[float]]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "bench.scorers.ter"], input=payload.encode("utf-8"),
                          capture_output=True, env=env)
    if proc.returncode != 0:
        raise ScorerError(f"a TER worker failed (exit {proc.returncode}): "
                          f"{proc.stderr.decode('utf-8', 'replace')[-800:]}")
    return json.loads(proc.stdout)


def parallel_segment_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                                workers: int | None = None, progress: bool = True) -> list[tuple[float, float]]:
    workers = default_workers() if workers is None else workers
    n = len(hypotheses)
    if len(references) != n:
        raise ValueError(f"{n} hypotheses but {len(references)} reference sets")
    if workers <= 1 or n < PARALLEL_MIN_SEGMENTS:
        return segment_statistics(hypotheses, references)
    n_shards = workers * SHARDS_PER_WORKER
    shards = [list(range(k, n, n_shards)) for k in range(n_shards)]
    payloads = [json.dumps({"hyps": [hypotheses[i] for i in idx], "refs": [list(references[i]) for i in idx]})
                for idx in shards]
    out: list[tuple[float, float] | None] = [None] * n
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_run_shard, payloads)
        for idx, stats in tqdm(zip(shards, results), total=n_shards, desc="TER", unit="shard",
                               disable=None if progress else True, leave=False):
            for i, (edits, length) in zip(idx, stats, strict=True):
                out[i] = (float(edits), float(length))
    return out  # type: ignore[return-value]


def corpus_ter(stats: Sequence[tuple[float, float]]) -> float:
    """TER as a fraction from per-segment statistics (tercom's 'Total TER'), summed in segment order."""
    edits = 0.0
    length = 0.0
    for e, n in stats:
        edits += e
        length += n
    if length > 0:
        return edits / length
    return 1.0 if edits > 0 else 0.0


def _worker_main() -> None:
    job = json.load(sys.stdin)
    json.dump(segment_statistics(job["hyps"], job["refs"]), sys.stdout)


if __name__ == "__main__":
    _worker_main()
