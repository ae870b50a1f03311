"""Every shipped preset builds, resolves and validates; the paper presets have the papers' grid and counts."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from bench.grid import plan, validate
from bench.presets import PRESETS



@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_plans_and_validates(name):
    specs = plan(name)
    assert specs, name
    assert len({s.run_id for s in specs}) == len(specs)
    assert all(s.preset == name for s in specs)
    validate(specs)   # models, tasks, methods (applied on the meta device), dependencies; no data dir here
    assert PRESETS[name].summary


def test_glue_roberta_base_grid():
    specs = plan("glue-roberta-base")
    assert len(specs) == 8 * 5 * 5 + 6 * 5            # + VeRA's row of its Table 2 on six tasks
    rows = Counter((s.display, s.task) for s in specs)
    assert set(rows.values()) == {5}
    assert len({s.task for s in specs}) == 8
    assert {s.paper_method for s in specs} == {"FT", "BitFit", "AdptD", "LoRA", "VeRA"}
    assert {(s.paper_method, s.paper_params) for s in specs} >= {("AdptD", "0.3M"), ("AdptD", "0.9M")}
    by_id = {s.run_id: s for s in specs}
    lora = [s for s in specs if s.method == "lora"]
    for s in lora:
        assert s.method_config["alpha"] == 8.0            # the paper variant
        if s.task in ("mrpc", "rte", "stsb"):
            dep = by_id[s.init_from]
            assert (dep.task, dep.method, dep.seed, dep.save_state) == ("mnli", "lora", s.seed, True)
        else:
            assert s.init_from is None
    # dependencies run first
    position = {s.run_id: i for i, s in enumerate(specs)}
    assert all(position[s.init_from] < position[s.run_id] for s in specs if s.init_from)
    vera = {s.task: s for s in specs if s.method == "vera" and s.seed == 0}
    assert set(vera) == {"sst2", "mrpc", "cola", "qnli", "rte", "stsb"}
    assert all(s.init_from is None and s.method_config["r"] == 1024 for s in vera.values())   # no MNLI start
    rte = vera["rte"].train
    assert (rte.epochs, rte.lr, rte.head_lr, rte.batch_size, rte.max_length) == (160, 4e-3, 1e-2, 64, 512)
    assert {(s.paper_table, s.paper_version, s.paper_params) for s in vera.values()} == {
        ("vera/Table 2", "iclr-2024", "0.043M")}
    sst2 = next(s for s in lora if s.task == "sst2")
    assert (sst2.train.batch_size, sst2.train.epochs, sst2.train.lr, sst2.train.max_length) == (16, 60, 5e-4, 512)
    assert sst2.train.warmup_ratio == 0.06


def test_script_variant_differs_where_the_sources_disagree():
    paper = {(s.task, s.seed, s.method): s for s in plan("glue-roberta-base")}
    script = {(s.task, s.seed, s.method): s for s in plan("glue-roberta-base-script")}
    key = ("cola", 0, "lora")
    assert script[key].method_config["alpha"] == 16.0 and paper[key].method_config["alpha"] == 8.0
    assert script[key].train.grad_accum == 8 and paper[key].train.grad_accum == 1
    assert script[key].recipe == "script" and paper[key].recipe == "paper"
    assert paper[("cola", 0, "full")].run_id == script[("cola", 0, "full")].run_id   # FT is the same run
    large_paper = {(s.task, s.method): s for s in plan("glue-roberta-large", seeds=[0])}
    large_script = {(s.task, s.method): s for s in plan("glue-roberta-large-script", seeds=[0])}
    assert large_paper[("cola", "lora")].train.lr == 2e-4 and large_script[("cola", "lora")].train.lr == 3e-4
    assert large_script[("stsb", "lora")].train.max_length == 128


def test_restricted_block_and_nlg_grids():
    restricted = plan("glue-roberta-large-restricted")
    assert len(restricted) == 5 * 8 * 5
    assert all(s.init_from is None and s.train.max_length == 128 for s in restricted)
    adapters = {(s.method_config["kind"], s.method_config["bottleneck"]) for s in restricted if s.method == "adapter"}
    assert adapters == {("pfeiffer", 64), ("pfeiffer", 16), ("houlsby", 64), ("houlsby", 8)}
    medium = plan("nlg-gpt2-medium")
    assert len(medium) == 3 * 5 * 3
    large = plan("nlg-gpt2-large")
    assert {s.method for s in large} == {"full", "prefix"} and len(large) == 3 * 2 * 3
    prefix = {s.task: s for s in medium if s.method == "prefix" and s.seed == 0}
    assert {t: s.method_config["length"] for t, s in prefix.items()} == {"e2e": 5, "webnlg": 5, "dart": 10}
    assert all(s.train.dropout == 0.0 for s in prefix.values())


def test_smoke_and_minilm_cover_every_method():
    from methods import METHODS

    smoke = plan("smoke")
    for task in ("sst2", "stsb", "e2e"):
        assert {s.method for s in smoke if s.task == task} == set(METHODS), task
    minilm = plan("minilm-glue")
    for task in ("sst2", "rte"):
        kinds = {(s.method, s.method_config.get("kind")) for s in minilm if s.task == task}
        assert {m for m, _ in kinds} == set(METHODS)
        assert ("adapter", "houlsby") in kinds and ("adapter", "pfeiffer") in kinds
    full = next(s for s in minilm if s.method == "full")
    assert all(s.train.lr >= full.train.lr for s in minilm)   # PEFT methods need larger lrs than full FT


@pytest.mark.parametrize("preset,method,config,expected", [
    ("glue-roberta-base", "lora", {"r": 8}, 294_912),
    ("glue-roberta-base", "bitfit", {}, 102_144),
    ("glue-roberta-base", "adapter", {"bottleneck": 16}, 304_320),
    ("glue-roberta-base", "adapter", {"bottleneck": 48}, 894_528),
    ("glue-roberta-base", "vera", {"r": 1024}, 43_008),
    ("glue-roberta-large-restricted", "adapter", {"kind": "houlsby", "bottleneck": 8}, 835_968),
    ("glue-roberta-large-restricted", "adapter", {"kind": "pfeiffer", "bottleneck": 64}, 3_171_840),
    ("nlg-gpt2-medium", "adapter", {"bottleneck": 6}, 368_784),
    ("nlg-gpt2-medium", "prefix", {"length": 5}, 245_760),
])
def test_preset_rows_count_the_papers_parameters(preset, method, config, expected):
    from bench.models import build_meta
    from bench.spec import method_object
    from bench.tasks import get_task
    from methods import count_params

    spec = next(s for s in plan(preset, seeds=[0]) if s.method == method
                and all(s.method_config.get(k) == v for k, v in config.items()))
    task = get_task(spec.task)
    method_obj = method_object(spec)
    model, arch = build_meta(spec.model, task.kind, method_obj, num_labels=max(task.num_labels, 1))
    assert count_params(model, arch, method_obj).stored == expected


def test_paper_join_keys_exist_in_the_report_reference():
    """Every preset row joins a row of results/paper.csv, the file the report reads (restricted rows carry a dagger)."""
    paper_csv = Path(__file__).resolve().parents[1] / "results" / "paper.csv"
    with open(paper_csv, newline="", encoding="utf-8") as fh:
        reference = {(r["paper_table"], r["paper_version"], r["model"], r["paper_method"], r["paper_params"])
                     for r in csv.DictReader(fh)}
    for name in ("glue-roberta-base", "glue-roberta-large", "glue-roberta-large-restricted", "nlg-gpt2-medium",
                 "nlg-gpt2-large"):
        for s in plan(name, seeds=[0]):
            key = (s.paper_table, s.paper_version, s.model, s.paper_method, s.paper_params)
            assert key in reference, (name, key)
