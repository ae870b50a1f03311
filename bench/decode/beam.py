"""Our own batched beam search for GPT-2, with the source's keys and values shared by the beams of an input.

Why not `model.generate`: Hugging Face's beam search keeps one full key/value cache row per beam. The source
(an E2E meaning representation is 60-170 byte-level tokens) is identical in all beams of an input, yet every step
copies it num_beams times: once to append the new token (`torch.cat`) and once to reorder the beams
(`index_select`), and attention reads it num_beams times. Here

  * the source is run once per input (not once per beam), and its keys and values stay in one tensor per layer,
    (inputs, heads, source length, d_head), read once per input and step (the beams' queries are batched
    against it);
  * only the generated tokens' keys and values are kept per beam, in preallocated buffers: a step writes one
    column in place, and the beam reorder copies the generated part only;
  * an input whose hypotheses can no longer change (the stopping rule below) leaves the batch at once.

The search is Hugging Face's (transformers 5 `_beam_search`, do_sample=False, one returned sequence) step for
step, so outputs are token for token those of batch-1 `model.generate` (tests/test_beam.py checks this for every
method that touches attention or inputs):

  * log-softmax of the last logits, then the processors, each of which only sets scores to -inf: EOS before
    `min_new_tokens`, banned token ids, and no-repeat-n-gram over source + generated tokens;
  * the top 2 x num_beams candidates over beams x vocabulary; candidates ending in EOS, or reaching
    `max_new_tokens`, finish: among the first num_beams candidates they enter the finished set with score
    logprob / (generated tokens) ** length_penalty; the best num_beams unfinished candidates run on;
  * an input stops once all num_beams finished slots are filled and the best running beam, at its current
    length, cannot beat the worst finished one (`early_stopping=False`); its answer is the best finished
    hypothesis, cut at EOS.

Every floating-point operation of the bookkeeping is written as in transformers, so equal scores give equal
choices. The model's forward (embeddings, blocks, LoRA, adapters, prefix, soft prompt) is the model's own: only
the attention call of a decoding step is ours, registered as the attention implementation `peft_bench_beam`
while a step runs. Supported: GPT-2 (self-attention through transformers' attention interface, sdpa or eager,
with or without our prefix). `supports(model)` says whether a model qualifies; `bench.decode.generate` falls back to
`model.generate` otherwise.
"""
from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from bench.decode.protocol import Decoding

IMPL = "peft_bench_beam"
_BASES = ("sdpa", "eager")
_PREFIX_IMPL = "peft_bench_prefix_"
_NEG = -1.0e9                     # transformers' "never select" offset, kept identical for equal rounding
_LOCAL = threading.local()        # the decoding state of the step in progress (read by `_attention`)


def supports(model) -> str | None:
    """None when our beam search can decode `model`, else the reason it cannot (then use `model.generate`)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "gpt2":
        return f"model type {getattr(config, 'model_type', None)!r} (only gpt2)"
    if getattr(config, "add_cross_attention", False):
        return "GPT-2 with cross-attention"
    if getattr(config, "reorder_and_upcast_attn", False):
        return "GPT-2 with reorder_and_upcast_attn"
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl.removeprefix(_PREFIX_IMPL) not in _BASES:
        return f"attention implementation {impl!r}"
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if blocks is None or not all(hasattr(b.attn, "layer_idx") for b in blocks):
        return "no GPT-2 blocks with layer-indexed attention"
    return None


# ----------------------------------------------------------------------------------------------------------------
# attention of one decoding step


class _Layer:
    """One layer's keys and values: the source's (one row per input) and the generated tokens' (one per beam)."""

    def __init__(self, src_k: torch.Tensor, src_v: torch.Tensor, rows: int, steps: int):
        self.src_k, self.src_v = src_k, src_v                         # (inputs, heads, source, d_head)
        shape = (rows, src_k.shape[1], steps, src_k.shape[3])
        self.gen = [src_k.new_empty(shape), src_k.new_empty(shape)]    # keys, values: (rows, heads, steps, d_head)
        self.spare = [src_k.new_empty(shape), src_k.new_empty(shape)]  # reorder target, swapped after each copy

    def keep_inputs(self, keep: torch.Tensor) -> None:
        self.src_k, self.src_v = self.src_k.index_select(0, keep), self.src_v.index_select(0, keep)

    def reorder(self, rows: torch.Tensor, filled: int) -> None:
        """Beam rows `rows` of the generated keys/values (first `filled` steps) become rows 0..len(rows)-1."""
        n = rows.shape[0]
        for i in range(2):
            torch.index_select(self.gen[i][:, :, :filled], 0, rows, out=self.spare[i][:n, :, :filled])
        self.gen, self.spare = self.spare, self.gen


