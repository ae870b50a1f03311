"""Corpus-level scorers of the three NLG benchmarks, each matching its official pipeline.

`references[i]` is the list of reference slots of `hypotheses[i]`; '' marks an empty slot (a blank line in a
line-aligned reference file). How empty slots count follows each official scorer (see docs/scorers.md).

E2E     e2e-metrics measure_scores.py: BLEU, NIST (mteval-v13a-sig), METEOR, ROUGE-L, CIDEr (coco-caption on
        PTB-tokenised text). Empty slots are not references.
WebNLG  webnlg-automatic-evaluation (DART repo): text normalised (unidecode, lowercase, split on non-word
        characters); BLEU = multi-bleu -lc over 3 slots (empty slots kept as ''), METEOR -r 3, TER on the
        (at most 3) non-empty references.
DART    run_eval_on_dart.sh: BLEU = multi-bleu (case-sensitive, no tokenisation) over the reference slots as
        given (the official .lex files are already tokenised and lower-cased). METEOR (-r 8, padded with empty
        lines) and TER use the first slot always and the later slots when not blank, as prepare_files.py's
        multi-reference branch builds its files (on the BART-large output this gives the METEOR 0.39 that
        reference/scorers.md states for the official script; the first slot alone gives 0.364).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping, Sequence

from bench.config import ConfigError
from bench.scorers import java, mteval, ter
from bench.scorers.base import Score, check_lengths
from bench.scorers.normalize import WEBNLG_MAX_REFS, webnlg_hypothesis, webnlg_reference
from bench.tasks import TASKS, Task

DART_METEOR_SLOTS = 8  # prepare_files.py pads each reference to 8 lines for `-r 8`


def _score(task: str, name: str, value: float | None, note: str = "") -> Score:
    """A Score in the units and direction the task's record gives the metric."""
    metric = TASKS[task].metric(name)
    return Score(name, value, metric.scale, metric.higher_is_better, note)


def generation_task(task_name: str) -> Task:
    """The registered generation task `task_name`; ConfigError listing them otherwise."""
    task = TASKS.get(task_name)
    if task is None or task.kind != "generate":
        names = [t.name for t in TASKS.values() if t.kind == "generate"]
        raise ConfigError(f"unknown generation task {task_name!r}; expected one of {', '.join(names)}")
    return task


def _check_task(task_name: str) -> None:
    generation_task(task_name)


def _as_slots(references: Sequence[Sequence[str]]) -> list[list[str]]:
    out = []
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ConfigError(f"references[{i}] is a string; expected a list of reference strings per hypothesis")
        out.append(["" if r is None else str(r) for r in refs])
    return out


# --- E2E -----------------------------------------------------------------------------------------------------

def _score_e2e(hypotheses: list[str], references: list[list[str]]) -> dict[str, Score]:
    hyps = [h.strip() for h in hypotheses]
    slots = [[r.strip() for r in refs] for refs in references]
    coco_refs = [[r for r in refs if r] for refs in slots]
    missing = [i for i, refs in enumerate(coco_refs) if not refs]
    if missing:
        raise ConfigError(f"e2e: hypothesis {missing[0] + 1} (line {missing[0] + 1}) has no reference "
                          f"({len(missing)} such lines); every E2E input needs at least one reference")
    java.java_executable()  # fail early, before the slow parts
    bleu = mteval.mteval_bleu(hyps, slots)
    nist = mteval.mteval_nist(hyps, slots)
    flat = [r for refs in coco_refs for r in refs]
    tok_flat = iter(java.ptb_tokenize(flat))
    tok_refs = [[next(tok_flat) for _ in refs] for refs in coco_refs]
    tok_hyps = java.ptb_tokenize(hyps)
    with java.MeteorSession() as meteor:
        meteor_value = meteor.corpus_score(meteor.statistics(tok_hyps, tok_refs))
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: refs for i, refs in enumerate(tok_refs)}
    res = {i: [hyp] for i, hyp in enumerate(tok_hyps)}
    rouge_l = float(Rouge().compute_score(gts, res)[0])
    cider = float(Cider().compute_score(gts, res)[0])
    return {
        "bleu": _score("e2e", "bleu", 100.0 * bleu),
        "nist": _score("e2e", "nist", nist) if nist is not None else
        _score("e2e", "nist", None, "undefined: the references contain no words"),
        "meteor": _score("e2e", "meteor", 100.0 * meteor_value),
        "rouge_l": _score("e2e", "rouge_l", 100.0 * rouge_l),
        "cider": _score("e2e", "cider", cider),
    }


