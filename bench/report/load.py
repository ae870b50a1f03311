"""Read results/PRESET.csv (columns of bench.schema) into typed rows, and the per-epoch run logs.

Every problem is a ConfigError naming the file, the line (the header is line 1), the run_id and the column.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError
from bench.report.units import canonical_split, canonical_task
from bench.schema import COLUMNS, LATER_COLUMNS, NUMERIC, selection_of

STATUSES = ("ok", "failed")
SELECTIONS = ("dev", "heldout", "final")
TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no")


@dataclass(frozen=True)
class Row:
    """One CSV row: text columns as stripped strings, numeric columns as float or None (empty cell)."""
    line: int
    text: dict[str, str]
    num: dict[str, float | None]
    higher_is_better: bool | None

    def __getitem__(self, column: str) -> str:
        return self.text[column]


def _parse_number(text: str, where: str, column: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: column {column!r} is {text!r}; a value that could not be computed must be "
                          f"left empty (with the reason in 'note')")
    return value


def read_results(path: Path) -> list[Row]:
    """All rows of a result CSV; extra columns are kept, missing schema columns are an error."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (run `peft-bench collect PRESET` first)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header and c not in LATER_COLUMNS]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
                              f"(expected the columns of bench/schema.py)")
        rows = []
        for line, raw in enumerate(reader, start=2):
            if None in raw:
                raise ConfigError(f"{path} line {line}: more cells than the header has columns")
            text = {k: (v or "").strip() for k, v in raw.items()}
            for column, default in LATER_COLUMNS.items():
                text[column] = text.get(column) or default
            text["selection"] = text["selection"] or selection_of(text["select"])
            if text["selection"] not in SELECTIONS:
                raise ConfigError(f"{path} line {line} (run_id {text['run_id'] or '?'}): column 'selection' is "
                                  f"{text['selection']!r}, expected one of {', '.join(SELECTIONS)}")
            where = f"{path} line {line} (run_id {text['run_id'] or '?'})"
            if any(v is None for v in raw.values()):
                raise ConfigError(f"{where}: fewer cells than the header has columns")
            num = {c: _parse_number(text[c], where, c) for c in NUMERIC}
            status = text["status"].lower()
            if status not in STATUSES:
                raise ConfigError(f"{where}: column 'status' is {text['status']!r}, expected one of "
                                  f"{', '.join(STATUSES)}")
            text["status"] = status
            hib_text = text["higher_is_better"].lower()
            if hib_text in TRUE:
                hib = True
            elif hib_text in FALSE:
                hib = False
            elif hib_text == "":
                hib = None
            else:
                raise ConfigError(f"{where}: column 'higher_is_better' is {text['higher_is_better']!r}, "
                                  f"expected true or false")
            if not text["run_id"]:
                raise ConfigError(f"{where}: column 'run_id' is empty")
            text["task"] = canonical_task(text["task"])
            text["split"] = canonical_split(text["split"])
            rows.append(Row(line=line, text=text, num=num, higher_is_better=hib))
    return rows


@dataclass(frozen=True)
class Log:
    """A run's per-epoch log: one dict of numeric series per line, and the series the runner selected on."""
    points: list[dict[str, float]]
    select: str | None   # e.g. "dev_accuracy" when the runner names it ("select" key), else None


def read_log(path: Path) -> Log:
    """A run's log.jsonl. Each line is a JSON object with "epoch" and numeric keys (e.g. "train_loss",
    "dev_accuracy"); a line {"epoch", "split", "metric", "value"} becomes the series "<split>_<metric>";
    a string "select" names the selection series. Lines without an epoch, or not JSON, are skipped."""
    points: list[dict[str, float]] = []
    select = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return Log(points, select)
    for line in lines:
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, ValueError):
            continue
        if not isinstance(obj, dict) or not _is_number(obj.get("epoch")):
            continue
        point = {"epoch": float(obj["epoch"])}
        if "metric" in obj and _is_number(obj.get("value")):
            split = canonical_split(str(obj.get("split", "dev")))
            point[f"{split}_{obj['metric']}"] = float(obj["value"])
        for key, value in obj.items():
            if key in ("epoch", "value") or not _is_number(value):
                continue
            point[key] = float(value)
        if isinstance(obj.get("select"), str):
            select = obj["select"]
        if len(point) > 1:
            points.append(point)
    return Log(points, select)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
