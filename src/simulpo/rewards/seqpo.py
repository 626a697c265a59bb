"""SeqPO's fused reward (SeqPO-SiMT, arXiv:2505.20622).

For a group of ``B`` episodes of one source, each scored once at its end:

    Q_i      = quality(prediction_i, reference_i)            sentence-level, e.g. chrF
    L_i      = latency(delays_i)                             e.g. Average Lagging, source units
    L_trunc  = max(L_i, floor_i)                             the truncation (skipped if truncate=False)
    r_i      = z(Q)_i - lam * z(L_trunc)_i                   z: z-score within the group

**Truncation floor.** ``floor_i`` is the chunk size ``m`` in source units: by default the
end of the episode's first chunk (``episode.chunks[0].end`` — ``m`` words for
``FixedWords(m)``, ``m`` ms of audio), the least source any policy has read before it can
write. An honest policy's AL hovers at or above it; AL below it is reached by writing more
target units, earlier, than the reference rate allows — in the limit by spamming tokens,
which drives AL negative (the "negative AL" hack of the paper). Clamping at the floor
removes any credit for going below it. ``truncate=False`` keeps the raw latency, for the
ablation that shows the hack. For AP (a proportion of the source) the floor is
``floor_i / source_length``.

**Normalization.** z-scores within the group with the population std, and no division
when a term's std is 0 (:func:`~simulpo.rewards.group.zscore`); ``r`` therefore has group
mean 0, and a term on which all episodes tie drops out.

**Empty translation.** Latency metrics skip an episode that wrote nothing (NaN). It gets
the latency of having waited for everything: ``source_length`` (AP: 1.0); its quality is
whatever the metric gives an empty string (0 for chrF and BLEU). Any other non-finite
quality or latency is replaced by the group's worst finite value, logged
(:func:`~simulpo.rewards.group.replace_nonfinite`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulpo.errors import ConfigError
from simulpo.metrics.latency import (
    average_lagging,
    average_proportion,
    average_token_delay,
    differentiable_average_lagging,
    length_adaptive_average_lagging,
    pad,
    start_offset,
)
from simulpo.metrics.scores import reference_length
from simulpo.rewards.base import ReferenceSpan, RewardResult, episode_source_text
from simulpo.rewards.group import fuse, replace_nonfinite
from simulpo.rewards.sentence_quality import QualityMetric
from simulpo.stream.episode import Episode

__all__ = ["REWARD_LATENCY_METRICS", "episode_latency", "first_chunk_floor", "seqpo_reward"]

#: latency metrics a reward may use (EndOffset has no sensible floor nor "waited" value).
REWARD_LATENCY_METRICS = ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset")


def _source_type(episode: Episode) -> str:
    return "text" if isinstance(episode.source, (str, list, tuple)) else "speech"


def episode_latency(
    group: Sequence[Episode], metric: str = "AL", *, computation_aware: bool = False
) -> np.ndarray:
    """Per-episode latency from :mod:`simulpo.metrics.latency` (NaN where nothing was written).

    Reference lengths (in the episode's target unit, counted as SimulEval counts them) enter
    AL, LAAL and AP when every episode has a reference, as in SimulEval's default;
    ``computation_aware`` uses ``elapsed`` instead of ``delays``.
    """
    if metric not in REWARD_LATENCY_METRICS:
        raise ConfigError(
            f"unknown reward latency metric {metric!r}; use one of {', '.join(REWARD_LATENCY_METRICS)}"
        )
    times = pad([ep.elapsed if computation_aware else ep.delays for ep in group])
    src = np.array([ep.source_length for ep in group], dtype=np.float64)
    refs = [ep.reference for ep in group]
    tgt = (
        None
        if any(r is None for r in refs)
        else np.array([reference_length(r, ep.unit) for r, ep in zip(refs, group)], float)
    )
    if metric == "AL":
        return average_lagging(times, src, tgt)
    if metric == "LAAL":
        return length_adaptive_average_lagging(times, src, tgt)
    if metric == "DAL":
        return differentiable_average_lagging(times, src)
    if metric == "AP":
        return average_proportion(times, src, tgt)
    if metric == "StartOffset":
        return start_offset(times)
    kinds = {_source_type(ep) for ep in group}
    source_type = "speech" if "speech" in kinds else "text"
    delays = pad([ep.delays for ep in group])
    return average_token_delay(
        delays, elapsed=times if computation_aware else None, source_type=source_type
    )


def first_chunk_floor(episode: Episode) -> float:
    """The default truncation floor: the source units read with the first chunk (``m``)."""
    return float(episode.chunks[0].end) if episode.chunks else 0.0


def seqpo_reward(
    group: Sequence[Episode],
    segments: Sequence[ReferenceSpan | tuple] | None = None,
    *,
    quality: QualityMetric,
    latency: str = "AL",
    lam: float = 2.0,
    truncate: bool = True,
    floor: float | None = None,
    computation_aware: bool = False,
) -> RewardResult:
    """SeqPO's fused reward ``z(Q) - lam * z(max(L, floor))`` of one group (see module doc).

    ``floor`` None uses each episode's first chunk; ``segments`` is accepted for a common
    signature with HPO and ignored (SeqPO scores the whole episode at once).
    """
    if not group:
        raise ValueError("a reward needs a group of at least one episode")
    missing = [ep.index for ep in group if ep.reference is None]
    if missing:
        raise ValueError(f"SeqPO needs a reference for every episode; episodes {missing} have none")
    n = len(group)
    source_length = np.array([ep.source_length for ep in group], dtype=np.float64)

    q_raw = np.asarray(
        quality(
            [ep.prediction for ep in group],
            [ep.reference for ep in group],
            [episode_source_text(ep) for ep in group],
        ),
        dtype=np.float64,
    ).reshape(-1)
    if q_raw.shape != (n,):
        raise ValueError(f"the quality metric returned {q_raw.shape[0]} scores for {n} episodes")
    q, n_bad_q = replace_nonfinite(
        q_raw, higher_is_better=quality.higher_is_better, fallback=quality.worst, name="quality"
    )

    l_raw = episode_latency(group, latency, computation_aware=computation_aware)
    empty = np.array([len(ep.delays) == 0 for ep in group])
    # an empty translation waited for the whole source (AP: read all of it)
    waited = np.ones(n) if latency == "AP" else source_length
    lat = np.where(empty, waited, l_raw)
    lat, n_bad_l = replace_nonfinite(lat, higher_is_better=False, fallback=waited, name="latency")

    floors = np.array(
        [first_chunk_floor(ep) if floor is None else float(floor) for ep in group], dtype=np.float64
    )
    if latency == "AP":
        floors = floors / source_length
    below = lat < floors
    lat_used = np.maximum(lat, floors) if truncate else lat

    return fuse(
        q,
        lat_used,
        lam,
        higher_is_better=quality.higher_is_better,
        stats={
            "latency_raw_mean": float(lat.mean()),
            "n_empty": float(empty.sum()),
            "n_nonfinite_quality": float(n_bad_q),
            "n_nonfinite_latency": float(n_bad_l),
            "n_below_floor": float(below.sum()),
        },
        quality=q_raw,
        latency_raw=l_raw,
    )
