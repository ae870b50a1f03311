"""The perf harness end to end on tiny models and a tiny fixture, with tiny step counts (not a timed test:
it checks that every case runs and every record carries its fields, not how fast anything is)."""
from __future__ import annotations

import json

import pytest
import torch

from bench import allocator
from bench.cli import main
from bench.perf.measure import StepRecorder, matmul_params, step_flops
from bench.perf.cases import Plan, comparisons, train_cases

TRAIN_FIELDS = ("kind", "method", "engine", "padding", "batch_size", "examples_per_s", "tokens_per_s", "peak_mem_mb",
                "examples_per_cpu_s", "flops_per_s", "fraction_of_matmul_peak", "machine")
DECODE_FIELDS = ("inputs_per_s", "identical_outputs")


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory, fixtures_dir):
    out = tmp_path_factory.mktemp("perf") / "perf.json"
    code = main(["perf", "--model", "tiny-bert", "--gen-model", "tiny-gpt2", "--data-dir",
                 str(fixtures_dir / "perf"), "--batch-size", "2", "--steps", "1", "--dynamic-steps", "2",
                 "--warmup", "1", "--examples", "0", "--decode-inputs", "3", "--precisions", "fp32,bf16",
                 "--in-process",
                 "--out", str(out)])
    return code, json.loads(out.read_text())


def test_every_case_runs_and_has_its_fields(perf_run):
    code, records = perf_run
    assert code == 0, [r.get("error") for r in records if r.get("status") != "ok"]
    plan = Plan(model="tiny-bert", gen_model="tiny-gpt2", precisions=("no", "bf16"))
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == len(train_cases(plan))       # one record per case, whatever the repeats
    key = lambda r: (r["model"], r["method"], r["padding"], r["precision"])  # noqa: E731
    baseline_keys = {key(r) for r in train if r["engine"] == "baseline"}
    for r in train:                                   # paired cases ran twice (the default), the fastest kept
        if key(r) in baseline_keys:
            assert r["repeats"] == 2 and r["examples_per_s"] == max(r["repeat_examples_per_s"])
        else:
            assert "repeats" not in r
    for r in train:
        assert r["status"] == "ok"
        for f in TRAIN_FIELDS:
            assert r[f] is not None, f
        assert r["examples_per_s"] > 0 and r["tokens_per_s"] > 0 and r["peak_mem_mb"] > 0
        assert r["batch_size"] == 2
        # warm-up, the timed batches untimed, the same batches timed, the batch that closes the window
        assert r["timed_batches_warmed"] is True
        assert r["batches_fetched"] == r["warmup_steps"] + 2 * r["steps"] + 1, r["batches_fetched"]
        assert 0 < r["real_token_fraction"] <= 1
        assert r["matmul_peak_flops_per_s"] == r["machine"]["matmul_peaks"][r["precision"]]["flops_per_s"]
    # every method in both precisions with dynamic padding; max_length in the main precision (the last) only
    dynamic = {(r["model"], r["method"], r["engine"], r["precision"]) for r in train if r["padding"] == "dynamic"}
    assert {d[:3] for d in dynamic if d[3] == "fp32"} == {d[:3] for d in dynamic if d[3] == "bf16"}
    assert {r["precision"] for r in train if r["padding"] == "max_length"} == {"bf16"}
    decode = [r for r in records if r["kind"] == "decode"]
    assert {r["engine"] for r in decode} == {"suite", "hf_batched", "baseline"}
    for r in decode:
        for f in DECODE_FIELDS:
            assert r[f] is not None, f
        assert r["identical_outputs"] is True and r["identical_rows"] == 3
        assert r["inputs"] == 3
    assert {r["engine"]: r["search"] for r in decode} == {"suite": "own", "hf_batched": "hf", "baseline": "hf"}


