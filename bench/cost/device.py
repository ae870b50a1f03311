"""Devices the planner prices a grid on: their matmul peak, the fraction of it a training step reaches, fixed
costs per micro-batch and per run, memory. No torch unless a figure is measured.

GPU rows are datasheet figures (dense tensor-core peaks); their efficiency is an assumption until
`peft-bench plan --calibrate` runs on that GPU and replaces it with a measured one. The CPU row is measured on
the machine itself: the matmul peak of one process at its thread count (torch when it is importable, numpy
otherwise), cached in the calibration file; its efficiency was measured on this suite's training steps
(docs/runner.md, "Cost planner").
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class Device:
    name: str
    peak: dict = field(default_factory=dict)         # precision (fp32 | bf16 | fp16) -> dense matmul FLOP/s
    efficiency: float = 0.35                          # achieved / peak FLOP/s in a training step
    step_overhead_s: float = 0.0                      # fixed cost of one micro-batch per block (launches, Python)
    param_update_s: float = 0.0                       # optimizer time per trained parameter and step
    run_overhead_s: float = 30.0                      # per run: process start, model and data loading
    mem_gb: float = 0.0
    bf16: bool = True                                 # "auto" precision trains in bf16 on this device
    source: str = ""
    efficiency_by: dict = field(default_factory=dict)  # precision -> efficiency where it differs


GPUS = {
    "a100": Device("a100", {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12}, 0.35, 1e-3, 1.6e-11, 60, 80,
                   source="datasheet (A100 SXM 80GB); efficiency assumed"),
    "h100": Device("h100", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 0.30, 1e-3, 1.0e-11, 60, 80,
                   source="datasheet (H100 SXM); efficiency assumed"),
    "h200": Device("h200", {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}, 0.30, 1e-3, 7e-12, 60, 141,
                   source="datasheet (H200 SXM); efficiency assumed"),
    "v100": Device("v100", {"fp16": 125e12, "fp32": 15.7e12}, 0.35, 1e-3, 3.6e-11, 60, 32, bf16=False,
                   source="datasheet (V100 SXM2 32GB); no bf16; efficiency assumed"),
    "l4": Device("l4", {"bf16": 121e12, "fp16": 121e12, "fp32": 30e12}, 0.35, 1e-3, 1.1e-10, 60, 24,
                 source="datasheet (L4); efficiency assumed"),
    # NVIDIA T4 datasheet: 65 TFLOPS mixed precision (FP16/FP32), 8.1 TFLOPS FP32, 16 GB GDDR6 at 320 GB/s; Turing
    # (sm_75) has no bf16: `auto` trains it in fp16
    "t4": Device("t4", {"fp16": 65e12, "fp32": 8.1e12}, 0.35, 1e-3, 1.0e-10, 60, 16, bf16=False,
                 source="datasheet (T4 16GB); no bf16; efficiency assumed"),
    # NVIDIA Ampere GA102 whitepaper, GeForce RTX 3090: peak FP16 / BF16 tensor TFLOPS with FP32 accumulate 71 dense
    # (142 sparse), FP32 35.6 TFLOPS, 24 GB GDDR6X at 936 GB/s
    "rtx3090": Device("rtx3090", {"bf16": 71e12, "fp16": 71e12, "fp32": 35.6e12}, 0.35, 1e-3, 3.5e-11, 60, 24,
                      source="GA102 whitepaper (RTX 3090, FP32 accumulate); efficiency assumed"),
    # NVIDIA Ada GPU architecture whitepaper, GeForce RTX 4090: peak FP16 / BF16 tensor TFLOPS with FP32 accumulate
    # 165.2 dense (330.4 sparse), FP32 82.6 TFLOPS, 24 GB GDDR6X at 1008 GB/s
    "rtx4090": Device("rtx4090", {"bf16": 165.2e12, "fp16": 165.2e12, "fp32": 82.6e12}, 0.35, 1e-3, 3.3e-11, 60, 24,
                      source="Ada whitepaper (RTX 4090, FP32 accumulate); efficiency assumed"),
    # NVIDIA RTX A4000 datasheet: tensor performance 153.4 TFLOPS (with sparsity; 76.7 dense), FP32 19.2 TFLOPS,
    # 16 GB GDDR6 at 448 GB/s
    "a4000": Device("a4000", {"bf16": 76.7e12, "fp16": 76.7e12, "fp32": 19.2e12}, 0.35, 1e-3, 7.4e-11, 60, 16,
                    source="datasheet (RTX A4000, sparse figure halved); efficiency assumed"),
    # NVIDIA A10 datasheet: BF16 / FP16 tensor core 125 TFLOPS dense (250 sparse), FP32 31.2 TFLOPS, 24 GB GDDR6 at
    # 600 GB/s
    "a10": Device("a10", {"bf16": 125e12, "fp16": 125e12, "fp32": 31.2e12}, 0.35, 1e-3, 5.5e-11, 60, 24,
                  source="datasheet (A10); efficiency assumed"),
}
# nvidia-smi names that do not contain the profile's key
SMI_NAMES = {"rtx 3090": "rtx3090", "rtx 4090": "rtx4090", "rtx a4000": "a4000"}
# GPUs: step overhead 1 ms per block and micro-batch (eager kernel launches of a block's forward, backward and
# optimizer step) and 60 s per run for loading: assumptions, not measured here (no GPU). Optimizer time per trained
# parameter scales with memory bandwidth (about 3.3e-8 s per parameter and GB/s).
# CPU: the median achieved / matmul peak of whole MiniLM-L6 training steps (14 shapes of minilm-glue, batch 16-32,
# lengths 16-128, every method; `plan minilm-glue --calibrate`, one thread, docs/runner.md); the fixed costs per
# step and the optimizer are inside those step times, so they are 0 here. Per run (process start, model and data
# loading): 4 s, an assumption. bf16 autocast (what `auto` picks on a CPU with AMX / AVX512-BF16 where a bf16
# matmul is >= 1.2x faster, bench/precision.py): 0.13 of the bf16 matmul peak, the median of three MiniLM shapes
# timed ABBA against fp32 (training 1.3-1.5x faster than fp32 while the bf16 peak is ~5x the fp32 one).
CPU_DEFAULTS = dict(efficiency=0.44, efficiency_by={"bf16": 0.13}, step_overhead_s=0.0, param_update_s=0.0,
                    run_overhead_s=4.0)
# as bench.precision.FASTER_BY: `auto` trains a CPU in bf16 only when its matmul is this much faster
BF16_FASTER_BY = 1.2


def cache_path() -> Path:
    root = os.environ.get("PEFT_BENCH_CACHE") or Path.home() / ".cache" / "peft-bench"
    return Path(root) / "calibration.json"


def read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_cache(data: dict) -> None:
    from bench.results import write_atomic

    write_atomic(cache_path(), json.dumps(data, indent=1, sort_keys=True) + "\n")


def threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return _cores()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_key() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    isa = _vector_isa()
    return f"cpu|{model}|{isa + '|' if isa else ''}{threads()} threads"


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def _vector_isa() -> str:
    """The widest matmul units in the CPU's flags: a model name such as "AMD EPYC" covers parts with AVX2 only and
    parts with AVX-512 and bf16, whose peaks differ several-fold, so the cache tells them apart."""
    flags = set(_cpu_flags())
    for name, needs in (("amx", "amx_bf16"), ("avx512bf16", "avx512_bf16"), ("avx512", "avx512f"),
                        ("avx2", "avx2")):
        if needs in flags:
            return name
    return ""


def detect() -> str:
    """The device a plain `plan` prices: the first GPU that nvidia-smi lists (when it is a known one), else cpu."""
    if shutil.which("nvidia-smi"):
        try:
            names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                   text=True, timeout=10).stdout.lower()
        except (OSError, subprocess.SubprocessError):
            names = ""
        first = names.splitlines()[0] if names.strip() else ""
        for key in [*SMI_NAMES, *GPUS]:
            if first and key in first:
                return SMI_NAMES.get(key, key)
    return "cpu"


def device(name: str | None = None) -> Device:
    """The profile of `name` (cpu, a100, h100, ...; None: detect), with calibrated figures when cached."""
    from bench.config import ConfigError

    name = (name or detect()).lower()
    cache = read_cache()
    if name == "cpu":
        key = cpu_key()
        peak = cpu_peak(cache, key)
        bf16 = _cpu_has_bf16() and peak.get("bf16", 0.0) >= BF16_FASTER_BY * peak.get("fp32", float("inf"))
        busy = peak.get("others_busy")
        caveat = (f"; measured while other processes kept {busy:.1f} cores busy, so the estimate may read high "
                  "(it is measured again when the machine is quiet)" if _is_busy(busy) else "")
        base = Device("cpu", {k: v for k, v in peak.items() if k in ("fp32", "bf16")}, mem_gb=_host_memory_gb(),
                      bf16=bf16, source=f"{key}: matmul peak measured ({peak.get('by', '?')}){caveat}; efficiency "
                      "measured on this suite's MiniLM steps", **CPU_DEFAULTS)
        fitted = cache.get("devices", {}).get(key)
    elif name in GPUS:
        base, fitted = GPUS[name], cache.get("devices", {}).get(name)
    else:
        raise ConfigError(f"--device {name}: unknown device; known: cpu, {', '.join(GPUS)}")
    if fitted:
        base = replace(base, **{k: v for k, v in fitted.items() if k in ("efficiency", "step_overhead_s",
                                                                          "param_update_s", "run_overhead_s")},
                       source=base.source + f"; calibrated {fitted.get('when', '')}")
    return base


def cpu_peak(cache: dict, key: str, remeasure: bool = False) -> dict:
    """The cached matmul peak of this CPU at this thread count. A figure measured while other processes held the
    cores reads low (a busy machine once made a one-thread peak 2.4x below the idle one), so it is measured
    again whenever the machine is quiet (or `remeasure`: `plan --calibrate`), and the higher figure of each
    precision is kept: a peak is a best case. The first measurement is kept whatever the load, with the load it
    saw."""
    cached = cache.get("peaks", {}).get(key)
    if cached and not remeasure and not (_is_busy(cached.get("others_busy")) and not _is_busy(_others_busy_now())):
        return cached
    peak = merge_peaks(cached, measure_peak())
    cache.setdefault("peaks", {})[key] = peak
    write_cache(cache)
    return peak


def merge_peaks(old: dict | None, new: dict) -> dict:
    """`new` with each precision's FLOP/s raised to `old`'s where that was higher; the load is the quieter one's."""
    if not old:
        return new
    out = dict(new)
    for name in ("fp32", "bf16"):
        if name in old:
            out[name] = max(old[name], new.get(name, 0.0))
    loads = [x for x in (old.get("others_busy"), new.get("others_busy")) if x is not None]
    if loads:
        out["others_busy"] = min(loads)
    return out


