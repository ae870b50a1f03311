"""The finished hypotheses of our beam search, in the two ways `Decoding.score_length` names.

`Generated` is transformers 5's `_beam_search` (`_update_finished_beams`, `_check_early_stop_heuristic` with
early_stopping=False): a hypothesis that ends (EOS among the top num_beams candidates, or the last allowed token)
scores logprob / (generated tokens, EOS included) ** length_penalty; the best num_beams are kept; an input stops
once they are all filled and its best running beam, divided by the current generated length, cannot beat the
worst of them.

`Total` is transformers 3's `BeamHypotheses` as the Prefix-Tuning authors' fork runs it
(transformers/src/transformers/generation_utils.py): `add(hyp, sum_logprobs)` scores sum_logprobs / len(hyp) **
length_penalty where hyp is the input ids, source included and EOS excluded; a hypothesis enters while fewer than
num_beams are kept or when it beats the worst kept one, which is then dropped (the oldest of equal worst ones);
`is_done(best, cur_len)` stops an input once num_beams are kept and the worst of them is >= the best candidate
score of the step (EOS candidates included) / cur_len ** length_penalty, cur_len the total length before the
step's token; inputs that reach the maximum length add their running beams, scored by the full length, and the
answer is the best kept hypothesis (the latest added among equal best ones). Its arithmetic is Python's: float64
divisions by `len ** length_penalty` computed in Python, as `.item()` floats were.

Both work on all inputs of the batch at once; rows are inputs, columns the num_beams finished slots.
"""
from __future__ import annotations

import torch

NEG = -1.0e9          # transformers' "never select" offset, kept identical for equal rounding


class Generated:
    def __init__(self, inputs: int, beams: int, max_new: int, length_penalty: float, eos_id: int, device):
        self.beams, self.lp = beams, length_penalty
        self.tokens = torch.full((inputs, beams, max_new), eos_id, dtype=torch.long, device=device)
        self.lengths = torch.zeros((inputs, beams), dtype=torch.long, device=device)
        self.scores = torch.full((inputs, beams), NEG, dtype=torch.float, device=device)
        self.done = torch.zeros((inputs, beams), dtype=torch.bool, device=device)
        self.open = torch.ones((inputs, 1), dtype=torch.bool, device=device)   # early-stop heuristic unsatisfied

    def keep(self, rows: torch.Tensor) -> None:
        self.tokens, self.lengths, self.scores = self.tokens[rows], self.lengths[rows], self.scores[rows]
        self.done, self.open = self.done[rows], self.open[rows]

    def step(self, g: int, top_scores, cand, hits, top_mask, run_scores, last: bool) -> torch.Tensor:
        """Candidates of step g (0-based): top_scores (n, 2B) float32, cand (n, 2B, g+1) their tokens, hits
        (n, 2B) EOS (or, at the last step, every candidate). Returns (n,) True where the input is settled."""
        just_done = hits & top_mask[None, :]
        if bool(just_done.any()):
            cand_scores = top_scores / ((g + 1) ** self.lp)
            cand_scores += (~self.open).to(torch.float32) * NEG
            cand_scores += (~just_done) * NEG
            merged = torch.cat((self.scores, cand_scores), dim=1)
            best = torch.topk(merged, k=self.beams)[1]
            width = cand.shape[2]
            tokens = torch.cat((self.tokens[:, :, :width], cand), dim=1)
            self.tokens[:, :, :width] = torch.take_along_dim(tokens, best[:, :, None], dim=1)
            cand_len = torch.full_like(hits, g + 1, dtype=torch.long)
            self.lengths = torch.take_along_dim(torch.cat((self.lengths, cand_len), dim=1), best, dim=1)
            self.scores = torch.take_along_dim(merged, best, dim=1)
            self.done = torch.take_along_dim(torch.cat((self.done, just_done), dim=1), best, dim=1)
        best_running = run_scores[:, :1] / ((g + 1) ** self.lp)
        worst_done = torch.where(self.done, torch.min(self.scores, dim=1, keepdim=True)[0], NEG)
        self.open = self.open & torch.any(best_running > worst_done, dim=-1, keepdim=True)
        return ~self.open[:, 0]

    def finish(self, unsettled, run_tokens, run_scores, max_new: int) -> None:
        """Nothing to add: at the last step every candidate has finished (`step(last=True)`)."""

    def best(self, row: int) -> list[int]:
        return self.tokens[row, 0, :int(self.lengths[row, 0])].tolist()


