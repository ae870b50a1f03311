"""A spec resolved once: method configs without torch, one builder, dependencies named by what they are."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench import method_config
from bench.config import ConfigError
from bench.grid import plan
from bench.spec import After, RunSpec, TrainConfig, link, resolve

REPO = Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "transformers", "accelerate", "methods"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from bench.cli import main
code = main(sys.argv[1:])
assert not any(m.split(".")[0] in ("torch", "methods") for m in sys.modules), "torch was imported"
sys.exit(code)
"""


def test_the_source_schema_equals_the_imported_classes_for_every_method():
    import methods

    from_source = method_config._parse_library(method_config.LIBRARY)
    assert list(from_source) == list(methods.METHODS)
    for name, cls in methods.METHODS.items():
        assert from_source[name] == method_config._from_class(name, cls), name


def test_build_is_the_one_constructor_and_checks_values():
    from methods import LoRA

    assert method_config.build("lora", {"r": 4, "targets": ["q", "k"]}) == LoRA(r=4, targets=("q", "k"))
    assert method_config.build("lora", {"alpha": method_config.Text("32")}) == LoRA(alpha=32.0)
    with pytest.raises(ConfigError, match="lora.r must be"):
        method_config.build("lora", {"r": 0})
    with pytest.raises(ConfigError, match="unknown method 'lorax'"):
        method_config.resolve_config("lorax", {})
    # preset ints and command-line floats name the same run
    assert method_config.resolve_config("lora", {"alpha": 16}) == method_config.resolve_config(
        "lora", {"alpha": method_config.Text("16.0")})


def _spec(task, seed=0, **kw) -> RunSpec:
    return RunSpec(model="tiny-roberta", task=task, method="lora", train=TrainConfig(epochs=1), seed=seed,
                   preset="t", label="LoRA", **kw)


def test_link_names_a_dependency_by_task_and_seed_once():
    specs = [resolve(s) for s in (_spec("mnli", 0, save_state=True), _spec("mnli", 1, save_state=True),
                                  _spec("rte", 0, init_from=After("mnli")), _spec("rte", 1, init_from=After("mnli")),
                                  _spec("stsb", 1, init_from=After("mnli", seed=0)))]
    linked = link(specs)
    assert [s.init_from for s in linked] == [None, None, linked[0].run_id, linked[1].run_id, linked[0].run_id]
    with pytest.raises(ValueError, match="not linked"):
        _ = specs[2].run_id
    with pytest.raises(ConfigError, match="not in the grid"):
        link([resolve(_spec("rte", init_from=After("mnli")))])
    with pytest.raises(ConfigError, match="names 2 runs"):
        link([resolve(_spec("mnli")), resolve(replace(_spec("mnli"), train=TrainConfig(epochs=2))),
              resolve(_spec("rte", init_from=After("mnli")))])


def test_overrides_reach_the_dependency_and_its_dependents_follow():
    base = {s.run_id: s for s in plan("glue-roberta-base", methods=["lora"], seeds=[0])}
    short = plan("glue-roberta-base", methods=["lora"], seeds=[0], overrides=["train.epochs=1"])
    mnli = next(s for s in short if s.task == "mnli")
    assert mnli.run_id not in base
    assert {s.task for s in short if s.init_from == mnli.run_id} == {"mrpc", "rte", "stsb"}


@pytest.mark.parametrize("argv", [["show", "glue-roberta-base", "--tasks", "rte"], ["plan", "smoke"],
                                  ["plan", "glue-roberta-large", "--json"]])
def test_show_and_plan_run_without_torch(argv):
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip()


def test_collect_reads_the_plan_the_grids_ran_per_table_cell(tmp_path):
    from bench.grid import planned, record_plan

    assert planned("smoke", tmp_path) is None                       # no grid yet: collect replans
    first = plan("smoke", tasks=["sst2"])
    record_plan(first, tmp_path)
    short = plan("smoke", tasks=["sst2"], methods=["lora"], overrides=["train.epochs=1"])
    record_plan(short, tmp_path)                                    # a later grid repoints the LoRA cell only
    ids = {s.run_id for s in planned("smoke", tmp_path)}
    assert ids == {s.run_id for s in first if s.method != "lora"} | {short[0].run_id}
    assert {s.run_id for s in planned("smoke", tmp_path, methods=["lora"])} == {short[0].run_id}


def test_the_recorded_plan_reads_back_in_the_presets_order(tmp_path):
    """The CSV and the tables list rows as the preset does, whatever order the grids recorded the cells in."""
    import json

    from bench.grid import PLAN_FILE, planned, record_plan

    specs = plan("smoke")
    record_plan(list(reversed(specs)), tmp_path)
    path = tmp_path / "runs" / "smoke" / PLAN_FILE
    cells = json.loads(path.read_text())
    path.write_text(json.dumps(dict(sorted(cells.items()))))        # as plan.json was once written: sorted keys
    assert [s.run_id for s in planned("smoke", tmp_path)] == [s.run_id for s in specs]
