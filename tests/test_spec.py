"""RunSpec identity, overrides and resolution against the method registry."""
from __future__ import annotations

import dataclasses
import json

import pytest

from bench.config import ConfigError
from bench.spec import RunSpec, TrainConfig, apply_overrides, method_object, resolve, spec_json


def _spec(**kw) -> RunSpec:
    base = dict(model="tiny-roberta", task="sst2", method="lora", method_config={"r": 8, "alpha": 16})
    base.update(kw)
    return RunSpec(**base)


def test_run_id_is_stable_and_readable():
    a, b = _spec(), _spec()
    assert a.run_id == b.run_id
    assert a.run_id.startswith("sst2-lora-s0-")
    assert len(a.run_id.rsplit("-", 1)[1]) == 10


def test_run_id_changes_with_what_is_computed_only():
    a = _spec()
    assert _spec(seed=1).run_id != a.run_id
    assert _spec(train=TrainConfig(lr=3e-4)).run_id != a.run_id
    assert _spec(method_config={"r": 16, "alpha": 16}).run_id != a.run_id
    assert _spec(init_from="mnli-lora-s0-0123456789").run_id != a.run_id
    # the display label, paper join keys and preset name do not change what is computed
    cosmetic = _spec(label="LoRA (r=8)", paper_method="LoRA", paper_params="0.3M", paper_table="lora/Table 2",
                     recipe="paper", preset="other")
    assert cosmetic.run_id == a.run_id


def test_overrides_are_typed_and_checked():
    s = apply_overrides(_spec(), ["train.lr=3e-4", "train.epochs=7", "train.schedule=constant", "seed=3"])
    assert s.train.lr == 3e-4 and s.train.epochs == 7 and s.train.schedule == "constant" and s.seed == 3
    with pytest.raises(ConfigError, match="train has no field 'lrr'"):
        apply_overrides(_spec(), ["train.lrr=1"])
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(_spec(), ["train.epochs=three"])
    with pytest.raises(ConfigError, match="schedule"):
        apply_overrides(_spec(), ["train.schedule=cosine"])
    with pytest.raises(ConfigError, match="expected method"):
        apply_overrides(_spec(), ["lr=1"])
    with pytest.raises(ConfigError, match="decoding has no field"):
        apply_overrides(_spec(), ["decoding.beams=2"])


def test_resolve_fills_method_defaults_so_equal_runs_hash_equal():
    preset_style = resolve(_spec(method_config={"r": 8, "alpha": 16}))
    assert preset_style.method_config["targets"] == ["q", "v"]
    assert preset_style.method_config["dropout"] == 0.0
    from_cli = resolve(apply_overrides(_spec(method_config={}), ["method.alpha=16", "method.r=8"]))
    assert from_cli.method_config == preset_style.method_config
    assert from_cli.run_id == preset_style.run_id
    defaults = resolve(_spec(method_config={}))
    assert defaults.method_config["r"] == 8
    assert resolve(_spec(method_config={"r": 4})).run_id != preset_style.run_id


def test_resolve_rejects_unknown_method_field_and_value():
    with pytest.raises(ConfigError, match="no field 'rank'"):
        resolve(_spec(method_config={"rank": 8}))
    with pytest.raises(ConfigError, match="no field 'rank'"):
        resolve(apply_overrides(_spec(), ["method.rank=8"]))
    bad = resolve(_spec(method_config={"r": 0}))   # resolution is torch-free; the method's checks run on build
    with pytest.raises(ConfigError, match="r must be"):
        method_object(bad)
    with pytest.raises(ConfigError, match="unknown method 'lorax'"):
        resolve(_spec(method="lorax", method_config={}))


def test_json_round_trip_keeps_the_run_id():
    s = resolve(_spec(decoding={"num_beams": 2}, eval_splits=("dev",), save_state=True))
    d = json.loads(spec_json(s))
    back = RunSpec.from_dict(d)
    assert back == s
    assert back.run_id == s.run_id
    assert isinstance(back.train, TrainConfig)


def test_every_train_default_is_documented_on_its_own_line():
    import inspect

    import bench.spec as spec_module

    source = inspect.getsource(spec_module.TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        line = next(ln for ln in source.splitlines() if ln.strip().startswith(f"{f.name}:"))
        assert "#" in line, f"TrainConfig.{f.name} has no units comment"
