"""The key/value cache of our beam search and the attention of one decoding step (`bench.decode.beam`).

Per layer the cache holds
  * the context of each input, shared by its beams: the methods' keys/values (prefix tuning's, one copy for all
    inputs), the soft prompt and the source, as one tensor of keys stored transposed, (inputs, heads, d_head,
    context), and one of values, (inputs, heads, context, d_head), both contiguous, so that a step multiplies the
    beams' queries with them without a copy;
  * the generated tokens' keys and values in preallocated buffers, keys (inputs, heads, d_head, steps x beams)
    and values (inputs, heads, steps x beams, d_head): step t writes the keys/values of the token each beam slot
    b runs at column t x beams + b, and nothing is ever moved. A beam's history is a path through these slots:
    `ancestors` (inputs, beams, steps) names, for every beam and earlier step, the slot that holds its token
    there, and a beam reorder only reorders that small index. The attention of a step multiplies each beam's
    query with the generated keys of all beams of its input (one matmul per input and head), picks each beam's
    own path from the scores (`take_along_dim`), and multiplies its probabilities, scattered back onto the
    slots, with the values: num_beams times the arithmetic of the generated part (small next to the source),
    no copy of any history.
The attention of a step runs as the attention implementation `peft_bench_beam` (registered with transformers'
attention interface) while `decoding_steps` is active; everything else in the forward is the model's own.
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
        # ctx_k, ctx_v: (inputs, heads, context, d_head), any strides
        self.ctx_kt = ctx_k.transpose(-1, -2).contiguous()            # (inputs, heads, d_head, context)
        self.ctx_v = ctx_v.contiguous()
        inputs, heads, _, dh = ctx_k.shape
        self.gen_kt = ctx_k.new_empty((inputs, heads, dh, steps * beams))
        self.gen_v = ctx_k.new_empty((inputs, heads, steps * beams, dh))

    def keep_inputs(self, keep: torch.Tensor) -> None:
        self.ctx_kt, self.ctx_v = self.ctx_kt.index_select(0, keep), self.ctx_v.index_select(0, keep)
        self.gen_kt, self.gen_v = self.gen_kt.index_select(0, keep), self.gen_v.index_select(0, keep)


def context_layers(model, cache_layers, key_mask: torch.Tensor, beams: int, steps: int) -> tuple[list[Layer],
                                                                                                  torch.Tensor]:
    """Layers from the prefill's cache (one row per input, prompt + source positions, as `key_mask` marks them
    real) with the methods' extra keys/values put in front, and the additive bias of the context keys
    ((inputs, 1, 1, context): 0 on real keys, -inf on padding) in the keys' dtype."""
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
    dtype = layers[0].ctx_v.dtype
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    bias.masked_fill_(~key_mask, float("-inf"))
    if extra:
        bias = torch.cat([bias.new_zeros(inputs, extra), bias], dim=1)
    return layers, bias[:, None, None, :]


@dataclass
class Step:
    layers: list[Layer]
    ctx_bias: torch.Tensor           # (inputs, 1, 1, context): 0 where a context key is real, -inf on padding
    beams: int
    t: int                           # the step this forward runs (its tokens go to slots t x beams + b)
    path: torch.Tensor               # (inputs, 1, beams, t + 1, 1): slot of each beam's token at steps 0..t


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
               **kwargs):
    """Attention of the new token of every beam over [context; its generated tokens so far; itself]."""
    step: Step = _LOCAL.step
    layer = step.layers[module.layer_idx]
    rows, heads, _, dh = query.shape                                   # query: (rows, heads, 1, d_head)
    beams, t = step.beams, step.t
    inputs, width = rows // beams, (step.t + 1) * step.beams
    columns = slice(t * beams, width)
    layer.gen_kt[:, :, :, columns] = key.view(inputs, beams, heads, dh).permute(0, 2, 3, 1)
    layer.gen_v[:, :, columns] = value.view(inputs, beams, heads, dh).transpose(1, 2)
    scale = dh ** -0.5 if scaling is None else scaling
    q = query.view(inputs, beams, heads, dh).transpose(1, 2)             # (inputs, heads, beams, d_head)
    ctx = torch.matmul(q, layer.ctx_kt)                                 # (inputs, heads, beams, context)
    every = torch.matmul(q, layer.gen_kt[..., :width])                  # (inputs, heads, beams, width)
    gen = torch.take_along_dim(every.view(inputs, heads, beams, t + 1, beams), step.path, dim=-1)
    c = ctx.shape[-1]
    scores = torch.cat([ctx, gen.view(inputs, heads, beams, t + 1)], dim=-1).mul_(scale)
    scores[..., :c] += step.ctx_bias
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs[..., :c], layer.ctx_v)                     # (inputs, heads, beams, d_head)
    on_slots = probs.new_zeros((inputs, heads, beams, t + 1, beams))
    on_slots.scatter_(-1, step.path.expand(inputs, heads, beams, t + 1, 1), probs[..., c:, None])
    out += torch.matmul(on_slots.view(inputs, heads, beams, width), layer.gen_v[:, :, :width])
    return out.transpose(1, 2).reshape(rows, 1, heads, dh), None        # (rows, 1, heads, d_head)


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
