"""Shared vocabulary of the method library: where a model family keeps its parts (Arch), what a method is
(Method), and how parameters are counted (ParamCounts). Depends on torch only; never imports bench."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

# label of token positions without loss: torch cross_entropy's default ignore_index, transformers' convention
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Arch:
    """Where one model family keeps its blocks, attention projections, FFN and head.

    Paths are dotted attribute paths. Block-relative paths (q, k, v, ...) are relative to one block.
    A new family is one entry in ARCHES, never a branch inside a method.
    """

    family: str                      # roberta | bert | deberta-v2 | gpt2 | llama | mistral | qwen2
    backbone: str                    # the base model inside the task model: "roberta", "transformer", ...
    embeddings: str                  # word embeddings module (nn.Embedding), full path
    blocks: str                      # nn.ModuleList of transformer blocks, full path
    q: str | None                    # separate query projection (None when fused)
    k: str | None
    v: str | None
    qkv: str | None                  # fused q,k,v projection (GPT-2's c_attn, a Conv1D with out = 3 * d)
    attn: str                        # the self-attention module of a block
    attn_out: str                    # attention output projection (Linear / Conv1D)
    ffn_in: str                      # FFN up-projection
    ffn_out: str                     # FFN down-projection
    final_norm: str | None           # a final norm after the last block (GPT-2's ln_f, Llama's RMSNorm), full path
    head: tuple[str, ...]            # task-head modules, full paths (trained, not counted as the method's)
    d_model_attr: str = "hidden_size"
    n_layers_attr: str = "num_hidden_layers"
    n_heads_attr: str = "num_attention_heads"
    decoder: bool = False            # causal LM (GPT-2, the Llama layout)
    # Gated FFN (Llama layout): down(act(gate(x)) * up(x)); `ffn_in` is then the up projection.
    ffn_gate: str | None = None      # the gate projection, block-relative (None: the FFN is not gated)
    # Grouped-query attention: k and v have n_kv_heads x head_dim outputs, fewer heads than the queries.
    n_kv_heads_attr: str | None = None  # config attribute with the key/value heads (None: as many as query heads)
    head_dim_attr: str | None = None    # config attribute with the width of one head (None or unset: d / heads)
    # Where bottleneck adapters sit (block-relative; see methods/adapter.py): the last module of each sublayer
    # before its residual add.
    attn_dropout: str | None = None  # attention: the dropout on the output projection's output, or the output
    #                                  projection itself where the family has no such dropout (Llama layout)
    ffn_dropout: str | None = None   # FFN: the dropout on the down projection's output, or the down projection
    ffn_norm: str | None = None      # post-LN blocks: the LayerNorm over FFN output + residual (None: pre-LN)
    # Learned absolute positions (how long an input may be): the config attribute with their number, the config
    # flag that turns them on (None: always on), and whether they start after the padding index (RoBERTa).
    positions_attr: str = "max_position_embeddings"
    positions_flag: str | None = None
    positions_after_pad: bool = False


ARCHES: dict[str, Arch] = {
    "roberta": Arch(
        family="roberta", backbone="roberta", embeddings="roberta.embeddings.word_embeddings",
        blocks="roberta.encoder.layer", q="attention.self.query", k="attention.self.key",
        v="attention.self.value", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("classifier",),
        attn_dropout="attention.output.dropout", ffn_dropout="output.dropout", ffn_norm="output.LayerNorm",
        positions_after_pad=True,
    ),
    # BERT's pooler (dense + tanh) plays the part of RoBERTa's classifier.dense: it is counted as head.
    "bert": Arch(
        family="bert", backbone="bert", embeddings="bert.embeddings.word_embeddings",
        blocks="bert.encoder.layer", q="attention.self.query", k="attention.self.key",
        v="attention.self.value", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("bert.pooler", "classifier"),
        attn_dropout="attention.output.dropout", ffn_dropout="output.dropout", ffn_norm="output.LayerNorm",
    ),
    "deberta-v2": Arch(
        family="deberta-v2", backbone="deberta", embeddings="deberta.embeddings.word_embeddings",
        blocks="deberta.encoder.layer", q="attention.self.query_proj", k="attention.self.key_proj",
        v="attention.self.value_proj", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("pooler", "classifier"),
        attn_dropout="attention.output.dropout", ffn_dropout="output.dropout", ffn_norm="output.LayerNorm",
        positions_flag="position_biased_input",
    ),
    # GPT-2's LM head is tied to the word embeddings: a causal LM has no separate head; for classification
    # GPT2ForSequenceClassification adds `score`, its head.
    "gpt2": Arch(
        family="gpt2", backbone="transformer", embeddings="transformer.wte", blocks="transformer.h",
        q=None, k=None, v=None, qkv="attn.c_attn", attn="attn", attn_out="attn.c_proj",
        ffn_in="mlp.c_fc", ffn_out="mlp.c_proj", final_norm="transformer.ln_f", head=("score",),
        d_model_attr="n_embd", n_layers_attr="n_layer", n_heads_attr="n_head", decoder=True,
        attn_dropout="attn.resid_dropout", ffn_dropout="mlp.dropout", ffn_norm=None, positions_attr="n_positions",
    ),
}


def _llama_layout(family: str) -> Arch:
    """Llama, Mistral and Qwen2 share one module layout: pre-RMSNorm blocks `model.layers`, separate q/k/v/o
    projections (k, v at key/value heads x head dim), rotary positions applied inside attention (no learned
    position table), a gated MLP (gate, up, down), a final RMSNorm `model.norm`, and `score` as the sequence
    classification head (the causal LM's `lm_head`, tied or not, is part of the pretrained model). The
    families differ in bias terms only (Qwen2: q, k, v have biases; Llama, Mistral: none), which methods read
    from the modules themselves. No dropout follows o_proj or down_proj, so adapters read those directly."""
    return Arch(
        family=family, backbone="model", embeddings="model.embed_tokens", blocks="model.layers",
        q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj", qkv=None, attn="self_attn",
        attn_out="self_attn.o_proj", ffn_in="mlp.up_proj", ffn_out="mlp.down_proj", final_norm="model.norm",
        head=("score",), decoder=True, ffn_gate="mlp.gate_proj", n_kv_heads_attr="num_key_value_heads",
        head_dim_attr="head_dim", attn_dropout="self_attn.o_proj", ffn_dropout="mlp.down_proj", ffn_norm=None,
    )


ARCHES.update({family: _llama_layout(family) for family in ("llama", "mistral", "qwen2")})

# config.model_type -> family
MODEL_TYPES = {"roberta": "roberta", "bert": "bert", "deberta-v2": "deberta-v2", "gpt2": "gpt2",
               "llama": "llama", "mistral": "mistral", "qwen2": "qwen2"}


def arch_of(model: nn.Module) -> Arch:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in MODEL_TYPES:
        raise UnsupportedFamily(
            f"unsupported model family {model_type!r}; supported: {', '.join(sorted(MODEL_TYPES))}"
        )
    return ARCHES[MODEL_TYPES[model_type]]


def get_module(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = getattr(module, part)
    return module


def set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = get_module(root, parent_path) if parent_path else root
    setattr(parent, name, new)


def blocks_of(model: nn.Module, arch: Arch) -> nn.ModuleList:
    return get_module(model, arch.blocks)


class UnsupportedFamily(ValueError):
    """A method cannot be applied to this model family (or this setting cannot). The message names the family,
    the method and what is supported; the CLI turns it into a one-line error with exit code 2."""


@runtime_checkable
class Method(Protocol):
    """A PEFT method. The protocol every entry of `methods.METHODS` follows:

    - a frozen dataclass; `name: ClassVar[str]` is its registry key; its fields are its scientific settings,
      JSON-serialisable through `dataclasses.asdict` (str, int, float, bool, tuples of those);
    - `__post_init__` validates the fields and raises ValueError naming the field, the value and what is accepted
      (`bench.config.override` turns that into a ConfigError);
    - `apply(model, arch) -> model` freezes everything (`freeze_all`), injects or wraps modules, and leaves exactly
      the method's parameters plus the task head trainable (`unfreeze_method_modules`, `unfreeze_head`).
      Injected modules are our own classes deriving from `MethodModule`, so the method's parameters are found by
      module type, never by a substring of a parameter name. `apply` raises UnsupportedFamily for a family
      (or a setting on a family) it cannot handle. It uses torch's global RNG for new weights (callers seed).
      It must work on the meta device (counting builds models without weights). Injected modules take the
      train/eval mode of the module they replace or extend (`module.train(replaced.training)`);
    - optional `stored_count(model, arch) -> int`: how many parameters must be saved after training, head excluded.
      Default (when absent): the trained count. Prefix tuning stores length x layers x 2 x d, not its MLP.
    """

    name: ClassVar[str]

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module: ...


class MethodModule(nn.Module):
    """Base class of every module a method injects (LoRA layers, adapters, prefix and prompt encoders).

    `method_parameters()` returns the parameters this module ADDS to the model, named relative to the module.
    Default: all of its parameters (right for an adapter made of its own Linears). A module that wraps or extends
    a pretrained layer (LoRA's drop-in Linear, an adapter wrapped around a block's output) overrides it so that the
    pretrained weights are not counted as the method's.
    """

    # How far this module shifts the position ids of the real tokens (prefix tuning as the released code ran
    # it: the real tokens take positions L..L+T-1 after a prefix of length L). Set on the instance. Code that
    # builds position ids itself (batched generation) adds `position_offset(model)` to them.
    position_offset: int = 0
    # How many positions this module inserts into every input (a soft prompt: its length). Set on the instance.
    extra_positions: int = 0

    def method_parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.named_parameters())


def method_modules(model: nn.Module) -> list[MethodModule]:
    return [m for m in model.modules() if isinstance(m, MethodModule)]


def position_offset(model: nn.Module) -> int:
    """The shift of the real tokens' position ids: the sum of `position_offset` over the model's MethodModules."""
    return sum(int(m.position_offset) for m in method_modules(model))


def max_positions(model: nn.Module, arch: Arch) -> int | None:
    """How many tokens the model's learned absolute positions can number (RoBERTa: 514 - 2 = 512); None when
    the model has none (DeBERTa-v2 with position_biased_input=False)."""
    config = model.config
    if arch.positions_flag is not None and not getattr(config, arch.positions_flag, True):
        return None
    n = getattr(config, arch.positions_attr, None)
    if n is None:
        return None
    return int(n) - (int(config.pad_token_id) + 1 if arch.positions_after_pad else 0)


def input_budget(model: nn.Module, arch: Arch | None = None) -> int | None:
    """The most tokens of a caller's input that fit in the model's positions with the methods applied: the
    positions less what the methods insert (a soft prompt) and shift (a prefix's offset). None: no limit."""
    total = max_positions(model, arch if arch is not None else arch_of(model))
    if total is None:
        return None
    return total - position_offset(model) - sum(int(m.extra_positions) for m in method_modules(model))


def added_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Unique parameters added by methods (union of `method_parameters()` of every MethodModule)."""
    seen, out = set(), []
    for module in method_modules(model):
        for p in module.method_parameters().values():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def head_modules(model: nn.Module, arch: Arch) -> list[nn.Module]:
    """The task-head modules of `arch.head` that this model has (a causal LM has none; GPT-2 classifies with
    `score`)."""
    out = []
    for path in arch.head:
        try:
            out.append(get_module(model, path))
        except AttributeError:
            continue
    return out


def head_parameters(model: nn.Module, arch: Arch) -> list[nn.Parameter]:
    seen, out = set(), []
    for module in head_modules(model, arch):
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_head(model: nn.Module, arch: Arch) -> None:
    for p in head_parameters(model, arch):
        p.requires_grad_(True)


def unfreeze_method_modules(model: nn.Module) -> None:
    for p in added_parameters(model):
        p.requires_grad_(True)


def d_model(model: nn.Module, arch: Arch) -> int:
    return int(getattr(model.config, arch.d_model_attr))


def n_layers(model: nn.Module, arch: Arch) -> int:
    return int(getattr(model.config, arch.n_layers_attr))


def n_heads(model: nn.Module, arch: Arch) -> int:
    return int(getattr(model.config, arch.n_heads_attr))


def n_kv_heads(model: nn.Module, arch: Arch) -> int:
    """Key/value heads: fewer than the query heads under grouped-query attention, else as many."""
    value = getattr(model.config, arch.n_kv_heads_attr, None) if arch.n_kv_heads_attr else None
    return int(value) if value is not None else n_heads(model, arch)


def head_dim(model: nn.Module, arch: Arch) -> int:
    value = getattr(model.config, arch.head_dim_attr, None) if arch.head_dim_attr else None
    return int(value) if value is not None else d_model(model, arch) // n_heads(model, arch)


def kv_width(model: nn.Module, arch: Arch) -> int:
    """Width of one layer's keys (and of its values): key/value heads x head dim (d without grouped-query
    attention)."""
    return n_kv_heads(model, arch) * head_dim(model, arch)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counters in the papers' conventions (see recipes.md section 1).

    trained: parameters with requires_grad, the task head excluded.
    stored:  parameters that must be saved for the method, the head excluded (prefix: the prefix itself, not
             the reparameterisation MLP that is trained and thrown away).
    head:    task-head parameters (trained, never counted in the papers' column).
    total:   all parameters of the model as run (base + method + head).
    percent: stored / base parameters * 100, base = pretrained backbone without head and method.
    """

    trained: int
    stored: int
    head: int
    total: int
    percent: float


def numel(params) -> int:
    return sum(int(p.numel()) for p in params)


def unique_parameters(module: nn.Module) -> list[torch.nn.Parameter]:
    seen, out = set(), []
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
