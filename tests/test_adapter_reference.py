"""Bottleneck adapters against hand-written references of AdapterHub's forward (adapters `methods/modeling.py`
Adapter.pre_forward / forward / post_forward; `models/bert/modeling_bert.py` BertOutputWithAdapters: dense ->
dropout -> bottleneck layer; `models/gpt2/modeling_gpt2.py`: the adapters get the sublayer output after its
dropout and the residual, layer_norm None).

The references run on an unadapted copy of the model whose sublayer forwards are replaced by the formulas written
out from that source, with the adapter weights copied over. None of the suite's adapter code runs in them.
"""
from __future__ import annotations

import copy
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.models import apply_method, load_model
from methods import Adapter
from methods.adapter import BottleneckAdapter
from methods.base import arch_of, blocks_of

torch.set_num_threads(1)

ENCODERS = ("tiny-roberta", "tiny-bert", "tiny-deberta")


def build(name: str, seed: int = 0):
    torch.manual_seed(seed)
    kind = "generate" if name == "tiny-gpt2" else "classify"
    model, _ = load_model(name, kind=kind, num_labels=3)
    return model.eval()


def batch(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 250, (3, 11), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def adapted(plain, kind: str, **fields):
    model = copy.deepcopy(plain)
    apply_method(model, Adapter(kind=kind, bottleneck=5, **fields))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():                     # away from the init: every weight random, visibly on the path
        for module in model.modules():
            if isinstance(module, BottleneckAdapter):
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def weights(adapter: BottleneckAdapter, copied: dict) -> dict:
    """Plain leaf tensors copied from one adapter (the reference shares nothing with the adapted model);
    `copied[adapter]` keeps them for gradient checks."""
    copied[adapter] = {k: v.detach().clone().requires_grad_(True) for k, v in adapter.state_dict().items()}
    return copied[adapter]


def bottleneck(w: dict, z: torch.Tensor, act) -> torch.Tensor:
    """AdapterHub Adapter.forward without the residual: adapter_up(non_linearity(adapter_down(z)))."""
    return F.linear(act(F.linear(z, w["down.weight"], w["down.bias"])), w["up.weight"], w["up.bias"])


def adapters_by_layer(model) -> dict[int, list[BottleneckAdapter]]:
    out: dict[int, list[BottleneckAdapter]] = {}
    for module in model.modules():
        if isinstance(module, BottleneckAdapter):
            out.setdefault(module.layer, []).append(module)
    return out


# -- references written from AdapterHub's source -----------------------------------------------------------------
def pfeiffer_output(w, act):
    """BertOutputWithAdapters with SeqBnConfig: original_ln_before, residual_before_ln, original_ln_after."""
    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        residual = hidden_states                                   # residual_before_ln=True
        hidden_states = self.LayerNorm(hidden_states + input_tensor)   # original_ln_before
        output = bottleneck(w, hidden_states, act) + residual      # Adapter.forward: up + residual_input
        return self.LayerNorm(output + input_tensor)               # post_forward: original_ln_after
    return forward


def houlsby_output(w, act, before_dropout: bool = False):
    """Bert(Self)OutputWithAdapters with DoubleSeqBnConfig (original_ln_before False, original_ln_after True).
    `before_dropout=True` is the placement this suite had before (adapter between dense and dropout)."""
    def forward(self, hidden_states, input_tensor):
        hidden_states = self.dense(hidden_states)
        if before_dropout:
            hidden_states = bottleneck(w, hidden_states, act) + hidden_states
            hidden_states = self.dropout(hidden_states)
        else:
            hidden_states = self.dropout(hidden_states)
            hidden_states = bottleneck(w, hidden_states, act) + hidden_states   # residual = hidden_states
        return self.LayerNorm(hidden_states + input_tensor)
    return forward


def gpt2_pfeiffer_block(block, w, act):
    """GPT2BlockWithAdapters: output_adapters(feed_forward_hidden_states, residual, None) with SeqBnConfig and no
    layer norm: hidden = h + x; adapter(hidden) + h; then + x."""
    seen = {}
    ln_2, mlp, block_forward = block.ln_2.forward, block.mlp.forward, block.forward

    def ln_2_forward(x):
        seen["x"] = x
        return ln_2(x)

    def mlp_forward(h):
        seen["h"] = mlp(h)
        return seen["h"]

    def forward(*args, **kwargs):
        block_forward(*args, **kwargs)                # runs attention, ln_2 and the FFN; its sum is replaced
        h, x = seen["h"], seen["x"]
        hidden = h + x                                # pre_forward: original_ln_before, layer_norm None
        output = bottleneck(w, hidden, act) + h       # Adapter.forward, residual = h (residual_before_ln)
        return output + x                             # post_forward: original_ln_after, layer_norm None
    block.ln_2.forward, block.mlp.forward, block.forward = ln_2_forward, mlp_forward, forward


def gpt2_houlsby_block(block, w_attn, w_ffn, act):
    """GPT2BlockWithAdapters with DoubleSeqBnConfig: h (attention / FFN output after its dropout) -> h + A(h),
    then the residual add of the block."""
    attn, mlp = block.attn.forward, block.mlp.forward

    def attn_forward(*args, **kwargs):
        out, weights_ = attn(*args, **kwargs)
        return bottleneck(w_attn, out, act) + out, weights_

    def mlp_forward(h):
        out = mlp(h)
        return bottleneck(w_ffn, out, act) + out
    block.attn.forward, block.mlp.forward = attn_forward, mlp_forward


def reference(plain, model, kind: str, *, before_dropout: bool = False):
    """An unadapted copy of `plain` running the hand-written forward with `model`'s adapter weights."""
    ref = copy.deepcopy(plain)
    ref.copied_weights = copied = {}
    found = adapters_by_layer(model)
    act = nn.SiLU() if kind == "houlsby" else nn.ReLU()
    for i, block in enumerate(blocks_of(ref, arch_of(ref))):
        layer = found[i]
        if hasattr(block, "ln_2"):                                    # GPT-2 block
            if kind == "pfeiffer":
                gpt2_pfeiffer_block(block, weights(layer[0], copied), act)
            else:
                attn_w, ffn_w = [weights(a, copied) for a in _houlsby_pair(model, i)]
                gpt2_houlsby_block(block, attn_w, ffn_w, act)
            continue
        if kind == "pfeiffer":
            block.output.forward = types.MethodType(pfeiffer_output(weights(layer[0], copied), act), block.output)
        else:
            attn_w, ffn_w = [weights(a, copied) for a in _houlsby_pair(model, i)]
            block.attention.output.forward = types.MethodType(houlsby_output(attn_w, act, before_dropout),
                                                              block.attention.output)
            block.output.forward = types.MethodType(houlsby_output(ffn_w, act, before_dropout), block.output)
    return ref


def _houlsby_pair(model, i: int) -> tuple[BottleneckAdapter, BottleneckAdapter]:
    """Layer i's (attention, FFN) adapters, told apart by where they sit in the module tree."""
    named = {name: m for name, m in model.named_modules() if isinstance(m, BottleneckAdapter) and m.layer == i}
    attn = [m for name, m in named.items() if ".attn." in name or ".attention." in name]
    ffn = [m for name, m in named.items() if m not in attn]
    assert len(attn) == 1 and len(ffn) == 1, sorted(named)
    return attn[0], ffn[0]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def outputs(model, x):
    out = model(**x, output_hidden_states=True)
    return out.logits, out.hidden_states[-1]


# -- tests ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ENCODERS + ("tiny-gpt2",))
def test_pfeiffer_equals_adapterhub(name):
    plain = build(name)
    model = adapted(plain, "pfeiffer")
    ref = reference(plain, model, "pfeiffer")
    x = batch()
    with torch.no_grad():
        logits, hidden = outputs(model, x)
        ref_logits, ref_hidden = outputs(ref, x)
        _, plain_hidden = outputs(plain, x)
    assert max_diff(hidden, ref_hidden) < 1e-5 and max_diff(logits, ref_logits) < 1e-5
    assert max_diff(hidden, plain_hidden) > 1e-1                 # the adapters are on the path


@pytest.mark.parametrize("name", ENCODERS + ("tiny-gpt2",))
def test_houlsby_equals_adapterhub_in_training(name):
    """Training mode with dropout on: the adapter reads the sublayer output after its dropout."""
    plain = build(name)
    for module in plain.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.3
    model = adapted(plain, "houlsby")
    ref = reference(plain, model, "houlsby")
    model.train(), ref.train()
    x = batch()
    with torch.no_grad():
        torch.manual_seed(5)
        logits, hidden = outputs(model, x)
        torch.manual_seed(5)
        ref_logits, ref_hidden = outputs(ref, x)
    assert max_diff(hidden, ref_hidden) < 1e-5 and max_diff(logits, ref_logits) < 1e-5
    if name in ENCODERS:                        # the test can tell: the adapter before the dropout differs
        before = reference(plain, model, "houlsby", before_dropout=True).train()
        with torch.no_grad():
            torch.manual_seed(5)
            before_logits, _ = outputs(before, x)
        assert max_diff(logits, before_logits) > 1e-3
    model.eval(), ref.eval()
    with torch.no_grad():
        assert max_diff(outputs(model, x)[0], outputs(ref, x)[0]) < 1e-5     # and in eval mode


@pytest.mark.parametrize("name", ("tiny-roberta", "tiny-gpt2"))
@pytest.mark.parametrize("kind", ("pfeiffer", "houlsby"))
def test_gradients_equal_adapterhub(name, kind):
    plain = build(name)
    model = adapted(plain, kind)
    ref = reference(plain, model, kind)
    x = batch()
    model(**x).logits.square().sum().backward()
    ref(**x).logits.square().sum().backward()
    assert len(ref.copied_weights) == len(adapters(model))
    for adapter, w in ref.copied_weights.items():
        for key, p in adapter.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0
            assert max_diff(p.grad, w[key].grad) < 1e-5, key


def adapters(model) -> list[BottleneckAdapter]:
    return [m for m in model.modules() if isinstance(m, BottleneckAdapter)]


def test_bert_init_statistics():
    """init="bert": every adapter Linear ~ N(0, 0.02^2), biases 0 (AdapterHub's init_bert_weights)."""
    plain = build("tiny-roberta")
    model = copy.deepcopy(plain)
    torch.manual_seed(0)
    apply_method(model, Adapter(kind="houlsby", bottleneck=32, init="bert"))
    found = [m for m in model.modules() if isinstance(m, BottleneckAdapter)]
    for part in ("down", "up"):
        w = torch.cat([getattr(a, part).weight.detach().flatten() for a in found])
        assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002
        assert all(torch.count_nonzero(getattr(a, part).bias) == 0 for a in found)
    x = batch()
    with torch.no_grad():
        assert max_diff(model(**x).logits, plain(**x).logits) > 0      # not the identity at init
    zero_up = copy.deepcopy(plain)
    apply_method(zero_up, Adapter(kind="houlsby", bottleneck=32))
    assert all(torch.count_nonzero(m.up.weight) == 0 for m in zero_up.modules()
               if isinstance(m, BottleneckAdapter))