@dataclass
class _Step:
    layers: list[_Layer]
    src_bias: torch.Tensor           # (inputs, 1, 1, source): 0 where a source key is real, -inf on padding
    beams: int
    t: int                           # the generated-token slot this step writes


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
               **kwargs):
    """Attention of the new token of every beam over [prefix; source; generated tokens so far; itself]."""
    step: _Step = _LOCAL.step
    layer = step.layers[module.layer_idx]
    rows, heads, _, dh = query.shape                                 # query: (rows, heads, 1, d_head)
    inputs, beams, t = rows // step.beams, step.beams, step.t
    gk, gv = layer.gen
    gk[:rows, :, t] = key[:, :, 0]
    gv[:rows, :, t] = value[:, :, 0]
    gk, gv = gk[:rows, :, :t + 1], gv[:rows, :, :t + 1]
    scale = dh ** -0.5 if scaling is None else scaling
    q = query.view(inputs, beams, heads, dh).transpose(1, 2)           # (inputs, heads, beams, d_head)
    parts = []
    slot = getattr(module, "peft_bench_prefix", None)
    if slot is not None:
        pk, pv = slot.kv(1, query.device, query.dtype)               # (1, heads, length, d_head)
        parts.append((torch.matmul(q, pk.transpose(-1, -2)), pv, "shared"))
    parts.append((torch.matmul(q, layer.src_k.transpose(-1, -2)), layer.src_v, "source"))
    gen_scores = torch.matmul(query, gk.transpose(-1, -2))            # (rows, heads, 1, t+1)
    gen_scores = gen_scores.view(inputs, beams, heads, t + 1).transpose(1, 2)
    parts.append((gen_scores, gv, "generated"))
    sizes = [p[0].shape[-1] for p in parts]
    scores = torch.cat([p[0] for p in parts], dim=-1) * scale
    bias_at = sizes[0] if slot is not None else 0
    scores[..., bias_at:bias_at + sizes[-2]] += step.src_bias
    probs = torch.softmax(scores, dim=-1)
    out = None
    start = 0
    for (_, v, kind), size in zip(parts, sizes):
        p = probs[..., start:start + size]
        start += size
        if kind == "generated":
            p = p.transpose(1, 2).reshape(rows, heads, 1, size)
            part = torch.matmul(p, v).view(inputs, beams, heads, dh).transpose(1, 2)
        else:
            part = torch.matmul(p, v)                                 # (inputs, heads, beams, d_head)
        out = part if out is None else out + part
    return out.transpose(1, 2).reshape(rows, 1, heads, dh), None          # (rows, 1, heads, d_head)


def _no_mask(*args, **kwargs):
    return None


def _register() -> None:
    if getattr(_LOCAL, "registered", False):
        return
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface
    AttentionInterface.register(IMPL, _attention)
    AttentionMaskInterface.register(IMPL, _no_mask)
    _LOCAL.registered = True


@contextmanager
def _decoding_attention(model, step: _Step):
    """Our attention implementation and the given step state for the duration of one forward."""
    config = model.config
    saved = config._attn_implementation
    prompt = getattr(model, "soft_prompt", None)
    config._attn_implementation = IMPL
    _LOCAL.step = step
    if prompt is not None:
        prompt.suspended = True                  # the prompt is part of the cached source already
    try:
        yield
    finally:
        config._attn_implementation = saved
        _LOCAL.step = None
        if prompt is not None:
            prompt.suspended = False


# ----------------------------------------------------------------------------------------------------------------
# the search


def _cache_kwarg(model) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _banned_ngram_mask(history: torch.Tensor, valid: torch.Tensor, n: int, vocab: int) -> torch.Tensor:
    """(rows, vocab) True where a token would repeat an n-gram of `history` (rows, length; left-padded,
    `valid` marks real tokens): the tokens that followed earlier occurrences of the last n-1 tokens."""
    rows, length = history.shape
    banned = torch.zeros(rows, vocab, dtype=torch.bool, device=history.device)
    if length < n:
        return banned
    windows = history.unfold(1, n, 1)                                  # (rows, length-n+1, n)
    windows_ok = valid.unfold(1, n, 1).all(-1)
    last = history[:, length - n + 1:]                                 # (rows, n-1)
    match = windows_ok & (windows[..., :n - 1] == last[:, None, :]).all(-1)
    r, w = match.nonzero(as_tuple=True)
    banned[r, windows[r, w, n - 1]] = True
    return banned


