"""Soft prompts (Lester et al., 2021): `length` trainable input embeddings inserted into every input sequence.

Where the prompt goes (from the family's Arch record):
- decoders (GPT-2): in front of the sequence, [prompt][tokens];
- encoders (RoBERTa, BERT, DeBERTa-v2): right after the first token, [CLS][prompt][tokens...], so that the
  classification head, which reads the first position, still reads the CLS token.

A forward pre-hook on the task model turns `input_ids` into `inputs_embeds` with the prompt inserted and extends
what must match the sequence length: the 2-D attention mask (prompt visible), `token_type_ids` (type 0), explicit
`position_ids` (the prompt takes the positions right after the tokens in front of it; later tokens shift by
`length`; without explicit ids the model numbers the longer sequence itself), and token-level `labels` (-100 on
the prompt, so a loss computed by the model ignores it; for GPT-2 the first token's label too, so that the
model's loss is exactly the loss over the caller's tokens, where the first token has nothing to be predicted from). A
forward hook removes the prompt positions from
token-level `logits` again, so logits line up with the caller's tokens (hidden states and attentions keep them;
sequence-level outputs such as a classifier's are unaffected).

Positions: the prompt takes `length` of the model's learned positions (`extra_positions`), so an input may
have at most `methods.base.input_budget(model)` tokens (RoBERTa: 512 - length). The suite's runs cut their
inputs to that (`bench.runner`, counted as truncated examples); a longer input given directly is an error
naming both numbers, not an index error inside the position embeddings.

Generation (GPT-2 `generate`, greedy or beam search): with a KV cache the prompt enters on the first step and
stays in the cache; later steps only extend the attention mask by `length` ones and shift given position ids by
`length`. Without a cache every step re-inserts the prompt. Both give the same tokens. Needs a dynamic cache and
a 2-D attention mask (a static cache's pre-built 4-D mask cannot know about the prompt).

Initialisation: `init="vocab"` copies the embeddings of `length` token ids drawn uniformly from the vocabulary
(torch's global RNG), `init="random"` draws N(0, std^2) with std the standard deviation of the embedding matrix.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from methods.base import (
    IGNORE_INDEX, Arch, MethodModule, UnsupportedFamily, d_model, freeze_all, get_module, max_positions,
    unfreeze_head, unfreeze_method_modules,
)

INITS = ("vocab", "random")


def _insert(x: torch.Tensor, at: int, block: torch.Tensor) -> torch.Tensor:
    """Insert `block` (batch, length, ...) into `x` (batch, seq, ...) before position `at` (dim 1)."""
    return torch.cat([x[:, :at], block, x[:, at:]], dim=1)


class SoftPrompt(MethodModule):
    """The prompt embeddings (length x d) and the forward pre-hook that inserts them."""

    def __init__(self, length: int, d: int, insert_at: int, embeddings: nn.Embedding, signature_of: nn.Module,
                 device=None, dtype=None, max_positions: int | None = None):
        super().__init__()
        self.length, self.insert_at = length, insert_at
        self.extra_positions = length
        self.max_positions = max_positions    # the model's learned positions (None: no limit)
        self.weight = nn.Parameter(torch.empty(length, d, device=device, dtype=dtype))
        self._embeddings = [embeddings]       # the model's word embeddings, not a child (not counted, not saved)
        self._names = list(inspect.signature(signature_of.forward).parameters)
        self._inserted: tuple[int, int] | None = None  # (insert position, new length) of the call in progress
        self.suspended = False    # True: calls pass through unchanged (a decoder that caches the prompt itself)

    def extra_repr(self) -> str:
        return f"length={self.length}, d={self.weight.shape[1]}, insert_at={self.insert_at}"

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict):
        if self.suspended:
            self._inserted = None
            return None
        if args:                                     # positional arguments -> keywords, by the forward signature
            kwargs = dict(kwargs)
            for name, value in zip(self._names, args):
                if name in kwargs:
                    raise TypeError(f"got multiple values for argument {name!r}")
                kwargs[name] = value
        else:
            kwargs = dict(kwargs)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        in_cache = cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() != 2:
            raise ValueError(f"soft prompt: needs a 2-D attention mask (batch, seq), got shape {tuple(mask.shape)}")
        self._inserted = None
        if in_cache:                                 # the prompt's keys and values are already cached
            if mask is not None:
                kwargs["attention_mask"] = torch.cat([mask.new_ones(mask.shape[0], self.length), mask], dim=1)
            if kwargs.get("position_ids") is not None:
                kwargs["position_ids"] = kwargs["position_ids"] + self.length
            return (), kwargs
        input_ids = kwargs.pop("input_ids", None)
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            if input_ids is None:
                raise ValueError("soft prompt: pass input_ids or inputs_embeds")
            embeds = self._embeddings[0](input_ids)
        batch, seq = embeds.shape[:2]
        if self.max_positions is not None and seq + self.length > self.max_positions:
            raise ValueError(
                f"soft prompt: an input of {seq} tokens plus {self.length} prompt positions exceeds the model's "
                f"{self.max_positions} positions; cut inputs to at most {self.max_positions - self.length} tokens "
                f"(methods.base.input_budget)"
            )
        at = min(self.insert_at, seq)
        prompt = self.weight.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        kwargs["inputs_embeds"] = _insert(embeds, at, prompt)
        if mask is not None:
            kwargs["attention_mask"] = _insert(mask, at, mask.new_ones(batch, self.length))
        if kwargs.get("token_type_ids") is not None:
            types = kwargs["token_type_ids"]
            kwargs["token_type_ids"] = _insert(types, at, types.new_zeros(types.shape[0], self.length))
        if kwargs.get("position_ids") is not None:
            pos = kwargs["position_ids"]
            start = pos[:, at - 1:at] + 1 if at > 0 else torch.zeros_like(pos[:, :1])
            block = start + torch.arange(self.length, device=pos.device, dtype=pos.dtype)
            kwargs["position_ids"] = torch.cat([pos[:, :at], block, pos[:, at:] + self.length], dim=1)
        labels = kwargs.get("labels")
        if labels is not None and labels.dim() == 2 and tuple(labels.shape) == (batch, seq):
            if at == 0:        # causal LM: the prompt must not predict the first token (no context without it)
                labels = torch.cat([labels.new_full((batch, 1), IGNORE_INDEX), labels[:, 1:]], dim=1)
            kwargs["labels"] = _insert(labels, at, labels.new_full((batch, self.length), IGNORE_INDEX))
        self._inserted = (at, seq + self.length)
        return (), kwargs

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output):
        """Drop the prompt positions from token-level `logits`, so they line up with the caller's tokens."""
        inserted, self._inserted = self._inserted, None
        logits = getattr(output, "logits", None)
        if inserted is None or not isinstance(logits, torch.Tensor) or logits.dim() != 3:
            return output
        at, total = inserted
        start = total - logits.shape[1]          # logits may cover only the last positions (logits_to_keep)
        lo, hi = max(at, start) - start, max(min(at + self.length, total), start) - start
        if hi > lo:
            output.logits = torch.cat([logits[:, :lo], logits[:, hi:]], dim=1)
        return output


