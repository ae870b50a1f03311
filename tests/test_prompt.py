"""Soft prompts: where the prompt goes per family, what is extended with it, GPT-2 generation with and without the
KV cache, losses on token labels, saved state and counts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.models import apply_method, build_meta, load_model
from methods import Prompt, count_params, load_method_state, method_state_dict
from methods.base import get_module
from generation_checks import assert_same_tokens_with_and_without_cache

torch.set_num_threads(1)

FAMILIES = [("tiny-roberta", "classify"), ("tiny-bert", "classify"), ("tiny-deberta", "classify"),
            ("tiny-gpt2", "generate"), ("tiny-llama", "generate"), ("tiny-qwen2", "generate")]
LENGTH = 4


def build(name: str, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = load_model(name, kind=kind, num_labels=3)
    return model.eval()


def with_prompt(name: str, kind: str, seed: int = 0, **fields):
    model = build(name, kind)
    torch.manual_seed(seed + 100)
    arch = apply_method(model, Prompt(**{"length": LENGTH, **fields}))
    return model, arch


def inputs() -> dict:
    ids = torch.randint(5, 250, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def capture(model) -> dict:
    """Record the keyword arguments the model's forward receives after the prompt's pre-hook."""
    seen = {}
    model.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    return seen


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_prompt_changes_outputs_and_trains(name, kind):
    x = inputs()
    base = build(name, kind)
    model, arch = with_prompt(name, kind)
    with torch.no_grad():
        out, ref = model(**x).logits, base(**x).logits
    assert out.shape == ref.shape                      # token-level logits line up with the caller's tokens
    assert not torch.allclose(out, ref, atol=1e-5)
    model.train()
    model(**x).logits.square().sum().backward()
    assert model.soft_prompt.weight.grad is not None and torch.count_nonzero(model.soft_prompt.weight.grad) > 0
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert get_module(model, arch.embeddings).weight.requires_grad is False and frozen


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_where_the_prompt_goes_and_what_is_extended(name, kind):
    model, arch = with_prompt(name, kind)
    seen = capture(model)
    x = inputs()
    types = torch.ones_like(x["input_ids"])
    kwargs = dict(x, token_type_ids=types) if name == "tiny-bert" else x
    with torch.no_grad():
        model(**kwargs)
    embed = get_module(model, arch.embeddings)
    at = 0 if arch.decoder else 1                       # encoders: [CLS][prompt][rest]
    ids, prompt = x["input_ids"], model.soft_prompt.weight
    got = seen["inputs_embeds"]
    assert "input_ids" not in seen or seen["input_ids"] is None
    assert got.shape == (2, 9 + LENGTH, prompt.shape[1])
    assert torch.equal(got[:, :at], embed(ids[:, :at]))
    assert torch.equal(got[:, at:at + LENGTH], prompt.expand(2, -1, -1))
    assert torch.equal(got[:, at + LENGTH:], embed(ids[:, at:]))
    mask = seen["attention_mask"]
    assert torch.equal(mask[:, at:at + LENGTH], torch.ones(2, LENGTH, dtype=mask.dtype))
    assert torch.equal(torch.cat([mask[:, :at], mask[:, at + LENGTH:]], 1), x["attention_mask"])
    if name == "tiny-bert":
        assert torch.equal(seen["token_type_ids"][:, at:at + LENGTH], torch.zeros(2, LENGTH, dtype=types.dtype))
        assert seen["token_type_ids"].shape == (2, 9 + LENGTH)


def test_gpt2_token_labels_and_loss():
    model, _ = with_prompt("tiny-gpt2", "generate")
    x = inputs()
    labels = x["input_ids"].masked_fill(x["attention_mask"] == 0, -100)
    out = model(**x, labels=labels)
    assert out.logits.shape == (2, 9, model.config.vocab_size)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), labels[:, 1:].reshape(-1),
                             ignore_index=-100)
    torch.testing.assert_close(out.loss, manual, rtol=1e-5, atol=1e-6)


def test_positional_input_ids_and_explicit_positions():
    model, _ = with_prompt("tiny-gpt2", "generate")
    ids = inputs()["input_ids"]
    with torch.no_grad():
        by_keyword = model(input_ids=ids).logits
        assert torch.equal(model(ids).logits, by_keyword)
        positions = torch.arange(9).unsqueeze(0).expand(2, -1)
        torch.testing.assert_close(model(input_ids=ids, position_ids=positions).logits, by_keyword)


@pytest.mark.parametrize("beams", [1, 3])
def test_gpt2_generate_same_tokens_with_and_without_cache(beams):
    model, _ = with_prompt("tiny-gpt2", "generate")
    assert_same_tokens_with_and_without_cache(model, beams)


def test_gpt2_cached_steps_match_full_forward():
    model, _ = with_prompt("tiny-gpt2", "generate")
    ids = torch.randint(5, 250, (1, 8), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        out = model(input_ids=ids[:, :3], attention_mask=mask[:, :3], use_cache=True)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        assert cache.get_seq_length() == 3 + LENGTH                 # the prompt lives in the cache
        steps = [out.logits]
        for start, stop in [(3, 5), (5, 6), (6, 7), (7, 8)]:
            out = model(input_ids=ids[:, start:stop], attention_mask=mask[:, :stop], cache=cache, use_cache=True)
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kind", [("tiny-roberta", "classify"), ("tiny-gpt2", "generate")])
def test_saved_state_reproduces_outputs(name, kind):
    x = inputs()
    trained, arch = with_prompt(name, kind, seed=0)
    with torch.no_grad():
        expected = trained(**x).logits
    state = method_state_dict(trained, arch)
    assert "soft_prompt.weight" in state
    fresh, _ = with_prompt(name, kind, seed=1)
    with torch.no_grad():
        assert not torch.allclose(fresh(**x).logits, expected)
    load_method_state(fresh, state)
    with torch.no_grad():
        assert torch.equal(fresh(**x).logits, expected)


def test_inits():
    model, arch = with_prompt("tiny-roberta", "classify", init="vocab")
    table = get_module(model, arch.embeddings).weight
    for row in model.soft_prompt.weight:
        assert (table == row).all(dim=1).any()                     # a copy of some token's embedding
    model, arch = with_prompt("tiny-roberta", "classify", init="random")
    table = get_module(model, arch.embeddings).weight
    assert not any((table == row).all(dim=1).any() for row in model.soft_prompt.weight)
    for bad in ({"length": 0}, {"init": "zeros"}):
        with pytest.raises(ValueError, match="prompt\\."):
            Prompt(**bad)


@pytest.mark.parametrize("model_name,kind,d", [("roberta-large", "classify", 1024), ("gpt2-medium", "generate", 1024),
                                               ("deberta-v2-xxlarge", "classify", 1536)])
def test_counts(model_name, kind, d):
    method = Prompt(length=20)
    model, arch = build_meta(model_name, kind, method)
    counts = count_params(model, arch, method)
    assert counts.trained == counts.stored == 20 * d


@pytest.mark.parametrize("pair", [False, True])
def test_long_roberta_inputs_fit_the_positions_with_the_prompt(pair):
    """RoBERTa numbers 512 tokens (positions 2..513): with a prompt of `LENGTH` the runner cuts the text to
    512 - LENGTH tokens (special tokens kept); a longer input given directly is a clear error, not an index
    error inside the position embeddings."""
    from bench.data import encode_classification
    from bench.data.examples import ClassificationExample
    from bench.runner import fitted_max_length
    from methods.base import input_budget

    model, _ = with_prompt("tiny-roberta", "classify")
    _, tokenizer = load_model("tiny-roberta", kind="classify", num_labels=2)
    assert input_budget(model) == 512 - LENGTH and fitted_max_length(model, 512) == 512 - LENGTH
    assert fitted_max_length(model, 128) == 128
    text = "word " * 400
    example = ClassificationExample(text_a=text, text_b=text if pair else None, label=1, idx=0)
    enc = encode_classification(tokenizer, "rte" if pair else "sst2", [example], fitted_max_length(model, 512))
    ids = torch.as_tensor(enc.features["input_ids"][0], dtype=torch.long)[None]
    assert enc.n_truncated == 1 and ids.shape[1] == 512 - LENGTH
    assert ids[0, 0] == tokenizer.cls_token_id and ids[0, -1] == tokenizer.sep_token_id
    with torch.no_grad():
        assert model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (1, 3)
        too_long = torch.randint(5, 250, (1, 512))
        with pytest.raises(ValueError, match=f"512 tokens plus {LENGTH} prompt positions exceeds the model's 512"):
            model(input_ids=too_long, attention_mask=torch.ones_like(too_long))
    base = build("tiny-roberta", "classify")
    with torch.no_grad():                                  # the same 512 tokens fit without a prompt
        base(input_ids=too_long, attention_mask=torch.ones_like(too_long))
