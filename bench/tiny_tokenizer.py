"""A deterministic byte-level tokenizer for the tiny test models, built locally with `tokenizers` (no download).

Vocabulary: the family's special tokens, then one token per byte (GPT-2's byte-to-unicode alphabet, in byte
order) and no merges, so any text round-trips and ids never depend on training data.
"""
from __future__ import annotations

from functools import lru_cache

# family -> special tokens in id order, and their roles
SPECIALS = {
    "roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "deberta-v2": ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
    "gpt2": [],  # <|endoftext|> comes after the 256 bytes, as in GPT-2 (id 256)
}
ROLES = {
    "roberta": {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"},
    "bert": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
             "mask_token": "[MASK]"},
    "deberta-v2": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                   "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"},
    "gpt2": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
             "pad_token": "<|endoftext|>"},
}


def byte_alphabet() -> list[str]:
    """GPT-2's reversible byte -> printable unicode map, listed in byte order (0..255)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


@lru_cache(maxsize=None)
def _backend(family: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    specials = SPECIALS[family]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in byte_alphabet():
        vocab[ch] = len(vocab)
    if family == "gpt2":
        vocab["<|endoftext|>"] = len(vocab)
    unk = ROLES[family]["unk_token"]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk if family != "gpt2" else None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if family == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    elif family in ("bert", "deberta-v2"):
        cls, sep = vocab["[CLS]"], vocab["[SEP]"]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
    tok.add_special_tokens(specials or ["<|endoftext|>"])
    return tok


def tiny_tokenizer(family: str):
    """A transformers fast tokenizer for a tiny model of `family` (roberta, bert, deberta-v2, gpt2)."""
    from transformers import PreTrainedTokenizerFast

    if family not in SPECIALS:
        raise ValueError(f"no tiny tokenizer for family {family!r}; known: {', '.join(SPECIALS)}")
    backend = _backend(family).__class__.from_str(_backend(family).to_str())  # a fresh copy per call
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512, **ROLES[family])
