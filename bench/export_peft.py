"""Writing a method state in PEFT's own format, by PEFT itself: a PEFT model is built on an empty copy of the
base architecture, our trained tensors are copied into its adapter (and the head into `modules_to_save`), and
PEFT's `save_pretrained` writes `adapter_config.json` + `adapter_model.safetensors`. See `bench/export.py`."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from bench.config import ConfigError


def write_peft(model: nn.Module, arch, method, spec, task, out: Path) -> str:
    """Write `model`'s method state (LoRA, a decoder's prefix or soft prompt) in PEFT's format; returns its
    peft_type."""
    try:
        import peft
    except ImportError:
        raise ConfigError("export: PEFT's format needs the peft package (pip install 'peft>=0.17,<1')") from None
    from bench.models import build_meta, model_info
    from methods import Full
    from methods.base import get_module

    num_labels = max(task.num_labels, 1)
    base, _ = build_meta(spec.model, task.kind, Full(), num_labels=num_labels)
    base = base.to_empty(device="cpu")
    heads = [path for path in arch.head if _has(model, path)]
    with torch.no_grad():                      # the head goes into the base: PEFT's modules_to_save copies it
        for path in heads:
            get_module(base, path).load_state_dict(get_module(model, path).state_dict())
    task_type = peft.TaskType.CAUSAL_LM if task.kind == "generate" else peft.TaskType.SEQ_CLS
    if method.name == "lora":
        config, fill = _lora(peft, model, method, task_type, heads)
    elif method.name == "prefix":
        config, fill = _prefix(peft, model, method, task_type)
    elif method.name == "prompt":
        config, fill = _prompt(peft, model, method, task_type)
    else:
        raise ValueError(f"export: no PEFT writer for {method.name}")
    with warnings.catch_warnings():            # PEFT's own deprecation notices about transformers 5 names
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = peft.get_peft_model(base, config)
        with torch.no_grad():
            fill(peft_model)
        peft_model.peft_config["default"].base_model_name_or_path = model_info(spec.model).hub_id
        peft_model.save_pretrained(str(out))
    return config.peft_type.value


def _has(model: nn.Module, path: str) -> bool:
    from methods.base import get_module

    try:
        get_module(model, path)
    except AttributeError:
        return False
    return True


def _lora(peft, model, method, task_type, heads):
    """One PEFT LoRA per LoRA layer of ours. A fused layer with updates on k of its slices: rank r*k, alpha
    alpha*k (the same scaling), A stacked, B block-diagonal over the adapted slices."""
    from methods.lora import LoRAConv1D, LoRALinear

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    shape: dict[str, tuple[int, float]] = {}
    conv1d = False                              # transformers' Conv1D (x W + b): PEFT's fan_in_fan_out
    for name, layer in model.named_modules():
        if isinstance(layer, LoRALinear):
            tensors[name] = (layer.lora_A.detach(), layer.lora_B.detach())
            shape[name] = (layer.r, float(method.alpha))
        elif isinstance(layer, LoRAConv1D):
            k, r = len(layer.slices), layer.r
            a = layer.lora_A.detach().reshape(k * r, layer.nx)
            b = layer.lora_A.new_zeros(layer.nf, k * r)
            for j, s in enumerate(layer.slices):
                b[s * layer.chunk:(s + 1) * layer.chunk, j * r:(j + 1) * r] = layer.lora_B.detach()[j]
            tensors[name] = (a, b)
            shape[name] = (k * r, float(method.alpha) * k)
            conv1d = True
    if not tensors:
        raise ValueError("export: the model has no LoRA layers")
    (r, alpha), _ = Counter(shape.values()).most_common(1)[0]
    config = peft.LoraConfig(
        task_type=task_type, r=r, lora_alpha=alpha, lora_dropout=float(method.dropout), bias="none",
        target_modules=sorted(tensors), fan_in_fan_out=conv1d, modules_to_save=list(heads) or None,
        rank_pattern={n: s[0] for n, s in shape.items() if s != (r, alpha)},
        alpha_pattern={n: s[1] for n, s in shape.items() if s != (r, alpha)},
    )

    def fill(peft_model) -> None:
        inner = peft_model.base_model.model
        for name, (a, b) in tensors.items():
            layer = inner.get_submodule(name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
            if layer.scaling["default"] != shape[name][1] / shape[name][0]:
                raise ValueError(f"export: PEFT's scaling of {name} is {layer.scaling['default']}, ours "
                                 f"{shape[name][1] / shape[name][0]}")
    return config, fill


def _prefix(peft, model, method, task_type):
    """PEFT's prefix_projection=False prefix: one row per virtual token holding every layer's key and value
    ([layer][key, value][d], as ours; d = key/value heads x head dim, which PEFT derives from the config)."""
    from methods.prefix import prefix_encoder

    encoder = prefix_encoder(model)
    encoder.finalize()
    table = encoder.table.detach()                                   # (layers, 2, length, d)
    rows = table.permute(2, 0, 1, 3).reshape(table.shape[2], -1)     # (length, layers * 2 * d)
    config = peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=method.length, prefix_projection=False)

    def fill(peft_model) -> None:
        peft_model.prompt_encoder["default"].embedding.weight.copy_(rows)
    return config, fill


def _prompt(peft, model, method, task_type):
    from methods.prompt import soft_prompt

    weight = soft_prompt(model).weight.detach()
    config = peft.PromptTuningConfig(task_type=task_type, num_virtual_tokens=method.length)

    def fill(peft_model) -> None:
        peft_model.prompt_encoder["default"].embedding.weight.copy_(weight)
    return config, fill
