"""`load_split(task, split, data_dir=None)`: from a local copy of the release files when `data_dir` is given,
from the Hub otherwise. Both paths give the same Example records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.data.examples import DataError, Example, MissingSplitError
from bench.data.glue import GLUE_FILES, glue_candidates, glue_from_rows, read_glue_tsv
from bench.data.nlg import (
    E2E_FILES,
    dart_candidates,
    dart_files,
    dart_from_rows,
    e2e_candidates,
    e2e_from_rows,
    read_dart_json,
    read_dart_xml,
    read_e2e_csv,
    read_webnlg,
    webnlg_candidates,
    webnlg_files,
    webnlg_from_rows,
)
from bench.tasks import Task, get_task


def _first_root(candidates: list[Path], has_data) -> Path | None:
    for folder in candidates:
        if folder.is_dir() and has_data(folder):
            return folder
    return None


def _one_file(task: Task, split: str, candidates: list[Path], release_files: list[str], name: str) -> list[Path]:
    """The split's file `name` in the first candidate folder holding any of the release's files."""
    root = _first_root(candidates, lambda d: any((d / f).is_file() for f in release_files))
    if root is None:
        raise MissingSplitError(task.name, split, [c / name for c in candidates])
    path = root / name
    if not path.is_file():
        raise MissingSplitError(task.name, split, [path])
    return [path]


def locate_split(task: str | Task, split: str, data_dir: str | Path) -> list[Path]:
    """The local file(s) holding `split` of `task` under `data_dir`; MissingSplitError naming every path
    tried when they are absent. The accepted layouts are listed in docs/data.md."""
    task = get_task(task)
    task.check_split(split)
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"--data-dir {data_dir}: not a directory")
    if task.loader == "glue":
        files = GLUE_FILES[task.name]
        return _one_file(task, split, glue_candidates(data_dir, task.local_name),
                         [f for f, _ in files.values()], files[split][0])
    if task.loader == "e2e":
        return _one_file(task, split, e2e_candidates(data_dir), list(E2E_FILES.values()), E2E_FILES[split])
    if task.loader == "webnlg2017":
        cands = webnlg_candidates(data_dir)
        root = _first_root(cands, lambda d: any((d / s).is_dir() for s in ("train", "dev", "test")))
        pattern = "test/testdata_with_lex.xml" if split == "test" else f"{split}/<n>triples/*.xml"
        if root is None:
            raise MissingSplitError(task.name, split, [c / pattern for c in cands])
        files = webnlg_files(root, split)
        if not files:
            raise MissingSplitError(task.name, split, [root / pattern])
        return files
    if task.loader == "dart":
        cands = dart_candidates(data_dir)
        root = _first_root(cands, lambda d: any(p.is_file() for s in task.splits for p in dart_files(d, s)))
        if root is None:
            raise MissingSplitError(task.name, split, [p for c in cands for p in dart_files(c, split)[:2]])
        for path in dart_files(root, split):
            if path.is_file():
                return [path]
        raise MissingSplitError(task.name, split, dart_files(root, split))
    raise DataError(f"task {task.name}: unknown local loader {task.loader!r}")


def load_local_split(task: str | Task, split: str, data_dir: str | Path) -> list[Example]:
    task = get_task(task)
    files = locate_split(task, split, data_dir)
    if task.loader == "glue":
        return read_glue_tsv(task.name, split, files[0])
    if task.loader == "e2e":
        return read_e2e_csv(files[0])
    if task.loader == "webnlg2017":
        return read_webnlg(files[0].parent, split, files)
    if task.loader == "dart":
        path = files[0]
        return read_dart_json(path) if path.suffix == ".json" else read_dart_xml(path, split)
    raise DataError(f"task {task.name}: unknown local loader {task.loader!r}")


def examples_from_hub_rows(task: str | Task, split: str, rows: Iterable[Mapping[str, Any]],
                           *, source: str | None = None) -> list[Example]:
    """Map the rows of the task's Hub dataset (a `datasets.Dataset` or any iterable of dicts) to examples."""
    task = get_task(task)
    task.check_split(split)
    source = source or f"{task.hub_id} ({task.hub_config or 'default'}) split {task.hub_split(split)}"
    if task.loader == "glue":
        return glue_from_rows(task.name, rows, source=source)
    if task.loader == "e2e":
        return e2e_from_rows(rows, source=source)
    if task.loader == "webnlg2017":
        return webnlg_from_rows(rows, split, source=source)
    if task.loader == "dart":
        return dart_from_rows(rows, source=source)
    raise DataError(f"task {task.name}: unknown loader {task.loader!r}")


def load_split(task: str | Task, split: str, data_dir: str | Path | None = None) -> list[Example]:
    """All examples of one split: ClassificationExample for GLUE, GenerationExample (one per input, with
    every reference) for E2E, WebNLG and DART. `data_dir`: local release files; None: the Hub."""
    if data_dir is None:
        from bench.data.hub import load_hub_split

        return load_hub_split(task, split)
    return load_local_split(task, split, data_dir)
