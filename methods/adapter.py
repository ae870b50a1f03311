"""Bottleneck adapters: Houlsby et al. (2019), Pfeiffer et al. (2021), Lin et al. (2020), and AdapterDrop
(Rücklé et al., 2021).

One adapter maps h -> h + W_up act(W_down norm(h)) with W_down: d -> b and W_up: b -> d (both with bias);
`norm` is a LayerNorm of its own for Lin et al.'s adapter and the identity otherwise. W_up and both biases start
at zero (W_down ~ N(0, 0.01^2), AdapterHub's init), so a freshly adapted model computes exactly what the
pretrained one does.

Placement, per block, given by the family's Arch record (no family branches here):

- houlsby:  after the attention output projection (`arch.attn_out`) and after the FFN output (`arch.ffn_out`),
            i.e. before the block's residual add (and LayerNorm, for post-LN encoders); swish by default.
- pfeiffer: one adapter after the FFN output (`arch.ffn_out`); relu by default.
- lin:      one adapter on the output of the whole block (after its residual add), with its own LayerNorm
            (2 d more parameters per adapter); relu by default.

An adapter is a child module of the layer whose output it transforms (its "host") and is applied by a forward
hook on that host, so the pretrained parameter names do not change. Parameters per adapter:
d b + b + b d + d (+ 2 d for lin); the counts in recipes.md section 1 follow from that.

AdapterDrop (`drop_lowest = n > 0`): during training the adapters of the lowest layers are skipped. With
`drop_random=True` (default; "robust AdapterDrop" of the paper) a number m is drawn uniformly from {0, ..., n}
once per forward pass of the backbone (torch's global RNG) and the adapters of layers 0 .. m-1 are skipped; with
`drop_random=False` the lowest n layers are always skipped ("specialised AdapterDrop"). In eval mode the lowest n
layers' adapters are skipped when `drop_at_eval` is true (default: the inference speed-up AdapterDrop is for),
and all adapters run otherwise. Every layer keeps its adapters, so the parameter counts do not depend on n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from methods.base import (
    Arch, MethodModule, UnsupportedFamily, blocks_of, d_model, freeze_all, get_module, unfreeze_head,
    unfreeze_method_modules,
)

KINDS = ("houlsby", "pfeiffer", "lin")
DEFAULT_ACTIVATION = {"houlsby": "swish", "pfeiffer": "relu", "lin": "relu"}
ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}
# kind -> the hosts of its adapters, as Arch field names ("block" = the block itself)
PLACEMENT = {"houlsby": ("attn_out", "ffn_out"), "pfeiffer": ("ffn_out",), "lin": ("block",)}
DOWN_INIT_STD = 1e-2      # std of W_down at init (AdapterHub); W_up and biases start at zero


class AdapterDropGate(nn.Module):
    """Decides which layers' adapters are skipped in the current forward pass. No parameters.

    `resample` runs as a forward pre-hook of the backbone, so one draw covers every layer of one forward pass
    (and a gradient-checkpointing recompute of a layer sees the same draw).
    """

    def __init__(self, n: int, random: bool, at_eval: bool):
        super().__init__()
        self.n, self.random, self.at_eval = n, random, at_eval
        self.current = n                      # layers 0 .. current-1 skip their adapters in training

    def resample(self, module: nn.Module, args) -> None:
        if self.training and self.random:
            self.current = int(torch.randint(0, self.n + 1, ()).item())
        else:
            self.current = self.n

    def skips(self, layer: int) -> bool:
        if self.training:
            return layer < self.current
        return self.at_eval and layer < self.n

    def extra_repr(self) -> str:
        return f"n={self.n}, random={self.random}, at_eval={self.at_eval}"


class BottleneckAdapter(MethodModule):
    """h -> h + up(act(down(norm(h)))); applied to its host's output by `hook` (a forward hook of the host)."""

    def __init__(self, d: int, bottleneck: int, activation: str, layer_norm: bool, layer: int,
                 gate: AdapterDropGate | None, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.layer = layer
        self.norm = nn.LayerNorm(d, **kw) if layer_norm else None
        self.down = nn.Linear(d, bottleneck, **kw)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d, **kw)
        self.gate = gate                      # shared, parameterless
        with torch.no_grad():
            nn.init.normal_(self.down.weight, std=DOWN_INIT_STD)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.norm(h) if self.norm is not None else h
        return h + self.up(self.act(self.down(z)))

    def hook(self, host: nn.Module, args, output):
        if self.gate is not None and self.gate.skips(self.layer):
            return output
        if isinstance(output, tuple):           # blocks that return (hidden_states, extras...)
            return (self(output[0]),) + tuple(output[1:])
        return self(output)


def _device_dtype(module: nn.Module):
    for p in module.parameters():
        return p.device, p.dtype
    return None, None


@dataclass(frozen=True)
class Adapter:
    """Bottleneck adapters in every block; see the module docstring for placement and AdapterDrop."""

    name: ClassVar[str] = "adapter"
    kind: str = "houlsby"                 # houlsby | pfeiffer | lin
    bottleneck: int = 64                  # b, the adapter's hidden size
    activation: str | None = None         # None: houlsby swish, pfeiffer relu, lin relu
    drop_lowest: int = 0                  # AdapterDrop: skip adapters of the lowest n layers (0 = off)
    drop_random: bool = True              # draw m in {0..n} per forward pass (robust AdapterDrop); else always n
    drop_at_eval: bool = True             # in eval mode, skip the lowest n layers' adapters

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"adapter.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if isinstance(self.bottleneck, bool) or not isinstance(self.bottleneck, int) or self.bottleneck < 1:
            raise ValueError(f"adapter.bottleneck must be an integer >= 1, got {self.bottleneck!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(
                f"adapter.activation must be one of {', '.join(ACTIVATIONS)} or None, got {self.activation!r}"
            )
        if isinstance(self.drop_lowest, bool) or not isinstance(self.drop_lowest, int) or self.drop_lowest < 0:
            raise ValueError(f"adapter.drop_lowest must be an integer >= 0, got {self.drop_lowest!r}")

    @property
    def act(self) -> str:
        return self.activation if self.activation is not None else DEFAULT_ACTIVATION[self.kind]

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        blocks = blocks_of(model, arch)
        if self.drop_lowest > len(blocks):
            raise ValueError(f"adapter.drop_lowest={self.drop_lowest} exceeds the model's {len(blocks)} layers")
        gate = None
        if self.drop_lowest > 0:
            gate = AdapterDropGate(self.drop_lowest, self.drop_random, self.drop_at_eval)
            get_module(model, arch.backbone).register_forward_pre_hook(gate.resample)
        d = d_model(model, arch)
        for i, block in enumerate(blocks):
            for field in PLACEMENT[self.kind]:
                host = block if field == "block" else get_module(block, getattr(arch, field))
                if hasattr(host, "adapter"):
                    raise UnsupportedFamily(f"adapter: {arch.blocks}.{i} {field} already has an adapter")
                device, dtype = _device_dtype(host)
                adapter = BottleneckAdapter(d, self.bottleneck, self.act, self.kind == "lin", i, gate, device, dtype)
                host.add_module("adapter", adapter)
                host.register_forward_hook(adapter.hook)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
