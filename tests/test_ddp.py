"""`accelerate launch` of `peft-bench run` on two CPU processes (gloo) against one process, equal global batch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.presets import SMOKE_DATA

REPO = Path(__file__).resolve().parents[1]
RUN = ["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "lora", "--data-dir", str(SMOKE_DATA),
       "--set", "train.dropout=0.0", "--set", "train.batch_size=8", "--set", "train.epochs=2"]


def _env(tmp_path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "TMPDIR": str(tmp_path / "tmp")}


def _folder(results: Path) -> Path:
    (folder,) = [f for f in (results / "runs" / "adhoc").iterdir() if f.is_dir()]
    return folder


@pytest.mark.multiprocess
@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate's launcher is not installed")
def test_two_processes_match_one_and_only_rank_0_writes(tmp_path):
    (tmp_path / "tmp").mkdir()
    one = subprocess.run([sys.executable, "-m", "bench.cli", *RUN, "--results-dir", str(tmp_path / "one")],
                         cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    launcher = str(Path(sys.executable).parent / "accelerate")
    two = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "bench.cli", *RUN,
                          "--results-dir", str(tmp_path / "two")],
                         cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    a, b = _folder(tmp_path / "one"), _folder(tmp_path / "two")
    assert a.name == b.name
    rows_a, rows_b = (json.loads((f / "rows.json").read_text()) for f in (a, b))
    assert [(r["split"], r["metric"]) for r in rows_a] == [(r["split"], r["metric"]) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        assert abs(ra["value"] - rb["value"]) < 1e-6
    assert (a / "predictions" / "dev.txt").read_text() == (b / "predictions" / "dev.txt").read_text()
    logs = [json.loads(line) for line in (b / "log.jsonl").read_text().splitlines()]
    assert [e["eval_examples"] for e in logs] == [32, 32]          # the 32 dev examples, each once per pass
    ref = [json.loads(line) for line in (a / "log.jsonl").read_text().splitlines()]
    for ea, eb in zip(ref, logs):
        assert abs(ea["dev_accuracy"] - eb["dev_accuracy"]) < 1e-9
    assert not list((tmp_path / "tmp").glob("peft-bench-rank-*"))   # rank 1's scratch folder is gone


def test_a_process_of_rank_1_writes_no_run_folder(tmp_path, monkeypatch):
    from bench.runner import run_one
    from bench.spec import RunSpec, TrainConfig, resolve

    monkeypatch.setenv("RANK", "1")
    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="bitfit", preset="t",
                           train=TrainConfig(epochs=1, batch_size=8, max_length=64, eval_batch_size=32)))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert not (tmp_path / "runs").exists()
