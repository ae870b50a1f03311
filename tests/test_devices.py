"""GPU requests of `grid` and `run` on a CPU machine: --devices mapping through an inherited CUDA_VISIBLE_DEVICES,
refusals when torch would not train on the GPU asked for (each card class simulated by patching torch.cuda's
queries), GPU worker slots, and the executor's fall-back to spawned workers after a bad fork."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import devices
from bench.cli import main
from bench.config import ConfigError
from bench.nvidia import BUILDS, Gpu

REPO = Path(__file__).resolve().parents[1]
CU130, CU126 = (tuple(b.arch) for b in BUILDS)
CARDS = {"sm_70": ("Tesla V100-SXM2-32GB", "7.0"), "sm_75": ("Tesla T4", "7.5"),
         "sm_80": ("NVIDIA A100-SXM4-80GB", "8.0"), "sm_90": ("NVIDIA H100 80GB HBM3", "9.0")}


def simulate(monkeypatch, arch: tuple[str, ...], count: int = 2, cuda: str = "13.0") -> None:
    """torch as a CUDA build with `count` GPUs and kernels `arch` (the queries bench.devices asks)."""
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))


def gpus_of(card: str, n: int = 2, driver: str = "580.95.05") -> list[Gpu]:
    name, cap = CARDS[card]
    return [Gpu(str(i), name, driver, cap) for i in range(n)]


@pytest.mark.parametrize("card,arch,ok", [("sm_70", CU130, False), ("sm_70", CU126, True), ("sm_75", CU130, True),
                                          ("sm_80", CU130, True), ("sm_90", CU130, True), ("sm_90", CU126, True)])
def test_each_card_class_is_refused_only_where_the_build_has_no_kernels(monkeypatch, card, arch, ok):
    simulate(monkeypatch, arch)
    env = {}
    if ok:
        assert devices.gpu_request("1", cpu=False, gpus=gpus_of(card), environ=env) == ["1"]
        assert devices.gpu_request("", cpu=False, gpus=gpus_of(card), environ=env) == ["0"]   # nvidia-smi: GPU 0
    else:
        with pytest.raises(ConfigError, match=r"--devices 1 asks for GPUs: GPU 1 \(Tesla V100-SXM2-32GB, sm_70\) "
                                              r"has no kernels in torch .* \(built for sm_75 sm_80"):
            devices.gpu_request("1", cpu=False, gpus=gpus_of(card), environ=env)


@pytest.mark.parametrize("card", sorted(CARDS))
def test_a_gpu_torch_cannot_use_is_refused_with_what_was_seen(monkeypatch, card):
    """A CPU build of torch (or a driver too old for its CUDA) on a machine whose nvidia-smi lists GPUs."""
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigError) as info:
        devices.gpu_request("", cpu=False, gpus=gpus_of(card, driver="470.82.01"), environ={})
    line = str(info.value)
    assert "\n" not in line and line.startswith("nvidia-smi lists 2 GPU(s) here but torch sees no CUDA device")
    name, cap = CARDS[card]
    assert f"{name} sm_{cap.replace('.', '')}, driver 470.82.01" in line and "built with no CUDA" in line
    assert devices.gpu_request("", cpu=True, gpus=gpus_of(card), environ={}) is None      # --cpu: the CPU, said so
    simulate(monkeypatch, CU130, count=0, cuda="13.0")          # a CUDA build the driver cannot serve
    with pytest.raises(ConfigError, match=r"built with CUDA 13.0, torch.cuda.is_available\(\)=True"):
        devices.gpu_request("0", cpu=False, gpus=gpus_of(card), environ={})


def test_devices_map_through_the_inherited_visible_list(monkeypatch):
    simulate(monkeypatch, CU130, count=2)
    gpus = [Gpu(str(i), "NVIDIA A100-SXM4-80GB", "580.95.05", "8.0") for i in range(4)]
    slurm = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert devices.gpu_request("0,1", cpu=False, gpus=gpus, environ=slurm) == ["2", "3"]
    assert devices.gpu_request("1", cpu=False, gpus=gpus, environ=slurm) == ["3"]
    assert devices.gpu_request("all", cpu=False, gpus=gpus, environ=slurm) == ["2", "3"]
    assert devices.gpu_request("", cpu=False, gpus=gpus, environ=slurm) == ["2"]
    with pytest.raises(ConfigError, match=r"there is no GPU 2; 2 visible \(indices 0 to 1 of "
                                          r"CUDA_VISIBLE_DEVICES='2,3'\)"):
        devices.gpu_request("2", cpu=False, gpus=gpus, environ=slurm)
    assert devices.gpu_request("3,1", cpu=False, gpus=gpus, environ={}) == ["3", "1"]     # nvidia-smi's indices
    assert devices.gpu_request("all", cpu=False, gpus=gpus, environ={}) == ["0", "1", "2", "3"]
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-8a1b,GPU-77c2"}
    assert devices.gpu_request("1", cpu=False, gpus=gpus, environ=uuids) == ["GPU-77c2"]
    for bad in ("cuda:0", "0,,1", "-1", "gpu"):
        with pytest.raises(ConfigError, match="--devices expects comma-separated GPU indices"):
            devices.gpu_request(bad, cpu=False, gpus=gpus, environ={})
    with pytest.raises(ConfigError, match="named twice"):
        devices.gpu_request("1,1", cpu=False, gpus=gpus, environ={})
    with pytest.raises(ConfigError, match="contradict"):
        devices.gpu_request("0", cpu=True, gpus=gpus, environ={})


def test_gpu_slots_see_one_gpu_in_pci_order_with_their_share_of_cores(monkeypatch):
    from bench.executor import gpu_slots

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    slots = gpu_slots(["2", "3"], 2)
    assert [s.name for s in slots] == ["cuda:2#0", "cuda:2#1", "cuda:3#0", "cuda:3#1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["2", "2", "3", "3"]
    assert all(s.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and s.env["OMP_NUM_THREADS"] == "4" for s in slots)
    assert [s.cores for s in slots] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert {s.env["OMP_NUM_THREADS"] for s in gpu_slots(["0"], 1)} == {"2"}


def _fake_smi(folder: Path, text: str) -> None:
    path = folder / "nvidia-smi"
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\n")
    path.chmod(0o755)


def _one_line_refusal(capsys, argv, results) -> str:
    assert main(argv + ["--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not results.exists()                      # refused before any run folder (or plan.json) was written
    return err[0]


def test_grid_and_run_refuse_a_gpu_they_would_not_get(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    line = _one_line_refusal(capsys, ["grid", "smoke", "--devices", "cuda:0"], results)
    assert "--devices expects comma-separated GPU indices (0,1) or all, got 'cuda:0'" in line
    line = _one_line_refusal(capsys, ["grid", "smoke", "--devices", "0"], results)
    assert "--devices 0 asks for GPUs but torch sees no CUDA device" in line
    _fake_smi(tmp_path, "0, Tesla T4, 535.104.05, 7.5\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    line = _one_line_refusal(capsys, ["grid", "smoke"], results)
    assert line.startswith("peft-bench grid: error: nvidia-smi lists 1 GPU(s) here but torch sees no CUDA device "
                           "(nvidia-smi: 1 GPU(s), Tesla T4 sm_75, driver 535.104.05; torch ")
    line = _one_line_refusal(capsys, ["grid", "smoke", "--jobs", "2"], results)
    assert "--jobs 2 runs CPU workers, and nvidia-smi lists 1 GPU(s) here: use --devices" in line and "--cpu" in line
    line = _one_line_refusal(capsys, ["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "lora"], results)
    assert line.startswith("peft-bench run: error: nvidia-smi lists 1 GPU(s) here but torch sees no CUDA device")


def test_grid_devices_0_in_a_fresh_process_exits_2_without_a_run_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "grid", "smoke", "--devices", "0", "--results-dir",
                           str(tmp_path / "r")], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "torch sees no CUDA device" in proc.stderr and not (tmp_path / "r").exists()


def test_a_worker_forked_after_cuda_exits_before_running_and_the_run_is_spawned(tmp_path, monkeypatch):
    from bench import executor, workers
    from bench.presets import get_preset  # noqa: F401  (the registry the plan reads)
    from bench.grid import plan

    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    monkeypatch.setattr(workers, "die_with_parent", lambda: None)
    monkeypatch.setattr(os, "environ", dict(os.environ))
    spec = plan("smoke", tasks=["sst2"], methods=["lora"])[0]
    with pytest.raises(SystemExit) as stop:
        workers._worker(spec.to_dict(), {"CUDA_VISIBLE_DEVICES": "0"}, (), str(tmp_path), None, None)
    assert stop.value.code == workers.BAD_FORK and not (tmp_path / "runs").exists()

    class Finished:
        def __init__(self, code):
            self.code = code

        def poll(self):
            return self.code

    contexts, codes = [], [workers.BAD_FORK, 1]

    def fake_spawn(spec, slot, *args):
        contexts.append(workers._CONTEXT and workers._CONTEXT.get_start_method())
        return Finished(codes.pop(0))

    monkeypatch.setattr(executor, "spawn_worker", fake_spawn)
    monkeypatch.setattr(workers, "_CONTEXT", None)
    events = []
    counts = executor.run_grid([spec], slots=executor.gpu_slots(["0"], 1), results_dir=tmp_path, progress=False,
                               on_event=lambda event, s, info: events.append(event))
    assert events == ["start", "respawn", "start", "failed"] and counts["failed"] == 1
    assert contexts == [None, "spawn"]              # the second start used a spawn context
