"""`peft-bench score` argument handling that needs no Java."""
import json

import pytest

from bench.cli import main


def test_wrong_number_of_hypothesis_lines_names_both_counts(fixtures_dir, capsys):
    d = fixtures_dir / "scorers"
    rc = main(["score", "e2e", "--hyps", str(d / "short.hyp"), "--refs", str(d / "golden.ref0")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "has 1 lines" in err and "has 2" in err and "golden.ref0" in err


def test_glue_predictions_against_a_label_file(tmp_path, capsys):
    (tmp_path / "pred.txt").write_text("1\n0\n1\n1\n")
    (tmp_path / "gold.txt").write_text("1\n0\n0\n1\n")
    assert main(["score", "mrpc", "--hyps", str(tmp_path / "pred.txt"), "--refs", str(tmp_path / "gold.txt"),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == {"accuracy": 75.0, "f1": pytest.approx(80.0)}


def test_stsb_constant_predictions_print_null_and_the_reason(tmp_path, capsys):
    (tmp_path / "pred.txt").write_text("2.5\n2.5\n2.5\n")
    (tmp_path / "gold.txt").write_text("1.0\n2.0\n3.0\n")
    assert main(["score", "stsb", "--hyps", str(tmp_path / "pred.txt"), "--refs", str(tmp_path / "gold.txt"),
                 "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"pearson": None, "spearman": None}
    assert "constant" in out.err


def test_missing_java_is_a_clear_error(monkeypatch, fixtures_dir, capsys):
    import bench.scorers.java as java_mod

    monkeypatch.setattr(java_mod.shutil, "which", lambda name: None)
    d = fixtures_dir / "scorers"
    rc = main(["score", "dart", "--hyps", str(d / "golden.hyp"), "--refs", str(d / "golden.ref0")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Java runtime" in err and "java -version" in err


def test_references_are_required_from_somewhere(fixtures_dir, capsys):
    rc = main(["score", "dart", "--hyps", str(fixtures_dir / "scorers" / "golden.hyp")])
    assert rc == 2
    assert "--refs" in capsys.readouterr().err


def test_help_states_the_units(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "percent (x100)" in out and "NIST and CIDEr raw" in out and "METEOR and TER as fractions" in out
