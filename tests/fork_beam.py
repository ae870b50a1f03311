"""A plain batch-1 beam search as the Prefix-Tuning authors' transformers 3 fork runs it, for tests.

Written from XiangLi1999/PrefixTuning, transformers/src/transformers/generation_utils.py
(`GenerationMixin._generate_beam_search`, `BeamHypotheses.add` / `is_done`, `postprocess_next_token_scores`,
`calc_banned_ngram_tokens`), as its gpt2/run_generation.py calls it (do_sample=False, early_stopping False,
num_return_sequences 1, max_length = len(source) + length): one input, no padding, no cache (the whole sequence
runs through the model at every step, so positions are the model's own), Python lists and floats for the
hypotheses. Nothing here is shared with bench/decode.

One addition the fork does not have: `min_new_tokens` (EOS blocked before that many generated tokens), so that
the protocols of the suite can be checked too; 0 leaves the fork's behaviour.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class Hypotheses:
    """`BeamHypotheses`: at most `beams` finished hypotheses, scored by their whole length."""

    def __init__(self, beams: int, length_penalty: float):
        self.beams, self.length_penalty = beams, length_penalty
        self.kept: list[tuple[float, list[int]]] = []
        self.worst = 1e9

    def add(self, hyp: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / len(hyp) ** self.length_penalty
        if len(self.kept) < self.beams or score > self.worst:
            self.kept.append((score, hyp))
            if len(self.kept) > self.beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.kept))
                del self.kept[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self.kept) < self.beams:
            return False
        return self.worst >= best_sum_logprobs / cur_len ** self.length_penalty


def _ngram_bans(seq: list[int], n: int) -> set[int]:
    if n <= 0 or len(seq) + 1 < n:
        return set()
    follows: dict[tuple, set[int]] = {}
    for i in range(len(seq) - n + 1):
        follows.setdefault(tuple(seq[i:i + n - 1]), set()).add(seq[i + n - 1])
    return follows.get(tuple(seq[len(seq) - n + 1:]), set())


@torch.no_grad()
def fork_beam_search(model, source: list[int], *, num_beams: int, max_new_tokens: int, eos_id: int,
                     min_length: int = 0, min_new_tokens: int = 0, length_penalty: float = 1.0,
                     no_repeat_ngram_size: int = 0, banned: tuple[int, ...] = ()) -> list[int]:
    """Generated ids (without the source, cut at EOS) of one source."""
    model.eval()
    src_len = len(source)
    max_length = src_len + max_new_tokens
    seqs = [list(source) for _ in range(num_beams)]
    beam_scores = torch.zeros(num_beams, dtype=torch.float)
    beam_scores[1:] = -1e9
    hyps = Hypotheses(num_beams, length_penalty)
    cur_len, done = src_len, False
    while cur_len < max_length:
        logits = model(input_ids=torch.tensor(seqs, dtype=torch.long)).logits[:, -1, :]
        scores = F.log_softmax(logits.float(), dim=-1)
        vocab = scores.shape[-1]
        if cur_len < min_length or cur_len - src_len < min_new_tokens:
            scores[:, eos_id] = float("-inf")
        for b, seq in enumerate(seqs):
            for t in _ngram_bans(seq, no_repeat_ngram_size):
                scores[b, t] = float("-inf")
        for t in banned:
            if t != eos_id:
                scores[:, t] = float("-inf")
        next_scores = (scores + beam_scores[:, None]).view(1, num_beams * vocab)
        top, idx = torch.topk(next_scores, 2 * num_beams, dim=1, largest=True, sorted=True)
        running: list[tuple[torch.Tensor, int, int]] = []
        for rank, (i, score) in enumerate(zip(idx[0].tolist(), top[0])):
            beam, token = i // vocab, i % vocab
            if token == eos_id:
                if rank >= num_beams:
                    continue
                hyps.add(list(seqs[beam]), score.item())
            else:
                running.append((score, token, beam))
            if len(running) == num_beams:
                break
        done = hyps.is_done(top[0].max().item(), cur_len)
        if done:
            break
        beam_scores = torch.stack([s for s, _, _ in running])
        seqs = [seqs[beam] + [token] for _, token, beam in running]
        cur_len += 1
    if not done:
        for b in range(num_beams):
            hyps.add(seqs[b], beam_scores[b].item())
    best = sorted(hyps.kept, key=lambda x: x[0]).pop()[1]
    out = best[src_len:]
    return out[:out.index(eos_id)] if eos_id in out else out
