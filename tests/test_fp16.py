"""Precision per card class (simulated on the CPU by patching torch.cuda's capability queries) and fp16 training
with dynamic loss scaling: fp32 master weights and optimizer state, skipped steps counted, a loss that stays
non-finite failing the run, half-precision trainable parameters refused."""
from __future__ import annotations

import pytest
import torch

from bench.precision import keep_frozen_in, resolve_precision, tf32_in_effect
from bench.spec import TrainConfig
from bench.train import fit, make_accelerator, make_optimizer, train_steps
from tests.test_train import Toy, _loader

torch.set_num_threads(1)

CARDS = [((7, 0), "V100", "fp16"), ((7, 5), "T4", "fp16"), ((8, 0), "A100", "bf16"), ((8, 6), "RTX 3090", "bf16"),
         ((8, 9), "L4", "bf16"), ((9, 0), "H100", "bf16")]


@pytest.fixture
def card(monkeypatch):
    """Make torch.cuda report one device of a given compute capability (and bf16 'supported', as emulation does)."""
    def set_card(capability):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    return set_card


@pytest.mark.parametrize("capability,name,expected", CARDS, ids=[c[1] for c in CARDS])
def test_auto_picks_by_compute_capability(card, capability, name, expected):
    card(capability)
    assert resolve_precision("auto", "cuda:0") == expected
    assert resolve_precision("auto", torch.device("cuda", 0)) == expected
    assert resolve_precision("auto") == expected                  # no device named: CUDA when available
    assert resolve_precision("no", "cuda:0") == "no" and resolve_precision("bf16", "cuda:0") == "bf16"


@pytest.mark.parametrize("capability,name,expected", CARDS, ids=[c[1] for c in CARDS])
def test_tf32_only_on_ampere_and_newer_in_fp32_when_asked(card, capability, name, expected):
    card(capability)
    ampere = capability >= (8, 0)
    assert tf32_in_effect(True, "no", "cuda:0") is ampere
    assert tf32_in_effect(False, "no", "cuda:0") is False
    assert tf32_in_effect(True, "bf16", "cuda:0") is False
    assert tf32_in_effect(True, "no", "cpu") is False


def test_fp16_on_the_cpu_gets_a_grad_scaler_and_autocast():
    accelerator = make_accelerator(TrainConfig(mixed_precision="fp16"))
    assert str(accelerator.mixed_precision) == "fp16"
    assert isinstance(accelerator.scaler, torch.amp.GradScaler) and accelerator.native_amp


def test_frozen_base_in_fp16_computes_what_plain_fp16_autocast_computes():
    from bench.models import apply_method, load_model
    from methods import LoRA

    outs = []
    for lower in (False, True):
        torch.manual_seed(0)
        model, tokenizer = load_model("tiny-roberta", kind="classify", num_labels=3)
        apply_method(model, LoRA(r=2))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.02)
        if lower:
            assert keep_frozen_in(model, "fp16") > 0
        model.eval()
        batch = dict(tokenizer(["a tiny test sentence", "and another one"], padding=True, return_tensors="pt"))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
            outs.append(model(**batch).logits.float())
    assert torch.equal(outs[0], outs[1])


def test_fp16_training_keeps_trainable_weights_and_optimizer_state_fp32():
    torch.manual_seed(0)
    model = Toy()
    cfg = TrainConfig(lr=1e-2, mixed_precision="fp16")
    accelerator = make_accelerator(cfg)
    stats = train_steps(model, _loader(n=16), kind="classify", cfg=cfg, max_steps=6, accelerator=accelerator)
    assert stats.steps == 6 and torch.isfinite(torch.tensor(stats.loss))
    assert stats.loss_scale == 65536.0 and stats.skipped_steps == 0   # GradScaler's initial scale, no overflow
    assert model.frozen.weight.dtype == torch.float16                 # the frozen base stored in fp16
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    states = [s for s in accelerator._optimizers[0].optimizer.state.values()]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)


