"""BERTScore as DART's evaluation runs it: `bert-score -r ref0 ref1 ref2 -c hyp --lang en` (bert-score 0.3.x).

`--lang en` selects roberta-large and its default layer 17 (the output of the 17th transformer layer, as
bert-score gets it by truncating the encoder), no idf weighting (every token weighs 1, `<s>` and `</s>` weigh 0),
no baseline rescaling. Per hypothesis and reference, with L2-normalised layer-17 token embeddings:

* precision = mean over the hypothesis' non-special tokens of the best cosine with any reference token,
* recall    = mean over the reference's non-special tokens of the best cosine with any hypothesis token,
* F1 = 2PR / (P + R) (0 when P + R = 0).

The best-match search includes `<s>` and `</s>` (bert-score masks them only out of the averages). A blank
hypothesis or reference has only those two tokens and scores P = R = F1 = 0, as bert-score sets it; the CLI
passes blank reference lines through, so a blank slot takes part in the max with 0. With several references
P, R and F1 are each the max over the reference slots; the corpus figure is the mean F1 over hypotheses (the
CLI prints the means of P, R and F1; DART reports F1).

Texts are stripped and, for RoBERTa, tokenised with a leading space (bert-score's `add_prefix_space=True`),
then truncated to the tokenizer's `model_max_length` with the special tokens (512 for roberta-large: a tokenizer
without that setting, as the Hub repo's, gets the model's positions, 514 - 2).

This is our implementation, not the `bert-score` package: bert-score 0.3.13 fails on transformers 5 for a
blank sentence (`build_inputs_with_special_tokens` is gone) and its `add_prefix_space=True` argument is
silently ignored there. One deliberate difference: bert-score pads each batch of 64 pairs and gives padded
positions cosine 0, so a token whose every real cosine is negative scores 0 there, depending on the batch;
here it keeps its (negative) best cosine, i.e. what bert-score gives with batch size 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

from bench.config import ConfigError

BERTSCORE_MODEL = "roberta-large"
BERTSCORE_LAYER = 17
_BATCH = 32


@dataclass(frozen=True)
class BertScoreResult:
    precision: list[float]   # per hypothesis, max over its reference slots
    recall: list[float]
    f1: list[float]

    @property
    def corpus_f1(self) -> float:
        return sum(self.f1) / len(self.f1) if self.f1 else 0.0


def check_bertscore_dir(model_dir: str | Path) -> Path:
    """DIR/roberta-large after the cheap checks (folder, config.json, RoBERTa, >= 17 layers); ConfigError if not."""
    from bench.scorers.hf_folder import check_folder

    path, config = check_folder(model_dir, BERTSCORE_MODEL, "BERTScore", "roberta",
                                "(--lang en) expects a RoBERTa model")
    if config.num_hidden_layers < BERTSCORE_LAYER:
        raise ConfigError(f"{path}: {config.num_hidden_layers} layers; BERTScore uses layer {BERTSCORE_LAYER} "
                          f"of roberta-large (24 layers)")
    return path


def load_bertscore_model(model_dir: str | Path):
    """(tokenizer, model) from `model_dir/roberta-large`, a Hugging Face model folder; ConfigError if unusable."""
    from bench.scorers.hf_folder import load_folder

    path = check_bertscore_dir(model_dir)
    tokenizer, model = load_folder(path, BERTSCORE_MODEL, "BERTScore")
    return prepare_bertscore(tokenizer, model, str(path))


def prepare_bertscore(tokenizer, model, where: str):
    """Check a loaded roberta-large (folder or Hub) and drop the layers above 17, as bert-score does (same
    layer-17 output, 7/24 less work on roberta-large); ConfigError naming `where` if it cannot serve."""
    if model.config.num_hidden_layers < BERTSCORE_LAYER:
        raise ConfigError(f"{where}: {model.config.num_hidden_layers} layers; BERTScore uses layer "
                          f"{BERTSCORE_LAYER} of roberta-large (24 layers)")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ConfigError(f"{where}: the tokenizer has no <s>/</s> (cls/sep) tokens; expected roberta-large's")
    if tokenizer.model_max_length >= 10**6:
        # roberta-large's Hub repo has no tokenizer_config.json, so transformers 5 sets no length limit; the
        # transformers that bert-score 0.3.x ran on gave roberta-large 512 tokens: the model's positions
        from methods import ARCHES
        from methods.base import max_positions

        tokenizer.model_max_length = max_positions(model, ARCHES["roberta"])
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer") and len(encoder.layer) > BERTSCORE_LAYER:
        encoder.layer = encoder.layer[:BERTSCORE_LAYER]
        model.config.num_hidden_layers = BERTSCORE_LAYER
    return tokenizer, model


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of one text as bert-score's `sent_encode` makes them for RoBERTa."""
    text = text.strip()
    if text:
        text = " " + text  # add_prefix_space=True
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**6 else None
    return tokenizer(text, add_special_tokens=True, truncation=limit is not None, max_length=limit)["input_ids"]


