"""The first-evening preset for one small GPU and the planner's GPU profiles."""
from __future__ import annotations

import pytest

from bench.cost.device import GPUS, device, precision
from bench.cost.estimate import grid_cost
from bench.grid import plan, validate


def test_the_one_gpu_preset_fits_four_t4_hours_and_needs_no_mnli():
    specs = plan("glue-roberta-base-1gpu")
    validate(specs)
    assert len(specs) == 5 * 4 * 3
    assert {s.task for s in specs} == {"sst2", "mrpc", "cola", "rte", "stsb"}
    assert {s.method for s in specs} == {"full", "bitfit", "adapter", "lora"} and {s.seed for s in specs} == {0, 1, 2}
    assert all(s.model == "roberta-base" and s.init_from is None and s.recipe == "own" for s in specs)
    assert {s.train.max_train_examples for s in specs if s.task == "sst2"} == {10000}
    assert {s.train.max_train_examples for s in specs if s.task != "sst2"} == {0}
    _, _, total = grid_cost(specs, device("t4"))
    assert 1.0 < total.seconds / 3600 <= 4.0 and total.peak_mem_gb < GPUS["t4"].mem_gb
    full = grid_cost(plan("glue-roberta-base"), device("t4"))[2]
    assert full.seconds > 20 * total.seconds           # what the cuts buy, against Table 2's base grid


@pytest.mark.parametrize("name", ["t4", "rtx3090", "rtx4090", "a4000", "a10"])
def test_small_gpu_profiles_have_datasheet_peaks_and_their_precision(name):
    dev = GPUS[name]
    assert dev.peak["fp16"] > dev.peak["fp32"] > 0 and dev.mem_gb in (16, 24)
    assert "datasheet" in dev.source or "whitepaper" in dev.source
    assert precision("auto", dev) == ("fp16" if name == "t4" else "bf16")


def test_detect_reads_nvidia_smi_names(tmp_path, monkeypatch):
    from bench.cost import device as device_module

    for smi_name, key in (("Tesla T4", "t4"), ("NVIDIA GeForce RTX 4090", "rtx4090"),
                          ("NVIDIA RTX A4000", "a4000"), ("NVIDIA A100-SXM4-80GB", "a100")):
        smi = tmp_path / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\necho '{smi_name}'\n")
        smi.chmod(0o755)
        monkeypatch.setenv("PATH", str(tmp_path))
        assert device_module.detect() == key
