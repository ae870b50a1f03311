"""Learning-rate check: a preset row's training-loss curve over its first optimizer steps at several peak rates.

The row (chosen by its label or method in the preset) is built as the grid builds it (model, method, seeded
subsample, loader with the run's seed and shuffle), then trained for `--steps` optimizer steps with the run's
recipe except the schedule's length: warmup and linear decay span those steps. Every rate sees the same batches
in the same order, so the curves differ by the rate alone. Each micro-batch's loss is recorded before its update;
the record gives the first batch's loss and the mean over the first and last `--window` steps.

    OMP_NUM_THREADS=1 python -m bench.perf.lrcurve --preset smollm2-nlg --row lora --lrs 1e-3,2e-3,5e-3 \
        --steps 30 --data-dir ../shared/data --out reports/perf/lrcurve-smollm2-lora.json

Training losses only: nothing is decoded or scored. Steps beyond one epoch see batches again (the record says
how many steps an epoch has).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path


def pick_row(specs, row: str):
    """The seed-0 (else lowest-seed) spec whose label or method is `row`; ValueError naming the choices."""
    hits = [s for s in specs if row in (s.label, s.method)]
    if not hits:
        labels = sorted({f"{s.method} ({s.label})" for s in specs})
        raise ValueError(f"no row {row!r}; the preset has: {', '.join(labels)}")
    if len({(s.label, s.method, s.task, s.model) for s in hits}) > 1:
        raise ValueError(f"{row!r} matches several rows: {sorted({s.label for s in hits})}; give the label")
    return min(hits, key=lambda s: s.seed)


def window_means(losses: list[float], window: int) -> tuple[float, float]:
    if len(losses) < window:
        raise ValueError(f"{len(losses)} steps recorded, fewer than the window of {window}")
    return sum(losses[:window]) / window, sum(losses[-window:]) / window


def curve(spec, lr: float, steps: int, *, data_dir=None, model_dir=None) -> dict:
    """Train `spec` at peak rate `lr` for `steps` optimizer steps; its per-step losses and seconds."""
    from accelerate.utils import set_seed

    from bench.models import apply_method, load_model
    from bench.runner import fitted_max_length, load_data, train_loader
    from bench.spec import method_object
    from bench.tasks import get_task
    from bench.train import set_dropout, train_steps

    cfg = dataclasses.replace(spec.train, lr=lr)
    task = get_task(spec.task)
    data = load_data(spec, task, data_dir)
    set_seed(spec.seed)
    model, tokenizer = load_model(spec.model, kind=task.kind, num_labels=max(task.num_labels, 1), model_dir=model_dir)
    apply_method(model, method_object(spec))
    if cfg.dropout is not None:                  # as the runner applies it
        set_dropout(model, cfg.dropout)
    loader = train_loader(spec, task, tokenizer, data["train"], fitted_max_length(model, cfg.max_length))
    per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    losses: list[float] = []
    start = time.perf_counter()
    train_steps(model, loader, kind=task.kind, cfg=cfg, max_steps=steps, on_loss=lambda x: losses.append(float(x)))
    seconds = time.perf_counter() - start
    if cfg.grad_accum > 1:   # one loss per optimizer step: the mean of its micro-batches
        losses = [sum(losses[i:i + cfg.grad_accum]) / cfg.grad_accum for i in range(0, len(losses), cfg.grad_accum)]
    return {"lr": lr, "losses": [round(x, 5) for x in losses], "seconds": round(seconds, 1),
            "steps_per_epoch": per_epoch}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf.lrcurve", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--row", required=True, help="the row's label or method name in the preset")
    ap.add_argument("--task", default=None, help="the task, where the preset has several")
    ap.add_argument("--lrs", required=True, help="comma-separated peak learning rates")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--data-dir", default=None, help="release files (default: the preset's own, else the Hub)")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--out", default=None, help="write the record (JSON) here")
    args = ap.parse_args(argv)

    from bench.grid import plan
    from bench.presets import get_preset
    from bench.perf.measure import cpu_model, load_average

    try:
        lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
        if not lrs or any(not (0 < x < float("inf")) for x in lrs):
            raise ValueError(f"--lrs {args.lrs!r}: expected positive learning rates")
        if args.steps < args.window or args.window < 1:
            raise ValueError(f"--steps {args.steps} and --window {args.window}: need steps >= window >= 1")
        specs = plan(args.preset, tasks=[args.task] if args.task else ())
        spec = pick_row(specs, args.row)
        if spec.init_from:
            raise ValueError(f"{args.row!r} starts from another run's trained state ({spec.init_from}); "
                             f"this tool trains rows that start from the pretrained model")
        preset = get_preset(args.preset)
        data_dir = args.data_dir or (None if preset.default_data_dir is None else str(preset.default_data_dir))
    except ValueError as err:
        print(f"lrcurve: {err}", file=sys.stderr)
        return 2
    record = {"preset": args.preset, "label": spec.label, "method": spec.method, "model": spec.model,
              "task": spec.task, "seed": spec.seed, "method_config": spec.method_config, "steps": args.steps,
              "window": args.window, "batch_size": spec.train.batch_size, "warmup_ratio": spec.train.warmup_ratio,
              "precision": spec.train.mixed_precision, "threads": os.environ.get("OMP_NUM_THREADS", ""),
              "machine": cpu_model(), "load_average": load_average(), "curves": []}
    for lr in lrs:
        got = curve(spec, lr, args.steps, data_dir=data_dir, model_dir=args.model_dir)
        first, last = window_means(got["losses"], args.window)
        got.update(first_loss=got["losses"][0], first_window=round(first, 4), last_window=round(last, 4))
        record["curves"].append(got)
        print(f"{spec.label} lr {lr:g}: first batch {got['first_loss']:.3f}, steps 1-{args.window} {first:.3f}, "
              f"steps {args.steps - args.window + 1}-{args.steps} {last:.3f} ({got['seconds']:.0f} s)", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