def embed(model, tokenizer, texts: Sequence[str], layer: int = BERTSCORE_LAYER, progress: bool = False):
    """{text: (ids tensor, L2-normalised layer embeddings [len, d]) } for the distinct texts."""
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    distinct = sorted(set(texts), key=len, reverse=True)
    out = {}
    starts = range(0, len(distinct), _BATCH)
    for start in tqdm(starts, desc="bertscore", unit="batch", disable=not progress):
        batch = distinct[start:start + _BATCH]
        ids = [encode(tokenizer, t) for t in batch]
        width = max(len(x) for x in ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        with torch.no_grad():
            hidden = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
        hidden = hidden.float()
        for i, text in enumerate(batch):
            vecs = hidden[i, :len(ids[i])]
            out[text] = (torch.tensor(ids[i]), vecs / vecs.norm(dim=-1, keepdim=True))
    return out


def pair_scores(hyp, ref, special_ids: set[int]) -> tuple[float, float, float]:
    """(P, R, F1) of one hypothesis against one reference, each given as (ids, normalised embeddings)."""
    (h_ids, h_vec), (r_ids, r_vec) = hyp, ref
    h_weight = [int(i) not in special_ids for i in h_ids.tolist()]
    r_weight = [int(i) not in special_ids for i in r_ids.tolist()]
    if not any(h_weight) or not any(r_weight):
        return 0.0, 0.0, 0.0  # a blank text: bert-score sets the raw scores to 0
    sim = h_vec @ r_vec.T
    p = float(sim.max(dim=1).values[h_weight].mean())
    r = float(sim.max(dim=0).values[r_weight].mean())
    f = 2 * p * r / (p + r) if p + r != 0 else 0.0
    return p, r, f


def bertscore(hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenizer, model, *,
              layer: int = BERTSCORE_LAYER, progress: bool = False) -> BertScoreResult:
    """Per-hypothesis BERTScore, max over each hypothesis' reference slots (blank slots score 0)."""
    if len(hypotheses) != len(references):
        raise ConfigError(f"bertscore: {len(hypotheses)} hypotheses but {len(references)} reference lists")
    texts = [h.strip() for h in hypotheses] + [r.strip() for refs in references for r in refs]
    vectors = embed(model, tokenizer, texts, layer=layer, progress=progress)
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id}
    ps, rs, fs = [], [], []
    for hyp, refs in zip(hypotheses, references):
        if not refs:
            raise ConfigError("bertscore: a hypothesis has no reference slot")
        scores = [pair_scores(vectors[hyp.strip()], vectors[r.strip()], special) for r in refs]
        ps.append(max(s[0] for s in scores))
        rs.append(max(s[1] for s in scores))
        fs.append(max(s[2] for s in scores))
    return BertScoreResult(ps, rs, fs)
