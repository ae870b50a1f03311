"""Training precision: which one `mixed_precision="auto"` picks on this machine, and the frozen base kept in it.

- `cpu_bf16_matmul()`: does this CPU multiply bf16 matrices in hardware (AMX tiles or AVX512-BF16, as torch
  reports it) and is a bf16 matmul really faster than an fp32 one here (a 512^3 product, best of 3)?
- `resolve_precision(setting, device)`: "auto" -> "bf16" on a CUDA device of compute capability 8.0 or newer
  (Ampere, Ada, Hopper, Blackwell: bf16 tensor cores) and on a CPU where `cpu_bf16_matmul()` holds; "fp16"
  (autocast with dynamic loss scaling) on CUDA devices below 8.0 (V100 sm_70, T4 / RTX 20xx sm_75), whose bf16
  is emulated (`torch.cuda.is_bf16_supported()` counts emulation by default, so it is not asked); "no" (fp32)
  elsewhere. Any other setting is returned as it is. The device is the process's own (accelerate's choice).
- `tf32_in_effect(enabled, precision, device)`: whether fp32 matmuls run in TF32 (a CUDA device of capability
  8.0 or newer, `train.tf32` on, precision fp32); `set_tf32` applies the setting to the process.
- `keep_frozen_in(model, precision)`: under bf16 (fp16) autocast every matmul casts its fp32 weight to bf16
  (fp16), and for a frozen weight (no autograd leaf to cache the cast for) it does so again in every forward
  pass. Storing the frozen weights and biases of the matmul layers (Linear, Conv1D) in that dtype once gives the
  same arithmetic (autocast rounds them anyway) without the per-step casts. Trainable parameters (the method's,
  the head, every weight of full fine-tuning: fp32 master weights), and with them the optimizer state, stay fp32;
  embeddings and norms stay fp32 too (autocast does not lower them), as do weights shared with an embedding
  (GPT-2's tied LM head), so that the forward pass computes exactly what plain autocast computes.
"""
from __future__ import annotations

import functools
import time

import torch
from torch import nn

LOWER_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}   # precision -> dtype of frozen matmul weights
NATIVE_BF16 = (8, 0)                       # CUDA compute capability from which bf16 (and TF32) run in hardware
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
        return "bf16" if torch.cuda.get_device_capability(dev) >= NATIVE_BF16 else "fp16"
    if dev.type == "cpu":
        return "bf16" if cpu_bf16_matmul() else "no"
    return "no"


def tf32_in_effect(enabled: bool, precision: str, device: str | torch.device) -> bool:
    """Whether a run's fp32 matmuls use TF32: asked for (`train.tf32`), trained in fp32, on a CUDA device of
    capability 8.0 or newer (older cards have no TF32; CPUs none)."""
    dev = torch.device(device)
    return bool(enabled and precision == "no" and dev.type == "cuda"
                and torch.cuda.get_device_capability(dev) >= NATIVE_BF16)


def set_tf32(on: bool) -> None:
    """TF32 for CUDA matmuls and cuDNN convolutions, process-wide, set on every run (no run inherits another's)."""
    mode = "tf32" if on else "ieee"
    torch.backends.cuda.matmul.fp32_precision = mode
    torch.backends.cudnn.conv.fp32_precision = mode


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
    """Store the frozen weights and biases of `model`'s matmul layers in `precision`'s dtype (bf16 or fp16; in
    place, so that layers sharing a parameter keep sharing it); returns how many parameters were converted. fp32
    ("no") changes nothing."""
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


MIN_LOSS_SCALE = 2.0 ** -8   # fp16: a dynamic loss scale halved below this (24 overflowing steps in a row from
#                              2^16 with no recovery) means the gradients overflow fp16 whatever the scale


class ScaleWatch:
    """fp16 training's dynamic loss scale and the optimizer steps the scaler skipped (a gradient overflowed:
    the scale fell), tallied on the device so that reading them waits for the device only when asked (`read`).
    Without a scaler (fp32, bf16) there is nothing to watch: `read` gives (None, 0)."""

    def __init__(self, scaler) -> None:
        self.scaler = scaler
        self._before = None
        self._skipped = None

    def before_step(self) -> None:
        scale = self.scaler._get_scale_async() if self.scaler is not None else None
        self._before = scale.clone() if scale is not None else None   # update() changes the scale in place

    def after_step(self) -> None:
        if self._before is None:
            return
        fell = (self.scaler._get_scale_async() < self._before).to(torch.int64)
        self._skipped = fell if self._skipped is None else self._skipped + fell
        self._before = None

    def read(self) -> tuple[float | None, int]:
        """(loss scale now, steps skipped since the last read)."""
        if self.scaler is None:
            return None, 0
        skipped = int(self._skipped) if self._skipped is not None else 0
        self._skipped = None
        scale = self.scaler._get_scale_async()
        return (float(scale) if scale is not None else None), skipped
