"""Run folders and the tidy result CSV. No torch import (collect and show run without it).

results/runs/<preset>/<run_id>/
    spec.json          the resolved RunSpec
    log.jsonl          one JSON object per epoch ("epoch", "train_loss", "<split>_<metric>", ...)
    predictions/       <split>.txt, one prediction per line in split order (class id, score or text)
      epochs/          <split>.<epoch>.txt per evaluated epoch of the selection split, <split>.gold.jsonl its gold
                       (what collect's held-out protocol needs, bench/heldout.py)
    state.pt           best trainable state (only runs that others start from: spec.save_state)
    error.txt          traceback of a failed run
    rows.json          the run's result rows; written LAST, atomically: its presence marks completion
Every file is written to a temporary name in the same folder and moved into place with os.replace, so a
SIGKILL leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

from bench.schema import COLUMNS, selection_of

ROWS_FILE = "rows.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


def run_dir(results_dir: str | Path, preset: str, run_id: str) -> Path:
    return Path(results_dir) / "runs" / preset / run_id


def write_atomic(path: str | Path, data: str | bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)           # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(_jsonable(r), sort_keys=False) + "\n" for r in records))


def read_rows(folder: str | Path) -> list[dict] | None:
    """The rows of a completed run, or None (not run, killed before the end, or unreadable)."""
    path = Path(folder) / ROWS_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return rows if isinstance(rows, list) and rows else None


def rows_status(rows: list[dict]) -> str:
    """A finished run's status from its rows: ok when every row is ok, failed otherwise."""
    return "ok" if all(r.get("status") == "ok" for r in rows) else "failed"


def run_status(folder: str | Path) -> str:
    """ok | failed | todo."""
    rows = read_rows(folder)
    return "todo" if rows is None else rows_status(rows)


def _jsonable(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def base_row(spec, *, counts=None, env: dict | None = None) -> dict:
    """The columns every row of a run shares."""
    cfg = spec.train
    row = {c: "" for c in COLUMNS}
    row.update(
        preset=spec.preset, run_id=spec.run_id, model=spec.model, task=spec.task, method=spec.method,
        method_config=json.dumps(spec.method_config, sort_keys=True), seed=spec.seed, lr=cfg.lr,
        epochs=cfg.epochs, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, recipe=spec.recipe, loss=cfg.loss,
        select=cfg.select, selection=selection_of(cfg.select), label=spec.display,
        paper_table=spec.paper_table, paper_version=spec.paper_version, paper_method=spec.paper_method,
        paper_params=spec.paper_params,
    )
    if counts is not None:
        row.update(params_trained=counts.trained, params_stored=counts.stored, params_head=counts.head,
                   params_total=counts.total, params_percent=round(float(counts.percent), 6))
    if env:
        row.update({k: v for k, v in env.items() if k in row})
    return row


def metric_rows(spec, scores: dict[str, dict], *, best_epoch: int, counts, env: dict) -> list[dict]:
    """One ok row per result split x metric. `scores`: {split: {metric: Score}}."""
    rows = []
    for split, metrics in scores.items():
        for metric, score in metrics.items():
            row = base_row(spec, counts=counts, env=env)
            value = getattr(score, "value", score)
            if value is not None and isinstance(value, float) and math.isnan(value):
                value = None
            note = getattr(score, "note", "") or ""
            if value is None and not note:
                note = "not computed"
            row.update(split=split, metric=metric, value="" if value is None else value,
                       scale=getattr(score, "scale", "") or "",
                       higher_is_better=_flag(getattr(score, "higher_is_better", "")),
                       best_epoch=best_epoch, note=note, status="ok")
            rows.append(row)
    return rows


def _flag(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return ""


def failed_rows(spec, error: str, *, counts=None, env: dict | None = None) -> list[dict]:
    row = base_row(spec, counts=counts, env=env)
    row.update(status="failed", error=error, note="run failed")
    return [row]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c, "")) for c in COLUMNS})
    return buf.getvalue()


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value


def collect(specs, results_dir: str | Path, out: str | Path, data_dir: str | Path | None = None) -> dict:
    """Write the rows of the given specs' completed runs to `out` (atomically), with the held-out protocol's rows
    derived from each run's per-epoch predictions (bench/heldout.py), and the per-example predictions behind
    them to `<out stem>.predictions.jsonl` beside it, their gold to `<out stem>.gold.jsonl` (both removed when no
    run has any). A run folder without its gold (a clone: gold is not committed) gets it rebuilt from the release
    files in `data_dir`; without `data_dir` that is a ConfigError naming the folders, and nothing is written.
    Returns counts by status, "rows" and "heldout" (runs with heldout rows)."""
    from bench.config import ConfigError
    from bench.heldout import GoldMissing, GoldSource, derive, gold_path, predictions_path, write_predictions

    source = GoldSource(data_dir) if data_dir else None
    missing = []
    rows, records, counts = [], [], {"ok": 0, "failed": 0, "todo": 0, "heldout": 0}
    for spec in specs:
        folder = run_dir(results_dir, spec.preset, spec.run_id)
        got = read_rows(folder)
        if got is None:
            counts["todo"] += 1
            continue
        counts[rows_status(got)] += 1
        for row in got:
            row.setdefault("selection", selection_of(row.get("select", "")))   # run folders older than the column
        try:
            added, kept = derive(folder, got, source)
        except GoldMissing:
            missing.append(folder)
            continue
        counts["heldout"] += bool(added)
        rows.extend(got + added)
        records.extend(kept)
    if missing:
        raise ConfigError(f"{len(missing)} run folders keep no gold (labels and references are dataset content, "
                          f"not committed), e.g. {missing[0]}: `peft-bench collect {specs[0].preset} --data-dir D` "
                          f"rebuilds it from the release files in D; nothing was written")
    write_atomic(out, to_csv(rows))
    side = predictions_path(out)
    if records:
        write_predictions(side, records)
    else:
        side.unlink(missing_ok=True)
        gold_path(side).unlink(missing_ok=True)
    counts["rows"] = len(rows)
    return counts
