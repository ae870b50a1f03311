"""`make install`'s torch choice (bench/nvidia.py) from fake `nvidia-smi` outputs, one per card class."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import nvidia

REPO = Path(__file__).resolve().parents[1]
PYPI = ["torch==2.13.0"]
CU126 = ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cu126"]


def smi_rows(name: str, cap: str, driver: str, n: int = 1) -> str:
    return "".join(f"{i}, {name}, {driver}, {cap}\n" for i in range(n))


@pytest.mark.parametrize("name,cap,driver,expected", [
    ("Tesla P100-PCIE-16GB", "6.0", "535.104.05", CU126),     # Pascal: only the 12.6 build has sm_60
    ("NVIDIA GeForce GTX 1080 Ti", "6.1", "550.54.15", CU126),  # sm_61 runs sm_60's kernels
    ("Tesla V100-SXM2-32GB", "7.0", "535.104.05", CU126),      # Volta: CUDA 13 has no sm_70
    ("Tesla V100-SXM2-32GB", "7.0", "580.65.06", CU126),       # even with a CUDA 13 driver
    ("Tesla T4", "7.5", "535.104.05", CU126),                  # Turing on a CUDA 12 driver
    ("Tesla T4", "7.5", "580.82.07", PYPI),                    # ... on a CUDA 13 driver: PyPI's cu130
    ("NVIDIA A100-SXM4-80GB", "8.0", "570.124.06", CU126),
    ("NVIDIA A100-SXM4-80GB", "8.0", "590.44.01", PYPI),
    ("NVIDIA GeForce RTX 4090", "8.9", "550.120", CU126),      # sm_89 runs sm_86's kernels
    ("NVIDIA H100 80GB HBM3", "9.0", "580.95.05", PYPI),
])
def test_each_card_class_gets_a_build_that_has_its_kernels(name, cap, driver, expected):
    args, why = nvidia.pip_args("auto", nvidia.parse_smi(smi_rows(name, cap, driver, n=2)))
    assert args == expected
    assert name in why and f"sm_{cap.replace('.', '')}" in why and driver in why


@pytest.mark.parametrize("name,cap,driver,said", [
    ("Tesla K80", "3.7", "470.256.02", "no build of torch==2.13.0 has kernels for Tesla K80 (sm_37)"),
    ("NVIDIA A100-SXM4-80GB", "8.0", "470.256.02", "needs a driver >= 525"),
    ("NVIDIA GeForce RTX 5090", "12.0", "570.86.10", "needs a driver >= 580"),   # Blackwell: CUDA 13 only
])
def test_cards_no_build_runs_on_stop_with_what_to_do(name, cap, driver, said):
    with pytest.raises(nvidia.NoBuild, match=said.replace("(", r"\(").replace(")", r"\)")):
        nvidia.pip_args("auto", nvidia.parse_smi(smi_rows(name, cap, driver)))


def test_a_mixed_machine_gets_the_build_every_gpu_runs():
    gpus = nvidia.parse_smi("0, Tesla V100-SXM2-32GB, 590.44.01, 7.0\n1, NVIDIA A100-SXM4-80GB, 590.44.01, 8.0\n")
    assert nvidia.pip_args("auto", gpus)[0] == CU126


def test_settings_other_than_auto_and_an_unknown_one():
    assert nvidia.pip_args("cpu", [])[0] == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert nvidia.pip_args("default", [])[0] == PYPI
    assert nvidia.pip_args("cu126", [])[0] == CU126
    assert nvidia.pip_args("cu130", [])[0] == PYPI
    assert nvidia.pip_args("auto", [])[0] == PYPI          # no nvidia-smi: PyPI's wheel, as before
    with pytest.raises(nvidia.NoBuild, match="TORCH=cu118: expected auto, cpu, default or one of cu130, cu126"):
        nvidia.pip_args("cu118", [])


def test_parse_smi_reads_old_and_failing_outputs():
    old = nvidia.parse_smi("0, Tesla V100-SXM2-16GB, 470.82.01\n")       # no compute_cap field before driver 510
    assert old == [nvidia.Gpu("0", "Tesla V100-SXM2-16GB", "470.82.01", "")]
    assert nvidia.parse_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") == []
    assert nvidia.parse_smi("0, Tesla T4, 535.1, [N/A]\n")[0].capability == ""
    assert nvidia.runs_on("8.9", ("sm_86",)) and not nvidia.runs_on("8.6", ("sm_89",))
    assert nvidia.runs_on("12.1", ("compute_120",)) and not nvidia.runs_on("7.0", nvidia.BUILDS[0].arch)


def _fake_smi(folder: Path, text: str, *, old: bool = False) -> Path:
    """An nvidia-smi that prints `text`; `old`: one that rejects the compute_cap field (drivers before 510)."""
    path = folder / "nvidia-smi"
    guard = 'case "$1" in *compute_cap*) echo "Field \\"compute_cap\\" is not a valid field" >&2; exit 2;; esac\n' \
        if old else ""
    path.write_text(f"#!/bin/sh\n{guard}cat <<'EOF'\n{text}EOF\n")
    path.chmod(0o755)
    return path


def test_the_script_make_install_runs(tmp_path):
    smi = _fake_smi(tmp_path, smi_rows("Tesla V100-SXM2-32GB", "7.0", "535.104.05"))
    proc = subprocess.run([sys.executable, "-m", "bench.nvidia", "--smi", str(smi)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == CU126
    assert "Tesla V100-SXM2-32GB, sm_70, driver 535.104.05: the CUDA 12.6 build (cu126)" in proc.stderr
    old = _fake_smi(tmp_path, "0, Tesla T4, 470.82.01\n", old=True)
    assert [g.capability for g in nvidia.smi_gpus(str(old))] == [""]
    bad = _fake_smi(tmp_path, smi_rows("Tesla K80", "3.7", "470.256.02"))
    proc = subprocess.run([sys.executable, "-m", "bench.nvidia", "--smi", str(bad)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("make install: no build of torch==2.13.0 has kernels for Tesla K80")
