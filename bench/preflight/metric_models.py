"""Preflight of DART's model-based metrics (MoverScore, BERTScore, BLEURT): when a grid scores them, each metric's
model is looked for where the scorer will load it (`bench.scorers.model_based`): `PEFT_BENCH_METRIC_MODELS=DIR`
(DIR/<folder>), else the Hub under the id DART's tools load (with HF_HUB_OFFLINE=1, the Hub cache).
`PEFT_BENCH_METRIC_MODELS=off` skips them (the runs leave those metrics empty, with that reason).

Checked: the repository's (or folder's) files include config.json, the tokenizer files and weights, and
config.json (a few hundred bytes) is a model the metric can use (model type, BERTScore's 17 layers, BLEURT's one
output). Nothing large is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from bench.config import ConfigError
from bench.preflight.common import (WEIGHT_FILES, Problem, cache, cached_file, endpoint, hub_error, hub_files,
                                    missing_roles, offline)

# metric -> the family whose tokenizer files its model has (DistilBERT's WordPiece tokenizer is BERT's)
_TOKENIZER_FAMILY = {"moverscore": "bert", "bertscore": "roberta", "bleurt": "bert"}
_OFF = "PEFT_BENCH_METRIC_MODELS=off leaves DART's model-based metrics empty"


def scored_metrics(specs) -> list[str]:
    """The model-based metrics among the metrics of the grid's tasks (the Task records say which)."""
    from bench.scorers.model_based import METRICS
    from bench.tasks import get_task

    names = {m for s in specs for m in get_task(s.task).metric_names}
    return [m for m in METRICS if m in names]


def check_metric_models(specs) -> list[Problem]:
    """One problem per model-based metric of the grid whose model cannot be had."""
    from bench.scorers.model_based import metric_model_source

    metrics = scored_metrics(specs)
    if not metrics:
        return []
    kind, root = metric_model_source(None)
    if kind == "off":
        return []
    return [p for p in (check_metric_model(m, root) for m in metrics) if p is not None]


def check_metric_model(metric: str, root: Path | None) -> Problem | None:
    """`metric`'s model in the folder `root` (PEFT_BENCH_METRIC_MODELS=DIR), else on the Hub or in its cache."""
    from bench.scorers.model_based import HUB_IDS
    from bench.scorers.moverscore import check_pyemd

    what = f"metric {metric} (DART), model {HUB_IDS[metric]}"
    if metric == "moverscore":
        try:
            check_pyemd()
        except ConfigError as exc:
            return Problem(what, "installed packages", str(exc), "pip install pyemd (make install)")
    if root is not None:
        return _check_folder(metric, what, root)
    return _check_cached(metric, what) if offline() else _check_hub(metric, what)


def _need(metric: str) -> list[tuple[str, tuple[str, ...]]]:
    from bench.models import tokenizer_files

    return [("config", ("config.json",)), ("tokenizer", tokenizer_files(_TOKENIZER_FAMILY[metric])),
            ("weights", WEIGHT_FILES)]


def _check_config(metric: str, what: str, where: str, folder: Path, fix: str) -> Problem | None:
    from transformers import AutoConfig

    from bench.scorers.model_based import check_metric_config

    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        check_metric_config(metric, config, "config.json")
    except (OSError, ValueError, ConfigError) as exc:
        return Problem(what, where, (str(exc).splitlines() or [type(exc).__name__])[0], fix)
    return None


def _check_folder(metric: str, what: str, root: Path) -> Problem | None:
    from bench.scorers.model_based import ENV, HUB_IDS, MODEL_METRICS

    folder = root / MODEL_METRICS[metric]
    where = f"{ENV}={root}"
    fix = (f"save {HUB_IDS[metric]} there with save_pretrained (config, weights, tokenizer), unset {ENV} to load it "
           f"from the Hub, or {_OFF}")
    if not folder.is_dir():
        return Problem(what, where, f"no folder {folder}", fix)
    missing = missing_roles(_need(metric), lambda f: (folder / f).is_file())
    if missing:
        return Problem(what, where, f"{folder} lacks " + "; ".join(missing), fix)
    return _check_config(metric, what, str(folder), folder, fix)


def _check_hub(metric: str, what: str) -> Problem | None:
    from huggingface_hub import hf_hub_download

    from bench.scorers.model_based import ENV, HUB_IDS, MODEL_METRICS

    hub_id = HUB_IDS[metric]
    place = f"Hub {endpoint()} {hub_id}"
    fix = (f"set HF_TOKEN if it is gated or private; offline, set HF_HUB_OFFLINE=1 with a filled cache or "
           f"{ENV}=DIR with DIR/{MODEL_METRICS[metric]}; {_OFF}")
    try:
        files = hub_files(hub_id)
    except Exception as exc:  # noqa: BLE001 -- every failure becomes one preflight line
        return Problem(what, place, hub_error(exc), fix)
    missing = missing_roles(_need(metric), lambda f: f in files)
    if missing:
        return Problem(what, place, "the repository has no " + "; no ".join(missing), fix)
    try:
        path = hf_hub_download(hub_id, "config.json")
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, hub_error(exc), fix)
    return _check_config(metric, what, place, Path(path).parent, fix)


def _check_cached(metric: str, what: str) -> Problem | None:
    from bench.scorers.model_based import ENV, HUB_IDS, MODEL_METRICS

    hub_id = HUB_IDS[metric]
    place = f"Hub cache {cache()} for {hub_id}"
    fix = (f"HF_HUB_OFFLINE=1: fill the cache online first (huggingface-cli download {hub_id}), or set "
           f"{ENV}=DIR with DIR/{MODEL_METRICS[metric]}; {_OFF}")
    missing = missing_roles(_need(metric), lambda f: cached_file(hub_id, f) is not None)
    if missing:
        return Problem(what, place, "not in the cache: " + "; ".join(missing), fix)
    return _check_config(metric, what, place, Path(cached_file(hub_id, "config.json")).parent, fix)
