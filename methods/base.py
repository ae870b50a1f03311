"""Shared vocabulary of the method library: where a model family keeps its parts (Arch), what a method is
(Method), and how parameters are counted (ParamCounts). Depends on torch only; never imports bench."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class Arch:
    """Where one model family keeps its blocks, attention projections, FFN and head.

    Paths are dotted attribute paths. Block-relative paths (q, k, v, ...) are relative to one block.
    A new family is one entry in ARCHES, never a branch inside a method.
    """

    family: str                      # roberta | bert | deberta-v2 | gpt2
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
    final_norm: str | None           # a final LayerNorm after the last block (GPT-2's ln_f), full path
    head: tuple[str, ...]            # task-head modules, full paths (trained, not counted as the method's)
    d_model_attr: str = "hidden_size"
    n_layers_attr: str = "num_hidden_layers"
    n_heads_attr: str = "num_attention_heads"
    decoder: bool = False            # causal LM (GPT-2)


ARCHES: dict[str, Arch] = {
    "roberta": Arch(
        family="roberta", backbone="roberta", embeddings="roberta.embeddings.word_embeddings",
        blocks="roberta.encoder.layer", q="attention.self.query", k="attention.self.key",
        v="attention.self.value", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("classifier",),
    ),
    # BERT's pooler (dense + tanh) plays the part of RoBERTa's classifier.dense: it is counted as head.
    "bert": Arch(
        family="bert", backbone="bert", embeddings="bert.embeddings.word_embeddings",
        blocks="bert.encoder.layer", q="attention.self.query", k="attention.self.key",
        v="attention.self.value", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("bert.pooler", "classifier"),
    ),
    "deberta-v2": Arch(
        family="deberta-v2", backbone="deberta", embeddings="deberta.embeddings.word_embeddings",
        blocks="deberta.encoder.layer", q="attention.self.query_proj", k="attention.self.key_proj",
        v="attention.self.value_proj", qkv=None, attn="attention.self", attn_out="attention.output.dense",
        ffn_in="intermediate.dense", ffn_out="output.dense", final_norm=None, head=("pooler", "classifier"),
    ),
    # GPT-2's LM head is tied to the word embeddings: no separate head is trained.
    "gpt2": Arch(
        family="gpt2", backbone="transformer", embeddings="transformer.wte", blocks="transformer.h",
        q=None, k=None, v=None, qkv="attn.c_attn", attn="attn", attn_out="attn.c_proj",
        ffn_in="mlp.c_fc", ffn_out="mlp.c_proj", final_norm="transformer.ln_f", head=(),
        d_model_attr="n_embd", n_layers_attr="n_layer", n_heads_attr="n_head", decoder=True,
    ),
}

# config.model_type -> family
MODEL_TYPES = {"roberta": "roberta", "bert": "bert", "deberta-v2": "deberta-v2", "gpt2": "gpt2"}


def arch_of(model: nn.Module) -> Arch:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in MODEL_TYPES:
        raise ValueError(
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


@runtime_checkable
class Method(Protocol):
    """A PEFT method: a frozen dataclass whose fields are its scientific settings.

    `apply` freezes the model, injects or wraps modules, and leaves exactly the method's parameters plus the
    task head trainable. It returns the model (possibly the same object).
    """

    name: str

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module: ...


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
