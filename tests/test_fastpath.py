"""The CPU training fast path (bench.fastpath): dropout drawn from its own generator at the right rate and scale,
attention under dropout equal to eager attention with the same mask, eval outputs unchanged, everything restored
on exit, and a seeded run reproducible."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bench.fastpath as fastpath
from bench.fastpath import cpu_fast_training, dropout, keep_multiplier
from bench.models import apply_method, load_model
from methods import METHODS

torch.set_num_threads(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_rate_scale_and_gradient(dtype, p):
    n = 400_000
    x = torch.ones(n, dtype=dtype, requires_grad=True)
    y = dropout(x, p, True, np.random.PCG64(1))
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / n) ** 0.5            # five standard deviations
    kept = y[y != 0].float()
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)), rtol=1e-2 if dtype == torch.bfloat16 else 1e-6)
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad == 0, y == 0)                          # the backward uses the forward's mask
    assert torch.allclose(x.grad[y != 0].float(), torch.full_like(kept, 2 / (1 - p)), rtol=1e-2)
    assert torch.equal(dropout(x, p, False), x) and torch.equal(dropout(x, 0.0, True), x)
    with pytest.raises(ValueError, match="between 0 and 1"):
        dropout(x, 1.5, True)


def test_masks_follow_the_torch_seed():
    x = torch.randn(64, 64)
    torch.manual_seed(3)
    a = dropout(x, 0.3, True)
    torch.manual_seed(3)
    b = dropout(x, 0.3, True)
    torch.manual_seed(4)
    c = dropout(x, 0.3, True)
    assert torch.equal(a, b) and not torch.equal(a, c)


class _Attn(nn.Module):
    """What train_attention reads from an attention module."""

    def __init__(self, impl: str, causal: bool):
        super().__init__()
        self.config = type("C", (), {"_attn_implementation": impl})()
        self.is_causal = causal


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", ["padding-mask", "causal-no-mask", "additive-mask"])
def test_train_attention_is_eager_attention_with_the_same_mask(case, dtype):
    """fp32 inputs: eager attention to rounding. bf16 inputs (as under autocast): the same to bf16 resolution,
    in bf16 (the scores, softmax and dropout run in fp32 inside, the output is cast back)."""
    torch.manual_seed(0)
    b, h, q, d, p = 2, 3, 5, 8, 0.2
    leaves = [torch.randn(b, h, q, d, requires_grad=True) for _ in range(3)]
    query, key, value = (t.to(dtype) for t in leaves)
    visible = torch.ones(b, 1, q, q, dtype=torch.bool)
    visible[1, ..., -2:] = False                                     # the second row's last two tokens padded
    if case == "padding-mask":
        mask, base, causal, ref_mask = visible, "sdpa", False, visible
    elif case == "causal-no-mask":
        mask, base, causal, ref_mask = None, "sdpa", True, torch.ones(q, q, dtype=torch.bool).tril()
    else:
        mask = torch.zeros(b, 1, q, q).masked_fill(~visible, torch.finfo(torch.float32).min)
        base, causal, ref_mask = "eager", False, visible
    module = _Attn(fastpath.IMPL_PREFIX + base, causal).train()
    rng = np.random.PCG64(7)
    twin = np.random.PCG64()
    twin.state = rng.state
    setattr(module, fastpath.STATE, fastpath._State(rng))
    out, _ = fastpath.train_attention(module, query, key, value, mask, dropout=p, scaling=d ** -0.5)

    q32, k32, v32 = leaves
    scores = (q32 @ k32.transpose(-1, -2)) * d ** -0.5
    scores = scores.masked_fill(~ref_mask, torch.finfo(torch.float32).min)
    probs = F.softmax(scores, dim=-1) * keep_multiplier((b, h, q, q), p, torch.float32, twin)
    ref = (probs @ v32).transpose(1, 2)
    assert out.shape == (b, q, h, d) and out.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=4e-2, atol=4e-2)
    torch.testing.assert_close(out.float(), ref, **tol)
    grads = torch.autograd.grad(out.float().square().sum(), leaves)
    ref_grads = torch.autograd.grad(ref.square().sum(), leaves)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=6e-2, atol=6e-2)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, **tol)


def _model(name: str, kind: str, method: str):
    torch.manual_seed(0)
    model, tokenizer = load_model(name, kind=kind, num_labels=2)
    if method != "full":
        apply_method(model, METHODS[method]())
    return model, tokenizer


CASES = [("tiny-bert", "classify", "lora"), ("tiny-roberta", "classify", "adapter"),
         ("tiny-gpt2", "generate", "prefix"), ("tiny-gpt2", "generate", "full"),
         ("tiny-deberta", "classify", "lora"), ("tiny-bert", "classify", "prefix")]


@pytest.mark.parametrize("name,kind,method", CASES)
def test_eval_outputs_unchanged_and_everything_restored(name, kind, method):
    model, tok = _model(name, kind, method)
    batch = dict(tok(["a tiny test sentence", "and another, longer one: 42!"], padding=True, return_tensors="pt"))
    impls = [getattr(m.config, "_attn_implementation", None) for m in model.modules() if hasattr(m, "config")]
    classes = [type(m) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
        with cpu_fast_training(model):
            during = model(**batch).logits
        after = model(**batch).logits
    assert torch.equal(before, during) and torch.equal(before, after)
    assert [type(m) for m in model.modules()] == classes
    assert [getattr(m.config, "_attn_implementation", None) for m in model.modules() if hasattr(m, "config")] == impls
    assert not any(hasattr(m, fastpath.STATE) for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"), cpu_fast_training(model):
        raise RuntimeError("boom")
    assert [type(m) for m in model.modules()] == classes and not any(hasattr(m, fastpath.STATE)
                                                                     for m in model.modules())


@pytest.mark.parametrize("name,kind,method", CASES)
def test_training_goes_through_the_fast_path_and_is_reproducible(name, kind, method, monkeypatch):
    calls = {"attention": 0, "dropout": 0}
    attention, drop = fastpath.train_attention, fastpath._Dropout.apply

    def counting_attention(*a, **k):
        calls["attention"] += 1
        return attention(*a, **k)

    def counting_dropout(*a, **k):
        calls["dropout"] += 1
        return drop(*a, **k)

    monkeypatch.setattr(fastpath, "train_attention", counting_attention)
    monkeypatch.setattr(fastpath._Dropout, "apply", counting_dropout)
    model, tok = _model(name, kind, method)
    batch = dict(tok(["a tiny test sentence", "and another, longer one: 42!"], padding=True, return_tensors="pt"))
    model.train()

    def grads(seed: int) -> list[torch.Tensor]:
        m = copy.deepcopy(model)
        torch.manual_seed(seed)
        with cpu_fast_training(m), torch.autocast("cpu", dtype=torch.bfloat16):
            m(**batch).logits.float().square().mean().backward()
        return [p.grad.clone() for p in m.parameters() if p.requires_grad]

    a, b, c = grads(1), grads(1), grads(2)
    assert calls["dropout"] > 0
    if name != "tiny-deberta":                   # DeBERTa-v2's attention is its own, not transformers' interface
        assert calls["attention"] > 0
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert all(torch.isfinite(x).all() for x in a)


def test_shared_cast_gives_the_gradients_autocast_gives():
    """With every dropout off the fast path changes nothing but the one cast per activation: same gradients."""
    model, tok = _model("tiny-bert", "classify", "lora")
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    batch = dict(tok(["a tiny test sentence", "and another, longer one: 42!"], padding=True, return_tensors="pt"))
    model.train()

    def grads(fast: bool) -> list[torch.Tensor]:
        m = copy.deepcopy(model)
        ctx = cpu_fast_training(m) if fast else torch.autocast("cpu", enabled=True, dtype=torch.bfloat16)
        with ctx, torch.autocast("cpu", dtype=torch.bfloat16):
            m(**batch).logits.float().square().mean().backward()
        return [p.grad for p in m.parameters() if p.requires_grad]

    for x, y in zip(grads(True), grads(False)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_left_alone_under_gradient_checkpointing():
    model, _ = _model("tiny-bert", "classify", "full")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with cpu_fast_training(model):
        assert not any(isinstance(m, fastpath.FastDropout) for m in model.modules())