def test_equal_policy_means_equal_batches(perf_run):
    """At equal padding policy the suite and the baseline train on the same batches (same token counts)."""
    _, records = perf_run
    train = [r for r in records if r["kind"] == "train"]
    pairs = {}
    for r in train:
        pairs.setdefault((r["model"], r["method"], r["padding"], r["precision"]), {})[r["engine"]] = r
    both = [p for p in pairs.values() if len(p) == 2]
    assert both
    for p in both:
        s, b = p["suite"], p["baseline"]
        assert s["timed_padded_tokens"] == b["timed_padded_tokens"]
        assert s["timed_tokens"] == b["timed_tokens"] and s["timed_examples"] == b["timed_examples"]
    max_len = [r for r in train if r["padding"] == "max_length" and r["model"] == "tiny-bert"]
    assert max_len and all(r["timed_padded_tokens"] == 2 * 1 * 128 for r in max_len)


def test_comparisons_pair_the_records(perf_run):
    _, records = perf_run
    comp = comparisons(records)
    assert {c["method"] for c in comp["engine"] if c["model"] == "tiny-bert"} == {"full", "lora", "prompt"}
    assert {c["padding"] for c in comp["engine"]} == {"dynamic", "max_length"}
    assert all(c["speedup"] > 0 for c in comp["engine"] + comp["padding"] + comp["decode"])
    assert comp["memory"] and comp["decode"][0]["identical_outputs"] is True
    assert {c["precision"] for c in comp["engine"]} == {"fp32", "bf16"}
    suite_bf16 = {c["method"] for c in comp["precision"] if c["engine"] == "suite" and c["model"] == "tiny-bert"}
    assert suite_bf16 == {"full", "lora", "prompt", "bitfit", "adapter", "prefix", "topk"}
    assert all(c["speedup"] > 0 and c["padding"] == "dynamic" for c in comp["precision"])


def test_step_batches_repeat_the_timed_batches_untimed_first():
    from bench.perf.train import TrainCase, step_batches

    batches = [[i] for i in range(10)]
    case = TrainCase(engine="suite", method="lora", padding="dynamic", steps=3, warmup=2)
    assert step_batches(case, batches) == [[0], [1], [2], [3], [4], [2], [3], [4], [5]]
    cold = TrainCase(engine="suite", method="lora", padding="dynamic", steps=3, warmup=2, warm_timed=False)
    assert step_batches(cold, batches) == [[0], [1], [2], [3], [4], [5]]
    with pytest.raises(ValueError, match="need 6"):
        step_batches(case, batches[:5])


def test_step_recorder_window():
    recorder = StepRecorder(lambda rows: {"input_ids": torch.ones(2, 4), "attention_mask": torch.tensor(rows)})
    for _ in range(4):
        recorder([[1, 1, 0, 0], [1, 1, 1, 0]])
    window = recorder.window(warmup=1, steps=2)
    assert window["examples"] == 4 and window["tokens"] == 10 and window["padded_tokens"] == 16
    assert window["seconds"] >= 0 and len(window["step_seconds"]) == 2
    with pytest.raises(RuntimeError, match="needs 5"):
        recorder.window(warmup=2, steps=2)


def test_flops_formula_counts_trainable_matmuls():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    assert matmul_params(model) == (18, 18)
    model[0].weight.requires_grad_(False)
    assert matmul_params(model) == (18, 6)
    assert step_flops(18, 6, 10) == (4 * 18 + 2 * 6) * 10
    assert step_flops(18, 18, 10) == 6 * 18 * 10


def test_both_engines_train_in_one_precision(monkeypatch):
    import bench.precision
    from bench.perf.train import TrainCase, case_precision

    assert case_precision(TrainCase(engine="suite", method="lora", padding="dynamic", precision="no")) == "no"
    assert case_precision(TrainCase(engine="baseline", method="lora", padding="dynamic", precision="bf16")) == "bf16"
    monkeypatch.setattr(bench.precision, "cpu_bf16_matmul", lambda: False)
    assert case_precision(TrainCase(engine="suite", method="lora", padding="dynamic")) == "no"


