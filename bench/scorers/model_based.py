"""DART's model-based metrics: MoverScore (distilbert), BERTScore (roberta-large, layer 17, max over references)
and BLEURT (the tiny test checkpoint). They need model weights that no package registry ships, so nothing is
computed without a directory the user supplies (`--metric-model-dir DIR`); a metric that is not computed is
None with the reason -- never a made-up number.

* With DIR, each metric whose model folder is in DIR is computed: DIR/distilbert-base-uncased for MoverScore,
  DIR/roberta-large for BERTScore (Hugging Face model folders as `save_pretrained` writes them). A metric whose
  folder is absent is None with that reason; a folder that is there but unusable, or a DIR with neither
  folder, is a ConfigError naming the paths (`check_metric_model_dir`, run before any slow scorer).
* MoverScore: `bench.scorers.moverscore` (DART's `moverscore.py REF0 HYPS`: MoverScore v2, first reference
  only, mean over lines).
* BERTScore: `bench.scorers.bertscore` (DART's `bert-score -r ref0 ref1 ref2 -c hyp --lang en`: layer 17, F1,
  no idf, no rescaling, max over references); the value is the mean F1.
* BLEURT is not computed, with or without DIR: DART runs BLEURT's TensorFlow test checkpoint, which is not
  implemented here, and a number we cannot check against it is not reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bench.config import ConfigError

MODEL_METRICS = {
    "moverscore": "distilbert-base-uncased",
    "bertscore": "roberta-large",
    "bleurt": "BLEURT test_checkpoint",
}

_BLEURT = ("not computed: BLEURT (TensorFlow, BLEURT test checkpoint) is not implemented in peft-bench; "
           "run DART's evaluation script")


def check_metric_model_dir(model_dir: str | Path) -> dict[str, bool]:
    """{metric: whether its folder is in model_dir} for moverscore and bertscore, after checking every folder
    that is there (ConfigError if one is unusable, or if neither is there)."""
    from bench.scorers.bertscore import check_bertscore_dir
    from bench.scorers.moverscore import check_moverscore_dir

    root = Path(model_dir)
    present = {"moverscore": (root / MODEL_METRICS["moverscore"]).is_dir(),
               "bertscore": (root / MODEL_METRICS["bertscore"]).is_dir()}
    if not any(present.values()):
        raise ConfigError(f"--metric-model-dir {model_dir}: no roberta-large/ folder at {root / 'roberta-large'} "
                          f"and no distilbert-base-uncased/ folder at {root / 'distilbert-base-uncased'}; "
                          f"BERTScore and MoverScore expect Hugging Face model folders (save_pretrained) there")
    if present["moverscore"]:
        check_moverscore_dir(root)
    if present["bertscore"]:
        check_bertscore_dir(root)
    return present


def score_model_based(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                      model_dir: str | Path | None,
                      progress: bool = True) -> dict[str, tuple[float | None, str]]:
    """{metric: (value or None, note)} for moverscore, bertscore, bleurt (in that order)."""
    out: dict[str, tuple[float | None, str]] = {}
    if model_dir is None:
        for name in ("moverscore", "bertscore"):
            folder = MODEL_METRICS[name]
            out[name] = (None, f"not computed: needs {folder} model weights (--metric-model-dir DIR with "
                               f"DIR/{folder})")
        out["bleurt"] = (None, _BLEURT)
        return out
    import torch

    present = check_metric_model_dir(model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if present["moverscore"]:
        from bench.scorers.moverscore import load_moverscore_model, moverscore

        tokenizer, model = load_moverscore_model(model_dir)
        first = [refs[0] if refs else "" for refs in references]
        scores = moverscore(first, hypotheses, tokenizer, model.to(device), progress=progress)
        out["moverscore"] = (sum(scores) / len(scores) if scores else None,
                             f"MoverScore v2 ({Path(model_dir) / MODEL_METRICS['moverscore']}, last layer, idf, "
                             f"first reference only, as DART's moverscore.py)")
    else:
        out["moverscore"] = (None, f"not computed: no {MODEL_METRICS['moverscore']}/ folder in {model_dir}")
    if present["bertscore"]:
        from bench.scorers.bertscore import BERTSCORE_LAYER, bertscore, load_bertscore_model

        tokenizer, model = load_bertscore_model(model_dir)
        result = bertscore(hypotheses, references, tokenizer, model.to(device), progress=progress)
        out["bertscore"] = (result.corpus_f1, f"F1, roberta-large layer {BERTSCORE_LAYER} from "
                                              f"{Path(model_dir) / 'roberta-large'}, max over references")
    else:
        out["bertscore"] = (None, f"not computed: no {MODEL_METRICS['bertscore']}/ folder in {model_dir}")
    out["bleurt"] = (None, _BLEURT)
    return out
