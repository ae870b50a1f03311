"""BLEURT (DART's model-based metric) on a tiny random BERT regression model, against a forward pass written by
hand from BLEURT's TensorFlow code (bleurt/lib/modeling.py, bleurt/model.py, bleurt/encoding.py); and DART's
three model-based metrics loaded through a local Hugging Face cache, as they load from the Hub by default."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from bench.config import ConfigError
from bench.scorers import model_based
from bench.scorers.bleurt import BLEURT_MODEL, bleurt, encode_pair, truncate_pair
from bench.scorers.model_based import HUB_IDS, MODEL_METRICS, score_model_based

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "it", "rain",
         "in", "paris", "##s", "##ing", "run", "red", ".", ",", "!", "is", "heavy"]


def _save_tiny_bleurt(root, seed=0, hidden_act="gelu"):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = root / BLEURT_MODEL
    path.mkdir(parents=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True).save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, num_labels=1, hidden_act=hidden_act)
    model = BertForSequenceClassification(config)
    with torch.no_grad():   # larger weights than the init, so that the GELU form matters
        for p in model.parameters():
            p.mul_(8.0)
    model.save_pretrained(path)
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return _save_tiny_bleurt(tmp_path_factory.mktemp("bleurt"))


def encode_example(reference, candidate, tokenizer, max_seq_length):
    """bleurt/encoding.py encode_example, as written there (before padding)."""
    tokens_ref = tokenizer.tokenize(reference)
    tokens_cand = tokenizer.tokenize(candidate)
    while True:                                      # _truncate_seq_pair(tokens_ref, tokens_cand, max - 3)
        if len(tokens_ref) + len(tokens_cand) <= max_seq_length - 3:
            break
        if len(tokens_ref) > len(tokens_cand):
            tokens_ref.pop()
        else:
            tokens_cand.pop()
    tokens, segment_ids = ["[CLS]"], [0]
    for token in tokens_ref:
        tokens.append(token)
        segment_ids.append(0)
    tokens.append("[SEP]")
    segment_ids.append(0)
    for token in tokens_cand:
        tokens.append(token)
        segment_ids.append(1)
    tokens.append("[SEP]")
    segment_ids.append(1)
    return tokenizer.convert_tokens_to_ids(tokens), segment_ids


def bleurt_forward_by_hand(state: dict, config, input_ids, segment_ids) -> float:
    """BLEURT's graph for one unpadded pair: BERT (modeling.py: embeddings + LayerNorm, post-LN transformer
    layers, tanh-approximated gelu, pooler = dense + tanh on [CLS]) and model.py's `tf.layers.dense(output, 1)`."""
    w = {k: v.double() for k, v in state.items()}
    ids, seg = torch.tensor(input_ids), torch.tensor(segment_ids)
    n, d, heads = len(input_ids), config.hidden_size, config.num_attention_heads
    dh = d // heads

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-12) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def dense(x, name):
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def gelu(x):  # bleurt/lib/modeling.py gelu
        return x * 0.5 * (1.0 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    e = "bert.embeddings"
    h = w[f"{e}.word_embeddings.weight"][ids] + w[f"{e}.token_type_embeddings.weight"][seg] + \
        w[f"{e}.position_embeddings.weight"][:n]
    h = ln(h, f"{e}.LayerNorm")
    for i in range(config.num_hidden_layers):
        p = f"bert.encoder.layer.{i}"
        q, k, v = (dense(h, f"{p}.attention.self.{x}").view(n, heads, dh).transpose(0, 1)
                   for x in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh), dim=-1)
        context = (probs @ v).transpose(0, 1).reshape(n, d)
        h = ln(dense(context, f"{p}.attention.output.dense") + h, f"{p}.attention.output.LayerNorm")
        inner = gelu(dense(h, f"{p}.intermediate.dense"))
        h = ln(dense(inner, f"{p}.output.dense") + h, f"{p}.output.LayerNorm")
    pooled = torch.tanh(dense(h[0], "bert.pooler.dense"))
    return float(dense(pooled, "classifier"))


PAIRS = [("the cat sat on the mat", "a cat sat on a red mat"),
         ("it is raining heavy rain in paris", "rain in paris"),
         ("the dog", ""),
         ("", "the dog runs"),
         ("The CAT sat.", "the cat sat !")]


def test_encoding_is_bleurts_encode_example_with_its_truncation(tiny_dir):
    from transformers import AutoTokenizer

    from bench.scorers.bleurt import BLEURT_MAX_SEQ_LENGTH

    tok = AutoTokenizer.from_pretrained(tiny_dir / BLEURT_MODEL)
    long_ref, long_cand = " ".join(["the cat"] * 40), " ".join(["a dog"] * 45)
    cases = PAIRS + [(long_ref, "rain"), ("rain", long_cand), (long_ref, long_cand)]
    for ref, cand in cases:
        for limit in (BLEURT_MAX_SEQ_LENGTH, 9, 10):
            assert encode_pair(tok, ref, cand, limit) == encode_example(ref, cand, tok, limit), (ref, cand, limit)
    assert truncate_pair([1, 2, 3], [4, 5, 6], 4) == ([1, 2], [4, 5])   # a tie pops the candidate first
    assert len(encode_pair(tok, long_ref, long_cand)[0]) == BLEURT_MAX_SEQ_LENGTH


