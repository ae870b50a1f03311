"""FT-top-k: only the top k transformer blocks (plus the final LayerNorm where the family has one) are trained."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from methods.base import Arch, blocks_of, freeze_all, get_module, unfreeze_head


@dataclass(frozen=True)
class TopK:
    """Fine-tune the top k transformer blocks (+ the final LayerNorm, e.g. GPT-2's ln_f) and the head."""

    name: ClassVar[str] = "topk"
    k: int = 2                   # number of top blocks trained
    final_norm: bool = True      # also train the final LayerNorm where the family has one (GPT-2's ln_f)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"topk.k must be an integer >= 1, got {self.k!r}")

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        blocks = blocks_of(model, arch)
        if self.k > len(blocks):
            raise ValueError(f"topk.k={self.k} but the model has only {len(blocks)} blocks")
        freeze_all(model)
        for block in list(blocks)[-self.k:]:
            for p in block.parameters():
                p.requires_grad_(True)
        if self.final_norm and arch.final_norm is not None:
            for p in get_module(model, arch.final_norm).parameters():
                p.requires_grad_(True)
        unfreeze_head(model, arch)
        return model
