"""One way from a method config to a method: `resolve_config` (torch-free) and `build` (the method object).

A method's config is the fields of its dataclass in the method library (`methods.METHODS[name]`). Planning a
grid (`show`, `plan`, `collect`) needs those fields and their defaults but must not import torch, which the
method library needs. So `schema(name)` reads the fields from the library's source with `ast` (the METHODS
registry in methods/__init__.py, then each class's annotated fields and literal defaults); once the library is
imported (by a run, or a test that registered a method of its own) its classes are read directly. Both readings
give the same schema for every registered method (tests/test_method_config.py).

- `resolve_config(name, config)`: every field filled in, command-line text parsed to the field's type, JSON
  lists turned into the tuples the fields hold and ints into floats where the field is a float, so that
  `alpha=16` from a preset and `--set method.alpha=16` name the same run. Unknown method or field: ConfigError.
- `build(name, config)`: the method object (imports the library); the method's own checks (`lora.r >= 1`)
  run here and become a ConfigError. Runs, validation and the CLI all build methods through it.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import ConfigError, _parse_value

LIBRARY = Path(__file__).resolve().parents[1] / "methods"


class Text(str):
    """A method value still in its command-line form (parsed against the field's type on resolve)."""


@dataclass(frozen=True)
class Field:
    name: str
    hint: Any          # the annotation, evaluated (int, float, str | None, tuple[str, ...], ...)
    default: Any


@dataclass(frozen=True)
class Schema:
    name: str
    fields: tuple[Field, ...]

    def names(self) -> list[str]:
        return [f.name for f in self.fields]


# -- the schema: from the imported library when it is loaded, else from its source -------------------------------
def schemas() -> dict[str, Schema]:
    loaded = sys.modules.get("methods")
    if loaded is not None and hasattr(loaded, "METHODS"):
        return {name: _from_class(name, cls) for name, cls in loaded.METHODS.items()}
    return _from_source()


def schema(name: str) -> Schema:
    known = schemas()
    if name not in known:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(known)}")
    return known[name]


def _from_class(name: str, cls) -> Schema:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise ConfigError(f"method {name!r}: field {f.name!r} has no default (every method field needs one)")
        out.append(Field(f.name, hints.get(f.name, Any), default))
    return Schema(name, tuple(out))


_HINT_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple, "list": list, "None": None,
               "Literal": typing.Literal, "Optional": typing.Optional, "Union": typing.Union, "Any": Any}


@functools.lru_cache(maxsize=1)
def _from_source() -> dict[str, Schema]:
    """The registry and fields as written in methods/*.py; falls back to importing the library if the source
    holds anything but literal defaults and plain annotations."""
    try:
        return _parse_library(LIBRARY)
    except (SyntaxError, ValueError, KeyError, NameError, TypeError, OSError):
        import methods

        return {name: _from_class(name, cls) for name, cls in methods.METHODS.items()}


def _parse_library(root: Path) -> dict[str, Schema]:
    init = ast.parse((root / "__init__.py").read_text(encoding="utf-8"))
    module_of: dict[str, str] = {}
    registry: dict[str, str] = {}
    for node in init.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("methods."):
            for alias in node.names:
                module_of[alias.asname or alias.name] = node.module.split(".", 1)[1]
        target = (node.targets[0] if isinstance(node, ast.Assign) else node.target
                  if isinstance(node, ast.AnnAssign) else None)
        if isinstance(target, ast.Name) and target.id == "METHODS" and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                registry[ast.literal_eval(key)] = value.id
    if not registry:
        raise ValueError("no METHODS dict in methods/__init__.py")
    out = {}
    for name, cls_name in registry.items():
        tree = ast.parse((root / f"{module_of[cls_name]}.py").read_text(encoding="utf-8"))
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
        fields = []
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            annotation = ast.unparse(stmt.annotation)
            if annotation.startswith(("ClassVar", "typing.ClassVar")):
                continue
            if stmt.value is None:
                raise ValueError(f"{cls_name}.{stmt.target.id} has no default")
            hint = eval(annotation, {"__builtins__": {}}, _HINT_NAMES)  # noqa: S307 - names above only
            fields.append(Field(stmt.target.id, hint, ast.literal_eval(stmt.value)))
        out[name] = Schema(name, tuple(fields))
    return out


# -- resolution and construction -------------------------------------------------------------------------------
def resolve_config(name: str, config: dict) -> dict:
    """The full JSON config of method `name`: defaults filled in, text parsed, values given the fields' types."""
    sch = schema(name)
    fields = {f.name: f for f in sch.fields}
    for key in config:
        if key not in fields:
            raise ConfigError(f"method {name} has no field {key!r}; fields are: "
                              f"{', '.join(fields) or '(none)'}")
    full = {}
    for f in sch.fields:
        value = config.get(f.name, f.default)
        if isinstance(value, Text):
            value = _parse_value(str(value), f.hint, f"method {name}.{f.name}")
        full[f.name] = _plain(_typed(value, f))
    return full


def _typed(value: Any, f: Field) -> Any:
    if isinstance(f.default, tuple) and isinstance(value, list):
        return tuple(value)
    if (f.hint is float or isinstance(f.default, float)) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def build(name: str, config: dict | None = None):
    """The method object `name` with `config` (ConfigError naming the method on a bad name, field or value)."""
    from methods import method_from_dict

    full = resolve_config(name, dict(config or {}))
    try:
        return method_from_dict({"name": name, **full})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {name}: {exc}") from None
