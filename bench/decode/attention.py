"""The key/value cache of our beam search and the attention of one decoding step (`bench.decode.beam`).

Per layer the cache is one buffer of keys, stored transposed, (inputs, kv_heads, d_head, context + steps x beams),
and one of values, (inputs, kv_heads, context + steps x beams, d_head), at the width of the key/value heads
(under grouped-query attention, as Llama, Mistral and Qwen2 run it, fewer than the query heads):
  * the first `context` columns hold each input's context, shared by its beams: the methods' keys/values
    (prefix tuning's), the soft prompt and the source;
  * step t writes the keys/values of the token each beam slot b runs at column context + t x beams + b, and
    nothing is ever moved. A beam's history is a path through these slots: `ancestors` (inputs, beams, steps)
    names, for every beam and earlier step, the slot that holds its token there, and a beam reorder only
    reorders that small index.
A step's attention is then three batched operations per layer: every beam's query (under grouped-query attention
the `groups` query heads that share a key/value head, batched as groups x beams rows) against all filled columns of
its input (`baddbmm`, with an additive bias that is 0 on the beam's own path and real context keys and -inf
elsewhere, built once per step for all layers), the softmax, and the product with the values (off-path columns
weigh exactly 0). The generated part costs num_beams times its arithmetic, small next to the source; no history
is copied. It runs as the attention implementation `peft_bench_beam` (registered with transformers' attention
interface) while `decoding_steps` is active; everything else in the forward is the model's own.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from methods.decoding import attention_kv, inputs_cached

IMPL = "peft_bench_beam"
_LOCAL = threading.local()        # the step in progress (read by `_attention`)


class Layer:
    """One layer's keys and values (see the module docstring)."""

    def __init__(self, ctx_k: torch.Tensor, ctx_v: torch.Tensor, beams: int, steps: int):
        inputs, heads, context, dh = ctx_k.shape                      # ctx_k, ctx_v: any strides
        self.context = context
        self.kt = ctx_k.new_empty((inputs, heads, dh, context + steps * beams))
        self.v = ctx_k.new_empty((inputs, heads, context + steps * beams, dh))
        self.kt[..., :context] = ctx_k.transpose(-1, -2)
        self.v[:, :, :context] = ctx_v

    def keep_inputs(self, keep: torch.Tensor, filled: int) -> None:
        """Only inputs `keep` stay; the first `filled` columns are copied."""
        kt = self.kt.new_empty((keep.shape[0], *self.kt.shape[1:]))
        v = self.v.new_empty((keep.shape[0], *self.v.shape[1:]))
        torch.index_select(self.kt[..., :filled], 0, keep, out=kt[..., :filled])
        torch.index_select(self.v[:, :, :filled], 0, keep, out=v[:, :, :filled])
        self.kt, self.v = kt, v


def context_layers(model, cache_layers, key_mask: torch.Tensor, beams: int, steps: int) -> tuple[list[Layer],
                                                                                                  torch.Tensor]:
    """Layers from the prefill's cache (one row per input, prompt + source positions, as `key_mask` marks them
    real) with the methods' extra keys/values put in front, and the additive bias of the context keys
    ((inputs, 1, context): 0 on real keys, -inf on padding) in the keys' dtype."""
    from methods.base import arch_of, blocks_of, get_module

    arch = arch_of(model)
    attns = [get_module(block, arch.attn) for block in blocks_of(model, arch)]
    inputs = key_mask.shape[0]
    layers, extra = [], None
    for attn, cached in zip(attns, cache_layers):
        k, v = cached.keys, cached.values
        if k.shape[2] != key_mask.shape[1]:
            raise RuntimeError(f"cached source has {k.shape[2]} positions, expected {key_mask.shape[1]}")
        kv = attention_kv(attn, k.device, k.dtype)
        if kv is not None:
            pk, pv = (t.expand(inputs, -1, -1, -1) for t in kv)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
            if extra is not None and extra != pk.shape[2]:
                raise RuntimeError("methods add different numbers of key/value positions to different layers")
            extra = pk.shape[2]
        elif extra:
            raise RuntimeError("methods add key/value positions to some layers only")
        layers.append(Layer(k, v, beams, steps))
    dtype = layers[0].v.dtype
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    bias.masked_fill_(~key_mask, float("-inf"))
    if extra:
        bias = torch.cat([bias.new_zeros(inputs, extra), bias], dim=1)
    return layers, bias[:, None, :]


