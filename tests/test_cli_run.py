"""CLI: run / grid / show / collect on tiny models; bad input exits 2 with a one-line message, before training."""
from __future__ import annotations

import csv

import pytest

from bench.cli import main
from bench.presets import SMOKE_DATA


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv,expected", [
    (["grid", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["show", "no-such-preset"], "unknown preset"),
    (["run", "--model", "tiny-roberta", "--task", "squad", "--method", "lora"], "unknown task 'squad'"),
    (["run", "--model", "roberta-xl", "--task", "sst2", "--method", "lora"], "unknown model 'roberta-xl'"),
    (["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "lora", "--set", "method.rank=4"],
     "no field 'rank'"),
    (["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "lora", "--set", "train.lrate=1"],
     "train has no field 'lrate'"),
    (["grid", "smoke", "--set", "train.epochs=two"], "expected an integer"),
    (["grid", "smoke", "--shard", "3/2"], "--shard"),
])
def test_bad_input_exits_2_with_one_line(argv, expected, capsys, tmp_path):
    assert main([*argv, "--results-dir", str(tmp_path)]) == 2
    assert expected in _err_line(capsys)
    assert not (tmp_path / "runs").exists()       # nothing started


def test_data_dir_without_the_files_stops_before_training(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    code = main(["grid", "smoke", "--tasks", "sst2", "--data-dir", str(empty), "--results-dir", str(tmp_path)])
    assert code == 2
    head, *lines = capsys.readouterr().err.strip().splitlines()
    assert "preflight: 2 of the grid's datasets/models cannot be had" in head
    assert [line.split(":")[0].strip() for line in lines] == ["task sst2, split dev", "task sst2, split train"]
    assert all("no local file" in line and str(empty) in line for line in lines)
    assert not (tmp_path / "runs").exists()


def test_run_one_tiny_model_from_the_cli(tmp_path, capsys):
    argv = ["run", "--model", "tiny-roberta", "--task", "stsb", "--method", "bitfit", "--set", "train.epochs=1",
            "--set", "train.lr=1e-3", "--data-dir", str(SMOKE_DATA), "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "params trained" in out and "pearson" in out
    assert len(list((tmp_path / "runs" / "adhoc").iterdir())) == 1


def test_grid_show_collect_on_a_slice_of_smoke(tmp_path, capsys):
    common = ["--tasks", "sst2", "--methods", "lora,prompt", "--results-dir", str(tmp_path)]
    assert main(["show", "smoke", *common]) == 0
    out = capsys.readouterr().out
    assert "2 runs" in out and "to do 2" in out and "lr 0.001" in out
    assert main(["grid", "smoke", "--no-progress", *common]) == 0
    assert "2 ok, 0 failed" in capsys.readouterr().out
    assert main(["grid", "smoke", "--no-progress", *common]) == 0
    assert "0 ok, 0 failed, 2 already done" in capsys.readouterr().out
    assert main(["show", "smoke", *common]) == 0
    assert "done 2" in capsys.readouterr().out
    assert main(["collect", "smoke", *common]) == 0
    with open(tmp_path / "smoke.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # each run's own row (dev selection) and the held-out protocol's row collect derives from it
    assert sorted((r["method"], r["selection"]) for r in rows) == [("lora", "dev"), ("lora", "heldout"),
                                                                   ("prompt", "dev"), ("prompt", "heldout")]
    assert all(r["status"] == "ok" and r["value"] for r in rows)
