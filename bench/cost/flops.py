"""Closed-form cost of one run's pieces from the model registry's architecture numbers (no torch, no weights).

Per token of a sequence of T tokens (T_k keys: T plus a prefix), one block of width d, FFN width f, costs in
the forward pass 2 (4 d^2 + 2 d f) FLOPs in its projections and 4 d T_k in attention (scores and the weighted
sum), plus what the method adds (LoRA 2 r (d_in + d_out) per adapted projection, a bottleneck adapter 4 d b).
A causal LM adds its LM head, 2 d V per token. The backward pass costs as much again for the gradient of the
activations, in every block at or above the lowest one that holds a trained parameter or feeds one (every
block for LoRA, adapters, BitFit, prefix and prompt tuning; only the top k for top-k), and as much again for
the weight gradients of trained projections (full fine-tuning: 3x the forward in total; a frozen backbone: 2x).
Memory: fp32 weights (bf16 copies under autocast are transient), grads and AdamW's two moments for the trained
parameters, and the activations a block keeps for its backward pass (Korthikanti et al. 2022, "Reducing
Activation Recomputation in Large Transformer Models", s4.1: 34 s b h + 5 a s^2 b bytes per layer at 2-byte
activations; scaled by the activation width of the precision).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.models import model_info


@dataclass(frozen=True)
class Shape:
    """A model's size from its registry config."""

    d: int             # hidden width
    layers: int
    heads: int
    ffn: int           # FFN inner width
    vocab: int
    positions: int

    @property
    def block_params(self) -> int:
        # q, k, v, o with biases; FFN in/out with biases; two LayerNorms
        d, f = self.d, self.ffn
        return 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d

    @property
    def embedding_params(self) -> int:
        return (self.vocab + self.positions) * self.d

    @property
    def total_params(self) -> int:
        return self.layers * self.block_params + self.embedding_params + self.d * self.d

    def block_flops(self, keys: float) -> float:
        """Forward FLOPs per token of one block, attention over `keys` positions."""
        d, f = self.d, self.ffn
        return 2.0 * (4 * d * d + 2 * d * f) + 4.0 * d * keys


def shape_of(model: str) -> Shape:
    c = model_info(model).config
    d = c.get("hidden_size", c.get("n_embd"))
    return Shape(d=d, layers=c.get("num_hidden_layers", c.get("n_layer")),
                 heads=c.get("num_attention_heads", c.get("n_head")),
                 ffn=c.get("intermediate_size") or c.get("n_inner") or 4 * d, vocab=c["vocab_size"],
                 positions=c.get("max_position_embeddings", c.get("n_positions", 512)))


@dataclass(frozen=True)
class MethodCost:
    """What a method adds to the model and to the backward pass."""

    extra_tokens: int = 0          # prompt tuning: soft tokens in every sequence
    extra_keys: int = 0            # prefix tuning: key/value positions in every block
    flops_per_token: float = 0.0   # the method's own forward FLOPs per token, all blocks
    trained: int = 0               # trained parameters (head excluded)
    backward_blocks: int = 0       # blocks that get a backward pass (activation gradients)
    weight_grad_share: float = 0.0  # fraction of the projections' FLOPs whose weight gradients are computed


