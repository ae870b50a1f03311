"""LoRA (Hu et al., 2021): W x + (alpha / r) * B A x with A (r x d_in) random, B (d_out x r) zero at init.

The LoRA layers are drop-in subclasses of the layers they replace (nn.Linear, and transformers' Conv1D for GPT-2)
that share the pretrained weight and bias, so the base model's parameter names do not change. For GPT-2's
fused c_attn (out = [q | k | v]) only the chosen slices get a low-rank update. Merging is an explicit call:
`merge(model)` folds B A into the weights (for fast inference), `unmerge(model)` takes it out again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from methods.base import (
    Arch, MethodModule, UnsupportedFamily, blocks_of, freeze_all, get_module, set_module, unfreeze_head,
    unfreeze_method_modules,
)

# o = attention output projection; gate = a gated FFN's gate projection (Llama layout's gate_proj)
TARGETS = ("q", "k", "v", "o", "gate", "ffn_in", "ffn_out")
ALIASES = {"up": "ffn_in", "down": "ffn_out"}   # the gated FFN's names for the up and down projections
_ARCH_FIELD = {"q": "q", "k": "k", "v": "v", "o": "attn_out", "gate": "ffn_gate", "ffn_in": "ffn_in",
               "ffn_out": "ffn_out"}


def _init_a(a: torch.Tensor, fan_in: int) -> None:
    # kaiming_uniform_(a=sqrt(5)) as in nn.Linear, loralib and PEFT: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        a.uniform_(-bound, bound)


class _Mergeable:
    """merge / unmerge for a layer with `weight`, `merged` and `delta_weight()` (the update in weight's layout)."""

    def merge(self) -> None:
        if not self.merged:
            with torch.no_grad():
                self.weight += self.delta_weight().to(self.weight.dtype)
            self.merged = True

    def unmerge(self) -> None:
        if self.merged:
            with torch.no_grad():
                self.weight -= self.delta_weight().to(self.weight.dtype)
            self.merged = False


class LoRALinear(_Mergeable, nn.Linear, MethodModule):
    """nn.Linear plus a low-rank update; shares the wrapped layer's weight and bias."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.r, self.scaling, self.merged = r, alpha / r, False
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **kw))
        _init_a(self.lora_A, self.in_features)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"lora_A": self.lora_A, "lora_B": self.lora_B}

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling          # (out, in), like self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.merged:
            return out
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)
        return out + update * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, scaling={self.scaling}"


def add_to_slices(out: torch.Tensor, upd: torch.Tensor, slices, n_chunks: int, chunk: int) -> torch.Tensor:
    """`out` (..., n_chunks * chunk) of a fused projection plus `upd` (..., len(slices), chunk), an update of the
    chosen chunks only (GPT-2's c_attn: q, k, v); the other chunks are left as they are."""
    if len(slices) == n_chunks:
        return out + upd.reshape(out.shape)
    full = out.new_zeros(*out.shape[:-1], n_chunks, chunk)
    full[..., list(slices), :] = upd
    return out + full.reshape(out.shape)


class LoRAConv1D(_Mergeable, Conv1D, MethodModule):
    """transformers' Conv1D (y = x W + b, W of shape (d_in, d_out)) plus low-rank updates on chosen output slices.

    The output is split into `n_chunks` equal slices (3 for GPT-2's fused c_attn: q, k, v); slice s in `slices`
    gets its own A_s (r x d_in) and B_s (d_out/n_chunks x r). `n_chunks=1, slices=(0,)` is plain LoRA.
    """

    def __init__(self, base: Conv1D, r: int, alpha: float, dropout: float, n_chunks: int = 1,
                 slices: tuple[int, ...] = (0,)):
        nn.Module.__init__(self)
        self.nf, self.nx = base.nf, base.nx
        self.weight, self.bias = base.weight, base.bias
        if self.nf % n_chunks:
            raise ValueError(f"Conv1D output {self.nf} is not divisible into {n_chunks} slices")
        self.n_chunks, self.chunk, self.slices = n_chunks, self.nf // n_chunks, tuple(slices)
        self.r, self.scaling, self.merged = r, alpha / r, False
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(len(self.slices), r, self.nx, **kw))
        self.lora_B = nn.Parameter(torch.zeros(len(self.slices), self.chunk, r, **kw))
        _init_a(self.lora_A, self.nx)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"lora_A": self.lora_A, "lora_B": self.lora_B}

    def delta_weight(self) -> torch.Tensor:
        """The update in Conv1D layout (d_in, d_out), zero outside the adapted slices."""
        delta = self.weight.new_zeros(self.nx, self.n_chunks, self.chunk)
        delta[:, list(self.slices), :] = torch.einsum("scr,sri->isc", self.lora_B, self.lora_A) * self.scaling
        return delta.reshape(self.nx, self.nf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.merged:
            return out
        low = torch.einsum("...i,sri->...sr", self.lora_dropout(x), self.lora_A)
        upd = torch.einsum("...sr,scr->...sc", low, self.lora_B) * self.scaling
        return add_to_slices(out, upd, self.slices, self.n_chunks, self.chunk)

    def __repr__(self) -> str:
        return f"LoRAConv1D(nf={self.nf}, nx={self.nx}, r={self.r}, slices={self.slices} of {self.n_chunks})"


def _wrap(layer: nn.Module, where: str, r: int, alpha: float, dropout: float, n_chunks: int = 1,
          slices: tuple[int, ...] = (0,)) -> nn.Module:
    if isinstance(layer, (LoRALinear, LoRAConv1D)):
        raise ValueError(f"{where} already has LoRA")
    if isinstance(layer, nn.Linear) and n_chunks == 1:
        return LoRALinear(layer, r, alpha, dropout)
    if isinstance(layer, Conv1D):
        return LoRAConv1D(layer, r, alpha, dropout, n_chunks, slices)
    raise UnsupportedFamily(f"lora: cannot adapt {where} of type {type(layer).__name__} (Linear or Conv1D expected)")


@dataclass(frozen=True)
class LoRA:
    """Low-rank updates (scaling alpha / r) on the chosen projections of every block."""

    name: ClassVar[str] = "lora"
    r: int = 8                            # rank
    alpha: float = 16.0                   # scaling = alpha / r
    dropout: float = 0.0                  # dropout on the LoRA input path
    targets: tuple[str, ...] = ("q", "v")  # from lora.TARGETS: q k v o gate ffn_in ffn_out (up, down: aliases)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(ALIASES.get(t, t) for t in self.targets))
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"{self.name}.r must be an integer >= 1, got {self.r!r}")
        if not self.alpha > 0:
            raise ValueError(f"{self.name}.alpha must be > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.name}.dropout must be in [0, 1), got {self.dropout!r}")
        unknown = [t for t in self.targets if t not in TARGETS]
        if not self.targets or unknown or len(set(self.targets)) != len(self.targets):
            raise ValueError(
                f"{self.name}.targets must be distinct names from {', '.join(TARGETS)} (up = ffn_in, "
                f"down = ffn_out), "
                f"got {', '.join(self.targets) or '()'}"
            )

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        for block, path, where, slices in adapted_layers(model, arch, self.name, self.targets):
            layer = get_module(block, path)
            if slices is None:
                new = _wrap(layer, where, self.r, self.alpha, self.dropout)
            else:
                new = _wrap(layer, where, self.r, self.alpha, self.dropout, 3, slices)
            set_module(block, path, new)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model


