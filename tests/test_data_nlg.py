"""E2E CSV, WebNLG 2017 XML and DART JSON/XML loading (fixtures in the release formats), linearisation, and
the mapping of the Hub's rows (in-memory datasets) to the same examples."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.data import (
    DataError,
    GenerationExample,
    MissingSplitError,
    examples_from_hub_rows,
    linearise_mr,
    linearise_triples,
    load_split,
    training_pairs,
)

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


# ---------------------------------------------------------------------------------------------- E2E
def test_linearise_mr_uses_the_prefix_tuning_attribute_names():
    mr = ("name[The Vaults], eatType[pub], food[English], priceRange[more than £30], customer rating[5 out of 5], "
          "area[riverside], familyFriendly[no], near[Café Adriatic]")
    assert linearise_mr(mr) == ("name : The Vaults | Type : pub | food : English | price : more than £30 | "
                                "customer rating : 5 out of 5 | area : riverside | family friendly : no | "
                                "near : Café Adriatic")


def test_e2e_groups_rows_by_mr_in_first_appearance_order():
    dev = load_split("e2e", "dev", FIX)
    assert [ex.idx for ex in dev] == [0, 1]
    assert dev[0] == GenerationExample(
        source="name : The Anchor | Type : pub | area : riverside",
        references=("The Anchor is a pub by the river.", "By the riverside, you will find The Anchor, a pub.",
                    "The Anchor pub is on the riverside."),
        category=None, seen=None, idx=0)
    assert dev[1].source.endswith("family friendly : yes | near : The Anchor")
    test = load_split("e2e", "test", FIX)
    assert [len(ex.references) for ex in test] == [1, 2]
    assert training_pairs(test) == [
        ("name : Zest | Type : coffee shop | area : city centre", "Zest is a coffee shop in the city centre."),
        ("name : Copper Pot | food : French | price : £20-25", "Copper Pot serves French food for £20-25."),
        ("name : Copper Pot | food : French | price : £20-25", "French food at Copper Pot costs £20-25."),
    ]


def test_e2e_missing_trainset_is_reported_with_its_path():
    with pytest.raises(MissingSplitError) as err:
        load_split("e2e", "train", FIX)
    assert err.value.looked_for == (str(FIX / "e2e" / "trainset.csv"),)


def test_e2e_data_dir_may_be_the_release_folder_itself():
    assert load_split("e2e", "dev", FIX / "e2e") == load_split("e2e", "dev", FIX)


@pytest.mark.parametrize("text,message", [
    ("mr,ref\n\"name[A], food[Thai]\",Good.\n\"name[B]\",Fine.,extra\n", r"devset.csv, line 3: expected 2 columns"),
    ("meaning,text\n\"name[A]\",Good.\n", r"devset.csv, line 1: expected the header 'mr,ref'"),
    ("mr,ref\n\"name[A], colour[red]\",Good.\n", r"input 0: unknown E2E attribute 'colour'"),
    ("mr,ref\n\"name[A] food[Thai]\",Good.\n", r"input 0: expected 'attribute\[value\]'"),
    ("mr,ref\n\"name[A]\",\n", r"devset.csv, line 2: empty reference text"),
    ("mr,ref\n", r"devset.csv: no data rows"),
])
def test_e2e_malformed_csv_errors(tmp_path, text, message):
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "devset.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_split("e2e", "dev", tmp_path)


# ------------------------------------------------------------------------------------------- WebNLG
def test_webnlg_train_files_in_triple_count_order_and_good_lex_only():
    train = load_split("webnlg", "train", FIX)
    # ' | ' before every triple, the first one too, as Prefix-Tuning's WebNLG loader writes it
    assert [ex.source for ex in train] == [
        " | Fenwick_Airport : cityServed : Fenwick,_Ontario",
        " | Fenwick_Airport : elevationAboveTheSeaLevel_(in_metres) : 12",
        " | Plum_Cake : country : Ruritania | Plum_Cake : ingredient : Plum",
        " | A : b : C",  # 10triples after 2triples: numeric, not lexical, order
    ]
    assert train[0].references == ("Fenwick Airport serves Fenwick, Ontario.",)  # the toFix lex is not trained on
    assert all(ex.seen is True for ex in train) and [ex.idx for ex in train] == [0, 1, 2, 3]


def test_webnlg_dev_keeps_every_lex_and_test_marks_seen_categories():
    dev = load_split("webnlg", "dev", FIX)
    assert dev[0].references == ("Lowtown is in Ruritania.", "lowtown ruritania")
    test = load_split("webnlg", "test", FIX)
    assert [(ex.category, ex.seen) for ex in test] == [("Airport", True), ("Artist", False), ("Politician", False)]
    assert test[2].source == " | Tom_Reed : party : Green_Party & Allies"  # XML entities decoded
    assert test[2].references == ("Tom Reed belongs to the Green Party & Allies.",)


def _webnlg_xml(tmp_path: Path, body: str) -> None:
    path = tmp_path / "webnlg_challenge_2017" / "test" / "testdata_with_lex.xml"
    path.parent.mkdir(parents=True)
    path.write_text(f"<benchmark><entries>{body}</entries></benchmark>", encoding="utf-8")


@pytest.mark.parametrize("body,message", [
    ('<entry category="City" eid="Id1"><modifiedtripleset><mtriple>A | b</mtriple></modifiedtripleset>'
     '<lex comment="good">x</lex></entry>',
     r"entry 1 \(eid='Id1'\): expected '<subject> \| <property> \| <object>' in <mtriple>, got 'A \| b'"),
    ('<entry category="City" eid="Id1"><lex comment="good">x</lex></entry>',
     r"entry 1 \(eid='Id1'\): expected a <modifiedtripleset> with at least one <mtriple>"),
    ('<entry category="City" eid="Id7"><modifiedtripleset><mtriple>A | b | c</mtriple></modifiedtripleset></entry>',
     r"entry 1 \(eid='Id7'\): expected at least one <lex> reference in a test file"),
    ('<entry eid="Id1"><modifiedtripleset><mtriple>A | b | c</mtriple></modifiedtripleset>'
     '<lex comment="good">x</lex></entry>', r"expected a category attribute"),
    ('<entry category="City" eid="Id1"><modifiedtripleset><mtriple>A | b | c</mtriple>',
     r"testdata_with_lex.xml, line 1, column \d+: malformed XML"),
])
def test_webnlg_malformed_xml_errors(tmp_path, body, message):
    _webnlg_xml(tmp_path, body)
    with pytest.raises(DataError, match=message):
        load_split("webnlg", "test", tmp_path)


def test_webnlg_missing_split_names_the_pattern(tmp_path):
    shutil.copytree(FIX / "webnlg_challenge_2017" / "test", tmp_path / "webnlg_challenge_2017" / "test")
    with pytest.raises(MissingSplitError, match=r"webnlg_challenge_2017/train/<n>triples/\*\.xml"):
        load_split("webnlg", "train", tmp_path)


def test_webnlg_hub_rows_dedupe_the_concatenated_test_split():
    datasets = pytest.importorskip("datasets")
    local = load_split("webnlg", "test", FIX)
    triples = {0: ["Hill_Field | runwayLength | 1500.0"],
               1: ["Ana_Moor | genre | Jazz", "Ana_Moor | birthPlace | Lowtown"],
               2: ["Tom_Reed | party | Green_Party & Allies"]}

    def row(i, with_lex=True):
        ex = local[i]
        refs = list(ex.references) if with_lex else []
        return {"category": ex.category, "size": len(triples[i]), "eid": f"Id{i + 1}",
                "modified_triple_sets": {"mtriple_set": [triples[i]]},
                "lex": {"comment": ["good"] * len(refs), "lid": [f"Id{j}" for j in range(len(refs))],
                        "text": refs, "lang": [""] * len(refs)},
                "test_category": "testdata_with_lex"}

    # with_lex (3 entries), then unseen_with_lex (the 2 unseen again), then no_lex (3 without references)
    rows = [row(0), row(1), row(2), row(1), row(2), row(0, False), row(1, False), row(2, False)]
    ds = datasets.Dataset.from_list(rows)
    assert examples_from_hub_rows("webnlg", "test", ds) == local


def test_webnlg_hub_train_rows_keep_good_lex_only():
    rows = [{"category": "Airport", "modified_triple_sets": {"mtriple_set": [["A_b | c | D"]]},
             "lex": {"comment": ["good", "toFix"], "text": ["A b c D.", "a b"]}}]
    (ex,) = examples_from_hub_rows("webnlg", "train", rows)
    assert ex.references == ("A b c D.",) and ex.source == " | A_b : c : D" and ex.seen is True


# --------------------------------------------------------------------------------------------- DART
def test_linearise_triples_leading_separator_is_prefix_tunings_webnlg_string():
    triples = [("Alan_Bean", "nationality", "United_States"), ("Alan_Bean", "birthPlace", "Wheeler,_Texas")]
    # the released loop: temp_triples = ''; for each triple: temp_triples += ' | ' + '{} : {} : {}'
    released = ""
    for s, p, o in triples:
        released += " | "
        released += f"{s} : {p} : {o}"
    assert linearise_triples(triples, lead_separator=True) == released == (
        " | Alan_Bean : nationality : United_States | Alan_Bean : birthPlace : Wheeler,_Texas")
    assert linearise_triples(triples) == released[3:]


def test_linearise_triples_lowercases_dart_properties_only():
    triples = [("Oak Hall", "LOCATION", "Riverton"), ("Oak_Hall", "openedIn", "1921")]
    assert linearise_triples(triples) == "Oak Hall : LOCATION : Riverton | Oak_Hall : openedIn : 1921"
    assert linearise_triples(triples, lowercase_property=True) == (
        "Oak Hall : location : Riverton | Oak_Hall : openedin : 1921")


def test_dart_json_and_xml_releases():
    dev = load_split("dart", "dev", FIX)
    assert dev[0] == GenerationExample(
        source="Oak Hall : location : Riverton | Oak Hall : opened : 1921",
        references=("Oak Hall in Riverton opened in 1921.", "Riverton's Oak Hall opened in 1921."),
        category=None, seen=None, idx=0)
    assert dev[1].source == "[TABLECONTEXT] : [title] : Sam Lee | [TABLECONTEXT] : year : 1999"
    test = load_split("dart", "test", FIX)  # only the XML release is present for test
    assert [ex.source for ex in test] == ["Mill Road : length_(km) : 4", "Ada's Bar : city : Oxbridge"]
    assert test[0].references == ("Mill Road is 4 km long.", "")  # an empty <lex/> stays an empty reference


def test_dart_json_preferred_and_2021_update_folder(tmp_path):
    update = tmp_path / "dart" / "2021-04-20_update"
    update.mkdir(parents=True)
    shutil.copy(FIX / "dart" / "dart-v1.1.1-full-test.xml", update)
    shutil.copy(FIX / "dart" / "dart-v1.1.1-full-dev.json", tmp_path / "dart")
    assert load_split("dart", "test", tmp_path) == load_split("dart", "test", FIX)
    assert load_split("dart", "dev", tmp_path) == load_split("dart", "dev", FIX)


@pytest.mark.parametrize("content,message", [
    ('[{"tripleset": [["a", "b"]], "annotations": []}]', r"entry 0: expected a triple \[subject, property, object\]"),
    ('[{"tripleset": [["a", "b", "c"]]}]', r"entry 0: expected an object with 'tripleset' and 'annotations'"),
    ('[{"tripleset": [["a", "b", "c"]], "annotations": [{"source": "x"}]}]',
     r"entry 0: expected 'annotations' as a list of \{source, text\} objects"),
    ('[{"tripleset": [["a", "b", "c"]], "annotations": [{"text": "t"}]},\n {"tripleset": [',
     r"line 2, column \d+: malformed JSON"),
    ('{"entries": []}', r"expected a JSON list of DART entries, got dict"),
])
def test_dart_malformed_json_errors(tmp_path, content, message):
    (tmp_path / "dart").mkdir()
    (tmp_path / "dart" / "dart-v1.1.1-full-dev.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_split("dart", "dev", tmp_path)


def test_dart_hub_rows_match_the_json():
    datasets = pytest.importorskip("datasets")
    raw = json.loads((FIX / "dart" / "dart-v1.1.1-full-dev.json").read_text(encoding="utf-8"))
    rows = [{"tripleset": e["tripleset"], "subtree_was_extended": bool(e.get("subtree_was_extended")),
             "annotations": {"source": [a["source"] for a in e["annotations"]],
                             "text": [a["text"] for a in e["annotations"]]}} for e in raw]
    ds = datasets.Dataset.from_list(rows)
    assert examples_from_hub_rows("dart", "dev", ds) == load_split("dart", "dev", FIX)


def test_e2e_hub_rows_match_the_csv():
    datasets = pytest.importorskip("datasets")
    import csv

    with (FIX / "e2e" / "devset.csv").open(encoding="utf-8", newline="") as handle:
        rows = [{"meaning_representation": mr, "human_reference": ref} for mr, ref in list(csv.reader(handle))[1:]]
    ds = datasets.Dataset.from_list(rows)
    assert examples_from_hub_rows("e2e", "dev", ds) == load_split("e2e", "dev", FIX)


def test_training_pairs_needs_generation_examples():
    with pytest.raises(TypeError):
        training_pairs(load_split("sst2", "dev", FIX))
