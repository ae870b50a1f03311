"""`peft-bench export`: a run's method state in PEFT's own format gives our logits through
`PeftModel.from_pretrained(base, OUT)` (LoRA on RoBERTa, BERT and GPT-2's fused c_attn, prefix and soft prompt on
a GPT-2 causal LM); methods PEFT lacks are written in the suite's format and load back exactly."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from bench.cli import main
from bench.config import ConfigError
from bench.export import OWN_CONFIG, OWN_STATE, export_run
from bench.models import apply_method, load_model
from bench.runner import STATE_FILE, _save_state
from bench.results import write_atomic
from bench.spec import RunSpec, method_object, resolve, spec_json
from methods import load_method_state, method_state_dict

peft = pytest.importorskip("peft")
pytestmark = pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")

torch.set_num_threads(1)
TOL = 1e-5


def make_run(tmp_path, model: str, task: str, method: str, config: dict):
    """A run folder as the runner leaves it (spec.json, state.pt with trained-looking weights), the base model
    it started from, and the trained model."""
    spec = resolve(RunSpec(model=model, task=task, method=method, method_config=config))
    kind = "generate" if task == "e2e" else "classify"
    torch.manual_seed(0)
    base, _ = load_model(model, kind=kind, num_labels=2)
    base.eval()
    ours = copy.deepcopy(base)
    torch.manual_seed(1)
    arch = apply_method(ours, method_object(spec))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in ours.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    folder = tmp_path / "runs" / spec.run_id
    folder.mkdir(parents=True)
    write_atomic(folder / "spec.json", spec_json(spec))
    _save_state(folder / STATE_FILE, {k: v.cpu() for k, v in method_state_dict(ours, arch).items()})
    return folder, base, ours.eval()


def batch(pad: bool = True):
    ids = torch.randint(5, 250, (3, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    if pad:
        mask[1, 6:] = 0
    return ids, mask


def diff(a, b) -> float:
    return float((a - b).abs().max())


PEFT_CASES = [
    ("tiny-roberta", "sst2", "lora", {"r": 2, "alpha": 4.0}, "LORA"),
    ("tiny-bert", "sst2", "lora", {"r": 2, "alpha": 4.0}, "LORA"),                  # head: pooler + classifier
    ("tiny-gpt2", "e2e", "lora", {"r": 2, "alpha": 8.0}, "LORA"),                   # c_attn q and v slices
    ("tiny-gpt2", "e2e", "lora", {"r": 2, "alpha": 8.0, "targets": ("q", "v", "o")}, "LORA"),   # mixed ranks
    ("tiny-gpt2", "e2e", "prefix", {"length": 3, "mlp_hidden": 16, "shift_positions": True}, "PREFIX_TUNING"),
    ("tiny-gpt2", "e2e", "prompt", {"length": 3}, "PROMPT_TUNING"),
    # the Llama layout: grouped-query attention (prefix per key-value head), rotary positions, gated MLP
    ("tiny-llama", "e2e", "lora", {"r": 2, "alpha": 8.0, "targets": ("q", "k", "v", "o", "gate", "up", "down")},
     "LORA"),
    ("tiny-qwen2", "e2e", "lora", {"r": 2, "alpha": 8.0}, "LORA"),
    ("tiny-llama", "sst2", "lora", {"r": 2, "alpha": 4.0}, "LORA"),                 # head: score
    ("tiny-llama", "e2e", "prefix", {"length": 3, "mlp_hidden": 16, "shift_positions": True}, "PREFIX_TUNING"),
    ("tiny-qwen2", "e2e", "prefix", {"length": 3, "mlp_hidden": 16, "shift_positions": True}, "PREFIX_TUNING"),
    ("tiny-llama", "e2e", "prompt", {"length": 3}, "PROMPT_TUNING"),
    ("tiny-qwen2", "e2e", "prompt", {"length": 3}, "PROMPT_TUNING"),
]


@pytest.mark.parametrize("model,task,method,config,peft_type", PEFT_CASES)
def test_peft_format_gives_our_logits(tmp_path, model, task, method, config, peft_type):
    folder, base, ours = make_run(tmp_path, model, task, method, config)
    out = tmp_path / "export"
    result = export_run(folder, out)
    assert result.format == "peft" and result.peft_type == peft_type
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["peft_type"] == peft_type
    loaded = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(out)).eval()
    ids, mask = batch()
    with torch.no_grad():
        expected = ours(input_ids=ids, attention_mask=mask).logits
        got = loaded(input_ids=ids, attention_mask=mask).logits
        plain = base(input_ids=ids, attention_mask=mask).logits
    if method == "prompt":                      # PEFT's logits keep the prompt positions in front
        got = got[:, config["length"]:]
    assert got.shape == expected.shape
    assert diff(got, expected) < TOL
    assert diff(plain, expected) > 1e-3         # the exported state is on the path


OWN_CASES = [
    ("tiny-roberta", "sst2", "adapter", {"kind": "pfeiffer", "bottleneck": 3}, "bottleneck adapters"),
    ("tiny-gpt2", "e2e", "bitfit", {}, "BitFit"),
    ("tiny-roberta", "sst2", "prefix", {"length": 3, "mlp_hidden": 16}, "past_key_values"),
    ("tiny-gpt2", "e2e", "prefix", {"length": 3, "mlp_hidden": 16}, "shift_positions=false"),
    ("tiny-roberta", "sst2", "prompt", {"length": 3}, "[CLS][prompt]"),
    ("tiny-llama", "e2e", "adapter", {"kind": "houlsby", "bottleneck": 3}, "bottleneck adapters"),
    ("tiny-qwen2", "e2e", "bitfit", {}, "BitFit"),
    ("tiny-qwen2", "e2e", "prefix", {"length": 3, "mlp_hidden": 16}, "shift_positions=false"),
]


@pytest.mark.parametrize("model,task,method,config,why", OWN_CASES)
def test_own_format_loads_back_exactly(tmp_path, model, task, method, config, why):
    from safetensors.torch import load_file

    folder, base, ours = make_run(tmp_path, model, task, method, config)
    out = tmp_path / "export"
    result = export_run(folder, out)
    assert result.format == "peft-bench" and why in result.reason
    record = json.loads((out / OWN_CONFIG).read_text())
    assert record["method"]["name"] == method and record["model"] == model and why in record["why_not_peft"]
    fresh = copy.deepcopy(base)
    spec = RunSpec.from_dict(json.loads((folder / "spec.json").read_text()))
    apply_method(fresh, method_object(spec))
    load_method_state(fresh, load_file(str(out / OWN_STATE)))
    ids, mask = batch()
    with torch.no_grad():
        assert torch.equal(fresh.eval()(input_ids=ids, attention_mask=mask).logits,
                           ours(input_ids=ids, attention_mask=mask).logits)


def test_errors_and_the_cli(tmp_path, capsys):
    folder, _, _ = make_run(tmp_path, "tiny-roberta", "sst2", "lora", {"r": 2})
    out = tmp_path / "export"
    assert main(["export", str(folder), str(out)]) == 0
    assert "PEFT LORA" in capsys.readouterr().out
    assert main(["export", str(folder), str(out)]) == 2                       # OUT not empty
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(folder), str(out), "--force"]) == 0
    (folder / STATE_FILE).unlink()
    with pytest.raises(ConfigError, match="no state.pt"):
        export_run(folder, tmp_path / "other")
    with pytest.raises(ConfigError, match="not a run folder"):
        export_run(tmp_path, tmp_path / "other")


def test_a_real_run_keeps_its_state_and_exports(tmp_path):
    """End to end: the runner keeps a LoRA run's best state; its export reproduces the trained model."""
    from accelerate.utils import set_seed

    from bench.presets import SMOKE_DATA
    from bench.runner import run_one
    from bench.spec import TrainConfig

    spec = resolve(RunSpec(model="tiny-roberta", task="sst2", method="lora", method_config={"r": 2},
                           train=TrainConfig(epochs=1, lr=1e-2, batch_size=8, max_train_examples=32,
                                             max_eval_examples=16)))
    rows = run_one(spec, results_dir=tmp_path, data_dir=SMOKE_DATA, progress=False)
    assert all(r["status"] == "ok" for r in rows), rows[0].get("error")
    folder = tmp_path / "runs" / spec.preset / spec.run_id
    assert (folder / STATE_FILE).is_file()
    out = tmp_path / "export"
    assert export_run(folder, out).format == "peft"
    set_seed(spec.seed)                                        # the runner's base model: same seed, same init
    base, _ = load_model("tiny-roberta", kind="classify", num_labels=2)
    trained = copy.deepcopy(base)
    arch = apply_method(trained, method_object(spec))
    load_method_state(trained, torch.load(folder / STATE_FILE, weights_only=True), arch)
    loaded = peft.PeftModel.from_pretrained(base, str(out)).eval()
    ids, mask = batch()
    with torch.no_grad():
        assert diff(loaded(input_ids=ids, attention_mask=mask).logits,
                    trained.eval()(input_ids=ids, attention_mask=mask).logits) < TOL
