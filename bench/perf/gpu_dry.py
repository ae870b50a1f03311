"""`make gpu-check GPU_CHECK_ARGS=--dry-run`: seconds, before any device minute is spent, that the check would run.

1. imports: every module the check's stages import (torch, transformers, accelerate, peft, the suite's
   training and decoding code), each with its version against the tested one (a different version is said,
   not refused: the wheels carried to a GPU machine may be newer);
2. the device: what nvidia-smi lists and what torch sees (bench.devices, without initialising CUDA), then on the
   GPU of `--device`: its name, capability, memory, whether torch's build has kernels for it and whether it has
   native bf16, and one small matmul there checked against the CPU's.

Exit 0 when everything is there; on a machine without CUDA (no nvidia-smi GPU and a torch that sees none) it says
"no CUDA device" and exits 0: the imports are checked, the GPU stages would be refused. Exit 1 when an import
fails or the GPU computes wrongly; 2 when nvidia-smi lists GPUs that torch cannot use (the grid's refusal line).
"""
from __future__ import annotations

import importlib
import sys
import time

# tested versions (README, docs/perf.md); modules the stages import, in the order they are tried
TESTED = {"torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2", "accelerate": "1.15.0"}
MODULES = ("torch", "transformers", "accelerate", "peft", "tokenizers", "safetensors", "numpy", "pytest",
           "methods", "bench.perf.train", "bench.perf.decode", "bench.perf.isolate")


def check_imports() -> tuple[list[str], list[str]]:
    """(lines, failures): one line per module with its version, and the modules that did not import."""
    lines, failed = [], []
    for name in MODULES:
        start = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import error is what this check reports
            failed.append(name)
            lines.append(f"import {name}: FAILED ({type(exc).__name__}: {str(exc)[:160]})")
            continue
        version = getattr(module, "__version__", "")
        note = ""
        if name in TESTED and version.split("+")[0] != TESTED[name]:
            note = f" (tested with {TESTED[name]})"
        lines.append(f"import {name}: ok{' ' + version if version else ''}{note} "
                     f"[{time.perf_counter() - start:.1f} s]")
    return lines, failed


def check_device(device: str) -> tuple[list[str], int]:
    """(lines, exit code) for the device the check would run on."""
    from bench.devices import describe, smi_gpus, torch_cuda
    from bench.nvidia import runs_on

    gpus, tc = smi_gpus(), torch_cuda()
    seen = describe(gpus, tc)
    if not tc.available or tc.count == 0:
        if gpus:
            return [f"device: nvidia-smi lists GPUs but torch sees no CUDA device ({seen})"], 2
        return [f"device: no CUDA device here ({seen}); the GPU stages would be refused"], 0
    import torch

    dev = torch.device(device)
    if dev.index is not None and dev.index >= tc.count:
        return [f"device: {device} does not exist; torch sees {tc.count} GPU(s) ({seen})"], 2
    major, minor = torch.cuda.get_device_capability(dev)
    props = torch.cuda.get_device_properties(dev)
    cap = f"{major}.{minor}"
    lines = [f"device: {device} = {props.name}, sm_{major}{minor}, {props.total_memory / 2 ** 30:.1f} GiB; torch "
             f"{tc.version} CUDA {tc.cuda}, kernels {' '.join(tc.arch_list)}; native bf16: {major >= 8}"]
    if not runs_on(cap, tc.arch_list):
        return lines + [f"device: torch {tc.version} has no kernels for sm_{major}{minor} (make install, README "
                        "'Installing on a GPU machine')"], 2
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=gen), torch.randn(256, 256, generator=gen)
    start = time.perf_counter()
    got = (a.to(dev) @ b.to(dev)).cpu()
    torch.cuda.synchronize(dev)
    error = (got - a @ b).abs().max().item()
    ok = error < 1e-2                          # TF32 may be on: its 10-bit mantissa, not a wrong result
    lines.append(f"device: a 256x256 fp32 matmul on {device} in {time.perf_counter() - start:.2f} s, largest "
                 f"difference from the CPU's {error:.1e}" + ("" if ok else " (WRONG)"))
    return lines, 0 if ok else 1


def dry_run(device: str = "cuda") -> int:
    start = time.perf_counter()
    lines, failed = check_imports()
    for line in lines:
        print(line)
    if "torch" in failed:
        print(f"dry run: FAILED, torch does not import ({time.perf_counter() - start:.1f} s)")
        return 1
    device_lines, code = check_device(device)
    for line in device_lines:
        print(line)
    if failed:
        code = max(code, 1)
    verdict = "ok" if code == 0 else "FAILED"
    if failed:
        verdict += f" (imports: {', '.join(failed)})"
    print(f"dry run: {verdict} ({time.perf_counter() - start:.1f} s)")
    return code


if __name__ == "__main__":
    sys.exit(dry_run(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
