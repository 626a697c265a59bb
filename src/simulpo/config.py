"""Configs: nested dataclasses, filled from YAML recipes (``configs/*.yaml``) and CLI overrides.

A recipe names only what it changes; everything else keeps the dataclass default. Unknown
keys, values of the wrong type, NaN or infinite floats and values outside a field's
``range`` (see :func:`option`) are errors that name the key, so a typo in a recipe never
silently trains with a default, and a ``beta2: 1.0`` never trains at all.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from simulpo.errors import ConfigError, SimulpoError
from simulpo.io import read_text

T = TypeVar("T")

_RANGE = re.compile(r"([\[(])\s*([^,\s]*)\s*,\s*([^\])\s]*)\s*([\])])")


def option(default: Any, help: str, range: str | None = None) -> Any:
    """A config field with its one-line ``help`` (``simulpo CMD --help`` shows it) and an
    allowed ``range`` of values.

    ``range`` is an interval in the usual notation, ``"(0, 1)"``, ``"[0, 1)"``, with an
    empty bound for no bound: ``"(0, )"`` is "positive", ``"[0, )"`` "at least 0". A
    value read from a config outside it is an error naming the key (``None`` is always
    allowed where the type allows it). A class or function ``default`` (a nested config
    section, a factory) and mutable defaults (lists, dicts) become a ``default_factory``,
    so every instance has its own.
    """
    if range is not None and not _RANGE.fullmatch(range):
        raise ValueError(f"bad range {range!r}: write an interval such as '[0, 1)' or '(0, )'")
    metadata = {"help": help} if range is None else {"help": help, "range": range}
    if isinstance(default, (type, types.FunctionType)):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def in_range(value: float, interval: str) -> bool:
    """Whether ``value`` lies in ``interval`` (the notation of :func:`option`)."""
    left, low, high, right = _RANGE.fullmatch(interval).groups()
    above = not low or (value >= float(low) if left == "[" else value > float(low))
    below = not high or (value <= float(high) if right == "]" else value < float(high))
    return above and below


def describe_range(interval: str) -> str:
    """``"(0, )"`` → ``"> 0"``, ``"[0, 1)"`` → ``"in [0, 1)"``: the range as an error says it."""
    left, low, high, right = _RANGE.fullmatch(interval).groups()
    if low and high:
        return f"in {interval.replace(' ', '').replace(',', ', ')}"
    if low:
        return f"{'>=' if left == '[' else '>'} {low}"
    return f"{'<=' if right == ']' else '<'} {high}" if high else "any number"


def check_ranges(config: Any, where: str = "") -> None:
    """Raise a ConfigError naming the first field of dataclass ``config`` whose value lies
    outside its :func:`option` range or is a NaN or infinite float."""
    for f in dataclasses.fields(config):
        _check_value(f, getattr(config, f.name), f"{where}{f.name}")


def _check_value(f: dataclasses.Field, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite float, got {value!r}")
    interval = f.metadata.get("range")
    if interval and not in_range(value, interval):
        raise ConfigError(f"{where} must be {describe_range(interval)}, got {value!r}")


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
    moved = getattr(cls, "MOVED", {})
    for key in unknown:
        if key in moved:
            raise ConfigError(f"{where}{key} has moved: set {moved[key]} instead")
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)} in "
            f"{where or cls.__name__}; known: {', '.join(fields)}"
        )
    values = {
        name: _convert(hints[name], value, f"{where}{name}", getattr(base, name))
        for name, value in data.items()
    }
    for name, value in values.items():
        _check_value(fields[name], value, f"{where}{name}")
    return dataclasses.replace(base, **values)


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
#: how people write NaN and infinity, which YAML reads as strings (it spells them .nan, .inf)
_NOT_FINITE = re.compile(r"[-+]?(nan|inf|infinity)", re.IGNORECASE)


def _convert(hint: Any, value: Any, where: str, current: Any = None) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(
            hint, value, where + ".", current if dataclasses.is_dataclass(current) else None
        )
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
    if hint is float and isinstance(value, str) and _NOT_FINITE.fullmatch(value.strip()):
        raise ConfigError(
            f"{where}: expected a finite float, got {value!r} (YAML spells NaN and infinity "
            ".nan and .inf, and no setting takes them)"
        )
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite float, got {value!r}")
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


def read_config_data(
    path: str | Path | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The mapping the YAML recipe at ``path`` holds, with ``overrides`` applied."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(read_text(path))
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
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """``cls`` defaults, updated by the YAML recipe at ``path`` and then by ``overrides``.

    A class may name keys that moved in a class attribute ``MOVED`` (old key → new
    dotted key): a recipe still using one gets an error saying the new key.
    """
    data = read_config_data(path, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'config'}: {e}") from None


# ------------------------------------------------------------------------------ help and the CLI


def config_fields(
    cls: type, instance: Any = None, prefix: str = ""
) -> list[tuple[str, Any, str, Any]]:
    """Every leaf field of the (nested) config ``cls`` as ``(dotted.key, type hint, help,
    default)``, defaults from ``instance`` (default ``cls()``), sections in field order."""
    instance = cls() if instance is None else instance
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            out += config_fields(hints[f.name], value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", hints[f.name], f.metadata.get("help", ""), value))
    return out


#: the argparse ``dest`` prefix of the options :func:`add_config_arguments` adds
_DEST = "config:"


def add_config_arguments(parser: argparse.ArgumentParser, *classes: type, title: str) -> None:
    """One ``--section.key VALUE`` option per leaf field of the config ``classes`` (the
    first class's help and default win where two share a key), in an argument group
    ``title``. Values are read as YAML and applied after ``--config`` and ``--set``, with
    the same checks (see :func:`config_overrides`)."""
    # the usage line names the plain options; the config ones would fill a page
    usage = parser.format_usage().removeprefix("usage: ").strip()
    parser.usage = usage.replace("%", "%%") + " [--KEY VALUE ...]"
    group = parser.add_argument_group(title)
    seen: set[str] = set()
    for cls in classes:
        for key, hint, help, default in config_fields(cls):
            if key in seen:
                continue
            seen.add(key)
            group.add_argument(
                "--" + key.replace("_", "-"),
                dest=_DEST + key,
                metavar=_metavar(hint),
                default=argparse.SUPPRESS,
                help=f"{help} (default: {_show(default)})".replace("%", "%%"),
            )


def config_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, then the config options given on the command line, as
    ``key=value`` strings for :func:`load_config`."""
    given = [f"{k[len(_DEST) :]}={v}" for k, v in vars(args).items() if k.startswith(_DEST)]
    return [*getattr(args, "set", []), *given]


def _metavar(hint: Any) -> str:
    names = {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL"}
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return names.get(args[0], "VALUE")
    if typing.get_origin(hint) in (list, tuple) or hint in (list, tuple):
        return "LIST"
    return names.get(hint, "VALUE")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, tuple):
        return str(list(value))
    return str(value)
