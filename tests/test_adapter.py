"""Bottleneck adapters: placement per kind, identity at init, AdapterDrop, saved state, and the paper counts."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bench.models import apply_method, build_meta, load_model
from methods import Adapter, count_params, load_method_state, method_state_dict
from methods.adapter import AdapterDropGate, BottleneckAdapter
from methods.base import blocks_of, get_module

torch.set_num_threads(1)

FAMILIES = [("tiny-roberta", "classify"), ("tiny-bert", "classify"), ("tiny-deberta", "classify"),
            ("tiny-gpt2", "generate"), ("tiny-llama", "generate"), ("tiny-qwen2", "generate")]
KINDS = ("houlsby", "pfeiffer", "lin")


def build(name: str, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = load_model(name, kind=kind, num_labels=3)
    for module in model.modules():            # deterministic training-mode forwards
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model.eval()


def inputs(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 250, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def adapters(model) -> list[BottleneckAdapter]:
    return [m for m in model.modules() if isinstance(m, BottleneckAdapter)]


def randomize(model, std: float = 0.5, seed: int = 3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for adapter in adapters(model):
            for p in adapter.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * std)


@pytest.mark.parametrize("name,kind", FAMILIES)
@pytest.mark.parametrize("adapter_kind", KINDS)
def test_identity_at_init_and_active_after(name, kind, adapter_kind):
    model = build(name, kind)
    x = inputs()
    with torch.no_grad():
        reference = model(**x).logits
        apply_method(model, Adapter(kind=adapter_kind, bottleneck=4))
        assert torch.equal(model(**x).logits, reference)          # W_up = 0: exactly the pretrained model
        randomize(model)
        assert not torch.allclose(model(**x).logits, reference, atol=1e-4)   # the adapters are on the path


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_placement_follows_the_arch(name, kind):
    """houlsby: on the attention and FFN outputs after their dropout (the Llama layout has none there: on o_proj and
    down_proj themselves); pfeiffer: on the block's LayerNorm over FFN output + residual (renorm), or the block
    output of a pre-LN block; lin: the block output."""
    expected = {"houlsby": lambda arch: [arch.attn_dropout, arch.ffn_dropout],
                "pfeiffer": lambda arch: [arch.ffn_norm], "lin": lambda arch: [None]}
    for adapter_kind, hosts in expected.items():
        model = build(name, kind)
        arch = apply_method(model, Adapter(kind=adapter_kind, bottleneck=4))
        blocks = blocks_of(model, arch)
        found = adapters(model)
        assert len(found) == len(blocks) * len(hosts(arch))
        for i, block in enumerate(blocks):
            for path in hosts(arch):
                host = block if path is None else get_module(block, path)
                assert isinstance(host.adapter, BottleneckAdapter) and host.adapter.layer == i
                assert (host.adapter.norm is not None) == (adapter_kind == "lin")
                assert host.adapter.renorm == (adapter_kind == "pfeiffer" and path is not None)
                if adapter_kind == "houlsby":
                    assert isinstance(host, nn.Dropout) or path in (arch.attn_out, arch.ffn_out)
        act = {"houlsby": nn.SiLU, "pfeiffer": nn.ReLU, "lin": nn.ReLU}[adapter_kind]
        assert all(isinstance(a.act, act) for a in found)
    assert (arch.ffn_norm is None) == arch.decoder      # the decoders (GPT-2, Llama layout) are the pre-LN families


def test_activation_override_and_validation():
    model = build("tiny-roberta", "classify")
    apply_method(model, Adapter(kind="houlsby", bottleneck=4, activation="relu"))
    assert all(isinstance(a.act, nn.ReLU) for a in adapters(model))
    for bad in ({"kind": "bogus"}, {"bottleneck": 0}, {"bottleneck": 2.5}, {"activation": "softmax"},
                {"drop_lowest": -1}, {"init": "xavier"}):
        with pytest.raises(ValueError, match="adapter\\."):
            Adapter(**bad)


def _perturb_layer(model, layer: int) -> None:
    gen = torch.Generator().manual_seed(11 + layer)
    with torch.no_grad():
        for adapter in adapters(model):
            if adapter.layer == layer:       # random, not constant: a LayerNorm after the adapter removes shifts
                adapter.up.weight.add_(torch.randn(adapter.up.weight.shape, generator=gen))


@pytest.mark.parametrize("name,kind", [("tiny-roberta", "classify"), ("tiny-gpt2", "generate")])
def test_adapterdrop_fixed_skips_lowest_layers(name, kind):
    x = inputs()
    model = build(name, kind)
    apply_method(model, Adapter(kind="pfeiffer", bottleneck=4, drop_lowest=1, drop_random=False, drop_at_eval=False))
    randomize(model)
    model.train()
    with torch.no_grad():
        train_before = model(**x).logits
        _perturb_layer(model, 0)
        assert torch.equal(model(**x).logits, train_before)        # layer 0's adapter is skipped in training
        model.eval()
        eval_with_layer0 = model(**x).logits
        model.train()
        _perturb_layer(model, 1)
        assert not torch.allclose(model(**x).logits, train_before)  # layer 1's adapter is not
    assert not torch.allclose(eval_with_layer0, train_before)       # drop_at_eval=False: all adapters at eval
    # no gradient reaches a skipped adapter
    model.zero_grad()
    model(**x).logits.sum().backward()
    for adapter in adapters(model):
        grad = adapter.up.weight.grad
        if adapter.layer == 0:
            assert grad is None or torch.count_nonzero(grad) == 0
        else:
            assert grad is not None and torch.count_nonzero(grad) > 0


def test_adapterdrop_at_eval_and_random_draws():
    x = inputs()
    model = build("tiny-roberta", "classify")
    apply_method(model, Adapter(kind="houlsby", bottleneck=4, drop_lowest=1))   # random, drop at eval
    randomize(model)
    gate = adapters(model)[0].gate
    assert isinstance(gate, AdapterDropGate) and all(a.gate is gate for a in adapters(model))
    with torch.no_grad():
        eval_before = model(**x).logits
        _perturb_layer(model, 0)
        assert torch.equal(model(**x).logits, eval_before)         # eval: the lowest layer's adapters dropped
        full = copy.deepcopy(model)
        for a in adapters(full):
            a.gate = None                                           # same weights, every adapter on
        with_layer0 = full(**x).logits
        model.train()
        torch.manual_seed(0)
        seen = set()
        for _ in range(30):
            out = model(**x).logits
            seen.add(gate.current)
            expected = eval_before if gate.current == 1 else with_layer0
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert seen == {0, 1}                                           # m drawn from {0, ..., n} per forward


def test_deepcopy_keeps_hooks_on_the_copy():
    model = build("tiny-gpt2", "generate")
    apply_method(model, Adapter(kind="lin", bottleneck=4))
    randomize(model)
    twin = copy.deepcopy(model)
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(twin(**x).logits, model(**x).logits, rtol=0, atol=0)
        for a in adapters(twin):
            a.up.weight.zero_()
            a.up.bias.zero_()
        assert not torch.allclose(twin(**x).logits, model(**x).logits)   # the copy runs its own adapters


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_saved_state_reproduces_outputs(name, kind):
    x = inputs()
    trained = build(name, kind)
    arch = apply_method(trained, Adapter(kind="houlsby", bottleneck=4))
    randomize(trained)
    with torch.no_grad():
        expected = trained(**x).logits
    state = method_state_dict(trained, arch)
    adapter_keys = [k for k in state if ".adapter." in k]
    assert sum(state[k].numel() for k in adapter_keys) == count_params(trained, arch, Adapter(bottleneck=4)).stored
    fresh = build(name, kind)
    apply_method(fresh, Adapter(kind="houlsby", bottleneck=4))
    load_method_state(fresh, state)
    with torch.no_grad():
        assert torch.equal(fresh(**x).logits, expected)


# recipes.md section 1: adapter rows (stored = trained, head excluded)
PAPER_ROWS = [
    ("roberta-large", "pfeiffer", 64, 3_171_840), ("roberta-large", "pfeiffer", 16, 811_392),
    ("roberta-large", "houlsby", 64, 6_343_680), ("roberta-large", "houlsby", 8, 835_968),
    ("gpt2-medium", "lin", 6, 368_784), ("gpt2-medium", "lin", 224, 11_089_152),
    ("gpt2-large", "lin", 8, 875_808), ("gpt2-large", "lin", 248, 23_002_848),
    ("roberta-base", "pfeiffer", 16, 304_320), ("roberta-base", "pfeiffer", 48, 894_528),
    ("roberta-base", "houlsby", 8, 313_536), ("roberta-base", "houlsby", 24, 903_744),
]


@pytest.mark.parametrize("model_name,adapter_kind,bottleneck,expected", PAPER_ROWS)
def test_paper_counts(model_name, adapter_kind, bottleneck, expected):
    method = Adapter(kind=adapter_kind, bottleneck=bottleneck)
    kind = "generate" if model_name.startswith("gpt2") else "classify"
    model, arch = build_meta(model_name, kind, method)
    counts = count_params(model, arch, method)
    assert counts.trained == counts.stored == expected
    # AdapterDrop keeps every layer's adapters: same count
    dropped = Adapter(kind=adapter_kind, bottleneck=bottleneck, drop_lowest=5)
    model, arch = build_meta(model_name, kind, dropped)
    assert count_params(model, arch, dropped).stored == expected