class Total:
    def __init__(self, inputs: int, beams: int, max_new: int, length_penalty: float, eos_id: int, device,
                 source_lengths: torch.Tensor):
        self.beams = beams
        # len ** length_penalty for every length that can occur, computed by Python as the fork did
        top = int(source_lengths.max()) + max_new + 1
        self.len_pow = torch.tensor([0.0] + [float(n) ** length_penalty for n in range(1, top)], dtype=torch.float64,
                                    device=device)
        self.src = source_lengths.to(device)
        self.tokens = torch.full((inputs, beams, max_new), eos_id, dtype=torch.long, device=device)
        self.lengths = torch.zeros((inputs, beams), dtype=torch.long, device=device)
        self.scores = torch.full((inputs, beams), float("-inf"), dtype=torch.float64, device=device)
        self.stamp = torch.zeros((inputs, beams), dtype=torch.long, device=device)   # order of entry
        self.count = torch.zeros((inputs,), dtype=torch.long, device=device)
        self._clock = 0
        self._slots = torch.arange(beams, device=device)

    def keep(self, rows: torch.Tensor) -> None:
        self.src, self.tokens, self.lengths = self.src[rows], self.tokens[rows], self.lengths[rows]
        self.scores, self.stamp, self.count = self.scores[rows], self.stamp[rows], self.count[rows]

    def _add(self, mask: torch.Tensor, score: torch.Tensor, tokens: torch.Tensor, length: int) -> None:
        """`BeamHypotheses.add` for every input where `mask`: score (n,) float64, tokens (n, width) generated."""
        full = self.count >= self.beams
        worst = self.scores.min(dim=1).values
        accept = mask & (~full | (score > worst))
        is_worst = self.scores == worst[:, None]
        victim = torch.where(is_worst, self.stamp, torch.iinfo(torch.long).max).argmin(dim=1)
        slot = torch.where(full, victim, self.count.clamp(max=self.beams - 1))
        write = accept[:, None] & (self._slots[None, :] == slot[:, None])             # (n, B)
        self._clock += 1
        self.scores = torch.where(write, score[:, None], self.scores)
        self.stamp = torch.where(write, self._clock, self.stamp)
        self.lengths = torch.where(write, length, self.lengths)
        width = tokens.shape[1]
        self.tokens[:, :, :width] = torch.where(write[:, :, None], tokens[:, None, :], self.tokens[:, :, :width])
        self.count = self.count + (accept & ~full).to(torch.long)

    def step(self, g: int, top_scores, cand, hits, top_mask, run_scores, last: bool) -> torch.Tensor:
        cur_len = self.src + g                                      # total length before this step's token
        just_done = hits & top_mask[None, :]
        ranks = just_done.any(dim=0).nonzero().flatten().tolist()
        if ranks:
            scores = top_scores.to(torch.float64) / self.len_pow[cur_len][:, None]
            for r in ranks:                                          # in rank order, as the fork's loop adds them
                self._add(just_done[:, r], scores[:, r], cand[:, r, :g], g)
        best = top_scores[:, 0].to(torch.float64) / self.len_pow[cur_len]
        return (self.count >= self.beams) & (self.scores.min(dim=1).values >= best)

    def finish(self, unsettled, run_tokens, run_scores, max_new: int) -> None:
        """Inputs not settled at the maximum length add their running beams, in beam order, scored by the full
        length (the fork's loop after `while cur_len < max_length`)."""
        scores = run_scores.to(torch.float64) / self.len_pow[self.src + max_new][:, None]
        for b in range(run_tokens.shape[1]):
            self._add(unsettled, scores[:, b], run_tokens[:, b], max_new)

    def best(self, row: int) -> list[int]:
        scores, stamps = self.scores[row], self.stamp[row]
        top = scores.max()
        slot = int(torch.where(scores == top, stamps, -1).argmax())
        return self.tokens[row, slot, :int(self.lengths[row, slot])].tolist()
