"""Configs: nested dataclasses, filled from YAML recipes (``configs/*.yaml``) and CLI overrides.

A recipe names only what it changes; everything else keeps the dataclass default. Unknown
keys and values of the wrong type are errors that name the key, so a typo in a recipe
never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from simulpo.errors import ConfigError, SimulpoError

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "", base: T | None = None) -> T:
    """Dataclass ``cls`` from a (nested) mapping, checking keys and types.

    Values not in ``data`` come from ``base`` (default: ``cls()``), field by field and at
    every depth, so a recipe that sets one field of a section keeps the section's other
    defaults — including defaults that differ from the nested class's own.
    """
    base = cls() if base is None else base
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} in "
            f"{where or cls.__name__}; known: {', '.join(fields)}"
        )
    values = {
        name: _convert(hints[name], value, f"{where}{name}", getattr(base, name))
        for name, value in data.items()
    }
    return dataclasses.replace(base, **values)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _convert(hint: Any, value: Any, where: str, current: Any = None) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where + ".", current if dataclasses.is_dataclass(current) else None)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple or hint is tuple else converted
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``sft.epochs=3`` → (["sft", "epochs"], 3); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    return key.split("."), yaml.safe_load(raw)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """``cls`` defaults, updated by the YAML recipe at ``path`` and then by ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SimulpoError(f"{path}: no such config file") from None
        except yaml.YAMLError as e:
            raise SimulpoError(f"{path}: not valid YAML ({e})") from None
        data = loaded or {}
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None
