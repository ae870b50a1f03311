"""Closed-form cost of one run's pieces from the model registry's architecture numbers (no torch, no weights).

Per token of a sequence of T tokens (T_k keys: T plus a prefix), one block of width d, FFN width f, costs in
the forward pass 2 (4 d^2 + 2 d f) FLOPs in its projections (the Llama layout: 2 (2 d^2 + 2 d w + 3 d f), k and v
at the key-value width w under grouped-query attention, a gated MLP) and 4 d T_k in attention (scores and the
weighted sum), plus what the method adds (LoRA 2 r (d_in + d_out) per adapted projection, a bottleneck adapter 4 d b).
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
    kv: int = 0        # key / value width: key-value heads x head dim under grouped-query attention (0: d)
    llama: bool = False     # Llama layout: gated MLP (gate, up, down), RMSNorm, rotary positions, final norm
    qkv_bias: bool = False  # Llama layout with q/k/v biases (Qwen2)
    tied: bool = True       # Llama layout: LM head tied to the embeddings
    final_norm: int = 0     # parameters of a decoder's final norm (GPT-2's ln_f, Llama's RMSNorm); top-k trains it
    type_vocab: int = 0     # encoders: token-type embeddings (BERT 2, RoBERTa 1), beside the embeddings' LayerNorm

    @property
    def kv_width(self) -> int:
        return self.kv or self.d

    def width_in(self, target: str) -> int:
        """Input width of a projection a method adapts (encoder / GPT-2 names and the Llama family's)."""
        return self.ffn if target in ("ffn_out", "down") else self.d

    def width_out(self, target: str) -> int:
        if target in ("k", "v"):
            return self.kv_width
        return self.ffn if target in ("ffn_in", "ffn", "up", "gate") else self.d

    @property
    def block_params(self) -> int:
        d, f, kv = self.d, self.ffn, self.kv_width
        if self.llama:      # q, o at d; k, v at kv width; gate, up, down; two RMSNorms
            return 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d + ((d + 2 * kv) if self.qkv_bias else 0)
        # q, k, v, o with biases; FFN in/out with biases; two LayerNorms
        return 2 * d * d + 2 * d * kv + 2 * d + 2 * kv + 2 * d * f + f + d + 4 * d

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.d if self.llama else (self.vocab + self.positions) * self.d

    @property
    def total_params(self) -> int:
        """The backbone and, for a causal LM, its LM head (a task head is counted apart)."""
        if self.llama:
            top = self.final_norm + (0 if self.tied else self.vocab * self.d)
        elif self.final_norm:                       # GPT-2: ln_f, the LM head tied to wte
            top = self.final_norm
        else:                                       # encoders: token types and the embeddings' LayerNorm
            top = self.type_vocab * self.d + 2 * self.d
        return self.layers * self.block_params + self.embedding_params + top

    def block_flops(self, keys: float) -> float:
        """Forward FLOPs per token of one block, attention over `keys` positions (queries at full width, so the
        scores and the weighted sum cost 4 d per key under grouped-query attention too)."""
        d, f, kv = self.d, self.ffn, self.kv_width
        return 2.0 * (2 * d * d + 2 * d * kv + (3 if self.llama else 2) * d * f) + 4.0 * d * keys


LLAMA_LAYOUT = ("llama", "mistral", "qwen2")


def shape_of(model: str) -> Shape:
    info = model_info(model)
    c = info.config
    d = c.get("hidden_size", c.get("n_embd"))
    heads = c.get("num_attention_heads", c.get("n_head"))
    llama = info.family in LLAMA_LAYOUT
    kv = 0
    if llama:
        kv = c.get("num_key_value_heads", heads) * (c.get("head_dim") or d // heads)
    final_norm = d if llama else 2 * d if info.family == "gpt2" else 0
    return Shape(d=d, layers=c.get("num_hidden_layers", c.get("n_layer")), heads=heads,
                 ffn=c.get("intermediate_size") or c.get("n_inner") or 4 * d, vocab=c["vocab_size"],
                 positions=c.get("max_position_embeddings", c.get("n_positions", 512)), kv=kv, llama=llama,
                 qkv_bias=info.family == "qwen2", tied=bool(c.get("tie_word_embeddings", True)),
                 final_norm=final_norm, type_vocab=0 if final_norm else int(c.get("type_vocab_size", 2)))


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
    """Closed form per method family of the registry (fields as in the resolved method config); k and v at the
    key-value width under grouped-query attention."""
    d, n = s.d, s.layers
    if method == "full":
        return MethodCost(trained=s.total_params, backward_blocks=n, weight_grad_share=1.0)
    if method == "topk":
        k = min(int(config.get("k", 1)), n)
        return MethodCost(trained=k * s.block_params + s.final_norm, backward_blocks=k, weight_grad_share=k / n)
    if method == "bitfit":
        if s.llama:         # Qwen2's q/k/v biases; Llama and Mistral have none (the method refuses them)
            return MethodCost(trained=n * (d + 2 * s.kv_width) if s.qkv_bias else 0, backward_blocks=n)
        # q, k, v, o, FFN in (f) and out, both LayerNorms' biases; one more LayerNorm bias (the embeddings' or
        # GPT-2's ln_f)
        return MethodCost(trained=n * (7 * d + s.ffn) + d, backward_blocks=n)
    if method in ("lora", "dora", "vera"):
        r = int(config.get("r", 256 if method == "vera" else 8))
        targets = list(config.get("targets", ("q", "v")))
        io = sum(s.width_in(t) + s.width_out(t) for t in targets)
        outs = sum(s.width_out(t) for t in targets)
        # LoRA: A and B; DoRA: LoRA plus one magnitude per output feature (its norm is per step, not per token);
        # VeRA: A x and B (d * .) with the shared frozen matrices, d and b trained
        trained = {"lora": r * io, "dora": r * io + outs, "vera": outs + r * len(targets)}[method] * n
        return MethodCost(flops_per_token=2.0 * r * io * n, trained=trained, backward_blocks=n)
    if method == "ia3":
        targets = list(config.get("targets", ("k", "v", "ffn")))
        trained = n * sum(s.width_out(t) for t in targets)
        return MethodCost(flops_per_token=float(trained), trained=trained, backward_blocks=n)
    if method == "adapter":
        b, kind = int(config.get("bottleneck", 64)), config.get("kind", "houlsby")
        count = (2 if kind == "houlsby" else 1) * n
        own_norm = 2 * d if kind == "lin" else 0            # Lin et al.'s adapter has a LayerNorm of its own
        return MethodCost(flops_per_token=4.0 * d * b * count, trained=count * (2 * d * b + b + d + own_norm),
                          backward_blocks=n)
    if method == "prefix":
        # the reparameterisation's width is the key / value width: E (length x w) -> w x hidden -> 2 n w
        length, hidden, w = int(config.get("length", 5)), int(config.get("mlp_hidden", 512)), s.kv_width
        trained = length * w + w * hidden + hidden + hidden * 2 * n * w + 2 * n * w
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
