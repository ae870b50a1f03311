"""Comparing two engines' beam search outputs robustly: rows that differ are judged by the beam objective of
each output under the same model, not by their tokens.

On a GPU the same search run on batches of another shape sees logits that differ in the last bits (cuBLAS picks
kernels per shape), so where two hypotheses score within that noise either may win: a different row is then a
near-tie, not a defect. A row counts as unexplained when its output scores worse than the reference's by more
than the tolerance (the search missed a better hypothesis), or better by more (the reference's search did).

Score of an output (the protocol's length_penalty, score_length "generated", EOS included when the output ended
before max_new_tokens): the sum of the model's log-probabilities of its tokens after the source, divided by its
length ** length_penalty, computed here for both outputs by one teacher-forced forward pass each.
"""
from __future__ import annotations

import torch

TOLERANCE = 1e-3        # nats per length ** length_penalty: far above fp32 shape noise, far below a real miss


def sequence_score(model, source: list[int], output: list[int], eos: int, decoding, device) -> float:
    """The beam objective of `output` after `source` (module docstring)."""
    tokens = list(output) + ([eos] if len(output) < decoding.max_new_tokens else [])
    if not tokens:
        return 0.0
    ids = torch.tensor([list(source) + tokens], dtype=torch.long, device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float()
    logp = torch.log_softmax(logits[len(source) - 1:-1], dim=-1)
    total = logp.gather(1, torch.tensor(tokens, device=logp.device)[:, None]).sum().item()
    return total / (len(tokens) ** decoding.length_penalty)


def compare(model, tokenizer, sources, outputs, reference, decoding, device, tolerance: float = TOLERANCE) -> dict:
    """identical_rows, rows, and for the rows that differ: the largest score gap and how many no near-tie
    explains (|gap| > tolerance)."""
    eos = int(tokenizer.eos_token_id)
    gaps = []
    for src, out, ref in zip(sources, outputs, reference):
        if out != ref:
            gaps.append(sequence_score(model, src, out, eos, decoding, device)
                        - sequence_score(model, src, ref, eos, decoding, device))
    return {"identical_rows": len(sources) - len(gaps), "rows": len(sources),
            "max_score_gap": max((abs(g) for g in gaps), default=0.0), "score_gaps": [round(g, 6) for g in gaps],
            "rows_unexplained": sum(abs(g) > tolerance for g in gaps), "score_tolerance": tolerance}
