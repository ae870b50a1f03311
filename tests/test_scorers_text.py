"""Text preparation of each official pipeline (no Java needed)."""
from bench.scorers.normalize import ascii_lower, dart_reference, e2e_reference, webnlg_hypothesis, webnlg_reference


def test_webnlg_hypothesis_is_unidecoded_lowercased_and_split_on_non_word_characters():
    text = "  Adolfo Suárez Madrid–Barajas Airport's runway is 18L/36R.  "
    assert webnlg_hypothesis(text) == "adolfo suarez madrid - barajas airport ' s runway is 18l / 36r ."


def test_webnlg_reference_is_split_before_unidecode_as_the_official_script():
    assert webnlg_reference("Abilene, Texas is served by the Abilene regional airport.") == \
        "abilene , texas is served by the abilene regional airport ."
    # split first: '√' is a non-word character and unidecodes to nothing, leaving its spaces behind
    assert webnlg_reference("√ Frank W. Boykin") == " frank w . boykin"
    assert webnlg_hypothesis("√ Frank W. Boykin") == "frank w . boykin"


def test_dart_reference_matches_the_official_lex_lines():
    assert dart_reference("In 1982, Jed Jenkins in American Playhouse was played by Jeff Daniels.") == \
        "in 1982 , jed jenkins in american playhouse was played by jeff daniels ."
    assert dart_reference("Hawaii Five-O") == "hawaii five - o"
    # no unidecode; split before lower-casing keeps 'İ' (a word character) with its word
    assert dart_reference("The Atatürk Monument (İzmir)") == "the atatürk monument ( i\u0307zmir )"
    assert dart_reference("") == ""


def test_e2e_reference_repairs_and_ascii_lowercase():
    assert e2e_reference(" more than Â£30 at CafÃ© Ł ") == "more than £30 at Café £"
    assert ascii_lower("ÉLAN Cafe") == "Élan cafe"
