"""Aggregation: deduplication of repeated runs, median/mean and std over seeds, incomplete and failed cells."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from bench.report.aggregate import build_grid, dedup, runs_from_rows
from bench.report.load import read_results
from bench.schema import COLUMNS

FIX = Path(__file__).resolve().parent / "fixtures" / "report"


def _row(**kw) -> dict:
    base = {c: "" for c in COLUMNS}
    base.update(preset="p", model="m", task="sst2", method="lora", method_config="r=8", seed="1", lr="0.001",
                epochs="3", batch_size="8", recipe="own", label="LoRA", split="dev", metric="accuracy",
                value="0.5", scale="fraction", higher_is_better="true", status="ok", params_stored="100",
                created_at="2026-01-01T00:00:00")
    base.update({k: str(v) for k, v in kw.items()})
    return base


def _grid(tmp_path, rows, center="median"):
    path = tmp_path / "p.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return build_grid(read_results(path), center_of=lambda task: center)


def _only_cell(grid):
    assert len(grid.cells) == 1
    return next(iter(grid.cells.values()))


def test_median_and_sample_std_over_seeds(tmp_path):
    values = [0.90, 0.80, 0.95, 0.85, 0.70]
    rows = [_row(run_id=f"r{s}", seed=s, value=v) for s, v in enumerate(values, start=1)]
    cell = _only_cell(_grid(tmp_path, rows))
    stat = cell.stats[("dev", "accuracy")]
    assert stat.center == pytest.approx(0.85)
    assert stat.std == pytest.approx(statistics.stdev(values))
    assert stat.n == 5 and cell.flags == ""
    mean = _only_cell(_grid(tmp_path, rows, center="mean")).stats[("dev", "accuracy")]
    assert mean.center == pytest.approx(sum(values) / 5)


def test_single_seed_has_no_std(tmp_path):
    stat = _only_cell(_grid(tmp_path, [_row(run_id="a")])).stats[("dev", "accuracy")]
    assert stat.center == 0.5 and stat.std is None


def test_repeated_run_id_newest_complete_attempt_wins(tmp_path):
    rows = [_row(run_id="a", value=0.1, created_at="2026-01-01"),
            _row(run_id="a", value=0.7, created_at="2026-01-03"),
            _row(run_id="a", value="", split="", metric="", status="failed", error="x", created_at="2026-01-05"),
            _row(run_id="a", value=0.3, created_at="2026-01-02")]
    grid = _grid(tmp_path, rows)
    cell = _only_cell(grid)
    assert cell.stats[("dev", "accuracy")].values == (0.7,)  # newer failed attempt does not erase it
    assert len(grid.superseded) == 3 and grid.complete == 1 and not grid.failed


def test_same_settings_other_run_id_is_a_duplicate(tmp_path):
    rows = [_row(run_id="old-hash", value=0.2, created_at="2025-01-01"),
            _row(run_id="new-hash", value=0.6, created_at="2026-01-01"),
            _row(run_id="other-seed", seed=2, value=0.4)]
    grid = _grid(tmp_path, rows)
    stat = _only_cell(grid).stats[("dev", "accuracy")]
    assert sorted(stat.values) == [0.4, 0.6]
    assert [r.run_id for r in grid.superseded] == ["old-hash"]


def test_only_failed_attempts_keep_the_newest_failure(tmp_path):
    rows = [_row(run_id="a", split="", metric="", value="", status="failed", error="old", created_at="1"),
            _row(run_id="a", split="", metric="", value="", status="failed", error="new", created_at="2")]
    grid = _grid(tmp_path, rows)
    assert [r.error for r in grid.failed] == ["new"]
    cell = _only_cell(grid)
    assert cell.n_ok == 0 and cell.n_failed == 1 and cell.stats == {}


def test_failed_runs_are_counted_not_averaged_and_incomplete_cells_flagged(tmp_path):
    rows = [_row(run_id=f"ok{s}", seed=s, value=0.8) for s in (1, 2)]
    rows += [_row(run_id="f3", seed=3, split="", metric="", value="", status="failed", error="oom")]
    rows += [_row(run_id=f"other{s}", task="rte", seed=s, value=0.6) for s in (1, 2, 3, 4, 5)]
    grid = _grid(tmp_path, rows)
    sst2 = next(c for c in grid.cells.values() if c.task == "sst2")
    assert sst2.stats[("dev", "accuracy")].values == (0.8, 0.8)
    assert sst2.flags == "2/5 seeds, 1 failed"
    assert grid.complete == 7 and len(grid.failed) == 1
    assert grid.missing == 2  # sst2 seeds 4 and 5 were never run
    assert grid.seeds == [1, 2, 3, 4, 5]


def test_empty_metric_value_is_noted_not_a_number(tmp_path):
    rows = [_row(run_id="a", value="", note="constant predictions"), _row(run_id="b", seed=2, value=0.6)]
    stat = _only_cell(_grid(tmp_path, rows)).stats[("dev", "accuracy")]
    assert stat.values == (0.6,)
    assert stat.notes == ("seed 1: constant predictions",)


def test_mixed_scales_are_converted_to_the_first_runs(tmp_path):
    rows = [_row(run_id="a", value=0.5, scale="fraction"), _row(run_id="b", seed=2, value=70, scale="percent")]
    stat = _only_cell(_grid(tmp_path, rows)).stats[("dev", "accuracy")]
    assert stat.values == (0.5, 0.7) and stat.scale == "fraction"


def test_a_sweep_splits_rows_by_learning_rate(tmp_path):
    rows = [_row(run_id="a", lr="0.001", value=0.5), _row(run_id="b", lr="0.0001", value=0.6)]
    grid = _grid(tmp_path, rows)
    assert len(grid.rows) == 2
    assert {k.display for k in grid.rows} == {"LoRA [lr=0.001, epochs=3, batch=8]",
                                              "LoRA [lr=0.0001, epochs=3, batch=8]"}


def test_fixture_grid(tmp_path):
    rows = read_results(FIX / "glue.csv")
    winners, superseded = dedup(runs_from_rows(rows))
    assert len(winners) == 17 and len(superseded) == 3
    grid = build_grid(rows)
    assert grid.complete == 16 and len(grid.failed) == 1 and grid.missing == 1
    assert [k.label for k in grid.rows] == ["LoRA (r=8)", "BitFit", "FT"]


def test_runs_sharing_an_id_or_settings_are_one_run_transitively(tmp_path):
    # a and b share a run_id; b and c share the settings (seed 2): all three are one run, the newest ok wins
    rows = [_row(run_id="a", seed=1, value=0.1, created_at="2026-01-01"),
            _row(run_id="a", seed=2, value=0.2, created_at="2026-01-02"),
            _row(run_id="c", seed=2, value=0.3, created_at="2026-01-03"),
            _row(run_id="d", seed=3, value=0.9, created_at="2026-01-01")]
    grid = _grid(tmp_path, rows)
    assert sorted(r.run_id for r in grid.runs) == ["c", "d"] and len(grid.superseded) == 2
    assert _only_cell(grid).stats[("dev", "accuracy")].values == (0.3, 0.9)


def test_an_ok_run_without_metric_rows_gives_a_cell_without_stats(tmp_path):
    cell = _only_cell(_grid(tmp_path, [_row(run_id="a", metric="", value="")]))
    assert cell.n_ok == 1 and cell.stats == {}
