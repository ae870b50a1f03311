"""LoRA, prefix tuning and soft prompts on the Llama layout against PEFT: the same weights copied by hand into
PEFT's own model; logits and gradients within 1e-6 (gradients relative to their largest entry) on a tiny Llama
(bias-free, tied LM head) and a tiny Qwen2 (q/k/v biases), both with grouped-query attention (4 query / 2
key-value heads) and rotary positions. Prefix tuning as PEFT runs it: keys and values per key-value head, joined
after the rotary embedding (PEFT's cache), the real tokens at positions L..L+T-1 (`shift_positions=True`)."""
from __future__ import annotations

import copy

import pytest
import torch

from bench.models import apply_method, load_model
from methods import LoRA, Prefix, Prompt
from methods.lora import LoRALinear

peft = pytest.importorskip("peft")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

torch.set_num_threads(1)
TOL = 1e-6
MODELS = ["tiny-llama", "tiny-qwen2"]
PEFT_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "ffn_in": "up_proj",
              "ffn_out": "down_proj"}


def base_model(name: str):
    torch.manual_seed(0)
    model, _ = load_model(name, kind="generate")
    return model.eval()


def batch():
    ids = torch.randint(5, 250, (3, 10), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0                                   # right padding, as training batches are
    return ids, mask


def diff(a, b) -> float:
    return float((a - b).detach().abs().max())


def backward_both(ours, theirs, drop: int = 0):
    """Forward both on one batch, check the logits, and backpropagate the same random projection of them.
    `drop`: leading positions of PEFT's logits that ours do not have (a soft prompt's)."""
    ids, mask = batch()
    logits = ours(input_ids=ids, attention_mask=mask).logits
    peft_logits = theirs(input_ids=ids, attention_mask=mask).logits[:, drop:]
    assert logits.shape == peft_logits.shape
    assert diff(logits, peft_logits) < TOL
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(5))
    (logits * target).sum().backward()
    (peft_logits * target).sum().backward()
    return logits


def assert_grads_equal(pairs):
    assert pairs
    for ours, theirs in pairs:
        assert ours is not None and theirs is not None and torch.count_nonzero(ours) > 0
        assert diff(ours, theirs) < TOL * max(1.0, float(theirs.abs().max()))   # float32 sums of ~10


@pytest.mark.parametrize("name", MODELS)
def test_lora_equals_peft(name):
    targets = ("q", "k", "v", "o", "gate", "ffn_in", "ffn_out")
    base = base_model(name)
    ours = copy.deepcopy(base)
    torch.manual_seed(1)
    apply_method(ours, LoRA(r=2, alpha=8.0, targets=targets))
    config = peft.LoraConfig(task_type=peft.TaskType.CAUSAL_LM, r=2, lora_alpha=8.0, lora_dropout=0.0,
                             target_modules=[PEFT_NAMES[t] for t in targets])
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    layers = {n: m for n, m in ours.named_modules() if isinstance(m, LoRALinear)}
    assert len(layers) == 2 * len(targets)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for n, layer in layers.items():
            layer.lora_B.normal_(generator=gen)        # B = 0 at init would make the check vacuous
            their = theirs.base_model.model.get_submodule(n)
            their.lora_A["default"].weight.copy_(layer.lora_A)
            their.lora_B["default"].weight.copy_(layer.lora_B)
    backward_both(ours, theirs)
    pairs = []
    for n, layer in layers.items():
        their = theirs.base_model.model.get_submodule(n)
        pairs += [(layer.lora_A.grad, their.lora_A["default"].weight.grad),
                  (layer.lora_B.grad, their.lora_B["default"].weight.grad)]
    assert_grads_equal(pairs)


def prefix_pair(name: str, length: int = 4, hidden: int = 24):
    base = base_model(name)
    ours = copy.deepcopy(base)
    torch.manual_seed(1)
    apply_method(ours, Prefix(length=length, mlp_hidden=hidden, shift_positions=True))
    config = peft.PrefixTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=length,
                                     prefix_projection=True, encoder_hidden_size=hidden)
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    encoder, penc = ours.prefix_encoder, theirs.prompt_encoder["default"]
    assert penc.embedding.weight.shape == encoder.embedding.shape == (length, 16)   # 2 kv heads x 8
    with torch.no_grad():
        penc.embedding.weight.copy_(encoder.embedding)
        penc.transform[0].weight.copy_(encoder.mlp_in.weight)
        penc.transform[0].bias.copy_(encoder.mlp_in.bias)
        penc.transform[2].weight.copy_(encoder.mlp_out.weight)
        penc.transform[2].bias.copy_(encoder.mlp_out.bias)
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("name", MODELS)
def test_prefix_equals_peft(name):
    ours, theirs = prefix_pair(name)
    backward_both(ours, theirs)
    enc, penc = ours.prefix_encoder, theirs.prompt_encoder["default"]
    assert_grads_equal([(enc.embedding.grad, penc.embedding.weight.grad),
                        (enc.mlp_in.weight.grad, penc.transform[0].weight.grad),
                        (enc.mlp_in.bias.grad, penc.transform[0].bias.grad),
                        (enc.mlp_out.weight.grad, penc.transform[2].weight.grad),
                        (enc.mlp_out.bias.grad, penc.transform[2].bias.grad)])


@pytest.mark.parametrize("name", MODELS)
def test_prefix_positions_matter(name):
    """The check can fail: the real tokens' rotary positions 0..T-1 give other logits than PEFT's L..L+T-1."""
    ours, theirs = prefix_pair(name)
    ids, mask = batch()
    with torch.no_grad():
        zero_based = ours(input_ids=ids, attention_mask=mask, position_ids=torch.arange(ids.shape[1])[None]).logits
        assert diff(zero_based, theirs(input_ids=ids, attention_mask=mask).logits) > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_prefix_cached_steps_equal_peft(name):
    """A prompt, then tokens one at a time through the KV cache at key-value-head width (PEFT's cache holds the
    prefix, ours does not)."""
    ours, theirs = prefix_pair(name)
    ids = batch()[0][:1]
    with torch.no_grad():
        out = ours(input_ids=ids[:, :6], use_cache=True)
        p_out = theirs(input_ids=ids[:, :6], use_cache=True)
        assert diff(out.logits, p_out.logits) < TOL
        cache, p_cache = out.past_key_values, p_out.past_key_values
        assert cache.get_seq_length() == 6 and p_cache.get_seq_length() == 6 + 4
        for t in range(6, ids.shape[1]):
            out = ours(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            p_out = theirs.get_base_model()(input_ids=ids[:, t:t + 1], past_key_values=p_cache, use_cache=True,
                                            attention_mask=torch.ones(1, 4 + t + 1, dtype=torch.long))
            assert diff(out.logits, p_out.logits) < TOL
            cache, p_cache = out.past_key_values, p_out.past_key_values


@pytest.mark.parametrize("name", MODELS)
def test_prompt_equals_peft(name):
    base = base_model(name)
    ours = copy.deepcopy(base)
    torch.manual_seed(1)
    apply_method(ours, Prompt(length=3))
    config = peft.PromptTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=3)
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.soft_prompt.weight)
    backward_both(ours, theirs, drop=3)                 # PEFT's logits keep the prompt positions in front
    assert_grads_equal([(ours.soft_prompt.weight.grad, theirs.prompt_encoder["default"].embedding.weight.grad)])
