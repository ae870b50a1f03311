"""The training loop: one written-out function on `accelerate`. It never asks which method it trains: the
method has already frozen the model, and the loop optimises whatever still requires a gradient.

Public pieces (also used by the perf benchmark):
- `make_accelerator(cfg)`: cfg.mixed_precision ("auto": bf16 on a GPU or CPU with bf16 matmul units, else fp32;
  `bench.precision`), grad accumulation. `fit` and `train_steps` keep the frozen base's matmul weights in bf16.
- `make_optimizer(model, cfg)`: AdamW over trainable parameters only (fused on CUDA), no decay on biases/norms;
  the task head (its family's `Arch.head`) at cfg.head_lr when that is > 0.
- `make_scheduler(optimizer, cfg, total_steps)`: linear warmup, then linear decay to 0 or constant.
- `train_steps(model, loader, kind=..., cfg=..., max_steps=N)`: exactly N optimizer steps, for benchmarks.
- `fit(model, loader, kind=..., cfg=..., evaluate=...)`: epochs, dev evaluation after each, the best (or, with
  cfg.select="final", the last) epoch's state kept.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.fastpath import cpu_fast_training
from bench.precision import keep_frozen_in
from bench.spec import TrainConfig
from methods.base import IGNORE_INDEX

MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # what a batch passes to the model


# -- setup ------------------------------------------------------------------------------------------------------
def make_accelerator(cfg: TrainConfig):
    import os

    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    from bench.precision import allow_precision, resolve_precision

    precision = resolve_precision(cfg.mixed_precision)
    allow_precision(precision)
    extra = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # under `accelerate launch` each process trains on its slice of every batch of cfg.batch_size
        # examples, so the global batch and its examples are those of one process
        extra["dataloader_config"] = DataLoaderConfiguration(split_batches=True)
    return Accelerator(mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum, **extra)


def trainable_named(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    seen, out = set(), []
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    named = trainable_named(model)
    if not named:
        raise ValueError("the model has no trainable parameters (did the method freeze everything?)")
    norm_params = {id(p) for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.Embedding))
                   for p in m.parameters(recurse=False)}
    head = set()
    if cfg.head_lr > 0:
        from methods import arch_of
        from methods.base import head_parameters

        head = {id(p) for p in head_parameters(model, arch_of(model))}
    groups = []
    for in_head, lr in ((False, cfg.lr), (True, cfg.head_lr)):   # the head's own lr only when head_lr > 0
        part = [(n, p) for n, p in named if (id(p) in head) == in_head]
        decay = [p for n, p in part if p.ndim >= 2 and id(p) not in norm_params]
        no_decay = [p for n, p in part if not (p.ndim >= 2 and id(p) not in norm_params)]
        groups += [g for g in ({"params": decay, "weight_decay": cfg.weight_decay, "lr": lr},
                               {"params": no_decay, "weight_decay": 0.0, "lr": lr}) if g["params"]]
    kwargs = dict(lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps)
    # The fused kernel exists for CUDA and, since torch 2.4, for CPU: one AdamW step over MiniLM's 22.7M
    # parameters took 16-25 ms fused against 93-134 ms with foreach on the 2-core CPU (docs/perf.md).
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError):   # a device or dtype without a fused kernel
        return torch.optim.AdamW(groups, foreach=True, **kwargs)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.warmup_steps > 0:
        return cfg.warmup_steps
    return int(math.ceil(cfg.warmup_ratio * total_steps))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    warm = warmup_steps(cfg, total_steps)
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the rate of the model's own dropout modules (`train.dropout`). A dropout that is a child of a method's
    module (LoRA's `lora_dropout`, the prefix's dropout) belongs to the method and keeps the method's setting."""
    from methods.base import MethodModule

    for parent in model.modules():
        if isinstance(parent, MethodModule):
            continue
        for child in parent.children():
            if isinstance(child, nn.Dropout):
                child.p = p


def enable_grad_checkpointing(model: nn.Module) -> None:
    """Turn it on in the first Hugging Face model found inside (a method may have wrapped it)."""
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing_enable"):
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(module, "enable_input_require_grads"):
                module.enable_input_require_grads()
            return
    raise ValueError("grad_checkpointing: no Hugging Face model inside this model")


# -- one step ---------------------------------------------------------------------------------------------------
def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in MODEL_KEYS if k in batch}


