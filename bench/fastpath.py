"""The CPU training fast path: the same model, with dropout masks and the attention under dropout computed
more cheaply than torch does on a CPU.

What a profile of a bf16 training step on a CPU showed (docs/perf.md): torch draws every dropout mask with
`bernoulli_` (~10 ns per element on one thread, a fifth of a MiniLM LoRA step), and
`scaled_dot_product_attention` with dropout on takes its math path, which upcasts queries, keys and values to
fp32 and adds masking work of its own (`_safe_softmax`). While `cpu_fast_training(model)` is active:

- every `nn.Dropout` of the model (the model's own and the methods') draws its mask from 16 random bits per
  element (`drop_mask`: the element is dropped when a uniform 16-bit integer falls below round(p * 2^16), so the
  drop rate is p to within 2^-17: 0.1000061 for p = 0.1) and scales the kept elements by 1 / (1 - p), as
  `nn.Dropout` does; the mask is kept for the backward pass (the generator's draws are most of a mask's
  cost: 16 bits per element need half the draws of 32);
- attention that goes through transformers' attention interface (BERT, RoBERTa, GPT-2; prefix tuning's wrapper
  included) runs `train_attention` when the module is training with a dropout rate above 0: scores in fp32
  from the bf16 (or fp32) queries and keys, the mask, a softmax in fp32, the dropout above, the probabilities
  cast back to the values' dtype times the values. In eval mode, or without dropout, the model's own implementation
  (sdpa or eager) runs unchanged.

The random stream differs from torch's (the masks come from a PCG64 generator seeded by one draw of torch's
default generator, not from `bernoulli_`): a seeded run is reproducible, but its masks are not the ones
`nn.Dropout` would have drawn. Eval-mode outputs are those of the model's own implementation, bit for bit. On a
GPU nothing changes: CUDA's dropout is fused and its SDPA kernels support dropout.
"""
from __future__ import annotations

import math
import sys
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.allocator import retain_freed_memory

IMPL_PREFIX = "peft_bench_train_"     # + the base implementation (sdpa | eager)
BASE_IMPLS = ("sdpa", "eager")
_TWO16 = 2 ** 16
ATTN = "bf16"


_LOW_ONES = {torch.bfloat16: 0x3F80, torch.float16: 0x3C00}   # bit patterns of 1.0 in 16-bit float types


def seeded_rng(generator: torch.Generator | None = None) -> np.random.PCG64:
    """The bit generator dropout masks are drawn from, seeded by one draw of torch's (default) generator, so
    that a run seeded with `torch.manual_seed` draws the same masks again."""
    seed = int(torch.randint(0, 2 ** 63 - 1, (1,), generator=generator))
    return np.random.PCG64(seed)


def _keep(n: int, p: float, rng: np.random.PCG64) -> np.ndarray:
    """n booleans, False (dropped) with probability round(p * 2^16) / 2^16 each: an unsigned 16-bit draw below
    that threshold (four draws from every 64-bit output of the generator)."""
    bits = rng.random_raw((n + 3) // 4).view(np.uint16)[:n]
    return bits >= np.uint16(min(round(p * _TWO16), _TWO16 - 1))


def drop_mask(shape, p: float, rng: np.random.PCG64) -> torch.Tensor:
    """A bool tensor of `shape`, True where an element is dropped (the draw `keep_multiplier` makes)."""
    return torch.from_numpy(~_keep(math.prod(int(s) for s in shape), p, rng)).view(shape)


def keep_multiplier(shape, p: float, dtype: torch.dtype, rng: np.random.PCG64) -> torch.Tensor:
    """What `dropout` multiplies by: 0 where an element is dropped (the draw of `drop_mask` from the same
    generator state), else 1 / (1 - p) in fp32, or 1 in a 16-bit type (the scale is then applied in fp32
    arithmetic, not rounded to bf16)."""
    keep = _keep(math.prod(int(s) for s in shape), p, rng)
    if dtype == torch.float32:
        mult = torch.from_numpy(np.multiply(keep, np.float32(1.0 / (1.0 - p)), dtype=np.float32))
    elif dtype in _LOW_ONES:
        mult = torch.from_numpy(np.multiply(keep, np.uint16(_LOW_ONES[dtype]), dtype=np.uint16)).view(dtype)
    else:
        mult = torch.from_numpy(keep).to(dtype).mul_(1.0 / (1.0 - p))
    return mult.view(shape)


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, rng: np.random.PCG64):
        mult = keep_multiplier(x.shape, p, x.dtype, rng)
        ctx.save_for_backward(mult)
        ctx.scale = 1.0 / (1.0 - p) if x.dtype in _LOW_ONES else None
        out = x * mult
        return out if ctx.scale is None else out.mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mult,) = ctx.saved_tensors
        out = grad * mult
        return (out if ctx.scale is None else out.mul_(ctx.scale)), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True, rng: np.random.PCG64 | None = None) -> torch.Tensor:
    """`F.dropout(x, p, training)` with the mask of `keep_multiplier` drawn from `rng` (None: a generator
    seeded from torch's default one). On a device other than the CPU: `F.dropout` itself."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    return _Dropout.apply(x, p, rng if rng is not None else seeded_rng())


class FastDropout(nn.Dropout):
    """nn.Dropout drawing its mask with `keep_multiplier` from its model's fast-path generator (an instance's
    class is swapped to this while `cpu_fast_training` is on)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = getattr(self, STATE, None)
        return dropout(x, self.p, self.training, state.rng if state is not None else None)


