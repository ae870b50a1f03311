"""`peft-bench perf`: training and decoding speed and memory of the suite against Trainer + peft, side by side."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.config import ConfigError


def register(parser) -> None:
    parser.add_argument("--model", default="minilm-l6", help="classification model (default: minilm-l6)")
    parser.add_argument("--task", default="sst2", help="classification task (default: sst2)")
    parser.add_argument("--gen-model", default="tiny-gpt2", help="GPT-2 model for generation (default: tiny-gpt2)")
    parser.add_argument("--gen-task", default="e2e", help="generation task (default: e2e)")
    parser.add_argument("--gen-split", default="dev", help="split of the generation task to train on and decode")
    parser.add_argument("--data-dir", default=os.environ.get("PEFT_BENCH_DATA_DIR"),
                        help="local release files (default: $PEFT_BENCH_DATA_DIR, else the Hub)")
    parser.add_argument("--model-dir", default=None, help="local model copies")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps of a max_length case (default 8)")
    parser.add_argument("--dynamic-steps", type=int, default=None,
                        help="timed steps of a dynamic-padding case "
                             "(default 4 x --steps: shapes vary, steps are cheap)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them (default 2)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="examples per step (default 32, what minilm-glue trains SST-2 with)")
    parser.add_argument("--max-length", type=int, default=128,
                        help="classification max length, the max_length padding width (default 128)")
    parser.add_argument("--gen-max-length", type=int, default=512,
                        help="generation training max length, the max_length padding width (default 512, the task's)")
    parser.add_argument("--examples", type=int, default=2000, help="training examples sampled per case")
    parser.add_argument("--decode-inputs", type=int, default=64, help="inputs decoded (default 64)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per case (default 1: stable on a shared machine; 0 = torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--no-generation-training", action="store_true", help="skip the GPT-2 training cases")
    parser.add_argument("--no-suite-only", action="store_true", help="skip methods without a baseline")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each paired training case, suite and baseline back to back in ABBA order; "
                             "the fastest is kept, every repeat's ratio shown (default 2)")
    parser.add_argument("--decode-only", action="store_true", help="only the decoding case (no training cases)")
    parser.add_argument("--no-decode", action="store_true", help="only the training cases (no decoding case)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the records of the kind not measured this time (train or decode) from --out")
    parser.add_argument("--random-weights", action="store_true",
                        help="decode with --gen-model's architecture, random weights and the byte-level tokenizer "
                             "(speed at a real size without a download)")
    parser.add_argument("--precisions", default="auto",
                        help="training precisions, comma-separated: fp32, bf16 (default auto: fp32, and bf16 where "
                             "the device multiplies bf16 in hardware; max_length cases run in the last one)")
    parser.add_argument("--in-process", action="store_true",
                        help="run every case in this process (quick checks; memory figures are then not per case)")
    parser.add_argument("--out", default="reports/perf/perf.json", help="where to write the records")
    parser.set_defaults(func=run)


def _fmt(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args) -> int:
    import torch

    from bench.perf.measure import FLOPS_FORMULA, load_average, machine, matmul_peaks, write_report
    from bench.perf.cases import Plan, add_roofline, comparisons, merged, run_plan, with_machine

    if args.decode_only and args.no_decode:
        raise ConfigError("--decode-only and --no-decode exclude each other")
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or (args.dynamic_steps or 1) < 1 or args.repeats < 1:
        raise ConfigError("--steps, --dynamic-steps, --batch-size and --repeats must be >= 1 and --warmup >= 0")
    if args.random_weights:
        from bench.models import model_info

        if not model_info(args.gen_model).decoder:
            raise ConfigError(f"--random-weights needs a decoder --gen-model, got {args.gen_model} "
                              f"(family {model_info(args.gen_model).family})")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available on this machine")
    plan = Plan(model=args.model, task=args.task, gen_model=args.gen_model, gen_task=args.gen_task,
                gen_split=args.gen_split, data_dir=args.data_dir, model_dir=args.model_dir,
                batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                dynamic_steps=args.dynamic_steps if args.dynamic_steps is not None else 4 * args.steps,
                max_length=args.max_length,
                gen_max_length=args.gen_max_length, examples=args.examples, decode_inputs=args.decode_inputs,
                device=args.device, threads=args.threads, generation_training=not args.no_generation_training,
                suite_only=not args.no_suite_only, decode_only=args.decode_only, repeats=args.repeats,
                random_weights=args.random_weights, precisions=_precisions(args.precisions),
                decode=not args.no_decode)
    _check_data(plan)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    start, load_start = time.time(), load_average()
    from bench.perf.cases import plan_precisions
    from bench.precision import precision_name

    names = [precision_name(p) for p in plan_precisions(plan)] if not plan.decode_only else []
    peaks = matmul_peaks(args.device, names)
    for name, peak in peaks.items():
        print(f"matmul peak {name}: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['n']}^3, {threads} thread(s))",
              flush=True)
    print(f"load average {load_start}", flush=True)

    def progress(label: str, i: int, n: int) -> None:
        print(f"[{i + 1}/{n}] {label}", file=sys.stderr, flush=True)

    partial = Path(args.out).with_suffix(".partial.json")

    def keep(records_so_far: list[dict]) -> None:
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(records_so_far, indent=1) + "\n")

    records = run_plan(plan, on_case=progress, isolate=not args.in_process, on_records=keep)
    partial.unlink(missing_ok=True)
    add_roofline(records, {name: peak["flops_per_s"] for name, peak in peaks.items()})
    info = dict(machine(args.device, threads), matmul_peaks=peaks, load_average_start=load_start,
                load_average_end=load_average(), wall_seconds=round(time.time() - start, 1),
                flops_formula=FLOPS_FORMULA)
    records = with_machine(records, info)
    out = Path(args.out)
    if args.merge and out.is_file():
        records = merged(records, json.loads(out.read_text()))
    write_report(out, records)

    _print_tables(records, comparisons(records))
    print(f"\nmachine: {info['cpu']}, {info['cpu_count']} cores, {threads} torch thread(s), torch {info['torch']}, "
          f"transformers {info['transformers']}, peft {info['peft']}; load average {load_start} -> "
          f"{info['load_average_end']}; {info['wall_seconds']} s")
    if any(r.get("kind") == "train" for r in records):
        shown = ", ".join(f"{k} {v['flops_per_s'] / 1e9:.1f} GFLOP/s" for k, v in peaks.items())
        print(f"roofline: {FLOPS_FORMULA}; matmul peaks {shown}")
    print(f"wrote {out} ({len(records)} records)")
    failed = [r for r in records if r.get("status") != "ok"]
    for r in failed:
        print(f"FAILED {r['kind']} {r.get('engine')}/{r.get('method')}/{r.get('padding')}: {r.get('error')}",
              file=sys.stderr)
    return 1 if failed else 0


def _precisions(text: str) -> tuple[str, ...]:
    """--precisions: "auto" -> () (the plan decides), else fp32/no and bf16, in the order given."""
    if text.strip() == "auto":
        return ()
    aliases = {"fp32": "no", "no": "no", "bf16": "bf16"}
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in aliases]
    if bad or not names:
        raise ConfigError(f"--precisions: {', '.join(bad) or repr(text)} is not a precision; expected auto or a "
                          f"comma-separated list of fp32, bf16")
    return tuple(dict.fromkeys(aliases[t] for t in names))


def _check_data(plan) -> None:
    """Load both tasks' splits once before any case starts, so that missing data is one clear error."""
    from bench.data import load_split

    needed = [(plan.gen_task, plan.gen_split)]
    if not plan.decode_only:
        needed.insert(0, (plan.task, "train"))
    for task, split in needed:
        try:
            load_split(task, split, plan.data_dir)
        except ConfigError:
            raise
        except Exception as exc:  # the Hub unreachable, a missing package, ...
            where = f"--data-dir {plan.data_dir}" if plan.data_dir else "the Hub (no --data-dir given)"
            raise ConfigError(f"cannot load {task} {split} from {where}: {type(exc).__name__}: {exc}") from None


