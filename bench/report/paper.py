"""results/paper.csv: the published numbers in the join keys of the result schema.

Built from the reference file `paper_results.csv` (columns paper, version, table, model, method, setting,
params_reported, task, split, metric, value, std, scale):

    python -m bench.report.paper ../shared/reference/paper_results.csv [--out results/paper.csv]

Renamed so that a result row joins on (model, task, split, metric, paper_method, paper_params, paper_version):
version -> paper_version (arxiv-v1 | acl-2021 for Prefix-Tuning Table 1 / Table 2, arxiv-v2 for LoRA Tables 2
and 3), method -> paper_method, params_reported -> paper_params; paper_table is "<paper>/<table>".
The restricted rows of LoRA Table 2 keep the paper's dagger in their name ("LoRA\u2020", "AdptP\u2020",
"AdptH\u2020") so that the join key is unique (RoBERTa-large LoRA 0.8M exists in both blocks).
After the reference file's rows come VeRA's published rows (`bench.report.paper_vera`: its Table 2 on GLUE
with RoBERTa, its Table 3 on E2E with GPT-2), paper "vera", paper_version "iclr-2024".
Added: higher_is_better (TER is the only lower-is-better metric of the tables) and params_approx, the printed
count as a number for plotting ("0.3M" -> 300000; "0.1%" -> 0.1% of the model's full fine-tuning count
printed in the same paper set, e.g. GPT-2 Medium 354.92M from LoRA Table 3; empty when nothing is printed).
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError

SOURCE_COLUMNS = ["paper", "version", "table", "model", "method", "setting", "params_reported", "task", "split",
                  "metric", "value", "std", "scale"]
COLUMNS = ["paper", "paper_version", "paper_table", "model", "paper_method", "paper_params", "params_approx",
           "setting", "task", "split", "metric", "value", "std", "scale", "higher_is_better"]
LOWER_IS_BETTER = {"ter"}
FULL_FT_METHODS = {"FT", "FINE-TUNE", "FT-FULL"}


@dataclass(frozen=True)
class PaperRow:
    paper: str
    paper_version: str
    paper_table: str
    model: str
    paper_method: str
    paper_params: str
    params_approx: float | None
    setting: str
    task: str
    split: str
    metric: str
    value: float
    std: float | None
    scale: str
    higher_is_better: bool

    def key(self) -> tuple:
        return (self.model, self.task, self.split, self.metric, self.paper_method, self.paper_params,
                self.paper_version)


def _read(path: Path, required: list[str]) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
        return [(i, row) for i, row in enumerate(reader, start=2)]


def _number(text: str, path: Path, line: int, column: str, *, optional: bool) -> float | None:
    text = (text or "").strip()
    if not text:
        if optional:
            return None
        raise ConfigError(f"{path} line {line}: column {column!r} is empty, expected a number")
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{path} line {line}: column {column!r} is not a number: {text!r}") from None


def _params_number(printed: str, base: float | None) -> float | None:
    printed = printed.strip()
    if printed.endswith("M"):
        return float(printed[:-1]) * 1e6
    if printed.endswith("%") and base is not None:
        return float(printed[:-1]) / 100.0 * base
    return None


def build_rows(source: Path, extra: list[dict] | None = None) -> list[dict]:
    """The rows of results/paper.csv (as strings) from the reference file, then `extra` rows in its columns."""
    raw = _read(source, SOURCE_COLUMNS) + [(f"extra {i}", row) for i, row in enumerate(extra or [], start=1)]
    base: dict[str, float] = {}  # model -> full fine-tuning count printed in "M" anywhere in the set
    for _, row in raw:
        if row["method"] in FULL_FT_METHODS and row["params_reported"].endswith("M"):
            base[row["model"]] = float(row["params_reported"][:-1]) * 1e6
    out = []
    for line, row in raw:
        _number(row["value"], source, line, "value", optional=False)
        _number(row["std"], source, line, "std", optional=True)
        approx = _params_number(row["params_reported"], base.get(row["model"]))
        out.append({
            "paper": row["paper"],
            "paper_version": row["version"],
            "paper_table": f"{row['paper']}/{row['table']}",
            "model": row["model"],
            "paper_method": row["method"] + ("\u2020" if row["setting"].startswith("restricted") else ""),
            "paper_params": row["params_reported"],
            "params_approx": "" if approx is None else f"{approx:.0f}",
            "setting": row["setting"],
            "task": row["task"],
            "split": row["split"],
            "metric": row["metric"],
            "value": row["value"],
            "std": row["std"],
            "scale": row["scale"],
            "higher_is_better": "false" if row["metric"] in LOWER_IS_BETTER else "true",
        })
    return out


def write_paper_csv(source: Path, out: Path) -> int:
    from bench.report.paper_vera import source_rows

    rows = build_rows(source, source_rows())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    return len(rows)


def read_paper(path: Path) -> list[PaperRow]:
    """Rows of results/paper.csv; a missing column or a non-numeric value raises ConfigError naming it."""
    rows = []
    for line, row in _read(path, COLUMNS):
        hib = row["higher_is_better"].strip().lower()
        if hib not in ("true", "false"):
            raise ConfigError(f"{path} line {line}: column 'higher_is_better' must be true or false, got {hib!r}")
        rows.append(PaperRow(
            paper=row["paper"], paper_version=row["paper_version"], paper_table=row["paper_table"],
            model=row["model"], paper_method=row["paper_method"], paper_params=row["paper_params"],
            params_approx=_number(row["params_approx"], path, line, "params_approx", optional=True),
            setting=row["setting"], task=row["task"], split=row["split"], metric=row["metric"],
            value=_number(row["value"], path, line, "value", optional=False),
            std=_number(row["std"], path, line, "std", optional=True),
            scale=row["scale"], higher_is_better=hib == "true",
        ))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report.paper", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the reference paper_results.csv")
    parser.add_argument("--out", type=Path, default=Path("results/paper.csv"), help="where to write")
    args = parser.parse_args(argv)
    try:
        n = write_paper_csv(args.source, args.out)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"wrote {n} rows to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
