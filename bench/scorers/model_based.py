"""DART's model-based metrics: MoverScore (distilbert), BERTScore (roberta-large, layer 17, max over references)
and BLEURT (the tiny test checkpoint). They need model weights that no package registry ships, so they are only
ever computed from a directory the user supplies (`--metric-model-dir`); otherwise they are reported as not
computed, with the reason -- never as a made-up number.

This version does not compute them even with a directory: doing so faithfully needs the official
implementations (bert-score, moverscore with pyemd, BLEURT on TensorFlow), which are not dependencies of the
suite, and a number we cannot check against the official tools is not reported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

MODEL_METRICS = {
    "moverscore": "distilbert-base-uncased",
    "bertscore": "roberta-large",
    "bleurt": "BLEURT test_checkpoint",
}


def score_model_based(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                      model_dir: str | Path | None) -> dict[str, tuple[float | None, str]]:
    out: dict[str, tuple[float | None, str]] = {}
    for name, weights in MODEL_METRICS.items():
        if model_dir is None:
            out[name] = (None, f"not computed: needs {weights} model weights (--metric-model-dir)")
        else:
            out[name] = (None, f"not computed: {name} from {weights} weights in {model_dir} is not implemented "
                               "in this version (run the official tool)")
    return out
