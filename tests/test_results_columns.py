"""The result rows say what they hold (batch_size and grad_accum), one 'all rows ok' check, and a run keeps
only its best epoch's predictions in memory."""
from __future__ import annotations

import gc
import json
import shutil
import weakref
from pathlib import Path

from bench.cli import main
from bench.presets import SMOKE_DATA
from bench.report.aggregate import build_grid
from bench.report.load import read_results
from bench.results import rows_status
from bench.schema import COLUMNS, LATER_COLUMNS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "report"


def test_rows_status_is_ok_only_when_every_row_is():
    assert rows_status([{"status": "ok"}, {"status": "ok"}]) == "ok"
    assert rows_status([{"status": "ok"}, {"status": "failed"}]) == "failed"
    assert rows_status([{}]) == "failed"


def test_a_csv_from_before_grad_accum_reads_as_grad_accum_1(tmp_path):
    header = (FIXTURES / "glue.csv").read_text().splitlines()[0].split(",")
    assert "grad_accum" not in header and set(LATER_COLUMNS) <= set(COLUMNS)
    rows = read_results(FIXTURES / "glue.csv")
    assert {r.num["grad_accum"] for r in rows} == {1.0}
    # the same CSV with the column: a sweep over grad_accum splits a table row and names it
    lines = (FIXTURES / "glue.csv").read_text().splitlines()
    out = [lines[0].replace("batch_size,", "batch_size,grad_accum,")]
    for i, line in enumerate(lines[1:]):
        out.append(line.replace(",16,paper,", ",16,1,paper,", 1))
        if i == 0:  # the same run again with twice the accumulation: a second run of that row, task and seed
            cells = out[-1].split(",")
            cells[1] += "-accum2"
            out.append(",".join(cells).replace(",16,1,paper,", ",16,2,paper,", 1))
    path = tmp_path / "accum.csv"
    path.write_text("\n".join(out) + "\n")
    grid = build_grid(read_results(path))
    assert any(k.variant.endswith("batch=16x2") for k in grid.rows)
    assert any(k.variant.endswith("batch=16") for k in grid.rows)


def test_run_writes_batch_and_accumulation_and_keeps_one_epochs_predictions(tmp_path, monkeypatch, capsys):
    import bench.evaluate as evaluate

    real = evaluate.evaluate_split
    made: list[tuple[int, weakref.ref]] = []   # (epoch-order index, result) of the dev evaluations
    alive_at_call: list[int] = []

    def counting(*args, **kwargs):
        gc.collect()
        alive_at_call.append(sum(ref() is not None for _, ref in made))
        res = real(*args, **kwargs)
        made.append((len(made), weakref.ref(res)))
        return res

    monkeypatch.setattr(evaluate, "evaluate_split", counting)
    argv = ["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "bitfit", "--set", "train.epochs=3",
            "--set", "train.batch_size=8", "--set", "train.grad_accum=2", "--set", "train.lr=1e-2",
            "--data-dir", str(SMOKE_DATA), "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    (folder,) = (tmp_path / "runs" / "adhoc").iterdir()
    rows = json.loads((folder / "rows.json").read_text())
    assert {(r["batch_size"], r["grad_accum"]) for r in rows} == {(8, 2)}
    assert len(made) == 3                       # one dev evaluation per epoch, none repeated after training
    assert max(alive_at_call) <= 1              # earlier epochs' predictions were let go (best so far only)
    best = rows[0]["best_epoch"]
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert log[best - 1]["dev_accuracy"] == rows[0]["value"]
    shutil.rmtree(tmp_path / "runs")
