"""Our own batched beam search for decoder models, with the source's keys and values shared by the beams of an input.

Why not `model.generate`: Hugging Face's beam search keeps one full key/value cache row per beam. The source
(an E2E meaning representation is 60-170 byte-level tokens) is identical in all beams of an input, yet every step
copies it num_beams times: once to append the new token (`torch.cat`) and once to reorder the beams
(`index_select`), and attention reads it num_beams times. Here (`bench.decode.attention`)

  * the source is run once per input (not once per beam) through the model's own forward, and its keys and
    values (with the methods' prefix keys/values and soft prompt) stay one row per input; the beams' queries are
    batched against them;
  * the generated tokens' keys and values are written once, in preallocated buffers, and never moved: a beam
    reorder reorders a small index of which slot holds each beam's token at each step;
  * an input whose hypotheses can no longer change (its stopping rule) leaves the batch at once.

The search step for step:

  * log-softmax of the last logits (float32), then the processors, each of which only sets scores to -inf: EOS
    before `min_new_tokens` generated tokens or `min_length` total tokens, banned token ids, and no-repeat-n-gram
    over source + generated tokens;
  * the top 2 x num_beams candidates over beams x vocabulary; candidates ending in EOS among the first num_beams
    are finished hypotheses, the best num_beams others run on (`score_length="generated"`: the best num_beams
    non-EOS by score, and at `max_new_tokens` every candidate finishes, as transformers 5; `"total"`: the first
    num_beams non-EOS in rank order, as transformers 3);
  * finished hypotheses and the stopping rule: `bench.decode.finished` (`Generated`: transformers 5, `Total`:
    the transformers 3 fork of the Prefix-Tuning authors).

The bookkeeping uses the floating-point operations of the implementation it follows, so equal scores give equal
choices: with "generated" the outputs are token for token those of batch-1 `model.generate` (tests/test_beam.py,
tests/test_generate.py), with "total" those of a plain batch-1 implementation of the fork's search
(tests/fork_beam.py, tests/test_beam_total.py). `supports(model)` says whether a model qualifies;
`bench.decode.generate` falls back to `model.generate` otherwise.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bench.decode.attention import Step, context_layers, decoding_steps, set_step, step_bias
from bench.decode.finished import NEG, Generated, Total
from bench.decode.protocol import Decoding
from methods.base import UnsupportedFamily, arch_of, blocks_of, get_module
from methods.decoding import base_attention, inserted_positions, position_offset

_BASES = ("sdpa", "eager")


def supports(model) -> str | None:
    """None when our beam search can decode `model`, else the reason it cannot (then use `model.generate`)."""
    try:
        arch = arch_of(model)
    except UnsupportedFamily as exc:
        return str(exc)
    if not arch.decoder:
        return f"{arch.family} is not a decoder family"
    config = model.config
    if getattr(config, "add_cross_attention", False):
        return "a decoder with cross-attention"
    if getattr(config, "reorder_and_upcast_attn", False):
        return "reorder_and_upcast_attn"
    impl = base_attention(getattr(config, "_attn_implementation", None))
    if impl not in _BASES:
        return f"attention implementation {impl!r}"
    try:
        attns = [get_module(block, arch.attn) for block in blocks_of(model, arch)]
    except AttributeError:
        return f"no {arch.family} blocks at {arch.blocks}"
    if not all(hasattr(a, "layer_idx") for a in attns):
        return "attention modules without layer_idx"
    try:
        inserted_positions(model)
    except ValueError as exc:
        return str(exc)
    return None


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


def _left_pad(sources: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sources)
    ids = torch.full((len(sources), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sources), width), dtype=torch.long)
    for i, s in enumerate(sources):
        ids[i, width - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def beam_search(model, sources: Sequence[Sequence[int]], decoding: Decoding, *, eos_id: int, pad_id: int,
                banned_ids: Sequence[int] = (), device=None) -> list[list[int]]:
    """Generated token ids (cut at EOS) for a batch of sources, in the given order. See the module docstring."""
    reason = supports(model)
    if reason is not None:
        raise ValueError(f"our beam search does not support this model: {reason}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    beams, max_new = decoding.num_beams, decoding.max_new_tokens
    total = decoding.score_length == "total"
    inputs = len(sources)
    ids, mask = _left_pad(sources, pad_id, device)
    width = ids.shape[1]
    offset = position_offset(model)
    positions = mask.cumsum(-1) - 1
    positions.masked_fill_(mask == 0, 1)
    positions += offset
    src_len = mask.sum(-1)

    # prefill: the sources once each, through the model's own attention, into a fresh cache
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                **{_cache_kwarg(model): cache})
    logits = out.logits[:, -1, :].to(dtype=torch.float32)
    vocab = logits.shape[-1]
    prompt_len = inserted_positions(model)
    key_mask = mask.bool()
    if prompt_len:
        key_mask = torch.cat([key_mask.new_ones(inputs, prompt_len), key_mask], dim=1)
    layers, ctx_bias = context_layers(model, cache.layers, key_mask, beams, max_new)
    heads = layers[0].kt.shape[1]                                      # key/value heads
    groups = int(getattr(model.config, arch_of(model).n_heads_attr)) // heads   # query heads per key/value head
    del cache, out
    next_pos = src_len + prompt_len + offset                           # position of the first generated token

    ban = torch.zeros(vocab, dtype=torch.bool, device=device)
    ids_ok = sorted({int(t) for t in banned_ids} | set(decoding.banned_token_ids))
    ids_ok = [t for t in ids_ok if 0 <= t < vocab]
    if ids_ok:
        ban[torch.as_tensor(ids_ok, device=device)] = True
    # EOS is blocked while g < eos_from (generated tokens so far), per input
    eos_from = torch.clamp(decoding.min_length - src_len, min=decoding.min_new_tokens)
    eos_until = int(eos_from.max())
    ngram = decoding.no_repeat_ngram_size
    src_tokens = ids.masked_fill(mask == 0, -1)                        # for no-repeat-n-gram (pads never match)

    k2 = 2 * beams                                                     # candidates kept per step (one EOS id)
    top_mask = torch.arange(k2, device=device) < beams
    run_tokens = torch.empty((inputs, beams, 0), dtype=torch.long, device=device)
    run_scores = torch.zeros((inputs, beams), dtype=torch.float, device=device)
    run_scores[:, 1:] = NEG
    if total:
        fin = Total(inputs, beams, max_new, decoding.length_penalty, eos_id, device, src_len)
    else:
        fin = Generated(inputs, beams, max_new, decoding.length_penalty, eos_id, device)
    alive = torch.arange(inputs, device=device)                        # original index of each row still decoding
    results: list[list[int] | None] = [None] * inputs
    ancestors = torch.empty((inputs, beams, max_new), dtype=torch.long, device=device)   # see attention.py
    own_slot = torch.arange(beams, device=device)

    log_probs = F.log_softmax(logits, dim=-1)[:, None, :].expand(inputs, beams, vocab).reshape(inputs * beams, vocab)
    with decoding_steps(model):
        for g in range(max_new):
            n = alive.shape[0]
            last = g + 1 >= max_new
            # processors (each only sets -inf)
            log_probs = log_probs.masked_fill(ban, float("-inf"))
            if g < eos_until:
                blocked = (g < eos_from).repeat_interleave(beams)
                log_probs[:, eos_id] = log_probs[:, eos_id].masked_fill(blocked, float("-inf"))
            if ngram > 0 and width + g + 1 >= ngram:
                history = torch.cat([src_tokens.repeat_interleave(beams, 0), run_tokens.reshape(n * beams, g)], dim=1)
                log_probs = log_probs.masked_fill(_banned_ngram_mask(history, history >= 0, ngram, vocab),
                                                  float("-inf"))
            # top-k continuations
            scores = log_probs.view(n, beams, vocab) + run_scores[:, :, None]
            top_scores, top_idx = torch.topk(scores.view(n, beams * vocab), k=k2)
            parents = top_idx // vocab
            tokens = top_idx % vocab
            cand = torch.cat([torch.take_along_dim(run_tokens, parents[:, :, None], dim=1), tokens[:, :, None]], dim=2)
            hits = tokens == eos_id
            # running beams for the next step
            if total:
                keep = torch.argsort(hits.to(torch.uint8), dim=1, stable=True)[:, :beams]
                run_scores = torch.take_along_dim(top_scores, keep, dim=1)
            else:
                if last:
                    hits = torch.ones_like(hits)
                running = top_scores + hits.to(torch.float32) * NEG
                keep = torch.topk(running, k=beams)[1]
                run_scores = torch.take_along_dim(running, keep, dim=1)
            run_tokens = torch.take_along_dim(cand, keep[:, :, None], dim=1)
            run_parents = torch.take_along_dim(parents, keep, dim=1)
            settled = fin.step(g, top_scores, cand, hits, top_mask, run_scores, last)
            if last:
                fin.finish(~settled, run_tokens, run_scores, max_new)
                break
            # inputs that are settled leave the batch
            if bool(settled.any()):
                done = settled.nonzero(as_tuple=True)[0].tolist()
                _collect(results, alive, done, fin, eos_id)
                if len(done) == n:
                    alive = alive[:0]
                    break
                rows = (~settled).nonzero(as_tuple=True)[0]
                alive, run_tokens, run_scores, run_parents = alive[rows], run_tokens[rows], run_scores[rows], \
                    run_parents[rows]
                ancestors = ancestors[rows]
                fin.keep(rows)
                src_tokens, next_pos, ctx_bias = src_tokens[rows], next_pos[rows], ctx_bias[rows]
                eos_from = eos_from[rows]
                for layer in layers:
                    layer.keep_inputs(rows, layer.context + g * beams)
                n = alive.shape[0]
            # the beams' paths through the generated slots, then one forward for the chosen tokens
            if g > 0:
                ancestors[:, :, :g] = torch.take_along_dim(ancestors[:, :, :g], run_parents[:, :, None], dim=1)
            ancestors[:, :, g] = own_slot
            set_step(Step(layers, step_bias(ctx_bias, ancestors[:, :, :g + 1], heads, groups), beams, g))
            out = model(input_ids=run_tokens[:, :, g].reshape(-1, 1),
                        position_ids=(next_pos + g).repeat_interleave(beams)[:, None], use_cache=False)
            log_probs = F.log_softmax(out.logits[:, -1, :].to(dtype=torch.float32), dim=-1)
    _collect(results, alive, list(range(alive.shape[0])), fin, eos_id)
    return results  # type: ignore[return-value]


def _collect(results, alive, rows, fin, eos_id) -> None:
    """The best finished hypothesis of each of `rows`, cut at EOS, into results[original index]."""
    for r in rows:
        seq = fin.best(r)
        results[int(alive[r])] = seq[:seq.index(eos_id)] if eos_id in seq else seq
