"""The cost planner: closed-form FLOPs, the shipped length statistics, per-row and total estimates."""
from __future__ import annotations

from dataclasses import replace

import pytest

from bench.cost.device import GPUS, Device, precision
from bench.cost.estimate import calibration_key, grid_cost, run_cost
from bench.cost.flops import forward_flops_per_token, method_cost, shape_of, train_flops_per_token
from bench.cost.lengths import Lengths, lengths_of, tokenizer_kind
from bench.grid import plan
from bench.presets import PRESETS, SMOKE_DATA
from bench.tasks import TASKS

CPU = Device("cpu", {"fp32": 1e11, "bf16": 4e11}, efficiency=0.5, efficiency_by={"bf16": 0.1}, run_overhead_s=2.0,
             bf16=True)


def test_backward_costs_follow_what_is_trained():
    s = shape_of("roberta-base")
    fwd = forward_flops_per_token(s, method_cost("full", {}, s), 100, lm_head=False)
    scores = s.layers * 4 * s.d * 100                         # attention scores and sum: no weight gradient
    assert train_flops_per_token(s, method_cost("full", {}, s), 100, lm_head=False) == pytest.approx(3 * fwd - scores)
    lora = train_flops_per_token(s, method_cost("lora", {"r": 8, "targets": ["q", "v"]}, s), 100, lm_head=False)
    assert 2 * fwd < lora < 2.01 * fwd                       # frozen backbone: activation gradients only
    top2 = train_flops_per_token(s, method_cost("topk", {"k": 2}, s), 100, lm_head=False)
    assert fwd < top2 < 1.5 * fwd                            # only the top 2 of 12 blocks get a backward pass
    assert s.total_params == pytest.approx(124.6e6, rel=0.02)   # RoBERTa-base without its head


def test_truncated_moments_of_the_quantiles():
    q = Lengths(n=10, q=tuple(range(0, 201, 10)))            # uniform on 0..200
    assert q.mean() == pytest.approx(100)
    assert q.mean(cap=100) == pytest.approx(75)
    assert q.mean_square() == pytest.approx(200 ** 2 / 3, rel=0.01)


def test_every_task_split_has_length_statistics_for_the_presets_tokenizers():
    for spec in (s for name in PRESETS for s in plan(name)):
        kind = tokenizer_kind(spec.model)
        for split in ("train", *TASKS[spec.task].eval_splits):
            entry = lengths_of(spec.task, split, kind)
            assert entry is not None and entry.n > 0 and entry.source, (spec.task, split, kind)


def test_the_shipped_byte_lengths_are_those_of_the_fixtures():
    from bench.cost.lengths import measure
    from bench.data import load_split
    from bench.tiny_tokenizer import tiny_tokenizer

    task = TASKS["sst2"]
    fresh = measure(load_split(task, "train", SMOKE_DATA), task, "train", tiny_tokenizer("roberta"))
    shipped = lengths_of("sst2", "train", "bytes")
    assert (fresh["n"], tuple(fresh["q"])) == (shipped.n, shipped.q)


