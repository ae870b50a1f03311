"""`--track tensorboard`: one tracker run per run, the spec as its config, one point per epoch."""
from __future__ import annotations

import json

import pytest

from bench.presets import SMOKE_DATA
from bench.spec import RunSpec, TrainConfig, resolve

pytest.importorskip("tensorboard")


def test_tensorboard_gets_the_epoch_log_and_the_spec(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.results import run_dir
    from bench.runner import run_one

    monkeypatch.setenv("PEFT_BENCH_TRACK", "tensorboard")
    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", preset="t",
                           train=TrainConfig(epochs=2, batch_size=8, max_length=64, eval_batch_size=32)))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    folder = run_dir(tmp_path, "t", spec.run_id)
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(folder / "tb" / spec.run_id))
    events.Reload()
    for key in ("train_loss", "dev_accuracy"):
        points = events.Scalars(key)
        assert [p.step for p in points] == [1, 2]
        assert [p.value for p in points] == pytest.approx([e[key] for e in log], rel=1e-5)
    (config,) = (folder / "tb").rglob("hparams.yml")       # the spec as the tracker run's config
    text = config.read_text()
    assert "method_config.r: 8" in text and "train.lr: 0.0001" in text


def test_an_unknown_tracker_fails_the_run_clearly(tmp_path, monkeypatch):
    from bench.runner import run_one

    monkeypatch.setenv("PEFT_BENCH_TRACK", "mlflowx")
    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="bitfit", preset="t",
                           train=TrainConfig(epochs=1, batch_size=8, max_length=64, eval_batch_size=32)))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert rows[0]["status"] == "failed" and "PEFT_BENCH_TRACK=mlflowx" in rows[0]["error"]
