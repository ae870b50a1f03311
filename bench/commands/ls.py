"""`peft-bench ls methods|models|tasks|presets`."""
from __future__ import annotations

import importlib

# what -> (module, registry attribute)
REGISTRIES = {
    "methods": ("methods", "METHODS"),
    "models": ("bench.models", "MODELS"),
    "tasks": ("bench.tasks", "TASKS"),
    "presets": ("bench.presets", "PRESETS"),
}


def _summary(obj) -> str:
    text = getattr(obj, "summary", None)
    if callable(text):
        text = text()
    if not text:
        doc = getattr(obj, "__doc__", None) or ""
        text = doc.strip().splitlines()[0] if doc.strip() else ""
    return str(text)


def run(args) -> int:
    module, attr = REGISTRIES[args.what]
    registry = getattr(importlib.import_module(module), attr)
    width = max((len(n) for n in registry), default=0)
    for name, obj in registry.items():
        print(f"{name:<{width}}  {_summary(obj)}".rstrip())
    return 0


def register(parser) -> None:
    parser.add_argument("what", choices=sorted(REGISTRIES), help="which registry to list")
    parser.set_defaults(func=run)