# ---------------------------------------------------------------------------------------------- attention


def _base_function(module: nn.Module, base: str):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    if base == "eager":
        return eager
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return ALL_ATTENTION_FUNCTIONS.get_interface(base, eager)


class _State:
    """One model's fast-path state: the generator its dropout masks are drawn from, and what one forward pass
    computes once for several modules: the additive form of an attention mask (one mask object serves every
    layer) and the low-precision copy of an activation (one hidden state feeds the query, key and value
    projections). The memo is cleared at the start of every forward pass of the model."""

    def __init__(self, rng: np.random.PCG64):
        self.rng = rng
        self.items: dict[tuple, tuple] = {}

    def get(self, kind: str, tensor: torch.Tensor, make):
        key = (kind, id(tensor))
        hit = self.items.get(key)
        if hit is not None and hit[0] is tensor:
            return hit[1]
        value = make(tensor)
        self.items[key] = (tensor, value)     # holding the tensor keeps its id from being reused
        return value

    def clear(self, *_args, **_kwargs) -> None:
        self.items.clear()


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask (True = visible) as 0 / the dtype's lowest value, added to the scores."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def train_attention(module: nn.Module, query, key, value, attention_mask, dropout: float = 0.0,
                    scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """Attention function registered as `peft_bench_train_<base>` (base = sdpa or eager: its masks are built as
    for the base). Training with dropout > 0: eager attention with both matmuls in the queries' dtype (bf16
    under bf16 autocast, as autocast runs eager attention) and the scores in fp32 from the first matmul on: the
    mask (bool, True = visible, or additive; no mask: causal when sdpa would apply causality itself), softmax
    and `dropout` as above on the probabilities, which are cast to the values' dtype for the second matmul
    (transformers' eager attention also takes its softmax in fp32; torch's CPU softmax is ~4x slower on bf16
    than on fp32 here).
    Otherwise, or with arguments it does not handle (grouped keys, a position bias, softcapping, attention
    weights asked for), the base implementation."""
    impl = module.config._attn_implementation or ""
    base = impl.rsplit(IMPL_PREFIX, 1)[1] if IMPL_PREFIX in impl else None   # under a prefix wrapper too
    unsupported = (getattr(module, "num_key_value_groups", 1) > 1 or kwargs.get("position_bias") is not None
                   or kwargs.get("softcap") is not None or kwargs.get("output_attentions", False))
    if not (module.training and dropout > 0) or unsupported or base is None:
        return _base_function(module, base or "eager")(module, query, key, value, attention_mask, dropout=dropout,
                                                        scaling=scaling, is_causal=is_causal, **kwargs)
    state: _State | None = getattr(module, STATE, None)
    q_len, k_len = query.shape[2], key.shape[2]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out_dtype = query.dtype
    dtype = torch.float32 if ATTN == "fp32" else query.dtype
    f32 = torch.float32
    with torch.autocast(query.device.type, enabled=False):
        cf = torch.contiguous_format
        query, key, value = (t.to(dtype, memory_format=cf) for t in (query, key, value))
        scores = torch.matmul(query * scale, key.transpose(-1, -2)).to(f32)
        mask = attention_mask
        if mask is None and base == "sdpa":     # sdpa's own rule for applying causality itself
            causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
            if causal and q_len > 1:
                mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril()
        if mask is not None:
            if mask.dtype == torch.bool:
                mask = state.get("mask", mask, lambda m: _additive(m, f32)) if state else _additive(mask, f32)
            scores = scores.add_(mask)
        probs = _Dropout.apply(F.softmax(scores, dim=-1), dropout, state.rng if state else seeded_rng())
        out = torch.matmul(probs.to(value.dtype), value).to(out_dtype)
    return out.transpose(1, 2).contiguous(), None


