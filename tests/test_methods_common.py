"""Every registered method on a tiny model of every family: exactly its parameters plus the head train, one
optimizer step moves only those, a saved method state reproduces the outputs in a fresh model, and methods that
add nothing at init leave the outputs unchanged."""
from __future__ import annotations

import pytest
import torch

from bench.models import apply_method, load_model
from methods import METHODS, UnsupportedFamily, load_method_state, method_state_dict
from methods.base import added_parameters, blocks_of, get_module, head_parameters

torch.set_num_threads(1)

# (model, kind): every family, the decoders both as a causal LM and as a classifier (Llama without bias terms,
# Qwen2 with q/k/v biases; both with grouped-query attention; Mistral with an untied LM head)
MODELS = [("tiny-roberta", "classify"), ("tiny-bert", "classify"), ("tiny-deberta", "classify"),
          ("tiny-gpt2", "generate"), ("tiny-gpt2", "classify"), ("tiny-llama", "generate"), ("tiny-llama", "classify"),
          ("tiny-qwen2", "generate"), ("tiny-qwen2", "classify"), ("tiny-mistral", "generate")]
ZERO_AT_INIT = {"full", "topk", "bitfit", "lora", "adapter"}   # outputs unchanged right after apply


def build(model_name: str, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_name, kind=kind, num_labels=3)
    return model.eval(), tokenizer


def batch(tokenizer):
    return dict(tokenizer(["a tiny test sentence", "and another, longer one: 42!"], padding=True,
                          return_tensors="pt"))


def apply(name: str, model):
    try:
        return apply_method(model, METHODS[name]())
    except Exception as exc:  # a family the method does not support is a documented, checked error
        if isinstance(exc.__context__, UnsupportedFamily) or "not available for family" in str(exc):
            pytest.skip(str(exc))
        raise


def expected_trainable(name: str, model, arch) -> set[int]:
    head = {id(p) for p in head_parameters(model, arch)}
    if name == "full":
        return {id(p) for p in model.parameters()}
    if name == "topk":
        params = list(blocks_of(model, arch)[-2].parameters()) + list(blocks_of(model, arch)[-1].parameters())
        if arch.final_norm:
            params += list(get_module(model, arch.final_norm).parameters())
        return {id(p) for p in params} | head
    if name == "bitfit":
        return {id(p) for n, p in model.named_parameters() if n.endswith("bias")} | head
    # every other method adds its own modules: those parameters, nothing else
    added = {id(p) for p in added_parameters(model)}
    assert added, f"{name} added no MethodModule parameters"
    return added | head


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("name", list(METHODS))
def test_exactly_method_and_head_trainable(name, model_name, kind):
    model, _ = build(model_name, kind)
    arch = apply(name, model)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == expected_trainable(name, model, arch)
    if kind == "classify":
        assert head_parameters(model, arch), "classifier head not found"
        assert all(p.requires_grad for p in head_parameters(model, arch))


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("name", list(METHODS))
def test_one_step_changes_only_trainable(name, model_name, kind):
    model, tokenizer = build(model_name, kind)
    apply(name, model)
    inputs = batch(tokenizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    logits = model(**inputs).logits
    torch.manual_seed(1)
    loss = (logits * torch.randn_like(logits)).sum()
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    moved = 0
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen {n} got a gradient"
            assert torch.equal(p, before[n]), f"frozen {n} changed"
        elif p.grad is not None and p.grad.abs().max() > 1e-5:  # visible in float32 after lr 0.1
            assert not torch.equal(p, before[n]), f"trainable {n} with a gradient did not move"
            moved += 1
    assert moved > 0


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("name", sorted(ZERO_AT_INIT & set(METHODS)))
def test_outputs_unchanged_at_init(name, model_name, kind):
    model, tokenizer = build(model_name, kind)
    inputs = batch(tokenizer)
    with torch.no_grad():
        reference = model(**inputs).logits
        apply(name, model)
        after = model(**inputs).logits
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-6)


def _perturb(model) -> None:
    """Move every trainable tensor away from its init (LoRA's B = 0, adapters' near-zero up-projection)."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize("model_name,kind", MODELS)
@pytest.mark.parametrize("name", list(METHODS))
def test_saved_method_state_reproduces_outputs(name, model_name, kind):
    trained, tokenizer = build(model_name, kind, seed=0)
    arch = apply(name, trained)
    _perturb(trained)
    inputs = batch(tokenizer)
    with torch.no_grad():
        expected = trained(**inputs).logits
    state = method_state_dict(trained, arch)
    n_state = sum(v.numel() for v in state.values())
    n_trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    assert n_state >= n_trainable   # nothing trainable is lost

    fresh, _ = build(model_name, kind, seed=0)   # the same "pretrained" base
    torch.manual_seed(123)                        # a different init for the method's own weights
    apply_method(fresh, METHODS[name]())
    with torch.no_grad():
        assert not torch.allclose(fresh(**inputs).logits, expected)
    load_method_state(fresh, state)
    with torch.no_grad():
        torch.testing.assert_close(fresh(**inputs).logits, expected, rtol=0, atol=1e-6)


def test_load_method_state_is_strict():
    model, _ = build("tiny-roberta", "classify")
    arch = apply("lora", model)
    state = method_state_dict(model, arch)
    with pytest.raises(ValueError, match="unexpected not.a.parameter"):
        load_method_state(model, {**state, "not.a.parameter": torch.zeros(1)})
    key = next(iter(state))
    with pytest.raises(ValueError, match=f"missing {key}"):
        load_method_state(model, {k: v for k, v in state.items() if k != key})
    with pytest.raises(ValueError, match="shape"):
        load_method_state(model, {**state, key: torch.zeros(1)})


@pytest.mark.parametrize("name", list(METHODS))
def test_method_record_round_trips(name):
    import json

    from methods import method_from_dict, method_to_dict

    method = METHODS[name]()
    record = json.loads(json.dumps(method_to_dict(method)))
    assert record["name"] == name
    assert method_from_dict(record) == method
    with pytest.raises(AttributeError):   # frozen
        method.name = "x"
