"""Target units: how a written piece of text is counted for latency, and how pieces join.

Words for most targets, characters for Chinese/Japanese, exactly as SimulEval's
``TextOutputInstance`` counts them (``--eval-latency-unit word|char``), so that our
delays line up one-to-one with SimulEval's. Pieces of a translation (what each turn
wrote) join with a space, except in languages written without spaces between words
(:func:`join_pieces`), whatever unit their latency is counted in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from simulpo.errors import ConfigError

UNITS = ("word", "char")
CHAR_LANGS = {"zh", "ja"}
#: languages written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer,
#: Burmese, Tibetan): their pieces join with nothing
UNSPACED_LANGS = {*CHAR_LANGS, "th", "lo", "km", "my", "bo"}


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


def piece_separator(target_lang: str | None) -> str:
    """What goes between two pieces of a translation into ``target_lang`` (a code such as
    ``zh`` or ``zh-Hans``; None: a space)."""
    return "" if (target_lang or "").lower()[:2] in UNSPACED_LANGS else " "


def join_pieces(pieces: Iterable[str], target_lang: str | None) -> str:
    """The text of consecutive translation pieces (empty ones, waits, add nothing)."""
    return piece_separator(target_lang).join(p.strip() for p in pieces if p.strip())
