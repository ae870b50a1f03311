"""The held-out selection protocol: fixed halves, selection on one half scored on the other, collect's rows and
per-example file, and a tiny grid end to end (runs -> collect -> dev and heldout rows -> report with marks)."""
from __future__ import annotations

import csv
import json


from bench.heldout import (derive, epoch_file, gold_file, gold_id_file, gold_path, half_of, halves,
                           heldout_predictions, predictions_path, read_epochs)
from bench.results import write_atomic
from bench.tasks import TASKS


def test_halves_are_fixed_per_task_balanced_and_kept_by_a_prefix():
    side = halves("sst2", 872)
    assert side == halves("sst2", 872)                          # the same for every run
    assert halves("sst2", 100) == side[:100]                    # a prefix of the split keeps its halves
    assert 400 < sum(side) < 472                                # about half each
    assert halves("rte", 872) != side                           # another task, other halves
    assert half_of("sst2", 0) in (0, 1)


def _epochs_known(task: str, n: int):
    """Epoch 1 right on half A only, epoch 2 right on half B only, epoch 3 wrong everywhere."""
    side = halves(task, n)
    gold = [i % 2 for i in range(n)]
    wrong = [1 - g for g in gold]
    e1 = [g if h == 0 else w for g, w, h in zip(gold, wrong, side)]
    e2 = [g if h == 1 else w for g, w, h in zip(gold, wrong, side)]
    return gold, {1: e1, 2: e2, 3: wrong}, side


def test_each_half_is_scored_with_the_epoch_selected_on_the_other():
    gold, epochs, side = _epochs_known("sst2", 200)
    preds, chosen = heldout_predictions(TASKS["sst2"], epochs, gold)
    assert chosen == {1: 1, 0: 2}     # half B (1) gets epoch 1 (best on half A), half A (0) gets epoch 2
    # so every held-out prediction is wrong, while dev selection (any epoch scored on all of dev) reads 50%
    assert all(p != g for p, g in zip(preds, gold))


def test_the_first_best_epoch_wins_ties_as_in_the_runner():
    gold = [0, 1] * 50
    preds, chosen = heldout_predictions(TASKS["sst2"], {1: list(gold), 2: list(gold), 3: list(gold)}, gold)
    assert chosen == {0: 1, 1: 1} and preds == gold


def _run_folder(tmp_path, task, select="best", epochs=None, gold=None, kept=None):
    folder = tmp_path / "run"
    row = {"run_id": "r1", "created_at": "t0", "task": task, "select": select,
           "selection": "final" if select == "final" else "dev", "status": "ok", "split": "dev",
           "metric": "accuracy", "value": 50.0, "best_epoch": 1, "note": ""}
    write_atomic(folder / "rows.json", json.dumps([row]))
    for e, p in (epochs or {}).items():
        write_atomic(epoch_file(folder, "dev", e), "".join(f"{x}\n" for x in p))
    if gold is not None:
        write_atomic(gold_file(folder, "dev"), "".join(f"{json.dumps(g)}\n" for g in gold))
    write_atomic(folder / "predictions" / "dev.txt", "".join(f"{x}\n" for x in kept))
    return folder, [row]


def test_derive_adds_heldout_rows_and_the_records_behind_both(tmp_path):
    gold, epochs, _ = _epochs_known("sst2", 200)
    folder, rows = _run_folder(tmp_path, "sst2", epochs=epochs, gold=gold, kept=epochs[1])
    assert list(read_epochs(folder, "dev")) == [1, 2, 3]
    added, records = derive(folder, rows)
    assert [(r["selection"], r["value"], r["best_epoch"]) for r in added] == [("heldout", 0.0, "")]
    assert "epoch 2 (selected on half B)" in added[0]["note"]
    assert [r["selection"] for r in records] == ["dev", "heldout"]
    assert records[0]["predictions"] == epochs[1] and records[1]["epochs"] == [2, 1]


def test_final_runs_have_one_protocol_and_runs_without_epoch_files_no_heldout_rows(tmp_path):
    gold, epochs, _ = _epochs_known("sst2", 50)
    folder, rows = _run_folder(tmp_path, "sst2", select="final", epochs=epochs, gold=gold, kept=epochs[3])
    added, records = derive(folder, rows)
    assert added == [] and [r["selection"] for r in records] == ["final"]
    old, rows = _run_folder(tmp_path / "old", "sst2", gold=None, kept=epochs[3])
    assert derive(old, rows) == ([], [])


def test_a_tiny_grid_collects_both_protocols_and_the_report_marks_them(tmp_path):
    from bench.presets import SMOKE_DATA
    from bench.report import build_report
    from bench.results import collect
    from bench.runner import run_one
    from bench.spec import RunSpec, TrainConfig, resolve

    train = TrainConfig(epochs=2, batch_size=8, lr=1e-3, max_length=64, eval_batch_size=32, mixed_precision="no")
    specs = [resolve(RunSpec(model="tiny-roberta", task="sst2", method=m, train=train, preset="t", seed=s))
             for m in ("lora", "bitfit") for s in (0, 1)]
    for spec in specs:
        assert run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)[0]["status"] == "ok"
    folder = tmp_path / "runs" / "t" / specs[0].run_id
    assert list(read_epochs(folder, "dev")) == [1, 2]
    assert len(json.loads("[" + ",".join(gold_file(folder, "dev").read_text().split()) + "]")) == 32
    out = tmp_path / "t.csv"
    counts = collect(specs, tmp_path, out)
    assert counts["ok"] == 4 and counts["heldout"] == 4
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(r["selection"] for r in table) == ["dev"] * 4 + ["heldout"] * 4
    lines = predictions_path(out).read_text().splitlines()
    assert len(lines) == 1 + 8                                   # one gold vector, 4 runs x 2 protocols
    # the committed files hold no dataset content: the gold line is a digest, the values sit beside (ignored)
    assert all("gold" not in json.loads(line) for line in lines)
    gold = [json.loads(line) for line in gold_path(predictions_path(out)).read_text().splitlines()]
    assert len(gold) == 1 and gold[0]["gold_id"] == json.loads(lines[0])["gold_id"] and len(gold[0]["gold"]) == 32
    assert gold_id_file(folder, "dev").read_text().strip() == gold[0]["gold_id"]
    summary = build_report("t", results_dir=tmp_path, out_root=tmp_path / "reports", plots=False)
    report = tmp_path / "reports" / "t"
    assert report / "selection.md" in summary.files
    glue = (report / "glue.md").read_text()
    assert "**" in glue.split("| tiny", 1)[1] and "paired bootstrap" in glue
    sel = (report / "selection.md").read_text()
    assert "No heldout rows" not in sel
    rows = [line for line in sel.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2 and all(line.count("[") == 2 for line in rows)
