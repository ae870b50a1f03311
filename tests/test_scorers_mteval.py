"""BLEU / NIST as mteval-v13a-sig (E2E) and BLEU as multi-bleu.perl (WebNLG, DART): no Java needed."""
import math

import pytest

from bench.scorers.mteval import mteval_bleu, mteval_nist, mteval_tokenize, multi_bleu, nist_length_penalty

GOLDEN_HYPS = ["a cat sits on the mat", "heavy rain falls in paris"]
GOLDEN_REFS = [["the cat sat on a red mat today", "the feline was sitting on the mat"],
               ["it is raining heavily in paris"]]


def test_golden_case_bleu_and_nist_match_the_official_script():
    # reference/scorers.md: values printed by the official E2E script
    assert round(mteval_bleu(GOLDEN_HYPS, GOLDEN_REFS), 4) == 0.1956
    assert round(mteval_nist(GOLDEN_HYPS, GOLDEN_REFS), 4) == 2.1570


def test_golden_case_multi_bleu_is_zero_without_a_4gram_match():
    refs = [GOLDEN_REFS[0], GOLDEN_REFS[1] + [""]]
    assert multi_bleu(GOLDEN_HYPS, refs, lowercase=True) == 0.0


def test_lowercasing_is_ascii_only_as_mteval():
    assert mteval_tokenize("Élan Café, OK.") == "Élan café , ok ."
    ref = [["élan cafe is here now"]]
    assert mteval_bleu(["élan cafe is here now"], ref) == pytest.approx(1.0)
    assert mteval_bleu(["Élan cafe is here now"], ref) < 0.7  # É is not lower-cased, so it does not match


def test_no_match_at_all_uses_mteval_exponential_smoothing_not_zero():
    # totals 4,3,2,1 with no match: precisions 1/(2*4), 1/(4*3), 1/(8*2), 1/(16*1); equal lengths, BP = 1
    expected = (1 / 8 * 1 / 12 * 1 / 16 * 1 / 16) ** 0.25
    assert mteval_bleu(["x y z w"], [["a b c d"]]) == pytest.approx(expected)


def test_order_never_reached_counts_as_precision_one():
    # 3-token hypothesis: no 4-grams at all -> mteval's iscore is 0 for n = 4
    assert mteval_bleu(["the cat sat"], [["the cat sat"]]) == pytest.approx(1.0)


def test_empty_hypotheses_score_zero():
    assert mteval_bleu(["", ""], GOLDEN_REFS) == 0.0
    assert mteval_nist(["", ""], GOLDEN_REFS) == 0.0


def test_missing_reference_slots_are_skipped_but_an_empty_first_slot_counts_as_length_zero():
    hyp = ["the cat sat"]
    long_ref = "the cat sat x x x x x"
    with_blank_second = mteval_bleu(hyp, [[long_ref, ""]])
    assert with_blank_second == pytest.approx(mteval_bleu(hyp, [[long_ref]]))
    assert with_blank_second == pytest.approx(math.exp(1 - 8 / 3))  # brevity penalty vs the 8-word reference
    # mteval starts from the first reference's length even when it is empty (0); |3-8| > |3-0| keeps 0
    assert mteval_bleu(hyp, [["", long_ref]]) == pytest.approx(1.0)


def test_nist_perl_zero_prefix_quirk():
    # "0 a": the bigram's prefix is the string "0", false in Perl, so its weight is -log2(1/2 words) = 1, not 0
    assert mteval_nist(["0 a"], [["0 a"]]) == pytest.approx(2.0)
    assert mteval_nist(["1 a"], [["1 a"]]) == pytest.approx(1.0)


def test_nist_uses_average_number_of_non_empty_references():
    # refs of 4 and 2 words on one segment: avg ref length = 6 words / 2 refs = 3; hypothesis of 3 words -> no
    # length penalty. A blank slot must not count as a reference.
    with_blank = mteval_nist(["a b c"], [["a b c d", "a b", ""]])
    assert with_blank == pytest.approx(mteval_nist(["a b c"], [["a b c d", "a b"]]))
    assert nist_length_penalty(1.0) == 1.0 and nist_length_penalty(0.0) == 0.0
    assert nist_length_penalty(1 / 1.5) == pytest.approx(0.5)  # the script's (ratio_x, score_x) = (1.5, 0.5)


def test_nist_without_reference_words_is_undefined():
    assert mteval_nist(["a"], [[""]]) is None


def test_multi_bleu_keeps_empty_slots_as_length_zero_references():
    hyp = ["a b c d"]
    ten = "a b c d e f g h i j"
    assert multi_bleu(hyp, [[ten, ""]], lowercase=False) == pytest.approx(100.0)  # closest length is 0
    assert multi_bleu(hyp, [[ten]], lowercase=False) == pytest.approx(100 * math.exp(1 - 10 / 4))


def test_multi_bleu_case_handling():
    assert multi_bleu(["The cat sat down"], [["the cat sat down"]], lowercase=True) == pytest.approx(100.0)
    assert multi_bleu(["The cat sat down"], [["the cat sat down"]], lowercase=False) < 100.0