def step_bias(ctx_bias: torch.Tensor, path: torch.Tensor, heads: int, groups: int = 1) -> torch.Tensor:
    """The additive attention bias of step t for every layer, (inputs x heads, groups x beams,
    context + (t+1) x beams), `heads` the key/value heads and `groups` the query heads per key/value head:
    the context's (0 on real keys, -inf on padding) and, on the generated columns, 0 where column
    context + s x beams + path[i, b, s] (the beam's own token at step s) and -inf elsewhere."""
    inputs, beams, steps = path.shape
    gen = ctx_bias.new_full((inputs, beams, steps * beams), float("-inf"))
    columns = path + torch.arange(steps, device=path.device) * beams
    gen.scatter_(-1, columns, 0.0)
    bias = torch.cat([ctx_bias.expand(inputs, beams, ctx_bias.shape[-1]), gen], dim=-1)
    width = bias.shape[-1]
    return bias[:, None, None].expand(inputs, heads, groups, beams, width).reshape(inputs * heads, groups * beams,
                                                                                   width)


@dataclass
class Step:
    layers: list[Layer]
    bias: torch.Tensor               # `step_bias` of this step
    beams: int
    t: int                           # the step this forward runs (its tokens go to slots t x beams + b)


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
               **kwargs):
    """Attention of the new token of every beam over [context; its generated tokens so far; itself].
    `query` (rows, heads, 1, d_head); `key`, `value` (rows, kv_heads, 1, d_head), rows = inputs x beams. Query
    head h reads key/value head h // groups (transformers' `repeat_kv`)."""
    step: Step = _LOCAL.step
    layer = step.layers[module.layer_idx]
    rows, heads, _, dh = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    beams = step.beams
    inputs, start = rows // beams, layer.context + step.t * step.beams
    width = start + beams
    layer.kt[..., start:width] = key.reshape(inputs, beams, kv_heads, dh).permute(0, 2, 3, 1)
    layer.v[:, :, start:width] = value.reshape(inputs, beams, kv_heads, dh).transpose(1, 2)
    scale = dh ** -0.5 if scaling is None else scaling
    q = query.reshape(inputs, beams, kv_heads, groups, dh).permute(0, 2, 3, 1, 4).reshape(inputs * kv_heads,
                                                                                          groups * beams, dh)
    kt = layer.kt.view(inputs * kv_heads, dh, -1)[..., :width]
    scores = torch.baddbmm(step.bias, q, kt, alpha=scale)              # (inputs x kv_heads, groups x beams, width)
    probs = torch.softmax(scores, dim=-1)
    out = torch.bmm(probs, layer.v.view(inputs * kv_heads, -1, dh)[:, :width])
    out = out.view(inputs, kv_heads, groups, beams, dh).permute(0, 3, 1, 2, 4)
    return out.reshape(rows, 1, heads, dh), None


def _no_mask(*args, **kwargs):
    return None


_REGISTERED = []


def _register() -> None:
    if _REGISTERED:
        return
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface
    AttentionInterface.register(IMPL, _attention)
    AttentionMaskInterface.register(IMPL, _no_mask)
    _REGISTERED.append(IMPL)


@contextmanager
def decoding_steps(model):
    """Our attention implementation for the decoding steps (the state of each step set with `set_step`), with
    the methods' input insertions passing through (they are in the cached context); restored on exit."""
    _register()
    config = model.config
    saved = config._attn_implementation
    config._attn_implementation = IMPL
    try:
        with inputs_cached(model):
            yield
    finally:
        config._attn_implementation = saved
        _LOCAL.step = None


def set_step(step: Step) -> None:
    _LOCAL.step = step
