"""The real release files in ../shared/data give the counts of SOURCES.md (skipped when the copy is absent)."""
from __future__ import annotations

import csv
import json

import pytest

from bench.cli import main
from bench.data import MissingSplitError, load_split

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("task,split,n", [
    ("sst2", "train", 67349), ("sst2", "dev", 872), ("rte", "train", 2490), ("rte", "dev", 277),
    ("cola", "train", 8551), ("cola", "dev", 1043), ("stsb", "train", 5749), ("stsb", "dev", 1500),
    ("mrpc", "train", 3667), ("mrpc", "dev", 408), ("mrpc", "test", 1725), ("qnli", "dev", 5463),
])
def test_glue_counts(shared_data, task, split, n):
    examples = load_split(task, split, shared_data)
    assert len(examples) == n
    assert all((ex.label is None) == (split == "test") for ex in examples)


def test_glue_label_counts_match_sources_md(shared_data):
    labels = [ex.label for ex in load_split("sst2", "dev", shared_data)]
    assert (labels.count(0), labels.count(1)) == (428, 444)
    labels = [ex.label for ex in load_split("rte", "train", shared_data)]
    assert (labels.count(0), labels.count(1)) == (1249, 1241)  # entailment, not_entailment
    assert min(ex.label for ex in load_split("stsb", "dev", shared_data)) == 0.0


@pytest.mark.parametrize("task,split,inputs,refs", [
    ("e2e", "dev", 547, 4672), ("e2e", "test", 630, 4693),
    ("webnlg", "dev", 872, 2268), ("webnlg", "test", 1862, 4928),
    ("dart", "dev", 2768, 6980), ("dart", "test", 5097, 12552),
])
def test_generation_counts(shared_data, task, split, inputs, refs):
    examples = load_split(task, split, shared_data)
    assert len(examples) == inputs
    assert sum(len(ex.references) for ex in examples) == refs


def test_webnlg_seen_unseen_and_train_good_lex(shared_data):
    test = load_split("webnlg", "test", shared_data)
    assert sum(ex.seen for ex in test) == 971 and sum(not ex.seen for ex in test) == 891
    train = load_split("webnlg", "train", shared_data)
    assert len(train) == 6940 and sum(len(ex.references) for ex in train) == 18025  # 18,102 lex minus 77 toFix


def test_e2e_test_order_is_the_official_order(shared_data):
    with (shared_data / "e2e" / "testset.csv").open(encoding="utf-8", newline="") as handle:
        official = [row[0] for row in list(csv.reader(handle))[1:]]
    from bench.data.examples import linearise_mr

    assert [ex.source for ex in load_split("e2e", "test", shared_data)] == [linearise_mr(mr) for mr in official]


def test_webnlg_dev_matches_the_prefix_tuning_dev_json(shared_data):
    """Our XML reading gives the entries, order and lexicalisations of Prefix-Tuning's dev.json."""
    entries = json.loads((shared_data / "webnlg_challenge_2017" / "dev.json").read_text())["entries"]
    dev = load_split("webnlg", "dev", shared_data)
    assert len(dev) == len(entries)
    for i, (ex, entry) in enumerate(zip(dev, entries)):
        e = entry[str(i + 1)]
        # LineByLineWebNLGTextDataset: ' | ' before every triple, the first one too
        assert ex.source == "".join(f" | {t['subject']} : {t['property']} : {t['object']}"
                                    for t in e["modifiedtripleset"])
        assert ex.references == tuple(lex["lex"] for lex in e["lexicalisations"])
        assert ex.category == e["category"]


def test_dart_dev_json_and_xml_agree(shared_data):
    from bench.data.nlg import read_dart_xml

    assert read_dart_xml(shared_data / "dart" / "dart-v1.1.1-full-dev.xml", "dev") == \
        load_split("dart", "dev", shared_data)


def test_absent_files_are_missing_splits(shared_data):
    with pytest.raises(MissingSplitError) as err:
        load_split("e2e", "train", shared_data)
    assert err.value.looked_for == (str(shared_data / "e2e" / "trainset.csv"),)


def test_data_command_prints_the_sources_md_counts(shared_data, capsys):
    assert main(["data", "webnlg", "--data-dir", str(shared_data), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "1,862 inputs, 4,928 references; seen 971 inputs / 2,495 refs; unseen 891 inputs / 2,433 refs" in out
    assert main(["data", "e2e", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "train  missing: looked for" in out
    assert "547 inputs, 4,672 references" in out and "630 inputs, 4,693 references" in out


def test_webnlg_train_sources_are_the_released_strings(shared_data):
    """Real train entries, read from the challenge XML by hand: the source is Prefix-Tuning's temp_triples."""
    import xml.etree.ElementTree as ET

    root = shared_data / "webnlg_challenge_2017" / "train"
    first = sorted((root / "1triples").glob("*.xml"))[0]
    entries = list(ET.parse(first).getroot().iter("entry"))
    train = load_split("webnlg", "train", shared_data)
    for ex, entry in zip(train, entries[:20]):
        released = ""
        for m in entry.find("modifiedtripleset").findall("mtriple"):
            subj, rela, obj = [part.strip() for part in m.text.split(" | ")]
            released += " | "
            released += f"{subj} : {rela} : {obj}"
        assert ex.source == released and ex.source.startswith(" | ")
    two = next(ex for ex in train if ex.source.count(" | ") == 2)
    assert two.source.startswith(" | ") and " : " in two.source.split(" | ")[2]
