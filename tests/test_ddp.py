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


def _launch(tmp_path, argv, **env) -> tuple[subprocess.CompletedProcess, float]:
    import time

    launcher = str(Path(sys.executable).parent / "accelerate")
    start = time.monotonic()
    done = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "tests" / "ddp_probe.py"),
                           *argv], cwd=REPO, env={**_env(tmp_path), **env}, capture_output=True, text=True,
                          timeout=300)
    return done, time.monotonic() - start


ADAPTER_DROP = ["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "adapter", "--data-dir",
                str(SMOKE_DATA), "--set", "method.drop_lowest=2", "--set", "method.drop_at_eval=false",
                "--set", "train.batch_size=10", "--set", "train.epochs=2"]


@pytest.mark.multiprocess
@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate's launcher is not installed")
def test_short_batch_counts_dropout_streams_and_adapterdrop_under_two_processes(tmp_path):
    """96 training examples in batches of 10: nine full batches and a short one of 6, kept last and split 3 + 3,
    so every epoch is 10 optimizer steps on both processes, as len(loader) says (the linear schedule ends at 0),
    and its 96 examples are counted over both processes. Dropout masks differ between the processes; random
    AdapterDrop skips the same layers on both (DDP would otherwise train on mismatched graphs)."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "probe").mkdir()
    done, _ = _launch(tmp_path, [*ADAPTER_DROP, "--results-dir", str(tmp_path / "r")],
                      PROBE_OUT=str(tmp_path / "probe"))
    assert done.returncode == 0, done.stdout + done.stderr
    folder = _folder(tmp_path / "r")
    logs = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [e["steps"] for e in logs] == [10, 10]
    assert [e["train_examples"] for e in logs] == [96, 96]
    assert logs[-1]["lr"] == 0.0                                  # the schedule's total matched the steps run
    rows = json.loads((folder / "rows.json").read_text())
    speed = rows[0]["train_examples_per_s"] * rows[0]["train_seconds"]
    assert abs(speed - 192) < 1.0                                 # both processes' examples, 2 epochs
    rank0, rank1 = (json.loads((tmp_path / "probe" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world"] == rank1["world"] == 2                  # one process group, not two lone runs
    assert rank0["mask"] != rank1["mask"]
    assert rank0["adapterdrop"] == rank1["adapterdrop"] and rank0["adapterdrop"]
    assert len({n for draws in rank0["adapterdrop"] for n in draws}) > 1          # random: several layer counts


@pytest.mark.multiprocess
@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate's launcher is not installed")
def test_one_process_failing_ends_the_job_promptly_with_its_reason(tmp_path):
    (tmp_path / "tmp").mkdir()
    done, seconds = _launch(tmp_path, [*RUN, "--results-dir", str(tmp_path / "r")], PROBE_FAIL_RANK="1")
    assert done.returncode != 0
    assert seconds < 120, f"the job took {seconds:.0f} s to end"
    assert "process 1 of 2: RuntimeError: probe: process 1 fails at its third micro-batch" in done.stderr
    folder = _folder(tmp_path / "r")
    rows = json.loads((folder / "rows.json").read_text())
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("process 1 of 2: RuntimeError: probe: process 1 fails"), rows[0]["error"]
    assert "probe: process 1 fails" in (folder / "error.txt").read_text()


@pytest.mark.parametrize("n,batch,world", [(96, 10, 2), (97, 8, 2), (90, 8, 4), (96, 8, 2), (95, 12, 3)])
def test_sharded_batches_agree_across_processes_and_with_len(n, batch, world):
    """Every process iterates len() batches; their parts of each batch are disjoint and together the global
    batch; the short batch is last (split as evenly as it goes) or, with fewer examples than processes, dropped."""
    import numpy as np

    from bench.data.batching import LengthGroupedBatchSampler

    lengths = np.random.default_rng(0).integers(3, 40, size=n)
    whole = LengthGroupedBatchSampler(lengths, batch, shuffle=True, seed=1, group_by_length=True)
    global_batches = [sorted(b.tolist()) for b in whole.batches(0)]
    shards = []
    for rank in range(world):
        s = LengthGroupedBatchSampler(lengths, batch, shuffle=True, seed=1, group_by_length=True)
        s.shard(rank, world)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    assert len({len(parts) for parts in shards}) == 1
    joined = [sorted(i for parts in step for i in parts) for step in zip(*shards)]
    short = n % batch
    kept_short = short >= world
    full = [b for b in global_batches if len(b) == batch]
    assert joined[:len(full)] == full                       # full batches in the sampler's order
    assert len(joined) == len(full) + kept_short
    if kept_short:
        assert len(joined[-1]) == short and all(len(parts[-1]) in (short // world, -(-short // world))
                                                for parts in shards)
    assert all(len(shards[r][i]) == batch // world for r in range(world) for i in range(len(full)))


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    import numpy as np

    from bench.config import ConfigError
    from bench.data.batching import LengthGroupedBatchSampler

    s = LengthGroupedBatchSampler(np.ones(20), 10, shuffle=True, seed=0, group_by_length=False)
    with pytest.raises(ConfigError, match="batch_size 10 does not split over 3 processes"):
        s.shard(0, 3)


def test_the_first_recorded_failure_of_a_ddp_job_is_kept(tmp_path):
    from bench.distributed import record_first_failure

    first = [{"status": "failed", "error": "process 1 of 2: RuntimeError: the cause"}]
    later = [{"status": "failed", "error": "process 0 of 2: RuntimeError: Connection closed by peer"}]
    assert record_first_failure(tmp_path, first, "trace 1")
    assert not record_first_failure(tmp_path, later, "trace 0")
    assert json.loads((tmp_path / "rows.json").read_text()) == first
    assert (tmp_path / "error.txt").read_text() == "trace 1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temporary file left
