"""Full fine-tuning: every parameter of the model is trained."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from methods.base import Arch


@dataclass(frozen=True)
class Full:
    """Full fine-tuning: every parameter trained (the head included)."""

    name: ClassVar[str] = "full"

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
