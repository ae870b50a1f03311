"""A deterministic byte-level tokenizer for the tiny test models, built locally with `tokenizers` (no download).

Vocabulary: the family's special tokens, then one token per byte (GPT-2's byte-to-unicode alphabet, in byte
order) and no merges, so any text round-trips and ids never depend on training data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache


@dataclass(frozen=True)
class TinyVocab:
    """A family's special tokens and how it frames a text (pair) with them."""
    specials: tuple[str, ...]                     # special tokens in id order, before the 256 bytes
    roles: dict[str, str] = field(default_factory=dict)  # tokenizer role -> token
    after_bytes: tuple[str, ...] = ()             # special tokens after the bytes (GPT-2's <|endoftext|> = 256)
    frame: str = ""                               # "<s> A </s></s> B </s>" | "[CLS] A [SEP] B [SEP]" | "" (none)
    byte_unk: bool = True                         # the BPE model maps unknown bytes to roles["unk_token"]


ROBERTA_FRAME = "<s> A </s></s> B </s>"
BERT_FRAME = "[CLS] A [SEP] B [SEP]"

# family -> its tiny vocabulary (a key of methods.ARCHES)
VOCABS: dict[str, TinyVocab] = {
    "roberta": TinyVocab(("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
                         {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                          "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>"}, frame=ROBERTA_FRAME),
    "bert": TinyVocab(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
                      {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                       "mask_token": "[MASK]"}, frame=BERT_FRAME),
    "deberta-v2": TinyVocab(("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"),
                            {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                             "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}, frame=BERT_FRAME),
    "gpt2": TinyVocab((), {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                           "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
                      after_bytes=("<|endoftext|>",), byte_unk=False),
    # Llama and Mistral: SentencePiece's <unk>, <s>, </s> at ids 0, 1, 2; the text is not framed (no BOS added)
    "llama": TinyVocab(("<unk>", "<s>", "</s>"), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                                   "pad_token": "</s>"}),
    "mistral": TinyVocab(("<unk>", "<s>", "</s>"), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                                     "pad_token": "</s>"}),
    # Qwen2: byte-level BPE with <|endoftext|> after the bytes, as GPT-2's
    "qwen2": TinyVocab((), {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                            "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
                       after_bytes=("<|endoftext|>",), byte_unk=False),
}
SPECIALS = {family: list(v.specials) for family, v in VOCABS.items()}


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


@cache
def _backend(family: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    spec = VOCABS[family]
    vocab = {tok: i for i, tok in enumerate(spec.specials)}
    for ch in byte_alphabet():
        vocab[ch] = len(vocab)
    for tok in spec.after_bytes:
        vocab[tok] = len(vocab)
    unk = spec.roles["unk_token"] if spec.byte_unk else None
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if spec.frame == ROBERTA_FRAME:
        tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    elif spec.frame == BERT_FRAME:
        cls, sep = vocab["[CLS]"], vocab["[SEP]"]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
    tok.add_special_tokens(list(spec.specials + spec.after_bytes))
    return tok


def tiny_tokenizer(family: str):
    """A transformers fast tokenizer for a tiny model of `family` (a key of VOCABS)."""
    from transformers import PreTrainedTokenizerFast

    if family not in VOCABS:
        raise ValueError(f"no tiny tokenizer for family {family!r}; known: {', '.join(VOCABS)}")
    backend = _backend(family).__class__.from_str(_backend(family).to_str())  # a fresh copy per call
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512, **VOCABS[family].roles)
