"""`peft-bench` under `accelerate launch` with probes for tests/test_ddp.py (not a test module itself).

PROBE_OUT=dir: each process writes dir/rank<r>.json at the start of training: the size of its process group,
32 dropout keep-flags drawn from
torch's default generator (a dropout mask) and the lowest-layer counts its AdapterDrop gates draw for 16 forward
passes (from a copy of each gate's generator, so training draws the same ones).
PROBE_FAIL_RANK=r: that process's loss raises at its third micro-batch.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import torch

import bench.loop
import bench.train
from bench.cli import main

RANK = int(os.environ.get("RANK", "0"))
real_fit, real_loss = bench.train.fit, bench.loop.compute_loss
calls = {"loss": 0}


def probed_fit(model, loader, **kwargs):
    out = os.environ.get("PROBE_OUT")
    if out:
        mask = torch.nn.functional.dropout(torch.ones(32), 0.5, training=True) > 0
        gates = [m for m in model.modules() if type(m).__name__ == "AdapterDropGate"]
        draws = []
        for gate in gates:
            g = copy.deepcopy(gate.generator)
            draws.append([int(torch.randint(0, gate.n + 1, (), generator=g)) for _ in range(16)])
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        Path(out, f"rank{RANK}.json").write_text(json.dumps({"mask": mask.tolist(), "adapterdrop": draws,
                                                              "world": world}))
    return real_fit(model, loader, **kwargs)


def failing_loss(*args, **kwargs):
    calls["loss"] += 1
    if calls["loss"] == 3:
        raise RuntimeError(f"probe: process {RANK} fails at its third micro-batch")
    return real_loss(*args, **kwargs)


bench.train.fit = probed_fit
if os.environ.get("PROBE_FAIL_RANK") == str(RANK):
    bench.loop.compute_loss = failing_loss

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
