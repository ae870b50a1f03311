"""DART's model-based metrics, computed by default as `run_eval_on_dart.sh` computes them: MoverScore v2
(distilbert-base-uncased), BERTScore (roberta-large, layer 17, F1, max over references) and BLEURT (DART's
test_checkpoint = BLEURT-Tiny 128, through its PyTorch port Elron/bleurt-tiny-128). A metric that cannot be
computed is None with the reason -- never a made-up number.

Where the models come from:

* by default, the Hub, under the ids DART's tools load (`distilbert-base-uncased`, `roberta-large`) and the
  BLEURT port's id; files already in the Hugging Face cache are used without the network. `HF_HUB_OFFLINE=1`,
  or a Hub that does not answer, leaves only the cache; a model not in it is not computed, with that reason.
* `--metric-model-dir DIR` (or `PEFT_BENCH_METRIC_MODELS=DIR`, which runs read), offline: DIR/distilbert-base-
  uncased, DIR/roberta-large and DIR/bleurt-tiny-128 (Hugging Face model folders as `save_pretrained` writes
  them). A metric whose folder is absent is None with that reason; a folder that is there but unusable, or a
  DIR with none of the three, is a ConfigError naming the paths (`check_metric_model_dir`, run before any slow
  scorer).
* `PEFT_BENCH_METRIC_MODELS=off`: none is computed (each None with that reason).

MoverScore: `bench.scorers.moverscore` (DART's `moverscore.py REF0 HYPS`, first reference, mean over lines);
BERTScore: `bench.scorers.bertscore` (DART's `bert-score -r ref0 ref1 ref2 -c hyp --lang en`; the mean F1);
BLEURT: `bench.scorers.bleurt` (`bleurt.score` against the first reference, mean over lines).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from collections.abc import Sequence

from bench.config import ConfigError

METRICS = ("moverscore", "bertscore", "bleurt")
MODEL_METRICS = {                                   # metric -> folder name under --metric-model-dir
    "moverscore": "distilbert-base-uncased",
    "bertscore": "roberta-large",
    "bleurt": "bleurt-tiny-128",
}
HUB_IDS = {                                         # metric -> the Hub id it loads by default
    "moverscore": "distilbert-base-uncased",        # moverscore_v2.py: model_name = 'distilbert-base-uncased'
    "bertscore": "roberta-large",                   # bert-score --lang en -> model_type roberta-large
    "bleurt": "Elron/bleurt-tiny-128",              # PyTorch port of BLEURT-Tiny 128 (DART's test_checkpoint)
}
MODEL_TYPES = {                                     # metric -> (config.json model_type, what the metric expects)
    "moverscore": ("distilbert", "v2 expects distilbert-base-uncased"),
    "bertscore": ("roberta", "(--lang en) expects a RoBERTa model"),
    "bleurt": ("bert", "expects a BERT model"),
}
ENV = "PEFT_BENCH_METRIC_MODELS"                    # unset or "hub": the Hub; "off": none; else a DIR


def check_metric_config(metric: str, config, where: str) -> None:
    """ConfigError naming `where` unless `config` (a transformers config) can serve `metric`: its model type, and
    BERTScore's 17 layers / BLEURT's one output. What a Hub repo's config.json must say (the preflight's check)."""
    from bench.scorers.bertscore import BERTSCORE_LAYER
    from bench.scorers.bleurt import check_bleurt_config

    model_type, hint = MODEL_TYPES[metric]
    if config.model_type != model_type:
        raise ConfigError(f"{where}: model_type {config.model_type!r}; {metric} {hint} ('{model_type}')")
    if metric == "bertscore" and config.num_hidden_layers < BERTSCORE_LAYER:
        raise ConfigError(f"{where}: {config.num_hidden_layers} layers; BERTScore uses layer {BERTSCORE_LAYER} "
                          f"of roberta-large (24 layers)")
    if metric == "bleurt":
        check_bleurt_config(config, where)


class NotComputed(Exception):
    """A metric's model cannot be had; the message is the row's note."""


def check_metric_model_dir(model_dir: str | Path) -> dict[str, bool]:
    """{metric: whether its folder is in model_dir}, after checking every folder that is there (ConfigError if
    one is unusable, or if none is there)."""
    from bench.scorers.bertscore import check_bertscore_dir
    from bench.scorers.bleurt import check_bleurt_dir
    from bench.scorers.moverscore import check_moverscore_dir

    root = Path(model_dir)
    present = {m: (root / MODEL_METRICS[m]).is_dir() for m in METRICS}
    if not any(present.values()):
        folders = " and ".join(f"no {MODEL_METRICS[m]}/ folder at {root / MODEL_METRICS[m]}"
                               for m in ("bertscore", "moverscore", "bleurt"))
        raise ConfigError(f"--metric-model-dir {model_dir}: {folders}; MoverScore, BERTScore and BLEURT expect "
                          f"Hugging Face model folders (save_pretrained) there")
    checks = {"moverscore": check_moverscore_dir, "bertscore": check_bertscore_dir, "bleurt": check_bleurt_dir}
    for metric in METRICS:
        if present[metric]:
            checks[metric](root)
    return present


def metric_model_source(model_dir: str | Path | None) -> tuple[str, Path | None]:
    """("dir", DIR), ("hub", None) or ("off", None): `model_dir` if given, else PEFT_BENCH_METRIC_MODELS."""
    if model_dir is not None:
        return "dir", Path(model_dir)
    value = os.environ.get(ENV, "").strip()
    if value in ("", "hub"):
        return "hub", None
    if value == "off":
        return "off", None
    return "dir", Path(value)


@functools.cache
def hub_unreachable(endpoint: str, timeout: float = 10.0) -> str | None:
    """None when `endpoint` answers an HTTP request, else why not (one quick try per process, no retries:
    from_pretrained would retry each file for about half a minute)."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None     # it answered
    except (OSError, ValueError) as exc:
        return f"{endpoint} did not answer: {getattr(exc, 'reason', exc)}"
    return None


