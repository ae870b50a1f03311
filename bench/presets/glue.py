"""GLUE presets of LoRA Table 2 (RoBERTa-base, RoBERTa-large, the restricted dagger block), with VeRA's
RoBERTa-base row of its Table 2 beside LoRA's.

Source: shared/reference/recipes.md section 2. Tables are data: one line per task.
"""
from __future__ import annotations

from dataclasses import replace

from bench.spec import After, RunSpec, TrainConfig

TASKS = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
SEEDS = (0, 1, 2, 3, 4)                         # LoRA Table 2: median of 5 seeds
FROM_MNLI = ("mrpc", "rte", "stsb")             # LoRA: these start from the best MNLI LoRA run of the same seed
SCRIPT_GPUS = 8                                 # the released scripts ran on 8 GPUs; batch sizes are per GPU
TABLE = dict(paper_table="lora/Table 2", paper_version="arxiv-v2")

# RoBERTa-base LoRA: task -> (batch, epochs, lr, max_len); paper and script agree except alpha and the GPU count.
LORA_BASE = {
    "mnli": (16, 30, 5e-4, 512),
    "sst2": (16, 60, 5e-4, 512),
    "mrpc": (16, 30, 4e-4, 512),
    "cola": (32, 80, 4e-4, 512),
    "qnli": (32, 25, 4e-4, 512),
    "qqp": (16, 25, 5e-4, 512),
    "rte": (32, 80, 5e-4, 512),
    "stsb": (16, 40, 4e-4, 512),
}
# RoBERTa-large LoRA, paper column; LORA_LARGE_SCRIPT lists only the cells where the released scripts differ.
LORA_LARGE = {
    "mnli": (4, 10, 3e-4, 128),
    "sst2": (4, 10, 4e-4, 128),
    "mrpc": (4, 20, 3e-4, 512),
    "cola": (4, 20, 2e-4, 128),
    "qnli": (4, 10, 2e-4, 512),
    "qqp": (4, 20, 3e-4, 512),
    "rte": (8, 20, 4e-4, 512),
    "stsb": (8, 30, 2e-4, 512),
}
LORA_LARGE_SCRIPT = {
    "sst2": (8, 10, 4e-4, 512),
    "cola": (4, 20, 3e-4, 128),
    "stsb": (4, 10, 3e-4, 128),
}
# Restricted dagger block (RoBERTa-large, max len 128): epochs and lr in TASKS order. The adapters start as the
# LoRA repository's did (init="bert": every adapter Linear N(0, 0.02^2), its fork's _init_weights).
RESTRICTED = [
    # (label, paper_method, paper_params, method, method_config, batch, epochs, lrs)
    ("LoRA† (r=8, α=16)", "LoRA†", "0.8M", "lora", {"r": 8, "alpha": 16}, 4,
     (10, 10, 20, 20, 10, 20, 20, 10), (3e-4, 4e-4, 3e-4, 2e-4, 2e-4, 3e-4, 4e-4, 2e-4)),
    ("Adapter^P† (b=64)", "AdptP†", "3.0M", "adapter", {"kind": "pfeiffer", "bottleneck": 64, "init": "bert"}, 32,
     (10, 20, 20, 20, 10, 20, 20, 20), (3e-5, 3e-5, 3e-4, 3e-4, 3e-4, 3e-4, 3e-4, 3e-4)),
    ("Adapter^P† (b=16)", "AdptP†", "0.8M", "adapter", {"kind": "pfeiffer", "bottleneck": 16, "init": "bert"}, 32,
     (5, 20, 20, 20, 10, 20, 20, 20), (3e-4,) * 8),
    ("Adapter^H† (b=64)", "AdptH†", "6.0M", "adapter", {"kind": "houlsby", "bottleneck": 64, "init": "bert"}, 32,
     (10, 5, 10, 10, 5, 20, 20, 10), (3e-5,) + (3e-4,) * 7),
    ("Adapter^H† (b=8)", "AdptH†", "0.8M", "adapter", {"kind": "houlsby", "bottleneck": 8, "init": "bert"}, 32,
     (10, 5, 10, 10, 5, 20, 20, 10), (3e-4,) * 8),
]
# Our recipe for the quoted rows (no recipe published with LoRA Table 2):
# FT: RoBERTa paper's GLUE grid, middle values. BitFit: Zaken et al. as published. Adapter^D: Pfeiffer adapters
# of bottleneck 16 / 48 (304,320 / 894,528 params, recipes.md s.1), robust AdapterDrop training, otherwise trained
# like the dagger block's Adapter^P 0.8M.
FT_BASE = TrainConfig(lr=2e-5, epochs=10, batch_size=16, warmup_ratio=0.06, weight_decay=0.1, max_length=512)
FT_LARGE = TrainConfig(lr=1e-5, epochs=10, batch_size=16, warmup_ratio=0.06, weight_decay=0.1, max_length=512)
BITFIT = TrainConfig(lr=1e-3, epochs=16, batch_size=8, schedule="constant", max_length=128)
ADAPTER_D_EPOCHS = (5, 20, 20, 20, 10, 20, 20, 20)
# Robust AdapterDrop (Rueckle et al.): in training, adapters of the lowest n layers are skipped, n drawn from
# 0..11 per step; evaluation keeps every adapter.
ADAPTER_DROP = {"drop_lowest": 11, "drop_random": True, "drop_at_eval": False}


