"""BitFit (Zaken et al.): only bias terms (and the head) are trained."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from methods.base import Arch, UnsupportedFamily, blocks_of, freeze_all, get_module, head_modules, unfreeze_head

# subset name -> which block-relative Arch paths it trains ("all" and "layernorm" are handled apart)
GROUPS = {
    "all": (),                      # every bias of the backbone, LayerNorm and embedding LayerNorm included
    "query": ("q",),
    "key": ("k",),
    "value": ("v",),
    "qkv": ("qkv",),                # q, k and v biases (GPT-2: the fused c_attn bias)
    "attn_out": ("attn_out",),
    "intermediate": ("ffn_in",),    # the FFN up-projection bias (BitFit's b_m2)
    "output": ("ffn_out",),         # the FFN down-projection bias
    "layernorm": (),                # every LayerNorm bias (embedding, blocks, final)
}


def _bias(module: nn.Module) -> nn.Parameter | None:
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, nn.Parameter) else None


@dataclass(frozen=True)
class BitFit:
    """Train bias terms only: all of them (default) or a subset such as ("query", "intermediate")."""

    name: ClassVar[str] = "bitfit"
    subset: tuple[str, ...] = ("all",)   # names from bitfit.GROUPS

    def __post_init__(self) -> None:
        subset = tuple(self.subset)
        object.__setattr__(self, "subset", subset)
        if not subset:
            raise ValueError(f"bitfit.subset must name at least one group of {', '.join(GROUPS)}")
        unknown = [s for s in subset if s not in GROUPS]
        if unknown:
            raise ValueError(f"bitfit.subset: unknown group(s) {', '.join(unknown)}; accepted: {', '.join(GROUPS)}")

    def _paths(self, arch: Arch, group: str) -> list[str]:
        out = []
        for field in GROUPS[group]:
            if field == "qkv":
                paths = [arch.qkv] if arch.qkv else [arch.q, arch.k, arch.v]
            else:
                paths = [getattr(arch, field)]
            if any(p is None for p in paths):
                raise UnsupportedFamily(
                    f"bitfit subset {group!r} is not available for family {arch.family} "
                    f"(its q, k, v share one fused projection {arch.qkv!r}; use 'qkv')"
                )
            out.extend(paths)
        return out

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        head = {id(m) for h in head_modules(model, arch) for m in h.modules()}
        if not any(_bias(m) is not None for m in model.modules() if id(m) not in head):
            raise UnsupportedFamily(f"bitfit: {arch.family} has no bias terms (its projections and norms are "
                                    f"bias-free); BitFit needs a family with biases")
        freeze_all(model)
        for group in self.subset:
            if group == "all":
                for module in model.modules():
                    if id(module) not in head and _bias(module) is not None:
                        _bias(module).requires_grad_(True)
            elif group == "layernorm":
                norms = [m for m in model.modules()
                         if id(m) not in head and isinstance(m, nn.LayerNorm) and _bias(m) is not None]
                if not norms:
                    raise UnsupportedFamily(f"bitfit: {arch.family} has no LayerNorm biases "
                                            f"(subset 'layernorm' is not available for this family)")
                for module in norms:
                    _bias(module).requires_grad_(True)
            else:
                for block in blocks_of(model, arch):
                    for path in self._paths(arch, group):
                        bias = _bias(get_module(block, path))
                        if bias is None:
                            raise UnsupportedFamily(f"bitfit: {arch.family} {path} has no bias "
                                                    f"(subset {group!r} is not available for this family)")
                        bias.requires_grad_(True)
        unfreeze_head(model, arch)
        return model
