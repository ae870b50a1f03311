"""Preflight pieces that need no Hub: locating a split in a repo's file list, local folders, the error's lines."""
from __future__ import annotations

import json

from bench.data.hub import available_splits, hub_split, load_arguments, required_columns, split_files
from bench.preflight import PreflightError, Problem, check_local_split, check_model
from bench.tasks import get_task

GLUE_FILES = ["README.md", "rte/train-00000-of-00001.parquet", "rte/validation-00000-of-00001.parquet",
              "rte/test-00000-of-00001.parquet", "mnli/validation_matched-00000-of-00001.parquet"]
CARD = [{"config_name": "rte", "data_files": [{"split": s, "path": f"rte/{s}-*"}
                                              for s in ("train", "validation", "test")]}]


def test_a_glue_split_is_found_through_the_cards_configs():
    where = hub_split("rte", "dev")
    assert (where.repo_id, where.revision, where.config, where.split) == ("nyu-mll/glue", "main", "rte", "validation")
    assert split_files(where, GLUE_FILES, CARD) == ["rte/validation-00000-of-00001.parquet"]
    assert split_files(hub_split("mnli", "dev"), GLUE_FILES, None) == ["mnli/validation_matched-00000-of-00001.parquet"]
    assert available_splits(where, GLUE_FILES, CARD) == ["train", "validation", "test"]


def test_the_parquet_export_is_addressed_by_the_configs_folder():
    where = hub_split("webnlg", "dev")
    assert where.pattern == "webnlg_challenge_2017/dev/*.parquet"
    files = ["webnlg_challenge_2017/train/0000.parquet", "webnlg_challenge_2017/dev/0000.parquet",
             "release_v1/full/0000.parquet"]
    assert split_files(where, files, None) == ["webnlg_challenge_2017/dev/0000.parquet"]
    assert available_splits(hub_split("webnlg", "test"), files, None) == ["dev", "train"]
    args = load_arguments("webnlg", "test")
    assert args["data_files"] == {s: f"webnlg_challenge_2017/{s}/*.parquet" for s in ("train", "dev", "test")}
    assert args["split"] == "test" and "name" not in args
    assert load_arguments("e2e", "dev")["data_files"]["validation"] == "default/validation/*.parquet"
    assert required_columns("webnlg", "test")[-1] == "test_category"
    assert required_columns("stsb", "dev") == ("sentence1", "sentence2", "label")


def test_a_local_copy_without_the_split_is_one_line(tmp_path):
    problem = check_local_split(get_task("rte"), "train", tmp_path)
    assert problem.what == "task rte, split train" and "no local file" in problem.why
    assert "\n" not in problem.line()


def test_a_model_folder_must_hold_config_tokenizer_and_weights(tmp_path):
    folder = tmp_path / "gpt2-medium"
    folder.mkdir()
    config = {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 1024, "n_layer": 24,
              "n_head": 16}
    (folder / "config.json").write_text(json.dumps(config))
    problem = check_model("gpt2-medium", tmp_path)
    assert "missing tokenizer (tokenizer.json or vocab.json+merges.txt); weights" in problem.why
    for name in ("vocab.json", "merges.txt", "model.safetensors"):
        (folder / name).write_text("x")
    assert check_model("gpt2-medium", tmp_path) is None
    (folder / "config.json").write_text(json.dumps({**config, "n_layer": 36}))
    assert "n_layer=36, the registry expects 24" in check_model("gpt2-medium", tmp_path).why
    assert check_model("tiny-gpt2", None) is None  # built locally: nothing to fetch


def test_one_problem_is_one_line_and_several_are_one_line_each():
    one = Problem("model roberta-base", "Hub x", "the repository does not exist", "set HF_TOKEN")
    assert str(PreflightError([one])).count("\n") == 0
    assert str(PreflightError([one, one])).count("\n") == 2


# -- DART's metric models ---------------------------------------------------------------------------------------
def test_a_dart_grid_checks_its_metric_models_in_the_folder_one_line_each(tmp_path, monkeypatch):
    from bench.preflight import check_metric_models
    from bench.spec import RunSpec
    from tests.test_scorers_bertscore import _save_tiny as save_roberta
    from tests.test_scorers_bleurt import _save_tiny_bleurt
    from tests.test_scorers_moverscore import _save_tiny as save_distilbert

    dart, sst2 = [RunSpec("tiny-gpt2", "dart", "prefix")], [RunSpec("tiny-roberta", "sst2", "lora")]
    models = tmp_path / "metric-models"
    save_roberta(models)
    save_distilbert(models)
    monkeypatch.setenv("PEFT_BENCH_METRIC_MODELS", str(models))
    line, = [p.line() for p in check_metric_models(dart)]
    assert line.startswith(f"metric bleurt (DART), model Elron/bleurt-tiny-128: no folder {models / 'bleurt-tiny-128'}")
    assert f"[PEFT_BENCH_METRIC_MODELS={models}]" in line and "PEFT_BENCH_METRIC_MODELS=off" in line
    assert check_metric_models(sst2) == []                    # no model-based metric in the grid: nothing asked
    _save_tiny_bleurt(models)
    assert check_metric_models(dart) == []
    (models / "roberta-large" / "model.safetensors").unlink()
    config = json.loads((models / "bleurt-tiny-128" / "config.json").read_text())
    (models / "bleurt-tiny-128" / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"}}))
    lines = {p.what.split()[1]: p.why for p in check_metric_models(dart)}
    assert set(lines) == {"bertscore", "bleurt"}
    assert lines["bertscore"].endswith("lacks weights (model.safetensors or model.safetensors.index.json or "
                                       "pytorch_model.bin or pytorch_model.bin.index.json)")
    assert "2 outputs; BLEURT's regression head has one" in lines["bleurt"]
    monkeypatch.setenv("PEFT_BENCH_METRIC_MODELS", "off")
    assert check_metric_models(dart) == []
