"""DoRA (Liu et al., ICML 2024, arXiv 2402.09353): LoRA with a learned magnitude per output feature.

W' = m * (W + s B A) / ||W + s B A||, the norm taken for each output feature over the layer's inputs (in
nn.Linear's (d_out, d_in) layout: over each row; the paper's "column-wise" norm of W in (d_in, d_out)), m
(d_out) initialised to ||W|| so that W' = W at init. As the paper recommends and PEFT computes it, the norm is a
constant in the backward pass (detached): gradients reach m, A and B, not through the norm.

The forward pass is PEFT's: y = W x + b + (m/n - 1) * W x_d + (m/n) * s B A x_d with x_d the LoRA-dropped input
(x_d = x without dropout or in eval, which is m/n * (W x + s B A x) + b). The layers are LoRA's drop-in layers
(methods/lora.py) plus the magnitude; GPT-2's fused c_attn gets a magnitude for each adapted slice only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from methods.base import Arch, UnsupportedFamily, freeze_all, get_module, set_module, unfreeze_head, \
    unfreeze_method_modules
from methods.lora import LoRA, LoRAConv1D, LoRALinear, adapted_layers


def _dropped(layer, x: torch.Tensor) -> torch.Tensor | None:
    """The LoRA path's input when it differs from x (dropout active), else None."""
    if isinstance(layer.lora_dropout, nn.Identity) or not layer.training:
        return None
    return layer.lora_dropout(x)


