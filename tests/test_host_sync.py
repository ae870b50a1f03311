"""The training loop reads device values (`.item()`, `int()`, `float()`, `bool()`, `.tolist()` of a tensor) only
every SYNC_EVERY micro-batches and at the end of a pass, never per micro-batch: counted on the CPU by wrapping
those conversions and keeping the calls made from the suite's own code (bench/, methods/)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.loop import SYNC_EVERY
from bench.spec import TrainConfig
from bench.train import train_steps

torch.set_num_threads(1)
OURS = tuple(str(Path(__file__).resolve().parents[1] / d) for d in ("bench", "methods"))
CONVERSIONS = ("item", "__int__", "__float__", "__bool__", "__index__", "tolist")


def _loader(tokenizer, n_batches: int):
    from bench.data import make_loader
    from bench.data.batching import Encoded

    rng = np.random.default_rng(0)
    ids = [rng.integers(5, 200, size=int(rng.integers(4, 9))).astype(np.int32) for _ in range(2 * n_batches)]
    features = {"input_ids": ids, "attention_mask": [np.ones_like(x) for x in ids],
                "labels": [x.astype(np.int64) for x in ids]}
    encoded = Encoded(features=features, n_truncated=0, max_length=None, lengths=np.array([len(x) for x in ids]))
    return make_loader(encoded, batch_size=2, pad_id=0, shuffle=True, seed=0)


@pytest.fixture
def conversions(monkeypatch):
    calls: list[str] = []
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(OURS):
                calls.append(f"{_name} in {caller}:{sys._getframe(1).f_lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("precision", ["no", "fp16"])
def test_no_device_read_per_micro_batch(conversions, precision):
    from bench.models import apply_method, load_model
    from methods import LoRA

    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-gpt2", kind="generate")
    apply_method(model, LoRA(r=2))
    micro = 2 * SYNC_EVERY + 10                       # one pass: reads after 50, 100 and at its end
    cfg = TrainConfig(lr=1e-3, mixed_precision=precision, cpu_fast_path=False)
    stats = train_steps(model, _loader(tokenizer, micro), kind="generate", cfg=cfg, max_steps=micro)
    assert stats.micro_batches == micro and np.isfinite(stats.loss)
    reads = 3
    assert conversions, "nothing was counted: the wrapper did not see the loop's reads"
    assert len(conversions) <= 8 * reads < micro, conversions     # a handful per read, none per micro-batch