def _print_tables(records: list[dict], comp: dict) -> None:
    rows = [["model/task", "method", "padding", "engine", "prec", "ex/s", "ex/cpu-s", "tok/s", "peak MB", "+MB",
             "GFLOP/s", "% peak"]]
    for r in records:
        if r["kind"] != "train" or r.get("status") != "ok":
            continue
        rows.append([f"{r['model']}/{r['task']}", r["method"], r["padding"], r["engine"], r.get("precision", "-"),
                     _fmt(r["examples_per_s"]), _fmt(r["examples_per_cpu_s"]), _fmt(r["tokens_per_s"], ".0f"),
                     _fmt(r["peak_mem_mb"], ".0f"),
                     _fmt(r["peak_mem_mb"] - r["mem_before_steps_mb"], ".0f"), _fmt(r["flops_per_s"] / 1e9),
                     _fmt(100 * r["fraction_of_matmul_peak"] if r.get("fraction_of_matmul_peak") else None)])
    print("\ntraining (each case measured in its own process; +MB = peak above the memory before the first step)")
    print(_table(rows))
    if comp["engine"]:
        rows = [["model/task", "method", "padding", "prec", "", "suite ex/s", "Trainer ex/s", "suite/Trainer",
                 "(CPU time)", "per repeat", "suite MB", "Trainer MB"]]
        for c in comp["engine"]:
            each = c.get("paired_speedups")
            rows.append([f"{c['model']}/{c['task']}", c["method"], c["padding"], c["precision"], "",
                         _fmt(c["suite_examples_per_s"]),
                         _fmt(c["baseline_examples_per_s"]), _fmt(c["speedup"], ".2f") + "x",
                         _fmt(c["speedup_cpu"], ".2f") + "x",
                         " ".join(f"{x:.2f}" for x in each) if each else "-",
                         _fmt(c["suite_peak_mem_mb"], ".0f"), _fmt(c["baseline_peak_mem_mb"], ".0f")])
        print("\nsuite vs Trainer + peft at equal batch, padding policy and batches (best runs; per repeat: the "
              "ratio of the two runs of each repeat, which ran back to back)")
        print(_table(rows))
    if comp["padding"]:
        rows = [["model/task", "method", "engine", "prec", "", "dynamic ex/s", "max_length ex/s", "speed-up",
                 "(CPU time)"]]
        for c in comp["padding"]:
            rows.append([f"{c['model']}/{c['task']}", c["method"], c["engine"], c["precision"], "",
                         _fmt(c["dynamic_examples_per_s"]),
                         _fmt(c["max_length_examples_per_s"]), _fmt(c["speedup"], ".2f") + "x",
                         _fmt(c["speedup_cpu"], ".2f") + "x"])
        print("\npadding policy: dynamic + length-grouped batches vs padding to max_length")
        print(_table(rows))
    if comp["precision"]:
        rows = [["model/task", "method", "padding", "engine", "", "bf16 ex/s", "fp32 ex/s", "bf16/fp32", "(CPU time)"]]
        for c in comp["precision"]:
            rows.append([f"{c['model']}/{c['task']}", c["method"], c["padding"], c["engine"], "",
                         _fmt(c["bf16_examples_per_s"]), _fmt(c["fp32_examples_per_s"]),
                         _fmt(c["speedup"], ".2f") + "x", _fmt(c["speedup_cpu"], ".2f") + "x"])
        print("\nprecision: bf16 autocast (suite: frozen matmul weights stored in bf16) vs fp32, "
              "same engine and batches")
        print(_table(rows))
    for c in comp["memory"]:
        print(f"\nmemory {c['model']}/{c['task']} ({c['padding']}, {c['precision']}): "
              f"LoRA peak {c['lora_peak_mem_mb']:.0f} MB vs full "
              f"{c['full_peak_mem_mb']:.0f} MB (LoRA saves {c['saved_mb']:.0f} MB; above the loaded model: "
              f"{c['lora_above_start_mb']:.0f} vs {c['full_above_start_mb']:.0f} MB)")
    for c in comp["decode"]:
        print(f"\ndecoding {c['model']}/{c['task']} ({c['inputs']} inputs, the task's beam search): batched "
              f"({c['search']} search) {c['batched_inputs_per_s']:.2f} inputs/s vs batch-1 "
              f"{c['batch1_inputs_per_s']:.2f} inputs/s = {c['speedup']:.2f}x ({c['speedup_cpu']:.2f}x in CPU time); "
              f"identical outputs: {c['identical_outputs']}")
        if c.get("hf_batched_inputs_per_s") is not None:
            print(f"  model.generate on the same batches: {c['hf_batched_inputs_per_s']:.2f} inputs/s = "
                  f"{c['hf_batched_speedup']:.2f}x over batch-1; identical outputs: "
                  f"{c['hf_batched_identical_outputs']}")