# --- WebNLG 2017 ---------------------------------------------------------------------------------------------

def score_webnlg_subsets(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                         subsets: Mapping[str, Sequence[int]], *, ter_workers: int | None = None,
                         ) -> dict[str, dict[str, Score]]:
    """WebNLG scores of several subsets (e.g. seen / unseen / all) of one set: segment statistics once."""
    hyps = [webnlg_hypothesis(h) for h in hypotheses]
    # the official files: reference0..2 for BLEU (blank lines kept), 3 lines per input for METEOR -r 3,
    # and the existing references (at most 3) for TER
    refs = [[webnlg_reference(r) for r in slots[:WEBNLG_MAX_REFS]] for slots in references]
    refs = [slots + [""] * (WEBNLG_MAX_REFS - len(slots)) for slots in refs]
    bleu_refs = meteor_refs = refs
    ter_refs = [[r for r in slots if r.strip()] or [""] for slots in refs]
    java.java_executable()
    out: dict[str, dict[str, Score]] = {}
    with java.MeteorSession() as meteor, ThreadPoolExecutor(max_workers=1) as background:
        # METEOR's JVM works while the TER workers run
        meteor_future = background.submit(meteor.statistics, hyps, meteor_refs)
        ter_stats = ter.parallel_segment_statistics(hyps, ter_refs, workers=ter_workers)
        meteor_stats = meteor_future.result()
        for name, idx in subsets.items():
            idx = list(idx)
            if not idx:
                raise ConfigError(f"webnlg: subset {name!r} is empty")
            out[name] = {
                "bleu": _score("webnlg", "bleu", mteval.multi_bleu([hyps[i] for i in idx],
                                                                   [bleu_refs[i] for i in idx], lowercase=True)),
                "meteor": _score("webnlg", "meteor", meteor.corpus_score([meteor_stats[i] for i in idx])),
                "ter": _score("webnlg", "ter", ter.corpus_ter([ter_stats[i] for i in idx])),
            }
    return out


# --- DART ----------------------------------------------------------------------------------------------------

def _score_dart(hypotheses: list[str], references: list[list[str]], model_dir, ter_workers,
                learned: bool = True) -> dict[str, Score]:
    java.java_executable()
    bleu = mteval.multi_bleu(hypotheses, references, lowercase=False)
    # prepare_files.py: every line of the first reference file, plus the non-blank lines of the others
    multi = [[refs[0] if refs else ""] + [r for r in refs[1:] if r.strip()] for refs in references]
    meteor_refs = [refs + [""] * (DART_METEOR_SLOTS - len(refs)) for refs in multi]
    with java.MeteorSession() as meteor, ThreadPoolExecutor(max_workers=1) as background:
        # METEOR's JVM works while the TER workers run
        meteor_future = background.submit(meteor.statistics, hypotheses, meteor_refs)
        ter_stats = ter.parallel_segment_statistics([h.strip() for h in hypotheses],
                                                    [[r.strip() for r in refs] for refs in multi],
                                                    workers=ter_workers)
        meteor_value = meteor.corpus_score(meteor_future.result())
    out = {
        "bleu": _score("dart", "bleu", bleu),
        "meteor": _score("dart", "meteor", meteor_value),
        "ter": _score("dart", "ter", ter.corpus_ter(ter_stats)),
    }
    if not learned:
        return out
    from bench.scorers.model_based import score_model_based

    for name, (value, note) in score_model_based(hypotheses, references, model_dir).items():
        out[name] = _score("dart", name, value, note)
    return out


def score_generation(task_name: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]], *,
                     model_dir=None, ter_workers: int | None = None, learned: bool = True) -> dict[str, Score]:
    """Score one set of hypotheses in one corpus-level call, in the units the papers print. `learned=False`
    leaves out DART's model-based metrics (MoverScore, BERTScore, BLEURT: torch and model weights)."""
    _check_task(task_name)
    check_lengths(task_name, hypotheses, references)
    hyps = [str(h) for h in hypotheses]
    refs = _as_slots(references)
    if task_name == "e2e":
        return _score_e2e(hyps, refs)
    if task_name == "webnlg":
        return score_webnlg_subsets(hyps, refs, {"all": range(len(hyps))}, ter_workers=ter_workers)["all"]
    return _score_dart(hyps, refs, model_dir, ter_workers, learned)
