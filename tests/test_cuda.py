"""The CUDA path: precision, training with the bf16 base, the perf cases and the beam search on a GPU. Every test
here is marked `cuda` and skips where CUDA is absent (tests/conftest.py); `make gpu-check` runs them.
PEFT_BENCH_CUDA_TEST_DEVICE=cpu runs them on the CPU instead (to check the tests themselves without a GPU)."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from tests.gen_helpers import four_sentence_loader

pytestmark = pytest.mark.cuda

DEVICE = os.environ.get("PEFT_BENCH_CUDA_TEST_DEVICE", "cuda")
METHODS = ("full", "topk", "bitfit", "lora", "adapter", "prefix", "prompt")


def test_auto_trains_in_bf16_on_sm80_and_newer_and_fp16_below():
    from bench.precision import resolve_precision
    from bench.spec import TrainConfig
    from bench.train import make_accelerator

    if DEVICE != "cuda":
        pytest.skip("needs the CUDA device itself")
    expected = "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"
    assert resolve_precision("auto") == expected
    accelerator = make_accelerator(TrainConfig())
    assert accelerator.device.type == "cuda" and str(accelerator.mixed_precision) == expected


@pytest.mark.parametrize("model_name,kind", [("tiny-roberta", "classify"), ("tiny-gpt2", "generate")])
@pytest.mark.parametrize("method", METHODS)
def test_bf16_training_on_cuda_moves_only_the_trainable_fp32_parameters(method, model_name, kind):
    from bench.models import apply_method, load_model, make_method
    from bench.spec import TrainConfig
    from bench.train import train_steps

    torch.manual_seed(0)
    model, tokenizer = load_model(model_name, kind=kind, num_labels=3)
    apply_method(model, make_method(method))
    model.to(DEVICE)
    loader = four_sentence_loader(tokenizer, kind)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    stats = train_steps(model, loader, kind=kind, cfg=TrainConfig(lr=1e-2, mixed_precision="bf16"), max_steps=2)
    assert stats.steps == 2 and torch.isfinite(torch.tensor(stats.loss))
    for name, p in model.named_parameters():
        assert p.device.type == torch.device(DEVICE).type
        if name in trainable:
            assert p.dtype == torch.float32
        else:
            assert torch.equal(p.float(), before[name].to(p.dtype).float()), f"{name} moved"
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in trainable)


@pytest.mark.parametrize("method", ["lora", "prefix", "adapter"])
def test_bf16_base_computes_what_autocast_computes_on_cuda(method):
    from bench.models import apply_method, load_model, make_method
    from bench.precision import keep_frozen_in

    outs = []
    for lower in (False, True):
        torch.manual_seed(0)
        model, tokenizer = load_model("tiny-roberta", kind="classify", num_labels=3)
        apply_method(model, make_method(method))
        model.to(DEVICE).eval()
        if lower:
            keep_frozen_in(model, "bf16")
        batch = {k: v.to(DEVICE) for k, v in tokenizer(["a tiny test", "and another, longer one"], padding=True,
                                                       return_tensors="pt").items()}
        with torch.no_grad(), torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
            outs.append(model(**batch).logits.float())
    assert torch.equal(outs[0], outs[1])


def test_perf_cases_run_on_cuda_with_device_memory(fixtures_dir):
    from bench.perf.train import TrainCase, run_train_case

    for engine in ("suite", "baseline"):
        record = run_train_case(TrainCase(engine=engine, method="lora", padding="dynamic", model="tiny-bert",
                                          data_dir=str(fixtures_dir / "perf"), batch_size=2, steps=2,
                                          warmup=1, examples=0, device=DEVICE, precision="bf16"))
        memory = "cuda_max_allocated" if DEVICE.startswith("cuda") else "process_rss_peak"
        assert record["precision"] == "bf16" and record["mem_measure"] == memory
        assert record["peak_mem_mb"] > 0 and record["examples_per_s"] > 0


def test_random_weight_shape_builds_on_cuda():
    from bench.perf.shapes import random_model

    model, tokenizer, name = random_model("tiny-gpt2", kind="generate", device=DEVICE)
    assert next(model.parameters()).device.type == torch.device(DEVICE).type and "byte-level" in name
    assert model.config.eos_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize("method", [None, "lora", "prefix"])
def test_beam_search_on_cuda_gives_batch1_generate_tokens(method):
    from bench.decode.generate import generate_ids, one_at_a_time
    from bench.decode.protocol import PREFIX_TUNING
    from bench.models import apply_method, make_method
    from tests.gen_helpers import sources, tiny_gpt2, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_gpt2(len(tok), seed=1)
    model.config.eos_token_id = model.config.bos_token_id = tok.eos_token_id
    with torch.no_grad():
        model.transformer.wte.weight[tok.eos_token_id] *= 3.0
    if method is not None:
        torch.manual_seed(0)
        apply_method(model, make_method(method))
        with torch.no_grad():          # a trained-looking method: updates that change the outputs
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn_like(p) * 0.05)
    model.to(DEVICE).eval()
    src = sources(tok, n=10, seed=2)
    protocol = dataclasses.replace(PREFIX_TUNING, max_new_tokens=20, batch_size=10)
    ours = generate_ids(model, tok, src, protocol, device=DEVICE, progress=False, engine="own")
    reference = generate_ids(model, tok, src, one_at_a_time(protocol), device=DEVICE, progress=False, engine="hf")
    assert ours == reference
