"""LoRA: the drop-in layers against PEFT's LoRA for the same weights, explicit merge/unmerge, GPT-2's fused
c_attn with only the chosen slices adapted, and setting validation."""
from __future__ import annotations

import pytest
import torch

from bench.models import apply_method, load_model
from methods import LoRA, merge, unmerge
from methods.base import blocks_of, get_module
from methods.lora import LoRAConv1D, LoRALinear

torch.set_num_threads(1)


def build(name="tiny-roberta", kind="classify", seed=0):
    torch.manual_seed(seed)
    model, tokenizer = load_model(name, kind=kind)
    inputs = dict(tokenizer(["low rank adaptation", "of large language models!"], padding=True,
                            return_tensors="pt"))
    return model.eval(), inputs


def randomise_b(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (LoRALinear, LoRAConv1D)):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("targets", [("q", "v"), ("q", "k", "v", "o", "ffn_in", "ffn_out")])
def test_matches_peft_lora_on_tiny_roberta(targets):
    peft = pytest.importorskip("peft")
    ours, inputs = build()
    theirs, _ = build()
    method = LoRA(r=4, alpha=8.0, targets=targets)
    arch = apply_method(ours, method)
    names = {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense",
             "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=[names[t] for t in targets])
    theirs = peft.get_peft_model(theirs, config).eval()
    randomise_b(ours)
    field = {"q": "q", "k": "k", "v": "v", "o": "attn_out", "ffn_in": "ffn_in", "ffn_out": "ffn_out"}
    peft_blocks = theirs.base_model.model.roberta.encoder.layer
    with torch.no_grad():
        for mine, other in zip(blocks_of(ours, arch), peft_blocks):
            for t in targets:
                a, b = get_module(mine, getattr(arch, field[t])), get_module(other, getattr(arch, field[t]))
                b.lora_A["default"].weight.copy_(a.lora_A)
                b.lora_B["default"].weight.copy_(a.lora_B)
        expected = theirs(**inputs).logits
        got = ours(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # and the update really matters (B is not zero any more)
    with torch.no_grad():
        plain, _ = build()
        assert not torch.allclose(plain(**inputs).logits, got, atol=1e-4)


def test_fused_c_attn_matches_peft_with_shared_a():
    """PEFT adapts GPT-2's whole c_attn with one A; with our per-slice A_s all set to it and B_s = its slices
    of B, the two updates are the same."""
    peft = pytest.importorskip("peft")
    ours, inputs = build("tiny-gpt2", "generate")
    theirs, _ = build("tiny-gpt2", "generate")
    arch = apply_method(ours, LoRA(r=2, alpha=4.0, targets=("q", "k", "v")))
    config = peft.LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True)
    theirs = peft.get_peft_model(theirs, config).eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for mine, other in zip(blocks_of(ours, arch), theirs.base_model.model.transformer.h):
            layer, ref = get_module(mine, "attn.c_attn"), other.attn.c_attn
            ref.lora_B["default"].weight.copy_(torch.randn(ref.lora_B["default"].weight.shape, generator=gen))
            d = layer.chunk
            for s in range(3):
                layer.lora_A[s].copy_(ref.lora_A["default"].weight)
                layer.lora_B[s].copy_(ref.lora_B["default"].weight[s * d:(s + 1) * d])
        torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits, rtol=1e-5, atol=1e-5)


def test_gpt2_only_chosen_slices_change():
    model, inputs = build("tiny-gpt2", "generate")
    layer = get_module(blocks_of(model, apply_method(model, LoRA(r=2, targets=("q", "v")))), "0.attn.c_attn")
    assert isinstance(layer, LoRAConv1D) and layer.slices == (0, 2)
    x = torch.randn(2, 5, layer.nx)
    with torch.no_grad():
        base = torch.addmm(layer.bias, x.view(-1, layer.nx), layer.weight).view(2, 5, -1)
        randomise_b(model)
        out = layer(x)
    d = layer.chunk
    assert torch.equal(out[..., d:2 * d], base[..., d:2 * d])          # k untouched
    assert not torch.allclose(out[..., :d], base[..., :d])              # q adapted
    assert not torch.allclose(out[..., 2 * d:], base[..., 2 * d:])      # v adapted
    # r (d_in + d_out) per adapted slice
    assert layer.lora_A.numel() + layer.lora_B.numel() == 2 * 2 * (layer.nx + d)


