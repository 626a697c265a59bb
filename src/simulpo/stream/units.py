"""Target units: how a written piece of text is counted for latency.

Words for most targets, characters for Chinese/Japanese, exactly as SimulEval's
``TextOutputInstance`` counts them (``--eval-latency-unit word|char``), so that our
delays line up one-to-one with SimulEval's.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulpo.errors import ConfigError

UNITS = ("word", "char")
CHAR_LANGS = {"zh", "ja"}


def default_unit(target_lang: str | None) -> str:
    """Characters for zh/ja targets, words otherwise."""
    return "char" if (target_lang or "").lower()[:2] in CHAR_LANGS else "word"


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ConfigError(f"unknown latency unit {unit!r}; use one of {', '.join(UNITS)}")
    return unit


def split_units(text: str, unit: str) -> list[str]:
    """Target units of ``text``: whitespace words, or characters with spaces removed."""
    if unit == "word":
        return text.split()
    return list(text.replace(" ", ""))


def join_units(units: Sequence[str], unit: str) -> str:
    """Inverse of :func:`split_units` (words joined by spaces, characters by nothing)."""
    return (" " if unit == "word" else "").join(units)
