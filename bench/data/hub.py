"""Loading a task's split from the Hugging Face Hub, and locating it there without downloading it (preflight).

Two layouts are read: a parquet dataset on `main` whose card declares its configs (`nyu-mll/glue`:
`<config>/<split>-00000-of-00001.parquet`), and the parquet export that the Hub keeps at revision
`refs/convert/parquet` for script datasets (E2E, WebNLG, DART: `<config>/<split>/0000.parquet`, `default` when the
script had no named config). The export's branch has no dataset card, so it declares no configs:
`load_dataset(id, "webnlg_challenge_2017", revision=...)` fails with "BuilderConfig ... not found". The loader
therefore addresses the config's folder itself, one data_files pattern per split, which also keeps the Hub's
split names (a `dev` folder would otherwise be renamed `validation`).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from typing import Any

from bench.data.examples import DataError, Example
from bench.data.formats import format_of
from bench.tasks import Task, get_task

PARQUET_EXPORT = "refs/convert/parquet"


@dataclass(frozen=True)
class HubSplit:
    """Where one of our splits lives on the Hub."""
    repo_id: str
    revision: str            # "main" or the export's ref
    config: str | None       # the card's config name (main) or the export's folder
    split: str               # the Hub's split name
    pattern: str | None      # data_files pattern inside the repo (export), None: the card's configs

    def describe(self) -> str:
        return (f"{self.repo_id} (config {self.config or 'default'}, revision {self.revision}, "
                f"split {self.split})")


def hub_split(task: str | Task, split: str) -> HubSplit:
    task = get_task(task)
    task.check_split(split)
    hub = task.hub_split(split)
    if task.hub_revision == PARQUET_EXPORT:
        folder = task.hub_config or "default"
        return HubSplit(task.hub_id, PARQUET_EXPORT, folder, hub, f"{folder}/{hub}/*.parquet")
    return HubSplit(task.hub_id, task.hub_revision or "main", task.hub_config, hub, None)


def required_columns(task: str | Task, split: str) -> tuple[str, ...]:
    """The Hub columns the task's mapping reads for `split` (Task.hub_columns / hub_fields, hub_keep)."""
    task = get_task(task)
    cols = task.hub_columns
    fields = (tuple(c for c in (cols.text_a, cols.text_b, cols.label) if isinstance(c, str)) if cols
              else task.hub_fields)
    return fields + tuple(column for s, column, _ in task.hub_keep if s == split)


def load_arguments(task: str | Task, split: str) -> dict[str, Any]:
    """Keyword arguments of `datasets.load_dataset` for one split."""
    task = get_task(task)
    where = hub_split(task, split)
    if where.pattern is None:
        return {"path": where.repo_id, "name": where.config, "revision": task.hub_revision,
                "split": where.split}
    every = {hub_split(task, s).split: hub_split(task, s).pattern for s in task.splits}
    return {"path": where.repo_id, "revision": where.revision, "data_files": every, "split": where.split}


def examples_from_hub_rows(task: str | Task, split: str, rows: Iterable[Mapping[str, Any]],
                           *, source: str | None = None) -> list[Example]:
    """Map the rows of the task's Hub dataset (a `datasets.Dataset` or any iterable of dicts) to examples."""
    task = get_task(task)
    task.check_split(split)
    source = source or f"{task.hub_id} ({task.hub_config or 'default'}) split {task.hub_split(split)}"
    return format_of(task).from_rows(task, split, rows, source)


def load_hub_split(task: str | Task, split: str) -> list[Example]:
    """The examples of one split from the Hub (or its cache): DataError naming repo, config, revision, split."""
    task = get_task(task)
    where = hub_split(task, split)
    import datasets  # imported here: `peft-bench data --data-dir` and `ls` do not need it

    try:
        ds = datasets.load_dataset(**load_arguments(task, split))
    except Exception as exc:  # network, missing repo or revision, auth, offline: all reported the same way
        raise DataError(f"task {task.name}, split {split}: could not load {where.describe()} from the Hub: "
                        f"{type(exc).__name__}: {_first_line(exc)}. {fix_hint()}") from None
    missing = [c for c in required_columns(task, split) if c not in ds.column_names]
    if missing:
        raise DataError(f"task {task.name}, split {split}: {where.describe()} has no column "
                        f"{', '.join(repr(c) for c in missing)}; its columns are {ds.column_names}")
    for keep_split, column, value in task.hub_keep:
        if keep_split == split:
            ds = ds.filter(lambda v, value=value: v == value, input_columns=column)
    return examples_from_hub_rows(task, split, ds, source=where.describe())


def fix_hint() -> str:
    """What a user can set when the Hub cannot give a dataset or model."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return ("HF_HUB_OFFLINE is set: fill the Hub cache first (run once online), or pass --data-dir / "
                "--model-dir (make: DATA_DIR=, MODEL_DIR=) with local copies (docs/data.md)")
    return ("set HF_TOKEN for a gated or private repo; offline, set HF_HUB_OFFLINE=1 with a filled cache, or "
            "pass --data-dir / --model-dir (make: DATA_DIR=, MODEL_DIR=) with local copies (docs/data.md)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


# -- locating a split without downloading it (used by the preflight) --------------------------------------------
def split_files(where: HubSplit, files: list[str], card_configs: list[dict] | None) -> list[str]:
    """The repo files holding `where` (from the repo's file list and, for `main`, the card's configs)."""
    patterns: list[str] = []
    if where.pattern is not None:
        patterns = [where.pattern]
    else:
        for cfg in card_configs or []:
            if cfg.get("config_name", "default") == (where.config or "default"):
                for item in cfg.get("data_files") or []:
                    if isinstance(item, dict) and item.get("split") == where.split:
                        paths = item.get("path")
                        patterns += [paths] if isinstance(paths, str) else list(paths or [])
        if not patterns:
            patterns = [f"{where.config or 'default'}/{where.split}-*"]
    return sorted(f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns))


def available_splits(where: HubSplit, files: list[str], card_configs: list[dict] | None) -> list[str]:
    """Split names the repo has for `where.config` (for the error line)."""
    folder = where.config or "default"
    if where.pattern is not None:
        return sorted({f.split("/")[1] for f in files if f.startswith(folder + "/") and f.count("/") >= 2})
    for cfg in card_configs or []:
        if cfg.get("config_name", "default") == folder:
            return [item.get("split") for item in cfg.get("data_files") or [] if isinstance(item, dict)]
    return sorted({f.split("/")[1].split("-")[0] for f in files if f.startswith(folder + "/")})
