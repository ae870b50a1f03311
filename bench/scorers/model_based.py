"""DART's model-based metrics: MoverScore (distilbert), BERTScore (roberta-large, layer 17, max over references)
and BLEURT (the tiny test checkpoint). They need model weights that no package registry ships, so nothing is
computed without a directory the user supplies (`--metric-model-dir DIR`); a metric that is not computed is
None with the reason -- never a made-up number.

* BERTScore is computed when DIR is given: DIR/roberta-large must be a Hugging Face model folder (config.json,
  weights, tokenizer files, as `save_pretrained` writes them) with at least 17 layers; anything else is a
  ConfigError naming the path. The formula is `bench.scorers.bertscore` (DART's `bert-score -r ref0 ref1 ref2
  -c hyp --lang en`: layer 17, F1, no idf, no rescaling, max over references); the value is the mean F1.
* MoverScore and BLEURT are not computed, with or without DIR: DART's MoverScore is its own `moverscore.py`
  script (MoverScore v2 with distilbert, idf over the set, earth mover's distance via pyemd), and BLEURT runs
  on TensorFlow; neither is implemented here, and a number we cannot check against them is not reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

MODEL_METRICS = {
    "moverscore": "distilbert-base-uncased",
    "bertscore": "roberta-large",
    "bleurt": "BLEURT test_checkpoint",
}

_NOT_IMPLEMENTED = {
    "moverscore": "not computed: DART's MoverScore (moverscore.py: MoverScore v2, distilbert, earth mover's "
                  "distance via pyemd) is not implemented in peft-bench; run DART's evaluation script",
    "bleurt": "not computed: BLEURT (TensorFlow, BLEURT test checkpoint) is not implemented in peft-bench; "
              "run DART's evaluation script",
}


def score_model_based(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                      model_dir: str | Path | None,
                      progress: bool = True) -> dict[str, tuple[float | None, str]]:
    """{metric: (value or None, note)} for moverscore, bertscore, bleurt (in that order)."""
    out: dict[str, tuple[float | None, str]] = {"moverscore": (None, _NOT_IMPLEMENTED["moverscore"])}
    if model_dir is None:
        out["bertscore"] = (None, "not computed: needs roberta-large model weights (--metric-model-dir DIR "
                                  "with DIR/roberta-large)")
    else:
        import torch

        from bench.scorers.bertscore import BERTSCORE_LAYER, bertscore, load_bertscore_model

        tokenizer, model = load_bertscore_model(model_dir)
        if torch.cuda.is_available():
            model = model.to("cuda")
        result = bertscore(hypotheses, references, tokenizer, model, progress=progress)
        out["bertscore"] = (result.corpus_f1, f"F1, roberta-large layer {BERTSCORE_LAYER} from "
                                              f"{Path(model_dir) / 'roberta-large'}, max over references")
    out["bleurt"] = (None, _NOT_IMPLEMENTED["bleurt"])
    return out
