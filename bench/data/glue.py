"""GLUE: the TSV files written by `download_glue_data.py` (glue_data/<TASK>/*.tsv) and the Hub's nyu-mll/glue.

Rows are split on tabs only (no quoting: GLUE text contains unbalanced quotes), as GLUE's own readers do.
Labels map to the ids of nyu-mll/glue, so the local and the Hub path give identical examples. Which file
holds a split, its columns and the label spellings are facts of the Task record (`bench.tasks`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping

from bench.data.examples import ClassificationExample, DataError
from bench.tasks import Task, get_task


def glue_candidates(data_dir: Path, folder: str) -> list[Path]:
    """Folders that may hold a GLUE task's TSVs, in order of preference."""
    return [data_dir / "glue_data" / folder, data_dir / "glue" / folder, data_dir / folder, data_dir]


def _parse_label(task: Task, raw: str, where: str) -> int | float:
    if task.kind == "regress":
        try:
            score = float(raw)
        except ValueError:
            raise DataError(f"{where}: expected a similarity score between 0 and 5, got {raw!r}") from None
        if not 0.0 <= score <= 5.0:
            raise DataError(f"{where}: expected a similarity score between 0 and 5, got {raw!r}")
        return score
    if raw not in task.label_values:
        raise DataError(f"{where}: expected a label in {{{', '.join(task.label_values)}}}, got {raw!r}")
    return task.label_values.index(raw)


def read_glue_tsv(task: str | Task, split: str, path: Path) -> list[ClassificationExample]:
    """Parse one GLUE TSV. Every row must have the header's column count (or `ncols`); errors name the line."""
    task = get_task(task)
    layout = task.local_file(split).columns
    name = task.name
    try:
        text = path.read_text(encoding="utf-8-sig")  # MRPC files start with a BOM
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file; expected GLUE {name} rows")
    first = 0
    if layout.header:
        header = lines[0].rstrip("\r").split("\t")
        ncols = len(header)
        cols = {}
        for role in ("text_a", "text_b", "label"):
            col = getattr(layout, role)
            if col is None:
                continue
            if col not in header:
                raise DataError(
                    f"{path}, line 1: expected a header with column {col!r} for GLUE {name} {split}; "
                    f"got columns {header}"
                )
            cols[role] = header.index(col)
        first = 1
    else:
        ncols = layout.ncols
        cols = {role: getattr(layout, role) for role in ("text_a", "text_b", "label")
                if getattr(layout, role) is not None}
    out = []
    for lineno in range(first, len(lines)):
        row = lines[lineno].rstrip("\r").split("\t")
        where = f"{path}, line {lineno + 1}"
        if len(row) != ncols:
            raise DataError(f"{where}: expected {ncols} tab-separated columns, got {len(row)}")
        label = None
        if "label" in cols:
            label = _parse_label(task, row[cols["label"]], where)
        out.append(ClassificationExample(
            text_a=row[cols["text_a"]],
            text_b=row[cols["text_b"]] if "text_b" in cols else None,
            label=label,
            idx=len(out),
        ))
    if not out:
        raise DataError(f"{path}: no data rows; expected GLUE {name} {split} examples")
    return out


def glue_from_rows(task: str | Task, rows: Iterable[Mapping[str, Any]], *,
                   source: str = "hub") -> list[ClassificationExample]:
    """Map rows of nyu-mll/glue (text columns, `label` with -1 on test sets, `idx`) to examples."""
    task = get_task(task)
    col_a, col_b, col_label = task.hub_columns.text_a, task.hub_columns.text_b, task.hub_columns.label
    out = []
    for i, row in enumerate(rows):
        where = f"{source}, row {i}"
        try:
            text_a = row[col_a]
            text_b = row[col_b] if col_b else None
            raw = row[col_label]
        except KeyError as exc:
            raise DataError(f"{where}: expected column {exc.args[0]!r} of {task.hub_id} {task.name}; "
                            f"got columns {sorted(row)}") from None
        if task.kind == "regress":
            label = None if raw is None or raw < 0 else float(raw)
        else:
            if raw is None or int(raw) == -1:
                label = None
            else:
                label = int(raw)
                n = task.num_labels
                if not 0 <= label < n:
                    raise DataError(f"{where}: expected a label id in 0..{n - 1} (or -1), got {raw!r}")
        if not isinstance(text_a, str) or (col_b and not isinstance(text_b, str)):
            raise DataError(f"{where}: expected text in columns {col_a!r}/{col_b!r}")
        out.append(ClassificationExample(text_a=text_a, text_b=text_b, label=label, idx=len(out)))
    return out
