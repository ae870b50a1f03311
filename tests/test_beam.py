"""Our beam search (bench.decode.beam): engine choice, no-repeat-n-gram bans, inputs leaving the batch, state restored.
Token-for-token equality with batch-1 `model.generate` for every protocol and method is in test_generate.py."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import bench.decode.attention as attention
import bench.decode.beam as beam
from bench.decode.protocol import LORA_GPT2, PREFIX_TUNING, Decoding
from bench.decode.generate import generate_ids, one_at_a_time, pick_engine
from tests.gen_helpers import sources, tiny_gpt2, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(tok, seed=0, eos_boost=3.0):
    model = tiny_gpt2(len(tok), seed=seed)
    model.config.eos_token_id = model.config.bos_token_id = tok.eos_token_id
    with torch.no_grad():
        model.transformer.wte.weight[tok.eos_token_id] *= eos_boost
    return model


def test_pick_engine(tok):
    model = _model(tok)
    assert pick_engine(model, PREFIX_TUNING) == "own"
    assert pick_engine(model, PREFIX_TUNING, "hf") == "hf"
    assert pick_engine(model, Decoding(num_beams=1)) == "hf"            # greedy is HF's greedy search
    assert pick_engine(model, PREFIX_TUNING, use_cache=False) == "hf"
    with pytest.raises(ValueError, match="greedy"):
        pick_engine(model, Decoding(num_beams=1), "own")
    with pytest.raises(ValueError, match="unknown generation engine"):
        pick_engine(model, PREFIX_TUNING, "fast")
    model.config.reorder_and_upcast_attn = True
    assert pick_engine(model, PREFIX_TUNING) == "hf"
    with pytest.raises(ValueError, match="reorder_and_upcast_attn"):
        pick_engine(model, PREFIX_TUNING, "own")
    with pytest.raises(ValueError, match="does not support"):
        beam.beam_search(model, [[3, 4]], PREFIX_TUNING, eos_id=0, pad_id=0)


def _banned_brute_force(row: list[int], n: int) -> set[int]:
    if len(row) + 1 < n:
        return set()
    prefix = tuple(row[len(row) - n + 1:])
    return {row[i + n - 1] for i in range(len(row) - n + 1) if tuple(row[i:i + n - 1]) == prefix}


@pytest.mark.parametrize("n", [2, 3, 4])
def test_no_repeat_ngram_mask_matches_brute_force(n):
    g = torch.Generator().manual_seed(n)
    rows = [torch.randint(0, 4, (int(torch.randint(0, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(40)]
    width = max(len(r) for r in rows)
    history = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            history[i, width - len(r):] = torch.tensor(r)
    mask = beam._banned_ngram_mask(history, history >= 0, n, vocab=4)
    for i, r in enumerate(rows):
        assert set(mask[i].nonzero().flatten().tolist()) == _banned_brute_force(r, n), (r, n)
    assert any(mask.any(-1))  # the random rows do repeat n-grams


def test_settled_inputs_leave_the_batch_without_changing_results(tok, monkeypatch):
    """Inputs whose hypotheses are settled drop out mid-search (their keys/values are cut from every layer);
    the others still get exactly the tokens of batch-1 decoding."""
    model = _model(tok, seed=2, eos_boost=3.0)
    src = sources(tok, n=12, seed=3)
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=25, batch_size=12)
    dropped = []
    original = attention.Layer.keep_inputs
    monkeypatch.setattr(attention.Layer, "keep_inputs", lambda self, keep, filled: (
        dropped.append(len(keep)), original(self, keep, filled))[1])
    ours = generate_ids(model, tok, src, protocol, progress=False, engine="own")
    reference = generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
    assert ours == reference
    assert dropped and min(dropped) < len(src), "no input left the batch early: the test exercises nothing"
    assert len({len(r) for r in ours}) > 1


def test_lora_protocol_with_ten_beams(tok):
    model = _model(tok, seed=4)
    src = sources(tok, n=7, seed=5)
    protocol = dataclasses.replace(LORA_GPT2, max_new_tokens=20, batch_size=7)
    ours = generate_ids(model, tok, src, protocol, progress=False, engine="own")
    assert ours == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")


def test_model_state_restored_after_decoding_and_after_an_error(tok):
    from bench.models import apply_method, make_method

    torch.manual_seed(0)
    model = _model(tok)
    apply_method(model, make_method("prompt", ["length=2"]))
    impl = model.config._attn_implementation
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=6)
    generate_ids(model, tok, sources(tok, n=3), protocol, progress=False, engine="own")
    assert model.config._attn_implementation == impl and model.soft_prompt.suspended is False

    calls = []

    def fail_on_second_step(module, args, kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")

    handle = model.register_forward_pre_hook(fail_on_second_step, with_kwargs=True)
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        generate_ids(model, tok, sources(tok, n=3), protocol, progress=False, engine="own")
    handle.remove()
    assert model.config._attn_implementation == impl and model.soft_prompt.suspended is False
    assert model.training                                      # generate_ids restores train mode
    out = model(input_ids=torch.tensor([[3, 4, 5]]))          # the model still works normally afterwards
    assert out.logits.shape[:2] == (1, 3)


@pytest.mark.parametrize("trial", range(12))
def test_random_protocols_match_batch1_generate(tok, trial):
    """Random protocols (beams, lengths, length penalty, no-repeat n-grams, min > max, one-token sources, eager
    attention, a pad token other than EOS): our batched search gives batch-1 `model.generate`'s tokens."""
    import random
    import warnings

    rng = random.Random(trial)
    model = tiny_gpt2(len(tok), seed=trial, std=rng.choice([0.3, 0.5]))
    if trial % 3 == 0:
        model.config._attn_implementation = "eager"
    with torch.no_grad():
        model.transformer.wte.weight[tok.eos_token_id] *= rng.choice([1.0, 2.0, 3.0, 4.0])
    most = rng.randint(1, 20)
    protocol = Decoding(num_beams=rng.randint(2, 6), max_new_tokens=most, min_new_tokens=rng.randint(0, most + 1),
                        length_penalty=rng.choice([1.0, 0.8, 0.0, 1.5, -0.5]),
                        no_repeat_ngram_size=rng.choice([0, 2, 3, 4]), ban_newlines=trial % 2 == 0,
                        batch_size=rng.randint(1, 9))
    src = sources(tok, n=rng.randint(2, 10), seed=trial)
    src[0] = src[0][:1]
    padded_tok = tok
    if trial % 4 == 1:
        padded_tok = tiny_tokenizer()
        padded_tok.pad_token = "<unk>"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HF warns when min_new_tokens exceeds the maximum length
        ours = generate_ids(model, padded_tok, src, protocol, progress=False, engine="own")
        reference = generate_ids(model, padded_tok, src, one_at_a_time(protocol), progress=False, engine="hf")
    assert ours == reference, protocol


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_bf16_model_decodes(tok, method):
    """In bf16 (the GPU precision) the search runs with the methods that hook attention or inputs; outputs are
    not compared with model.generate (bf16 rounding differs between the two attention computations)."""
    from bench.models import apply_method, make_method

    torch.manual_seed(0)
    model = _model(tok)
    apply_method(model, make_method(method, ["length=2"]))
    model = model.to(torch.bfloat16)
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=8, batch_size=3)
    rows = generate_ids(model, tok, sources(tok, n=5), protocol, progress=False, engine="own")
    assert len(rows) == 5
    assert all(protocol.min_new_tokens <= len(r) <= protocol.max_new_tokens for r in rows)
    assert all(0 <= t < len(tok) and t != tok.eos_token_id for r in rows for t in r)
