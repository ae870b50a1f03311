"""Batched generation for decoder models (GPT-2), applying a `bench.decode.protocol.Decoding` protocol.

Speed comes from these, none of which changes the result:
  * inputs are sorted by length (longest first) and decoded `decoding.batch_size` at a time, so a batch
    carries little padding;
  * inputs are left-padded; the attention mask hides the pads and the position ids are counted from the first
    real token (HF `generate` builds them from the mask), so every row sees exactly what it would see alone;
    position ids add `methods.base.position_offset(model)` (a method that shifts the real tokens' positions);
  * keys and values are cached between steps;
  * beam search (num_beams > 1) on a decoder that `bench.decode.beam.supports` runs our own search: the source is
    encoded once per input and its keys/values are shared by the input's beams, only generated tokens are
    cached per beam (in preallocated buffers), and settled inputs leave the batch. Greedy decoding, other
    models, and `engine="hf"` use `model.generate`.

Beam scores are sum(log p) / length ** length_penalty. With `score_length="generated"` the length counts
generated tokens only (not the padded source), as transformers 5; with `"total"` it is source + generated tokens,
as the transformers 3 fork of the Prefix-Tuning authors (our search only). Either way a row's result does not
depend on the batch it is in. Results come back in input order. `tests/test_generate.py`, `tests/test_beam.py`
and `tests/test_beam_total.py` check, token for token, that batched decoding == batch-1 `model.generate` (or the
fork's batch-1 search) == decoding without a KV cache.
"""
from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from bench.decode.beam import beam_search, supports
from bench.decode.protocol import Decoding
from methods.base import position_offset

ENGINES = ("auto", "own", "hf")   # auto: own beam search where it applies (see `pick_engine`), else HF generate

# tokenizer -> sorted ids of every vocabulary entry whose decoded text contains a newline
_NEWLINE_IDS: weakref.WeakKeyDictionary[object, tuple[int, ...]] = weakref.WeakKeyDictionary()


def newline_token_ids(tokenizer) -> tuple[int, ...]:
    """Ids of every token whose decoded text contains a newline ("\\n" or "\\r"). Cached per tokenizer."""
    try:
        return _NEWLINE_IDS[tokenizer]
    except (KeyError, TypeError):
        pass
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    ids = tuple(i for i, text in enumerate(texts) if "\n" in text or "\r" in text)
    try:
        _NEWLINE_IDS[tokenizer] = ids
    except TypeError:  # not weak-referenceable: recompute next time
        pass
    return ids


