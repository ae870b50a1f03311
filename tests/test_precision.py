"""Training precision: what "auto" picks, and the frozen base kept in bf16 (trainable parameters, the head and
the optimizer state in fp32) computing exactly what plain bf16 autocast computes, for every method and family."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

import bench.precision as precision
from bench.models import apply_method, load_model
from bench.precision import keep_frozen_in, precision_name, resolve_precision
from bench.spec import TrainConfig
from bench.train import make_accelerator, train_steps
from methods import METHODS, UnsupportedFamily
from tests.gen_helpers import four_sentence_loader

torch.set_num_threads(1)

MODELS = [("tiny-roberta", "classify"), ("tiny-bert", "classify"), ("tiny-deberta", "classify"),
          ("tiny-gpt2", "generate"), ("tiny-gpt2", "classify")]


def build(model_name: str, kind: str, method: str, seed: int = 0):
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_name, kind=kind, num_labels=3)
    try:
        apply_method(model, METHODS[method]())
    except Exception as exc:  # a family the method does not support is a documented, checked error
        if isinstance(exc.__context__, UnsupportedFamily) or "not available for family" in str(exc):
            pytest.skip(str(exc))
        raise
    return model, tokenizer


def inputs(tokenizer) -> dict:
    return dict(tokenizer(["a tiny test sentence", "and another, longer one: 42!"], padding=True,
                          return_tensors="pt"))


def test_explicit_settings_pass_through_and_auto_follows_the_cpu(monkeypatch):
    assert resolve_precision("no", "cpu") == "no" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp16", "cpu") == "fp16"
    monkeypatch.setattr(precision, "cpu_bf16_matmul", lambda: False)
    assert resolve_precision("auto", "cpu") == "no"
    monkeypatch.setattr(precision, "cpu_bf16_matmul", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "mps") == "no"
    assert precision_name("no") == "fp32" and precision_name("bf16") == "bf16" and precision_name("fp16") == "fp16"


def test_cpu_bf16_needs_the_units_and_a_faster_matmul(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 3.0)
    monkeypatch.setattr(precision, "cpu_bf16_capability",
                        lambda: {"amx_tile": False, "avx512_bf16": False, "mkldnn_bf16": True})
    assert not precision.cpu_bf16_matmul()                       # no bf16 units reported
    monkeypatch.setattr(precision, "cpu_bf16_capability",
                        lambda: {"amx_tile": True, "avx512_bf16": True, "mkldnn_bf16": True})
    assert precision.cpu_bf16_matmul()
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 1.0)
    assert not precision.cpu_bf16_matmul()                       # reported, but not faster here


def test_the_capability_probe_answers_on_this_machine():
    cap = precision.cpu_bf16_capability()
    assert set(cap) == {"amx_tile", "avx512_bf16", "mkldnn_bf16"} and all(isinstance(v, bool) for v in cap.values())
    assert precision.cpu_bf16_speedup(n=64, repeats=1) > 0


def test_make_accelerator_resolves_auto(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_matmul", lambda: False)
    if not torch.cuda.is_available():
        assert str(make_accelerator(TrainConfig()).mixed_precision) == "no"
    assert str(make_accelerator(TrainConfig(mixed_precision="bf16")).mixed_precision) == "bf16"


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("method", list(METHODS))
def test_frozen_matmul_weights_in_bf16_the_rest_fp32(method, model_name, kind):
    model, _ = build(model_name, kind, method)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    embeddings = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    n = keep_frozen_in(model, "bf16")
    assert {id(p) for p in model.parameters() if p.requires_grad} == trainable     # nothing (un)frozen
    matmul = {id(p) for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)) for p in m.parameters(False)}
    lowered = 0
    for p in {id(p): p for p in model.parameters()}.values():
        should = id(p) in matmul and id(p) not in trainable and id(p) not in embeddings
        assert p.dtype == (torch.bfloat16 if should else torch.float32)
        lowered += should
    assert n == lowered
    if method == "full":
        assert n == 0                  # fp32 master weights
    elif method != "topk":             # top-2 of a 2-layer tiny model trains every block
        assert n > 0
    assert keep_frozen_in(model, "no") == 0 and keep_frozen_in(model, "bf16") == n   # idempotent


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_base_computes_what_plain_autocast_computes(method, model_name, kind):
    reference, tokenizer = build(model_name, kind, method)
    lowered, _ = build(model_name, kind, method)
    lowered.load_state_dict(reference.state_dict())
    with torch.no_grad():                        # a trained-looking method: nonzero updates everywhere
        for p, q in zip(reference.parameters(), lowered.parameters()):
            if p.requires_grad:
                noise = torch.randn_like(p) * 0.02
                p.add_(noise)
                q.add_(noise)
    keep_frozen_in(lowered, "bf16")
    batch = inputs(tokenizer)
    outs = []
    for model in (reference, lowered):
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(model(**batch).logits.float())
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_training_moves_only_the_trainable_fp32_parameters(method, model_name, kind):
    model, tokenizer = build(model_name, kind, method)
    loader = four_sentence_loader(tokenizer, kind)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    stats = train_steps(model, loader, kind=kind, cfg=TrainConfig(lr=1e-2, mixed_precision="bf16"), max_steps=2)
    assert stats.steps == 2 and torch.isfinite(torch.tensor(stats.loss))
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.dtype == torch.float32
        else:
            assert torch.equal(p.float(), before[name].to(p.dtype).float()), f"{name} moved"
    moved = {n for n, p in model.named_parameters() if n in trainable and not torch.equal(p, before[n])}
    assert moved, "no trainable parameter moved"

