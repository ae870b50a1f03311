"""What `nvidia-smi` says about this machine's GPUs, and which build of torch 2.13 runs on them.

Standard library only: `make install` runs this file with the venv's bare Python before anything is installed
(`python bench/nvidia.py --torch auto`). It prints the pip arguments of the torch to install on stdout and why on
stderr, or one line on stderr and exit 2 when no build of torch 2.13 runs here (the line says what to do).

torch 2.13's CUDA builds (pytorch/pytorch RELEASE.md, "PyTorch CUDA Support Matrix" for 2.12 and 2.13, PR #187075;
Linux x86_64):
    cu126 (legacy, download.pytorch.org/whl/cu126): kernels for sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90
    cu130 (stable, the PyPI wheel):                 kernels for sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 + PTX
A GPU runs a build that has a kernel of its own major version at or below its minor (sm_89 runs sm_86, sm_61 runs
sm_60) or PTX at or below it. The driver must support the build's CUDA (NVIDIA's minor-version compatibility
table): CUDA 12.x needs a driver >= 525, CUDA 13.x a driver >= 580.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass

SMI_QUERY = "index,name,driver_version,compute_cap"
TORCH_SPEC = "torch==2.13.0"
PYTORCH_INDEX = "https://download.pytorch.org/whl/"


@dataclass(frozen=True)
class Gpu:
    index: str                      # nvidia-smi's index (PCI bus order)
    name: str
    driver: str
    capability: str                 # "8.0"; "" when this nvidia-smi cannot say (older than driver 510)


@dataclass(frozen=True)
class Build:
    tag: str                        # "cu130": the wheel's local version and index name
    cuda: str
    min_driver: int                 # driver major version at least
    arch: tuple[str, ...]           # kernels it ships (sm_XY) and PTX (compute_XY)
    pypi: bool                      # the wheel PyPI serves for torch 2.13 on Linux x86_64


BUILDS = (      # preferred first
    Build("cu130", "13.0", 580, ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"), True),
    Build("cu126", "12.6", 525, ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"), False),
)


def parse_smi(text: str) -> list[Gpu]:
    """Rows of `nvidia-smi --query-gpu=index,name,driver_version[,compute_cap] --format=csv,noheader`."""
    out = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        cap = parts[3] if len(parts) > 3 and _is_capability(parts[3]) else ""
        out.append(Gpu(parts[0], parts[1], parts[2], cap))
    return out


def _is_capability(text: str) -> bool:
    major, _, minor = text.partition(".")
    return major.isdigit() and minor.isdigit()


def smi_gpus(smi: str | None = None) -> list[Gpu]:
    """The GPUs nvidia-smi lists ([] without nvidia-smi or when it fails: no driver). An nvidia-smi too old for
    `compute_cap` is asked again without it."""
    smi = smi or shutil.which("nvidia-smi")
    if not smi:
        return []
    for query in (SMI_QUERY, SMI_QUERY.rsplit(",", 1)[0]):
        try:
            proc = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return []
        if proc.returncode == 0:
            return parse_smi(proc.stdout)
    return []


def runs_on(capability: str, arch: tuple[str, ...]) -> bool:
    """Whether a build with kernels `arch` runs on a GPU of `capability` ("" or no list: cannot tell, yes)."""
    if not capability or not arch:
        return True
    major, minor = (int(x) for x in capability.split("."))
    for item in arch:
        kind, _, digits = item.partition("_")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def driver_major(driver: str) -> int:
    head = driver.split(".")[0]
    return int(head) if head.isdigit() else 0


class NoBuild(Exception):
    """No torch 2.13 build runs on these GPUs with this driver; the message says what to do."""


def choose(gpus: list[Gpu]) -> Build:
    """The first build whose kernels cover every GPU and whose CUDA this driver supports."""
    driver = driver_major(gpus[0].driver)
    fits = [b for b in BUILDS if all(runs_on(g.capability, b.arch) for g in gpus)]
    cards = ", ".join(sorted({f"{g.name} (sm_{g.capability.replace('.', '')})" if g.capability else g.name
                              for g in gpus}))
    if not fits:
        raise NoBuild(f"no build of {TORCH_SPEC} has kernels for {cards} (cu126 covers sm_50 to sm_90, cu130 sm_75 "
                      f"and newer)")
    for build in fits:
        if driver >= build.min_driver:
            return build
    need = min(b.min_driver for b in fits)
    raise NoBuild(f"{cards} with driver {gpus[0].driver}: {TORCH_SPEC} for these GPUs needs a driver >= {need} "
                  f"({', '.join(f'{b.tag}: CUDA {b.cuda}, driver >= {b.min_driver}' for b in fits)}); upgrade the "
                  f"driver, or run make install TORCH=cpu to train on the CPU")


def pip_args(setting: str, gpus: list[Gpu]) -> tuple[list[str], str]:
    """(pip install arguments, why) for `TORCH=setting`: auto (by nvidia-smi), cpu, default (PyPI's wheel),
    or a build tag (cu126, cu130)."""
    tags = {b.tag: b for b in BUILDS}
    if setting == "cpu":
        return [TORCH_SPEC, "--index-url", PYTORCH_INDEX + "cpu"], "TORCH=cpu: the CPU build"
    if setting == "default":
        return [TORCH_SPEC], "TORCH=default: the wheel PyPI serves (on Linux x86_64 the CUDA 13.0 build)"
    if setting in tags:
        build = tags[setting]
        why = f"TORCH={setting}: the CUDA {build.cuda} build"
    elif setting == "auto":
        if not gpus:
            return [TORCH_SPEC], ("nvidia-smi lists no GPU here: the wheel PyPI serves (on Linux x86_64 the CUDA "
                                  "13.0 build; TORCH=cpu installs the smaller CPU build)")
        build = choose(gpus)
        caps = " ".join(sorted({f"sm_{g.capability.replace('.', '')}" for g in gpus if g.capability})) or "?"
        why = (f"{len(gpus)} GPU(s), {gpus[0].name}, {caps}, driver {gpus[0].driver}: the CUDA {build.cuda} build "
               f"({build.tag})")
    else:
        raise NoBuild(f"TORCH={setting}: expected auto, cpu, default or one of {', '.join(tags)}")
    return ([TORCH_SPEC] if build.pypi else [TORCH_SPEC, "--index-url", PYTORCH_INDEX + build.tag]), why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", default="auto", help="auto, cpu, default, cu126 or cu130")
    parser.add_argument("--smi", default=None, help="the nvidia-smi to ask (default: the one on PATH)")
    args = parser.parse_args(argv)
    try:
        pip, why = pip_args(args.torch, smi_gpus(args.smi) if args.torch == "auto" else [])
    except NoBuild as exc:
        print(f"make install: {exc}", file=sys.stderr)
        return 2
    print(f"torch: {why}", file=sys.stderr)
    print(" ".join(pip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