@pytest.mark.parametrize("name,kind,targets", [("tiny-roberta", "classify", ("q", "v")),
                                               ("tiny-deberta", "classify", ("q", "k", "v", "o")),
                                               ("tiny-gpt2", "generate", ("q", "v")),
                                               ("tiny-gpt2", "generate", ("q", "k", "v", "o", "ffn_in", "ffn_out"))])
def test_merge_unmerge_keep_outputs(name, kind, targets):
    model, inputs = build(name, kind)
    apply_method(model, LoRA(r=4, alpha=8.0, targets=targets))
    randomise_b(model)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        reference = model(**inputs).logits
        merge(model)
        merged = model(**inputs).logits
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, weights[n])]
        unmerge(model)
        unmerged = model(**inputs).logits
    assert changed and all(n.endswith("weight") for n in changed)   # merging folded B A into base weights
    torch.testing.assert_close(merged, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(unmerged, reference, rtol=1e-4, atol=1e-5)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, weights[n], rtol=0, atol=1e-6)
    merge(model)
    merge(model)  # idempotent: a second merge does not add the update twice
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference, rtol=1e-4, atol=1e-5)


def test_dropout_only_in_training():
    model, inputs = build()
    apply_method(model, LoRA(dropout=0.5))
    randomise_b(model)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model(**inputs).logits)
        model.train()
        torch.manual_seed(0)
        a = model.roberta(**inputs).last_hidden_state
        torch.manual_seed(1)
        b = model.roberta(**inputs).last_hidden_state
    assert not torch.allclose(a, b)


def test_scaling_and_shapes():
    model, _ = build()
    arch = apply_method(model, LoRA(r=4, alpha=32.0))
    q = get_module(blocks_of(model, arch)[0], arch.q)
    assert isinstance(q, LoRALinear) and q.scaling == 8.0
    assert q.lora_A.shape == (4, q.in_features) and q.lora_B.shape == (q.out_features, 4)
    assert torch.count_nonzero(q.lora_B) == 0 and torch.count_nonzero(q.lora_A) > 0
    assert not isinstance(get_module(blocks_of(model, arch)[0], arch.k), LoRALinear)
    # the base weights keep their names (a pretrained state dict still loads)
    assert "roberta.encoder.layer.0.attention.self.query.weight" in dict(model.named_parameters())


@pytest.mark.parametrize("kwargs,field", [({"r": 0}, "lora.r"), ({"alpha": 0.0}, "lora.alpha"),
                                          ({"dropout": 1.0}, "lora.dropout"), ({"targets": ("x",)}, "lora.targets"),
                                          ({"targets": ("q", "q")}, "lora.targets"), ({"targets": ()}, "lora.targets")])
def test_invalid_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LoRA(**kwargs)


def test_apply_twice_is_refused():
    model, _ = build()
    apply_method(model, LoRA())
    from bench.config import ConfigError

    with pytest.raises(ConfigError, match="already has LoRA"):
        apply_method(model, LoRA())


def test_gpt2_generation_same_with_and_without_cache():
    model, _ = build("tiny-gpt2", "generate")
    apply_method(model, LoRA(r=4, targets=("q", "v")))
    randomise_b(model)
    prompt = torch.tensor([[ord(c) for c in "name : Aromi |"]])
    kwargs = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 256}
    with torch.no_grad():
        cached = model.generate(prompt, use_cache=True, **kwargs)
        uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape[1] == prompt.shape[1] + 8
    assert torch.equal(cached, uncached)
