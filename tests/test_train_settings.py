"""Training settings that cannot train are refused when the TrainConfig is made (presets, `--set`): the CLI exits 2
with one line before any run folder exists."""
from __future__ import annotations

import pytest

from bench.cli import main
from bench.config import ConfigError
from bench.presets import SMOKE_DATA
from bench.spec import TrainConfig

RUN = ["run", "--model", "tiny-roberta", "--task", "sst2", "--method", "lora", "--data-dir", str(SMOKE_DATA)]

BAD = [("lr", "-1", "a learning rate > 0"), ("lr", "0", "> 0"), ("lr", "nan", "> 0"), ("lr", "inf", "> 0"),
       ("epochs", "0", "at least 1 epoch"), ("epochs", "-2", "at least 1 epoch"),
       ("batch_size", "0", "at least 1 example"), ("grad_accum", "0", "at least 1 micro-batch"),
       ("warmup_ratio", "1.5", "[0, 1]"), ("warmup_ratio", "-0.1", "[0, 1]"), ("warmup_steps", "-1", ">= 0"),
       ("weight_decay", "-0.1", ">= 0"), ("adam_beta1", "1", "[0, 1)"), ("adam_beta2", "-0.5", "[0, 1)"),
       ("adam_eps", "0", "> 0"), ("max_grad_norm", "-1", ">= 0"), ("label_smoothing", "1", "[0, 1)"),
       ("max_length", "1", "at least 2 tokens"), ("max_train_examples", "-5", ">= 0"),
       ("subsample_seed", "-1", ">= 0"), ("max_eval_examples", "-1", ">= 0"), ("eval_batch_size", "0", "at least 1"),
       ("dropout", "1.0", "[0, 1)"), ("dropout", "-0.1", "[0, 1)")]


@pytest.mark.parametrize("field,value,expected", BAD, ids=[f"{f}={v}" for f, v, _ in BAD])
def test_a_setting_that_cannot_train_exits_2_before_any_run_folder(field, value, expected, capsys, tmp_path):
    assert main([*RUN, "--set", f"train.{field}={value}", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"train.{field} = " in err[0] and expected in err[0], err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_grid_with_epochs_0_stops_before_its_first_run(capsys, tmp_path):
    assert main(["grid", "smoke", "--set", "train.epochs=0", "--results-dir", str(tmp_path)]) == 2
    assert "train.epochs = 0: expected at least 1 epoch" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_limits_themselves_are_accepted():
    TrainConfig(lr=1e-9, epochs=1, batch_size=1, grad_accum=1, warmup_ratio=1.0, warmup_steps=0, weight_decay=0.0,
                adam_beta1=0.0, adam_beta2=0.0, max_grad_norm=0.0, label_smoothing=0.0, max_length=2,
                eval_batch_size=1, dropout=0.0)
    TrainConfig(dropout=None)


def test_a_value_outside_a_literal_is_refused_when_made_in_python():
    with pytest.raises(ConfigError, match=r"train.select = 'last': expected one of best, final"):
        TrainConfig(select="last")
    with pytest.raises(ConfigError, match=r"train.mixed_precision = 'fp8': expected one of auto, no, bf16, fp16"):
        TrainConfig(mixed_precision="fp8")


def test_under_ddp_a_batch_that_does_not_split_over_the_processes_is_refused(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main([*RUN, "--set", "train.batch_size=8", "--results-dir", str(tmp_path)]) == 2
    assert "train.batch_size = 8 does not split over 3 processes" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
