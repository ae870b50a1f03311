"""The Slurm path through submitit's local executor: the same job function, pickled into fresh processes."""
from __future__ import annotations

import json
import os
import pickle

import pytest

from bench.presets import SMOKE_DATA, Resources
from bench.results import read_rows, run_dir
from bench.slurm import job, submit
from bench.spec import RunSpec, TrainConfig, resolve

submitit = pytest.importorskip("submitit")

TINY = TrainConfig(epochs=1, batch_size=8, lr=1e-3, max_length=64, eval_batch_size=32, mixed_precision="no")


def test_job_function_and_specs_pickle():
    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", train=TINY, preset="t"))
    assert pickle.loads(pickle.dumps(job)) is job
    assert RunSpec.from_dict(pickle.loads(pickle.dumps(spec.to_dict()))).run_id == spec.run_id


def test_a_job_that_asked_for_a_gpu_and_got_none_trains_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the job would get one")
    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", train=TINY, preset="t"))
    status = job(spec.to_dict(), str(tmp_path), str(SMOKE_DATA), None, 1)
    assert status.startswith("failed: this Slurm job asked for 1 GPU(s) but torch sees no CUDA device (nvidia-smi")
    assert not (tmp_path / "runs").exists()


def test_submitit_local_executor_runs_a_dependency_chain(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SMOKE_DATA.parents[2]),
                                                                   os.environ.get("PYTHONPATH")])))
    first = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", train=TINY, preset="t",
                            save_state=True))
    second = resolve(RunSpec(model="tiny-roberta", task="stsb", method="lora", train=TINY, preset="t",
                             init_from=first.run_id))
    jobs = submit([first, second], "t", Resources(gpus=0, cpus=1, mem_gb=2, hours=0.2), results_dir=tmp_path,
                  data_dir=SMOKE_DATA, cluster="local", folder=tmp_path / "submitit")
    assert [j.result() for j in jobs] == ["ok", "ok"]
    for spec in (first, second):
        rows = read_rows(run_dir(tmp_path, "t", spec.run_id))
        assert rows and all(r["status"] == "ok" for r in rows)
    assert (run_dir(tmp_path, "t", first.run_id) / "state.pt").is_file()
    saved = json.loads((run_dir(tmp_path, "t", second.run_id) / "spec.json").read_text())
    assert saved["init_from"] == first.run_id
