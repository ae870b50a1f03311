"""Every method's parameter count at SmolLM2-135M's shape (a Llama: L = 30 layers, d = 576, 9 query / 3 key-value
heads of 64, so k and v have kv = 192 outputs; gated MLP of f = 1536; vocabulary 49,152, tied LM head), in closed
form, counted on the meta device; plus Qwen2's bias terms at Qwen2.5-0.5B's shape. The derivations are in
docs/methods.md ("Counts on the Llama layout")."""
from __future__ import annotations

import pytest

from bench.commands.params import counts
from bench.config import ConfigError
from bench.models import MODELS

L, D, KV, F = 30, 576, 192, 1536
BLOCK = 2 * D * D + 2 * D * KV + 3 * D * F + 2 * D    # q, o; k, v; gate, up, down; two RMSNorm weights
BASE = 49152 * D + L * BLOCK + D                      # embeddings (tied LM head), blocks, final norm


def _adapter(b: int, own_norm: bool = False) -> int:
    return D * b + b + b * D + D + (2 * D if own_norm else 0)   # down (+bias), up (+bias), Lin's own LayerNorm


SMOLLM2 = [
    ("lora", ["r=8"], L * (8 * (D + D) + 8 * (D + KV))),                                  # q, v
    ("lora", ["r=8", "targets=q,k,v,o,gate,up,down"],
     L * 8 * (2 * (D + D) + 2 * (D + KV) + 3 * (D + F))),
    ("lora", ["r=4", "targets=gate,ffn_in,ffn_out"], L * 4 * 3 * (D + F)),
    ("adapter", ["kind=houlsby", "bottleneck=64"], L * 2 * _adapter(64)),                 # after o_proj, down_proj
    ("adapter", ["kind=pfeiffer", "bottleneck=64"], L * _adapter(64)),                    # after the MLP
    ("adapter", ["kind=lin", "bottleneck=64"], L * _adapter(64, own_norm=True)),           # after the block
    ("prefix", ["length=5"], 5 * L * 2 * KV),                                             # per key-value head
    ("prefix", ["length=10"], 10 * L * 2 * KV),
    ("prompt", ["length=20"], 20 * D),
    ("topk", ["k=2"], 2 * BLOCK + D),                                                     # + the final RMSNorm
    ("topk", ["k=2", "final_norm=false"], 2 * BLOCK),
    ("full", [], BASE),
]


def test_the_issue_figures():
    assert BASE == 134_515_008
    assert SMOLLM2[0][2] == 30 * (8 * (576 + 576) + 8 * (576 + 192)) == 460_800


@pytest.mark.parametrize("method,settings,expected", SMOLLM2,
                         ids=[f"{m}-{'-'.join(s)}" for m, s, _ in SMOLLM2])
def test_smollm2_135m_counts(method, settings, expected):
    result = counts("smollm2-135m", method, settings)
    assert result["kind"] == "generate" and result["head"] == 0      # the LM head is tied to the embeddings
    assert result["stored"] == expected
    if method != "prefix":
        assert result["trained"] == expected
    added = 0 if method in ("full", "topk") else result["trained"]
    assert result["total"] == BASE + added
    assert result["percent"] == pytest.approx(100 * expected / BASE)


def test_smollm2_prefix_trains_its_reparameterisation():
    """Trained: embedding (5 x kv), Linear(kv, 512), Linear(512, L x 2 x kv), as PEFT sizes it under GQA."""
    result = counts("smollm2-135m", "prefix", ["length=5", "mlp_hidden=512"])
    assert result["trained"] == 5 * KV + (KV * 512 + 512) + (512 * L * 2 * KV + L * 2 * KV)


def test_smollm2_classifier_head_is_score():
    result = counts("smollm2-135m", "lora", ["r=8"], "classify", num_labels=3)
    assert result["head"] == D * 3                     # score: Linear(d, labels) without bias
    assert result["stored"] == 460_800


def test_bitfit_on_a_bias_free_llama_is_an_error():
    with pytest.raises(ConfigError, match="bitfit: llama has no bias terms"):
        counts("smollm2-135m", "bitfit")


def test_qwen2_bitfit_trains_the_qkv_biases():
    c = MODELS["qwen2.5-0.5b"].config
    layers, d = c["num_hidden_layers"], c["hidden_size"]
    kv = c["num_key_value_heads"] * d // c["num_attention_heads"]
    assert counts("qwen2.5-0.5b", "bitfit")["stored"] == layers * (d + 2 * kv) == 27_648
    assert counts("qwen2.5-0.5b", "bitfit", ["subset=qkv"])["stored"] == 27_648
    assert counts("qwen2.5-0.5b", "bitfit", ["subset=query"])["stored"] == layers * d
    for subset, message in (("intermediate", "mlp.up_proj has no bias"), ("layernorm", "no LayerNorm biases")):
        with pytest.raises(ConfigError, match=message):
            counts("qwen2.5-0.5b", "bitfit", [f"subset={subset}"])