def _register(base: str) -> str:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    name = IMPL_PREFIX + base
    AttentionInterface.register(name, train_attention)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


# ---------------------------------------------------------------------------------------- activation casts


class _SharedCast(torch.autograd.Function):
    """`x.to(dtype)` for one more consumer of an activation already cast once (`low`): the forward reuses that
    copy, the backward casts this consumer's gradient back to x's dtype on its own, as autocast's per-consumer
    cast does, so gradients are accumulated in x's precision exactly as without the memo."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, low: torch.Tensor):
        ctx.dtype = x.dtype
        return low.view_as(low)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad.to(ctx.dtype), None


def _cast_input(state: _State):
    """A forward pre-hook of a matmul layer: under CPU autocast, an fp32 input is cast to the autocast dtype
    once per forward pass for every layer that reads it (autocast would cast it again in each)."""

    def hook(module, args):
        if not args or not torch.is_autocast_enabled("cpu"):
            return None
        x = args[0]
        dtype = torch.get_autocast_dtype("cpu")
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.device.type != "cpu":
            return None
        first = state.items.get(("cast", id(x)))
        if first is not None and first[0] is x:
            return (_SharedCast.apply(x, first[1]), *args[1:])
        return (state.get("cast", x, lambda t: t.to(dtype)), *args[1:])

    return hook


# ------------------------------------------------------------------------------------------------ switch

STATE = "_peft_bench_fast"          # attribute of a module (attention, dropout) pointing at its model's _State


def _devices(model: nn.Module) -> set[str]:
    return {p.device.type for p in model.parameters()}


@contextmanager
def cpu_fast_training(model: nn.Module):
    """While active (a model on the CPU): the model's dropout modules draw cheaper masks, its attention under
    dropout runs `train_attention`, and under autocast an activation read by several matmul layers is cast
    once; restored on exit, also after an error. A model on another device is left as it is, and so is a model
    with gradient checkpointing on (its recomputed forward pass would draw other masks: torch's checkpointing
    restores torch's generator, not this one). On glibc the process also keeps freed memory from then on
    (`bench.allocator.retain_freed_memory`: a step's activations reuse the last step's pages instead of faulting
    in fresh ones); that is not undone on exit."""
    if not applies_to(model):
        yield model
        return
    retain_freed_memory()
    from methods.prefix import rebase_attention
    from transformers.pytorch_utils import Conv1D

    state = _State(seeded_rng())
    swapped = [m for m in model.modules() if type(m) is nn.Dropout]
    for m in swapped:
        m.__class__ = FastDropout
    saved = [(c, c._attn_implementation) for c in _attention_configs(model)]
    for config, impl in saved:
        new = rebase_attention(impl, _register)
        if new is not None:
            config._attn_implementation = new
    holders = [m for m in model.modules() if (hasattr(m, "config") or isinstance(m, FastDropout))
               and not hasattr(m, STATE)]
    for m in holders:
        setattr(m, STATE, state)
    hooks = [model.register_forward_pre_hook(state.clear)]
    hooks += [m.register_forward_pre_hook(_cast_input(state)) for m in model.modules()
              if isinstance(m, (nn.Linear, Conv1D))]
    try:
        yield model
    finally:
        for h in hooks:
            h.remove()
        state.clear()
        for m in holders:
            delattr(m, STATE)
        for m in swapped:
            m.__class__ = nn.Dropout
        for config, impl in saved:
            config._attn_implementation = impl


def applies_to(model: nn.Module) -> bool:
    """Whether `cpu_fast_training` changes anything for this model: every parameter on the CPU and no gradient
    checkpointing."""
    return _devices(model) == {"cpu"} and not _checkpointing(model)


def _checkpointing(model: nn.Module) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def _attention_configs(model: nn.Module) -> list:
    """The distinct configs the model's attention modules dispatch on (those with transformers' interface)."""
    out, seen = [], set()
    for m in model.modules():
        config = getattr(m, "config", None)
        if config is None or id(config) in seen or not hasattr(config, "_attn_implementation"):
            continue
        seen.add(id(config))
        out.append(config)
    return out
