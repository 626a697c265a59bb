"""Rewards for RL over streaming episodes: plain functions of a *group* of episodes.

The trainer samples ``B`` episodes per source and calls ``reward(group)`` (plus
``segments=`` for multi-sentence sources under HPO); it gets a :class:`RewardResult`
whose ``rewards`` are already within-group z-score combinations (group mean 0), ready for
``advantages = r - mean(r)``.

- ``kind="seqpo"``: SeqPO's fused reward ``z(Q) - lam * z(max(L, floor))``
  (:mod:`simulpo.rewards.seqpo`);
- ``kind="hpo"``: HPO's hierarchical reward ``z(Q) - w * z(G)`` over aligned sentences
  with a quality gate on latency (:mod:`simulpo.rewards.hpo`).

Quality metrics are pluggable (:func:`build_quality`: chrF, chrF++, chrF1, BLEU, a local
COMET, MetricX or reference-free QE model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulpo.config import check_ranges, option
from simulpo.errors import ConfigError
from simulpo.rewards.base import ReferenceSpan, Reward, RewardResult
from simulpo.rewards.group import replace_nonfinite, zscore
from simulpo.rewards.hpo import RESEGMENTERS, SentenceScore, hpo_reward, sentence_lag
from simulpo.rewards.sentence_align import Bead, align_sentences, similarity, split_sentences
from simulpo.rewards.sentence_quality import QualityMetric, build_quality
from simulpo.rewards.seqpo import REWARD_LATENCY_METRICS, episode_latency, seqpo_reward
from simulpo.stream.episode import Episode

__all__ = [
    "REWARD_KINDS",
    "Bead",
    "QualityMetric",
    "ReferenceSpan",
    "Reward",
    "RewardConfig",
    "RewardFunction",
    "RewardResult",
    "SentenceScore",
    "align_sentences",
    "build_quality",
    "build_reward",
    "episode_latency",
    "hpo_reward",
    "replace_nonfinite",
    "sentence_lag",
    "seqpo_reward",
    "similarity",
    "split_sentences",
    "zscore",
]

REWARD_KINDS = ("seqpo", "hpo")


@dataclass
class RewardConfig:
    """Which reward and its hyper-parameters; each field's ``metadata["help"]`` is its help."""

    kind: str = option("seqpo", "seqpo (fused, truncated latency) or hpo (hierarchical, gated)")
    quality: str = option(
        "chrf",
        "sentence quality: chrf, chrf++, chrf1, bleu, comet:/path/model.ckpt, "
        "metricx24:DIR (also metricx24-qe, metricx23, metricx23-qe, metricx: version from DIR; "
        "lower is better) or qe:DIR (a local reference-free regression model)",
    )
    target_lang: str | None = option(None, "target language, for BLEU's tokenizer (zh, ja, ...)")
    latency: str = option("AL", "seqpo latency metric: AL, LAAL, DAL, AP, ATD or StartOffset")
    computation_aware: bool = option(False, "seqpo: latency from elapsed (compute time) not delays")
    lam: float = option(2.0, "seqpo: weight of the normalized latency (r = Qn - lam * Ln)", "[0, )")
    truncate: bool = option(True, "seqpo: clamp latency at the floor (False: the hack ablation)")
    floor: float | None = option(
        None, "seqpo: truncation floor in source units; None = first chunk", "[0, )"
    )
    w: float = option(0.5, "hpo: weight of the normalized gated latency (R = Qn - w * Gn)", "[0, )")
    gate: bool = option(True, "hpo: a sentence's latency counts only if its quality passes")
    threshold: float | None = option(
        None, "hpo: gate threshold, metric scale; None = metric default"
    )
    max_latency: float | None = option(
        None, "hpo: latency cap, source units; None = source length", "(0, )"
    )
    max_merge: int = option(4, "hpo aligner: most sentences joined on one side of a bead", "[1, )")
    min_similarity: float = option(
        0.1, "hpo aligner: least char n-gram F1 for aligning a bead", "[0, 1)"
    )
    resegment: str = option(
        "sentences",
        "hpo: sentences (split at full stops, align; HPO's code) or mwer (min-WER "
        "re-segmentation onto the reference sentences, for targets without punctuation)",
    )

    def check(self) -> None:
        """Raise a ConfigError for an impossible value."""
        if self.kind not in REWARD_KINDS:
            raise ConfigError(
                f"unknown reward kind {self.kind!r}; use one of {', '.join(REWARD_KINDS)}"
            )
        if self.latency not in REWARD_LATENCY_METRICS:
            raise ConfigError(
                f"unknown reward latency {self.latency!r}; use one of {', '.join(REWARD_LATENCY_METRICS)}"
            )
        check_ranges(self, "reward ")
        if self.resegment not in RESEGMENTERS:
            raise ConfigError(
                f"unknown resegment {self.resegment!r}; use one of {', '.join(RESEGMENTERS)}"
            )


class RewardFunction:
    """The configured reward, called as ``reward(group, segments=None) -> RewardResult``.

    Keeps its ``config`` and its built quality ``metric`` (for logs); picklable, so it can
    travel to worker processes.
    """

    def __init__(self, config: RewardConfig, metric: QualityMetric) -> None:
        self.config = config
        self.metric = metric
        #: the HPO gate actually applied (None: no gate)
        self.threshold = (
            None
            if not config.gate
            else config.threshold
            if config.threshold is not None
            else metric.threshold
        )

    def __call__(
        self, group: Sequence[Episode], segments: Sequence[ReferenceSpan | tuple] | None = None
    ) -> RewardResult:
        cfg = self.config
        if cfg.kind == "seqpo":
            return seqpo_reward(
                group,
                quality=self.metric,
                latency=cfg.latency,
                lam=cfg.lam,
                truncate=cfg.truncate,
                floor=cfg.floor,
                computation_aware=cfg.computation_aware,
            )
        return hpo_reward(
            group,
            segments,
            quality=self.metric,
            w=cfg.w,
            threshold=self.threshold,
            max_latency=cfg.max_latency,
            max_merge=cfg.max_merge,
            min_similarity=cfg.min_similarity,
            resegment=cfg.resegment,
        )


def build_reward(
    config: RewardConfig | None = None, *, quality: QualityMetric | None = None
) -> RewardFunction:
    """The reward function ``reward(group, segments=None) -> RewardResult`` of ``config``.

    The quality metric is built once, here (a COMET model loads now, not mid-training);
    ``quality`` passes an already built metric instead of ``config.quality``.
    """
    cfg = config or RewardConfig()
    cfg.check()
    return RewardFunction(cfg, quality or build_quality(cfg.quality, target_lang=cfg.target_lang))