class Overflowing(Toy):
    """The logits multiplied by a large constant: their gradients, times the loss scale, overflow fp16 in the
    backward pass of the fp16 head until the scaler has lowered its scale far enough."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, input_ids, attention_mask=None):
        out = super().forward(input_ids, attention_mask)
        return type("Out", (), {"logits": out.logits.float() * self.factor})()


def test_fp16_overflowing_steps_are_skipped_counted_and_logged():
    torch.manual_seed(0)
    model = Overflowing(1e3)
    cfg = TrainConfig(lr=1e-2, epochs=2, mixed_precision="fp16")
    result = fit(model, _loader(n=40), kind="classify", cfg=cfg, evaluate=lambda m, e: (0.0, True, {}),
                 progress=False)
    first = result.log[0]
    assert first["skipped_steps"] >= 1 and first["loss_scale"] < 65536.0
    assert first["loss_scale"] == 65536.0 / 2 ** first["skipped_steps"]   # halved once per skipped step
    skipped = first["skipped_steps"] + result.log[1]["skipped_steps"]
    assert result.train.skipped_steps == skipped < result.train.steps              # most steps trained
    assert result.log[1]["loss_scale"] == 65536.0 / 2 ** skipped == result.train.loss_scale
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_fp16_loss_that_stays_non_finite_fails_the_run_with_the_reason():
    torch.manual_seed(0)
    model = Toy()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"fp16 loss scale fell to 6.10352e-05 after 30 skipped steps "
                                                 r"\(training loss not finite in 10 of the 10 micro-batches"):
        train_steps(model, _loader(n=40), kind="classify", cfg=TrainConfig(mixed_precision="fp16"), max_steps=30)


def test_fp16_loss_non_finite_only_briefly_does_not_fail():
    """A few non-finite micro-batches: the scaler skips their steps and training goes on."""
    torch.manual_seed(0)
    model = Toy()
    calls = {"n": 0}
    forward = model.forward

    def sometimes_nan(input_ids, attention_mask=None):
        out = forward(input_ids, attention_mask)
        calls["n"] += 1
        if calls["n"] <= 3:
            return type("Out", (), {"logits": out.logits * float("nan")})()
        return out

    model.forward = sometimes_nan
    stats = train_steps(model, _loader(n=40), kind="classify", cfg=TrainConfig(mixed_precision="fp16"), max_steps=10)
    assert stats.skipped_steps == 3 and stats.finite == 7 and torch.isfinite(torch.tensor(stats.loss))


def test_optimizer_refuses_trainable_parameters_that_are_not_fp32():
    model = Toy()
    model.head.half()
    with pytest.raises(ValueError, match=r"2 trainable parameters are not fp32: head.weight \(float16\)"):
        make_optimizer(model, TrainConfig())
    model.head.float()
    make_optimizer(model, TrainConfig())


def test_a_checkpoint_saved_in_fp16_loads_in_fp32(tmp_path):
    import shutil

    from transformers import AutoModelForSequenceClassification

    from bench.models import load_model, minilm_dir

    try:
        source = minilm_dir()
    except Exception as exc:  # noqa: BLE001 - the package is an optional offline model
        pytest.skip(str(exc))
    half = tmp_path / "minilm-l6"
    shutil.copytree(source, half)
    model = AutoModelForSequenceClassification.from_pretrained(half, num_labels=2, dtype=torch.float16)
    model.save_pretrained(half)
    assert AutoModelForSequenceClassification.from_pretrained(half).dtype == torch.float16   # what it would be
    loaded, _ = load_model("minilm-l6", kind="classify", num_labels=2, model_dir=tmp_path)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_a_tiny_fp16_run_completes_and_its_rows_and_log_say_so(tmp_path):
    import json

    from bench.presets import SMOKE_DATA
    from bench.runner import run_one
    from bench.spec import RunSpec, resolve

    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", preset="t",
                           train=TrainConfig(epochs=2, batch_size=8, mixed_precision="fp16")))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert rows[0]["status"] == "ok", rows[0]["error"]
    assert {(r["precision"], r["tf32"]) for r in rows} == {("fp16", "off")}
    log = [json.loads(line) for line in next(tmp_path.glob("runs/t/*/log.jsonl")).read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert all(e["loss_scale"] == 65536.0 and e["skipped_steps"] == 0 for e in log)


def test_auto_is_resolved_on_the_device_accelerate_chose(monkeypatch):
    """make_accelerator asks `resolve_precision` about the process's own device (PartialState's), not about
    whichever device torch would name first."""
    import bench.precision

    seen = []

    def record(setting, device=None):
        seen.append((setting, device))
        return "no"

    monkeypatch.setattr(bench.precision, "resolve_precision", record)
    from accelerate import PartialState

    make_accelerator(TrainConfig())
    assert seen == [("auto", PartialState().device)]