@torch.inference_mode()
def beam_search(model, sources: Sequence[Sequence[int]], decoding: Decoding, *, eos_id: int, pad_id: int,
                banned_ids: Sequence[int] = (), device=None) -> list[list[int]]:
    """Generated token ids (cut at EOS) for a batch of sources, in the given order. See the module docstring."""
    reason = supports(model)
    if reason is not None:
        raise ValueError(f"our beam search does not support this model: {reason}")
    _register()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    beams, max_new, lp = decoding.num_beams, decoding.max_new_tokens, decoding.length_penalty
    inputs = len(sources)
    width = max(len(s) for s in sources)
    ids = torch.full((inputs, width), pad_id, dtype=torch.long)
    mask = torch.zeros((inputs, width), dtype=torch.long)
    for i, s in enumerate(sources):
        ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = mask.cumsum(-1) - 1
    positions.masked_fill_(mask == 0, 1)

    # prefill: the sources once each, through the model's own attention, into a fresh cache
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                **{_cache_kwarg(model): cache})
    logits = out.logits[:, -1, :].to(dtype=torch.float32)
    vocab = logits.shape[-1]
    prompt = getattr(model, "soft_prompt", None)
    prompt_len = int(prompt.length) if prompt is not None else 0
    key_mask = mask.bool()
    if prompt_len:
        key_mask = torch.cat([key_mask.new_ones(inputs, prompt_len), key_mask], dim=1)
    next_pos = mask.sum(-1) + prompt_len                               # position of the first generated token
    layers = []
    for layer in cache.layers:
        k, v = layer.keys, layer.values
        if k.shape[2] != key_mask.shape[1]:
            raise RuntimeError(f"cached source has {k.shape[2]} positions, expected {key_mask.shape[1]}")
        layers.append(_Layer(k, v, inputs * beams, max_new))
    del cache, out
    src_bias = torch.zeros(key_mask.shape, dtype=layers[0].src_k.dtype, device=device)   # the scores' dtype
    src_bias.masked_fill_(~key_mask, float("-inf"))
    src_bias = src_bias[:, None, None, :]

    ban = torch.zeros(vocab, dtype=torch.bool, device=device)
    ids_ok = [int(t) for t in banned_ids if 0 <= int(t) < vocab]
    if ids_ok:
        ban[torch.as_tensor(ids_ok, device=device)] = True
    ban_with_eos = ban.clone()
    ban_with_eos[eos_id] = True
    ngram = decoding.no_repeat_ngram_size
    src_tokens = ids.masked_fill(mask == 0, -1)                        # for no-repeat-n-gram (pads never match)

    # per-input state, transformers' layout (inputs, beams[, steps])
    k2 = max(2, 1 + 1) * beams                                         # candidates kept per step (one EOS id)
    top_mask = torch.cat([torch.ones(beams, dtype=torch.bool), torch.zeros(k2 - beams, dtype=torch.bool)]).to(device)
    run_tokens = torch.full((inputs, beams, max_new), eos_id, dtype=torch.long, device=device)
    run_scores = torch.zeros((inputs, beams), dtype=torch.float, device=device)
    run_scores[:, 1:] = _NEG
    fin_tokens = run_tokens.clone()
    fin_lengths = torch.zeros((inputs, beams), dtype=torch.long, device=device)
    fin_scores = torch.full((inputs, beams), _NEG, dtype=torch.float, device=device)
    fin_done = torch.zeros((inputs, beams), dtype=torch.bool, device=device)
    open_ = torch.ones((inputs, 1), dtype=torch.bool, device=device)   # the stopping heuristic is unsatisfied
    alive = torch.arange(inputs, device=device)                        # original index of each row still decoding
    results: list[list[int] | None] = [None] * inputs
    beam_offsets = torch.arange(inputs, device=device)[:, None] * beams

    log_probs = F.log_softmax(logits, dim=-1)[:, None, :].expand(inputs, beams, vocab).reshape(inputs * beams, vocab)
    for g in range(max_new):
        n = alive.shape[0]
        # processors (each only sets -inf)
        log_probs = log_probs.masked_fill(ban_with_eos if g < decoding.min_new_tokens else ban, float("-inf"))
        if ngram > 0 and width + g + 1 >= ngram:
            history = torch.cat([src_tokens.repeat_interleave(beams, 0), run_tokens[:, :, :g].reshape(n * beams, g)],
                                dim=1)
            log_probs = log_probs.masked_fill(_banned_ngram_mask(history, history >= 0, ngram, vocab),
                                              float("-inf"))
        # top-k continuations
        scores = log_probs.view(n, beams, vocab) + run_scores[:, :, None]
        scores = scores.reshape(n, beams * vocab)
        top_scores, top_idx = torch.topk(scores, k=k2)
        parents = top_idx // vocab
        tokens = top_idx % vocab
        cand = torch.take_along_dim(run_tokens, parents[:, :, None], dim=1)   # (n, k2, max_new)
        cand[:, :, g] = tokens
        hits = tokens == eos_id
        if g + 1 >= max_new:
            hits = torch.ones_like(hits)
        # running beams for the next step
        running = top_scores + hits.to(torch.float32) * _NEG
        keep = torch.topk(running, k=beams)[1]
        run_tokens = torch.take_along_dim(cand, keep[:, :, None], dim=1)
        run_scores = torch.take_along_dim(running, keep, dim=1)
        run_parents = torch.take_along_dim(parents, keep, dim=1)
        # finished hypotheses
        just_done = hits & top_mask[None, :]
        cand_scores = top_scores / ((g + 1) ** lp)
        cand_scores += (~open_).to(torch.float32) * _NEG
        cand_scores += (~just_done) * _NEG
        merged = torch.cat((fin_scores, cand_scores), dim=1)
        best = torch.topk(merged, k=beams)[1]
        fin_tokens = torch.take_along_dim(torch.cat((fin_tokens, cand), dim=1), best[:, :, None], dim=1)
        cand_len = torch.full_like(tokens, g + 1)
        fin_lengths = torch.take_along_dim(torch.cat((fin_lengths, cand_len), dim=1), best, dim=1)
        fin_scores = torch.take_along_dim(merged, best, dim=1)
        fin_done = torch.take_along_dim(torch.cat((fin_done, just_done), dim=1), best, dim=1)
        # stopping heuristic (early_stopping=False: the best running beam at its current length)
        best_running = run_scores[:, :1] / ((g + 1) ** lp)
        worst_done = torch.where(fin_done, torch.min(fin_scores, dim=1, keepdim=True)[0], _NEG)
        open_ = open_ & torch.any(best_running > worst_done, dim=-1, keepdim=True)
        if g + 1 >= max_new:
            break
        # inputs that are settled leave the batch
        still = open_[:, 0]
        if not bool(still.all()):
            done = (~still).nonzero(as_tuple=True)[0].tolist()
            _collect(results, alive, done, fin_tokens, fin_lengths, eos_id)
            if len(done) == n:
                alive = alive[:0]
                break
            keep_rows = still.nonzero(as_tuple=True)[0]
            alive, run_tokens, run_scores, run_parents = (alive[keep_rows], run_tokens[keep_rows],
                                                          run_scores[keep_rows], run_parents[keep_rows])
            fin_tokens, fin_lengths, fin_scores = fin_tokens[keep_rows], fin_lengths[keep_rows], fin_scores[keep_rows]
            fin_done, open_, src_tokens = fin_done[keep_rows], open_[keep_rows], src_tokens[keep_rows]
            next_pos, src_bias = next_pos[keep_rows], src_bias[keep_rows]
            beam_offsets = beam_offsets[keep_rows]
            for layer in layers:
                layer.keep_inputs(keep_rows)
            n = alive.shape[0]
        # beam reorder of the generated keys/values, then one forward for the chosen tokens
        rows = (run_parents + beam_offsets).reshape(-1)
        beam_offsets = torch.arange(n, device=device)[:, None] * beams
        if g > 0:
            for layer in layers:
                layer.reorder(rows, g)
        step = _Step(layers, src_bias, beams, g)
        with _decoding_attention(model, step):
            out = model(input_ids=run_tokens[:, :, g].reshape(-1, 1),
                        position_ids=(next_pos + g).repeat_interleave(beams)[:, None], use_cache=False)
        log_probs = F.log_softmax(out.logits[:, -1, :].to(dtype=torch.float32), dim=-1)
    _collect(results, alive, list(range(alive.shape[0])), fin_tokens, fin_lengths, eos_id)
    return results  # type: ignore[return-value]


def _collect(results, alive, rows, fin_tokens, fin_lengths, eos_id) -> None:
    """The best finished hypothesis of each of `rows`, cut at EOS, into results[original index]."""
    for r in rows:
        length = int(fin_lengths[r, 0])
        seq = fin_tokens[r, 0, :length].tolist()
        results[int(alive[r])] = seq[:seq.index(eos_id)] if eos_id in seq else seq
