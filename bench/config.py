"""Typed configuration overrides: `--set key=value` checked against dataclass fields.

No torch import here: the report and the CLI's argument checks use it too.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """Bad user input: the message names what is wrong and what is expected. The CLI exits with code 2."""


def _parse_value(text: str, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_value(text, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: cannot parse {text!r}")
    if origin is typing.Literal:
        for option in args:
            if str(option) == text:
                return option
        raise ConfigError(f"{where}: {text!r} is not one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        items = [t.strip() for t in text.strip("()[]").split(",") if t.strip()]
        inner = args[0] if args else str
        values = [_parse_value(item, inner, where) for item in items]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected a boolean (true/false), got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {text!r}") from None
    if tp is str or tp is Any:
        return text
    raise ConfigError(f"{where}: fields of type {tp} cannot be set from the command line")


def parse_assignment(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    return key, value.strip()


def override(obj: Any, assignments: dict[str, str] | list[str], *, what: str | None = None) -> Any:
    """Return a copy of the dataclass `obj` with string assignments parsed to the fields' types.

    Unknown keys and values of the wrong type raise ConfigError naming the field and the accepted ones.
    """
    if not dataclasses.is_dataclass(obj):
        raise TypeError(f"{obj!r} is not a dataclass")
    if isinstance(assignments, list):
        assignments = dict(parse_assignment(a) for a in assignments)
    name = what or type(obj).__name__
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj) if f.init}
    changes = {}
    for key, text in assignments.items():
        if key not in fields:
            raise ConfigError(
                f"{name} has no field {key!r}; fields are: {', '.join(fields) or '(none)'}"
            )
        changes[key] = _parse_value(text, hints[key], f"{name}.{key}")
    try:
        return dataclasses.replace(obj, **changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{name}: {exc}") from None
