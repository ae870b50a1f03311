"""The Llama layout (llama, mistral, qwen2): Arch records, registry entries with their real configs, and the tiny
random models built from small configs with grouped-query attention."""
from __future__ import annotations

import pytest
import torch

from bench.models import MODELS, build_meta, load_model, load_tokenizer, make_method
from methods import ARCHES, arch_of
from methods.base import blocks_of, get_module, head_dim, kv_width, n_kv_heads

LLAMA_LAYOUT = ("llama", "mistral", "qwen2")
TINY = ("tiny-llama", "tiny-mistral", "tiny-qwen2")


def test_one_arch_record_per_model_type():
    for family in LLAMA_LAYOUT:
        arch = ARCHES[family]
        assert arch.family == family and arch.decoder and arch.ffn_gate and arch.n_kv_heads_attr
        assert arch.head == ("score",) and arch.final_norm == "model.norm" and arch.qkv is None


def _module_shapes(model, arch):
    block = blocks_of(model, arch)[0]
    return {field: tuple(get_module(block, getattr(arch, field)).weight.shape)
            for field in ("q", "k", "v", "attn_out", "ffn_gate", "ffn_in", "ffn_out")}


def test_smollm2_135m_shape_from_the_registry():
    """config.json facts of HuggingFaceTB/SmolLM2-135M-Instruct: 30 layers, d 576, 9 query / 3 key-value heads of
    64, MLP 1536, tied embeddings, vocabulary 49,152; 134,515,008 parameters in closed form."""
    info = MODELS["smollm2-135m"]
    assert info.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct" and info.family == "llama"
    model, arch = build_meta("smollm2-135m", "generate", make_method("full"))
    assert (n_kv_heads(model, arch), head_dim(model, arch), kv_width(model, arch)) == (3, 64, 192)
    assert _module_shapes(model, arch) == {"q": (576, 576), "k": (192, 576), "v": (192, 576),
                                           "attn_out": (576, 576), "ffn_gate": (1536, 576),
                                           "ffn_in": (1536, 576), "ffn_out": (576, 1536)}
    assert len(blocks_of(model, arch)) == 30
    assert model.lm_head.weight is model.model.embed_tokens.weight          # tied
    per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536 + 2 * 576     # q, o; k, v; gate, up, down; 2 norms
    expected = 49152 * 576 + 30 * per_layer + 576                             # embeddings, blocks, final norm
    assert expected == 134_515_008
    assert sum(p.numel() for p in model.parameters()) == expected
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (1, 2, 2)


@pytest.mark.parametrize("name,layers,d,heads,kv,total", [
    # closed form: embeddings + layers x (q, o: d^2 each; k, v: d x kv x 64; gate, up, down; 2 norms) + final norm
    ("smollm2-1.7b", 24, 2048, 32, 32, 49152 * 2048 + 24 * (2 * 2048 ** 2 + 2 * 2048 ** 2 + 3 * 2048 * 8192
                                                            + 2 * 2048) + 2048),
    # Qwen2: plus the q, k, v biases (d + 2 x kv width) per layer
    ("qwen2.5-0.5b", 24, 896, 14, 2, 151936 * 896 + 24 * (2 * 896 ** 2 + 2 * 896 * 128 + 3 * 896 * 4864
                                                          + 2 * 896 + 896 + 2 * 128) + 896),
])
def test_larger_entries_count_without_weights(name, layers, d, heads, kv, total):
    model, arch = build_meta(name, "generate", make_method("full"))
    assert model.config.num_hidden_layers == layers and model.config.hidden_size == d
    assert (model.config.num_attention_heads, n_kv_heads(model, arch)) == (heads, kv)
    assert sum(p.numel() for p in model.parameters()) == total


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_have_grouped_query_attention(name):
    torch.manual_seed(0)
    model, tokenizer = load_model(name, kind="generate")
    arch = arch_of(model)
    assert arch.family == MODELS[name].family
    assert (model.config.num_attention_heads, n_kv_heads(model, arch), kv_width(model, arch)) == (4, 2, 16)
    assert _module_shapes(model, arch)["k"] == (16, 32)
    assert model.config.pad_token_id == tokenizer.pad_token_id == tokenizer.eos_token_id
    ids = tokenizer(["ab", "abc d"], padding=True, return_tensors="pt")
    assert torch.isfinite(model(**ids).logits).all()


