"""`peft-bench data`: counts per split, missing splits shown with the paths looked for, errors exit 2."""
from __future__ import annotations

import json
from pathlib import Path

from bench.cli import main

FIX = Path(__file__).resolve().parent / "fixtures" / "data"


def test_generation_counts_and_missing_train(capsys):
    assert main(["data", "e2e", "--data-dir", str(FIX)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"e2e (generate) from local copy {FIX}"
    assert out[1] == f"  train  missing: looked for {FIX / 'e2e' / 'trainset.csv'}"
    assert out[2].startswith("  dev    2 inputs, 4 references  [")
    assert out[3].startswith("  test   2 inputs, 3 references  [")


def test_webnlg_test_seen_unseen_json(capsys):
    assert main(["data", "webnlg", "--data-dir", str(FIX), "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    test = report["splits"]["test"]
    assert list(report["splits"]) == ["test"]
    assert (test["inputs"], test["references"]) == (3, 4)
    assert test["seen"] == {"inputs": 1, "references": 2}
    assert test["unseen"] == {"inputs": 2, "references": 2}
    assert test["source"].endswith("testdata_with_lex.xml")


def test_classification_counts_per_label(capsys):
    assert main(["data", "mnli", "--data-dir", str(FIX), "--json"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert splits["dev"]["examples"] == 3
    assert splits["dev"]["labels"] == {"entailment": 1, "neutral": 1, "contradiction": 1}
    assert splits["train"]["status"] == "missing"
    assert splits["train"]["looked_for"] == [str(FIX / "glue_data" / "MNLI" / "train.tsv")]


def test_nothing_found_exits_1_and_malformed_exits_2(tmp_path, capsys):
    assert main(["data", "qqp", "--data-dir", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out
    bad = tmp_path / "glue" / "RTE" / "dev.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", encoding="utf-8")
    assert main(["data", "rte", "--data-dir", str(tmp_path), "--split", "dev"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, line 2: expected a label in {{entailment, not_entailment}}, got 'maybe'" in err
    assert main(["data", "rte", "--data-dir", str(tmp_path), "--split", "validation"]) == 2
    assert "no split 'validation'" in capsys.readouterr().err
