"""VeRA (Kopiczko, Blankevoort, Asano; ICLR 2024, arXiv 2310.11454): one pair of frozen random matrices shared
by every adapted layer, and trained scaling vectors per layer.

Update of an adapted W (d_out x d_in): b * (B (d * (A x))), with A (r x d_in) and B (d_out x r) the shared
frozen matrices sliced to the layer's size, d (r) initialised to `d_initial` and b (d_out) to zeros, so the
outputs are unchanged at init. A and B are generated as PEFT generates them: a CPU torch.Generator seeded with
`projection_seed`, A = kaiming-uniform (r, largest d_in) first, then B = kaiming-uniform (largest d_out, r), each
U(-sqrt(6 / fan_in), sqrt(6 / fan_in)). They are not saved: `projection_seed` (a field of the method) regenerates
them. A fused qkv projection (GPT-2's c_attn) counts as one layer of d_out = 3 d when B is sized, and each adapted
slice has its own d and b and reads its own rows of B (slice s: rows s*d .. (s+1)*d, where PEFT's VeRA on the
whole c_attn reads them). Stored: L_tuned x (d_out + r); RoBERTa-base r=1024 on q, v: 24 x (768 + 1024) = 43,008.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from methods.base import Arch, MethodModule, UnsupportedFamily, freeze_all, get_module, set_module, unfreeze_head, \
    unfreeze_method_modules
from methods.lora import ALIASES, TARGETS, adapted_layers, add_to_slices

SHARED = "vera_projections"       # attribute of the task model holding the shared A and B


def kaiming_uniform(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """U(-b, b), b = sqrt(3) * sqrt(2) / sqrt(fan_in), fan_in = shape[1] (PEFT's VeRA initialisation)."""
    bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(shape[1])
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


class VeRAProjections(MethodModule):
    """The frozen shared A (r x d_in) and B (d_out x r): non-persistent buffers of one module on the task model,
    so that moving the model moves one copy; the VeRA layers look them up here."""

    def __init__(self, r: int, d_in: int, d_out: int, seed: int, device: torch.device, dtype: torch.dtype):
        super().__init__()
        if device.type == "meta":
            a, b = torch.empty(r, d_in, device=device), torch.empty(d_out, r, device=device)
        else:
            generator = torch.Generator(device="cpu").manual_seed(seed)
            a = kaiming_uniform((r, d_in), generator)
            b = kaiming_uniform((d_out, r), generator)
        self.register_buffer("vera_A", a.to(device=device, dtype=dtype), persistent=False)
        self.register_buffer("vera_B", b.to(device=device, dtype=dtype), persistent=False)


class VeRALinear(nn.Linear, MethodModule):
    """nn.Linear plus b * (B[:d_out] (d * (A[:, :d_in] x))); shares the wrapped layer's weight and bias."""

    def __init__(self, base: nn.Linear, shared: VeRAProjections, r: int, d_initial: float, dropout: float):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self._shared = (shared,)            # a tuple: not registered as a submodule (it lives on the model)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.vera_d = nn.Parameter(torch.full((r,), float(d_initial), **kw))
        self.vera_b = nn.Parameter(torch.zeros(self.out_features, **kw))
        self.vera_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"vera_d": self.vera_d, "vera_b": self.vera_b}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self._shared[0]
        a, b = shared.vera_A[:, :self.in_features], shared.vera_B[:self.out_features]
        low = F.linear(self.vera_dropout(x), a) * self.vera_d
        out = F.linear(x, self.weight, self.bias)
        return out + (F.linear(low, b) * self.vera_b).to(out.dtype)   # in the base output's dtype, as PEFT


