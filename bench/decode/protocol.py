"""Decoding protocols of the papers, as data. Generation code reads these; tasks and presets name them."""
from __future__ import annotations

from dataclasses import dataclass

SCORE_LENGTHS = ("generated", "total")


@dataclass(frozen=True)
class Decoding:
    num_beams: int = 5                 # beam width
    max_new_tokens: int = 100          # generated tokens at most (after the source)
    min_new_tokens: int = 5            # EOS is blocked before this many generated tokens
    length_penalty: float = 1.0        # beam score = logprob / length ** length_penalty
    no_repeat_ngram_size: int = 0      # 0: off
    ban_newlines: bool = True          # tokens that decode to text containing a newline are never generated
    batch_size: int = 32               # inputs per generation batch (sorted by length)
    # The length of `length_penalty` and of the early-stop test. "generated": generated tokens, EOS included
    # (transformers 4-5). "total": source + generated tokens before EOS, as transformers 3 (`BeamHypotheses`:
    # `len(hyp)`, hyp holding the source) in the Prefix-Tuning authors' fork; that early-stop test also divides
    # the best candidate's score by the current total length. See docs/perf.md.
    score_length: str = "generated"
    min_length: int = 0                # EOS is blocked while source + generated tokens < min_length (transformers
                                       # 3's min_length; the Prefix-Tuning script passes 5); 0: off
    banned_token_ids: tuple[int, ...] = ()  # token ids never generated, in addition to ban_newlines (the
                                       # Prefix-Tuning script: bad_words_ids [[628], [198]], GPT-2's "\n\n", "\n")

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"decoding.{name} must be an integer >= 1, got {value!r}")
        for name in ("min_new_tokens", "no_repeat_ngram_size", "min_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"decoding.{name} must be an integer >= 0, got {value!r}")
        if self.score_length not in SCORE_LENGTHS:
            raise ValueError(f"decoding.score_length must be one of {', '.join(SCORE_LENGTHS)}, "
                             f"got {self.score_length!r}")
        ids = self.banned_token_ids
        if isinstance(ids, (str, bytes)) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                    for t in ids):
            raise ValueError(f"decoding.banned_token_ids must be token ids (integers >= 0), got {ids!r}")
        object.__setattr__(self, "banned_token_ids", tuple(ids))   # a list from JSON becomes a tuple


# Prefix-Tuning Table 1: beam 5, at most 100 new tokens, min length 5, newlines banned, stop at EOS.
PREFIX_TUNING = Decoding()
# As the authors' generation script ran it (gpt2/run_generation.py on their transformers 3 fork): beam 5, 100 new
# tokens, length penalty 1, early_stopping False, min_length=5 counting the source, bad words [628] and [198]
# (GPT-2 ids), scores over the whole length. For GPT-2's tokenizer (ids 198, 628 are its newline tokens).
PREFIX_TUNING_SCRIPT = Decoding(min_new_tokens=0, min_length=5, ban_newlines=False, banned_token_ids=(628, 198),
                                score_length="total")
# LoRA paper GPT-2 rows: beam 10, length penalty 0.8 (README; 0.9 in the paper for E2E), no-repeat-ngram 4, 64 tokens.
LORA_GPT2 = Decoding(num_beams=10, max_new_tokens=64, min_new_tokens=0, length_penalty=0.8, no_repeat_ngram_size=4)
