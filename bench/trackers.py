"""Optional live metrics through accelerate's trackers: `--track tensorboard` or `--track wandb` (off by default).

The choice travels in PEFT_BENCH_TRACK (so worker processes, Slurm jobs and `accelerate launch` ranks inherit it)
and is no part of a run's identity. Each run becomes one tracker run named by its run_id, with the run's spec
as its config and one point per epoch (train loss, lr, the selection split's metrics). TensorBoard logs go to
results/runs/<preset>/<run_id>/tb/ (`tensorboard --logdir results/runs/PRESET`); W&B uses the project
`peft-bench-<preset>` and its own login. Extras: `pip install -e ".[track]"` (tensorboard) or wandb.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "PEFT_BENCH_TRACK"
KINDS = ("tensorboard", "wandb")


def flat(config: dict, prefix: str = "") -> dict:
    """Nested spec dict -> one level of scalars (what tracker configs hold)."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = value
    return out


class Tracker:
    """One run's tracker, or a no-op when none was asked for (or on a process other than the first)."""

    def __init__(self, spec, folder: Path):
        self.impl = None
        kind = os.environ.get(ENV, "").strip().lower()
        if not kind or int(os.environ.get("RANK", "0")) != 0:
            return
        from bench.config import ConfigError

        if kind not in KINDS:
            raise ConfigError(f"{ENV}={kind}: expected one of {', '.join(KINDS)}")
        if kind == "tensorboard":
            from accelerate.tracking import TensorBoardTracker

            self.impl = TensorBoardTracker(spec.run_id, folder / "tb")
        else:
            from accelerate.tracking import WandBTracker

            self.impl = WandBTracker(spec.run_id, project=f"peft-bench-{spec.preset}")
        self.impl.start()
        self.impl.store_init_configuration({k: v for k, v in flat(spec.to_dict()).items()
                                            if isinstance(v, (int, float, str, bool))})

    def log(self, entry: dict) -> None:
        if self.impl is not None:
            values = {k: v for k, v in entry.items() if isinstance(v, (int, float)) and k != "epoch"}
            self.impl.log(values, step=int(entry.get("epoch", 0)))

    def finish(self) -> None:
        if self.impl is not None:
            self.impl.finish()