# VeRA Table 2, RoBERTa-base (Kopiczko et al., appendix; the same cells as TonAnh/VeRA-plus's replication scripts
# scripts/vera_replicate/*.sh): r=1024 on W_q, W_v, d_initial 0.1, batch 64, max len 512, AdamW, linear schedule
# with 6% warmup; task -> (epochs, lr of the vectors, lr of the head). Six tasks (no MNLI, QQP); every task starts
# from the pretrained model (LoRA's MRPC/RTE/STS-B start from its MNLI run; the report flags those cells).
VERA_TABLE = dict(paper_table="vera/Table 2", paper_version="iclr-2024")
VERA_BASE = {
    "sst2": (60, 4e-3, 4e-3),
    "mrpc": (30, 1e-2, 4e-3),
    "cola": (80, 1e-2, 1e-2),
    "qnli": (25, 1e-2, 4e-3),
    "rte": (160, 4e-3, 1e-2),
    "stsb": (80, 1e-2, 1e-2),
}


def _vera_base_runs() -> list[RunSpec]:
    out: list[RunSpec] = []
    for task, (epochs, lr, head_lr) in VERA_BASE.items():
        cfg = TrainConfig(lr=lr, head_lr=head_lr, epochs=epochs, batch_size=64, warmup_ratio=0.06, max_length=512)
        out += _seeded(RunSpec(model="roberta-base", task=task, method="vera",
                               method_config={"r": 1024, "d_initial": 0.1}, train=cfg, label="VeRA (r=1024)",
                               paper_method="VeRA", paper_params="0.043M", recipe="paper", **VERA_TABLE))
    return out


def _seeded(spec: RunSpec) -> list[RunSpec]:
    return [replace(spec, seed=s) for s in SEEDS]


def _lora_runs(model: str, table: dict, *, alpha: int, variant: str, params: str, gpus: int) -> list[RunSpec]:
    """LoRA on W_q, W_v (r=8) for every task; MRPC/RTE/STS-B start from the MNLI run of the same seed."""
    out: list[RunSpec] = []
    for seed in SEEDS:
        for task in TASKS:
            batch, epochs, lr, max_len = table[task]
            cfg = TrainConfig(lr=lr, epochs=epochs, batch_size=batch, grad_accum=gpus, warmup_ratio=0.06,
                              weight_decay=0.1, max_length=max_len)
            out.append(RunSpec(model=model, task=task, method="lora", method_config={"r": 8, "alpha": alpha},
                               train=cfg, seed=seed, label=f"LoRA (r=8, α={alpha})", paper_method="LoRA",
                               paper_params=params, recipe=variant, save_state=(task == "mnli"),
                               init_from=After("mnli") if task in FROM_MNLI else None, **TABLE))
    return out


def glue_roberta_base(variant: str) -> list[RunSpec]:
    """RoBERTa-base rows of LoRA Table 2: FT, BitFit, Adapter^D 0.3M / 0.9M, LoRA; 8 tasks x 5 seeds; and VeRA's
    row of its Table 2 beside them (6 tasks x 5 seeds, VeRA's recipe in both variants)."""
    model = "roberta-base"
    out: list[RunSpec] = []
    for i, task in enumerate(TASKS):
        out += _seeded(RunSpec(model=model, task=task, method="full", train=FT_BASE, label="FT",
                               paper_method="FT", paper_params="125.0M", recipe="own", **TABLE))
        out += _seeded(RunSpec(model=model, task=task, method="bitfit", train=BITFIT, label="BitFit",
                               paper_method="BitFit", paper_params="0.1M", recipe="own", **TABLE))
        for b, params in ((16, "0.3M"), (48, "0.9M")):
            cfg = TrainConfig(lr=3e-4, epochs=ADAPTER_D_EPOCHS[i], batch_size=32, warmup_ratio=0.06,
                              weight_decay=0.1, max_length=128)
            out += _seeded(RunSpec(model=model, task=task, method="adapter",
                                   method_config={"kind": "pfeiffer", "bottleneck": b, **ADAPTER_DROP}, train=cfg,
                                   label=f"Adapter^D (Pfeiffer b={b})", paper_method="AdptD", paper_params=params,
                                   recipe="own", **TABLE))
    alpha = 8 if variant == "paper" else 16
    gpus = 1 if variant == "paper" else SCRIPT_GPUS
    out += _lora_runs(model, LORA_BASE, alpha=alpha, variant=variant, params="0.3M", gpus=gpus)
    return out + _vera_base_runs()


def glue_roberta_large(variant: str) -> list[RunSpec]:
    """RoBERTa-large rows of LoRA Table 2 outside the dagger block: FT and LoRA; 8 tasks x 5 seeds."""
    model = "roberta-large"
    out: list[RunSpec] = []
    for task in TASKS:
        out += _seeded(RunSpec(model=model, task=task, method="full", train=FT_LARGE, label="FT",
                               paper_method="FT", paper_params="355.0M", recipe="own", **TABLE))
    table = dict(LORA_LARGE)
    if variant == "script":
        table.update(LORA_LARGE_SCRIPT)
    gpus = 1 if variant == "paper" else SCRIPT_GPUS
    out += _lora_runs(model, table, alpha=16, variant=variant, params="0.8M", gpus=gpus)
    return out


def glue_roberta_large_restricted() -> list[RunSpec]:
    """The dagger block of LoRA Table 2: every task from the pretrained model, max len 128."""
    out: list[RunSpec] = []
    for label, paper_method, params, method, config, batch, epochs, lrs in RESTRICTED:
        for i, task in enumerate(TASKS):
            cfg = TrainConfig(lr=lrs[i], epochs=epochs[i], batch_size=batch, warmup_ratio=0.06, weight_decay=0.1,
                              max_length=128)
            out += _seeded(RunSpec(model="roberta-large", task=task, method=method, method_config=dict(config),
                                   train=cfg, label=label, paper_method=paper_method, paper_params=params,
                                   recipe="paper", **TABLE))
    return out