class DoRALinear(LoRALinear):
    """nn.Linear with a DoRA update: LoRA's A, B plus `lora_magnitude` (d_out)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        super().__init__(base, r, alpha, dropout)
        with torch.no_grad():
            self.lora_magnitude = nn.Parameter(torch.linalg.vector_norm(self.weight, dim=1))
        self.merged_norm: torch.Tensor | None = None

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {**super().method_parameters(), "lora_magnitude": self.lora_magnitude}

    def weight_norm(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """||W + s B A|| per output feature, detached (d_out), from W and s B A in `dtype` (the dtype the layer's
        matmul runs in; default W's)."""
        dtype = dtype or self.weight.dtype
        with torch.no_grad():
            return torch.linalg.vector_norm(self.weight.to(dtype) + super().delta_weight().to(dtype), dim=1)

    def delta_weight(self) -> torch.Tensor:
        norm = self.weight_norm() if self.merged_norm is None else self.merged_norm
        scale = (self.lora_magnitude / norm).unsqueeze(1)
        return scale * (self.weight + super().delta_weight()) - self.weight

    def merge(self) -> None:
        if not self.merged:
            with torch.no_grad():
                norm = self.weight_norm()
                self.weight.copy_((self.lora_magnitude / norm).unsqueeze(1) * (self.weight + super().delta_weight()))
                self.merged_norm = norm
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            with torch.no_grad():
                self.weight.copy_(self.weight * (self.merged_norm / self.lora_magnitude).unsqueeze(1)
                                  - super().delta_weight())
            self.merged, self.merged_norm = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return F.linear(x, self.weight, self.bias)
        base = F.linear(x, self.weight)
        xd = _dropped(self, x)
        base_d = base if xd is None else F.linear(xd, self.weight)
        xd = x if xd is None else xd
        scale = self.lora_magnitude / self.weight_norm(base.dtype)
        update = F.linear(F.linear(xd, self.lora_A), self.lora_B) * self.scaling
        out = base + (scale - 1) * base_d + scale * update
        out = out if self.bias is None else out + self.bias
        return out.to(base.dtype)           # in the base output's dtype, as PEFT


class DoRAConv1D(LoRAConv1D):
    """transformers' Conv1D with DoRA on chosen output slices: per slice LoRA's A_s, B_s and a magnitude."""

    def __init__(self, base: Conv1D, r: int, alpha: float, dropout: float, n_chunks: int = 1,
                 slices: tuple[int, ...] = (0,)):
        super().__init__(base, r, alpha, dropout, n_chunks, slices)
        with torch.no_grad():
            norms = torch.linalg.vector_norm(self.weight, dim=0).reshape(self.n_chunks, self.chunk)
            self.lora_magnitude = nn.Parameter(norms[list(self.slices)].clone())
        self.merged_norm: torch.Tensor | None = None

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {**super().method_parameters(), "lora_magnitude": self.lora_magnitude}

    def update(self) -> torch.Tensor:
        """s B A in Conv1D layout (d_in, d_out), zero outside the adapted slices, in the LoRA tensors' dtype."""
        delta = self.lora_A.new_zeros(self.nx, self.n_chunks, self.chunk)
        low = torch.einsum("scr,sri->isc", self.lora_B, self.lora_A) * self.scaling
        delta[:, list(self.slices), :] = low.to(delta.dtype)
        return delta.reshape(self.nx, self.nf)

    def weight_norm(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """||W + s B A|| per output feature of the adapted slices, detached (slices, chunk), from W and s B A in
        `dtype` (the dtype the layer's matmul runs in; default W's)."""
        dtype = dtype or self.weight.dtype
        with torch.no_grad():
            full = self.weight.to(dtype) + self.update().to(dtype)
            norms = torch.linalg.vector_norm(full, dim=0).reshape(self.n_chunks, self.chunk)
            return norms[list(self.slices)]

    def _scale(self, norm: torch.Tensor) -> torch.Tensor:
        """m / n on the adapted slices, 1 elsewhere, over all nf output features."""
        adapted = self.lora_magnitude / norm
        rows = [adapted[self.slices.index(c)] if c in self.slices else torch.ones_like(adapted[0])
                for c in range(self.n_chunks)]
        return torch.cat(rows)

    def delta_weight(self) -> torch.Tensor:
        norm = self.weight_norm() if self.merged_norm is None else self.merged_norm
        return self._scale(norm) * (self.weight + self.update()) - self.weight

    def merge(self) -> None:
        if not self.merged:
            with torch.no_grad():
                norm = self.weight_norm()
                self.weight.copy_(self._scale(norm) * (self.weight + self.update()))
                self.merged_norm = norm
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            with torch.no_grad():
                self.weight.copy_(self.weight / self._scale(self.merged_norm) - self.update())
            self.merged, self.merged_norm = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            return Conv1D.forward(self, x)
        base = torch.matmul(x, self.weight)
        xd = _dropped(self, x)
        base_d = base if xd is None else torch.matmul(xd, self.weight)
        xd = x if xd is None else xd
        low = torch.einsum("...i,sri->...sr", xd, self.lora_A)
        upd = torch.einsum("...sr,scr->...sc", low, self.lora_B) * self.scaling
        full = upd.new_zeros(*upd.shape[:-2], self.n_chunks, self.chunk)
        full[..., list(self.slices), :] = upd
        scale = self._scale(self.weight_norm(base.dtype))
        out = base + (scale - 1) * base_d + scale * full.reshape(base.shape) + self.bias
        return out.to(base.dtype)           # in the base output's dtype, as PEFT

    def __repr__(self) -> str:
        return f"DoRAConv1D(nf={self.nf}, nx={self.nx}, r={self.r}, slices={self.slices} of {self.n_chunks})"


@dataclass(frozen=True)
class DoRA(LoRA):
    """LoRA's settings; every adapted projection also learns a magnitude per output feature."""

    name: ClassVar[str] = "dora"
    r: int = 8                            # rank
    alpha: float = 16.0                   # scaling = alpha / r
    dropout: float = 0.0                  # dropout on the LoRA input path
    targets: tuple[str, ...] = ("q", "v")  # from lora.TARGETS: q k v o gate ffn_in ffn_out (up, down: aliases)

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        for block, path, where, slices in adapted_layers(model, arch, self.name, self.targets):
            layer = get_module(block, path)
            if isinstance(layer, (LoRALinear, LoRAConv1D)):
                raise ValueError(f"{where} already has LoRA")
            if isinstance(layer, nn.Linear) and slices is None:
                new = DoRALinear(layer, self.r, self.alpha, self.dropout)
            elif isinstance(layer, Conv1D):
                new = DoRAConv1D(layer, self.r, self.alpha, self.dropout, *((3, slices) if slices else (1, (0,))))
            else:
                raise UnsupportedFamily(
                    f"dora: cannot adapt {where} of type {type(layer).__name__} (Linear or Conv1D expected)")
            set_module(block, path, new)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
