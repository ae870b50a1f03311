"""What a run costs before it starts: optimizer steps, training tokens, evaluation passes, peak memory, seconds.

seconds = run overhead
        + per epoch: micro-batches x blocks x step overhead + training FLOPs / (peak x efficiency)
                     + optimizer steps x trained parameters x per-parameter update time
        + per evaluation pass: batches x step overhead + forward FLOPs / (peak x efficiency)
          (generation: the prompt's forward pass, then beams x generated tokens of one-token steps over the
          cached keys; one step per generated token and batch pays the step overhead)
FLOPs are closed-form (bench.cost.flops) over the token-length distribution of the task (bench.cost.lengths),
truncated at the run's max_length. A calibrated shape (`plan --calibrate`) replaces peak x efficiency by the
FLOP/s measured for that (model, method, batch, length bucket). No torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.cost.device import Device, precision
from bench.cost.flops import (MethodCost, Shape, forward_flops_per_token, method_cost, shape_of, train_flops_per_token,
                              train_memory_bytes)
from bench.cost.lengths import Lengths, lengths_of, tokenizer_kind

ACT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class RunCost:
    run_id: str
    steps: int = 0                  # optimizer steps
    train_tokens: float = 0.0       # tokens through the model in training (soft prompt tokens included)
    eval_passes: int = 0            # evaluations of a split (each epoch's dev pass and the final ones)
    eval_examples: int = 0
    generated_tokens: float = 0.0   # beams x new tokens of generation passes
    peak_mem_gb: float = 0.0
    seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    precision: str = "fp32"
    notes: list[str] = field(default_factory=list)


def _lengths(task: str, split: str, kind: str, notes: list[str]) -> Lengths:
    found = lengths_of(task, split, kind)
    if found is None:
        for other in ("bpe", "wordpiece", "bytes"):
            found = lengths_of(task, split, other)
            if found is not None:
                notes.append(f"{task} {split}: no {kind} lengths, priced with {other}")
                break
    if found is None:
        raise KeyError(f"no length statistics for task {task} split {split}")
    return found


def run_cost(spec, dev: Device, calibration: dict | None = None, measured: dict | None = None) -> RunCost:
    """The cost of one resolved spec on `dev`. `measured`: {(task, split, kind): Lengths} from real data."""
    from bench.tasks import get_task

    task = get_task(spec.task)
    cfg = spec.train
    kind = tokenizer_kind(spec.model)
    out = RunCost(spec.run_id, precision=precision(cfg.mixed_precision, dev))
    s: Shape = shape_of(spec.model)
    m: MethodCost = method_cost(spec.method, spec.method_config, s)
    lm = task.kind == "generate"
    measured = measured or {}
    train = _training_lengths(spec, kind, measured, out.notes)
    peak = dev.peak.get(out.precision) or dev.peak.get("fp32")
    rate = peak * dev.efficiency_by.get(out.precision, dev.efficiency)
    overhead, update = dev.step_overhead_s * s.layers, dev.param_update_s
    shape_key = calibration_key(spec, kind, train, out.precision)
    if calibration and shape_key in calibration:     # measured steps include the fixed costs
        rate, overhead, update = calibration[shape_key]["flops_per_s"], 0.0, 0.0
        out.notes.append("calibrated")
    n = min(cfg.max_train_examples, train.n) if cfg.max_train_examples and cfg.train_split == "train" else train.n
    micro = math.ceil(n / cfg.batch_size)
    out.steps = math.ceil(micro / cfg.grad_accum) * cfg.epochs
    seq = train.mean(cfg.max_length)
    out.train_tokens = n * (seq + m.extra_tokens) * cfg.epochs
    flops = out.train_tokens * _train_flops(s, m, train, cfg.max_length, lm)
    out.train_seconds = micro * cfg.epochs * overhead + flops / rate + out.steps * m.trained * update
    out.peak_mem_gb = train_memory_bytes(s, m, batch=cfg.batch_size, seq=int(train.max(cfg.max_length)),
                                         act_bytes=ACT_BYTES[out.precision], lm_head=lm,
                                         checkpointing=cfg.grad_checkpointing) / 2**30
    from bench.runner import eval_splits_of as eval_splits
    from bench.runner import selection_split

    splits = eval_splits(spec, task)
    select = selection_split(spec, task)
    passes = [(select, cfg.epochs if cfg.eval_every_epoch else 1)] if select else []
    passes += [(sp, 1) for sp in splits if sp != select]
    for split, times in passes:
        lengths = measured.get((spec.task, split, kind)) or _lengths(spec.task, split, kind, out.notes)
        count = min(cfg.max_eval_examples, lengths.n) if cfg.max_eval_examples else lengths.n
        out.eval_passes += times
        out.eval_examples += times * count
        out.eval_seconds += times * _eval_seconds(spec, task, s, m, lengths, count, rate, dev, out)
    out.seconds = dev.run_overhead_s + out.train_seconds + out.eval_seconds
    return out


def _training_lengths(spec, kind: str, measured: dict, notes: list[str]) -> Lengths:
    """The training sequences: the train split's statistics, or those of the split the run trains on
    (`train.train_split`: its source-reference pairs where measured, else the train split's, with a note)."""
    split = spec.train.train_split
    found = measured.get((spec.task, split, kind))
    if split == "train":
        return found or _lengths(spec.task, "train", kind, notes)
    inputs = found or _lengths(spec.task, split, kind, notes)
    as_train = inputs.as_training()
    if as_train is not None:
        per_input = as_train.n / inputs.n
        if spec.train.max_train_examples:   # the subsample draws inputs, each with all its references
            n = min(spec.train.max_train_examples, inputs.n)
            return Lengths(n=round(n * per_input), q=as_train.q, source=as_train.source)
        return as_train
    notes.append(f"{spec.task} {split}: no pair statistics, trained-on split priced as the train split")
    return _lengths(spec.task, "train", kind, notes)


def _train_flops(s: Shape, m: MethodCost, train: Lengths, cap: int, lm: bool) -> float:
    """Mean FLOPs per training token; attention grows with the length, so weight by E[L^2] / E[L]."""
    mean = train.mean(cap)
    keys = train.mean_square(cap) / mean if mean else 0.0
    return train_flops_per_token(s, m, keys, lm_head=lm)


def _eval_seconds(spec, task, s, m, lengths: Lengths, count: int, rate: float, dev: Device, out: RunCost) -> float:
    cfg = spec.train
    if task.kind != "generate":
        mean = lengths.mean(cfg.max_length)
        keys = lengths.mean_square(cfg.max_length) / mean + m.extra_tokens
        flops = count * (mean + m.extra_tokens) * forward_flops_per_token(s, m, keys, lm_head=False)
        return math.ceil(count / cfg.eval_batch_size) * dev.step_overhead_s * s.layers / 3 + flops / rate
    from bench.runner import decoding_of as decoding

    dec = decoding(spec, task)
    beams = max(1, dec.num_beams)
    new = min(dec.max_new_tokens, max(dec.min_new_tokens, lengths.target and _target(lengths) or 1))
    prompt = lengths.mean()
    out.generated_tokens += count * beams * new
    prefill = count * prompt * forward_flops_per_token(s, m, prompt, lm_head=False)
    step = forward_flops_per_token(s, m, prompt + new / 2, lm_head=True)
    batches = math.ceil(count / max(1, dec.batch_size))
    # the longest output of a batch sets its number of steps: the 90th percentile of the references
    steps = batches * min(dec.max_new_tokens, lengths.target[int(0.9 * (len(lengths.target) - 1))]
                          if lengths.target else new)
    return (prefill + count * beams * new * step) / rate + steps * dev.step_overhead_s * s.layers / 2


def _target(lengths: Lengths) -> float:
    t = lengths.target
    return sum((a + b) / 2 for a, b in zip(t, t[1:])) / (len(t) - 1)


def calibration_key(spec, kind: str, train: Lengths, precision_: str) -> str:
    """(model, method, batch, length bucket, precision): the shape `--calibrate` times."""
    bucket = 2 ** max(4, math.ceil(math.log2(max(1.0, train.mean(spec.train.max_length)))))
    return f"{spec.model}|{spec.method}|{spec.train.batch_size}|{bucket}|{precision_}"


# -- a grid ---------------------------------------------------------------------------------------------------
@dataclass
class RowCost:
    model: str
    label: str
    task: str
    runs: int = 0
    steps: int = 0
    train_tokens: float = 0.0
    eval_passes: int = 0
    generated_tokens: float = 0.0
    peak_mem_gb: float = 0.0
    seconds: float = 0.0


def grid_cost(specs, dev: Device, calibration: dict | None = None, measured: dict | None = None):
    """(per-run costs by run_id, per-row totals in the grid's order, the grid's total)."""
    runs, rows = {}, {}
    total = RowCost("", "total", "")
    for spec in specs:
        c = run_cost(spec, dev, calibration, measured)
        runs[spec.run_id] = c
        key = (spec.model, spec.display, spec.task)
        row = rows.setdefault(key, RowCost(*key))
        for r in (row, total):
            r.runs += 1
            r.steps += c.steps
            r.train_tokens += c.train_tokens
            r.eval_passes += c.eval_passes
            r.generated_tokens += c.generated_tokens
            r.peak_mem_gb = max(r.peak_mem_gb, c.peak_mem_gb)
            r.seconds += c.seconds
    return runs, list(rows.values()), total


def hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
