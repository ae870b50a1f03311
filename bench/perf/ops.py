"""What single CPU operations cost in fp32 and in bf16 at a training step's shapes: the facts behind the CPU fast
path (`bench.fastpath`) and behind what bf16 does and does not speed up.

    OMP_NUM_THREADS=1 python -m bench.perf.ops --out reports/perf/ops.json

The shapes are those of a MiniLM-L6 step on SST-2 (batch 32, 24 tokens after dynamic padding, hidden size 384,
FFN 1,536, 12 heads) unless set. Every operation runs `--calls` times in a row, and the cases take turns for
`--repeats` rounds; a case's time per call is its fastest round (a shared machine's speed changes from second to
second, see `bench.perf.interleave`), in thread CPU time.
"""
from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--calls", type=int, default=20, help="calls in a row per timing")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; a case's time is its fastest round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from bench.perf.measure import machine

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rec = measure(batch=args.batch, tokens=args.tokens, calls=args.calls, repeats=args.repeats)
    given = sys.argv[1:] if argv is None else argv
    report = {"kind": "ops", "command": " ".join(["python -m bench.perf.ops", *given]),
              "machine": machine("cpu", args.threads), **rec, "wall_seconds": round(time.perf_counter() - start, 1)}
    for k, v in rec["us_per_call"].items():
        print(f"{k:36} {v:10.1f} us")
    if args.out is not None:
        from bench.results import write_atomic

        write_atomic(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
