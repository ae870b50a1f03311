"""Scorers that run the METEOR and PTB jars: skipped cleanly when Java is missing."""
import json
import shutil
from dataclasses import dataclass

import pytest

from bench.cli import main
from bench.scorers import score_generation, score_split
from bench.scorers import java as java_mod

pytestmark = [pytest.mark.java,
              pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime (java on PATH)")]

HYPS = ["a cat sits on the mat", "heavy rain falls in paris"]
REFS = [["the cat sat on a red mat today", "the feline was sitting on the mat"], ["it is raining heavily in paris"]]


@dataclass(frozen=True)
class Example:
    references: tuple
    seen: bool | None = None


@pytest.fixture(scope="module")
def meteor():
    with java_mod.MeteorSession() as session:
        yield session


def test_golden_case_through_the_cli_with_reference_files(fixtures_dir, capsys):
    d = fixtures_dir / "scorers"
    rc = main(["score", "e2e", "--hyps", str(d / "golden.hyp"), "--refs", str(d / "golden.ref0"),
               str(d / "golden.ref1"), "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    # reference/scorers.md, printed by the official E2E script as fractions; ours in the papers' units
    assert round(got["bleu"] / 100, 4) == 0.1956
    assert round(got["nist"], 4) == 2.1570
    assert round(got["meteor"] / 100, 4) == 0.2798
    assert round(got["rouge_l"] / 100, 4) == 0.4065
    assert round(got["cider"], 4) == 1.8509


def test_webnlg_test_split_is_scored_seen_unseen_all(monkeypatch, fixtures_dir, capsys):
    examples = [Example(tuple(REFS[0]), True), Example(tuple(REFS[1]), False)]
    import bench.data

    monkeypatch.setattr(bench.data, "load_split", lambda task, split, data_dir=None: examples)
    rc = main(["score", "webnlg", "--hyps", str(fixtures_dir / "scorers" / "golden.hyp"), "--split", "test",
               "--json"])
    assert rc == 0
    got = json.loads(capsys.readouterr().out)
    assert list(got) == ["test-seen", "test-unseen", "test-all"]
    assert round(got["test-all"]["meteor"], 4) == 0.2798   # the golden text is already normalised
    assert round(got["test-all"]["ter"], 6) == 0.592593
    assert got["test-all"]["bleu"] == 0.0
    # a one-segment subset's corpus METEOR is that segment's METEOR
    assert round(got["test-seen"]["meteor"], 4) == 0.2978
    assert round(got["test-unseen"]["meteor"], 4) == 0.2558


def test_dart_reports_model_metrics_as_not_computed_with_the_reason():
    out = score_split("dart", "test", HYPS, [Example(tuple(r)) for r in REFS])["test"]
    assert list(out) == ["bleu", "meteor", "ter", "moverscore", "bertscore", "bleurt"]
    assert out["meteor"].scale == "fraction" and out["ter"].higher_is_better is False
    assert round(out["meteor"].value, 4) == 0.2798  # DART's METEOR uses every non-blank reference
    for name in ("moverscore", "bertscore", "bleurt"):
        assert out[name].value is None and out[name].note.startswith("not computed")
    assert "PEFT_BENCH_METRIC_MODELS=off" in out["bertscore"].note  # tests never reach the Hub (conftest)


def test_meteor_empty_hypothesis_and_empty_references(meteor):
    stats = meteor.statistics(["", "a b", "a b"], [["a b"], [""], ["", "a b"]])
    assert len(stats) == 3
    assert meteor.corpus_score(stats[:1]) == 0.0
    assert meteor.corpus_score(stats[1:2]) == 0.0
    assert meteor.corpus_score(stats[2:]) > 0.9  # the best reference is picked
    assert meteor.corpus_score(meteor.statistics(["a ||| b"], [["a b"]])) > 0.9  # separator is not a field


def test_ptb_tokenizer_keeps_blank_lines_and_alignment():
    got = java_mod.ptb_tokenize(["A b", "", "x\u2028y", "Don't stop!", ""])
    assert got == ["a b", "", "x y", "do n't stop", ""]


def test_e2e_requires_a_reference_per_input():
    from bench.config import ConfigError

    with pytest.raises(ConfigError, match="line 2"):
        score_generation("e2e", HYPS, [REFS[0], ["", ""]])


def test_dart_split_puts_model_text_in_the_references_form_before_scoring():
    # Raw model text (cased, punctuation attached) equal to the raw reference scores as a perfect match, because
    # score_split tokenises and lower-cases it as the official reference files are.
    ex = Example(references=("Jeff Daniels hosted Saturday Night Live in 1991.",))
    raw = ["Jeff Daniels hosted Saturday Night Live in 1991."]
    scores = score_split("dart", "test", raw, [ex])["test"]
    assert scores["bleu"].value == pytest.approx(100.0)
    assert scores["ter"].value == pytest.approx(0.0)
