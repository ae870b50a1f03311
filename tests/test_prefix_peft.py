"""Prefix tuning on GPT-2 against PEFT's (the released code's placement: the prefix in front of every layer's keys
and values, the real tokens at positions L..L+T-1): same embedding and MLP weights, copied by hand into a
`PrefixTuningConfig(prefix_projection=True)` model; logits and gradients within 1e-6, with the KV cache too."""
from __future__ import annotations

import copy

import pytest
import torch

from bench.models import apply_method, load_model
from methods import Prefix
from methods.base import position_offset

peft = pytest.importorskip("peft")
# PEFT passes its prefix as `past_key_values`, which transformers 5 renamed `cache`
pytestmark = pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")

torch.set_num_threads(1)
LENGTH, HIDDEN = 4, 24
TOL = 1e-6


def pair(seed: int = 0):
    """(ours, PEFT's) on the same tiny GPT-2, with the same prefix embedding and MLP."""
    torch.manual_seed(seed)
    base, _ = load_model("tiny-gpt2", kind="generate")
    base.eval()
    ours = copy.deepcopy(base)
    torch.manual_seed(seed + 1)
    apply_method(ours, Prefix(length=LENGTH, mlp_hidden=HIDDEN, shift_positions=True))
    config = peft.PrefixTuningConfig(task_type=peft.TaskType.CAUSAL_LM, num_virtual_tokens=LENGTH,
                                     prefix_projection=True, encoder_hidden_size=HIDDEN)
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    encoder = theirs.prompt_encoder["default"]
    with torch.no_grad():
        encoder.embedding.weight.copy_(ours.prefix_encoder.embedding)
        encoder.transform[0].weight.copy_(ours.prefix_encoder.mlp_in.weight)
        encoder.transform[0].bias.copy_(ours.prefix_encoder.mlp_in.bias)
        encoder.transform[2].weight.copy_(ours.prefix_encoder.mlp_out.weight)
        encoder.transform[2].bias.copy_(ours.prefix_encoder.mlp_out.bias)
    return ours.eval(), theirs.eval()


def batch():
    ids = torch.randint(5, 250, (3, 10), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0                                   # right padding, as training batches are
    return ids, mask


def diff(a, b) -> float:
    return float((a - b).detach().abs().max())


def cache_of(out):
    return out.cache if getattr(out, "cache", None) is not None else out.past_key_values


def grads(ours, theirs):
    """Pairs of (our gradient, PEFT's gradient) of the prefix parameters."""
    enc, penc = ours.prefix_encoder, theirs.prompt_encoder["default"]
    return [(enc.embedding.grad, penc.embedding.weight.grad),
            (enc.mlp_in.weight.grad, penc.transform[0].weight.grad),
            (enc.mlp_in.bias.grad, penc.transform[0].bias.grad),
            (enc.mlp_out.weight.grad, penc.transform[2].weight.grad),
            (enc.mlp_out.bias.grad, penc.transform[2].bias.grad)]


def test_offset_is_the_prefix_length():
    ours, _ = pair()
    assert position_offset(ours) == LENGTH
    torch.manual_seed(0)
    unshifted, _ = load_model("tiny-gpt2", kind="generate")
    apply_method(unshifted, Prefix(length=LENGTH))         # the default (ours): 0..T-1
    assert position_offset(unshifted) == 0
    encoder, _ = load_model("tiny-roberta", kind="classify")
    apply_method(encoder, Prefix(length=LENGTH, shift_positions=True))
    assert position_offset(encoder) == 0                   # encoders are never shifted


def test_logits_and_gradients_equal_peft():
    ours, theirs = pair()
    ids, mask = batch()
    logits = ours(input_ids=ids, attention_mask=mask).logits
    peft_logits = theirs(input_ids=ids, attention_mask=mask).logits
    assert diff(logits, peft_logits) < TOL
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(5))
    (logits * target).sum().backward()
    (peft_logits * target).sum().backward()
    for g, pg in grads(ours, theirs):
        assert g is not None and pg is not None and torch.count_nonzero(g) > 0
        assert diff(g, pg) < TOL


def test_positions_matter():
    """The check can fail: with the real tokens at 0..T-1 the logits differ from PEFT's."""
    ours, theirs = pair()
    ids, mask = batch()
    with torch.no_grad():
        zero_based = ours(input_ids=ids, attention_mask=mask, position_ids=torch.arange(ids.shape[1])[None]).logits
        assert diff(zero_based, theirs(input_ids=ids, attention_mask=mask).logits) > 1e-2


def test_cached_steps_equal_peft():
    """A prompt, then tokens one by one through the KV cache (PEFT's cache holds the prefix, ours does not)."""
    ours, theirs = pair()
    ids, _ = batch()
    ids = ids[:1]
    with torch.no_grad():
        out = ours(input_ids=ids[:, :6], use_cache=True)
        p_out = theirs(input_ids=ids[:, :6], use_cache=True)
        assert diff(out.logits, p_out.logits) < TOL
        cache, p_cache = cache_of(out), cache_of(p_out)
        assert cache.get_seq_length() == 6 and p_cache.get_seq_length() == 6 + LENGTH
        for t in range(6, ids.shape[1]):
            out = ours(input_ids=ids[:, t:t + 1], cache=cache, use_cache=True)
            p_out = theirs.get_base_model()(input_ids=ids[:, t:t + 1], cache=p_cache, use_cache=True,
                                            attention_mask=torch.ones(1, LENGTH + t + 1, dtype=torch.long))
            assert diff(out.logits, p_out.logits) < TOL
            cache, p_cache = cache_of(out), cache_of(p_out)


def test_generate_with_offset_positions_equals_peft():
    """Explicit position ids are taken as given: `model.generate` with position ids + position_offset(model)
    continues as PEFT's greedy decoding does."""
    ours, theirs = pair()
    ids, _ = batch()
    ids = ids[:1, :5]
    common = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=1, pad_token_id=256)
    positions = torch.arange(ids.shape[1])[None] + position_offset(ours)
    with torch.no_grad():
        mine = ours.generate(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=positions, **common)
        manual = ids
        for _ in range(8):                               # greedy through PEFT's forward, no cache
            logits = theirs(input_ids=manual, attention_mask=torch.ones_like(manual)).logits
            manual = torch.cat([manual, logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(mine, manual)
