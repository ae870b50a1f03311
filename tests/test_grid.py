"""Grid planning (order, shards, filters, validation), the run folder and collect, on tiny models."""
from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest

from bench.config import ConfigError
from bench.grid import order, plan, shard, validate
from bench.presets import SMOKE_DATA
from bench.results import collect, read_rows, run_dir, run_status, write_atomic
from bench.schema import COLUMNS
from bench.spec import RunSpec, TrainConfig, resolve

# fp32: tiny random models' STS-B outputs differ by less than bf16 resolves (as the smoke preset)
TINY = TrainConfig(epochs=2, batch_size=8, lr=1e-3, max_length=64, eval_batch_size=32, mixed_precision="no")


def _tiny(task="sst2", method="lora", **kw) -> RunSpec:
    return resolve(RunSpec(model="tiny-roberta", task=task, method=method, train=TINY, preset="t", **kw))


def test_order_puts_dependencies_first_and_rejects_bad_links():
    a = _tiny(save_state=True)
    b = _tiny(task="stsb", init_from=a.run_id)
    assert [s.run_id for s in order([b, a])] == [a.run_id, b.run_id]
    with pytest.raises(ConfigError, match="not in the grid"):
        order([b])
    plain = replace(a, save_state=False)
    with pytest.raises(ConfigError, match="does not save its state"):
        order([plain, replace(b, init_from=plain.run_id)])
    with pytest.raises(ConfigError, match="same run_id"):
        order([a, a])


def test_shards_partition_the_grid_and_keep_chains_together():
    specs = plan("glue-roberta-base")
    parts = [shard(specs, i, 3) for i in range(3)]
    ids = [s.run_id for p in parts for s in p]
    assert sorted(ids) == sorted(s.run_id for s in specs)
    for p in parts:
        mine = {s.run_id for s in p}
        assert all(s.init_from in mine for s in p if s.init_from)


def test_filters_keep_dependencies():
    specs = plan("glue-roberta-base", tasks=["rte"], methods=["lora"], seeds=[1])
    assert [(s.task, s.seed) for s in specs] == [("mnli", 1), ("rte", 1)]
    with pytest.raises(ConfigError, match="has no task"):
        plan("glue-roberta-base", tasks=["squad"])


def test_overrides_apply_to_every_run_and_keep_links():
    specs = plan("glue-roberta-base", overrides=["train.epochs=1"], methods=["lora"], seeds=[0])
    assert all(s.train.epochs == 1 for s in specs)
    ids = {s.run_id for s in specs}
    assert all(s.init_from in ids for s in specs if s.init_from)


