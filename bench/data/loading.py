"""`load_split(task, split, data_dir=None)`: from a local copy of the release files when `data_dir` is given,
from the Hub otherwise. Both paths give the same Example records."""
from __future__ import annotations

from pathlib import Path

from bench.data.examples import DataError, Example
from bench.data.formats import format_of
from bench.data.hub import load_hub_split
from bench.tasks import Task, get_task


def locate_split(task: str | Task, split: str, data_dir: str | Path) -> list[Path]:
    """The local file(s) holding `split` of `task` under `data_dir`; MissingSplitError naming every path
    tried when they are absent. The accepted layouts are listed in docs/data.md."""
    task = get_task(task)
    task.check_split(split)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"--data-dir {data_dir}: not a directory")
    return format_of(task).locate(task, split, data_dir)


def load_local_split(task: str | Task, split: str, data_dir: str | Path) -> list[Example]:
    task = get_task(task)
    files = locate_split(task, split, data_dir)
    return format_of(task).read(task, split, files)


def load_split(task: str | Task, split: str, data_dir: str | Path | None = None) -> list[Example]:
    """All examples of one split: ClassificationExample for GLUE, GenerationExample (one per input, with
    every reference) for E2E, WebNLG and DART. `data_dir`: local release files; None: the Hub."""
    if data_dir is None:
        return load_hub_split(task, split)
    return load_local_split(task, split, data_dir)