LOSSES = ("token_mean", "sentence_sum")


def compute_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                 reduction: str = "token_mean") -> torch.Tensor:
    """classify: cross-entropy; regress: MSE; generate: next-token cross-entropy on labels != -100, reduced as
    `reduction` says: "token_mean" (the mean over the batch's target tokens) or "sentence_sum" (each sequence's
    summed token losses, averaged over the sequences of the batch: the Prefix-Tuning script's objective_mode 1)."""
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
        if int(n_target) == 0:
            raise ValueError("a training batch has no target tokens (every label is -100): max_length cuts off "
                             "the whole target; raise train.max_length")
        per_token = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), shift_labels.reshape(-1),
                                    ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing, reduction="none")
        if reduction == "sentence_sum":
            return per_token.view(shift_labels.shape).sum(dim=1).mean()
        return per_token.sum() / n_target
    raise ValueError(f"unknown task kind {kind!r}; expected classify, regress or generate")


@dataclass
class StepStats:
    """What a stretch of training did (one epoch, or `train_steps`)."""

    steps: int = 0               # optimizer steps
    micro_batches: int = 0       # forward/backward passes
    examples: int = 0            # training examples seen
    tokens: int = 0              # non-padding tokens seen
    seconds: float = 0.0         # wall-clock seconds in the loop
    loss_sum: float = 0.0        # summed micro-batch losses

    @property
    def loss(self) -> float:
        return self.loss_sum / self.micro_batches if self.micro_batches else float("nan")


SYNC_EVERY = 50  # micro-batches between host syncs (loss check, progress bar); device work is not waited on


def _train_pass(model, batches: Iterable[dict], optimizer, scheduler, accelerator, cfg: TrainConfig, kind: str,
                stats: StepStats, *, max_steps: int | None, bar) -> None:
    """One pass over `batches` (or until `max_steps`). Loss and token sums stay on the device and are read
    every SYNC_EVERY micro-batches and at the end, so the loop does not wait for the GPU at every step."""
    model.train()
    params = [p for _, p in trainable_named(model)]
    loss_sum = tokens = None
    pending = 0

    def sync() -> None:
        nonlocal loss_sum, tokens, pending
        if loss_sum is None:
            return
        value = float(loss_sum)
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss is {value} in the {pending} micro-batches up to optimizer step "
                                     f"{stats.steps + 1} (lr {scheduler.get_last_lr()[0]:.3g}); lower train.lr?")
        stats.loss_sum += value
        stats.tokens += int(tokens)
        loss_sum = tokens = None
        pending = 0

    fast = cpu_fast_training(accelerator.unwrap_model(model)) if cfg.cpu_fast_path else contextlib.nullcontext()
    start = time.perf_counter()
    with fast:
        for batch in batches:
            with accelerator.accumulate(model):
                outputs = model(**model_inputs(batch))
                logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
                loss = compute_loss(kind, logits, batch["labels"], cfg.label_smoothing, cfg.loss)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    if cfg.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            mask = batch.get("attention_mask")
            n_tokens = mask.sum() if mask is not None else torch.tensor(batch["input_ids"].numel())
            loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
            tokens = n_tokens if tokens is None else tokens + n_tokens
            pending += 1
            stats.micro_batches += 1
            stats.examples += int(batch["input_ids"].shape[0])
            if pending >= SYNC_EVERY:
                sync()
                if bar is not None:
                    bar.set_postfix(loss=f"{stats.loss:.4f}", refresh=False)
            if accelerator.sync_gradients:
                scheduler.step()
                stats.steps += 1
                if bar is not None:
                    bar.update(1)
                if max_steps is not None and stats.steps >= max_steps:
                    break
    sync()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    stats.seconds += time.perf_counter() - start


def steps_per_epoch(loader, cfg: TrainConfig) -> int:
    return max(1, math.ceil(len(loader) / cfg.grad_accum))


