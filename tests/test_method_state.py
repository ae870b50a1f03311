"""One strict way a method's state is saved and loaded back: `methods.method_state_dict` / `load_method_state`,
used by a run's saved state and by `init_from` (the head excepted: label sets differ)."""
from __future__ import annotations

import pytest
import torch

from bench.models import apply_method, load_model
from bench.runner import STATE_FILE, _init_from, _save_state
from methods import Adapter, LoRA, load_method_state, method_state_dict

torch.set_num_threads(1)


def lora_model(labels: int, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = load_model("tiny-roberta", kind="classify", num_labels=labels)
    arch = apply_method(model, LoRA(r=2))
    return model.eval(), arch


def moved(model, seed: int = 5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def test_strict_load_names_missing_and_unexpected():
    model, arch = lora_model(3)
    state = method_state_dict(model, arch)
    key = sorted(state)[0]
    broken = {k: v for k, v in state.items() if k != key}
    broken["roberta.encoder.layer.0.attention.self.key.lora_A"] = torch.zeros(2, 32)
    with pytest.raises(ValueError) as err:
        load_method_state(model, broken, arch)
    message = str(err.value)
    assert f"missing {key}" in message and "unexpected roberta.encoder.layer.0.attention.self.key.lora_A" in message


def test_except_head_loads_the_rest_and_keeps_the_fresh_head():
    dep, dep_arch = lora_model(3, seed=0)                  # an MNLI-like dependency: 3 labels
    moved(dep)
    state = method_state_dict(dep, dep_arch)
    model, arch = lora_model(2, seed=1)                    # the run that starts from it: 2 labels
    head_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("classifier")}
    with pytest.raises(ValueError, match="shape"):         # without the exception the head cannot load
        load_method_state(model, state, arch)
    load_method_state(model, state, arch, except_head=True)
    params = dict(model.named_parameters())
    lora_keys = [k for k in state if "lora_" in k]
    assert lora_keys and all(torch.equal(params[k], state[k]) for k in lora_keys)
    assert all(torch.equal(params[n], v) for n, v in head_before.items())


def test_init_from_is_strict_and_names_the_file(tmp_path):
    dep, dep_arch = lora_model(3)
    moved(dep)
    path = tmp_path / STATE_FILE
    _save_state(path, method_state_dict(dep, dep_arch))
    model, arch = lora_model(2, seed=1)
    _init_from(model, arch, path)                          # same method: loads
    params = dict(model.named_parameters())
    saved = torch.load(path, weights_only=True)
    assert all(torch.equal(params[k], v) for k, v in saved.items() if "lora_" in k)
    torch.manual_seed(0)
    other, _ = load_model("tiny-roberta", kind="classify", num_labels=2)
    other_arch = apply_method(other, Adapter(kind="pfeiffer", bottleneck=2))
    with pytest.raises(ValueError) as err:                 # another method's state: every name is named
        _init_from(other, other_arch, path)
    message = str(err.value)
    assert str(path) in message and "missing roberta.encoder.layer.0.output.LayerNorm.adapter" in message
    assert "unexpected roberta.encoder.layer.0.attention.self.query.lora_A" in message
    with pytest.raises(FileNotFoundError, match="has not finished"):
        _init_from(model, arch, tmp_path / "absent" / STATE_FILE)
