"""What single CPU operations cost in fp32 and in bf16 at a training step's shapes: the facts behind the CPU fast
path (`bench.fastpath`) and behind what bf16 does and does not speed up.

    OMP_NUM_THREADS=1 python -m bench.perf.ops --out reports/perf/ops.json

    OMP_NUM_THREADS=1 python -m bench.perf.ops --steps-of lora --data-dir ../shared/data

The shapes are those of a MiniLM-L6 step on SST-2 (batch 32, 24 tokens after dynamic padding, hidden size 384,
FFN 1,536, 12 heads) unless set. Every operation runs `--calls` times in a row, and the cases take turns for
`--repeats` rounds; a case's time per call is its fastest round (a shared machine's speed changes from second to
second, see `bench.perf.interleave`), in thread CPU time.

`--steps-of METHOD` adds where a training step's time goes: the suite's step (`bench.perf.interleave`) of that
method on MiniLM-L6 / SST-2 in bf16 and in fp32, fast path on, timed per aten operation (a dispatch-mode timer:
forward, backward and optimizer, by operation and input dtypes) over `--step-count` steps after as many untimed
ones on the same batches. Python between the operations is not counted.

`--drift N` adds how the machine's speed moves: N samples, 50 ms apart, of one fp32 and one bf16 1024³ matmul
back to back, each sample's GFLOP/s and their spread per precision.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cases(batch: int, tokens: int, hidden: int, ffn: int, heads: int) -> dict:
    """name -> a function of no arguments running the operation once."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from bench.fastpath import dropout

    g = torch.Generator().manual_seed(0)
    f32, b16 = torch.float32, torch.bfloat16
    h = torch.randn(batch, tokens, hidden, generator=g)
    i = torch.randn(batch, tokens, ffn, generator=g)
    s = torch.randn(batch, heads, tokens, tokens, generator=g)
    w = torch.randn(ffn, hidden, generator=g)
    ln_w, ln_b = torch.ones(hidden), torch.zeros(hidden)
    rng = np.random.PCG64(0)
    out: dict = {}
    for name, dt in (("fp32", f32), ("bf16", b16)):
        hd, idt, sd, wd = h.to(dt), i.to(dt), s.to(dt), w.to(dt)
        out |= {
            f"dropout p=0.1 {name}, fast path": lambda x=hd: dropout(x, 0.1, True, rng),
            f"dropout p=0.1 {name}, F.dropout": lambda x=hd: F.dropout(x, 0.1, True),
            f"softmax {name}": lambda x=sd: F.softmax(x, dim=-1),
            f"add {name} + {name}": lambda x=hd: x + x,
            f"layer_norm {name}": lambda x=hd: F.layer_norm(x, (hidden,), ln_w.to(x.dtype), ln_b.to(x.dtype)),
            f"gelu {name}": lambda x=idt: F.gelu(x),
            f"linear {hidden}->{ffn} {name}": lambda x=hd, m=wd: F.linear(x, m),
        }
    hb = h.to(b16)
    out |= {
        "add bf16 + fp32": lambda: hb + h,
        "cast fp32 -> bf16": lambda: h.to(b16),
        "cast bf16 -> fp32": lambda: hb.to(f32),
    }
    return out


def measure(batch: int = 32, tokens: int = 24, hidden: int = 384, ffn: int = 1536, heads: int = 12,
            calls: int = 20, repeats: int = 5) -> dict:
    import torch

    run = cases(batch, tokens, hidden, ffn, heads)
    best = {k: float("inf") for k in run}
    with torch.no_grad():
        for f in run.values():
            f()
        for r in range(repeats):
            names = list(run)
            names = names[r % len(names):] + names[:r % len(names)]
            for k in names:
                c = time.thread_time()
                for _ in range(calls):
                    run[k]()
                best[k] = min(best[k], (time.thread_time() - c) / calls)
    return {"shapes": {"batch": batch, "tokens": tokens, "hidden": hidden, "ffn": ffn, "heads": heads},
            "calls": calls, "repeats": repeats, "us_per_call": {k: round(v * 1e6, 1) for k, v in best.items()}}


MATMULS = ("aten.mm.", "aten.addmm.", "aten.bmm.", "aten.baddbmm.")


