"""The CPU fast path on and off, in fp32 and bf16, against Trainer + peft: one benchmark, ABBA order.

    python -m bench.perf.fastpath_ab --data-dir ../shared/data --methods lora,full --steps 10 \
        --out reports/perf/fastpath-ab.json

Every variant of a method (suite with `train.cpu_fast_path` on, suite with it off, and `Trainer` + `peft` for the
methods peft has, each in fp32 and bf16) trains the same model on the same batches for `--steps` timed steps,
in one process, in the order A..Z then Z..A; each variant keeps its faster run. Prints the bf16/fp32 ratios per
engine and the suite / Trainer ratio in bf16, wall clock and CPU time, and writes every run to `--out`.
"""
from __future__ import annotations

import argparse
import sys

from bench.perf.measure import add_training_options

PAIRED = ("full", "lora", "prompt")     # what Trainer + peft can run (bench.perf.cases.CLASSIFY_PAIRED)


def variants(method: str) -> list[tuple[str, bool, str]]:
    out = [("suite", True, "bf16"), ("suite", True, "no"), ("suite", False, "bf16"), ("suite", False, "no")]
    if method in PAIRED:
        out += [("baseline", False, "bf16"), ("baseline", False, "no")]
    return out


def key(engine: str, fast: bool, precision: str) -> str:
    return f"{engine}{'+fast' if fast else ''}/{'fp32' if precision == 'no' else precision}"


def ratios(best: dict[str, dict]) -> dict[str, float]:
    out = {}
    for engine in ("suite+fast", "suite", "baseline"):
        if f"{engine}/bf16" in best:
            for unit in ("examples_per_s", "examples_per_cpu_s"):
                out[f"{engine} bf16/fp32 {unit}"] = best[f"{engine}/bf16"][unit] / best[f"{engine}/fp32"][unit]
    for precision in ("bf16", "fp32"):
        if f"baseline/{precision}" in best:
            for unit in ("examples_per_s", "examples_per_cpu_s"):
                out[f"suite+fast/baseline {precision} {unit}"] = (best[f"suite+fast/{precision}"][unit]
                                                                  / best[f"baseline/{precision}"][unit])
    for precision in ("bf16", "fp32"):
        for unit in ("examples_per_s", "examples_per_cpu_s"):
            fast, torch_kernels = best[f"suite+fast/{precision}"][unit], best[f"suite/{precision}"][unit]
            out[f"fast/torch {precision} {unit}"] = fast / torch_kernels
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.fastpath_ab", description=__doc__.split("\n\n")[0])
    add_training_options(parser, methods="lora,full")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="leave glibc's malloc thresholds as they are (otherwise every run of the process keeps "
                             "freed memory, as the fast path does: bench.allocator)")
    args = parser.parse_args(argv)

    import torch

    from bench import allocator
    from bench.perf.measure import command_line, machine, write_report

    # the variants share a process: all of them run under one allocator setting (the fast path's, by default)
    if args.malloc_defaults:
        allocator.keep_defaults()
    else:
        allocator.retain_freed_memory()
    from bench.perf.train import TrainCase, run_train_case

    torch.set_num_threads(args.threads)
    report = {"kind": "fastpath-ab", "command": command_line("bench.perf.fastpath_ab", argv),
              "machine": machine("cpu", args.threads), "allocator": allocator.state(), "methods": {}}
    for method in args.methods.split(","):
        order = variants(method)
        runs: dict[str, list[dict]] = {}
        for sequence in (order, order[::-1]):
            for engine, fast, precision in sequence:
                case = TrainCase(engine=engine, method=method, padding="dynamic", model=args.model, task=args.task,
                                 data_dir=args.data_dir, batch_size=args.batch_size, steps=args.steps,
                                 warmup=args.warmup, examples=args.examples, precision=precision, fast_path=fast)
                record = run_train_case(case)
                record.pop("case", None)
                runs.setdefault(key(engine, fast, precision), []).append(record)
                print(f"{method:8} {key(engine, fast, precision):20} {record['examples_per_s']:8.1f} ex/s "
                      f"{record['examples_per_cpu_s']:8.1f} ex/CPU-s", file=sys.stderr, flush=True)
        best = {k: max(v, key=lambda r: r["examples_per_s"]) for k, v in runs.items()}
        report["methods"][method] = {"runs": runs, "ratios": ratios(best)}
        for name, value in report["methods"][method]["ratios"].items():
            print(f"{method:8} {name:45} {value:.2f}x")
    if args.out is not None:
        write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
