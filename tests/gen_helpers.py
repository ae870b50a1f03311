"""Tiny GPT-2 with random weights and a word-level tokenizer made here, for the generation and perf tests."""
from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

WORDS = ("name : Type : food : area : near : price : customer rating : family friendly : | the a is in of and "
         "restaurant pub coffee shop city centre riverside cheap high low yes no Italian French English Chinese "
         "Japanese Indian fast five star it serves located has called there with an average moderate").split()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<|endoftext|>": 0, "\n": 1, "a\nb": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    vocab["<unk>"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<unk>")


def tiny_gpt2(vocab_size: int, seed: int = 0, std: float = 0.3) -> GPT2LMHeadModel:
    """Random weights with a large init std so that next-token distributions are peaked (no near-ties)."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=32, n_layer=2, n_head=2,
                        initializer_range=std, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


def sources(tokenizer, n: int = 12, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    ids = [tokenizer.convert_tokens_to_ids(w) for w in WORDS]
    out = []
    for _ in range(n):
        length = int(torch.randint(2, 14, (1,), generator=g))
        out.append([ids[int(j)] for j in torch.randint(0, len(ids), (length,), generator=g)])
    return out


def four_sentence_loader(tokenizer, kind: str):
    """Two unshuffled batches of two sentences each: labels are the tokens (generate) or classes 0, 1, 2, 0."""
    import numpy as np

    from bench.data import make_loader
    from bench.data.batching import Encoded

    ids = [np.asarray(x, dtype=np.int32) for x in
           tokenizer(["a tiny test sentence", "and another, longer one: 42!", "short", "a fourth one"])["input_ids"]]
    features = {"input_ids": ids, "attention_mask": [np.ones_like(x) for x in ids],
                "labels": [x.astype(np.int64) for x in ids] if kind == "generate" else np.arange(4) % 3}
    encoded = Encoded(features=features, n_truncated=0, max_length=None, lengths=np.array([len(x) for x in ids]))
    return make_loader(encoded, batch_size=2, pad_id=0, shuffle=False, seed=0)
