"""BLEURT as DART's evaluation runs it: `python -m bleurt.score -candidate_file=HYPS -reference_file=REF0
-bleurt_checkpoint=bleurt/bleurt/test_checkpoint`, then the mean of the per-line scores (print_scores.py).

DART's `test_checkpoint` is byte for byte BLEURT's test checkpoint of May 2020 (google-research/bleurt @ e75d4ac:
the same git blobs for bert_config.json, bleurt_config.json, saved_model.pb, variables.* and vocab.txt): a
BERT-Tiny (2 layers, hidden 128, 2 heads, FFN 512, uncased 30,522-token WordPiece vocabulary) with
`max_seq_length` 128, whose graph is BERT -> pooled [CLS] output (dense + tanh) -> one dense unit. BLEURT's
README of that time lists it as BLEURT-Tiny 128 ("(default)", later "(test)"); its PyTorch port loadable by
transformers is `Elron/bleurt-tiny-128` (a BertForSequenceClassification with one label: the same pooler and
one linear unit). Per (reference, candidate) line pair, as bleurt/encoding.py `encode_example` builds it:

* both texts WordPiece-tokenised with lower-casing (BERT's FullTokenizer, do_lower_case=True);
* the pair truncated to max_seq_length - 3 tokens by popping the last token of the longer side (the candidate
  on a tie), repeatedly (`_truncate_seq_pair`);
* `[CLS] reference [SEP] candidate [SEP]`, segment ids 0 up to and including the first [SEP], 1 after;
* the score is the model's single output (no squashing).

BLEURT's BERT (bleurt/lib/modeling.py) computes GELU with the tanh approximation, while transformers' "gelu"
is the exact erf form (up to 5e-4 apart per activation); a port whose config says "gelu" is therefore run with
"gelu_new", transformers' name for that same tanh formula (`use_bleurt_gelu`).

Our implementation on transformers (BLEURT itself needs TensorFlow). Pairs are scored in length-sorted batches
with an attention mask over the padding, so batching changes a score only by float rounding.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

from bench.config import ConfigError

BLEURT_MODEL = "bleurt-tiny-128"         # folder name under --metric-model-dir
BLEURT_HUB_ID = "Elron/bleurt-tiny-128"  # the PyTorch port of BLEURT-Tiny 128 on the Hub
BLEURT_MAX_SEQ_LENGTH = 128              # DART's test_checkpoint/bleurt_config.json
_BATCH = 64


def check_bleurt_config(config, where: str) -> None:
    """A BERT regression head with one output, as BLEURT's checkpoints are; ConfigError naming `where` if not."""
    if config.model_type != "bert":
        raise ConfigError(f"{where}: model_type {config.model_type!r}; BLEURT expects a BERT model ('bert')")
    if getattr(config, "num_labels", None) != 1:
        raise ConfigError(f"{where}: {config.num_labels} outputs; BLEURT's regression head has one "
                          f"(a BertForSequenceClassification with num_labels=1, as {BLEURT_HUB_ID})")


def use_bleurt_gelu(config) -> None:
    """Run BERT's GELU as BLEURT's TensorFlow BERT does (the tanh approximation, "gelu_new")."""
    if config.hidden_act == "gelu":
        config.hidden_act = "gelu_new"


def check_bleurt_dir(model_dir: str | Path) -> Path:
    """DIR/bleurt-tiny-128 after the cheap checks (folder, config.json, BERT with one output)."""
    from bench.scorers.hf_folder import check_folder

    path, config = check_folder(model_dir, BLEURT_MODEL, "BLEURT", "bert", "expects a BERT model")
    check_bleurt_config(config, str(path / "config.json"))
    return path


def check_bleurt_tokenizer(tokenizer, where: str) -> None:
    for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise ConfigError(f"{where}: the tokenizer has no {name.removesuffix('_id')}; BLEURT expects BERT's "
                              f"WordPiece tokenizer with [CLS], [SEP] and [PAD]")


def truncate_pair(ref: list, cand: list, max_tokens: int) -> tuple[list, list]:
    """bleurt/encoding.py `_truncate_seq_pair`: pop from the longer side (the candidate on a tie)."""
    ref, cand = list(ref), list(cand)
    while len(ref) + len(cand) > max_tokens:
        if len(ref) > len(cand):
            ref.pop()
        else:
            cand.pop()
    return ref, cand


def encode_pair(tokenizer, reference: str, candidate: str,
                max_seq_length: int = BLEURT_MAX_SEQ_LENGTH) -> tuple[list[int], list[int]]:
    """(input ids, segment ids) of `[CLS] reference [SEP] candidate [SEP]`, as `encode_example` builds them."""
    ref, cand = truncate_pair(tokenizer.tokenize(reference), tokenizer.tokenize(candidate), max_seq_length - 3)
    ids = ([tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(ref) + [tokenizer.sep_token_id]
           + tokenizer.convert_tokens_to_ids(cand) + [tokenizer.sep_token_id])
    segments = [0] * (len(ref) + 2) + [1] * (len(cand) + 1)
    return ids, segments


def bleurt(references: Sequence[str], candidates: Sequence[str], tokenizer, model, *,
           max_seq_length: int = BLEURT_MAX_SEQ_LENGTH, progress: bool = False) -> list[float]:
    """One BLEURT score per (reference, candidate) line pair."""
    import torch
    from tqdm import tqdm

    if len(references) != len(candidates):
        raise ConfigError(f"bleurt: {len(candidates)} candidates but {len(references)} references")
    pairs = [encode_pair(tokenizer, r, c, max_seq_length) for r, c in zip(references, candidates)]
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))
    out: list[float] = [0.0] * len(pairs)
    pad = int(tokenizer.pad_token_id)
    for start in tqdm(range(0, len(order), _BATCH), desc="bleurt", unit="batch", disable=not progress):
        batch = order[start:start + _BATCH]
        width = max(len(pairs[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        segments = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            n = len(pairs[i][0])
            ids[j, :n] = torch.tensor(pairs[i][0])
            segments[j, :n] = torch.tensor(pairs[i][1])
            mask[j, :n] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), token_type_ids=segments.to(device),
                           attention_mask=mask.to(device)).logits
        for j, i in enumerate(batch):
            out[i] = float(logits[j, 0])
    return out
