"""Batched beam search gives the same tokens as batch-1 decoding and as decoding without the KV cache."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.decode.protocol import LORA_GPT2, PREFIX_TUNING, Decoding
from bench.decode.generate import (BanTokens, batches_by_length, generate, generate_ids, left_pad, newline_token_ids,
                            one_at_a_time)
from tests.gen_helpers import sources, tiny_gpt2, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _model(tok, seed, std=0.3):
    model = tiny_gpt2(len(tok), seed=seed, std=std)
    model.config.eos_token_id = model.config.bos_token_id = tok.eos_token_id
    with torch.no_grad():  # make EOS likely enough that hypotheses finish at different lengths
        model.transformer.wte.weight[tok.eos_token_id] *= 3
    return model


PROTOCOLS = [
    dataclasses.replace(PREFIX_TUNING, max_new_tokens=20, batch_size=5),
    dataclasses.replace(LORA_GPT2, max_new_tokens=16, num_beams=4, batch_size=4),
    Decoding(num_beams=1, max_new_tokens=12, min_new_tokens=0, batch_size=16),  # greedy
]


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["prefix-tuning", "lora-gpt2", "greedy"])
def test_batched_equals_batch1_and_no_cache(tok, seed, protocol):
    torch.set_num_threads(1)
    model = _model(tok, seed)
    src = sources(tok, n=13, seed=seed)
    batched = generate_ids(model, tok, src, protocol, progress=False)            # own beam search (or greedy)
    hf_batched = generate_ids(model, tok, src, protocol, progress=False, engine="hf")
    single = generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
    no_cache = generate_ids(model, tok, src, protocol, progress=False, use_cache=False)
    assert batched == single
    assert hf_batched == single
    assert batched == no_cache
    lengths = {len(r) for r in batched}
    assert len(lengths) > 1, "all outputs have one length: the test would not exercise finishing beams"
    assert min(lengths) >= protocol.min_new_tokens
    assert max(lengths) <= protocol.max_new_tokens
    assert all(tok.eos_token_id not in r for r in batched)


def test_results_in_input_order(tok):
    model = _model(tok, 0)
    src = sources(tok, n=9, seed=1)
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=10, batch_size=4)
    together = generate(model, tok, src, protocol, progress=False)
    alone = [generate(model, tok, [s], protocol, progress=False)[0] for s in src]
    assert together == alone
    assert all(isinstance(t, str) and t == t.strip() for t in together)


def test_newlines_are_banned(tok):
    assert newline_token_ids(tok) == (1, 2)  # "\n" and "a\nb"
    model = _model(tok, 0)
    with torch.no_grad():  # make the newline tokens the most likely continuation everywhere
        model.transformer.wte.weight[1] *= 20
    src = sources(tok, n=4)
    free = dataclasses.replace(PREFIX_TUNING, max_new_tokens=8, ban_newlines=False)
    banned = dataclasses.replace(free, ban_newlines=True)
    assert any(1 in r for r in generate_ids(model, tok, src, free, progress=False))
    assert not any({1, 2} & set(r) for r in generate_ids(model, tok, src, banned, progress=False))


def test_min_new_tokens_blocks_early_eos(tok):
    model = _model(tok, 0)
    with torch.no_grad():  # every final hidden state is the same vector e, and EOS's embedding is 10 e
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.normal_()
        model.transformer.wte.weight[tok.eos_token_id] = 10 * model.transformer.ln_f.bias
    src = sources(tok, n=3)
    for minimum in (0, 4):
        protocol = Decoding(num_beams=3, max_new_tokens=10, min_new_tokens=minimum)
        rows = generate_ids(model, tok, src, protocol, progress=False)
        assert all(len(r) == minimum for r in rows)


def test_helpers():
    assert batches_by_length([[1], [1, 2, 3], [1, 2], [4, 5, 6]], 2) == [[1, 3], [2, 0]]
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    scores = BanTokens([1, 3])(torch.zeros(1, 1), torch.zeros(2, 5))
    assert torch.isinf(scores[:, [1, 3]]).all() and (scores[:, [0, 2, 4]] == 0).all()
    with pytest.raises(ValueError, match="batch_size"):
        batches_by_length([[1]], 0)


@pytest.mark.parametrize("method", ["prefix", "prompt", "lora", "adapter"])
def test_methods_that_hook_attention_or_inputs_generate_identically(method):
    """Prefix (keys/values inside attention) and soft prompts (a pre-hook on the inputs) under batching,
    left padding and the KV cache give the tokens of batch-1 decoding without a cache."""
    from bench.models import apply_method, load_model, make_method

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = load_model("tiny-gpt2", kind="generate")
    apply_method(model, make_method(method, ["length=3"] if method in ("prefix", "prompt") else []))
    with torch.no_grad():  # peaked distributions and a likely EOS, so that beams finish at different lengths
        torch.nn.init.normal_(model.transformer.wte.weight, std=0.3)
        model.transformer.ln_f.bias.normal_(std=0.5)  # EOS's logit gets a positive offset |bias|^2 * 1.5
        model.transformer.wte.weight[tok.eos_token_id] = 1.5 * model.transformer.ln_f.bias
        for p in model.parameters():
            if p.requires_grad:  # the method's own parameters away from their neutral init
                p.add_(torch.randn_like(p) * 0.3)
    texts = [" name : Alimentum | area : city centre | near : Yippee Noodle Bar"[:8 + 5 * i] for i in range(9)]
    src = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=15, batch_size=4)
    batched = generate_ids(model, tok, src, protocol, progress=False)            # own beam search
    assert batched == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, use_cache=False)
    assert batched == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
    assert batched == generate_ids(model, tok, src, protocol, progress=False, engine="hf")
    assert any(len(r) < protocol.max_new_tokens for r in batched)  # some beams finished on EOS
