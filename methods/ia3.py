"""(IA)^3 (Liu et al., "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context
Learning", NeurIPS 2022, arXiv 2205.05638): learned vectors that rescale activations, initialised to ones.

Per block, as the T-Few paper defines it: l_k rescales the key projection's output, l_v the value projection's
output, l_ff the FFN's inner activation, i.e. the input of its down projection (`arch.ffn_out`; on a gated MLP
that input is act(gate) * up). The key and value outputs are rescaled bias included, as PEFT computes it
(T5, the paper's model, has no biases). On a fused qkv projection (GPT-2's c_attn) only the k and v slices get
a vector. Stored: L x (d_k + d_v + d_ff); RoBERTa-base 12 x (768 + 768 + 3072) = 55,296.
"""
from __future__ import annotations

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

TARGETS = ("k", "v", "ffn")     # ffn: the input of the FFN's down projection


class IA3Linear(nn.Linear, MethodModule):
    """nn.Linear whose output (or, `feedforward=True`, input) is rescaled by a learned vector `ia3_l`."""

    def __init__(self, base: nn.Linear, feedforward: bool):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.feedforward = feedforward
        size = self.in_features if feedforward else self.out_features
        self.ia3_l = nn.Parameter(torch.ones(size, device=base.weight.device, dtype=base.weight.dtype))
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"ia3_l": self.ia3_l}

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # rescaled values keep their dtype, as in PEFT
        if self.feedforward:
            return F.linear((x * self.ia3_l).to(x.dtype), self.weight, self.bias)
        out = F.linear(x, self.weight, self.bias)
        return (out * self.ia3_l).to(out.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ia3={'input' if self.feedforward else 'output'}"


class IA3Conv1D(Conv1D, MethodModule):
    """transformers' Conv1D (y = x W + b) with learned rescaling: of its input (`feedforward=True`), or of chosen
    output slices (`n_chunks` equal slices; GPT-2's c_attn: q, k, v), one vector per slice in `slices`."""

    def __init__(self, base: Conv1D, feedforward: bool, n_chunks: int = 1, slices: tuple[int, ...] = (0,)):
        nn.Module.__init__(self)
        self.nf, self.nx = base.nf, base.nx
        self.weight, self.bias = base.weight, base.bias
        self.feedforward, self.n_chunks, self.chunk, self.slices = feedforward, n_chunks, base.nf // n_chunks, slices
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        shape = (self.nx,) if feedforward else (len(slices), self.chunk)
        self.ia3_l = nn.Parameter(torch.ones(shape, **kw))
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"ia3_l": self.ia3_l}

    def output_scale(self) -> torch.Tensor:
        """The rescaling of all nf outputs: the learned vectors on the adapted slices, ones elsewhere."""
        rows = [self.ia3_l[self.slices.index(c)] if c in self.slices else torch.ones_like(self.ia3_l[0])
                for c in range(self.n_chunks)]
        return torch.cat(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feedforward:
            return super().forward((x * self.ia3_l).to(x.dtype))
        out = super().forward(x)
        return (out * self.output_scale()).to(out.dtype)

    def __repr__(self) -> str:
        where = "input" if self.feedforward else f"slices {self.slices} of {self.n_chunks}"
        return f"IA3Conv1D(nf={self.nf}, nx={self.nx}, {where})"


def _wrap(layer: nn.Module, where: str, feedforward: bool, n_chunks: int = 1,
          slices: tuple[int, ...] = (0,)) -> nn.Module:
    if isinstance(layer, (IA3Linear, IA3Conv1D)):
        raise ValueError(f"{where} already has (IA)^3")
    if isinstance(layer, nn.Linear) and n_chunks == 1:
        return IA3Linear(layer, feedforward)
    if isinstance(layer, Conv1D):
        return IA3Conv1D(layer, feedforward, n_chunks, slices)
    raise UnsupportedFamily(f"ia3: cannot adapt {where} of type {type(layer).__name__} (Linear or Conv1D expected)")


@dataclass(frozen=True)
class IA3:
    """Learned rescaling (ones at init) of keys, values and the FFN's inner activation in every block."""

    name: ClassVar[str] = "ia3"
    targets: tuple[str, ...] = ("k", "v", "ffn")   # from ia3.TARGETS

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        unknown = [t for t in self.targets if t not in TARGETS]
        if not self.targets or unknown or len(set(self.targets)) != len(self.targets):
            raise ValueError(
                f"ia3.targets must be distinct names from {', '.join(TARGETS)}, got {', '.join(self.targets) or '()'}"
            )

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        fused = [t for t in ("k", "v") if t in self.targets and getattr(arch, t) is None]
        if fused and arch.qkv is None:
            raise UnsupportedFamily(f"ia3: family {arch.family} has neither {fused[0]} nor a fused qkv projection")
        for i, block in enumerate(blocks_of(model, arch)):
            for target in self.targets:
                if target in fused:
                    continue
                path = arch.ffn_out if target == "ffn" else getattr(arch, target)
                where = f"{arch.blocks}.{i}.{path}"
                set_module(block, path, _wrap(get_module(block, path), where, feedforward=(target == "ffn")))
            if fused:
                where = f"{arch.blocks}.{i}.{arch.qkv}"
                slices = tuple("qkv".index(t) for t in fused)
                set_module(block, arch.qkv, _wrap(get_module(block, arch.qkv), where, False, 3, slices))
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
