"""What every reward takes and returns: a group of episodes in, one reward per episode out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from simulpo.stream.episode import Episode

__all__ = ["ReferenceSpan", "Reward", "RewardResult", "as_segments", "episode_source_text"]


@dataclass(frozen=True)
class ReferenceSpan:
    """One reference sentence and the span of source it translates, in source units.

    ``start``/``end`` are absolute positions in the episode's source (words, or ms);
    ``source`` is the sentence's source text when known (source-aware metrics such as
    COMET use it; for speech pass the transcript).
    """

    start: float
    end: float
    reference: str
    source: str | None = None


def as_segments(segments: Sequence[ReferenceSpan | tuple], source_length: float) -> list[ReferenceSpan]:
    """Segments from ``ReferenceSpan`` objects, ``(start, end, reference[, source])`` tuples, or
    long-form segments with ``offset``/``duration`` (:class:`simulpo.metrics.longform.Segment`),
    checked: in order, not overlapping, inside ``[0, source_length]``."""
    out = [_segment(s) for s in segments]
    if not out:
        raise ValueError("an episode needs at least one reference segment")
    prev_end = 0.0
    for k, s in enumerate(out):
        if not (prev_end <= s.start <= s.end <= source_length):
            raise ValueError(
                f"segment {k} spans [{s.start:g}, {s.end:g}]; segments must be in order, not "
                f"overlap, and lie within the source (0 to {source_length:g})"
            )
        prev_end = s.end
    return out


def _segment(s: Any) -> ReferenceSpan:
    if isinstance(s, ReferenceSpan):
        return s
    if hasattr(s, "offset") and hasattr(s, "duration"):
        return ReferenceSpan(float(s.offset), float(s.offset) + float(s.duration), s.reference)
    return ReferenceSpan(*s)


def episode_source_text(
    episode: Episode, start: float | None = None, end: float | None = None
) -> str:
    """The source as text (words ``start..end`` when given) for source-aware metrics;
    "" for a speech source, which has no text."""
    src = episode.source
    if isinstance(src, str):
        src = src.split()
    if not isinstance(src, (list, tuple)):
        return ""
    lo = 0 if start is None else round(start)
    hi = len(src) if end is None else round(end)
    return " ".join(str(w) for w in src[lo:hi])


@dataclass
class RewardResult:
    """Rewards of one group and what they were made of, one entry per episode.

    ``rewards`` are combinations of within-group z-scores, so their group mean is 0 (up to
    rounding) and the trainer's ``r - mean(r)`` leaves them as they are.
    """

    #: the reward of each episode (float64, finite)
    rewards: np.ndarray
    #: quality as the metric scored it (SeqPO: the episode's sentence score, possibly NaN
    #: when the metric failed; HPO: the mean over the episode's aligned sentences)
    quality: np.ndarray
    #: the latency term before normalization (SeqPO: truncated latency; HPO: gated latency)
    latency: np.ndarray
    #: latency before truncation / gating (SeqPO: the metric, NaN for an empty translation;
    #: HPO: the mean sentence lag with unaligned sentences at the maximum, no gate)
    latency_raw: np.ndarray
    #: the z-scores the rewards combine (quality oriented so that higher is better)
    quality_norm: np.ndarray
    latency_norm: np.ndarray
    #: group-level numbers for logging: means, counts of empty / non-finite / truncated …
    stats: dict[str, float] = field(default_factory=dict)
    #: per-episode details (HPO: the sentence beads with their quality and latency)
    details: list[Any] = field(default_factory=list)


class Reward(Protocol):
    """A reward: a plain function of a group of episodes (``segments`` only matter to HPO)."""

    def __call__(
        self, group: Sequence[Episode], segments: Sequence[ReferenceSpan | tuple] | None = None
    ) -> RewardResult: ...