def _hub_state() -> tuple[bool, str]:
    """(local files only, why) for loading from the Hub now."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True, "HF_HUB_OFFLINE is set"
    why = hub_unreachable(constants.ENDPOINT)
    return (True, why) if why else (False, "")


class _NotCached(Exception):
    pass


def _cached_snapshot(hub_id: str, cache_dir) -> Path:
    """The folder of `hub_id`'s cached snapshot (loading from it never touches the network, which loading by id
    with local_files_only still does for adapter_config.json in transformers 5)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, local_files_only=True,
                                      cache_dir=str(cache_dir) if cache_dir is not None else None))
    except Exception as exc:  # noqa: BLE001 - huggingface_hub's LocalEntryNotFoundError and kin
        raise _NotCached(str(exc)) from None


def _from_hub(metric: str, cache_dir):
    """(tokenizer, model, where) of `metric` from the Hub or the local cache; NotComputed when neither has it."""
    from bench.scorers.bertscore import prepare_bertscore
    from bench.scorers.bleurt import check_bleurt_config, check_bleurt_tokenizer, use_bleurt_gelu
    from bench.scorers.hf_folder import load_pretrained
    from bench.scorers.moverscore import check_moverscore_tokenizer, check_pyemd

    hub_id = HUB_IDS[metric]
    local_only, why = _hub_state()
    model_type, hint = MODEL_TYPES[metric]
    if metric == "moverscore":
        try:
            check_pyemd()
        except ConfigError as exc:
            raise NotComputed(f"not computed: {exc}") from None
    try:
        ref = _cached_snapshot(hub_id, cache_dir) if local_only else hub_id
        config, tokenizer, model = load_pretrained(ref, metric=metric, model_type=model_type, type_hint=hint,
                                                   head=metric == "bleurt", local_only=local_only,
                                                   cache_dir=cache_dir,
                                                   adapt_config=use_bleurt_gelu if metric == "bleurt" else None)
    except (OSError, _NotCached) as exc:
        reason = f"{why}, and it is not in the local Hugging Face cache" if local_only else str(exc).split("\n")[0]
        raise NotComputed(f"not computed: {hub_id} could not be loaded from the Hub ({reason}); "
                          f"--metric-model-dir DIR with DIR/{MODEL_METRICS[metric]} computes it offline") from None
    where = f"{hub_id} (Hub)"
    if metric == "bertscore":
        tokenizer, model = prepare_bertscore(tokenizer, model, where)
    elif metric == "moverscore":
        check_moverscore_tokenizer(tokenizer, where)
    else:
        check_bleurt_config(config, where)
        check_bleurt_tokenizer(tokenizer, where)
    return tokenizer, model, where


