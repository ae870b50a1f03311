"""One pass of the training loop (`_train_pass`, used by `bench.train.fit` and `train_steps`) and what it counts.

The loop waits for the device only every SYNC_EVERY micro-batches and at the end of a pass: losses, token
counts, batches without targets and fp16's skipped steps are summed on the device in between.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from collections.abc import Iterable

import torch
from torch import nn

from bench.fastpath import cpu_fast_training
from bench.loss import NO_TARGETS, compute_loss, no_targets
from bench.precision import MIN_LOSS_SCALE, ScaleWatch
from bench.spec import TrainConfig

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # what a batch passes to the model


def trainable_named(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    seen, out = set(), []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in MODEL_KEYS if k in batch}


@dataclass
class StepStats:
    """What a stretch of training did (one epoch, or `train_steps`); under DDP summed over the processes."""

    steps: int = 0               # optimizer steps (skipped fp16 steps included)
    micro_batches: int = 0       # forward/backward passes (this process's)
    examples: int = 0            # training examples seen, all processes together
    tokens: int = 0              # non-padding tokens seen, all processes together
    seconds: float = 0.0         # wall-clock seconds in the loop
    loss_sum: float = 0.0        # summed finite micro-batch losses, all processes together
    finite: int = 0              # micro-batches whose loss was finite (fp16 may overflow a few)
    skipped_steps: int = 0       # fp16: optimizer steps the loss scaler skipped (a gradient overflowed)
    loss_scale: float | None = None  # fp16: the dynamic loss scale at the end; None without a scaler

    @property
    def loss(self) -> float:
        return self.loss_sum / self.finite if self.finite else float("nan")


SYNC_EVERY = 50        # micro-batches between host syncs (loss check, progress bar); device work is not waited on


class _Tally:
    """Per-micro-batch sums kept on the device and read every SYNC_EVERY micro-batches."""

    def __init__(self) -> None:
        self.loss = self.finite = self.tokens = self.empty = None
        self.pending = 0

    def add(self, loss: torch.Tensor, n_tokens: torch.Tensor, empty: torch.Tensor | None) -> None:
        ok = torch.isfinite(loss)
        value = torch.where(ok, loss, torch.zeros_like(loss))
        first = self.pending == 0
        self.loss = value if first else self.loss + value
        self.finite = ok.to(torch.int64) if first else self.finite + ok
        self.tokens = n_tokens if first else self.tokens + n_tokens
        if empty is not None:
            self.empty = empty if first or self.empty is None else self.empty + empty
        self.pending += 1


def _train_pass(model, batches: Iterable[dict], optimizer, scheduler, accelerator, cfg: TrainConfig, kind: str,
                stats: StepStats, *, max_steps: int | None, bar, on_loss=None) -> None:
    """One pass over `batches` (or until `max_steps`). Losses, token counts and fp16's skipped steps stay on the
    device and are read every SYNC_EVERY micro-batches and at the end, so the loop does not wait for the GPU at
    every step. A non-finite loss fails the run, except under fp16: there the scaler skips a step whose
    gradients overflow and halves its scale, and the run fails when the scale has fallen below MIN_LOSS_SCALE
    (24 skips from 2^16 that no good step made up for: the values do not fit fp16 at any scale). `on_loss`, where
    given, gets every micro-batch's loss (detached; reading it waits for the device)."""
    model.train()
    params = [p for _, p in trainable_named(model)]
    watch = ScaleWatch(accelerator.scaler)
    tally = _Tally()
    examples, tokens, loss_sum, finite = 0, 0, 0.0, 0

    def sync() -> None:
        nonlocal tokens, loss_sum, finite
        scale, skipped = watch.read()
        stats.skipped_steps += skipped
        stats.loss_scale = scale
        if tally.pending == 0:
            return
        if tally.empty is not None and int(tally.empty):
            raise ValueError(NO_TARGETS)
        ok = int(tally.finite)
        where = f"in {tally.pending - ok} of the {tally.pending} micro-batches up to optimizer step {stats.steps + 1}"
        if watch.scaler is None and ok < tally.pending:
            raise FloatingPointError(f"training loss is not finite {where} (lr {scheduler.get_last_lr()[0]:.3g}); "
                                     f"lower train.lr?")
        if scale is not None and scale < MIN_LOSS_SCALE:
            raise FloatingPointError(f"fp16 loss scale fell to {scale:g} after {stats.skipped_steps} skipped steps "
                                     f"(training loss not finite {where}): this run's values do not fit fp16; "
                                     f"train in bf16 or fp32 (train.mixed_precision)")
        loss_sum += float(tally.loss)
        finite += ok
        tokens += int(tally.tokens)
        tally.__init__()

    fast = cpu_fast_training(accelerator.unwrap_model(model)) if cfg.cpu_fast_path else contextlib.nullcontext()
    start = time.perf_counter()
    with fast:
        for batch in batches:
            with accelerator.accumulate(model):
                outputs = model(**model_inputs(batch))
                logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
                loss = compute_loss(kind, logits, batch["labels"], cfg.label_smoothing, cfg.loss, check_targets=False)
                accelerator.backward(loss)
                stepping = accelerator.sync_gradients
                if stepping:
                    if cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    watch.before_step()
                optimizer.step()
                if stepping:
                    watch.after_step()
                optimizer.zero_grad(set_to_none=True)
            mask = batch.get("attention_mask")
            n_tokens = mask.sum() if mask is not None else torch.tensor(batch["input_ids"].numel())
            tally.add(loss.detach(), n_tokens, no_targets(batch["labels"]) if kind == "generate" else None)
            if on_loss is not None:
                on_loss(loss.detach())
            stats.micro_batches += 1
            examples += int(batch["input_ids"].shape[0])
            if tally.pending >= SYNC_EVERY:
                sync()
                if bar is not None and finite:
                    bar.set_postfix(loss=f"{(stats.loss_sum + loss_sum) / (stats.finite + finite):.4f}", refresh=False)
            if accelerator.sync_gradients:
                scheduler.step()
                stats.steps += 1
                if bar is not None:
                    bar.update(1)
                if max_steps is not None and stats.steps >= max_steps:
                    break
    sync()
    if accelerator.num_processes > 1:     # all processes' examples, tokens and losses
        total = accelerator.reduce(torch.tensor([examples, tokens, finite, loss_sum], dtype=torch.float64,
                                                device=accelerator.device), "sum").tolist()
        examples, tokens, finite, loss_sum = int(total[0]), int(total[1]), int(total[2]), total[3]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    stats.seconds += time.perf_counter() - start
    stats.examples += examples
    stats.tokens += tokens
    stats.loss_sum += loss_sum
    stats.finite += finite
