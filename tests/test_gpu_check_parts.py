"""Parts of `make gpu-check` that run on a CPU: the dry run, the beam-score comparison of decoding outputs, a
case process that sees only its GPU, the per-stage time guard, and CPU-only settings kept off GPU cases."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _dry_run(env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.perf.gpu", "--dry-run"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_dry_run_says_no_cuda_device_on_this_cpu_and_refuses_gpus_torch_cannot_use(tmp_path):
    proc = _dry_run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(line.startswith("import torch: ok 2.") for line in lines)
    assert any(line.startswith("import peft: ok") for line in lines)
    assert any(line.startswith("device: no CUDA device here (") for line in lines)
    assert lines[-1].startswith("dry run: ok (")
    smi = tmp_path / "nvidia-smi"                      # a machine whose nvidia-smi lists a T4
    smi.write_text("#!/bin/sh\necho '0, Tesla T4, 535.104.05, 7.5'\n")
    smi.chmod(0o755)
    proc = _dry_run({"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 2
    assert "device: nvidia-smi lists GPUs but torch sees no CUDA device (nvidia-smi: 1 GPU(s), Tesla T4 sm_75, " \
           "driver 535.104.05" in proc.stdout and "dry run: FAILED" in proc.stdout


@pytest.fixture(scope="module")
def tiny_decoder():
    from bench.perf.decode import _random_model

    torch.manual_seed(0)
    model, tokenizer = _random_model("tiny-gpt2")
    return model.eval(), tokenizer


def test_sequence_score_is_the_beam_score_generate_reports(tiny_decoder):
    from transformers import GenerationConfig

    from bench.decode.protocol import Decoding
    from bench.perf.decode_compare import compare, sequence_score

    model, tokenizer = tiny_decoder
    eos = int(tokenizer.eos_token_id)
    decoding = Decoding(num_beams=3, max_new_tokens=8, min_new_tokens=0, length_penalty=0.8)
    source = tokenizer("name : The Eagle | food : French")["input_ids"]
    ids = torch.tensor([source])
    config = GenerationConfig(num_beams=3, max_new_tokens=8, length_penalty=0.8, do_sample=False, eos_token_id=eos,
                              pad_token_id=eos, early_stopping=False)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                             output_scores=True, return_dict_in_generate=True)
    generated = out.sequences[0, len(source):].tolist()
    generated = generated[:generated.index(eos)] if eos in generated else generated
    assert sequence_score(model, source, generated, eos, decoding, "cpu") == pytest.approx(
        out.sequences_scores[0].item(), abs=1e-4)
    other = generated[:-1] + [(generated[-1] + 1) % len(tokenizer)] if generated else [5]
    result = compare(model, tokenizer, [source, source], [generated, other], [generated, generated], decoding, "cpu")
    gap = sequence_score(model, source, other, eos, decoding, "cpu") - out.sequences_scores[0].item()
    assert result["identical_rows"] == 1 and result["rows"] == 2
    assert result["max_score_gap"] == pytest.approx(abs(gap), abs=1e-4)
    assert result["rows_unexplained"] == (abs(gap) > result["score_tolerance"])
    assert compare(model, tokenizer, [source], [other], [generated], decoding, "cpu",
                   tolerance=abs(gap) + 1)["rows_unexplained"] == 0      # a near-tie within tolerance is no failure


def test_a_gpu_case_process_sees_only_its_gpu():
    from bench.perf.isolate import case_env

    env, inner = case_env("cuda:1", 4, {"CUDA_VISIBLE_DEVICES": "4,5", "PATH": "/bin"})
    assert inner == "cuda:0" and env["CUDA_VISIBLE_DEVICES"] == "5" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["OMP_NUM_THREADS"] == "4"
    env, inner = case_env("cuda:1", 0, {"PATH": "/bin"})
    assert inner == "cuda:0" and env["CUDA_VISIBLE_DEVICES"] == "1"
    env, inner = case_env("cuda", 0, {"PATH": "/bin"})
    assert inner == "cuda:0" and env["CUDA_VISIBLE_DEVICES"] == "0"
    env, inner = case_env("cpu", 1, {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3"})
    assert inner == "cpu" and env["CUDA_VISIBLE_DEVICES"] == "3"
    with pytest.raises(ValueError, match="has 2 GPU"):
        case_env("cuda:2", 0, {"CUDA_VISIBLE_DEVICES": "4,5"})


def test_the_time_guard_stops_a_stage_and_says_so():
    from bench.perf.isolate import run_cases
    from bench.perf.train import TrainCase

    case = TrainCase(engine="suite", method="lora", padding="dynamic", model="tiny-roberta", steps=1, warmup=0)
    (records,) = run_cases([("train", case)], 1, timeout=0.2)
    assert records[0]["status"] == "failed" and records[0]["error"] == "time guard: still running after 0 s, stopped"


@pytest.mark.parametrize("device,retained", [("cpu", True), ("cuda:0", False)])
def test_the_cpu_allocator_setting_stays_off_gpu_cases(tmp_path, monkeypatch, device, retained):
    from bench import allocator
    from bench.perf import worker
    from bench.perf.train import TrainCase

    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(worker, "run_job", lambda kind, fields: [{"kind": kind, "device": fields["device"]}])
    case = replace(TrainCase(engine="suite", method="lora", padding="dynamic"), device=device)
    from dataclasses import asdict

    job = tmp_path / "case.json"
    job.write_text(json.dumps({"threads": 0, "jobs": [{"kind": "train", "case": asdict(case)}] * 2}))
    assert worker.main([str(job), str(tmp_path / "out.json")]) == 0
    assert bool(calls) == retained
    assert json.loads((tmp_path / "out.json").read_text()) == [[{"kind": "train", "device": device}]] * 2


def test_a_stage_runs_its_cases_in_one_process_and_keeps_each_record():
    from bench.perf.isolate import run_cases
    from bench.perf.train import TrainCase
    from bench.perf.gpu import FIXTURES as SMOKE

    common = dict(padding="dynamic", model="tiny-roberta", task="sst2", data_dir=str(SMOKE), steps=1, warmup=1,
                  examples=0, batch_size=4, max_length=64, precision="no")
    jobs = [("train", TrainCase(engine=engine, method="lora", **common)) for engine in ("suite", "baseline")]
    results = run_cases(jobs, 1, timeout=600)
    assert [[r["engine"] for r in records] for records in results] == [["suite"], ["baseline"]]
    for records in results:
        assert records[0]["status"] == "ok" and records[0]["isolated_process"] and records[0]["examples_per_s"] > 0


def test_random_weight_decoding_can_keep_the_models_own_vocabulary():
    """The GPU check decodes SmolLM2-135M's shape with its real 49,152-entry LM head (28M of its parameters), not
    the byte-level tokenizer's few hundred entries, whose ids are a subset of it."""
    from bench.perf.decode import _random_model

    real, tok = _random_model("smollm2-135m", real_vocab=True)
    assert real.config.vocab_size == 49152 and real.get_output_embeddings().weight.shape == (49152, 576)
    assert len(tok) <= 49152 and tok.eos_token_id < 49152
    del real
    small, tok = _random_model("smollm2-135m")
    assert small.config.vocab_size == len(tok) < 1000
