"""`make gpu-check` end to end in its --tiny CPU mode (tiny models, one timed step, one decoded input), so that
the script that runs on a GPU machine cannot rot between runs there. Not a timed test."""
from __future__ import annotations

import json

from bench.perf import gpu


def test_tiny_gpu_check_writes_every_stage(tmp_path):
    code = gpu.main(["--tiny", "--budget-s", "3600", "--out-dir", str(tmp_path)])   # no budget on a busy CPU
    report = json.loads((tmp_path / "gpu-cpu-tiny.json").read_text())
    assert code == 0, (report["status"], [r.get("error") for r in report["train"] + report["decode"]],
                       report["tests"])
    assert report["status"] == "ok" and report["tiny"] and not report["skipped"]
    tests = report["tests"]                               # on a CPU the CUDA-marked tests all skip
    assert tests["ok"] and tests["returncode"] == 0 and tests["skipped"] > 0 and not tests["failed"]
    assert report["matmul_peak_bf16_flops_per_s"] > 0
    expected = {(shape.model, method, engine) for shape in gpu.TINY_SHAPES
                for method in shape.paired for engine in ("suite", "baseline")}
    expected |= {(shape.model, method, "suite") for shape in gpu.TINY_SHAPES for method in shape.suite_only}
    got = {(r["model"], r["method"], r["engine"]) for r in report["train"]}
    assert got == expected
    for r in report["train"]:
        assert r["status"] == "ok" and r["precision"] == "bf16" and r["padding"] == "dynamic"
        assert r["mfu"] == r["flops_per_s"] / report["matmul_peak_bf16_flops_per_s"] > 0
        assert r["peak_mem_mb"] > 0 and r["examples_per_s"] > 0
    paired = {(row["model"], row["method"]) for row in report["train_summary"] if "speedup" in row}
    assert paired == {(s.model, m) for s in gpu.TINY_SHAPES for m in s.paired}
    decoded = {r["model"] for r in report["decode"]}
    assert decoded == {f"{m} (random weights)" for m in gpu.DECODE_MODELS["cpu"]}        # GPT-2 and Llama layouts
    for model in decoded:
        decode = {r["engine"]: r for r in report["decode"] if r["model"] == model}
        assert set(decode) == {"suite", "hf_batched", "baseline"}
        assert all(r["identical_outputs"] for r in decode.values()) and decode["suite"]["search"] == "own"


def test_shapes_are_registry_models_the_methods_support():
    """The GPU shapes name registry models (no download: random weights from their configs) whose family the
    suite's methods support, and a decoder for the generation task."""
    from bench.models import model_info
    from bench.tasks import get_task
    from methods import ARCHES

    for shape in gpu.SHAPES + gpu.TINY_SHAPES:
        arch = ARCHES[model_info(shape.model).family]
        assert arch.decoder == (get_task(shape.task).kind == "generate")
        assert set(shape.paired) <= {"full", "lora", "prefix", "prompt"}      # what Trainer + peft can run
    assert [s.model for s in gpu.SHAPES] == ["roberta-base", "gpt2-medium"]
    for device, names in gpu.DECODE_MODELS.items():
        for name in names:
            assert ARCHES[model_info(name).family].decoder and model_info(name).tiny == (device == "cpu")
