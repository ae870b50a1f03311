"""Preflight of the datasets: each (task, split) where the run will read it (--data-dir, the Hub, its cache)."""
from __future__ import annotations

import os

from bench.preflight.common import OFFLINE_FIX, Problem, endpoint, hub_error, hub_fix


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


def check_hub_split(task, split: str, hub: _HubDatasets) -> Problem | None:
    from bench.data.hub import available_splits, hub_split, required_columns, split_files

    where = hub_split(task, split)
    what = f"task {task.name}, split {split}"
    place = f"Hub {endpoint()} {where.describe()}"
    sha, files, configs, exc = hub.repo(where.repo_id, where.revision)
    if exc is not None:
        return Problem(what, place, hub_error(exc), hub_fix("data"))
    found = split_files(where, files, configs)
    if not found:
        have = available_splits(where, files, configs)
        return Problem(what, place, f"no files for split {where.split!r} (the config has splits: "
                                    f"{', '.join(have) or 'none'})", hub_fix("data"))
    try:
        columns = _parquet_columns(where.repo_id, sha, found[0])
    except Exception as exc:  # noqa: BLE001
        return Problem(what, place, f"could not read the schema of {found[0]} ({type(exc).__name__}: {exc})",
                       hub_fix("data"))
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
                       "not in the cache", OFFLINE_FIX)
    missing = [c for c in required_columns(task, split) if c not in ds.column_names]
    if missing:
        return Problem(what, f"cache for {where.describe()}", f"the cached split has no column "
                                                             f"{', '.join(missing)}", OFFLINE_FIX)
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
