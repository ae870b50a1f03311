"""Evaluation of a trained model on one split: predictions, then the task's scorers.

classify / regress: one forward pass per batch, argmax (or the single output), `score_classification`.
generate: batched beam search with the task's Decoding (`bench.decode.generate`), `score_split` (which may report
subsets such as WebNLG test-seen / test-unseen). Predictions come back as text lines for re-scoring.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from bench.models import pad_id
from bench.train import model_inputs


@dataclass
class SplitResult:
    split: str
    scores: dict[str, dict] = field(default_factory=dict)   # result split name -> {metric: Score}
    predictions: list[str] = field(default_factory=list)     # one line per example, in split order
    examples: int = 0                                        # examples predicted (over all processes)


def has_gold(task, examples) -> bool:
    if task.kind == "generate":
        return bool(examples) and all(len(getattr(ex, "references", ()) or ()) > 0 for ex in examples)
    return bool(examples) and all(getattr(ex, "label", None) is not None for ex in examples)


@torch.no_grad()
def predict_classification(model, loader, kind: str, *, progress: bool = False, desc: str = "eval"):
    """Predictions (class ids, or the single output for regression) in example order."""
    model.eval()
    device = next(model.parameters()).device
    preds: dict[int, object] = {}
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        outputs = model(**inputs)
        logits = (outputs.logits if hasattr(outputs, "logits") else outputs[0]).float()
        values = logits.view(-1).tolist() if kind == "regress" else logits.argmax(-1).tolist()
        preds.update(zip(batch["idx"].tolist(), values))   # batches come longest first; idx restores order
    return [preds[i] for i in range(len(preds))]


def classification_loader(tokenizer, task, examples, *, max_length: int, batch_size: int):
    from bench.data import encode_classification, make_loader

    encoded = encode_classification(tokenizer, task, examples, max_length)
    return make_loader(encoded, batch_size=batch_size, pad_id=pad_id(tokenizer), shuffle=False, seed=0,
                       group_by_length=True)


def score_predictions(task, split: str, predictions: list[str], examples) -> dict:
    """{result split: {metric: Score}} of prediction lines (as evaluate_split writes them) against `examples`."""
    from bench import scorers

    if task.kind == "generate":
        return scorers.score_split(task.name, split, predictions, examples)
    preds = [float(p) if task.kind == "regress" else int(p) for p in predictions]
    return {split: scorers.score_classification(task.name, preds, [ex.label for ex in examples])}


def evaluate_split(model, tokenizer, task, split: str, examples, *, max_length: int, batch_size: int,
                   decoding=None, progress: bool = False, score: bool = True) -> SplitResult:
    """Predict and (with `score`) score `examples` of `split`. Unlabelled splits get predictions and no scores."""
    from bench import scorers

    gold = has_gold(task, examples) and score
    result = SplitResult(split=split)
    if task.kind == "generate":
        from bench.data import encode_generation_sources
        from bench.decode.generate import generate

        sources = encode_generation_sources(tokenizer, task, examples)
        model.eval()
        hyps = generate(model, tokenizer, sources, decoding, progress=progress)
        result.predictions = [h.replace("\n", " ") for h in hyps]
        if gold:
            result.scores = scorers.score_split(task.name, split, result.predictions, examples)
        return result
    loader = classification_loader(tokenizer, task, examples, max_length=max_length, batch_size=batch_size)
    preds = predict_classification(model, loader, task.kind, progress=progress, desc=f"eval {split}")
    if len(preds) != len(examples):
        raise RuntimeError(f"{split}: {len(preds)} predictions for {len(examples)} examples")
    result.predictions = [_fmt(p) for p in preds]
    if gold:
        labels = [ex.label for ex in examples]
        scores = scorers.score_classification(task.name, preds, labels)
        result.scores = {split: scores}
    return result


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def score_value(score) -> float | None:
    """The number of a Score (None when it could not be computed or is NaN)."""
    value = getattr(score, "value", score)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value
