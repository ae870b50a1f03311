"""Which GPUs a grid or run may use, and a refusal when it asked for one and would get none.

What the machine has comes from `nvidia-smi` (index in PCI bus order, name, driver, compute capability); what
torch can use comes from torch itself, asked without initialising CUDA in this process
(`PYTORCH_NVML_BASED_CUDA_CHECK=1`, the build's CUDA version and kernel list), so that a grid process holds no CUDA
context and its worker processes start clean.

`--devices` takes integers or `all`. The integers count the GPUs this process may see: with an inherited
`CUDA_VISIBLE_DEVICES` (Slurm's `2,3`) `--devices 0,1` means its entries 2 and 3, never physical 0 and 1; without
one they are nvidia-smi's indices. Workers get `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so CUDA numbers the GPUs as
nvidia-smi does.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from bench.config import ConfigError
from bench.nvidia import Gpu, runs_on, smi_gpus

def visible_entries(environ=None) -> list[str] | None:
    """The inherited CUDA_VISIBLE_DEVICES as a list (None when it is not set)."""
    environ = os.environ if environ is None else environ
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def check_syntax(text: str) -> list[str]:
    """`--devices` as its items; ConfigError unless it is comma-separated integers or `all`."""
    items = [t.strip() for t in text.split(",")]
    if text.strip() != "all" and (not text.strip() or not all(t.isdigit() for t in items)):
        raise ConfigError(f"--devices expects comma-separated GPU indices (0,1) or all, got {text!r}")
    return items


def parse_devices(text: str, available: list[str], environ=None) -> list[str]:
    """`--devices` ("0,1", "all") as the CUDA_VISIBLE_DEVICES entries the workers get. `available`: what this
    process may use (the inherited CUDA_VISIBLE_DEVICES entries, else nvidia-smi's indices)."""
    text = text.strip()
    if text == "all":
        if not available:
            raise ConfigError(f"--devices all: no GPU visible ({_visible_from(environ)} lists none)")
        return list(available)
    items = check_syntax(text)
    if len(set(items)) != len(items):
        raise ConfigError(f"--devices {text}: a GPU is named twice")
    out = []
    for t in items:
        k = int(t)
        if k >= len(available):
            raise ConfigError(f"--devices {text}: there is no GPU {k}; {len(available)} visible (indices 0 to "
                              f"{len(available) - 1} of {_visible_from(environ)})")
        out.append(available[k])
    return out


def _visible_from(environ=None) -> str:
    inherited = visible_entries(environ)
    return "nvidia-smi" if inherited is None else f"CUDA_VISIBLE_DEVICES={','.join(inherited)!r}"


@dataclass(frozen=True)
class TorchCuda:
    version: str                    # torch.__version__
    cuda: str | None                # the CUDA version torch was built with (None: a CPU build)
    available: bool                 # torch.cuda.is_available(), NVML-based
    count: int
    arch_list: tuple[str, ...]      # compute capabilities the build has kernels for ("sm_80", ..., "compute_90")


def torch_cuda() -> TorchCuda:
    """What torch can use, asked without initialising CUDA here."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    available = bool(torch.version.cuda) and torch.cuda.is_available()
    return TorchCuda(torch.__version__, torch.version.cuda, available, torch.cuda.device_count() if available else 0,
                     tuple(torch.cuda.get_arch_list()) if available else ())


def describe(gpus: list[Gpu], tc: TorchCuda, environ=None) -> str:
    """What was seen, for a refusal's one line."""
    inherited = visible_entries(environ)
    if gpus:
        smi = f"nvidia-smi: {len(gpus)} GPU(s), {gpus[0].name}" + (f" sm_{gpus[0].capability.replace('.', '')}"
                                                                    if gpus[0].capability else "") \
            + f", driver {gpus[0].driver}"
    else:
        smi = "nvidia-smi: no GPU listed" if shutil.which("nvidia-smi") else "nvidia-smi: not found"
    build = f"CUDA {tc.cuda}" if tc.cuda else "no CUDA (a CPU build)"
    seen = "" if inherited is None else f"; CUDA_VISIBLE_DEVICES={','.join(inherited)!r}"
    return f"{smi}; torch {tc.version} built with {build}, torch.cuda.is_available()={tc.available}{seen}"


def check_gpus(wanted: list[str], why: str, gpus: list[Gpu], tc: TorchCuda, environ=None) -> None:
    """Refuse (ConfigError, one line) when `why` asked for GPUs `wanted` (CUDA_VISIBLE_DEVICES entries) and torch
    would train on the CPU instead, or on a GPU its build has no kernels for."""
    if not tc.available or tc.count == 0:
        raise ConfigError(f"{why} but torch sees no CUDA device ({describe(gpus, tc, environ)}); install a torch "
                          f"that runs on this GPU (make install, README 'Installing on a GPU machine') or pass --cpu")
    by_index = {g.index: g for g in gpus}
    for entry in wanted:
        gpu = by_index.get(entry)
        if gpu and not runs_on(gpu.capability, tc.arch_list):
            raise ConfigError(f"{why}: GPU {entry} ({gpu.name}, sm_{gpu.capability.replace('.', '')}) has no "
                              f"kernels in torch {tc.version} (built for {' '.join(tc.arch_list)}); install the "
                              f"build for it (make install, README 'Installing on a GPU machine')")


def gpu_request(devices: str, *, cpu: bool, gpus: list[Gpu] | None = None, tc: TorchCuda | None = None,
                environ=None) -> list[str] | None:
    """The CUDA_VISIBLE_DEVICES entries a grid's workers get (one per GPU), or None for a CPU grid. `--devices`
    asks for GPUs; so does a machine where nvidia-smi lists GPUs (then GPU 0), unless `--cpu`. Refused before
    any run when torch would not train on them."""
    if cpu and devices:
        raise ConfigError("--cpu and --devices contradict each other; pass one")
    if devices:
        check_syntax(devices)
    gpus = smi_gpus() if gpus is None else gpus
    if cpu or (not devices and not gpus):
        return None
    environ = os.environ if environ is None else environ
    tc = torch_cuda() if tc is None else tc
    why = f"--devices {devices} asks for GPUs" if devices else f"nvidia-smi lists {len(gpus)} GPU(s) here"
    if not tc.available or tc.count == 0:
        check_gpus([], why, gpus, tc, environ)                      # raises
    inherited = visible_entries(environ)
    if inherited is not None:
        available = inherited
    else:
        available = [g.index for g in gpus] or [str(k) for k in range(tc.count)]
    wanted = parse_devices(devices or "0", available, environ)
    check_gpus(wanted, why, gpus, tc, environ)
    return wanted