def _from_dir(metric: str, root: Path):
    from bench.scorers.bertscore import load_bertscore_model
    from bench.scorers.bleurt import check_bleurt_dir, check_bleurt_tokenizer, use_bleurt_gelu
    from bench.scorers.hf_folder import load_pretrained
    from bench.scorers.moverscore import load_moverscore_model

    where = str(root / MODEL_METRICS[metric])
    if metric == "bertscore":
        return (*load_bertscore_model(root), where)
    if metric == "moverscore":
        return (*load_moverscore_model(root), where)
    path = check_bleurt_dir(root)
    try:
        _, tokenizer, model = load_pretrained(path, metric="BLEURT", model_type="bert", type_hint="expects a BERT "
                                              "model", head=True, local_only=True, adapt_config=use_bleurt_gelu)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the BLEURT model ({exc})") from exc
    check_bleurt_tokenizer(tokenizer, where)
    return tokenizer, model, where


def _compute(metric: str, tokenizer, model, hypotheses, references, device, progress: bool) -> float | None:
    first = [refs[0] if refs else "" for refs in references]
    model = model.to(device)
    if metric == "moverscore":
        from bench.scorers.moverscore import moverscore

        scores = moverscore(first, hypotheses, tokenizer, model, progress=progress)
    elif metric == "bertscore":
        from bench.scorers.bertscore import bertscore

        return bertscore(hypotheses, references, tokenizer, model, progress=progress).corpus_f1
    else:
        from bench.scorers.bleurt import bleurt

        scores = bleurt(first, hypotheses, tokenizer, model, progress=progress)
    return sum(scores) / len(scores) if scores else None


NOTES = {
    "moverscore": "MoverScore v2 ({where}, last layer, idf, first reference only, as DART's moverscore.py)",
    "bertscore": "F1, roberta-large layer 17 from {where}, max over references",
    "bleurt": "BLEURT-Tiny 128 ({where}), first reference, mean over lines, as DART's bleurt.score call",
}


def score_model_based(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                      model_dir: str | Path | None = None, progress: bool = True, *,
                      cache_dir: str | Path | None = None) -> dict[str, tuple[float | None, str]]:
    """{metric: (value or None, note)} for moverscore, bertscore, bleurt (in that order). `model_dir`: the
    folders to read (offline); None: PEFT_BENCH_METRIC_MODELS, by default the Hub (`cache_dir`: its cache)."""
    kind, root = metric_model_source(model_dir)
    if kind == "off":
        return {m: (None, f"not computed: {ENV}=off") for m in METRICS}
    present = check_metric_model_dir(root) if kind == "dir" else {m: True for m in METRICS}
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    out: dict[str, tuple[float | None, str]] = {}
    for metric in METRICS:
        if not present[metric]:
            out[metric] = (None, f"not computed: no {MODEL_METRICS[metric]}/ folder in {root}")
            continue
        try:
            tokenizer, model, where = _from_dir(metric, root) if kind == "dir" else _from_hub(metric, cache_dir)
        except NotComputed as exc:
            out[metric] = (None, str(exc))
            continue
        value = _compute(metric, tokenizer, model, hypotheses, references, device, progress)
        out[metric] = (value, NOTES[metric].format(where=where))
        del model
    return out