def test_tiny_tokenizers_of_the_layout():
    llama = load_tokenizer("tiny-llama")
    assert (llama.unk_token_id, llama.bos_token_id, llama.eos_token_id) == (0, 1, 2)
    assert llama("ab")["input_ids"] == [3 + ord("a"), 3 + ord("b")]         # bytes after the 3 specials, no BOS
    qwen2 = load_tokenizer("tiny-qwen2")
    assert qwen2.eos_token_id == 256 and qwen2("ab")["input_ids"] == [ord("a"), ord("b")]


def test_bias_terms_by_family():
    """Qwen2 has q, k, v biases; Llama and Mistral have none anywhere."""
    for name, biased in (("tiny-llama", False), ("tiny-mistral", False), ("tiny-qwen2", True)):
        model, _ = load_model(name, kind="generate")
        names = sorted(n.split(".")[-2] for n, _ in model.named_parameters() if n.endswith("bias"))
        assert names == (sorted(["q_proj", "k_proj", "v_proj"] * 2) if biased else [])


def test_lora_on_every_projection_of_the_layout():
    from methods import LoRA
    from methods.lora import LoRALinear

    assert LoRA(targets=("q", "gate", "up", "down")).targets == ("q", "gate", "ffn_in", "ffn_out")
    with pytest.raises(ValueError, match="distinct names"):
        LoRA(targets=("up", "ffn_in"))
    model, _ = load_model("tiny-qwen2", kind="generate")
    arch = arch_of(model)
    block = blocks_of(model, arch)[1]
    bias = block.self_attn.k_proj.bias
    from bench.models import apply_method

    apply_method(model, LoRA(r=2, targets=("q", "k", "v", "o", "gate", "up", "down")))
    shapes = {}
    for field in ("q", "k", "v", "attn_out", "ffn_gate", "ffn_in", "ffn_out"):
        layer = get_module(block, getattr(arch, field))
        assert isinstance(layer, LoRALinear)
        shapes[field] = (tuple(layer.lora_A.shape), tuple(layer.lora_B.shape))
    assert block.self_attn.k_proj.bias is bias                              # shares the pretrained bias
    assert shapes["k"] == ((2, 32), (16, 2)) and shapes["ffn_gate"] == ((2, 32), (64, 2))
    assert shapes["ffn_out"] == ((2, 64), (32, 2))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
@pytest.mark.parametrize("method,settings", [("prefix", ["length=3", "shift_positions=true"]),
                                             ("prompt", ["length=3"])])
def test_methods_decode_the_same_with_and_without_the_cache(name, method, settings):
    """The prefix (joined again at every step, real tokens shifted by L) and the soft prompt (cached with the
    source) give the same tokens with and without a KV cache, batched and one at a time, greedy and beam
    search; greedy equals a loop of full forwards."""
    from bench.decode.generate import generate_ids
    from bench.decode.protocol import Decoding
    from bench.models import apply_method
    from methods.base import position_offset

    torch.manual_seed(0)
    model, tokenizer = load_model(name, kind="generate")
    apply_method(model, make_method(method, settings))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():                                    # a trained-looking method state
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    model.eval()
    sources = [tokenizer("name[x] food[y]")["input_ids"], tokenizer("ab")["input_ids"]]
    for beams in (1, 3):
        decoding = Decoding(num_beams=beams, max_new_tokens=8, min_new_tokens=8, batch_size=2, ban_newlines=False)
        cached = generate_ids(model, tokenizer, sources, decoding, progress=False)
        assert all(len(row) == 8 for row in cached)
        assert generate_ids(model, tokenizer, sources, decoding, progress=False, use_cache=False) == cached
        assert [generate_ids(model, tokenizer, [s], decoding, progress=False)[0] for s in sources] == cached
        if beams == 1:
            for source, row in zip(sources, cached):
                ids = torch.tensor([source])
                for _ in range(8):
                    positions = torch.arange(ids.shape[1])[None] + position_offset(model)
                    with torch.no_grad():
                        logits = model(input_ids=ids, position_ids=positions).logits[0, -1]
                    logits[tokenizer.eos_token_id] = float("-inf")          # min_new_tokens
                    ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
                assert ids[0, len(source):].tolist() == row


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-mistral"])
def test_bitfit_refuses_a_bias_free_family(name):
    from bench.config import ConfigError
    from bench.models import apply_method

    model, _ = load_model(name, kind="classify")
    before = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ConfigError, match=f"bitfit: {MODELS[name].family} has no bias terms"):
        apply_method(model, make_method("bitfit"))
    assert [p.requires_grad for p in model.parameters()] == before      # refused before freezing anything
