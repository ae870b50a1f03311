"""bf16 against fp32 and the CPU fast path on and off, interleaved step by step in one process.

    OMP_NUM_THREADS=1 python -m bench.perf.interleave --data-dir ../shared/data --rounds 16 \
        --out reports/perf/interleave.json

On a machine whose speed drifts (a shared or throttled CPU), two runs of the same case minutes apart can differ by
more than the effect measured. Here the four variants of a method (bf16 or fp32 autocast, with `bench.fastpath`
or torch's kernels) are trained side by side in one process, as four copies of the same model with their own
optimizers: every round trains each copy one optimizer step on the same batch, the variants' order rotating from
round to round, so a slow spell of the machine falls on all four. The step is the suite's (`bench.train`):
autocast around the forward pass, the task's loss, backward, clipping, fused AdamW; the bf16 copy keeps its
frozen base in bf16 (`keep_frozen_in`); a fast-path copy enters `cpu_fast_training` once, as a training pass does.

The rounds' batches are trained 1 + `repeats` times over. The first pass meets every batch shape for the first
time: oneDNN generates its bf16 matmul kernels per shape (a millisecond or more for each of a step's ~20 shapes
here), a cost a training run pays once per distinct padded length and then finds in its cache. The later passes
are the steady state of a run. A shared machine's speed changes from one second to the next (on the cloud Xeon
this suite is developed on, a bf16 matmul's speed moves far more than an fp32 one's: `python -m bench.perf.ops
--drift 200`), so a batch's time for a variant is its fastest pass: the speed of the machine to itself. The
ratios are of those summed over the batches (thread CPU time, and wall clock), with the spread of the per-batch
ratios; the ratios of the mean pass times and of the first pass are recorded beside them, and so is every step's
time.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

from bench.perf.measure import add_training_options

VARIANTS = (("bf16", True), ("fp32", True), ("bf16", False), ("fp32", False))


def name(precision: str, fast: bool) -> str:
    return f"{precision}{'+fast' if fast else ''}"


def _copies(method: str, model_name: str, task, data_dir, batch_size: int, examples: int, rounds: int, seed: int,
            variants=VARIANTS):
    import torch

    from bench.models import apply_method, load_model, make_method
    from bench.perf.train import TrainCase, _encoded, suite_loader
    from bench.precision import keep_frozen_in
    from bench.spec import TrainConfig
    from bench.train import make_optimizer

    case = TrainCase(engine="suite", method=method, padding="dynamic", model=model_name, task=task.name,
                     data_dir=data_dir, batch_size=batch_size, steps=rounds, warmup=0, examples=examples, seed=seed)
    copies = {}
    tokenizer = encoded = None
    for precision, fast in variants:
        torch.manual_seed(seed)
        model, tokenizer = load_model(model_name, kind=task.kind, num_labels=max(task.num_labels, 2))
        apply_method(model, make_method(method, []))
        if precision == "bf16":
            keep_frozen_in(model, "bf16")
        optimizer = make_optimizer(model, TrainConfig(lr=1e-4, weight_decay=0.0))
        copies[name(precision, fast)] = (model, optimizer, precision, fast)
        if encoded is None:
            encoded = _encoded(case, task, tokenizer)
    batches = list(suite_loader(case, encoded, tokenizer))
    return copies, batches


def _step(model, optimizer, batch, kind: str, precision: str) -> None:
    """One optimizer step of the suite's loop (the fast path, when used, is entered around all rounds, once per
    copy, as `bench.train` enters it once per pass over the data)."""
    import torch

    from bench.train import compute_loss, model_inputs

    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(**model_inputs(batch))
        logits = out.logits if hasattr(out, "logits") else out[0]
        loss = compute_loss(kind, logits, batch["labels"], 0.0, "token_mean")
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(method: str, *, model_name: str, task_name: str, data_dir, batch_size: int, examples: int,
            rounds: int, repeats: int = 5, seed: int = 0) -> dict:
    from bench.fastpath import cpu_fast_training
    from bench.tasks import get_task

    task = get_task(task_name)
    copies, batches = _copies(method, model_name, task, data_dir, batch_size, examples, rounds, seed)
    if len(batches) < rounds:
        raise ValueError(f"{len(batches)} batches for {rounds} rounds: raise --examples")
    keys = list(copies)
    # pass 0 meets every batch shape for the first time; passes 1..repeats are the steady state
    cpu = [{k: [] for k in keys} for _ in range(repeats + 1)]
    wall = [{k: [] for k in keys} for _ in range(repeats + 1)]
    with contextlib.ExitStack() as paths:
        for model, _, _, fast in copies.values():
            if fast:
                paths.enter_context(cpu_fast_training(model))
        for p in range(repeats + 1):
            for r in range(rounds):
                turn = (r + p) % len(keys)
                for k in keys[turn:] + keys[:turn]:
                    model, optimizer, precision, _ = copies[k]
                    t0, c0 = time.perf_counter(), time.thread_time()
                    _step(model, optimizer, batches[r], task.kind, precision)
                    c1, t1 = time.thread_time(), time.perf_counter()
                    cpu[p][k].append(c1 - c0)
                    wall[p][k].append(t1 - t0)
    examples_timed = sum(int(b["input_ids"].shape[0]) for b in batches[:rounds])

    def per_batch(times: list[dict], pick) -> dict[str, list[float]]:
        return {k: [pick(t[k][r] for t in times[1:]) for r in range(rounds)] for k in keys}

    best = per_batch(cpu, min)
    mean = per_batch(cpu, statistics.fmean)
    best_wall = per_batch(wall, min)

    def ratio(a: str, b: str, times: dict) -> dict:
        per_round = [x / y for x, y in zip(times[b], times[a])]       # > 1: a is faster
        q = statistics.quantiles(per_round, n=4) if len(per_round) >= 2 else [per_round[0]] * 3
        return {"total": sum(times[b]) / sum(times[a]), "round_median": statistics.median(per_round),
                "round_q1": q[0], "round_q3": q[2]}

    pairs = {"bf16/fp32 (fast path)": ("bf16+fast", "fp32+fast"), "bf16/fp32 (torch kernels)": ("bf16", "fp32"),
             "fast/torch (bf16)": ("bf16+fast", "bf16"), "fast/torch (fp32)": ("fp32+fast", "fp32"),
             "bf16+fast / fp32 torch": ("bf16+fast", "fp32")}
    return {
        "method": method, "model": model_name, "task": task_name, "batch_size": batch_size, "rounds": rounds,
        "repeats": repeats, "timed_examples": examples_timed,
        "examples_per_cpu_s": {k: examples_timed / sum(v) for k, v in best.items()},
        "examples_per_s": {k: examples_timed / sum(v) for k, v in best_wall.items()},
        "speedup_cpu": {label: ratio(a, b, best) for label, (a, b) in pairs.items()},
        "speedup_wall": {label: ratio(a, b, best_wall) for label, (a, b) in pairs.items()},
        "speedup_cpu_mean": {label: ratio(a, b, mean) for label, (a, b) in pairs.items()},
        "speedup_cpu_first_pass": {label: ratio(a, b, cpu[0]) for label, (a, b) in pairs.items()},
        "step_cpu_seconds": {k: [[t[k][r] for t in cpu[1:]] for r in range(rounds)] for k in keys},
        "first_pass_step_cpu_seconds": cpu[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.interleave", description=__doc__.split("\n\n")[0])
    add_training_options(parser, methods="full,lora,bitfit,adapter,prefix,prompt,topk")
    parser.add_argument("--rounds", type=int, default=16,
                        help="batches; every variant trains one step on each, 1 + --repeats times over")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed passes over the batches after the first (a batch's time: its fastest pass)")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave glibc's malloc thresholds as they are (the fast path otherwise keeps freed "
                             "memory in the process: bench.allocator)")
    args = parser.parse_args(argv)

    import torch

    from bench import allocator
    from bench.perf.measure import command_line, finish_report, machine

    if args.malloc_defaults:
        allocator.keep_defaults()
    torch.set_num_threads(args.threads)
    report = {"kind": "interleave", "command": command_line("bench.perf.interleave", argv),
              "machine": machine("cpu", args.threads), "methods": []}
    start = time.perf_counter()
    for method in args.methods.split(","):
        rec = measure(method, model_name=args.model, task_name=args.task, data_dir=args.data_dir,
                      batch_size=args.batch_size, examples=args.examples, rounds=args.rounds, repeats=args.repeats)
        report["methods"].append(rec)
        for label, r in rec["speedup_cpu"].items():
            wall = rec["speedup_wall"][label]["total"]
            print(f"{method:8} {label:28} {r['total']:.2f}x CPU time (per round: median {r['round_median']:.2f}, "
                  f"quartiles {r['round_q1']:.2f}-{r['round_q3']:.2f}); wall {wall:.2f}x", flush=True)
    report["allocator"] = allocator.state()
    finish_report(report, start, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
