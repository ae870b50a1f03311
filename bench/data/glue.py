"""GLUE: the TSV files written by `download_glue_data.py` (glue_data/<TASK>/*.tsv) and the Hub's nyu-mll/glue.

Rows are split on tabs only (no quoting: GLUE text contains unbalanced quotes), as GLUE's own readers do.
Labels map to the ids of nyu-mll/glue, so the local and the Hub path give identical examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from bench.data.examples import ClassificationExample, DataError


@dataclass(frozen=True)
class TsvLayout:
    """Where the text and label columns are in one GLUE file. Columns are header names, or 0-based
    positions for the header-less CoLA train/dev files (`ncols` is then the expected column count)."""
    text_a: str | int
    text_b: str | int | None
    label: str | int | None          # None: unlabelled (test files)
    header: bool = True
    ncols: int | None = None         # header-less files only


# task -> split -> (file name, layout). Test files carry no labels.
GLUE_FILES: dict[str, dict[str, tuple[str, TsvLayout]]] = {
    "cola": {
        "train": ("train.tsv", TsvLayout(3, None, 1, header=False, ncols=4)),
        "dev": ("dev.tsv", TsvLayout(3, None, 1, header=False, ncols=4)),
        "test": ("test.tsv", TsvLayout("sentence", None, None)),
    },
    "sst2": {
        "train": ("train.tsv", TsvLayout("sentence", None, "label")),
        "dev": ("dev.tsv", TsvLayout("sentence", None, "label")),
        "test": ("test.tsv", TsvLayout("sentence", None, None)),
    },
    "mrpc": {
        "train": ("train.tsv", TsvLayout("#1 String", "#2 String", "Quality")),
        "dev": ("dev.tsv", TsvLayout("#1 String", "#2 String", "Quality")),
        "test": ("test.tsv", TsvLayout("#1 String", "#2 String", None)),
    },
    "qqp": {
        "train": ("train.tsv", TsvLayout("question1", "question2", "is_duplicate")),
        "dev": ("dev.tsv", TsvLayout("question1", "question2", "is_duplicate")),
        "test": ("test.tsv", TsvLayout("question1", "question2", None)),
    },
    "stsb": {
        "train": ("train.tsv", TsvLayout("sentence1", "sentence2", "score")),
        "dev": ("dev.tsv", TsvLayout("sentence1", "sentence2", "score")),
        "test": ("test.tsv", TsvLayout("sentence1", "sentence2", None)),
    },
    "mnli": {
        "train": ("train.tsv", TsvLayout("sentence1", "sentence2", "gold_label")),
        "dev": ("dev_matched.tsv", TsvLayout("sentence1", "sentence2", "gold_label")),
        "dev-mismatched": ("dev_mismatched.tsv", TsvLayout("sentence1", "sentence2", "gold_label")),
        "test": ("test_matched.tsv", TsvLayout("sentence1", "sentence2", None)),
        "test-mismatched": ("test_mismatched.tsv", TsvLayout("sentence1", "sentence2", None)),
    },
    "qnli": {
        "train": ("train.tsv", TsvLayout("question", "sentence", "label")),
        "dev": ("dev.tsv", TsvLayout("question", "sentence", "label")),
        "test": ("test.tsv", TsvLayout("question", "sentence", None)),
    },
    "rte": {
        "train": ("train.tsv", TsvLayout("sentence1", "sentence2", "label")),
        "dev": ("dev.tsv", TsvLayout("sentence1", "sentence2", "label")),
        "test": ("test.tsv", TsvLayout("sentence1", "sentence2", None)),
    },
}

# Label strings of the TSV files -> ids of nyu-mll/glue (names in Task.label_names).
GLUE_LABELS: dict[str, dict[str, int]] = {
    "cola": {"0": 0, "1": 1},
    "sst2": {"0": 0, "1": 1},
    "mrpc": {"0": 0, "1": 1},
    "qqp": {"0": 0, "1": 1},
    "mnli": {"entailment": 0, "neutral": 1, "contradiction": 2},
    "qnli": {"entailment": 0, "not_entailment": 1},
    "rte": {"entailment": 0, "not_entailment": 1},
}

# Hub (nyu-mll/glue) text columns per task.
GLUE_HUB_COLUMNS: dict[str, tuple[str, str | None]] = {
    "cola": ("sentence", None),
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "stsb": ("sentence1", "sentence2"),
    "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
}


def glue_candidates(data_dir: Path, folder: str) -> list[Path]:
    """Folders that may hold a GLUE task's TSVs, in order of preference."""
    return [data_dir / "glue_data" / folder, data_dir / "glue" / folder, data_dir / folder, data_dir]


def _parse_label(task: str, raw: str, where: str) -> int | float:
    if task == "stsb":
        try:
            score = float(raw)
        except ValueError:
            raise DataError(f"{where}: expected a similarity score between 0 and 5, got {raw!r}") from None
        if not 0.0 <= score <= 5.0:
            raise DataError(f"{where}: expected a similarity score between 0 and 5, got {raw!r}")
        return score
    labels = GLUE_LABELS[task]
    if raw not in labels:
        raise DataError(f"{where}: expected a label in {{{', '.join(labels)}}}, got {raw!r}")
    return labels[raw]


def read_glue_tsv(task: str, split: str, path: Path) -> list[ClassificationExample]:
    """Parse one GLUE TSV. Every row must have the header's column count (or `ncols`); errors name the line."""
    _, layout = GLUE_FILES[task][split]
    try:
        text = path.read_text(encoding="utf-8-sig")  # MRPC files start with a BOM
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file; expected GLUE {task} rows")
    first = 0
    if layout.header:
        header = lines[0].rstrip("\r").split("\t")
        ncols = len(header)
        cols = {}
        for role in ("text_a", "text_b", "label"):
            name = getattr(layout, role)
            if name is None:
                continue
            if name not in header:
                raise DataError(
                    f"{path}, line 1: expected a header with column {name!r} for GLUE {task} {split}; "
                    f"got columns {header}"
                )
            cols[role] = header.index(name)
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
        raise DataError(f"{path}: no data rows; expected GLUE {task} {split} examples")
    return out


def glue_from_rows(task: str, rows: Iterable[Mapping[str, Any]], *, source: str = "hub") -> list[ClassificationExample]:
    """Map rows of nyu-mll/glue (text columns, `label` with -1 on test sets, `idx`) to examples."""
    col_a, col_b = GLUE_HUB_COLUMNS[task]
    out = []
    for i, row in enumerate(rows):
        where = f"{source}, row {i}"
        try:
            text_a = row[col_a]
            text_b = row[col_b] if col_b else None
            raw = row["label"]
        except KeyError as exc:
            raise DataError(f"{where}: expected column {exc.args[0]!r} of nyu-mll/glue {task}; "
                            f"got columns {sorted(row)}") from None
        if task == "stsb":
            label = None if raw is None or raw < 0 else float(raw)
        else:
            if raw is None or int(raw) == -1:
                label = None
            else:
                label = int(raw)
                n = max(GLUE_LABELS[task].values()) + 1
                if not 0 <= label < n:
                    raise DataError(f"{where}: expected a label id in 0..{n - 1} (or -1), got {raw!r}")
        if not isinstance(text_a, str) or (col_b and not isinstance(text_b, str)):
            raise DataError(f"{where}: expected text in columns {col_a!r}/{col_b!r}")
        out.append(ClassificationExample(text_a=text_a, text_b=text_b, label=label, idx=len(out)))
    return out