class MinTotalLength(LogitsProcessor):
    """Blocks EOS while a row's source + generated tokens are fewer than `min_length` (transformers 3's
    min_length), counting real tokens only: `pads` are the left-padding widths of the batch's inputs."""

    def __init__(self, min_length: int, eos_id: int, pads: torch.Tensor):
        self.min_length, self.eos_id, self.pads = min_length, eos_id, pads

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        pads = self.pads.to(input_ids.device).repeat_interleave(input_ids.shape[0] // self.pads.shape[0])
        short = (input_ids.shape[1] - pads) < self.min_length
        if not bool(short.any()):
            return scores
        scores = scores.clone()
        scores[:, self.eos_id] = scores[:, self.eos_id].masked_fill(short, float("-inf"))
        return scores


def banned_token_ids(tokenizer, decoding: Decoding) -> tuple[int, ...]:
    """Every id a protocol never generates: newline tokens (ban_newlines) and `banned_token_ids`."""
    ids = set(newline_token_ids(tokenizer)) if decoding.ban_newlines else set()
    ids.update(decoding.banned_token_ids)
    return tuple(sorted(ids))


class BanTokens(LogitsProcessor):
    """Sets the scores of fixed token ids to -inf at every step (one precomputed mask, no per-step loop)."""

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = torch.as_tensor(sorted(set(int(t) for t in token_ids)), dtype=torch.long)
        self._mask: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._mask is None or self._mask.shape[0] != scores.shape[-1] or self._mask.device != scores.device:
            mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            ids = self.token_ids[self.token_ids < scores.shape[-1]].to(scores.device)
            mask[ids] = True
            self._mask = mask
        return scores.masked_fill(self._mask, float("-inf"))


def generation_config(decoding: Decoding, *, eos_id: int, pad_id: int, use_cache: bool = True) -> GenerationConfig:
    """The HF GenerationConfig for a Decoding protocol (deterministic beam search, one output per input)."""
    return GenerationConfig(
        do_sample=False,
        num_beams=decoding.num_beams,
        num_return_sequences=1,
        max_new_tokens=decoding.max_new_tokens,
        min_new_tokens=decoding.min_new_tokens,
        length_penalty=decoding.length_penalty,
        no_repeat_ngram_size=decoding.no_repeat_ngram_size,
        early_stopping=False,  # HF default heuristic: stop a row when no running beam can beat its finished ones
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
        use_cache=use_cache,
    )


def hf_processors(decoding: Decoding, banned: Sequence[int], eos_id: int, pads: torch.Tensor) -> LogitsProcessorList:
    """The logits processors `model.generate` needs beyond its GenerationConfig: banned token ids, and
    `min_length` over real tokens (`pads`: left-padding width per input)."""
    processors = LogitsProcessorList()
    if banned:
        processors.append(BanTokens(banned))
    if decoding.min_length:
        processors.append(MinTotalLength(decoding.min_length, eos_id, pads))
    return processors


def _special_ids(tokenizer) -> tuple[int, int]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos_token_id; generation needs one to stop")
    pad = tokenizer.pad_token_id
    return int(eos), int(eos if pad is None else pad)


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def batches_by_length(sources: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Indices of `sources` sorted longest first (ties keep input order), cut into batches."""
    if batch_size < 1:
        raise ValueError(f"decoding.batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(sources)), key=lambda i: (-len(sources[i]), i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids, mask


def pick_engine(model, decoding: Decoding, engine: str = "auto", use_cache: bool = True) -> str:
    """"own" (bench.decode.beam) or "hf" (`model.generate`) for this model and protocol; ValueError if `engine`
    cannot be honoured. auto picks own for beam search (num_beams > 1) with a cache on a model
    `bench.decode.beam` supports; score_length="total" beam search needs own."""
    if engine not in ENGINES:
        raise ValueError(f"unknown generation engine {engine!r}; expected one of {', '.join(ENGINES)}")
    reason = supports(model)
    if decoding.num_beams < 2:
        reason = reason or "greedy decoding (num_beams=1) is Hugging Face's greedy search"
    if not use_cache:
        reason = reason or "decoding without a KV cache"
    if engine == "own" and reason is not None:
        raise ValueError(f"our beam search cannot be used here: {reason}")
    if engine == "hf" or reason is not None:
        if decoding.num_beams > 1 and decoding.score_length != "generated":
            raise ValueError(f"decoding.score_length={decoding.score_length!r} needs our beam search "
                             f"(model.generate scores by generated length), which cannot run here: "
                             f"{reason or 'engine hf was asked for'}")
        return "hf"
    return "own"


def generate_ids(model, tokenizer, sources: Sequence[Sequence[int]], decoding: Decoding, *, device=None,
                 progress: bool = True, use_cache: bool = True, engine: str = "auto") -> list[list[int]]:
    """Generated token ids per source (source and everything from the first EOS on removed), in input order.
    `engine`: auto, own or hf (see `pick_engine`)."""
    if any(len(s) == 0 for s in sources):
        bad = next(i for i, s in enumerate(sources) if len(s) == 0)
        raise ValueError(f"source {bad} is empty; generation needs at least one source token")
    eos_id, pad_id = _special_ids(tokenizer)
    device = torch.device(device) if device is not None else _model_device(model)
    engine = pick_engine(model, decoding, engine, use_cache)
    config = generation_config(decoding, eos_id=eos_id, pad_id=pad_id, use_cache=use_cache)
    banned = banned_token_ids(tokenizer, decoding)
    offset = position_offset(model)
    out: list[list[int] | None] = [None] * len(sources)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(batches_by_length(sources, decoding.batch_size), desc="generate", unit="batch",
                              disable=not progress, leave=False):
                if engine == "own":
                    new = beam_search(model, [sources[i] for i in batch], decoding, eos_id=eos_id, pad_id=pad_id,
                                      banned_ids=banned, device=device)
                else:
                    ids, mask = left_pad([sources[i] for i in batch], pad_id)
                    processors = hf_processors(decoding, banned, eos_id, (mask == 0).sum(-1))
                    extra = {}
                    if offset:  # HF builds positions from the mask (from 0); give them, shifted
                        extra["position_ids"] = ((mask.cumsum(-1) - 1).clamp(min=0) + offset).to(device)
                    seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                          generation_config=config, logits_processor=processors, **extra)
                    new = seqs[:, ids.shape[1]:].tolist()
                for i, row in zip(batch, new):
                    out[i] = row[:row.index(eos_id)] if eos_id in row else row
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def decode_generated(tokenizer, rows: Sequence[Sequence[int]]) -> list[str]:
    texts = tokenizer.batch_decode([list(r) for r in rows], skip_special_tokens=True,
                                   clean_up_tokenization_spaces=False)
    return [t.strip() for t in texts]


def generate(model, tokenizer, sources: list[list[int]], decoding: Decoding, *, device=None,
             progress: bool = True, use_cache: bool = True, engine: str = "auto") -> list[str]:
    """Beam-search continuations of `sources` (token ids that end with the task's separator), in input order,
    as text without the source, special tokens or surrounding whitespace."""
    rows = generate_ids(model, tokenizer, sources, decoding, device=device, progress=progress, use_cache=use_cache,
                        engine=engine)
    return decode_generated(tokenizer, rows)


def one_at_a_time(decoding: Decoding) -> Decoding:
    """The same protocol decoded one input at a time (the papers' scripts)."""
    return dataclasses.replace(decoding, batch_size=1)
