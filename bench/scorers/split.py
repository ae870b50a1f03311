"""Score a task's split from its examples: references come from the examples, prepared as the official
pipeline prepares them; WebNLG's test split is scored as seen / unseen / all categories.

An example needs only `.references: tuple[str, ...]` (in the dataset's order) and, for WebNLG test,
`.seen: bool` (True for the 10 categories of the training data).
"""
from __future__ import annotations

from collections.abc import Sequence

from bench.config import ConfigError
from bench.scorers.base import Score
from bench.scorers.generation import generation_task, score_generation, score_webnlg_subsets
from bench.scorers.glue import score_classification
from bench.tasks import TASKS
from bench.scorers.normalize import DART_MAX_REFS, WEBNLG_MAX_REFS, dart_reference, e2e_reference


def _references(task: str, examples: Sequence) -> list[list[str]]:
    out = []
    for i, ex in enumerate(examples):
        refs = getattr(ex, "references", None)
        if refs is None:
            raise ConfigError(f"{task}: example {i} has no `references`")
        refs = ["" if r is None else str(r) for r in refs]
        if task == "e2e":
            out.append([e2e_reference(r) for r in refs])
        elif task == "dart":
            first = [dart_reference(r) for r in refs[:DART_MAX_REFS]]
            out.append(first + [""] * (DART_MAX_REFS - len(first)))
        else:  # webnlg: normalised inside the scorer
            first = refs[:WEBNLG_MAX_REFS]
            out.append(first + [""] * (WEBNLG_MAX_REFS - len(first)))
    return out


def score_split(task_name: str, split: str, hypotheses: Sequence[str], examples: Sequence, *,
                model_dir=None, ter_workers: int | None = None, learned: bool = True,
                ) -> dict[str, dict[str, Score]]:
    """{split: scores}, or for WebNLG test {"test-seen": ..., "test-unseen": ..., "test-all": ...}.

    GLUE tasks are accepted too: `hypotheses` are then the predictions and the examples' `.label` the gold.
    `learned=False` leaves out DART's model-based metrics (torch-free scoring).
    """
    if task_name in TASKS and TASKS[task_name].kind != "generate":
        labels = [getattr(ex, "label", None) for ex in examples]
        if any(lab is None for lab in labels):
            raise ConfigError(f"{task_name} {split}: the examples have no gold labels (an unlabelled test split?)")
        return {split: score_classification(task_name, list(hypotheses), labels)}
    generation_task(task_name)
    if len(hypotheses) != len(examples):
        raise ConfigError(f"{task_name} {split}: {len(hypotheses)} hypotheses but {len(examples)} examples")
    refs = _references(task_name, examples)
    if task_name == "webnlg" and split == "test":
        seen = [getattr(ex, "seen", None) for ex in examples]
        if any(s is None for s in seen):
            i = seen.index(None)
            raise ConfigError(f"webnlg test: example {i} has seen=None; the seen/unseen split needs its category")
        subsets = {
            "test-seen": [i for i, s in enumerate(seen) if s],
            "test-unseen": [i for i, s in enumerate(seen) if not s],
            "test-all": list(range(len(examples))),
        }
        return score_webnlg_subsets([str(h) for h in hypotheses], refs, subsets, ter_workers=ter_workers)
    if task_name == "dart":
        # The official DART references are tokenised and lower-cased (the .lex files); raw model text is put in
        # that same form before scoring, as the released pipelines did (a lower-casing step before multi-bleu;
        # the BART-large outputs in the DART repository are tokenised and lower-cased). The `score` command,
        # which reads finished output files, scores hypotheses as given.
        hypotheses = [dart_reference(str(h)) for h in hypotheses]
    return {split: score_generation(task_name, hypotheses, refs, model_dir=model_dir, ter_workers=ter_workers,
                                         learned=learned)}
