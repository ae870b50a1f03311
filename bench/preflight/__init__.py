"""Preflight: before the first run of a grid, check that every dataset split and model it needs can be had.

Each (task, split) the runs read and each model they load is resolved where the run would get it: the local
copy (`--data-dir`, `--model-dir`), the installed package (minilm-l6, smollm2-135m), or the Hub; so are the
models of DART's model-based metrics when the grid scores them (`PEFT_BENCH_METRIC_MODELS`, metric_models.py).
Online, the Hub is
asked for the repository at its revision, the split's files and their parquet schema (a few kilobytes: the
footer), the model's file list and config.json; nothing large is downloaded. With HF_HUB_OFFLINE=1 the Hub cache
is looked in instead. What cannot be had is one `Problem` each; `check_resources` raises them all as one
PreflightError (a ConfigError: the CLI prints one line per problem and exits 2) before any run folder exists.

datasets.py: the splits; models.py: the models; metric_models.py: DART's metric models; common.py: shared parts.
"""
from __future__ import annotations

from bench.preflight.common import PreflightError, Problem, offline
from bench.preflight.datasets import _HubDatasets, check_cached_split, check_hub_split, check_local_split
from bench.preflight.metric_models import check_metric_model, check_metric_models
from bench.preflight.models import check_model, model_sources

__all__ = ["PreflightError", "Problem", "check_cached_split", "check_hub_split", "check_local_split",
           "check_metric_model", "check_metric_models", "check_model", "check_resources", "model_sources",
           "needed_splits", "offline", "preflight", "_HubDatasets"]


def needed_splits(specs) -> list[tuple[str, str]]:
    from bench.runner import eval_splits_of
    from bench.tasks import get_task

    return sorted({(s.task, split) for s in specs
                   for split in (s.train.train_split, *eval_splits_of(s, get_task(s.task)))})


def preflight(specs, *, data_dir=None, model_dir=None) -> list[Problem]:
    """Every problem with the grid's datasets, models and metric models (empty: all can be had)."""
    from bench.tasks import get_task

    problems: list[Problem] = []
    hub = _HubDatasets()
    for name, split in needed_splits(specs):
        task = get_task(name)
        if data_dir is not None:
            problem = check_local_split(task, split, data_dir)
        elif offline():
            problem = check_cached_split(task, split)
        else:
            problem = check_hub_split(task, split, hub)
        if problem:
            problems.append(problem)
    for name in sorted({s.model for s in specs}):
        problem = check_model(name, model_dir)
        if problem:
            problems.append(problem)
    return problems + check_metric_models(specs)


def check_resources(specs, *, data_dir=None, model_dir=None) -> None:
    """Raise PreflightError listing every dataset split and model of `specs` that cannot be had."""
    problems = preflight(specs, data_dir=data_dir, model_dir=model_dir)
    if problems:
        raise PreflightError(problems)
