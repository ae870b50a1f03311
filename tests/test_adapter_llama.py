"""Bottleneck adapters on the Llama layout against hand-written references.

AdapterHub's Llama (adapters `models/llama/modeling_llama.py`, LlamaDecoderLayerWithAdapters) calls
`attention_adapters(o_proj output, residual, None)` and `output_adapters(mlp output, residual, None)` in place of
the two residual adds, with no LayerNorm (pre-norm blocks), as its GPT-2 does. With h a sublayer's output and x its
residual that gives Houlsby x + h + A(h) after attention and after the MLP, Pfeiffer s + A(s) on s = x + h after
the MLP; Lin et al.'s adapter (the Prefix-Tuning paper's adapter rows) is s + A(LN_own(s)) on the block output.

The references run on an unadapted copy whose decoder-layer forwards are replaced by those formulas, with the
adapter weights copied over as plain tensors; none of the suite's adapter code runs in them."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bench.models import apply_method, load_model
from methods import Adapter
from methods.adapter import BottleneckAdapter
from methods.base import arch_of, blocks_of

torch.set_num_threads(1)
MODELS = ("tiny-llama", "tiny-qwen2")


def plain_model(name: str):
    torch.manual_seed(0)
    model, _ = load_model(name, kind="generate")
    return model.eval()


def batch() -> dict:
    ids = torch.randint(5, 250, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def adapted(plain, kind: str):
    model = copy.deepcopy(plain)
    apply_method(model, Adapter(kind=kind, bottleneck=5))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():                     # every adapter weight random, visibly on the path
        for module in model.modules():
            if isinstance(module, BottleneckAdapter):
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def leaf_weights(adapter: BottleneckAdapter) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in adapter.state_dict().items()}


def bottleneck(w: dict, z: torch.Tensor, act) -> torch.Tensor:
    if "norm.weight" in w:
        z = F.layer_norm(z, z.shape[-1:], w["norm.weight"], w["norm.bias"])
    return F.linear(act(F.linear(z, w["down.weight"], w["down.bias"])), w["up.weight"], w["up.bias"])


def reference_layer(layer, kind: str, w_attn: dict | None, w_out: dict, act):
    def forward(hidden_states, **kwargs):
        residual = hidden_states
        h, _ = layer.self_attn(hidden_states=layer.input_layernorm(hidden_states), **kwargs)
        x = residual + h + (bottleneck(w_attn, h, act) if kind == "houlsby" else 0)
        h = layer.mlp(layer.post_attention_layernorm(x))
        if kind == "houlsby":
            return x + h + bottleneck(w_out, h, act)
        s = x + h
        return s + bottleneck(w_out, s, act)              # pfeiffer (no LayerNorm to repeat) and lin (own norm)
    return forward


def reference(plain, model, kind: str):
    """The unadapted copy with reference layers, and the leaf weights per adapter (for gradient checks)."""
    ref = copy.deepcopy(plain)
    arch = arch_of(model)
    act = {"houlsby": F.silu, "pfeiffer": F.relu, "lin": F.relu}[kind]
    leaves = {}
    for block, ref_block in zip(blocks_of(model, arch), blocks_of(ref, arch)):
        if kind == "houlsby":
            a_attn, a_out = block.self_attn.o_proj.adapter, block.mlp.down_proj.adapter
        else:
            a_attn, a_out = None, block.adapter
        for a in (a_attn, a_out):
            if a is not None:
                leaves[a] = leaf_weights(a)
        ref_block.forward = reference_layer(ref_block, kind, leaves.get(a_attn), leaves[a_out], act)
    return ref, leaves


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", ("houlsby", "pfeiffer", "lin"))
def test_placement_equals_the_reference(name, kind):
    plain = plain_model(name)
    model = adapted(plain, kind)
    ref, leaves = reference(plain, model, kind)
    x = batch()
    ours, theirs = model(**x).logits, ref(**x).logits
    assert float((ours - theirs).detach().abs().max()) < 1e-5
    assert float((ours - plain(**x).logits).detach().abs().max()) > 1e-2          # the adapters are on the path
    target = torch.randn(ours.shape, generator=torch.Generator().manual_seed(5))
    (ours * target).sum().backward()
    (theirs * target).sum().backward()
    for adapter, w in leaves.items():
        for key, leaf in w.items():
            mine = dict(adapter.named_parameters())[key].grad
            assert mine is not None and torch.count_nonzero(mine) > 0
            assert float((mine - leaf.grad).abs().max()) < 1e-5 * max(1.0, float(leaf.grad.abs().max()))
