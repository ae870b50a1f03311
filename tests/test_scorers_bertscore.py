"""BERTScore (DART's model-based metric) on a tiny random RoBERTa saved as DIR/roberta-large: no downloads."""
import json

import pytest
import torch

from bench.config import ConfigError
from bench.scorers.bertscore import BERTSCORE_LAYER, bertscore, encode, load_bertscore_model
from bench.scorers.model_based import score_model_based
from bench.tiny_tokenizer import SPECIALS, byte_alphabet


def _tokenizer(add_prefix_space=False):
    from transformers import RobertaTokenizer

    vocab = {t: i for i, t in enumerate(SPECIALS["roberta"])}
    for ch in byte_alphabet():
        vocab[ch] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=512, add_prefix_space=add_prefix_space)


def _save_tiny(root, layers=BERTSCORE_LAYER, add_prefix_space=False, seed=0):
    from transformers import RobertaConfig, RobertaModel

    tok = _tokenizer(add_prefix_space)
    torch.manual_seed(seed)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=514, pad_token_id=1, type_vocab_size=1)
    path = root / "roberta-large"
    RobertaModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return root


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return _save_tiny(tmp_path_factory.mktemp("metric_models"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_bertscore_model(tiny_dir)


def _direct(tok, model, hyp, ref):
    """The formula written out token by token, on the same model (layer 17, specials matched but not averaged)."""
    def vectors(text):
        ids = tok(" " + text.strip())["input_ids"]
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[BERTSCORE_LAYER][0]
        return ids, h

    (hi, hv), (ri, rv) = vectors(hyp), vectors(ref)
    cos = torch.nn.functional.cosine_similarity
    special = {tok.cls_token_id, tok.sep_token_id}
    best_h = [max(float(cos(hv[a], rv[b], dim=0)) for b in range(len(ri)))
              for a in range(len(hi)) if hi[a] not in special]
    best_r = [max(float(cos(hv[a], rv[b], dim=0)) for a in range(len(hi)))
              for b in range(len(ri)) if ri[b] not in special]
    p, r = sum(best_h) / len(best_h), sum(best_r) / len(best_r)
    return p, r, 2 * p * r / (p + r)


def test_encode_adds_the_prefix_space_and_the_special_tokens(tiny):
    tok, _ = tiny
    ids = encode(tok, "  a cat ")
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.convert_ids_to_tokens(ids[1:3]) == ["Ġ", "a"]
    assert encode(tok, " ") == [tok.cls_token_id, tok.sep_token_id]


def test_a_tokenizer_without_a_length_limit_is_cut_at_roberta_larges_512_positions(tiny):
    """roberta-large's Hub repo has no tokenizer_config.json: transformers 5 then sets no limit, and a text longer
    than 512 tokens would index position 514 (bert-score's transformers gave roberta-large 512)."""
    from bench.scorers.bertscore import prepare_bertscore

    _, model = tiny
    unlimited = _tokenizer()
    unlimited.model_max_length = int(1e30)
    tok, model = prepare_bertscore(unlimited, model, "roberta-large (Hub)")
    assert tok.model_max_length == 512
    ids = encode(tok, "x " * 400)
    assert len(ids) == 512 and ids[-1] == tok.sep_token_id
    assert bertscore(["x " * 400], [["x y"]], tok, model).f1[0] == pytest.approx(
        bertscore([tok.decode(ids[1:-1])], [["x y"]], tok, model).f1[0], abs=1e-6)


def test_identical_texts_score_one_and_scores_are_cosines(tiny):
    tok, model = tiny
    res = bertscore(["the cat sat on the mat", "rain in paris"],
                    [["the cat sat on the mat"], ["a dog barks loudly at night"]], tok, model)
    assert res.precision[0] == pytest.approx(1.0, abs=1e-5)
    assert res.recall[0] == pytest.approx(1.0, abs=1e-5) and res.f1[0] == pytest.approx(1.0, abs=1e-5)
    assert res.f1[1] < 0.999
    for value in res.precision + res.recall + res.f1:
        assert -1.0 - 1e-6 <= value <= 1.0 + 1e-6
    assert res.corpus_f1 == pytest.approx((res.f1[0] + res.f1[1]) / 2)


def test_matches_the_formula_computed_directly(tiny):
    tok, model = tiny
    pairs = [("a cat sits on the mat", "the cat sat on a red mat today"), ("heavy rain", "it is raining in paris")]
    res = bertscore([h for h, _ in pairs], [[r] for _, r in pairs], tok, model)
    for i, (h, r) in enumerate(pairs):
        p, rc, f = _direct(tok, model, h, r)
        assert res.precision[i] == pytest.approx(p, abs=1e-5)
        assert res.recall[i] == pytest.approx(rc, abs=1e-5)
        assert res.f1[i] == pytest.approx(f, abs=1e-5)


def test_max_over_references_and_blank_slots(tiny):
    tok, model = tiny
    hyp, refs = "a cat sits on the mat", ["it is raining in paris", "the cat sat on the mat", "xyz"]
    singles = [bertscore([hyp], [[r]], tok, model) for r in refs]
    multi = bertscore([hyp], [refs], tok, model)
    assert multi.f1[0] == pytest.approx(max(s.f1[0] for s in singles))
    assert multi.precision[0] == pytest.approx(max(s.precision[0] for s in singles))
    assert multi.recall[0] == pytest.approx(max(s.recall[0] for s in singles))
    assert len({round(s.f1[0], 6) for s in singles}) == 3  # the max is a real choice
    # a blank slot scores 0 (as bert-score sets it), so it never beats a reference with a positive score
    blank = bertscore([hyp, hyp, ""], [refs[:2] + [""], [""], ["the cat"]], tok, model)
    best = max(s.f1[0] for s in singles[:2])
    assert best > 0 and blank.f1[0] == pytest.approx(best)
    assert blank.f1[1] == 0.0 and blank.precision[1] == 0.0 and blank.recall[1] == 0.0
    assert blank.f1[2] == 0.0  # blank hypothesis


def test_score_model_based_reports_bertscore_with_a_directory(tiny_dir, tiny):
    tok, model = tiny
    hyps, refs = ["a cat sits on the mat", "heavy rain"], [["the cat sat", ""], ["it rains", "rain falls"]]
    out = score_model_based(hyps, refs, tiny_dir)
    assert list(out) == ["moverscore", "bertscore", "bleurt"]
    assert out["bertscore"][0] == pytest.approx(bertscore(hyps, refs, tok, model).corpus_f1)
    assert "layer 17" in out["bertscore"][1]
    for name in ("moverscore", "bleurt"):
        value, note = out[name]
        assert value is None and note.startswith("not computed") and "--metric-model-dir" not in note
    none = score_model_based(hyps, refs, None)   # PEFT_BENCH_METRIC_MODELS=off in the tests (conftest)
    assert none["bertscore"][0] is None and none["bertscore"][1] == "not computed: PEFT_BENCH_METRIC_MODELS=off"


def test_a_missing_or_malformed_model_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no roberta-large/ folder"):
        load_bertscore_model(tmp_path)
    (tmp_path / "roberta-large").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        load_bertscore_model(tmp_path)
    (tmp_path / "roberta-large" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json cannot be read"):
        load_bertscore_model(tmp_path)
    (tmp_path / "roberta-large" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="expects a RoBERTa model"):
        load_bertscore_model(tmp_path)
    shallow = _save_tiny(tmp_path / "shallow", layers=2)
    with pytest.raises(ConfigError, match="2 layers; BERTScore uses layer 17"):
        load_bertscore_model(shallow)
    no_weights = _save_tiny(tmp_path / "noweights")
    (no_weights / "roberta-large" / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="cannot load the model weights"):
        load_bertscore_model(no_weights)


def test_equals_the_bert_score_package_on_the_tiny_model(tmp_path):
    bert_score = pytest.importorskip("bert_score")
    # transformers 5 ignores bert-score's add_prefix_space=True argument: give the tokenizer the prefix space
    # itself, so both tokenise alike; batch_size=1 avoids bert-score's zero-padded cosines
    root = _save_tiny(tmp_path, add_prefix_space=True, seed=1)
    tok, model = load_bertscore_model(root)
    hyps = ["a cat sits on the mat", "heavy rain falls in paris", "the cat"]
    refs = [["the cat sat on a red mat today", "the feline was on the mat"],
            ["it is raining heavily in paris", "rain"], ["the cat", "a dog"]]
    assert encode(tok, hyps[0]) == tok(hyps[0])["input_ids"]
    p, r, f = bert_score.score(hyps, refs, model_type=str(root / "roberta-large"), num_layers=BERTSCORE_LAYER,
                               batch_size=1, device="cpu", use_fast_tokenizer=False)
    ours = bertscore(hyps, refs, tok, model)
    assert ours.precision == pytest.approx(p.tolist(), abs=1e-5)
    assert ours.recall == pytest.approx(r.tolist(), abs=1e-5)
    assert ours.f1 == pytest.approx(f.tolist(), abs=1e-5)


@pytest.mark.java
@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="needs a Java runtime (java on PATH)")
def test_cli_scores_dart_bertscore_from_the_model_dir(tiny_dir, tiny, tmp_path, capsys):
    from bench.cli import main

    hyps, ref0, ref1 = ["a cat sits on the mat", "heavy rain"], ["the cat sat on the mat", "it rains"], ["", "rain"]
    for name, lines in (("hyp", hyps), ("ref0", ref0), ("ref1", ref1)):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    rc = main(["score", "dart", "--hyps", str(tmp_path / "hyp"), "--refs", str(tmp_path / "ref0"),
               str(tmp_path / "ref1"), "--metric-model-dir", str(tiny_dir), "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    tok, model = tiny
    assert got["bertscore"] == pytest.approx(bertscore(hyps, [list(r) for r in zip(ref0, ref1)], tok, model).corpus_f1)
    assert got["moverscore"] is None and got["bleurt"] is None
    rc = main(["score", "dart", "--hyps", str(tmp_path / "hyp"), "--refs", str(tmp_path / "ref0"),
               "--metric-model-dir", str(tmp_path / "nowhere")])
    assert rc == 2


def test_cli_rejects_a_bad_model_dir_before_scoring(tmp_path, capsys):
    from bench.cli import main

    (tmp_path / "hyp").write_text("a cat\n")
    (tmp_path / "ref").write_text("the cat\n")
    rc = main(["score", "dart", "--hyps", str(tmp_path / "hyp"), "--refs", str(tmp_path / "ref"),
               "--metric-model-dir", str(tmp_path / "models")])
    assert rc == 2
    assert f"no roberta-large/ folder at {tmp_path / 'models' / 'roberta-large'}" in capsys.readouterr().err
