"""Bottleneck adapters: Houlsby et al. (2019), Pfeiffer et al. (2021), Lin et al. (2020), and AdapterDrop
(Rücklé et al., 2021).

One adapter is A(z) = W_up act(W_down norm(z)) with W_down: d -> b and W_up: b -> d (both with bias); `norm` is a
LayerNorm of its own for Lin et al.'s adapter and the identity otherwise.

Placement, per block, given by the family's Arch record (no family branches here). It follows AdapterHub's
bottleneck layer (adapters `methods/modeling.py` Adapter.pre_forward / post_forward, with the flags of
`SeqBnConfig` and `DoubleSeqBnConfig`) and the LoRA repository's own RoBERTa adapters (examples/NLU
`modeling_roberta.py`, RobertaSelfOutput / RobertaOutput), which agree. With h a sublayer's output after its
dropout, x the sublayer's input (the residual) and LN the block's own LayerNorm:

- houlsby:  after the attention and after the FFN, inside the residual: LN(h + A(h) + x) on post-LN encoders,
            x + h + A(h) on GPT-2. The adapter reads the output of `arch.attn_dropout` / `arch.ffn_dropout`
            (dense -> dropout -> adapter, as both sources run it). Swish by default.
- pfeiffer: after the FFN only (original_ln_before, residual_before_ln, original_ln_after): the adapter reads
            LN(h + x), its output is added to h, and the block's LayerNorm is applied again:
            LN(h + A(LN(h + x)) + x) = LN(s + A(LN(s))) with s = h + x, the input of `arch.ffn_norm`. A pre-LN block
            (GPT-2, `ffn_norm` None) has no LayerNorm there; AdapterHub then computes s + A(s) on the block's
            output s = x + h. Relu by default.
- lin:      on the output s of the whole block: s + A(LN_own(s)) (2 d more parameters per adapter); relu.

An adapter is a child module of the module whose output it reads (its "host": a dropout, a LayerNorm or the
block) and is applied by a forward hook on that host, so the pretrained parameter names do not change. Parameters
per adapter: d b + b + b d + d (+ 2 d for lin); the counts in recipes.md section 1 follow from that.

Initialisation (`init`):
- "zero_up" (default, ours): W_down ~ N(0, 0.01^2), W_up and both biases 0, so a freshly adapted model computes
  exactly what the pretrained one does;
- "bert": every adapter Linear ~ N(0, 0.02^2), biases 0. This is AdapterHub's default (`init_weights="bert"`,
  `init_bert_weights`) and what the LoRA repository's adapters got (its fork's `_init_weights` covers every
  nn.Linear of the model at construction; the adapters are missing from the checkpoint and keep it). The
  adapted model then differs from the pretrained one at step 0.
Lin's own LayerNorm starts at weight 1, bias 0 in both.

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
PLACEMENT = {"houlsby": ("attn_dropout", "ffn_dropout"), "pfeiffer": ("ffn_norm",), "lin": ("block",)}
INITS = ("zero_up", "bert")
ZERO_UP_DOWN_STD = 1e-2   # init="zero_up": std of W_down; W_up and the biases start at zero
BERT_STD = 0.02           # init="bert": std of every adapter weight (BERT's initializer_range); biases zero


class AdapterDropGate(nn.Module):
    """Decides which layers' adapters are skipped in the current forward pass. No parameters.

    `resample` runs as a forward pre-hook of the backbone, so one draw covers every layer of one forward pass
    (and a gradient-checkpointing recompute of a layer sees the same draw). The draws come from the gate's own
    generator, seeded from the seed torch's default generator was given when the gate was made: processes that
    train one model data-parallel (each with its own dropout stream) skip the same layers in every step.
    """

    def __init__(self, n: int, random: bool, at_eval: bool):
        super().__init__()
        self.n, self.random, self.at_eval = n, random, at_eval
        self.current = n                      # layers 0 .. current-1 skip their adapters in training
        self.generator = torch.Generator().manual_seed(torch.initial_seed())

    def resample(self, module: nn.Module, args) -> None:
        if self.training and self.random:
            self.current = int(torch.randint(0, self.n + 1, (), generator=self.generator))
        else:
            self.current = self.n

    def skips(self, layer: int) -> bool:
        if self.training:
            return layer < self.current
        return self.at_eval and layer < self.n

    def extra_repr(self) -> str:
        return f"n={self.n}, random={self.random}, at_eval={self.at_eval}"


class BottleneckAdapter(MethodModule):
    """A(z) = up(act(down(norm(z)))), applied to its host's output by `hook` (a forward hook of the host).

    `renorm=False`: the host's output y becomes y + A(y). `renorm=True` (the host is the block's LayerNorm, y =
    LN(s)): y becomes LN(s + A(y)), the same LayerNorm applied again (Pfeiffer's placement).
    """

    def __init__(self, d: int, bottleneck: int, activation: str, layer_norm: bool, layer: int,
                 gate: AdapterDropGate | None, init: str = "zero_up", renorm: bool = False, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.layer, self.renorm = layer, renorm
        self.norm = nn.LayerNorm(d, **kw) if layer_norm else None
        self.down = nn.Linear(d, bottleneck, **kw)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, d, **kw)
        self.gate = gate                      # shared, parameterless
        with torch.no_grad():
            if init == "bert":
                nn.init.normal_(self.down.weight, std=BERT_STD)
                nn.init.normal_(self.up.weight, std=BERT_STD)
            else:
                nn.init.normal_(self.down.weight, std=ZERO_UP_DOWN_STD)
                nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.bias)

    def delta(self, z: torch.Tensor) -> torch.Tensor:
        """A(z), without the residual."""
        return self.up(self.act(self.down(self.norm(z) if self.norm is not None else z)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.delta(h)

    def hook(self, host: nn.Module, args, output):
        if self.gate is not None and self.gate.skips(self.layer):
            return output
        if self.renorm:                          # host = the block's LayerNorm, called as LN(h + x)
            if len(args) != 1 or not isinstance(output, torch.Tensor):
                raise TypeError(f"pfeiffer adapter: expected {type(host).__name__} called on one tensor")
            return host.forward(args[0] + self.delta(output))    # .forward: the host's hooks do not run again
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
    init: str = "zero_up"                 # zero_up (ours: identity at init) | bert (AdapterHub, LoRA repo)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"adapter.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if isinstance(self.bottleneck, bool) or not isinstance(self.bottleneck, int) or self.bottleneck < 1:
            raise ValueError(f"adapter.bottleneck must be an integer >= 1, got {self.bottleneck!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(
                f"adapter.activation must be one of {', '.join(ACTIVATIONS)} or None, got {self.activation!r}"
            )
        if self.init not in INITS:
            raise ValueError(f"adapter.init must be one of {', '.join(INITS)}, got {self.init!r}")
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
                renorm = field == "ffn_norm" and arch.ffn_norm is not None
                if field == "ffn_norm" and not renorm:
                    field = "block"               # pre-LN block: no LayerNorm over h + x, the block's output is s
                if field != "block" and getattr(arch, field) is None:
                    raise UnsupportedFamily(f"adapter: {self.kind} needs arch.{field}, unknown for {arch.family}")
                host = block if field == "block" else get_module(block, getattr(arch, field))
                if hasattr(host, "adapter"):
                    raise UnsupportedFamily(f"adapter: {arch.blocks}.{i} {field} already has an adapter")
                device, dtype = _device_dtype(block)
                adapter = BottleneckAdapter(d, self.bottleneck, self.act, self.kind == "lin", i, gate, self.init,
                                            renorm, device, dtype)
                adapter.train(host.training)
                host.add_module("adapter", adapter)
                host.register_forward_hook(adapter.hook)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
