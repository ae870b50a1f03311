"""Our beam search on the Llama layout (rotary positions per beam, grouped-query attention, the cache at key/value
head width): token for token the output of batch-1 `model.generate`, batched with left padding or not."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import bench.decode.attention as attention
from bench.decode.generate import generate_ids, one_at_a_time, pick_engine
from bench.decode.protocol import LORA_GPT2, PREFIX_TUNING, Decoding
from tests.gen_helpers import sources, tiny_tokenizer

PROTOCOLS = [
    dataclasses.replace(PREFIX_TUNING, max_new_tokens=20, batch_size=5),
    dataclasses.replace(LORA_GPT2, max_new_tokens=16, num_beams=4, batch_size=4),
    dataclasses.replace(PREFIX_TUNING, max_new_tokens=12, num_beams=3, score_length="generated", batch_size=13),
]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def tiny_decoder(family: str, vocab: int, seed: int, eos_weight: float = 0.5):
    """A 2-layer random Llama or Qwen2 with 4 query heads over 2 key/value heads (grouped-query attention) and
    rotary positions. Every token embedding carries 3.0 in dimension 0 and EOS's (id 0) output row reads that
    dimension with `eos_weight`, so that EOS gets likely and hypotheses finish at different lengths."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  initializer_range=0.2, tie_word_embeddings=False, eos_token_id=0, bos_token_id=0, pad_token_id=0,
                  rope_theta=100.0)
    model = (LlamaForCausalLM(LlamaConfig(**common)) if family == "llama"
             else Qwen2ForCausalLM(Qwen2Config(**common)))                 # Qwen2: q, k, v biases
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 3.0
        model.lm_head.weight[0, 0] = eos_weight
    return model.eval()


# (family, seed, eos_weight): cases whose outputs finish at different lengths under the protocols
CASES = [("llama", 2, 0.5), ("llama", 2, 0.8), ("qwen2", 0, 0.5), ("qwen2", 0, 0.8)]


@pytest.mark.parametrize("family, seed, eos_weight", CASES)
def test_llama_layout_beam_search_equals_batch1_generate(tok, family, seed, eos_weight):
    torch.set_num_threads(1)
    model = tiny_decoder(family, len(tok), seed, eos_weight)
    src = sources(tok, n=13, seed=seed)                       # 2-13 tokens: batches are left-padded
    spread = []
    for protocol in PROTOCOLS:
        assert pick_engine(model, protocol) == "own"
        own = generate_ids(model, tok, src, protocol, progress=False)
        assert own == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
        assert own == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, use_cache=False)
        spread.append(len({len(r) for r in own}))
        assert all(tok.eos_token_id not in r for r in own)
    assert max(spread) > 1, "all outputs have one length: the test would not exercise finishing beams"


def test_the_cache_is_at_key_value_head_width(tok, monkeypatch):
    model = tiny_decoder("llama", len(tok), 0)
    seen = []
    original = attention.Layer.__init__
    monkeypatch.setattr(attention.Layer, "__init__", lambda self, k, v, beams, steps: (
        seen.append((k.shape[1], v.shape[1])), original(self, k, v, beams, steps))[1])
    generate_ids(model, tok, sources(tok, n=3), Decoding(num_beams=2, max_new_tokens=4), progress=False)
    assert seen == [(2, 2), (2, 2)]                            # 2 layers, 2 key/value heads (of 4 query heads)


def test_grouped_bias_layout():
    """step_bias repeats each beam's row for the query heads of a key/value head: row g x beams + b is beam b's."""
    ctx = torch.zeros(1, 1, 2)
    path = torch.tensor([[[0], [1]]])                          # 1 input, 2 beams, 1 step: each beam's own slot
    bias = attention.step_bias(ctx, path, heads=3, groups=2)
    assert bias.shape == (3, 4, 4)
    own = bias[:, :, 2:] == 0
    assert own[:, [0, 2]].all(-2)[:, 0].all() and own[:, [1, 3]].all(-2)[:, 1].all()
    assert not own[:, [0, 2], 1].any() and not own[:, [1, 3], 0].any()


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("method", ["prefix", "prompt", "lora"])
def test_methods_on_the_llama_layout_generate_identically(name, method):
    """Prefix keys/values per key/value head (with the released code's position shift), a soft prompt and LoRA
    under batching, left padding and our cache give the tokens of batch-1 decoding without a cache and of
    batch-1 `model.generate`."""
    from bench.models import apply_method, load_model, make_method

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = load_model(name, kind="generate")
    apply_method(model, make_method(method, ["length=3"] + (["shift_positions=true"] if method == "prefix" else [])
                                    if method in ("prefix", "prompt") else []))
    eos = tok.eos_token_id
    with torch.no_grad():  # peaked distributions, EOS likely (tied embeddings: every token has 3.0 in
        # dimension 0, EOS 5.0 and nothing else)
        emb = model.model.embed_tokens.weight
        torch.nn.init.normal_(emb, std=0.3)
        emb[:, 0] = 3.0
        emb[eos] = 0.0
        emb[eos, 0] = 5.0            # the others read 3.0 there
        for p in model.parameters():
            if p.requires_grad:  # the method's own parameters away from their neutral init
                p.add_(torch.randn_like(p) * 0.3)
    texts = [" name : Alimentum | area : city centre | near : Yippee Noodle Bar"[:8 + 5 * i] for i in range(9)]
    src = [tok(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=15, batch_size=4)
    assert pick_engine(model, protocol) == "own"
    batched = generate_ids(model, tok, src, protocol, progress=False)
    assert batched == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, use_cache=False)
    assert batched == generate_ids(model, tok, src, one_at_a_time(protocol), progress=False, engine="hf")
    assert any(len(r) < protocol.max_new_tokens for r in batched)  # some beams finished on EOS
