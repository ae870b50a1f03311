"""The PEFT method library: one explicit registry line per method. Depends on torch only; never imports bench.

Every method follows the protocol in methods/base.py (`Method`).
"""
from __future__ import annotations

import dataclasses
import typing

from methods.adapter import Adapter
from methods.base import ARCHES, Arch, Method, MethodModule, ParamCounts, UnsupportedFamily, arch_of
from methods.bitfit import BitFit
from methods.dora import DoRA
from methods.counting import count_params, load_method_state, method_state_dict
from methods.full import Full
from methods.ia3 import IA3
from methods.lora import LoRA, merge, unmerge
from methods.prefix import Prefix, finalize
from methods.prompt import Prompt
from methods.top_k import TopK
from methods.vera import VeRA

METHODS: dict[str, type] = {
    "full": Full,
    "topk": TopK,
    "bitfit": BitFit,
    "lora": LoRA,
    "adapter": Adapter,
    "prefix": Prefix,
    "prompt": Prompt,
    "ia3": IA3,
    "dora": DoRA,
    "vera": VeRA,
}


def method_to_dict(method) -> dict:
    """JSON-ready record of a method: {"name": ..., **fields}."""
    return {"name": method.name, **dataclasses.asdict(method)}


def method_from_dict(record: dict):
    """Inverse of method_to_dict (JSON lists become the tuples the fields expect)."""
    record = dict(record)
    name = record.pop("name")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    cls = METHODS[name]
    hints = typing.get_type_hints(cls)
    for key, value in list(record.items()):
        if isinstance(value, list) and typing.get_origin(hints.get(key)) is tuple:
            record[key] = tuple(value)
    return cls(**record)


__all__ = [
    "ARCHES", "Arch", "Method", "MethodModule", "ParamCounts", "UnsupportedFamily", "arch_of", "METHODS",
    "count_params", "method_state_dict", "load_method_state", "merge", "unmerge", "finalize", "method_to_dict",
    "method_from_dict", *[cls.__name__ for cls in METHODS.values()],
]
