"""Small builders shared by the reward tests: episodes written by hand, a stub metric."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulpo.stream.episode import Episode
from simulpo.stream.segmenter import FixedWords


def episode(
    source: str | Sequence[str],
    pieces: Sequence[str],
    reference: str | None,
    m: int = 2,
    index: int = 0,
    unit: str = "word",
) -> Episode:
    """An episode over ``source`` read in chunks of ``m`` words, writing ``pieces[t]``
    after chunk ``t`` (missing pieces are waits)."""
    words = source.split() if isinstance(source, str) else list(source)
    chunks = FixedWords(m).split(words)
    ep = Episode(index, words, chunks, float(len(words)), reference, unit=unit)
    for t, chunk in enumerate(chunks):
        ep.write(pieces[t] if t < len(pieces) else "", chunk.end)
    return ep


class FixedQuality:
    """A metric that returns preset scores, in call order (checks the number asked for)."""

    name = "fixed"
    higher_is_better = True
    worst = 0.0
    threshold = 30.0

    def __init__(self, scores: Sequence[float], higher_is_better: bool = True) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.higher_is_better = higher_is_better
        self.calls: list[tuple[list[str], list[str]]] = []

    def __call__(self, hypotheses, references, sources=None) -> np.ndarray:
        assert len(hypotheses) == len(self.scores), (hypotheses, self.scores)
        self.calls.append((list(hypotheses), list(references)))
        return self.scores.copy()


class TableQuality:
    """A metric given as a table ``{(hypothesis, reference): score}``; unknown pairs fail."""

    name = "table"
    higher_is_better = True
    worst = 0.0
    threshold = 30.0

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table

    def __call__(self, hypotheses, references, sources=None) -> np.ndarray:
        return np.array([self.table[h, r] for h, r in zip(hypotheses, references)], float)
