"""docs/extending.md, checked: a toy method, a GLUE-like task and an encoder family, each added by a module that
only writes into the registries the recipe names, then planned, run once (tiny model, fixture data) and
reported. The registries a toy module changes are the places the recipe counts."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import bench.data.formats
import bench.models
import bench.presets
import bench.tasks
import bench.tiny_tokenizer
import methods
import methods.base
from bench.grid import plan, run_local, validate
from bench.presets import SMOKE_DATA, Preset, Resources
from bench.report import build_report
from bench.results import collect
from bench.spec import RunSpec, TrainConfig

TOYS = Path(__file__).resolve().parent / "fixtures" / "extending"
REGISTRIES = {  # registry -> the file that holds it
    "TASKS": (bench.tasks, "bench/tasks.py"),
    "FORMATS": (bench.data.formats, "bench/data/formats.py"),
    "PRESETS": (bench.presets, "bench/presets/__init__.py"),
    "METHODS": (methods, "methods/__init__.py"),
    "ARCHES": (methods.base, "methods/base.py"),
    "MODEL_TYPES": (methods.base, "methods/base.py"),
    "MODELS": (bench.models, "bench/models.py"),
    "VOCABS": (bench.tiny_tokenizer, "bench/tiny_tokenizer.py"),
}
TRAIN = TrainConfig(epochs=1, batch_size=8, lr=1e-3, max_length=64, eval_batch_size=32)


@pytest.fixture
def registries(monkeypatch):
    """Snapshot every registry; restore them after the test (a toy never leaks into other tests)."""
    saved = {name: dict(getattr(module, name)) for name, (module, _) in REGISTRIES.items()}
    saved["_monkeypatch"] = monkeypatch
    yield saved
    for name, (module, _) in REGISTRIES.items():
        registry = getattr(module, name)
        registry.clear()
        registry.update(saved[name])


def _add_toy(stem: str, saved: dict) -> set[str]:
    """Import tests/fixtures/extending/<stem>.py as a temporary module; the files whose registries it changed."""
    spec = importlib.util.spec_from_file_location(f"_peft_bench_{stem}", TOYS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    saved["_monkeypatch"].setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return {path for name, (mod, path) in REGISTRIES.items() if getattr(mod, name) != saved[name]}


def _plan_run_report(tmp_path: Path, specs: list[RunSpec], data_dir: Path):
    bench.presets.PRESETS["toy"] = Preset(lambda: specs, "toy preset", Resources(gpus=0), data_dir)
    planned = plan("toy")
    assert len(planned) == len(specs)
    validate(planned, data_dir=data_dir)
    results = tmp_path / "results"
    counts = run_local(planned, results_dir=results, data_dir=data_dir, progress=False)
    assert counts == {"ok": len(specs), "failed": 0, "skipped": 0}
    assert collect(planned, results, results / "toy.csv")["ok"] == len(specs)
    summary = build_report("toy", results_dir=results, out_root=tmp_path / "reports", plots=False)
    assert summary.runs_complete == len(specs) and summary.runs_failed == 0
    return summary.out_dir


def test_a_method_is_one_new_file_and_one_registry_line(tmp_path, registries):
    changed = _add_toy("toy_method", registries)
    assert changed == {"methods/__init__.py"}          # + the method's own file: two files
    from bench.commands.params import counts

    c = counts("tiny-roberta", "scale")
    assert c["stored"] == 2 * 32 and c["trained"] == 2 * 32  # one 32-wide scale per block of tiny-roberta
    out = _plan_run_report(tmp_path, [RunSpec(model="tiny-roberta", task="sst2", method="scale", train=TRAIN,
                                              label="Scale (FFN)")], SMOKE_DATA)
    glue = (out / "glue.md").read_text()
    assert "Scale (FFN)" in glue and "SST-2 (Acc \u2191)" in glue


def test_a_glue_like_task_is_one_task_record(tmp_path, registries):
    changed = _add_toy("toy_task", registries)
    assert changed == {"bench/tasks.py"}                # + the preset that runs it: one or two places
    folder = tmp_path / "data" / "glue_data" / "BoolQ"
    folder.mkdir(parents=True)
    for split, n in (("train", 40), ("dev", 16), ("test", 4)):
        lines = ["question\tpassage" + ("\tlabel" if split != "test" else "")]
        for i in range(n):
            answer = "True" if i % 2 else "False"
            lines.append(f"is {i} odd?\tthe number {i} is {'odd' if i % 2 else 'even'}" +
                         (f"\t{answer}" if split != "test" else ""))
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    out = _plan_run_report(tmp_path, [RunSpec(model="tiny-roberta", task="boolq", method="bitfit", train=TRAIN,
                                              label="BitFit")], tmp_path / "data")
    glue = (out / "glue.md").read_text()
    assert "BoolQ (Acc \u2191)" in glue and "BitFit" in glue
    assert "boolq,dev,accuracy" in (out / "aggregated.csv").read_text().replace('"', "")


def test_an_encoder_family_is_three_entries(tmp_path, registries):
    changed = _add_toy("toy_family", registries)
    assert changed == {"methods/base.py", "bench/models.py", "bench/tiny_tokenizer.py"}
    specs = [RunSpec(model="tiny-electra", task="sst2", method=m, method_config=c, train=TRAIN, label=label)
             for label, m, c in (("LoRA (r=4)", "lora", {"r": 4, "alpha": 8}),
                                 ("Adapter^H (b=8)", "adapter", {"kind": "houlsby", "bottleneck": 8}))]
    out = _plan_run_report(tmp_path, specs, SMOKE_DATA)
    glue = (out / "glue.md").read_text()
    assert "LoRA (r=4)" in glue and "Adapter^H (b=8)" in glue and "tiny-electra" in glue
    assert not bench.models.MODELS["tiny-electra"].decoder
