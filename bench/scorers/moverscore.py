"""MoverScore as DART's evaluation runs it: `python moverscore.py REF0 HYPS`, i.e. MoverScore v2
(`moverscore_v2.word_mover_score(refs, hyps, idf_ref, idf_hyp, stop_words=[], n_gram=1, remove_subwords=True)`
with distilbert-base-uncased), the mean over lines, against the first reference file only.

Per text: WordPiece tokens of the lower-cased text, cut to 510, framed as [CLS] ... [SEP]; its embeddings are
distilbert's last layer. Token weights are idf values computed over the whole set of that side (references
or hypotheses): idf(t) = ln((N + 1) / (n_t + 1)), n_t = the number of texts containing token t, so [CLS] and
[SEP], present in every text, weigh 0. Subword pieces (tokens containing "##") and single punctuation
characters get weight 0 and a zero embedding. Per (reference, hypothesis) pair, the embeddings are
L2-normalised (a zero vector stays zero), the distance between two tokens is the Euclidean distance of their
normalised vectors, the weights of each side are normalised to sum 1, and the score is
1 - EMD(reference weights, hypothesis weights, distances), with the earth mover's distance from pyemd (the
package MoverScore uses). A pair where one side has no weighted token (e.g. a blank line) is passed to pyemd
as it is, as MoverScore does.

This is our implementation (MoverScore v2 itself downloads its model from the Hub and runs on CUDA at import).
Texts are encoded in length-sorted batches; padding carries weight 0, so batching does not change a score
beyond float rounding of the encoder.
"""
from __future__ import annotations

import math
import string
from collections import Counter
from pathlib import Path
from collections.abc import Sequence

from bench.config import ConfigError

MOVERSCORE_MODEL = "distilbert-base-uncased"
_MAX_TOKENS = 510                   # moverscore_v2's truncate(): tokenizer.max_len (512) - 2
_BATCH = 64
_PUNCTUATION = set(string.punctuation)


def check_moverscore_dir(model_dir: str | Path) -> Path:
    """DIR/distilbert-base-uncased after the cheap checks (folder, config.json, a DistilBERT, pyemd installed)."""
    from bench.scorers.hf_folder import check_folder

    path, _ = check_folder(model_dir, MOVERSCORE_MODEL, "MoverScore", "distilbert",
                           "v2 expects distilbert-base-uncased")
    check_pyemd()
    return path


def check_pyemd() -> None:
    try:
        import pyemd  # noqa: F401
    except ImportError:
        raise ConfigError("MoverScore needs the pyemd package (pip install pyemd), as MoverScore v2 does") from None


def load_moverscore_model(model_dir: str | Path):
    """(tokenizer, model) from `model_dir/distilbert-base-uncased`; ConfigError if unusable."""
    from bench.scorers.hf_folder import load_folder

    path = check_moverscore_dir(model_dir)
    tokenizer, model = load_folder(path, MOVERSCORE_MODEL, "MoverScore")
    check_moverscore_tokenizer(tokenizer, str(path))
    return tokenizer, model


def check_moverscore_tokenizer(tokenizer, where: str) -> None:
    if tokenizer.cls_token is None or tokenizer.sep_token is None or tokenizer.pad_token_id is None:
        raise ConfigError(f"{where}: the tokenizer has no [CLS]/[SEP]/[PAD] tokens; expected distilbert's")


def tokens_of(tokenizer, text: str) -> list[str]:
    """[CLS] + the first 510 WordPiece tokens + [SEP], as MoverScore v2 frames a text."""
    return [tokenizer.cls_token] + tokenizer.tokenize(text)[:_MAX_TOKENS] + [tokenizer.sep_token]


