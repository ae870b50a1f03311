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