def test_decode_only_with_random_weights(tmp_path, fixtures_dir):
    """--decode-only runs just the decoding case; --random-weights decodes a named GPT-2 architecture with random
    weights and the byte-level tokenizer (no download); a non-GPT-2 model is refused before any work."""
    out = tmp_path / "d.json"
    code = main(["perf", "--data-dir", str(fixtures_dir / "perf"), "--decode-only", "--random-weights",
                 "--gen-model", "tiny-gpt2",
                 "--decode-inputs", "2", "--in-process", "--out", str(out)])
    records = json.loads(out.read_text())
    assert code == 0 and {r["kind"] for r in records} == {"decode"} and len(records) == 3
    assert all(r["model"] == "tiny-gpt2 (random weights)" and r["identical_outputs"] for r in records)
    assert main(["perf", "--decode-only", "--random-weights", "--gen-model", "roberta-base", "--out", str(out)]) == 2


def test_repeats_run_paired_cases_abba_and_keep_the_fastest(monkeypatch):
    import bench.perf.cases as perf_plan

    order, speed = [], iter(range(1000))

    def fake_run_case(kind, case, threads, isolate=True):
        order.append(f"{case.model}:{case.label}" if hasattr(case, "label") else "decode")
        return [{"kind": kind, "status": "ok", "examples_per_s": float(next(speed)), "label": order[-1]}]

    monkeypatch.setattr(perf_plan, "run_case", fake_run_case)
    plan = Plan(model="tiny-bert", gen_model="tiny-gpt2", repeats=3, precisions=("no", "bf16"))
    records = perf_plan.run_plan(plan)
    cases = train_cases(plan)
    name = lambda c: f"{c.model}:{c.label}"  # noqa: E731
    paired = [name(c) for c in cases if any(b.engine == "baseline" and (b.model, b.method, b.padding, b.precision)
                                            == (c.model, c.method, c.padding, c.precision) for b in cases)]
    expected = []
    for c in cases:
        if name(c) not in paired:
            expected.append(name(c))
        elif c.engine == "suite":                      # its baseline follows; the pair's repeats in ABBA order
            b = name(c).replace(":suite/", ":baseline/", 1)
            expected += [name(c), b, b, name(c), name(c), b]
    assert order == expected + ["decode"]
    assert len(records) == len(cases) + 1
    by_label = {r["label"]: r for r in records}
    first = by_label[paired[0]]
    assert first["repeats"] == 3 and first["examples_per_s"] == max(first["repeat_examples_per_s"])
    assert first["repeat_examples_per_s"][0] < first["repeat_examples_per_s"][1]  # in run order


def test_paired_speedups_divide_the_runs_of_each_repeat():
    from bench.perf.cases import _paired

    s = {"repeat_examples_per_s": [10.0, 30.0, 12.0]}
    b = {"repeat_examples_per_s": [5.0, 40.0, 12.0]}
    assert _paired(s, b) == {"paired_speedups": [2.0, 0.75, 1.0], "median_paired_speedup": 1.0}
    assert _paired(s, {"repeat_examples_per_s": [5.0]}) == {} and _paired({}, b) == {}


def test_fastpath_ab_runs_every_variant_and_its_ratios(fixtures_dir, tmp_path):
    from bench.perf import fastpath_ab

    out = tmp_path / "ab.json"
    assert fastpath_ab.main(["--model", "tiny-bert", "--data-dir", str(fixtures_dir / "perf"), "--methods", "lora",
                             "--steps", "1", "--warmup", "1", "--batch-size", "2", "--examples", "0",
                             "--out", str(out)]) == 0
    whole = json.loads(out.read_text())
    report = whole["methods"]["lora"]
    assert whole["allocator"] == ("retained" if allocator.glibc() else "not glibc")
    assert {r["allocator"] for runs in report["runs"].values() for r in runs} == {whole["allocator"]}
    assert set(report["runs"]) == {fastpath_ab.key(*v) for v in fastpath_ab.variants("lora")}
    assert all(len(runs) == 2 for runs in report["runs"].values())                 # ABBA: each variant twice
    assert {r["fast_path"] for r in report["runs"]["suite+fast/bf16"]} == {"cpu"}
    assert {r["fast_path"] for r in report["runs"]["suite/bf16"]} == {"none"}
    assert all(v > 0 for v in report["ratios"].values()) and len(report["ratios"]) == 14   # 6 + 4 + 4


