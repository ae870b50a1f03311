"""Export a finished run's best method state so that it can be used outside the suite.

`export_run(run_dir, out)` reads the run's `spec.json` and `state.pt` (its best method state, kept by every run
smaller than its base model) and writes, in `out`:

- PEFT's own format (`adapter_config.json` + `adapter_model.safetensors`, written by PEFT's `save_pretrained`;
  the task head as PEFT saves it, `modules_to_save`) where PEFT computes the same function as our method, so
  that `PeftModel.from_pretrained(base, out)` gives our logits:
  - LoRA on every family (the Llama layout's q, k, v, o, gate, up, down projections included). GPT-2's fused
    c_attn with LoRA on some of its q/k/v slices becomes one PEFT LoRA of rank r x slices: A = the slices' A
    stacked, B = block-diagonal over the adapted slices (zero rows for the others), alpha x slices, so the
    scaling alpha / r and the update are ours exactly (PEFT then counts the zero blocks as parameters);
  - prefix tuning on a decoder's causal LM (GPT-2, Llama, Mistral, Qwen2) trained with `shift_positions=True`
    (PEFT's positions), as PEFT's `prefix_projection=False` prefix (the stored keys and values,
    `prompt_embeddings`; under grouped-query attention one row holds every layer's keys and values per key-value
    head, the width PEFT gives it);
  - soft prompts on a decoder's causal LM ([prompt][tokens], as PEFT). PEFT's logits include the prompt positions
    in front; ours drop them.
- otherwise the suite's own format: `method_state.safetensors` (the `methods.method_state_dict` names) and
  `method_config.json` (method, model, task, and why PEFT's format was not used). Load it by applying the same
  method to the same model and calling `methods.load_method_state`. PEFT has no bottleneck adapters, BitFit,
  top-k or full-model state; it cannot run prefix tuning on encoders under transformers 5 (PEFT passes the
  prefix as `past_key_values`, which transformers 5 encoders no longer take); its soft prompt on encoders goes
  in front of [CLS] where ours goes after it; prefix tuning with `shift_positions=False` numbers the text from
  0 where PEFT numbers it from the prefix length.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import ConfigError

OWN_STATE = "method_state.safetensors"
OWN_CONFIG = "method_config.json"


@dataclass
class Exported:
    out: Path
    format: str                           # "peft" | "peft-bench"
    peft_type: str | None                 # LORA | PREFIX_TUNING | PROMPT_TUNING (PEFT format)
    files: list[str] = field(default_factory=list)
    reason: str = ""                      # why PEFT's format was not used


def export_run(run_dir: str | Path, out: str | Path, *, force: bool = False) -> Exported:
    import torch

    from bench.runner import STATE_FILE
    from bench.spec import RunSpec, method_object
    from bench.tasks import get_task
    from methods import load_method_state

    run_dir, out = Path(run_dir), Path(out)
    spec_file, state_file = run_dir / "spec.json", run_dir / STATE_FILE
    if not spec_file.is_file():
        raise ConfigError(f"export: {run_dir} is not a run folder (no spec.json)")
    if not state_file.is_file():
        raise ConfigError(f"export: {run_dir} has no {STATE_FILE}: the run has not finished, or kept no method "
                          f"state (full fine-tuning keeps it only with save_state)")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConfigError(f"export: {out} exists and is not empty (choose another folder, or --force)")
    spec = RunSpec.from_dict(json.loads(spec_file.read_text()))
    task = get_task(spec.task)
    method = method_object(spec)
    model, arch = _structure(spec.model, task.kind, max(task.num_labels, 1), method)
    state = torch.load(state_file, map_location="cpu", weights_only=True)
    try:
        load_method_state(model, state, arch)
    except ValueError as exc:
        raise ConfigError(f"export: {state_file}: {exc}") from None
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    reason = _peft_reason(method, arch, task.kind)
    if reason is None:
        from bench.export_peft import write_peft

        peft_type = write_peft(model, arch, method, spec, task, out)
        return Exported(out, "peft", peft_type, ["adapter_config.json", "adapter_model.safetensors"])
    _write_own(model, arch, method, spec, task, out, reason)
    return Exported(out, "peft-bench", None, [OWN_STATE, OWN_CONFIG], reason)


def _structure(name: str, kind: str, num_labels: int, method):
    """The model with the method applied, weights uninitialised: built on the meta device and given empty CPU
    storage (no download, no init). Only the method's state and the head are loaded into it; it never runs."""
    from bench.models import build_meta

    model, arch = build_meta(name, kind, method, num_labels=num_labels)
    return model.to_empty(device="cpu"), arch


def _peft_reason(method, arch, kind: str) -> str | None:
    """None when PEFT computes the same function as `method` on this family and kind; else why not."""
    name = method.name
    if name == "lora":
        return None
    if name == "prefix":
        if not arch.decoder or kind != "generate":
            return ("PEFT cannot run prefix tuning on this model under transformers 5: it passes the prefix as "
                    "past_key_values, which the model's forward no longer takes (only a decoder's causal LM is "
                    "exported in PEFT's format)")
        if not method.shift_positions:
            return ("the run numbered the text 0..T-1 (prefix.shift_positions=false); PEFT numbers it after the "
                    "prefix, so its logits would differ")
        return None
    if name == "prompt":
        if not arch.decoder or kind != "generate":
            return ("PEFT puts a soft prompt in front of the whole input ([prompt][CLS]...); ours goes after the "
                    "first token ([CLS][prompt]...) on encoders, so PEFT's logits would differ")
        return None
    return {"adapter": "PEFT has no bottleneck adapters (Houlsby/Pfeiffer/Lin, AdapterDrop)",
            "bitfit": "PEFT has no BitFit", "topk": "PEFT has no top-k block fine-tuning",
            "full": "full fine-tuning is not a PEFT adapter"}.get(name, f"PEFT has no {name}")


def _write_own(model, arch, method, spec, task, out: Path, reason: str) -> None:
    from safetensors.torch import save_file

    from bench.models import model_info
    from bench.results import write_atomic
    from methods import method_state_dict, method_to_dict

    state = {k: v.contiguous() for k, v in method_state_dict(model, arch).items()}
    save_file(state, str(out / OWN_STATE), metadata={"format": "peft-bench method state"})
    info = model_info(spec.model)
    record = {
        "format": "peft-bench method state",
        "method": method_to_dict(method),
        "model": spec.model, "hub_id": info.hub_id, "family": info.family,
        "task": spec.task, "kind": task.kind, "num_labels": max(task.num_labels, 1),
        "run_id": spec.run_id, "recipe": spec.recipe,
        "why_not_peft": reason,
        "load": ("apply the method to the model (methods.METHODS[method.name](**fields).apply(model, arch)), then "
                 "methods.load_method_state(model, safetensors.torch.load_file(method_state.safetensors))"),
    }
    write_atomic(out / OWN_CONFIG, json.dumps(record, indent=2) + "\n")
