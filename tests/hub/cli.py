"""`python -m tests.hub.cli ARGS...`: the peft-bench CLI with the mirror's test models and a short grid registered.

The registry entries point at the mirror's `peft-bench-test/*` repositories, so these models load through
`from_pretrained` over HF_ENDPOINT like the paper models do. The preset `hub-short` is a GLUE classification
(SST-2, LoRA), an STS-B regression (BitFit), an MNLI-initialised LoRA run (RTE from MNLI) and an E2E generation
run (prefix tuning), each on a few examples; `hub-dart` is one DART run (prefix tuning).
"""
from __future__ import annotations

import sys
from dataclasses import replace

from bench.models import MODELS, ModelInfo
from bench.presets import PRESETS, Preset, Resources
from bench.spec import After, RunSpec, TrainConfig

for _name, _repo in (("hub-tiny-roberta", "peft-bench-test/tiny-roberta"),
                     ("hub-tiny-gpt2", "peft-bench-test/tiny-gpt2")):
    _base = MODELS[_name.removeprefix("hub-")]
    MODELS[_name] = ModelInfo(_name, _repo, _base.family, _base.config, "tiny test model served by the Hub mirror")

_TRAIN = TrainConfig(epochs=1, batch_size=8, lr=1e-3, max_length=64, max_train_examples=32, max_eval_examples=48)


def hub_short() -> list[RunSpec]:
    mnli = RunSpec(model="hub-tiny-roberta", task="mnli", method="lora", method_config={"r": 4, "alpha": 8},
                   train=_TRAIN, save_state=True, eval_splits=("dev",), label="LoRA")
    return [
        RunSpec(model="hub-tiny-roberta", task="sst2", method="lora", method_config={"r": 4, "alpha": 8},
                train=_TRAIN, label="LoRA"),
        RunSpec(model="hub-tiny-roberta", task="stsb", method="bitfit", train=_TRAIN, label="BitFit"),
        mnli,
        RunSpec(model="hub-tiny-roberta", task="rte", method="lora", method_config={"r": 4, "alpha": 8},
                train=_TRAIN, init_from=After("mnli"), label="LoRA"),
        RunSpec(model="hub-tiny-gpt2", task="e2e", method="prefix", method_config={"length": 2},
                train=replace(_TRAIN, max_length=256, max_eval_examples=8), eval_splits=("dev",),
                decoding={"num_beams": 2, "max_new_tokens": 8, "min_new_tokens": 1, "batch_size": 8}, label="Prefix"),
    ]


PRESETS["hub-short"] = Preset(hub_short, "a short grid through the Hub mirror (tests)", Resources(gpus=0, cpus=2))


def hub_dart() -> list[RunSpec]:
    return [RunSpec(model="hub-tiny-gpt2", task="dart", method="prefix", method_config={"length": 2},
                    train=replace(_TRAIN, max_length=256, max_eval_examples=8), eval_splits=("dev",),
                    decoding={"num_beams": 2, "max_new_tokens": 8, "min_new_tokens": 1, "batch_size": 8},
                    label="Prefix")]


PRESETS["hub-dart"] = Preset(hub_dart, "one DART run through the Hub mirror (tests: the metric models' preflight)",
                             Resources(gpus=0, cpus=2))

if __name__ == "__main__":
    from bench.cli import main

    sys.exit(main(sys.argv[1:]))