def test_interleave_trains_every_variant_every_round(fixtures_dir, tmp_path):
    from bench.perf import interleave

    out = tmp_path / "il.json"
    assert interleave.main(["--model", "tiny-bert", "--data-dir", str(fixtures_dir / "perf"), "--methods",
                            "lora,prefix", "--rounds", "3", "--repeats", "2", "--batch-size", "2", "--examples", "0",
                            "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    records = report["methods"]
    assert report["allocator"] == ("retained" if allocator.glibc() else "not glibc")   # the fast path's setting
    assert [r["method"] for r in records] == ["lora", "prefix"]
    for r in records:
        assert set(r["step_cpu_seconds"]) == {interleave.name(*v) for v in interleave.VARIANTS}
        assert all(len(v) == 3 and all(len(t) == 2 and min(t) > 0 for t in v) for v in r["step_cpu_seconds"].values())
        assert all(len(v) == 3 and min(v) > 0 for v in r["first_pass_step_cpu_seconds"].values())
        assert set(r["speedup_cpu_first_pass"]) == set(r["speedup_cpu_mean"]) == set(r["speedup_cpu"])
        fastest = sum(min(t) for t in r["step_cpu_seconds"]["bf16+fast"])          # a batch's fastest pass
        assert r["examples_per_cpu_s"]["bf16+fast"] == pytest.approx(r["timed_examples"] / fastest)
        assert all(s["total"] > 0 and s["round_q1"] <= s["round_median"] <= s["round_q3"]
                   for s in r["speedup_cpu"].values())


def test_allocator_ab_runs_both_settings_abba_in_fresh_processes(fixtures_dir, tmp_path):
    from bench.perf import allocator_ab

    out = tmp_path / "alloc.json"
    assert allocator_ab.main(["--model", "tiny-bert", "--data-dir", str(fixtures_dir / "perf"), "--methods", "lora",
                              "--warmup", "1", "--steps", "1", "--batch-size", "2", "--examples", "0",
                              "--out", str(out)]) == 0
    report = json.loads(out.read_text())["methods"]["lora"]
    assert [r["setting"] for r in report["runs"]] == ["retained", "glibc defaults", "glibc defaults", "retained"]
    if allocator.glibc():
        assert [r["allocator"] for r in report["runs"]] == [r["setting"] for r in report["runs"]]
    for r in report["runs"]:
        assert set(r["by_precision"]) == {"bf16", "fp32"}
        assert all(v["ms_per_step"] > 0 and v["page_faults_per_step"] >= 0 for v in r["by_precision"].values())
    assert set(report["mean_of_runs"]) == set(allocator_ab.SETTINGS)


def test_ops_times_every_case_in_both_precisions(fixtures_dir, tmp_path):
    from bench.perf import ops

    out = tmp_path / "ops.json"
    assert ops.main(["--batch", "2", "--tokens", "4", "--calls", "2", "--repeats", "2", "--steps-of", "lora",
                     "--step-count", "2", "--model", "tiny-bert", "--data-dir", str(fixtures_dir / "perf"),
                     "--examples", "0", "--drift", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    times = report["us_per_call"]
    for op in ("softmax", "layer_norm", "gelu", "dropout p=0.1", "linear 384->1536"):
        for precision in ("fp32", "bf16"):
            assert any(k.startswith(op) and precision in k for k in times), (op, precision)
    assert all(v > 0 for v in times.values()) and report["shapes"]["tokens"] == 4
    assert report["command"].endswith("--out " + str(out))
    for r in report["drift"]["by_precision"].values():
        assert len(r["gflops_per_s"]) == 3 and r["p10"] <= r["median"] <= r["p90"] and r["max_over_min"] >= 1
    (steps,) = report["steps"]
    assert steps["method"] == "lora" and set(steps["by_precision"]) == {"bf16", "fp32"}
    for precision, r in steps["by_precision"].items():
        assert 0 < r["matmul_share"] < 1 and r["ms_per_step"] > 0
        assert abs(sum(o["share"] for o in r["ops"]) - 1) < 0.01
        assert any(o["op"].startswith("aten.addmm") and precision.replace("bf16", "bfloat16").replace(
            "fp32", "float32") in o["op"] for o in r["ops"])               # the matmuls ran in that precision
