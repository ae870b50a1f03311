"""What keeping freed memory in the process (`bench.allocator`) changes in a CPU training step: fresh processes
with glibc's defaults and with the fast path's setting, in ABBA order.

    OMP_NUM_THREADS=1 python -m bench.perf.allocator_ab --data-dir ../shared/data --methods lora,prefix \
        --out reports/perf/allocator-ab.json

The setting is process-wide and cannot be undone, so each variant is its own process: a method's bf16 and fp32
copies (`bench.perf.interleave`'s, fast path on) are trained one precision after the other on `--steps` batches,
`--warmup` untimed passes over them (every padded length seen, the heap grown), then one timed pass: the steady
state of a training run. Per step: minor page faults, system and user CPU time (`getrusage`) and thread CPU
time. The page faults and the system time are what the setting removes; the step times carry this machine's drift
(docs/perf.md), so they are read over the ABBA runs.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from bench.perf.measure import add_training_options

SETTINGS = ("retained", "glibc defaults")


def child(method: str, setting: str, *, data_dir, warmup: int, steps: int, batch_size: int, examples: int,
          model_name: str, task_name: str) -> dict:
    from bench import allocator
    from bench.fastpath import cpu_fast_training
    from bench.perf.interleave import _copies, _step
    from bench.tasks import get_task

    if setting == "retained":
        allocator.retain_freed_memory()
    else:
        allocator.keep_defaults()
    task = get_task(task_name)
    copies, batches = _copies(method, model_name, task, data_dir, batch_size, examples, steps, 0,
                              variants=(("bf16", True), ("fp32", True)))
    if len(batches) < steps:
        raise ValueError(f"{len(batches)} batches for {steps} steps: raise --examples")
    batches = batches[:steps]
    out = {"allocator": allocator.state(), "by_precision": {}}
    for precision in ("bf16", "fp32"):
        model, optimizer, _, _ = copies[f"{precision}+fast"]
        with cpu_fast_training(model):
            for b in batches * warmup:
                _step(model, optimizer, b, task.kind, precision)
            r0, c0 = resource.getrusage(resource.RUSAGE_SELF), time.thread_time()
            for b in batches:
                _step(model, optimizer, b, task.kind, precision)
            c1, r1 = time.thread_time(), resource.getrusage(resource.RUSAGE_SELF)
        out["by_precision"][precision] = {
            "ms_per_step": 1e3 * (c1 - c0) / steps,
            "page_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps,
            "system_ms_per_step": 1e3 * (r1.ru_stime - r0.ru_stime) / steps,
            "user_ms_per_step": 1e3 * (r1.ru_utime - r0.ru_utime) / steps}
        del copies[f"{precision}+fast"]
    return out


def _run_child(args, method: str, setting: str) -> dict:
    cmd = [sys.executable, "-m", "bench.perf.allocator_ab", "--child", setting, "--methods", method,
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--examples", str(args.examples), "--model", args.model, "--task", args.task,
           "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", str(args.data_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.allocator_ab", description=__doc__.split("\n\n")[0])
    add_training_options(parser, methods="lora,prefix")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed passes over the batches (the heap reaches its steady size in two)")
    parser.add_argument("--steps", type=int, default=20, help="batches, one timed step each per precision")
    parser.add_argument("--child", choices=SETTINGS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child is not None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        rec = child(args.methods, args.child, data_dir=args.data_dir, warmup=args.warmup, steps=args.steps,
                    batch_size=args.batch_size, examples=args.examples, model_name=args.model, task_name=args.task)
        print(json.dumps(rec))
        return 0

    from bench.perf.measure import command_line, finish_report, machine

    report = {"kind": "allocator-ab", "command": command_line("bench.perf.allocator_ab", argv),
              "machine": machine("cpu", args.threads), "warmup": args.warmup, "steps": args.steps,
              "batch_size": args.batch_size, "methods": {}}
    start = time.perf_counter()
    order = list(SETTINGS) + list(SETTINGS)[::-1]
    for method in args.methods.split(","):
        runs = []
        for setting in order:
            rec = _run_child(args, method, setting)
            rec["setting"] = setting
            runs.append(rec)
            line = "  ".join(f"{p} {v['ms_per_step']:6.1f} ms/step {v['page_faults_per_step']:7.0f} faults "
                             f"{v['system_ms_per_step']:5.1f} ms sys" for p, v in rec["by_precision"].items())
            print(f"{method:8} {setting:15} {line}", flush=True)
        summary = {}
        for setting in SETTINGS:
            mine = [r["by_precision"] for r in runs if r["setting"] == setting]
            summary[setting] = {p: {k: statistics.fmean(m[p][k] for m in mine) for k in mine[0][p]}
                                for p in mine[0]}
        report["methods"][method] = {"runs": runs, "mean_of_runs": summary}
    finish_report(report, start, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
