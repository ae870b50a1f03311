"""Decoding protocols of the papers, as data. Generation code reads these; tasks and presets name them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decoding:
    num_beams: int = 5                 # beam width
    max_new_tokens: int = 100          # generated tokens at most (after the source)
    min_new_tokens: int = 5            # EOS is blocked before this many tokens
    length_penalty: float = 1.0        # beam score = logprob / length ** length_penalty
    no_repeat_ngram_size: int = 0      # 0: off
    ban_newlines: bool = True          # tokens that decode to text containing a newline are never generated
    banned_tokens: tuple[str, ...] = ()  # tokens whose decoded text is exactly one of these are never generated
    #                                    (the Prefix-Tuning script's bad_words_ids [[628], [198]]: "\n\n", "\n")
    batch_size: int = 32               # inputs per generation batch (sorted by length)


# Prefix-Tuning Table 1: beam 5, at most 100 new tokens, min length 5, newlines banned, stop at EOS.
PREFIX_TUNING = Decoding()
# LoRA paper GPT-2 rows: beam 10, length penalty 0.8 (README; 0.9 in the paper for E2E), no-repeat-ngram 4, 64 tokens.
LORA_GPT2 = Decoding(num_beams=10, max_new_tokens=64, min_new_tokens=0, length_penalty=0.8, no_repeat_ngram_size=4)