def test_rows_add_up_and_precision_and_calibration_change_the_price():
    specs = plan("minilm-glue")
    runs, rows, total = grid_cost(specs, CPU)
    assert total.runs == 66 and sum(r.runs for r in rows) == 66  # 2 tasks x 11 methods x 3 seeds
    assert total.seconds == pytest.approx(sum(c.seconds for c in runs.values()))
    first = specs[0]
    c = runs[first.run_id]
    # minilm-glue pins fp32 (its runs span machines with and without bf16 units); "auto" on this profile is bf16
    assert c.precision == "fp32" and c.steps == 3 * -(-3000 // 32) and c.eval_passes == 3
    bf16 = run_cost(replace(first, train=replace(first.train, mixed_precision="auto")), CPU)
    assert bf16.precision == "bf16" and c.train_seconds == pytest.approx(bf16.train_seconds * 0.4 / 0.5, rel=1e-6)
    key = calibration_key(first, "wordpiece", lengths_of("sst2", "train", "wordpiece"), "fp32")
    slow = run_cost(first, CPU, {key: {"flops_per_s": 1e9}})
    assert slow.train_seconds > 10 * c.train_seconds and "calibrated" in slow.notes
    assert precision("auto", GPUS["v100"]) == precision("auto", GPUS["t4"]) == "fp16"     # no bf16: fp16 autocast
    assert precision("auto", GPUS["a100"]) == precision("auto", GPUS["rtx3090"]) == "bf16"


def test_generation_runs_count_beams_and_new_tokens():
    specs = plan("nlg-gpt2-medium", tasks=["e2e"], methods=["prefix"], seeds=[0])
    c = run_cost(specs[0], GPUS["a100"])
    assert c.generated_tokens > 0 and c.eval_passes >= 2 and c.peak_mem_gb > 1


@pytest.mark.parametrize("model", ["roberta-base", "minilm-l6", "gpt2-medium", "smollm2-135m", "tiny-qwen2",
                                   "tiny-mistral"])
def test_the_planner_prices_every_method_with_its_exact_trained_count(model):
    """The planner's closed forms give `peft-bench params`'s trained counts, the Llama layout included (k and v
    at the key-value width under grouped-query attention, a gated MLP, RMSNorms, the prefix's MLP at the
    key-value width); DeBERTa-v2's relative-position and convolution parameters are left out (0.5% of FT)."""
    from bench.commands.params import counts
    from bench.cost.flops import method_cost, shape_of
    from bench.models import model_info

    cases = [("full", {}, []), ("topk", {"k": 2}, ["k=2"]), ("lora", {}, []),
             ("lora", {"targets": ("q", "k", "v", "o", "gate", "up", "down")}, ["targets=q,k,v,o,gate,up,down"]),
             ("ia3", {}, []), ("dora", {"r": 8}, ["r=8"]), ("prefix", {}, []), ("prompt", {}, []),
             ("vera", {"r": 256}, ["r=256"]),
             ("vera", {"r": 256, "targets": ("q", "v", "ffn_in")}, ["r=256", "targets=q,v,ffn_in"]),
             ("adapter", {"kind": "lin", "bottleneck": 32}, ["kind=lin", "bottleneck=32"]),
             ("adapter", {"kind": "houlsby", "bottleneck": 64}, ["kind=houlsby", "bottleneck=64"])]
    llama = model_info(model).family in ("llama", "mistral", "qwen2")
    if llama:
        cases = [c for c in cases if c[1].get("targets") != ("q", "v", "ffn_in")]
    else:
        cases = [c for c in cases if "gate" not in c[1].get("targets", ())]
    if model_info(model).family != "llama" and model_info(model).family != "mistral":
        cases.append(("bitfit", {}, []))                     # Llama and Mistral have no bias to train
    for method, config, settings in cases:
        assert method_cost(method, config, shape_of(model)).trained == counts(model, method, settings)[
            "trained"], (model, method, settings)


def test_the_length_table_is_a_data_file_that_round_trips(tmp_path):
    import json

    from bench.cost.lengths import TABLE, load_table, merge, write_table

    table = load_table()
    assert TABLE.suffix == ".json" and table["e2e"]["dev"]["bpe"]["n"] == 547
    out = tmp_path / "lengths.json"
    write_table(table, out)
    assert json.loads(out.read_text()) == table
    assert out.read_text().count("\n") < 200                 # one line per task x split x kind
    extra = {"e2e": {"dev": {"new": {"n": 1, "q": [1] * 21, "source": "test"}}}}
    merged = merge(table, extra)
    assert merged["e2e"]["dev"]["new"]["n"] == 1 and merged["e2e"]["dev"]["bpe"] == table["e2e"]["dev"]["bpe"]
    assert "new" not in table["e2e"]["dev"]                  # merge copies


def test_tokenizer_kinds_are_registry_facts():
    from bench.models import MODELS, TOKENIZER_KIND

    assert tokenizer_kind("minilm-l6") == "wordpiece" and tokenizer_kind("gpt2-medium") == "bpe"
    assert tokenizer_kind("tiny-gpt2") == "bytes"
    for info in MODELS.values():
        assert info.tokenizer_kind in {"bytes", *TOKENIZER_KIND.values(), "smollm2"}, info.name


@pytest.mark.parametrize("a, b", [("bench/commands/grid.py", "bench/commands/plan.py"),
                                  ("bench/data/hub.py", "bench/data/loading.py")])
def test_no_import_cycle_between(a, b):
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def imported(path):
        tree = ast.parse((root / path).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    name = lambda p: p.removesuffix(".py").replace("/", ".")
    assert not (name(b) in imported(a) and name(a) in imported(b)), f"{a} and {b} import each other"


def test_a_peak_measured_on_a_busy_machine_is_measured_again_when_it_is_quiet(tmp_path, monkeypatch):
    import bench.cost.device as dev

    monkeypatch.setenv("PEFT_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(dev, "_cpu_flags", lambda: ["fpu", "avx2", "fma"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    key = dev.cpu_key()
    assert key.endswith("|avx2|1 threads")
    monkeypatch.setattr(dev, "_cpu_flags", lambda: ["avx2", "avx512f", "avx512_bf16"])
    assert dev.cpu_key() != key and "|avx512bf16|" in dev.cpu_key()

    cores = len(dev.os.sched_getaffinity(0)) if hasattr(dev.os, "sched_getaffinity") else dev.os.cpu_count()
    busy, quiet = cores + 1.0, 0.0
    measured = []

    def fake_measure(result):
        def measure():
            measured.append(result)
            return dict(result)
        return measure

    # first measurement: kept whatever the load, with the load it saw, and the plan says it may read high
    monkeypatch.setattr(dev, "measure_peak", fake_measure({"fp32": 2e10, "bf16": 1e10, "by": "torch",
                                                           "others_busy": busy}))
    monkeypatch.setattr(dev, "_others_busy_now", lambda: busy)
    d = dev.device("cpu")
    assert d.peak == {"fp32": 2e10, "bf16": 1e10} and "may read high" in d.source and len(measured) == 1
    # still busy: the cached figure stands, nothing is measured
    assert dev.device("cpu").peak["fp32"] == 2e10 and len(measured) == 1
    # quiet now: measured again, each precision keeps its best figure, the quieter load is recorded
    monkeypatch.setattr(dev, "_others_busy_now", lambda: quiet)
    monkeypatch.setattr(dev, "measure_peak", fake_measure({"fp32": 9e10, "bf16": 0.5e10, "by": "torch",
                                                           "others_busy": quiet}))
    d = dev.device("cpu")
    assert len(measured) == 2 and d.peak == {"fp32": 9e10, "bf16": 1e10} and "may read high" not in d.source
    assert dev.read_cache()["peaks"][dev.cpu_key()]["others_busy"] == quiet
    # a quiet figure is never measured again
    monkeypatch.setattr(dev, "measure_peak", lambda: pytest.fail("measured a quiet peak again"))
    assert dev.device("cpu").peak["fp32"] == 9e10


def test_other_processes_load_is_read_from_two_cpu_samples():
    from bench.cost.device import _cpu_sample, _others_busy

    # 2 s of wall time, the machine busy for 3 CPU-seconds of which this process used 1: 1 core held by others
    assert _others_busy((10.0, 100.0, 5.0), (12.0, 103.0, 6.0)) == pytest.approx(1.0)
    assert _others_busy((10.0, 100.0, 5.0), (12.0, 100.5, 6.0)) == 0.0     # clock ticks lag: never negative
    assert _others_busy(None, (12.0, 100.0, 6.0)) is None
    sample = _cpu_sample()
    if sample is not None:                     # Linux: machine-wide busy seconds are at least this process's own
        assert sample[1] > 0 and sample[2] >= 0
