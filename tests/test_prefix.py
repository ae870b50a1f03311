"""Prefix tuning: injected inside attention for every family, exact against a hand-written attention, masks and
padding, GPT-2 generation with and without the KV cache, finalize, saved state, and the paper counts."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bench.models import apply_method, build_meta, load_model, model_config
from methods import Prefix, count_params, finalize, load_method_state, method_state_dict
from methods.base import blocks_of, get_module
from methods.base import position_offset
from methods.prefix import PrefixEncoder
from generation_checks import assert_same_tokens_with_and_without_cache

torch.set_num_threads(1)

FAMILIES = [("tiny-roberta", "classify"), ("tiny-bert", "classify"), ("tiny-deberta", "classify"),
            ("tiny-gpt2", "generate"), ("tiny-llama", "generate"), ("tiny-qwen2", "generate")]
SMALL = {"length": 3, "mlp_hidden": 16}


def build(name: str, kind: str, seed: int = 0, attn: str | None = None):
    torch.manual_seed(seed)
    model, _ = load_model(name, kind=kind, num_labels=3)
    if attn is not None:
        model.config._attn_implementation = attn
    return model.eval()


def with_prefix(name: str, kind: str, seed: int = 0, attn: str | None = None, **fields):
    model = build(name, kind, attn=attn)
    torch.manual_seed(seed + 100)
    arch = apply_method(model, Prefix(**{**SMALL, **fields}))
    return model, arch


def inputs(pad_row: bool = True) -> dict:
    ids = torch.randint(5, 250, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    if pad_row:
        mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_prefix_changes_outputs_and_trains(name, kind):
    x = inputs()
    base = build(name, kind)
    model, arch = with_prefix(name, kind)
    with torch.no_grad():
        assert not torch.allclose(model(**x).logits, base(**x).logits, atol=1e-5)
    encoder = model.prefix_encoder
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    head = {id(p) for m in arch.head if hasattr(model, m.split(".")[0]) for p in get_module(model, m).parameters()}
    assert trainable == {id(p) for p in encoder.parameters()} | head
    model.train()
    model(**x).logits.square().sum().backward()
    for p in (encoder.embedding, encoder.mlp_in.weight, encoder.mlp_out.weight):
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_padded_row_matches_running_alone(name, kind):
    """The extended mask hides padding and shows the prefix: a padded row equals the same row without pads."""
    model, _ = with_prefix(name, kind)
    x = inputs()
    with torch.no_grad():
        batched = model(**x).logits[1]
        alone = model(input_ids=x["input_ids"][1:, :6], attention_mask=x["attention_mask"][1:, :6]).logits[0]
    if kind == "generate":
        batched = batched[:6]
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kind", [("tiny-roberta", "classify"), ("tiny-bert", "classify"),
                                       ("tiny-gpt2", "generate")])
def test_sdpa_and_eager_agree(name, kind):
    x = inputs()
    sdpa, _ = with_prefix(name, kind, attn="sdpa")
    eager, _ = with_prefix(name, kind, attn="eager")
    assert sdpa.config._attn_implementation == "peft_bench_prefix_sdpa"
    assert eager.config._attn_implementation == "peft_bench_prefix_eager"
    with torch.no_grad():
        torch.testing.assert_close(sdpa(**x).logits, eager(**x).logits, rtol=1e-4, atol=1e-5)


def _reference_attention(q, k, v, pk, pv, causal: bool, scale: float):
    """softmax([q pk^T, q k^T] * scale) [pv; v], prefix visible to all, causal over real keys if asked.
    q, k, v, pk, pv: (batch, heads, len, d_head)."""
    scores = torch.cat([pk, k], dim=2) @ q.transpose(-1, -2)
    scores = scores.transpose(-1, -2) * scale
    t, p = q.shape[2], pk.shape[2]
    if causal:
        allowed = torch.cat([torch.ones(t, p, dtype=torch.bool), torch.ones(t, t, dtype=torch.bool).tril()], dim=1)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ torch.cat([pv, v], dim=2)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads).transpose(1, 2)


def _layer_prefix(model, layer: int, heads: int):
    kv = model.prefix_encoder.layer_kv(layer)                     # (2, length, d)
    return _heads(kv[0:1], heads), _heads(kv[1:2], heads)


def test_roberta_attention_is_exact():
    model, arch = with_prefix("tiny-roberta", "classify")
    heads = model.config.num_attention_heads
    attn = get_module(blocks_of(model, arch)[1], arch.attn)
    h = torch.randn(1, 7, model.config.hidden_size)
    with torch.no_grad():
        out = attn(h, attention_mask=None)[0]
        q, k, v = (_heads(proj(h), heads) for proj in (attn.query, attn.key, attn.value))
        pk, pv = _layer_prefix(model, 1, heads)
        ref = _reference_attention(q, k, v, pk, pv, False, q.shape[-1] ** -0.5)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(1, 7, -1), rtol=1e-5, atol=1e-6)


def test_gpt2_attention_is_exact_and_causal():
    model, arch = with_prefix("tiny-gpt2", "generate")
    heads, d = model.config.n_head, model.config.n_embd
    attn = get_module(blocks_of(model, arch)[1], arch.attn)
    h = torch.randn(1, 7, d)
    with torch.no_grad():
        out = attn(h, attention_mask=None)[0]
        q, k, v = (_heads(t, heads) for t in attn.c_attn(h).split(d, dim=2))
        pk, pv = _layer_prefix(model, 1, heads)
        ref = _reference_attention(q, k, v, pk, pv, True, q.shape[-1] ** -0.5)
        ref = attn.c_proj(ref.transpose(1, 2).reshape(1, 7, d))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_deberta_attention_is_exact_without_relative_positions():
    from transformers import AutoModelForSequenceClassification

    config = model_config("tiny-deberta", num_labels=3)
    config.relative_attention, config.pos_att_type = False, []
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    arch = apply_method(model, Prefix(**SMALL))
    heads = config.num_attention_heads
    attn = get_module(blocks_of(model, arch)[1], arch.attn)
    h = torch.randn(1, 7, config.hidden_size)
    with torch.no_grad():
        out = attn(h, torch.ones(1, 1, 7, 7, dtype=torch.long))[0]
        q, k, v = (_heads(proj(h), heads) for proj in (attn.query_proj, attn.key_proj, attn.value_proj))
        pk, pv = _layer_prefix(model, 1, heads)
        ref = _reference_attention(q, k, v, pk, pv, False, q.shape[-1] ** -0.5)
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(1, 7, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_real_key_scores_are_unchanged(name, kind):
    """Layer 0 sees the same input with and without prefix (GPT-2: the base model given the shifted positions):
    renormalised over the real keys, its attention probabilities equal the base model's (DeBERTa: the
    relative-position terms of real keys are kept)."""
    x = inputs(pad_row=False)
    attn = None if name == "tiny-deberta" else "eager"
    base = build(name, kind, attn=attn)
    model, _ = with_prefix(name, kind, attn=attn)
    shifted = {}
    if position_offset(model):
        shifted["position_ids"] = torch.arange(x["input_ids"].shape[1])[None] + position_offset(model)
    with torch.no_grad():
        ref = base(**x, **shifted, output_attentions=True).attentions[0]
        got = model(**x, output_attentions=True).attentions[0]
    length = SMALL["length"]
    assert got.shape[-1] == ref.shape[-1] + length
    assert torch.all(got[..., :length] > 0)                        # every query attends to the prefix
    real = got[..., length:]
    torch.testing.assert_close(real / real.sum(-1, keepdim=True), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("beams", [1, 3])
def test_gpt2_generate_same_tokens_with_and_without_cache(attn, beams):
    model, _ = with_prefix("tiny-gpt2", "generate", attn=attn)
    assert_same_tokens_with_and_without_cache(model, beams)


def test_gpt2_cache_holds_real_tokens_and_steps_match_full_forward():
    model, _ = with_prefix("tiny-gpt2", "generate")
    ids = torch.randint(5, 250, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :3], use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        assert cache.get_seq_length() == 3                         # no prefix positions in the cache
        steps = [out.logits]
        for start, stop in [(3, 5), (5, 6), (6, 7), (7, 8)]:       # a chunk of 2 new tokens, then one at a time
            out = model(input_ids=ids[:, start:stop], cache=cache, use_cache=True)
            steps.append(out.logits)
        assert cache.get_seq_length() == 8
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)
    base = build("tiny-gpt2", "generate")
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, full, atol=1e-4)


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_finalize_keeps_outputs_and_stores_only_the_prefix(name, kind):
    x = inputs()
    model, arch = with_prefix(name, kind)
    counts = count_params(model, arch, Prefix(**SMALL))
    with torch.no_grad():
        before = model(**x).logits
        finalize(model)
        after = model(**x).logits
    assert torch.equal(after, before)
    encoder = model.prefix_encoder
    assert [n for n, _ in encoder.named_parameters()] == ["table"]
    layers, d = len(blocks_of(model, arch)), encoder.d
    assert encoder.table.shape == (layers, 2, SMALL["length"], d)
    final = count_params(model, arch, Prefix(**SMALL))
    assert final.stored == final.trained == counts.stored == SMALL["length"] * layers * 2 * d
    assert counts.trained > counts.stored                          # the MLP was trained, not stored


@pytest.mark.parametrize("finalized", [False, True])
@pytest.mark.parametrize("name,kind", [("tiny-deberta", "classify"), ("tiny-gpt2", "generate")])
def test_saved_state_reproduces_outputs(name, kind, finalized):
    x = inputs()
    trained, arch = with_prefix(name, kind, seed=0)
    if finalized:
        finalize(trained)
    with torch.no_grad():
        expected = trained(**x).logits
    state = method_state_dict(trained, arch)
    fresh, _ = with_prefix(name, kind, seed=1)
    if finalized:
        finalize(fresh)                     # the documented order: apply, finalize, load
    with torch.no_grad():
        assert not torch.allclose(fresh(**x).logits, expected)
    load_method_state(fresh, state)
    with torch.no_grad():
        assert torch.equal(fresh(**x).logits, expected)


def test_dropout_only_in_training():
    model, _ = with_prefix("tiny-roberta", "classify", dropout=0.5)
    assert isinstance(model.prefix_encoder.dropout, nn.Dropout)
    a, b = model.prefix_encoder.layer_kv(0), model.prefix_encoder.layer_kv(0)
    assert torch.equal(a, b)                                       # eval: deterministic
    model.train()
    encoder = model.prefix_encoder
    first = encoder.layer_kv(0)
    assert encoder.layer_kv(0) is first                            # one draw per forward pass of the model
    encoder.new_pass()
    assert not torch.equal(encoder.layer_kv(0), first)             # the next pass draws another mask
    assert isinstance(Prefix().apply.__self__, Prefix) and Prefix().dropout == 0.0


@pytest.mark.parametrize("name,kind", [("tiny-roberta", "classify"), ("tiny-gpt2", "generate"),
                                       ("tiny-deberta", "classify")])
def test_mlp_runs_once_per_forward_pass_and_gradients_accumulate(name, kind):
    """Each forward pass of the model computes the prefix afresh (a pre-hook), once for all layers: two passes
    with their backward passes (gradient accumulation) give twice one pass's gradient, and the prefix follows
    the parameters after they change."""
    model, _ = with_prefix(name, kind)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0                                               # the two passes compute the same
    batch = inputs()
    encoder = model.prefix_encoder
    calls = []
    encoder.mlp_out.register_forward_hook(lambda *_: calls.append(1))
    model(**batch).logits.float().square().mean().backward()
    assert len(calls) == 1
    once = {n: p.grad.clone() for n, p in encoder.named_parameters()}
    model(**batch).logits.float().square().mean().backward()
    assert len(calls) == 2
    for n, p in encoder.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[n])
    before = encoder.layer_kv(0).detach().clone()
    with torch.no_grad():
        encoder.mlp_out.bias.add_(1.0)
    model(**batch)
    assert not torch.equal(encoder.layer_kv(0), before)
    assert encoder.layer_kv(0).grad_fn is not None                 # a pass held outside a forward ...
    twin = copy.deepcopy(model)                                     # ... is left out of a copy
    torch.testing.assert_close(twin(**batch).logits, model(**batch).logits)


def test_validation():
    for bad in ({"length": 0}, {"mlp_hidden": 1.5}, {"dropout": 1.0}):
        with pytest.raises(ValueError, match="prefix\\."):
            Prefix(**bad)


# recipes.md section 1: stored prefix = length x layers x 2 x d; trained adds the embedding and the MLP
PAPER_ROWS = [("gpt2-medium", 5, 245_760), ("gpt2-medium", 10, 491_520),
              ("gpt2-large", 5, 460_800), ("gpt2-large", 10, 921_600)]


@pytest.mark.parametrize("model_name,length,expected", PAPER_ROWS)
def test_paper_counts(model_name, length, expected):
    method = Prefix(length=length)
    model, arch = build_meta(model_name, "generate", method)
    counts = count_params(model, arch, method)
    d, layers = model.config.n_embd, model.config.n_layer
    assert counts.stored == expected == length * layers * 2 * d
    assert counts.trained == length * d + (d * 512 + 512) + (512 * layers * 2 * d + layers * 2 * d)
    finalize(model)                                                # works on the meta device too
    assert isinstance(model.prefix_encoder, PrefixEncoder)
    assert count_params(model, arch, method).trained == expected


def test_extend_mask_causal_without_a_mask_is_bottom_right_aligned():
    from methods.prefix import _extend_mask

    causal = type("Attn", (), {"is_causal": True})()
    mask = _extend_mask(None, causal, q_len=2, k_len=4, length=1, device="cpu")
    expected = torch.tensor([[True, True, True, True, False],      # query at real position 2 (of 0..3)
                             [True, True, True, True, True]])      # query at real position 3
    assert torch.equal(mask[0, 0], expected)
    bidirectional = type("Attn", (), {"is_causal": False})()
    assert _extend_mask(None, bidirectional, q_len=2, k_len=4, length=1, device="cpu") is None
    additive = torch.tensor([[[[0.0, -1e9]]]])
    assert torch.equal(_extend_mask(additive, causal, 1, 2, 2, "cpu"), torch.tensor([[[[0.0, 0.0, 0.0, -1e9]]]]))


@pytest.mark.parametrize("name,kind", [("tiny-deberta", "classify"), ("tiny-gpt2", "generate")])
def test_deepcopy_uses_the_copied_prefix(name, kind):
    x = inputs()
    model, _ = with_prefix(name, kind)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(twin(**x).logits, model(**x).logits)
        twin.prefix_encoder.embedding.add_(1.0)
        assert not torch.allclose(twin(**x).logits, model(**x).logits)
        Prefix().finalize(twin)                                    # the method's own handle on finalize
    assert twin.prefix_encoder.finalized and not model.prefix_encoder.finalized


def test_shift_positions_keeps_the_old_run_ids_at_false():
    """Runs made before `shift_positions` existed computed 0..T-1: at False the field stays out of the run_id."""
    from bench.spec import RunSpec, resolve

    plain = resolve(RunSpec(model="tiny-gpt2", task="e2e", method="prefix", method_config={"length": 5}))
    assert plain.method_config["shift_positions"] is False
    unshifted = resolve(RunSpec(model="tiny-gpt2", task="e2e", method="prefix",
                                method_config={"length": 5, "shift_positions": False}))
    shifted = resolve(RunSpec(model="tiny-gpt2", task="e2e", method="prefix",
                              method_config={"length": 5, "shift_positions": True}))
    assert unshifted.run_id == plain.run_id != shifted.run_id
    without = dict(plain.method_config)
    del without["shift_positions"]
    assert RunSpec(model="tiny-gpt2", task="e2e", method="prefix", method_config=without).run_id == plain.run_id
