"""The training loop: one written-out function on `accelerate`. It never asks which method it trains: the
method has already frozen the model, and the loop optimises whatever still requires a gradient.

Public pieces (also used by the perf benchmark):
- `make_accelerator(cfg)`: cfg.mixed_precision resolved on the process's device (`bench.precision`: bf16 on
  CUDA sm_80+ and CPUs with bf16 matmul units, fp16 with loss scaling on older CUDA cards, else fp32), grad
  accumulation. `fit` and `train_steps` keep the frozen base's matmul weights in bf16 / fp16.
- `prepare(accelerator, model, optimizer, loader)`: accelerate's, with DDP batches sharded by bench.data.
- `make_optimizer(model, cfg)`: AdamW over trainable fp32 parameters only (fused), no decay on biases/norms;
  the task head (its family's `Arch.head`) at cfg.head_lr when that is > 0.
- one pass of the loop: `bench.loop`.
- `make_scheduler(optimizer, cfg, total_steps)`: linear warmup, then linear decay to 0 or constant.
- `train_steps(model, loader, kind=..., cfg=..., max_steps=N)`: exactly N optimizer steps, for benchmarks.
- `fit(model, loader, kind=..., cfg=..., evaluate=...)`: epochs, dev evaluation after each, the best (or, with
  cfg.select="final", the last) epoch's state kept.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.loop import SYNC_EVERY, StepStats, _train_pass, model_inputs, trainable_named  # noqa: F401
from bench.loss import LOSSES, compute_loss  # noqa: F401 (re-exported: the perf tools and tests import them here)
from bench.precision import keep_frozen_in
from bench.spec import TrainConfig

# -- setup ------------------------------------------------------------------------------------------------------
def make_accelerator(cfg: TrainConfig):
    """The run's Accelerator. `mixed_precision="auto"` is resolved on the process's own device (accelerate's
    choice: under `accelerate launch` each process's GPU). fp16 trains under autocast with dynamic loss scaling
    (accelerate's GradScaler; on a CPU, where accelerate makes none, torch's CPU GradScaler is given to it, so the
    CPU runs the same scaled path as a GPU). On CUDA, TF32 for fp32 matmuls follows `train.tf32`."""
    import os

    from accelerate import Accelerator, PartialState
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    from bench.precision import allow_precision, resolve_precision, set_tf32

    # DDP on a machine without CUDA: accelerate trains several processes over gloo only when told to use the CPU
    # (without it each process of `accelerate launch` trains alone, on the whole data)
    cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    device = PartialState(cpu=cpu).device
    precision = resolve_precision(cfg.mixed_precision, device)
    allow_precision(precision)
    if device.type == "cuda":
        set_tf32(cfg.tf32)
    extra = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a loader that is not sharded by bench.data (`prepare`) is split by accelerate: each process trains
        # on its slice of every batch of cfg.batch_size examples, the global batch of one process
        extra["dataloader_config"] = DataLoaderConfiguration(split_batches=True)
        # a step may leave trainable parameters out (random AdapterDrop skips the adapters of the lowest layers):
        # DDP looks for them after each forward pass instead of waiting for their gradients
        extra["kwargs_handlers"] = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    accelerator = Accelerator(mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum, cpu=cpu, **extra)
    if precision == "fp16" and accelerator.scaler is None and accelerator.device.type == "cpu":
        accelerator.scaler = torch.amp.GradScaler("cpu")
        accelerator.native_amp = True    # autocast the model's forward in prepare(), unscale before clipping
    return accelerator


def prepare(accelerator, model: nn.Module, optimizer, loader):
    """`accelerator.prepare`, except that under DDP a loader of `bench.data` batches is sharded by its own sampler
    (`LengthGroupedBatchSampler.shard`: every process the same number of batches, the short one last and split,
    `len(loader)` what each process iterates) and only placed on the device by accelerate. accelerate's own
    split (`split_batches`) drops a short batch that is not the last while `len()` counts it."""
    sampler = getattr(loader, "batch_sampler", None)
    if accelerator.num_processes == 1 or not hasattr(sampler, "shard"):
        return accelerator.prepare(model, optimizer, loader)
    from accelerate.data_loader import prepare_data_loader

    sampler.shard(accelerator.process_index, accelerator.num_processes)
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, prepare_data_loader(loader, accelerator.device, num_processes=1, process_index=0,
                                                 put_on_device=True)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, which must be fp32: they are the master weights that fp16 / bf16
    autocast computes from, and the optimizer state takes their dtype."""
    named = trainable_named(model)
    if not named:
        raise ValueError("the model has no trainable parameters (did the method freeze everything?)")
    half = [f"{n} ({str(p.dtype).removeprefix('torch.')})" for n, p in named if p.dtype != torch.float32]
    if half:
        raise ValueError(f"{len(half)} trainable parameters are not fp32: {', '.join(half[:3])}"
                         f"{', ...' if len(half) > 3 else ''}; trainable parameters and the optimizer state must be "
                         f"fp32 (load the model with dtype=torch.float32; mixed precision comes from autocast)")
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


def steps_per_epoch(loader, cfg: TrainConfig) -> int:
    return max(1, math.ceil(len(loader) / cfg.grad_accum))


def train_steps(model: nn.Module, loader, *, kind: str, cfg: TrainConfig | None = None, max_steps: int,
                accelerator=None, progress: bool = False, on_loss=None) -> StepStats:
    """Run exactly `max_steps` optimizer steps (cycling the loader), the same step code as `fit`.

    For benchmarks: prepare nothing beforehand; returns counts and wall-clock seconds of the loop. `on_loss`
    gets every micro-batch's loss (learning-rate curves, bench/perf/lrcurve.py).
    """
    cfg = cfg if cfg is not None else TrainConfig()
    accelerator = accelerator or make_accelerator(cfg)
    keep_frozen_in(model, str(accelerator.mixed_precision))
    optimizer = make_optimizer(model, cfg)
    model, optimizer, loader = prepare(accelerator, model, optimizer, loader)
    scheduler = make_scheduler(optimizer, cfg, max_steps)
    stats = StepStats()
    bar = tqdm(total=max_steps, desc="steps", disable=not progress, leave=False)
    while stats.steps < max_steps:
        before = stats.micro_batches
        _train_pass(model, loader, optimizer, scheduler, accelerator, cfg, kind, stats,
                    max_steps=max_steps, bar=bar, on_loss=on_loss)
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
    model, optimizer, loader = prepare(accelerator, model, optimizer, loader)
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
        for name in ("steps", "micro_batches", "examples", "tokens", "seconds", "loss_sum", "finite", "skipped_steps"):
            setattr(result.train, name, getattr(result.train, name) + getattr(stats, name))
        result.train.loss_scale = stats.loss_scale
        entry = {"epoch": epoch, "train_loss": stats.loss, "lr": scheduler.get_last_lr()[0],
                 "train_seconds": stats.seconds, "steps": stats.steps, "train_examples": stats.examples}
        if stats.loss_scale is not None:      # fp16: the scale after the epoch and the steps it skipped
            entry.update(loss_scale=stats.loss_scale, skipped_steps=stats.skipped_steps)
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
