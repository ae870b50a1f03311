"""Training precision: which one `mixed_precision="auto"` picks on this machine, and the frozen base kept in it.

- `cpu_bf16_matmul()`: does this CPU multiply bf16 matrices in hardware (AMX tiles or AVX512-BF16, as torch
  reports it) and is a bf16 matmul really faster than an fp32 one here (a 512^3 product, best of 3)?
- `resolve_precision(setting, device)`: "auto" -> "bf16" on a CUDA device that supports it and on a CPU where
  `cpu_bf16_matmul()` holds, "no" (fp32) elsewhere; any other setting is returned as it is.
- `keep_frozen_in(model, precision)`: under bf16 autocast every matmul casts its fp32 weight to bf16, and for a
  frozen weight (no autograd leaf to cache the cast for) it does so again in every forward pass. Storing the
  frozen weights and biases of the matmul layers (Linear, Conv1D) in bf16 once gives the same arithmetic
  (autocast rounds them to bf16 anyway) without the per-step casts. Trainable parameters (the method's, the head,
  every weight of full fine-tuning: fp32 master weights), and with them the optimizer state, stay fp32;
  embeddings and norms stay fp32 too (autocast does not lower them), as do weights shared with an embedding
  (GPT-2's tied LM head), so that the forward pass computes exactly what plain autocast computes.
"""
from __future__ import annotations

import functools
import time

import torch
from torch import nn

LOWER_DTYPES = {"bf16": torch.bfloat16}   # precision -> the dtype its frozen matmul weights are stored in
FASTER_BY = 1.2                            # bf16 must beat fp32 by this factor for "auto" to pick it on a CPU


def cpu_bf16_capability() -> dict[str, bool]:
    """What torch reports about this CPU's bf16 matrix units (missing probes count as False)."""
    probes = {"amx_tile": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    out = {name: bool(getattr(torch.cpu, fn, lambda: False)()) for name, fn in probes.items()}
    out["mkldnn_bf16"] = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return out


def _best_seconds(dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def cpu_bf16_speedup(n: int = 512, repeats: int = 3) -> float:
    """fp32 over bf16 seconds of one n^3 matmul on this CPU (best of `repeats` each; about 20 ms in all)."""
    return _best_seconds(torch.float32, n, repeats) / _best_seconds(torch.bfloat16, n, repeats)


def cpu_bf16_matmul() -> bool:
    cap = cpu_bf16_capability()
    if not (cap["mkldnn_bf16"] and (cap["amx_tile"] or cap["avx512_bf16"])):
        return False
    return cpu_bf16_speedup() >= FASTER_BY


def resolve_precision(setting: str, device: str | torch.device | None = None) -> str:
    """The precision a run trains in: "bf16", "fp16" or "no". `device` None: CUDA when available, else CPU."""
    if setting != "auto":
        return setting
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if dev.type == "cpu":
        return "bf16" if cpu_bf16_matmul() else "no"
    return "no"


def allow_precision(precision: str) -> None:
    """accelerate keeps one process-wide state whose mixed precision cannot change once set; a process that
    trains in several precisions (a grid with `--set train.mixed_precision=...` on some runs, the perf
    benchmark in-process, the tests) drops that state before an Accelerator of another precision is made.
    The distributed state (PartialState) is kept."""
    from accelerate.state import AcceleratorState

    current = AcceleratorState._shared_state.get("_mixed_precision")
    if current is not None and str(current) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def precision_name(precision) -> str:
    """fp32 | bf16 | fp16: how a row names a precision setting ("no" is fp32)."""
    precision = str(precision)
    return "fp32" if precision == "no" else precision


def _embedding_owned(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters(recurse=False)}


def matmul_layers(model: nn.Module) -> list[nn.Module]:
    from transformers.pytorch_utils import Conv1D

    return [m for m in model.modules() if isinstance(m, (nn.Linear, Conv1D))]


def keep_frozen_in(model: nn.Module, precision: str) -> int:
    """Store the frozen weights and biases of `model`'s matmul layers in `precision`'s dtype (in place, so that
    layers sharing a parameter keep sharing it); returns how many parameters were converted. fp32 ("no") and
    precisions without a stored dtype change nothing."""
    dtype = LOWER_DTYPES.get(precision)
    if dtype is None:
        return 0
    skip = _embedding_owned(model)
    done: set[int] = set()
    for layer in matmul_layers(model):
        for p in layer.parameters(recurse=False):
            if p.requires_grad or id(p) in skip or id(p) in done or not p.is_floating_point():
                continue
            done.add(id(p))
            if p.dtype != dtype:
                p.data = p.data.to(dtype)
    return len(done)