def method_cost(method: str, config: dict, s: Shape) -> MethodCost:
    """Closed form per method family of the registry (fields as in the resolved method config)."""
    d, n = s.d, s.layers
    if method == "full":
        return MethodCost(trained=s.total_params, backward_blocks=n, weight_grad_share=1.0)
    if method == "topk":
        k = min(int(config.get("k", 1)), n)
        return MethodCost(trained=k * s.block_params, backward_blocks=k, weight_grad_share=k / n)
    if method == "bitfit":
        return MethodCost(trained=n * (4 * d + s.ffn + d + 4 * d), backward_blocks=n)
    if method == "lora":
        r, targets = int(config.get("r", 8)), list(config.get("targets", ("q", "v")))
        io = sum(d + (s.ffn if t in ("ffn_in", "ffn_out") else d) for t in targets)
        return MethodCost(flops_per_token=2.0 * r * io * n, trained=r * io * n, backward_blocks=n)
    if method in ("dora", "vera"):
        r, targets = int(config.get("r", 8 if method == "dora" else 256)), list(config.get("targets", ("q", "v")))
        outs = sum(s.ffn if t in ("ffn_in", "up", "gate") else d for t in targets)
        io = sum(d + (s.ffn if t in ("ffn_in", "ffn_out", "up", "down", "gate") else d) for t in targets)
        # DoRA: LoRA plus one magnitude per output feature (its norm is per step, not per token);
        # VeRA: A x and B (d * .) with the shared frozen matrices, d and b trained
        trained = (r * io + outs) * n if method == "dora" else (outs + r * len(targets)) * n
        return MethodCost(flops_per_token=2.0 * r * io * n, trained=trained, backward_blocks=n)
    if method == "ia3":
        targets = list(config.get("targets", ("k", "v", "ffn")))
        trained = n * sum(s.ffn if t == "ffn" else d for t in targets)
        return MethodCost(flops_per_token=float(trained), trained=trained, backward_blocks=n)
    if method == "adapter":
        b = int(config.get("bottleneck", 64))
        per_block = 2 if config.get("kind", "houlsby") == "houlsby" else 1
        count = per_block * n
        return MethodCost(flops_per_token=4.0 * d * b * count, trained=count * (2 * d * b + b + d),
                          backward_blocks=n)
    if method == "prefix":
        length, hidden = int(config.get("length", 5)), int(config.get("mlp_hidden", 512))
        trained = length * d + d * hidden + hidden + hidden * 2 * n * d + 2 * n * d
        return MethodCost(extra_keys=length, trained=trained, backward_blocks=n)
    if method == "prompt":
        length = int(config.get("length", 20))
        return MethodCost(extra_tokens=length, trained=length * d, backward_blocks=n)
    # a method this table does not know: priced like a frozen backbone with every block in the backward pass
    return MethodCost(backward_blocks=n)


def train_flops_per_token(s: Shape, m: MethodCost, seq: float, *, lm_head: bool) -> float:
    """Forward + backward FLOPs per (real or soft) token of a training sequence of `seq` tokens."""
    keys = seq + m.extra_tokens + m.extra_keys
    block = s.block_flops(keys)
    proj = block - 4.0 * s.d * keys
    forward = s.layers * block + m.flops_per_token + (2.0 * s.d * s.vocab if lm_head else 0.0)
    backward = m.backward_blocks * block + m.flops_per_token + m.weight_grad_share * s.layers * proj
    if lm_head:
        backward += 2.0 * s.d * s.vocab * (2.0 if m.weight_grad_share >= 1.0 else 1.0)
    return forward + backward


def forward_flops_per_token(s: Shape, m: MethodCost, keys: float, *, lm_head: bool) -> float:
    return s.layers * s.block_flops(keys + m.extra_keys) + m.flops_per_token + (
        2.0 * s.d * s.vocab if lm_head else 0.0)


def train_memory_bytes(s: Shape, m: MethodCost, *, batch: int, seq: int, act_bytes: int, lm_head: bool,
                       checkpointing: bool) -> float:
    """Peak training memory: weights, grads + AdamW moments of the trained ones, kept activations, logits."""
    weights = 4.0 * (s.total_params + m.trained)
    trained = m.trained + (s.d * s.d if not lm_head else 0)
    states = 12.0 * trained
    tokens = batch * (seq + m.extra_tokens)
    keys = seq + m.extra_tokens + m.extra_keys
    per_block = tokens * (34 * s.d + 5 * s.heads * keys) * act_bytes / 2.0
    if checkpointing:
        per_block = tokens * s.d * act_bytes
    activations = per_block * max(m.backward_blocks, 1)
    logits = 3.0 * 4.0 * tokens * s.vocab if lm_head else 0.0
    return weights + states + activations + logits