def idf_weights(tokenizer, texts: Sequence[str]) -> tuple[dict[int, float], float]:
    """({token id: idf}, idf of an unseen id) over `texts`: ln((N + 1) / (n + 1)), n = texts containing the id."""
    counts: Counter[int] = Counter()
    for text in texts:
        counts.update(set(tokenizer.convert_tokens_to_ids(tokens_of(tokenizer, text))))
    n = len(texts)
    return {i: math.log((n + 1) / (c + 1)) for i, c in counts.items()}, math.log(n + 1)


def _weighted(tokenizer, texts: Sequence[str], idf: tuple[dict[int, float], float]):
    """Per text: (token ids, weights) with subword pieces and punctuation at weight 0 (and flagged to zero)."""
    table, unseen = idf
    out = []
    for text in texts:
        tokens = tokens_of(tokenizer, text)
        ids = tokenizer.convert_tokens_to_ids(tokens)
        drop = [("##" in t) or (t in _PUNCTUATION) for t in tokens]
        weights = [0.0 if d else table.get(i, unseen) for i, d in zip(ids, drop)]
        out.append((ids, weights, drop))
    return out


def _embed(model, rows, pad_id: int, progress: bool, desc: str):
    """Last-layer embeddings per row (list of [len, d] float tensors), length-sorted batches."""
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    out: list = [None] * len(rows)
    for start in tqdm(range(0, len(order), _BATCH), desc=desc, unit="batch", disable=not progress):
        batch = order[start:start + _BATCH]
        width = max(len(rows[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            ids[j, :len(rows[i][0])] = torch.tensor(rows[i][0])
            mask[j, :len(rows[i][0])] = 1
        with torch.no_grad():
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state.float().cpu()
        for j, i in enumerate(batch):
            out[i] = hidden[j, :len(rows[i][0])]
    return out


def pair_score(ref_vec, ref_weights, ref_drop, hyp_vec, hyp_weights, hyp_drop) -> float:
    """1 - EMD between one reference and one hypothesis (see the module docstring)."""
    import numpy as np
    import torch
    from pyemd import emd_with_flow

    raw = torch.cat([ref_vec, hyp_vec], dim=0).clone()
    raw[torch.tensor(list(ref_drop) + list(hyp_drop), dtype=torch.bool)] = 0
    raw = raw / (raw.norm(dim=-1, keepdim=True) + 1e-30)
    sq = raw.pow(2).sum(dim=-1, keepdim=True)
    dist = torch.addmm(sq.T, raw, raw.T, alpha=-2).add_(sq).clamp_min_(1e-30).sqrt_().double().numpy()
    n_ref = len(ref_weights)
    c1 = np.zeros(dist.shape[0], dtype=np.float64)
    c2 = np.zeros(dist.shape[0], dtype=np.float64)
    c1[:n_ref] = ref_weights
    c2[n_ref:] = hyp_weights
    c1 = c1 / (c1.sum() + 1e-30)
    c2 = c2 / (c2.sum() + 1e-30)
    _, flow = emd_with_flow(c1, c2, dist)
    return float(1 - np.sum(np.asarray(flow, dtype=np.float32) * dist))


def moverscore(references: Sequence[str], hypotheses: Sequence[str], tokenizer, model, *,
               progress: bool = False) -> list[float]:
    """MoverScore v2 per (reference, hypothesis) line pair; idf over each side's whole set."""
    if len(references) != len(hypotheses):
        raise ConfigError(f"moverscore: {len(hypotheses)} hypotheses but {len(references)} references")
    refs = _weighted(tokenizer, references, idf_weights(tokenizer, references))
    hyps = _weighted(tokenizer, hypotheses, idf_weights(tokenizer, hypotheses))
    pad = int(tokenizer.pad_token_id)
    ref_vecs = _embed(model, refs, pad, progress, "moverscore refs")
    hyp_vecs = _embed(model, hyps, pad, progress, "moverscore hyps")
    return [pair_score(rv, r[1], r[2], hv, h[1], h[2]) for rv, r, hv, h in zip(ref_vecs, refs, hyp_vecs, hyps)]