def soft_prompt(model: nn.Module) -> SoftPrompt:
    prompt = getattr(model, "soft_prompt", None)
    if not isinstance(prompt, SoftPrompt):
        raise ValueError("this model has no soft prompt (apply methods.Prompt first)")
    return prompt


@dataclass(frozen=True)
class Prompt:
    """Soft prompt tuning: `length` trainable embeddings inserted into the input (see the module docstring)."""

    name: ClassVar[str] = "prompt"
    length: int = 20              # prompt embeddings
    init: str = "vocab"           # vocab: copies of random token embeddings; random: N(0, std(embeddings)^2)

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise ValueError(f"prompt.length must be an integer >= 1, got {self.length!r}")
        if self.init not in INITS:
            raise ValueError(f"prompt.init must be one of {', '.join(INITS)}, got {self.init!r}")

    def apply(self, model: nn.Module, arch: Arch) -> nn.Module:
        freeze_all(model)
        if hasattr(model, "soft_prompt"):
            raise UnsupportedFamily("prompt: the model already has a soft prompt")
        embeddings = get_module(model, arch.embeddings)
        if not isinstance(embeddings, nn.Embedding):
            raise UnsupportedFamily(f"prompt: {arch.family} {arch.embeddings} is not an nn.Embedding")
        weight = embeddings.weight
        prompt = SoftPrompt(self.length, d_model(model, arch), 0 if arch.decoder else 1, embeddings, model,
                            weight.device, weight.dtype, max_positions(model, arch))
        with torch.no_grad():
            if self.init == "vocab":
                ids = torch.randint(0, weight.shape[0], (self.length,))
                prompt.weight.copy_(weight[ids.to(weight.device)])
            elif weight.device.type == "meta":
                prompt.weight.normal_()
            else:
                prompt.weight.normal_(std=float(weight.float().std()))
        model.add_module("soft_prompt", prompt)
        model.register_forward_pre_hook(prompt.pre_hook, with_kwargs=True)
        model.register_forward_hook(prompt.post_hook, with_kwargs=True)
        unfreeze_method_modules(model)
        unfreeze_head(model, arch)
        return model