def adapted_layers(model: nn.Module, arch: Arch, method: str, targets: tuple[str, ...]):
    """The layers that `targets` (names from TARGETS) name in every block, in block order: (block, block-relative
    path, full path, slices). slices is None for a projection of its own, else the indices of the chosen q/k/v
    slices (0, 1, 2) of the family's fused qkv projection (GPT-2's c_attn), which comes last in its block."""
    fused = [t for t in ("q", "k", "v") if t in targets and getattr(arch, t) is None]
    if fused and arch.qkv is None:
        raise UnsupportedFamily(f"{method}: family {arch.family} has neither {fused[0]} nor a fused qkv projection")
    missing = [t for t in targets if t not in ("q", "k", "v") and getattr(arch, _ARCH_FIELD[t]) is None]
    if missing:
        raise UnsupportedFamily(f"{method}: family {arch.family} has no {missing[0]} projection "
                                f"(arch.{_ARCH_FIELD[missing[0]]} is unset; its FFN is not gated)")
    out = []
    for i, block in enumerate(blocks_of(model, arch)):
        for target in targets:
            if target not in fused:
                path = getattr(arch, _ARCH_FIELD[target])
                out.append((block, path, f"{arch.blocks}.{i}.{path}", None))
        if fused:
            out.append((block, arch.qkv, f"{arch.blocks}.{i}.{arch.qkv}", tuple("qkv".index(t) for t in fused)))
    return out


def _lora_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (LoRALinear, LoRAConv1D))]


def merge(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its pretrained weight (outputs unchanged; the LoRA path is skipped)."""
    for layer in _lora_layers(model):
        layer.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Undo `merge`: subtract the updates again so that training can continue."""
    for layer in _lora_layers(model):
        layer.unmerge()
    return model
