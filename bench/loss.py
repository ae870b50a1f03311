"""Training losses from a model's logits, per task kind (no host sync unless asked to check a batch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.base import IGNORE_INDEX

NO_TARGETS = ("a training batch has no target tokens (every label is -100): max_length cuts off the whole target; "
              "raise train.max_length")


def no_targets(labels: torch.Tensor) -> torch.Tensor:
    """1 (a device tensor) when a generation batch has no target token to predict, else 0."""
    return ((labels[:, 1:] != IGNORE_INDEX).sum() == 0).to(torch.int64)


LOSSES = ("token_mean", "sentence_sum")


def compute_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                 reduction: str = "token_mean", *, check_targets: bool = True) -> torch.Tensor:
    """classify: cross-entropy; regress: MSE; generate: next-token cross-entropy on labels != -100, reduced as
    `reduction` says: "token_mean" (the mean over the batch's target tokens) or "sentence_sum" (each sequence's
    summed token losses, averaged over the sequences of the batch: the Prefix-Tuning script's objective_mode 1).
    A generation batch without target tokens is an error; `check_targets=False` leaves that check (which waits
    for the device) to the caller (the training loop tallies such batches on the device, `no_targets`)."""
    logits = logits.float()
    if reduction not in LOSSES:
        raise ValueError(f"train.loss {reduction!r}: expected one of {', '.join(LOSSES)}")
    if kind != "generate" and reduction != "token_mean":
        raise ValueError(f"train.loss {reduction!r} is a generation loss; a {kind} task uses token_mean")
    if kind == "regress":
        return F.mse_loss(logits.view(-1), labels.float().view(-1))
    if kind == "classify":
        return F.cross_entropy(logits, labels.view(-1), label_smoothing=label_smoothing)
    if kind == "generate":
        if logits.shape[1] != labels.shape[1]:
            raise ValueError(f"generation logits cover {logits.shape[1]} positions, labels {labels.shape[1]}")
        shift_labels = labels[:, 1:]
        n_target = (shift_labels != IGNORE_INDEX).sum()
        if check_targets and int(n_target) == 0:
            raise ValueError(NO_TARGETS)
        per_token = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), shift_labels.reshape(-1),
                                    ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing, reduction="none")
        if reduction == "sentence_sum":
            return per_token.view(shift_labels.shape).sum(dim=1).mean()
        return per_token.sum() / n_target.clamp(min=1)
    raise ValueError(f"unknown task kind {kind!r}; expected classify, regress or generate")
