"""Prefix tuning (Li & Liang, 2021): trainable keys and values prepended inside the self-attention of every layer.

Trained: a prefix embedding E (length x d) -> Linear(d, mlp_hidden) -> tanh -> Linear(mlp_hidden, layers * 2 * d),
whose output holds, for every layer l, the keys K_l and values V_l of `length` virtual positions (output layout:
[layer][key, value][d]). Stored: only the computed K_l, V_l (`finalize` replaces the MLP by that table; the outputs
do not change), so `stored_count` = length x layers x 2 x d, the papers' convention.

Under grouped-query attention (the Llama layout) d is the width of one layer's keys, key/value heads x head dim
(SmolLM2-135M: 3 x 64 = 192, not the model's 576): the prefix holds keys and values per key/value head, and every
query head of a group attends to its group's prefix, as PEFT sizes it (`token_dim = head_dim x num_key_value_heads`,
embedding and MLP included). Rotary families: the prefix keys join after the rotary embedding is applied to the
real keys, so they carry no rotation, as PEFT's cache-based prefix does; with `shift_positions=True` the real
tokens' rotations start at L, as in PEFT, where the prefix occupies the first L cache positions.

Injection happens inside attention, after the model's own key/value projections (and after a KV-cache update), so:

- every query attends to the `length` prefix positions of its layer in addition to the real keys; the attention
  mask gets `length` visible columns in front (the causal part applies to real tokens only);
- the generation KV cache holds real tokens only; the prefix is added again at every step, so greedy and beam
  search give the same tokens with and without the cache;
- no `past_key_values` route is used (transformers 5 encoders ignore it).

Positions (`shift_positions`, decoders only): in the released code and PEFT, where the prefix sits in the KV
cache in front of the text, GPT-2's real tokens take positions L..L+T-1 after a prefix of length L
(`shift_positions=True`, what the paper/script presets use); the default `False` (ours) numbers them 0..T-1 as
every other method does, so the text sits at the same positions in every row of a comparison and the prefix
only adds keys and values. With `True` the prefix encoder's `position_offset`
(methods.base) is then L, and a forward pre-hook on the backbone numbers the tokens it is given without
position ids as past + L + 0..T-1 (past = tokens already in the KV cache). Position ids passed explicitly are
taken as they are: code that builds them (batched generation, `model.generate(position_ids=...)`) adds
`methods.base.position_offset(model)` itself. Encoders number their tokens from the input (RoBERTa: after the
padding index) and are never shifted: the prefix would otherwise eat into their 512 positions.

Two routes, chosen by what the attention module is, not by family name:

- attention modules that call transformers' attention interface (RoBERTa, BERT, GPT-2): the model's attention
  implementation becomes `peft_bench_prefix_<base>` (registered with transformers' AttentionInterface and
  AttentionMaskInterface; masks are built as for <base> = sdpa or eager), whose function extends keys, values
  and mask of the modules that carry a prefix and then calls the base implementation unchanged;
- DeBERTa's disentangled attention (which computes attention itself): its forward is replaced on the instance by
  `_deberta_prefix_forward`, the same computation with prefix keys and values. Prefix keys have no position,
  so they get no relative-position (c2p / p2c) term: their scores are content-only q.k / sqrt(d_head * factor).
"""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import ClassVar
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from methods.base import (
    Arch, MethodModule, UnsupportedFamily, blocks_of, freeze_all, get_module, kv_width, n_kv_heads, n_layers,
    unfreeze_head, unfreeze_method_modules,
)

IMPL_PREFIX = "peft_bench_prefix_"      # + base implementation name
BASE_IMPLS = ("sdpa", "eager")
SLOT = "peft_bench_prefix"              # attribute of an attention module holding its _LayerPrefix
EMBED_INIT_STD = 1.0                    # prefix embedding ~ N(0, 1), like nn.Embedding


