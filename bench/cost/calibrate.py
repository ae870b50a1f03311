"""`plan --calibrate`: time a few training steps of each distinct shape (model, method, batch, length bucket) on
this device with random weights (the registry's architecture, no download), and cache the FLOP/s reached.

The FLOPs of a timed step are the planner's own closed form (bench.cost.flops) for the shape, so a calibrated
rate turns the planner's FLOP count back into the measured seconds for that shape.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from bench.cost.device import cpu_key, read_cache, write_cache
from bench.cost.flops import method_cost, shape_of, train_flops_per_token

WARMUP = 2          # untimed steps (allocation, first-call costs)
TIMED = 5           # timed optimizer steps per shape


def time_shape(model: str, kind: str, num_labels: int, method: str, config: dict, batch: int, length: int,
               mixed_precision: str = "auto") -> float:
    """Achieved FLOP/s of training steps of this shape (random weights, random tokens of `length`)."""
    import torch

    from bench.method_config import build
    from bench.models import apply_method, model_config
    from bench.spec import TrainConfig
    from bench.train import _train_pass, make_accelerator, make_optimizer, make_scheduler, StepStats
    import transformers

    config_hf = model_config(model, num_labels=num_labels, kind=kind)
    auto = transformers.AutoModelForCausalLM if kind == "generate" else transformers.AutoModelForSequenceClassification
    torch.manual_seed(0)
    net = auto.from_config(config_hf)
    apply_method(net, build(method, config))
    cfg = TrainConfig(batch_size=batch, mixed_precision=mixed_precision)
    vocab = config_hf.vocab_size
    ids = torch.randint(5, vocab - 1, (batch, length))
    labels = ids.clone() if kind == "generate" else (
        torch.rand(batch) if kind == "regress" else torch.randint(0, num_labels, (batch,)))
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}] * (WARMUP + TIMED)
    accelerator = make_accelerator(cfg)
    optimizer = make_optimizer(net, cfg)
    net, optimizer = accelerator.prepare(net, optimizer)
    batches = [{k: v.to(accelerator.device) for k, v in b.items()} for b in batches]
    scheduler = make_scheduler(optimizer, cfg, WARMUP + TIMED)
    _train_pass(net, batches[:WARMUP], optimizer, scheduler, accelerator, cfg, kind, StepStats(), max_steps=None,
                bar=None)
    stats = StepStats()
    _train_pass(net, batches[WARMUP:], optimizer, scheduler, accelerator, cfg, kind, stats, max_steps=None, bar=None)
    s = shape_of(model)
    m = method_cost(method, config, s)
    flops = TIMED * batch * (length + m.extra_tokens) * train_flops_per_token(s, m, length, lm_head=kind == "generate")
    return flops / stats.seconds


def calibrate(specs, device_name: str, *, progress=None) -> dict:
    """Time every distinct shape of `specs`; returns and caches {shape key: {"flops_per_s", "when"}}."""
    from bench.cost.device import cpu_peak, device, precision
    from bench.cost.estimate import calibration_key
    from bench.cost.lengths import lengths_of, tokenizer_kind
    from bench.tasks import get_task

    cache = read_cache()
    key = cpu_key() if device_name == "cpu" else device_name
    if device_name == "cpu":            # measured again now, the best figure kept
        cpu_peak(cache, key, remeasure=True)
    dev = device(device_name)
    table = cache.setdefault("shapes", {}).setdefault(key, {})
    shapes = {}
    for spec in specs:
        kind = tokenizer_kind(spec.model)
        train = lengths_of(spec.task, "train", kind)
        if train is None:
            continue
        shapes.setdefault(calibration_key(spec, kind, train, precision(spec.train.mixed_precision, dev)), spec)
    for i, (shape, spec) in enumerate(shapes.items()):
        task = get_task(spec.task)
        length = int(shape.split("|")[3])
        if progress:
            progress(i, len(shapes), shape)
        start = time.perf_counter()
        rate = time_shape(spec.model, task.kind, max(task.num_labels, 2), spec.method, spec.method_config,
                          spec.train.batch_size, length, spec.train.mixed_precision)
        table[shape] = {"flops_per_s": rate, "seconds": round(time.perf_counter() - start, 2),
                        "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_cache(cache)
    return table


def cached_shapes(device_name: str) -> dict:
    key = cpu_key() if device_name == "cpu" else device_name
    return read_cache().get("shapes", {}).get(key, {})