def measure_peak(n: int = 1024, repeats: int = 8) -> dict:
    """Best FLOP/s of an n^3 matmul in fp32 (and bf16 where the CPU has it), torch when importable, with how many
    cores other processes kept busy meanwhile (`others_busy`, from /proc/stat; absent where that is unreadable)."""
    before = _cpu_sample()
    try:
        import torch
    except ImportError:
        import numpy as np

        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        best = min(_timed(lambda: a @ a) for _ in range(repeats))
        out = {"fp32": 2.0 * n ** 3 / best, "by": "numpy"}
    else:
        out = {"by": "torch"}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a = torch.randn(n, n, dtype=dtype)
            a @ a
            out[name] = 2.0 * n ** 3 / min(_timed(lambda a=a: a @ a) for _ in range(repeats))
    busy = _others_busy(before, _cpu_sample())
    if busy is not None:
        out["others_busy"] = round(busy, 2)
    return out


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall seconds, machine-wide busy CPU seconds, this process's CPU seconds), or None without /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in fields]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)          # idle + iowait
    busy = (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")     # user .. steal; guest is inside user
    own = os.times()
    return time.monotonic(), busy, own.user + own.system


def _others_busy(before, after) -> float | None:
    """Cores that processes other than this one kept busy between two samples."""
    if before is None or after is None or after[0] - before[0] < 0.05:
        return None
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / (after[0] - before[0]))


def _others_busy_now(window_s: float = 0.3) -> float | None:
    before = _cpu_sample()
    time.sleep(window_s)
    return _others_busy(before, _cpu_sample())


def _is_busy(others: float | None) -> bool:
    """Whether other processes held some of the cores this process's threads would run on."""
    if others is None:
        return False
    return others > max(0, _cores() - threads()) + 0.3


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_has_bf16() -> bool:
    """AMX or AVX512-BF16 in /proc/cpuinfo's flags (what torch's probes report, read without torch)."""
    flags = _cpu_flags()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _host_memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def precision(mixed_precision: str, dev: Device) -> str:
    """The precision a run trains in: `auto` follows the device (bf16 where it has it natively; fp16 on a GPU
    without it, as bench.precision resolves CUDA below compute capability 8.0; else fp32)."""
    if mixed_precision == "auto":
        if dev.bf16 and "bf16" in dev.peak:
            return "bf16"
        return "fp16" if dev.name in GPUS and "fp16" in dev.peak else "fp32"
    return {"no": "fp32"}.get(mixed_precision, mixed_precision)


def as_dict(dev: Device) -> dict:
    return asdict(dev)
