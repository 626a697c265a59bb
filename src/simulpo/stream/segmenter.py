"""Segmenters cut a source into the chunks a streaming policy reads, one chunk per turn.

Every chunk records ``end``: the source units consumed once it has been read (words for
text, milliseconds for speech). That number is the *delay* of every target unit written
after reading the chunk.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from simulpo.errors import ConfigError


@dataclass(frozen=True)
class Chunk:
    """A piece of source: a list of words or an array of audio samples, and where it ends."""

    content: Any
    end: float


class Segmenter(Protocol):
    #: "word" for text sources, "ms" for audio sources.
    source_unit: str

    def split(self, source: Any) -> list[Chunk]:
        """Cut one source into chunks; the last chunk ends at the source length."""
        ...

    def source_length(self, source: Any) -> float:
        """Length of the source in source units."""
        ...


@dataclass(frozen=True)
class FixedWords:
    """Chunks of ``m`` consecutive source words (the last one may be shorter)."""

    m: int = 1
    source_unit: str = "word"

    def __post_init__(self) -> None:
        if self.m < 1:
            raise ConfigError(f"chunk size must be at least 1 word, got {self.m}")

    def split(self, source: Sequence[str]) -> list[Chunk]:
        words = list(source)
        return [
            Chunk(words[i : i + self.m], float(min(i + self.m, len(words))))
            for i in range(0, len(words), self.m)
        ]

    def source_length(self, source: Sequence[str]) -> float:
        return float(len(source))


def samples_to_ms(samples: int, sample_rate: int) -> float:
    """The time of ``samples`` audio samples in ms: the one expression every speech
    source length and chunk end comes from, so that equal spans compare equal to the bit
    (the reward refuses a segment that ends past its source)."""
    return samples * 1000 / sample_rate


@dataclass(frozen=True)
class FixedMilliseconds:
    """Chunks of ``ms`` milliseconds of mono audio sampled at ``sample_rate``.

    Like SimulEval's speech instances, a chunk holds ``ceil(ms/1000 * sample_rate)``
    samples and ends at ``samples_read * 1000 / sample_rate`` ms.
    """

    ms: float = 1120.0
    sample_rate: int = 16000
    source_unit: str = "ms"

    def __post_init__(self) -> None:
        if self.ms <= 0:
            raise ConfigError(f"chunk length must be positive, got {self.ms} ms")

    def split(self, source: np.ndarray) -> list[Chunk]:
        step = math.ceil(self.ms / 1000 * self.sample_rate)
        n = len(source)
        return [
            Chunk(source[i : i + step], samples_to_ms(min(i + step, n), self.sample_rate))
            for i in range(0, n, step)
        ]

    def source_length(self, source: np.ndarray) -> float:
        return samples_to_ms(len(source), self.sample_rate)


@dataclass
class RandomMerge:
    """Merges runs of ``c`` consecutive chunks of ``base``, ``c`` drawn uniformly from
    ``[c_min, c_max]`` per merged chunk: varied chunk sizes for SFT data diversity."""

    base: FixedWords | FixedMilliseconds
    c_min: int = 1
    c_max: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.c_min <= self.c_max:
            raise ConfigError(f"need 1 <= c_min <= c_max, got [{self.c_min}, {self.c_max}]")
        self._rng = random.Random(self.seed)

    @property
    def source_unit(self) -> str:
        return self.base.source_unit

    def split(self, source: Any) -> list[Chunk]:
        chunks = self.base.split(source)
        merged: list[Chunk] = []
        i = 0
        while i < len(chunks):
            group = chunks[i : i + self._rng.randint(self.c_min, self.c_max)]
            merged.append(Chunk(_concat([c.content for c in group]), group[-1].end))
            i += len(group)
        return merged

    def source_length(self, source: Any) -> float:
        return self.base.source_length(source)


def _concat(contents: list[Any]) -> Any:
    if isinstance(contents[0], np.ndarray):
        return np.concatenate(contents)
    return [x for c in contents for x in c]
