"""Recipes: whole pipelines (text, speech, the demo, the papers' experiments) on one
run-directory skeleton (:class:`~simulpo.recipes.run.RunDir`).

A recipe is a dataclass of config sections, read from YAML (``configs/*.yaml``) by
:func:`load_recipe`. Its ``stream`` section is the single source of the chunking: the
sections that stream (``rl``: rollouts and dev) get it from there, and a recipe that
sets a stream key of its own to another value is refused with both keys named.

Recipes import trainers, evaluation and policies; nothing below them imports a recipe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from simulpo.config import from_dict, read_config_data
from simulpo.errors import ConfigError

T = TypeVar("T")

#: the recipe sections that carry a ``stream`` of their own (set from the recipe's)
STREAMING_SECTIONS = ("rl",)


def load_recipe(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Recipe ``cls`` from its defaults, the YAML at ``path`` and ``overrides``, with one
    stream setting: every streaming section's ``stream`` is the recipe's."""
    data = read_config_data(path, overrides)
    try:
        recipe = from_dict(cls, data)
        _one_stream(recipe, data)
    except ConfigError as e:
        raise ConfigError(f"{path or 'recipe'}: {e}") from None
    return recipe


class Recipe:
    """Base of the recipe dataclasses: every streaming section reads the recipe's stream."""

    def __post_init__(self) -> None:
        for name in STREAMING_SECTIONS:
            section = getattr(self, name, None)
            if section is not None:
                section.stream = dataclasses.replace(self.stream)


def _one_stream(recipe: Any, data: dict) -> None:
    """Refuse a stream key that a streaming section sets to another value than ``stream``."""
    recipe.stream.check()
    for name in STREAMING_SECTIONS:
        given = (data.get(name) or {}).get("stream") or {}
        for key, theirs in given.items():
            ours = getattr(recipe.stream, key)
            if ours != theirs:
                raise ConfigError(
                    f"{name}.stream.{key} = {theirs!r} conflicts with stream.{key} = {ours!r}: "
                    f"the recipe's stream section is the one source; set stream.{key} only"
                )


def load_rl_section(path: str | Path | None, overrides: Sequence[str] = ()):
    """The RL config of a YAML file: its ``rl`` section if it is a text recipe (with the
    recipe's stream), else the file as RLConfig fields (``simulpo train rl --config``)."""
    from simulpo.train.rl import load_rl_config

    data = read_config_data(path) if path is not None else {}
    if isinstance(data, dict) and "rl" in data:
        from simulpo.recipes.text import TextRecipe

        return load_recipe(TextRecipe, path, [f"rl.{o}" for o in overrides]).rl
    return load_rl_config(path, overrides)


__all__ = ["Recipe", "load_recipe", "load_rl_section"]