class VeRAConv1D(Conv1D, MethodModule):
    """transformers' Conv1D with VeRA on chosen output slices: slice s has its own d_s (r) and b_s (d_out /
    n_chunks) and reads rows s*chunk .. (s+1)*chunk of the shared B."""

    def __init__(self, base: Conv1D, shared: VeRAProjections, r: int, d_initial: float, dropout: float,
                 n_chunks: int = 1, slices: tuple[int, ...] = (0,)):
        nn.Module.__init__(self)
        self.nf, self.nx = base.nf, base.nx
        self.weight, self.bias = base.weight, base.bias
        self._shared = (shared,)
        self.n_chunks, self.chunk, self.slices = n_chunks, base.nf // n_chunks, tuple(slices)
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.vera_d = nn.Parameter(torch.full((len(self.slices), r), float(d_initial), **kw))
        self.vera_b = nn.Parameter(torch.zeros(len(self.slices), self.chunk, **kw))
        self.vera_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.train(base.training)   # keep the replaced layer's train/eval mode

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return {"vera_d": self.vera_d, "vera_b": self.vera_b}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        shared = self._shared[0]
        a = shared.vera_A[:, :self.nx]
        b = shared.vera_B[:self.nf].reshape(self.n_chunks, self.chunk, -1)[list(self.slices)]   # (S, chunk, r)
        low = F.linear(self.vera_dropout(x), a)                                                # (..., r)
        upd = (torch.einsum("...sr,scr->...sc", low.unsqueeze(-2) * self.vera_d, b) * self.vera_b).to(out.dtype)
        return add_to_slices(out, upd, self.slices, self.n_chunks, self.chunk)

    def __repr__(self) -> str:
        return f"VeRAConv1D(nf={self.nf}, nx={self.nx}, slices={self.slices} of {self.n_chunks})"


def _dims(layer: nn.Module, where: str) -> tuple[int, int]:
    if isinstance(layer, (VeRALinear, VeRAConv1D)):
        raise ValueError(f"{where} already has VeRA")
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, Conv1D):
        return layer.nx, layer.nf
    raise UnsupportedFamily(f"vera: cannot adapt {where} of type {type(layer).__name__} (Linear or Conv1D expected)")


@dataclass(frozen=True)
class VeRA:
    """Shared frozen random A, B; trained vectors d (rank) and b (output) on the chosen projections."""

    name: ClassVar[str] = "vera"
    r: int = 256                          # rank of the shared random matrices
    d_initial: float = 0.1                # initial value of every entry of d
    dropout: float = 0.0                  # dropout on the VeRA input path
    projection_seed: int = 0              # seed that generates A and B (PEFT's projection_prng_key)
    targets: tuple[str, ...] = ("q", "v")  # from lora.TARGETS: q k v o gate ffn_in ffn_out (up, down: aliases)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(ALIASES.get(t, t) for t in self.targets))
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"vera.r must be an integer >= 1, got {self.r!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"vera.dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.projection_seed, bool) or not isinstance(self.projection_seed, int) \
                or self.projection_seed < 0:
            raise ValueError(f"vera.projection_seed must be an integer >= 0, got {self.projection_seed!r}")
        unknown = [t for t in self.targets if t not in TARGETS]
        if not self.targets or unknown or len(set(self.targets)) != len(self.targets):
            raise ValueError(
                f"vera.targets must be distinct names from {', '.join(TARGETS)}, got {', '.join(self.targets) or '()'}"
            )

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        if hasattr(model, SHARED):
            raise ValueError("the model already has VeRA")
        layers = adapted_layers(model, arch, self.name, self.targets)
        dims = [_dims(get_module(block, path), where) for block, path, where, _ in layers]
        weight = get_module(layers[0][0], layers[0][1]).weight
        shared = VeRAProjections(self.r, max(d for d, _ in dims), max(d for _, d in dims), self.projection_seed,
                                 weight.device, weight.dtype)
        setattr(model, SHARED, shared)
        for block, path, _, slices in layers:
            layer = get_module(block, path)
            if isinstance(layer, nn.Linear) and slices is None:
                new = VeRALinear(layer, shared, self.r, self.d_initial, self.dropout)
            elif isinstance(layer, Conv1D):
                new = VeRAConv1D(layer, shared, self.r, self.d_initial, self.dropout,
                                 *((3, slices) if slices else (1, (0,))))
            else:
                raise UnsupportedFamily(f"vera: cannot adapt a fused slice of {type(layer).__name__}")
            set_module(block, path, new)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