def drift(samples: int, n: int = 1024, pause_s: float = 0.05) -> dict:
    """How the machine's speed moves: `samples` times, one n^3 matmul in fp32 and one in bf16 back to back (a
    pause between samples), each sample's GFLOP/s; quantiles per precision."""
    import statistics

    import torch

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
    rates: dict[str, list[float]] = {k: [] for k in pairs}
    for x, y in pairs.values():
        torch.mm(x, y)
    for _ in range(samples):
        for k, (x, y) in pairs.items():
            c = time.thread_time()
            torch.mm(x, y)
            rates[k].append(2 * n ** 3 / (time.thread_time() - c) / 1e9)
        time.sleep(pause_s)
    out = {}
    for k, v in rates.items():
        q = statistics.quantiles(v, n=10) if len(v) >= 2 else v * 9
        out[k] = {"gflops_per_s": [round(r, 1) for r in v], "p10": round(q[0], 1),
                  "median": round(statistics.median(v), 1), "p90": round(q[-1], 1),
                  "max_over_min": round(max(v) / min(v), 2)}
    return {"n": n, "samples": samples, "pause_s": pause_s, "by_precision": out}


def step_ops(method: str, *, data_dir, steps: int = 10, batch_size: int = 32, examples: int = 1280,
             model_name: str = "minilm-l6", task_name: str = "sst2") -> dict:
    """Per-operation thread CPU time of `steps` training steps of `method`, in bf16 and in fp32."""
    import collections

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from bench.fastpath import cpu_fast_training
    from bench.perf.interleave import _copies, _step
    from bench.tasks import get_task

    class Timer(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seconds: collections.Counter = collections.Counter()
            self.calls: collections.Counter = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            dtypes = sorted({str(a.dtype).removeprefix("torch.") for a in args if isinstance(a, torch.Tensor)})
            key = f"{func} ({', '.join(dtypes)})" if dtypes else str(func)
            start = time.thread_time()
            out = func(*args, **(kwargs or {}))
            self.seconds[key] += time.thread_time() - start
            self.calls[key] += 1
            return out

    task = get_task(task_name)
    copies, batches = _copies(method, model_name, task, data_dir, batch_size, examples, steps, 0,
                              variants=(("bf16", True), ("fp32", True)))
    out = {}
    for precision in ("bf16", "fp32"):
        model, optimizer, _, _ = copies[f"{precision}+fast"]
        with cpu_fast_training(model):
            for b in batches[:steps]:
                _step(model, optimizer, b, task.kind, precision)
            timer = Timer()
            with timer:
                for b in batches[:steps]:
                    _step(model, optimizer, b, task.kind, precision)
        total = sum(timer.seconds.values())
        matmul = sum(v for k, v in timer.seconds.items() if k.startswith(MATMULS))
        out[precision] = {"ms_per_step": 1e3 * total / steps, "matmul_share": matmul / total,
                          "ops": [{"op": k, "ms_per_step": round(1e3 * v / steps, 3),
                                   "calls_per_step": timer.calls[k] / steps, "share": round(v / total, 4)}
                                  for k, v in timer.seconds.most_common()]}
    return {"method": method, "model": model_name, "task": task_name, "batch_size": batch_size, "steps": steps,
            "by_precision": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--calls", type=int, default=20, help="calls in a row per timing")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; a case's time is its fastest round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps-of", default="", help="comma-separated methods: where their step's time goes")
    parser.add_argument("--step-count", type=int, default=10, help="timed steps per method and precision")
    parser.add_argument("--data-dir", default=None, help="local release files for --steps-of (default: the Hub)")
    parser.add_argument("--model", default="minilm-l6", help="--steps-of: the model (SST-2 is the task)")
    parser.add_argument("--examples", type=int, default=1280, help="--steps-of: seeded subsample (0: all)")
    parser.add_argument("--drift", type=int, default=0,
                        help="samples of one fp32 and one bf16 1024^3 matmul back to back (the machine's drift)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from bench.perf.measure import command_line, finish_report, machine

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rec = measure(batch=args.batch, tokens=args.tokens, calls=args.calls, repeats=args.repeats)
    report = {"kind": "ops", "command": command_line("bench.perf.ops", argv),
              "machine": machine("cpu", args.threads), **rec, "wall_seconds": round(time.perf_counter() - start, 1)}
    for k, v in rec["us_per_call"].items():
        print(f"{k:36} {v:10.1f} us")
    report["steps"] = []
    for method in filter(None, args.steps_of.split(",")):
        steps = step_ops(method, data_dir=args.data_dir, steps=args.step_count, examples=args.examples,
                         model_name=args.model)
        report["steps"].append(steps)
        for precision, r in steps["by_precision"].items():
            top = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in r["ops"][:6])
            share = 100 * r["matmul_share"]
            print(f"{method} {precision}: {r['ms_per_step']:.1f} ms/step, matmuls {share:.0f}%; {top}")
    if args.drift:
        report["drift"] = drift(args.drift)
        for k, r in report["drift"]["by_precision"].items():
            print(f"drift {k}: GFLOP/s p10 {r['p10']}, median {r['median']}, p90 {r['p90']}, "
                  f"max/min {r['max_over_min']}")
    finish_report(report, start, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