def train_steps(model: nn.Module, loader, *, kind: str, cfg: TrainConfig | None = None, max_steps: int,
                accelerator=None, progress: bool = False) -> StepStats:
    """Run exactly `max_steps` optimizer steps (cycling the loader), the same step code as `fit`.

    For benchmarks: prepare nothing beforehand; returns counts and wall-clock seconds of the loop.
    """
    cfg = cfg if cfg is not None else TrainConfig()
    accelerator = accelerator or make_accelerator(cfg)
    keep_frozen_in(model, str(accelerator.mixed_precision))
    optimizer = make_optimizer(model, cfg)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    scheduler = make_scheduler(optimizer, cfg, max_steps)
    stats = StepStats()
    bar = tqdm(total=max_steps, desc="steps", disable=not progress, leave=False)
    while stats.steps < max_steps:
        before = stats.micro_batches
        _train_pass(model, loader, optimizer, scheduler, accelerator, cfg, kind, stats,
                    max_steps=max_steps, bar=bar)
        if stats.micro_batches == before:
            raise ValueError("train_steps: the loader is empty")
    bar.close()
    return stats


# -- epochs with selection --------------------------------------------------------------------------------------
@dataclass
class FitResult:
    best_epoch: int                       # 1-based epoch whose state is kept: the best dev score (select="best"),
    #                                       the last epoch (select="final", or when only the last is evaluated)
    best_score: float | None              # dev selection metric at that epoch
    log: list[dict] = field(default_factory=list)   # one dict per epoch (epoch, train_loss, lr, dev_*)
    train: StepStats = field(default_factory=StepStats)
    eval_seconds: float = 0.0


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True) for n, p in trainable_named(model)}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def improves(score: float | None, best: float | None, higher_is_better: bool) -> bool:
    """Whether a dev score beats the best so far: any score beats no best; no score beats nothing."""
    return best is None or (score is not None and (score > best if higher_is_better else score < best))


def fit(model: nn.Module, loader, *, kind: str, cfg: TrainConfig,
        evaluate: Callable[[nn.Module, int], tuple[float | None, bool, dict]], accelerator=None,
        on_epoch: Callable[[list[dict]], None] | None = None, progress: bool = True) -> FitResult:
    """Train for cfg.epochs; after each epoch call `evaluate(model, epoch) -> (score, higher_is_better, logged)`.

    cfg.select="best": the best epoch's trainable parameters are kept in memory and restored into `model` before
    returning. cfg.select="final": the model keeps its last state (the Prefix-Tuning script saves the final
    checkpoint); earlier evaluations are logged only. When cfg.eval_every_epoch is False, only the last epoch is
    evaluated (and kept).
    """
    if cfg.select not in ("best", "final"):
        raise ValueError(f"train.select {cfg.select!r}: expected best or final")
    accelerator = accelerator or make_accelerator(cfg)
    keep_frozen_in(model, str(accelerator.mixed_precision))
    optimizer = make_optimizer(model, cfg)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    per_epoch = steps_per_epoch(loader, cfg)
    scheduler = make_scheduler(optimizer, cfg, per_epoch * cfg.epochs)
    result = FitResult(best_epoch=cfg.epochs, best_score=None)
    best_state = None
    epochs = tqdm(range(1, cfg.epochs + 1), desc="epochs", disable=not progress, leave=False)
    for epoch in epochs:
        stats = StepStats()
        bar = tqdm(total=per_epoch, desc=f"epoch {epoch}", disable=not progress, leave=False)
        _train_pass(model, loader, optimizer, scheduler, accelerator, cfg, kind, stats, max_steps=None, bar=bar)
        bar.close()
        for name in ("steps", "micro_batches", "examples", "tokens", "seconds", "loss_sum"):
            setattr(result.train, name, getattr(result.train, name) + getattr(stats, name))
        entry = {"epoch": epoch, "train_loss": stats.loss, "lr": scheduler.get_last_lr()[0],
                 "train_seconds": stats.seconds, "steps": stats.steps}
        if cfg.eval_every_epoch or epoch == cfg.epochs:
            start = time.perf_counter()
            score, higher, logged = evaluate(model, epoch)
            result.eval_seconds += time.perf_counter() - start
            entry.update(logged)
            if cfg.select == "final":
                if epoch == cfg.epochs:
                    result.best_epoch, result.best_score = epoch, score
            elif best_state is None or improves(score, result.best_score, higher):
                result.best_epoch, result.best_score = epoch, score
                best_state = trainable_state(model)
        result.log.append(entry)
        if on_epoch is not None:
            on_epoch(result.log)
    epochs.close()
    if best_state is not None:
        load_trainable_state(model, best_state)
    return result
