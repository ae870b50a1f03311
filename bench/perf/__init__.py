"""The performance benchmark (`peft-bench perf`): `measure` (machine, matmul peak, FLOPs, step timing, memory),
`train` (one training case, suite or Trainer + peft), `decode` (one decoding case), `cases` (which cases run,
each in a fresh process through `worker`, and the side-by-side summary)."""
