"""Translators: full-sentence (or source-prefix) translation systems that policies schedule."""

from __future__ import annotations

from simulpo.errors import ConfigError
from simulpo.translators.base import Translator

TRANSLATORS = ("grammar", "apertium")


def build_translator(name: str, **options) -> Translator:
    """A translator by name: ``grammar`` (the synthetic pair's rule-based gold translator)
    or ``apertium`` (Debian's rule-based MT; ``pair=eng-spa`` by default)."""
    if name == "grammar":
        from simulpo.translators.grammar import GrammarTranslator

        return GrammarTranslator(**options)
    if name == "apertium":
        from simulpo.translators.apertium import ApertiumTranslator

        return ApertiumTranslator(**options)
    raise ConfigError(f"unknown translator {name!r}; choose one of {', '.join(TRANSLATORS)}")


__all__ = ["TRANSLATORS", "Translator", "build_translator"]