def test_validation_stops_bad_input_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        plan("glue-roberta-huge")
    with pytest.raises(ConfigError, match="unknown task"):
        validate([RunSpec(model="tiny-roberta", task="squad", method="full")])
    with pytest.raises(ConfigError, match="unknown model"):
        validate([RunSpec(model="roberta-xl", task="sst2", method="full")])
    with pytest.raises(ConfigError, match="field 'rank'"):
        plan("smoke", overrides=["method.rank=4"])
    with pytest.raises(ConfigError, match="encoder"):
        validate([RunSpec(model="tiny-roberta", task="e2e", method="full")])
    with pytest.raises(ConfigError, match="topk|layers|k"):
        validate([_tiny(method="topk", method_config={"k": 5})])
    (tmp_path / "glue" / "SST-2").mkdir(parents=True)
    with pytest.raises(ConfigError, match="sst2"):
        validate([_tiny()], data_dir=tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        validate([_tiny()], data_dir=tmp_path / "nope")


def test_atomic_write_leaves_old_or_new(tmp_path):
    path = tmp_path / "x" / "rows.json"
    write_atomic(path, "[1]")
    write_atomic(path, "[2]")
    assert path.read_text() == "[2]"
    assert [p.name for p in path.parent.iterdir()] == ["rows.json"]


def test_run_one_writes_a_complete_run_folder_and_collect_builds_the_csv(tmp_path):
    from bench.runner import run_one

    spec = _tiny(save_state=True)
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    folder = run_dir(tmp_path, "t", spec.run_id)
    assert run_status(folder) == "ok"
    assert json.loads((folder / "spec.json").read_text())["method_config"]["r"] == 8
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert all(isinstance(e["train_loss"], float) and isinstance(e["dev_accuracy"], float) for e in log)
    preds = (folder / "predictions" / "dev.txt").read_text().splitlines()
    assert len(preds) == 32 and set(preds) <= {"0", "1"}
    assert (folder / "state.pt").is_file()
    assert [(r["split"], r["metric"]) for r in rows] == [("dev", "accuracy")]
    row = rows[0]
    assert row["status"] == "ok" and row["best_epoch"] in (1, 2)
    assert row["params_trained"] == 2 * 2 * 8 * (32 + 32)     # 2 layers x (q, v) x r(in + out)
    for key in ("train_seconds", "train_examples_per_s", "train_tokens_per_s", "peak_mem_mb", "eval_seconds"):
        assert isinstance(row[key], float) and row[key] > 0, key
    assert row["torch_version"] and row["transformers_version"] and row["device"] and row["created_at"]
    # a finished run is not redone
    again = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert again == rows
    # a dependent run starts from the saved state
    dep = _tiny(task="stsb", init_from=spec.run_id)
    dep_rows = run_one(dep, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert dep_rows[0]["status"] == "ok"
    assert {r["metric"] for r in dep_rows} == {"pearson", "spearman"}
    out = tmp_path / "t.csv"
    counts = collect([spec, dep, _tiny(method="bitfit")], tmp_path, out)
    # each run's own rows (dev selection) and the held-out protocol derived from its per-epoch predictions
    assert counts == {"ok": 2, "failed": 0, "todo": 1, "heldout": 2, "rows": 6}
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == COLUMNS
    assert sorted(r["selection"] for r in table) == ["dev"] * 3 + ["heldout"] * 3
    assert (tmp_path / "t.predictions.jsonl").is_file()
    assert all(r["value"] and not math.isnan(float(r["value"])) for r in table)
    assert all(r["params_total"] for r in table)


def test_a_failing_run_records_a_failed_row(tmp_path):
    from bench.runner import run_one

    missing = _tiny(task="stsb", init_from="sst2-lora-s0-0000000000")
    rows = run_one(missing, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    assert "does not exist" in rows[0]["error"]
    folder = run_dir(tmp_path, "t", missing.run_id)
    assert run_status(folder) == "failed" and (folder / "error.txt").is_file()
    assert read_rows(folder) == rows


def test_method_overrides_apply_to_the_methods_that_have_the_field():
    specs = plan("glue-roberta-base", overrides=["method.r=16"], tasks=["sst2"], seeds=[0])
    with_r = ("lora", "vera")           # the methods of this grid with an `r` field
    assert {s.method_config.get("r") for s in specs if s.method in with_r} == {16}
    assert {s.method for s in specs if s.method in with_r} == set(with_r)
    assert all("r" not in s.method_config for s in specs if s.method not in with_r)
    plain = {s.run_id for s in plan("glue-roberta-base", tasks=["sst2"], seeds=[0]) if s.method not in with_r}
    assert plain == {s.run_id for s in specs if s.method not in with_r}
    with pytest.raises(ConfigError, match="no method in this grid has a field 'rank'"):
        plan("glue-roberta-base", overrides=["method.rank=16"])


def test_run_one_generation_scores_dev_and_test_with_the_task_metrics(tmp_path):
    from bench.runner import run_one

    spec = resolve(RunSpec(model="tiny-gpt2", task="e2e", method="lora", preset="t",
                           train=TrainConfig(epochs=1, batch_size=8, lr=1e-3, max_length=256),
                           decoding={"num_beams": 2, "max_new_tokens": 8, "min_new_tokens": 1},
                           eval_splits=("dev", "test")))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert {(r["split"], r["metric"]) for r in rows} == {
        (split, m) for split in ("dev", "test") for m in ("bleu", "nist", "meteor", "rouge_l", "cider")}
    assert all(r["value"] != "" for r in rows)
    folder = run_dir(tmp_path, "t", spec.run_id)
    assert len((folder / "predictions" / "dev.txt").read_text().splitlines()) == 8    # one line per dev input
    assert len((folder / "predictions" / "test.txt").read_text().splitlines()) == 8
    log = json.loads((folder / "log.jsonl").read_text().splitlines()[0])
    assert log["select"] == "dev_bleu" and "dev_bleu" in log and log["train_loss"] > 0
