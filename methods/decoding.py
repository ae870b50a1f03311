"""What a decoder's own generation loop needs to know about the methods applied to a model.

A generation loop that keeps its own key/value cache and runs its own attention for the decoding steps (the suite's
batched beam search) must account for what the methods add. These functions answer it, so the loop never reads a
method's attributes by name:

- `base_attention(impl)`: the attention implementation that a method's wrapper (prefix tuning registers
  `peft_bench_prefix_<base>`) delegates to;
- `attention_kv(attn, device, dtype)`: keys and values a method adds to one attention module (the prefix's),
  or None;
- `inserted_positions(model)`: input positions a method inserts in front of the tokens (a decoder's soft prompt),
  which the source's cached keys/values then hold;
- `inputs_cached(model)`: a context in which such insertions pass through (the steps after the source, whose
  inserted positions are already cached);
- `methods.base.position_offset(model)`: the shift of the real tokens' position ids.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from methods.base import method_modules, position_offset
from methods.prefix import IMPL_PREFIX, SLOT
from methods.prompt import SoftPrompt

__all__ = ["attention_kv", "base_attention", "inputs_cached", "inserted_positions", "position_offset"]


def base_attention(impl: str | None) -> str:
    """The attention implementation behind `impl` once a method's wrapper is removed (None -> "eager")."""
    return (impl or "eager").removeprefix(IMPL_PREFIX)


def attention_kv(attn: nn.Module, device, dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Extra keys and values (each (1, heads, positions, d_head)) that methods put in front of `attn`'s own
    keys and values, visible to every query; None when no method adds any."""
    slot = getattr(attn, SLOT, None)
    if slot is None:
        return None
    return slot.kv(1, device, dtype)


def _prompts(model: nn.Module) -> list[SoftPrompt]:
    return [m for m in method_modules(model) if isinstance(m, SoftPrompt)]


def inserted_positions(model: nn.Module) -> int:
    """Positions inserted in front of the tokens of every input (a soft prompt at position 0). Raises ValueError
    for an insertion elsewhere (an encoder's prompt after [CLS]), which a decoder's generation cannot cache."""
    total = 0
    for prompt in _prompts(model):
        if prompt.insert_at != 0:
            raise ValueError(f"a soft prompt inserted at position {prompt.insert_at} (not in front of the tokens)")
        total += int(prompt.length)
    return total


@contextmanager
def inputs_cached(model: nn.Module):
    """Within this context, methods that insert positions into the input leave the input unchanged (their
    positions are in the caller's cache already); restored on exit, also after an error."""
    prompts = _prompts(model)
    saved = [p.suspended for p in prompts]
    for p in prompts:
        p.suspended = True
    try:
        yield
    finally:
        for p, s in zip(prompts, saved):
            p.suspended = s
