"""One object per local release format, chosen by `Task.loader`: where a split's files are under --data-dir,
how they are read, and how the Hub's rows of the same dataset map to the same examples.

A format answers three questions for any task that names it:
    locate(task, split, data_dir) -> [Path]     MissingSplitError naming every path tried
    read(task, split, files) -> [Example]
    from_rows(task, split, rows, source) -> [Example]
    note(split) -> str | None                   what `peft-bench data` should say about a split
A new format is one object here and one line in FORMATS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Mapping

from bench.data.examples import DataError, Example, MissingSplitError
from bench.data.glue import glue_candidates, glue_from_rows, read_glue_tsv
from bench.data.nlg import (
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
from bench.tasks import Task

Rows = Iterable[Mapping[str, Any]]


def _first_root(candidates: list[Path], has_data: Callable[[Path], bool]) -> Path | None:
    for folder in candidates:
        if folder.is_dir() and has_data(folder):
            return folder
    return None


@dataclass(frozen=True)
class SingleFile:
    """A release that keeps each split in one file named by `Task.files` (GLUE TSVs, E2E CSVs). The split's
    file is looked up in the first candidate folder holding any of the release's files."""
    name: str
    folders: Callable[[Path, Task], list[Path]]
    parse: Callable[[Task, str, Path], list[Example]]
    rows: Callable[[Task, str, Rows, str], list[Example]]

    def locate(self, task: Task, split: str, data_dir: Path) -> list[Path]:
        candidates = self.folders(data_dir, task)
        name = task.local_file(split).name
        root = _first_root(candidates, lambda d: any((d / f.name).is_file() for f in task.files))
        if root is None:
            raise MissingSplitError(task.name, split, [c / name for c in candidates])
        path = root / name
        if not path.is_file():
            raise MissingSplitError(task.name, split, [path])
        return [path]

    def read(self, task: Task, split: str, files: list[Path]) -> list[Example]:
        return self.parse(task, split, files[0])

    def from_rows(self, task: Task, split: str, rows: Rows, source: str) -> list[Example]:
        return self.rows(task, split, rows, source)

    def note(self, split: str) -> str | None:
        return None


class WebNLG2017:
    """WebNLG 2017: train/dev in `<split>/<n>triples/*.xml`, test in `test/testdata_with_lex.xml`."""
    name = "webnlg2017"

    def locate(self, task: Task, split: str, data_dir: Path) -> list[Path]:
        cands = webnlg_candidates(data_dir)
        root = _first_root(cands, lambda d: any((d / s).is_dir() for s in task.splits))
        pattern = "test/testdata_with_lex.xml" if split == "test" else f"{split}/<n>triples/*.xml"
        if root is None:
            raise MissingSplitError(task.name, split, [c / pattern for c in cands])
        files = webnlg_files(root, split)
        if not files:
            raise MissingSplitError(task.name, split, [root / pattern])
        return files

    def read(self, task: Task, split: str, files: list[Path]) -> list[Example]:
        return read_webnlg(files[0].parent, split, files)

    def from_rows(self, task: Task, split: str, rows: Rows, source: str) -> list[Example]:
        return webnlg_from_rows(rows, split, source=source)

    def note(self, split: str) -> str | None:
        return 'comment="good" lexicalisations only, as Prefix-Tuning and LoRA train' if split == "train" else None


class Dart:
    """DART v1.1.1: `dart-v1.1.1-full-<split>.json` (or the XML release), in one of the release's folders."""
    name = "dart"

    def locate(self, task: Task, split: str, data_dir: Path) -> list[Path]:
        cands = dart_candidates(data_dir)
        root = _first_root(cands, lambda d: any(p.is_file() for s in task.splits for p in dart_files(d, s)))
        if root is None:
            raise MissingSplitError(task.name, split, [p for c in cands for p in dart_files(c, split)[:2]])
        for path in dart_files(root, split):
            if path.is_file():
                return [path]
        raise MissingSplitError(task.name, split, dart_files(root, split))

    def read(self, task: Task, split: str, files: list[Path]) -> list[Example]:
        path = files[0]
        return read_dart_json(path) if path.suffix == ".json" else read_dart_xml(path, split)

    def from_rows(self, task: Task, split: str, rows: Rows, source: str) -> list[Example]:
        return dart_from_rows(rows, source=source)

    def note(self, split: str) -> str | None:
        return None


GLUE = SingleFile(
    "glue", folders=lambda data_dir, task: glue_candidates(data_dir, task.local_name),
    parse=read_glue_tsv, rows=lambda task, split, rows, source: glue_from_rows(task, rows, source=source))
E2E = SingleFile(
    "e2e", folders=lambda data_dir, task: e2e_candidates(data_dir),
    parse=lambda task, split, path: read_e2e_csv(path),
    rows=lambda task, split, rows, source: e2e_from_rows(rows, source=source))

FORMATS = {"glue": GLUE, "e2e": E2E, "webnlg2017": WebNLG2017(), "dart": Dart()}


def format_of(task: Task):
    """The format object of `task.loader`; DataError naming the known formats otherwise."""
    try:
        return FORMATS[task.loader]
    except KeyError:
        raise DataError(f"task {task.name}: unknown release format {task.loader!r}; "
                        f"formats are: {', '.join(FORMATS)}") from None