def test_bleurt_equals_bleurts_graph_written_by_hand(tiny_dir):
    from transformers import AutoConfig

    out = score_model_based([c for _, c in PAIRS], [[r, "ignored"] for r, _ in PAIRS], tiny_dir)
    value, note = out["bleurt"]
    assert "BLEURT-Tiny 128" in note and str(tiny_dir / BLEURT_MODEL) in note
    assert out["bertscore"][0] is None and "no roberta-large/ folder" in out["bertscore"][1]
    from safetensors.torch import load_file

    state = load_file(str(tiny_dir / BLEURT_MODEL / "model.safetensors"))
    config = AutoConfig.from_pretrained(tiny_dir / BLEURT_MODEL)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir / BLEURT_MODEL)
    by_hand = [bleurt_forward_by_hand(state, config, *encode_example(r, c, tok, 128)) for r, c in PAIRS]
    assert len({round(s, 3) for s in by_hand}) == len(PAIRS)   # the pairs score differently
    assert value == pytest.approx(sum(by_hand) / len(by_hand), abs=1e-6)
    # per pair, batched with padding (the first reference only)
    from bench.scorers.model_based import _from_dir

    tokenizer, model, _ = _from_dir("bleurt", tiny_dir)
    per_pair = bleurt([r for r, _ in PAIRS], [c for _, c in PAIRS], tokenizer, model)
    tanh_gap = max(abs(a - b) for a, b in zip(per_pair, by_hand))
    assert tanh_gap < 1e-6
    # transformers' exact-erf "gelu" would not be BLEURT's graph: the tanh form is what makes them agree
    from transformers import BertForSequenceClassification

    erf = BertForSequenceClassification.from_pretrained(tiny_dir / BLEURT_MODEL).eval()
    assert erf.config.hidden_act == "gelu"
    erf_scores = bleurt([r for r, _ in PAIRS], [c for _, c in PAIRS], tokenizer, erf)
    assert max(abs(a - b) for a, b in zip(erf_scores, by_hand)) > 10 * tanh_gap


def test_a_bleurt_folder_that_is_not_a_one_output_bert_is_a_config_error(tmp_path):
    import json

    (tmp_path / BLEURT_MODEL).mkdir()
    (tmp_path / BLEURT_MODEL / "config.json").write_text(json.dumps({"model_type": "bert", "num_labels": 2}))
    with pytest.raises(ConfigError, match="one"):
        score_model_based(["a"], [["a"]], tmp_path)
    (tmp_path / BLEURT_MODEL / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    with pytest.raises(ConfigError, match="BLEURT expects a BERT model"):
        score_model_based(["a"], [["a"]], tmp_path)


# -- from the Hub (through a local Hugging Face cache, the network refused) ----------------------------------
def _hub_cache(cache, folders: dict[str, object]):
    """A Hugging Face hub cache holding `folders` (Hub id -> a save_pretrained folder) at one snapshot each."""
    for hub_id, folder in folders.items():
        repo = cache / ("models--" + hub_id.replace("/", "--"))
        snapshot = repo / "snapshots" / ("0" * 40)
        shutil.copytree(folder, snapshot)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0" * 40)
    return cache


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.delenv("PEFT_BENCH_METRIC_MODELS")
    model_based.hub_unreachable.cache_clear()
    monkeypatch.setattr(model_based, "hub_unreachable", lambda endpoint, timeout=10.0: f"{endpoint}: refused")


def test_every_metric_loads_by_hub_id_from_the_cache_when_the_hub_does_not_answer(tmp_path, tiny_dir, no_network):
    pytest.importorskip("pyemd")
    from tests.test_scorers_bertscore import _save_tiny as save_roberta
    from tests.test_scorers_moverscore import _save_tiny as save_distilbert

    models = tmp_path / "models"
    shutil.copytree(tiny_dir / BLEURT_MODEL, models / BLEURT_MODEL)
    save_roberta(models)
    save_distilbert(models)
    cache = _hub_cache(tmp_path / "hub", {HUB_IDS[m]: models / MODEL_METRICS[m] for m in HUB_IDS})
    hyps, refs = ["a cat sat on the mat", "rain in paris"], [["the cat sat", "a cat"], ["it rains", ""]]
    from_hub = score_model_based(hyps, refs, None, cache_dir=cache)
    offline = score_model_based(hyps, refs, models)
    for metric in ("moverscore", "bertscore", "bleurt"):
        assert from_hub[metric][0] is not None and from_hub[metric][0] == pytest.approx(offline[metric][0])
        assert f"{HUB_IDS[metric]} (Hub)" in from_hub[metric][1]


def test_a_model_neither_on_the_hub_nor_cached_is_empty_with_the_reason(tmp_path, tiny_dir, no_network):
    cache = _hub_cache(tmp_path / "hub", {HUB_IDS["bleurt"]: tiny_dir / BLEURT_MODEL})
    out = score_model_based(["a cat"], [["the cat"]], None, cache_dir=cache)
    assert out["bleurt"][0] is not None
    for metric in ("moverscore", "bertscore"):
        value, note = out[metric]
        assert value is None and note.startswith(f"not computed: {HUB_IDS[metric]} could not be loaded")
        assert "refused" in note and f"--metric-model-dir DIR with DIR/{MODEL_METRICS[metric]}" in note


def test_the_environment_variable_names_a_folder_or_turns_the_metrics_off(tiny_dir, monkeypatch):
    monkeypatch.setenv("PEFT_BENCH_METRIC_MODELS", str(tiny_dir))
    assert score_model_based(["a cat"], [["the cat"]])["bleurt"][0] is not None
    monkeypatch.setenv("PEFT_BENCH_METRIC_MODELS", "off")
    out = score_model_based(["a cat"], [["the cat"]])
    assert all(v is None and n == "not computed: PEFT_BENCH_METRIC_MODELS=off" for v, n in out.values())
