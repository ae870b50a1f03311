"""MoverScore v2 (DART's moverscore.py) on a tiny random DistilBERT saved as distilbert-base-uncased/."""
from __future__ import annotations

import json
import math

import pytest
import torch

pytest.importorskip("pyemd")

from bench.config import ConfigError
from bench.scorers.model_based import check_metric_model_dir, score_model_based
from bench.scorers.moverscore import (_weighted, idf_weights, load_moverscore_model, moverscore, pair_score,
                                      tokens_of)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "it", "rain",
         "in", "paris", "##s", "##ing", "run", "red", ".", ",", "!"]


def _save_tiny(root, seed=0):
    from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel

    path = root / "distilbert-base-uncased"
    path.mkdir(parents=True)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=True).save_pretrained(path)
    torch.manual_seed(seed)
    config = DistilBertConfig(vocab_size=len(WORDS), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=64)
    DistilBertModel(config).save_pretrained(path)
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp("mover"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_moverscore_model(tiny_dir)


def test_tokens_and_idf(tiny):
    tok, _ = tiny
    assert tokens_of(tok, "The cat RAINS.") == ["[CLS]", "the", "cat", "rain", "##s", ".", "[SEP]"]
    table, unseen = idf_weights(tok, ["the cat", "the dog", "a cat"])
    ids = dict(zip(WORDS, range(len(WORDS))))
    assert table[ids["the"]] == pytest.approx(math.log(4 / 3)) and table[ids["dog"]] == pytest.approx(math.log(2))
    assert table[ids["[CLS]"]] == 0.0 and table[ids["[SEP]"]] == 0.0  # in every text
    assert unseen == pytest.approx(math.log(4))
    (row_ids, weights, drop), = _weighted(tok, ["it rains ."], idf_weights(tok, ["it rains .", "a dog"]))
    assert drop == [False, False, False, True, True, False]  # "##s" and "." carry nothing
    assert weights[3] == weights[4] == 0.0 and weights[1] == pytest.approx(math.log(3 / 2))


def test_identical_texts_score_one_and_different_texts_less(tiny):
    tok, model = tiny
    refs = ["the cat sat on the mat", "it rains in paris", "a red dog"]
    same = moverscore(refs, refs, tok, model)
    # distances come from |x|^2 + |y|^2 - 2 x.y in float32, as in MoverScore v2, whose square root turns the
    # rounding of a zero distance into ~1e-4: identical texts score just under 1 there too
    assert same == pytest.approx([1.0] * 3, abs=1e-3) and all(v <= 1 for v in same)
    other = moverscore(refs, ["a dog sat", "the mat", "it rains in paris"], tok, model)
    assert all(o < 1 - 1e-3 for o in other)


def test_pair_score_equals_an_independent_transport_solution(tiny):
    """The score is 1 - min cost of moving the reference's idf mass onto the hypothesis' over normalised-embedding
    distances; here the transport problem is solved by scipy's linear programme instead of pyemd."""
    linprog = pytest.importorskip("scipy.optimize").linprog
    tok, model = tiny
    refs, hyps = ["the cat sat on the mat", "a dog runs in paris"], ["a cat sat", "the red dog is running"]
    rows_r = _weighted(tok, refs, idf_weights(tok, refs))
    rows_h = _weighted(tok, hyps, idf_weights(tok, hyps))
    ours = moverscore(refs, hyps, tok, model)
    for i in range(2):
        (r_ids, r_w, r_drop), (h_ids, h_w, h_drop) = rows_r[i], rows_h[i]
        with torch.no_grad():
            r_vec = model(input_ids=torch.tensor([r_ids])).last_hidden_state[0]
            h_vec = model(input_ids=torch.tensor([h_ids])).last_hidden_state[0]
        r_vec[torch.tensor(r_drop)] = 0
        h_vec[torch.tensor(h_drop)] = 0
        r_n = r_vec / (r_vec.norm(dim=-1, keepdim=True) + 1e-30)
        h_n = h_vec / (h_vec.norm(dim=-1, keepdim=True) + 1e-30)
        cost = torch.cdist(r_n.double(), h_n.double())          # only reference -> hypothesis moves matter
        a = torch.tensor(r_w, dtype=torch.float64)
        b = torch.tensor(h_w, dtype=torch.float64)
        a, b = a / a.sum(), b / b.sum()
        n, m = cost.shape
        eq = torch.zeros(n + m, n * m, dtype=torch.float64)
        for k in range(n):
            eq[k, k * m:(k + 1) * m] = 1
        for k in range(m):
            eq[n + k, k::m] = 1
        result = linprog(cost.flatten().numpy(), A_eq=eq.numpy(), b_eq=torch.cat([a, b]).numpy(), bounds=(0, None))
        assert result.status == 0
        # float64 distances here, MoverScore's float32 expansion there (see above); no token pair is identical
        assert ours[i] == pytest.approx(1 - result.fun, abs=1e-5)
        assert pair_score(r_vec, r_w, r_drop, h_vec, h_w, h_drop) == pytest.approx(ours[i], abs=1e-5)


def test_model_based_uses_the_first_reference_and_reports_missing_folders(tiny_dir, tiny):
    tok, model = tiny
    hyps, refs = ["a cat sat on the mat", "rain in paris"], [["the cat sat", "xyz"], ["it rains", ""]]
    out = score_model_based(hyps, refs, tiny_dir)
    assert list(out) == ["moverscore", "bertscore", "bleurt"]
    expected = moverscore(["the cat sat", "it rains"], hyps, tok, model)
    assert out["moverscore"][0] == pytest.approx(sum(expected) / 2) and "first reference" in out["moverscore"][1]
    assert out["bertscore"][0] is None and "no roberta-large/ folder" in out["bertscore"][1]
    assert out["bleurt"][0] is None
    none = score_model_based(hyps, refs, None)   # PEFT_BENCH_METRIC_MODELS=off in the tests (conftest)
    assert none["moverscore"][0] is None and "PEFT_BENCH_METRIC_MODELS=off" in none["moverscore"][1]


def test_bad_metric_model_dirs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no roberta-large/ folder .* and no distilbert-base-uncased/ folder"):
        check_metric_model_dir(tmp_path)
    (tmp_path / "distilbert-base-uncased").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        check_metric_model_dir(tmp_path)
    (tmp_path / "distilbert-base-uncased" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="expects distilbert-base-uncased"):
        check_metric_model_dir(tmp_path)
