"""One counting function in the papers' conventions (recipes.md section 1), and the method's own state:
what is saved after training (the trainable method weights plus the head) and how it loads back."""
from __future__ import annotations

import torch
from torch import nn

from methods.base import Arch, arch_of, ParamCounts, added_parameters, head_parameters, numel, unique_parameters


def count_params(model: nn.Module, arch: Arch, method) -> ParamCounts:
    """Count `model` after `method.apply(model, arch)`. Works on the meta device.

    trained = requires_grad parameters outside the head; head = parameters of the head modules;
    total = every unique parameter; stored = `method.stored_count(model, arch)` when the method defines it,
    else trained; percent = stored / base * 100 with base = total - head - parameters added by the method.
    """
    params = unique_parameters(model)
    head_ids = {id(p) for p in head_parameters(model, arch)}
    added_ids = {id(p) for p in added_parameters(model)}
    trained = numel(p for p in params if p.requires_grad and id(p) not in head_ids)
    head = numel(p for p in params if id(p) in head_ids)
    total = numel(params)
    added = numel(p for p in params if id(p) in added_ids and id(p) not in head_ids)
    base = total - head - added
    stored_fn = getattr(method, "stored_count", None)
    stored = int(stored_fn(model, arch)) if stored_fn is not None else trained
    percent = 100.0 * stored / base if base else 0.0
    return ParamCounts(trained=trained, stored=stored, head=head, total=total, percent=percent)


def _method_param_names(model: nn.Module, arch: Arch) -> dict[str, nn.Parameter]:
    keep = {id(p) for p in added_parameters(model)} | {id(p) for p in head_parameters(model, arch)}
    return {
        name: p for name, p in model.named_parameters()  # tied weights appear once, under their first name
        if p.requires_grad or id(p) in keep
    }


def method_state_dict(model: nn.Module, arch: Arch) -> dict[str, torch.Tensor]:
    """The weights a method run must save: every trainable parameter, every parameter a MethodModule added
    (trainable or not), and the head. Keys are the model's parameter names; tensors are detached copies."""
    return {name: p.detach().clone() for name, p in _method_param_names(model, arch).items()}


def _names(keys: list[str], limit: int = 8) -> str:
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_method_state(model: nn.Module, state: dict[str, torch.Tensor], arch: Arch | None = None, *,
                      except_head: bool = False) -> None:
    """Load a `method_state_dict` into a fresh model to which the same method was applied.
    `arch` defaults to `arch_of(model)`. The one way a method's saved state comes back (a run's `init_from`, export).

    Strict: a missing key, an unexpected key, or a shape mismatch raises ValueError naming them. `except_head=True`
    leaves the task head out on both sides (a dependency trained on another label set): its names are neither
    required nor loaded, and the head keeps its fresh weights.
    """
    arch = arch if arch is not None else arch_of(model)
    expected = _method_param_names(model, arch)
    if except_head:
        head_ids = {id(p) for p in head_parameters(model, arch)}
        head_names = {name for name, p in model.named_parameters(remove_duplicate=False) if id(p) in head_ids}
        expected = {k: p for k, p in expected.items() if id(p) not in head_ids}
        state = {k: v for k, v in state.items() if k not in head_names}
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"missing {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {_names(unexpected)}")
        raise ValueError("method state does not match the model (" + "; ".join(parts) + ")")
    for name, p in expected.items():
        value = state[name]
        if tuple(value.shape) != tuple(p.shape):
            raise ValueError(f"method state {name!r}: shape {tuple(value.shape)}, the model expects {tuple(p.shape)}")
    with torch.no_grad():
        for name, p in expected.items():
            p.copy_(state[name].to(device=p.device, dtype=p.dtype))