class PrefixEncoder(MethodModule):
    """The trained prefix: embedding + MLP (training), or the stored key/value table (after `finalize`)."""

    def __init__(self, length: int, d: int, layers: int, mlp_hidden: int, dropout: float, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.length, self.d, self.layers = length, d, layers
        self.embedding = nn.Parameter(torch.empty(length, d, **kw))
        self.mlp_in = nn.Linear(d, mlp_hidden, **kw)
        self.mlp_out = nn.Linear(mlp_hidden, layers * 2 * d, **kw)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.register_parameter("table", None)          # (layers, 2, length, d) once finalized
        self._pass: tuple | None = None                  # (mode, per-layer keys/values) of the current forward
        #                                                  pass (set during a pass, cleared before and after)
        with torch.no_grad():
            nn.init.normal_(self.embedding, std=EMBED_INIT_STD)

    @property
    def finalized(self) -> bool:
        return self.table is not None

    def layer_kv(self, layer: int) -> torch.Tensor:
        """Keys and values of one layer's prefix, shape (2, length, d). The MLP runs once per forward pass of
        the model for all layers (as the released code runs it), so its backward is one matmul, not one per
        layer over the whole output; `new_pass`, a forward pre-hook and hook of the model, clears it around a
        pass."""
        if self.table is not None:
            return self.table[layer]
        mode = (self.training, torch.is_grad_enabled(), _autocast(self.embedding.device.type))
        if self._pass is None or self._pass[0] != mode:
            hidden = torch.tanh(self.mlp_in(self.embedding))                 # (length, mlp_hidden)
            out = self.dropout(self.mlp_out(hidden))                         # (length, layers * 2 * d)
            per_layer = out.view(self.length, self.layers, 2, self.d).permute(1, 2, 0, 3).unbind(0)
            self._pass = (mode, per_layer)
        return self._pass[1][layer]

    def new_pass(self, *_args, **_kwargs) -> None:
        """Forward pre-hook and hook of the model: the next `layer_kv` computes the prefix anew (the parameters
        may have changed since the last pass, and that pass's graph may have been freed by its backward)."""
        self._pass = None

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the current pass (its tensors may carry an autograd graph)."""
        return {**super().__getstate__(), "_pass": None}

    def number_positions(self, backbone: nn.Module, args: tuple, kwargs: dict):
        """Forward pre-hook of a decoder's backbone: position ids past + offset + 0..T-1 when none are given.
        (A bound method, so that a deep copy of the model numbers with its own encoder.)"""
        if kwargs.get("position_ids") is not None or not self.position_offset:
            return None
        x = args[0] if args and args[0] is not None else kwargs.get("input_ids")
        if x is None:
            x = kwargs.get("inputs_embeds")
        if x is None:
            return None                      # the backbone raises its own error
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None and hasattr(cache, "get_seq_length") else 0
        positions = torch.arange(x.shape[1], device=x.device) + (past + self.position_offset)
        return args, {**kwargs, "position_ids": positions.unsqueeze(0)}

    @torch.no_grad()
    def finalize(self) -> None:
        """Replace embedding and MLP by the prefix they compute (dropout off). Outputs are unchanged."""
        if self.table is not None:
            return
        was_training = self.training
        self.eval()
        self.new_pass()
        table = torch.stack([self.layer_kv(i) for i in range(self.layers)]).clone()
        self.new_pass()
        self.train(was_training)
        del self.embedding, self.mlp_in, self.mlp_out
        self.table = nn.Parameter(table)

    def extra_repr(self) -> str:
        return f"length={self.length}, d={self.d}, layers={self.layers}, finalized={self.finalized}"


def _autocast(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:                         # a device without autocast (meta)
        return False


class _LayerPrefix:
    """What one attention module needs: the shared encoder and its layer index (a plain object, not a module, so
    the encoder's parameters stay registered once, under `prefix_encoder`)."""

    def __init__(self, encoder: PrefixEncoder, layer: int, heads: int):
        self.encoder, self.layer, self.heads = encoder, layer, heads

    def kv(self, batch: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix keys and values, each (batch, heads, length, d_head)."""
        kv = self.encoder.layer_kv(self.layer).to(device=device, dtype=dtype)      # (2, length, d)
        length, d = kv.shape[1], kv.shape[2]
        kv = kv.view(2, length, self.heads, d // self.heads).permute(0, 2, 1, 3)    # (2, heads, length, d_head)
        kv = kv.unsqueeze(1).expand(2, batch, self.heads, length, d // self.heads)
        return kv[0], kv[1]


def _extend_mask(mask: torch.Tensor | None, module: nn.Module, q_len: int, k_len: int, length: int,
                 device) -> torch.Tensor | None:
    """The attention mask for [prefix; real keys]: prefix columns visible to every query."""
    if mask is None:
        if not (getattr(module, "is_causal", False) and q_len > 1):
            return None                          # nothing masked, and the prefix is visible anyway
        # the implementation would have applied causality itself; with extra keys it must be explicit
        # (bottom-right aligned: query i sits at real position k_len - q_len + i)
        rows = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
        mask = (rows >= torch.arange(k_len, device=device)[None, :]).view(1, 1, q_len, k_len)
    pad_shape = (*mask.shape[:-1], length)
    pad = mask.new_ones(pad_shape) if mask.dtype == torch.bool else mask.new_zeros(pad_shape)
    return torch.cat([pad, mask], dim=-1)


def prefix_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """Attention function registered as `peft_bench_prefix_<base>`: prefix keys/values, then the base function
    (the one the module's config names now: `rebase_attention` may have put another base under the prefix)."""
    base = module.config._attn_implementation.removeprefix(IMPL_PREFIX)
    eager_fn = sys.modules[type(module).__module__].eager_attention_forward
    slot: _LayerPrefix | None = getattr(module, SLOT, None)
    if slot is None:                             # an attention module without prefix (e.g. cross-attention)
        return _base_function(base, eager_fn)(module, query, key, value, attention_mask, **kwargs)
    pk, pv = slot.kv(query.shape[0], key.device, key.dtype)
    mask = _extend_mask(attention_mask, module, query.shape[2], key.shape[2], pk.shape[2], key.device)
    key, value = torch.cat([pk, key], dim=2), torch.cat([pv, value], dim=2)
    return _base_function(base, eager_fn)(module, query, key, value, mask, **kwargs)


def _base_function(base: str, eager_fn):
    if base == "eager":
        return eager_fn
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    return ALL_ATTENTION_FUNCTIONS.get_interface(base, eager_fn)


def _register(base: str) -> str:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface
    name = IMPL_PREFIX + base
    AttentionInterface.register(name, prefix_attention)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def rebase_attention(impl: str | None, wrap: Callable[[str], str]) -> str | None:
    """The attention implementation that runs `wrap(base)` (a registered implementation whose masks are built as
    for `base`) wherever `impl` runs the base implementation `base` (sdpa or eager): `wrap(base)` when `impl` is
    the base itself, the prefix's wrapper around `wrap(base)` when `impl` is the prefix's wrapper around `base`;
    None for any other implementation. (The training fast path, `bench.fastpath`, swaps sdpa for its own
    attention this way, under the prefix as well.)"""
    impl = impl or "eager"
    if impl in BASE_IMPLS:
        return wrap(impl)
    if impl.startswith(IMPL_PREFIX) and impl.removeprefix(IMPL_PREFIX) in BASE_IMPLS:
        return _register(wrap(impl.removeprefix(IMPL_PREFIX)))
    return None


def _deberta_prefix_forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                            relative_pos=None, rel_embeddings=None):
    """DeBERTa-v2's DisentangledSelfAttention.forward with prefix keys/values (content-only scores for them)."""
    slot: _LayerPrefix = getattr(self, SLOT)
    heads = self.num_attention_heads
    if query_states is None:
        query_states = hidden_states
    query = self.transpose_for_scores(self.query_proj(query_states), heads)      # (batch*heads, q_len, d_head)
    key = self.transpose_for_scores(self.key_proj(hidden_states), heads)
    value = self.transpose_for_scores(self.value_proj(hidden_states), heads)
    factor = 1 + int("c2p" in self.pos_att_type) + int("p2c" in self.pos_att_type)
    scale = torch.sqrt(torch.tensor(query.size(-1), dtype=torch.float) * factor).to(dtype=query.dtype)
    scores = torch.bmm(query, key.transpose(-1, -2) / scale)
    if self.relative_attention:
        rel = self.disentangled_attention_bias(query, key, relative_pos, self.pos_dropout(rel_embeddings), factor)
        scores = scores + rel
    batch = query.size(0) // heads
    pk, pv = slot.kv(batch, query.device, query.dtype)                          # (batch, heads, length, d_head)
    length = pk.shape[2]
    pk, pv = pk.reshape(batch * heads, length, -1), pv.reshape(batch * heads, length, -1)
    scores = torch.cat([torch.bmm(query, pk.transpose(-1, -2) / scale), scores], dim=-1)
    scores = scores.view(-1, heads, scores.size(-2), scores.size(-1))
    mask = attention_mask.bool()
    mask = torch.cat([mask.new_ones((*mask.shape[:-1], length)), mask], dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(query.dtype).min)
    probs = self.dropout(F.softmax(scores, dim=-1))
    context = torch.bmm(probs.view(-1, probs.size(-2), probs.size(-1)), torch.cat([pv, value], dim=1))
    context = context.view(-1, heads, context.size(-2), context.size(-1)).permute(0, 2, 1, 3).contiguous()
    context = context.view(*context.size()[:-2], -1)
    return (context, probs) if output_attentions else (context, None)


def _is_disentangled(attn: nn.Module) -> bool:
    return hasattr(attn, "disentangled_attention_bias") and hasattr(attn, "transpose_for_scores")


def prefix_encoder(model: nn.Module) -> PrefixEncoder:
    encoder = getattr(model, "prefix_encoder", None)
    if not isinstance(encoder, PrefixEncoder):
        raise ValueError("this model has no prefix (apply methods.Prefix first)")
    return encoder


def finalize(model: nn.Module) -> nn.Module:
    """After training: keep only the computed prefix (length x layers x 2 x d) and drop embedding and MLP.
    The model's outputs are unchanged. To load a saved finalized state: apply Prefix, finalize, then load."""
    prefix_encoder(model).finalize()
    return model


drop_mlp = finalize


@dataclass(frozen=True)
class Prefix:
    """Prefix tuning: `length` virtual key/value positions in every layer, reparameterised by an MLP."""

    name: ClassVar[str] = "prefix"
    length: int = 5               # prefix positions per layer
    mlp_hidden: int = 512         # hidden size of the reparameterisation MLP
    dropout: float = 0.0          # dropout on the prefix keys/values during training (off by default)
    shift_positions: bool = False  # decoders: real tokens at L..L+T-1 (True: released code, PEFT) or 0..T-1 (ours)

    def __post_init__(self) -> None:
        for field in ("length", "mlp_hidden"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"prefix.{field} must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"prefix.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.shift_positions, bool):
            raise ValueError(f"prefix.shift_positions must be true or false, got {self.shift_positions!r}")

    def finalize(self, model: nn.Module) -> nn.Module:
        """After training: keep only the computed prefix (see the module-level `finalize`)."""
        return finalize(model)

    def stored_count(self, model: nn.Module, arch: Arch) -> int:
        return self.length * n_layers(model, arch) * 2 * kv_width(model, arch)

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        if hasattr(model, "prefix_encoder"):
            raise UnsupportedFamily("prefix: the model already has a prefix")
        d, layers = kv_width(model, arch), n_layers(model, arch)     # d: the keys' width (GQA: kv heads x head dim)
        heads = n_kv_heads(model, arch)
        weight = get_module(model, arch.embeddings).weight
        encoder = PrefixEncoder(self.length, d, layers, self.mlp_hidden, self.dropout, weight.device, weight.dtype)
        model.add_module("prefix_encoder", encoder)
        model.register_forward_pre_hook(encoder.new_pass)
        model.register_forward_hook(encoder.new_pass)
        if arch.decoder and self.shift_positions:
            encoder.position_offset = self.length
            get_module(model, arch.backbone).register_forward_pre_hook(encoder.number_positions, with_kwargs=True)
        base = getattr(model.config, "_attn_implementation", None) or "eager"
        uses_interface = False
        for i, block in enumerate(blocks_of(model, arch)):
            attn = get_module(block, arch.attn)
            if _is_disentangled(attn):
                if attn.all_head_size != d:
                    raise UnsupportedFamily(f"prefix: {arch.family} attention width {attn.all_head_size} != d {d}")
                setattr(attn, SLOT, _LayerPrefix(encoder, i, heads))
                attn.forward = types.MethodType(_deberta_prefix_forward, attn)
            else:
                eager_fn = getattr(sys.modules[type(attn).__module__], "eager_attention_forward", None)
                if eager_fn is None or not hasattr(attn, "config"):
                    raise UnsupportedFamily(
                        f"prefix: {arch.family} attention {type(attn).__name__} uses neither transformers' attention "
                        f"interface nor DeBERTa's disentangled attention"
                    )
                if getattr(attn.config, "reorder_and_upcast_attn", False):
                    raise UnsupportedFamily("prefix: GPT-2 with reorder_and_upcast_attn=True is not supported")
                if base not in BASE_IMPLS:
                    raise UnsupportedFamily(
                        f"prefix: attention implementation {base!r} is not supported; "
                        f"use one of {', '.join(BASE_IMPLS)}"
                    )
                setattr(attn, SLOT, _LayerPrefix(encoder, i, heads))
                uses_interface = True
        if uses_interface:
            model.config._attn_implementation = _register(base)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
