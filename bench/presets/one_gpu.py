"""`glue-roberta-base-1gpu`: a first evening on one small GPU (a T4, an RTX card).

RoBERTa-base with the four method families of LoRA Table 2's base rows (FT, BitFit, Adapter^D 0.3M, LoRA) on the
five GLUE tasks whose other training sets are small, 3 seeds, planned at <= 4 device-hours on a T4
(`peft-bench plan glue-roberta-base-1gpu --device t4`). What is cut, against `glue-roberta-base`:
- MNLI, QNLI and QQP (393k, 105k and 364k training examples: most of the full grid's device time);
- so LoRA on MRPC, RTE and STS-B starts from the pretrained model, not from the MNLI LoRA run as the paper's did
  (its label says so, recipe "own");
- SST-2 trains on a seeded subsample of 10,000 of its 67,349 examples (dev: all 872);
- fewer epochs (below), the max length 128 for every method (the dagger block's; GLUE inputs are rarely longer
  at RoBERTa's BPE), 3 seeds rather than 5.
Its numbers are therefore this recipe's, not Table 2's: comparable across its methods, and a check that the
GPU path works before a full grid is started.
"""
from __future__ import annotations

from dataclasses import replace

from bench.presets.glue import ADAPTER_DROP, BITFIT, FT_BASE, TABLE
from bench.spec import RunSpec, TrainConfig

MODEL = "roberta-base"
TASKS = ("sst2", "mrpc", "cola", "rte", "stsb")
SEEDS = (0, 1, 2)
SST2_TRAIN = 10000                # seeded subsample of SST-2's 67,349 training examples
MAX_LEN = 128
# (label, method, method_config, paper_method, paper_params, train settings): epochs cut from the full preset's
# (FT 10, BitFit 16, Adapter^D 5-20, LoRA 30-80) to fit the evening
ROWS = [
    ("FT", "full", {}, "FT", "125.0M", replace(FT_BASE, epochs=3, max_length=MAX_LEN)),
    ("BitFit", "bitfit", {}, "BitFit", "0.1M", replace(BITFIT, epochs=8, max_length=MAX_LEN)),
    ("Adapter^D (Pfeiffer b=16)", "adapter", {"kind": "pfeiffer", "bottleneck": 16, **ADAPTER_DROP}, "AdptD", "0.3M",
     TrainConfig(lr=3e-4, epochs=8, batch_size=32, warmup_ratio=0.06, weight_decay=0.1, max_length=MAX_LEN)),
    ("LoRA (r=8, α=8), from pretrained", "lora", {"r": 8, "alpha": 8}, "LoRA", "0.3M",
     TrainConfig(lr=5e-4, epochs=15, batch_size=16, warmup_ratio=0.06, weight_decay=0.1, max_length=MAX_LEN)),
]


def glue_roberta_base_1gpu() -> list[RunSpec]:
    """RoBERTa-base x {SST-2 (10k subsample), MRPC, CoLA, RTE, STS-B} x {FT, BitFit, Adapter^D, LoRA} x 3 seeds."""
    out: list[RunSpec] = []
    for task in TASKS:
        for label, method, config, paper_method, params, cfg in ROWS:
            cfg = replace(cfg, max_train_examples=SST2_TRAIN if task == "sst2" else 0)
            out += [RunSpec(model=MODEL, task=task, method=method, method_config=dict(config), train=cfg, seed=seed,
                            label=label, paper_method=paper_method, paper_params=params, recipe="own", **TABLE)
                    for seed in SEEDS]
    return out
