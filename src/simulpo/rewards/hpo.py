"""HPO's hierarchical reward ("Hierarchical Policy Optimization for Simultaneous
Translation of Unbounded Speech"), as its code (github.com/owaski/HPO,
``InfiniSSTScorer.predict`` and ``InfiniSSTEnv.compute_reward``) computes it.

Per episode, with the source cut into reference segments ``k`` (``start_k``, ``end_k``,
reference ``ref_k``):

1. split the translation into sentences (:func:`~simulpo.rewards.sentence_align.split_sentences`)
   and align them to the reference sentences
   (:func:`~simulpo.rewards.sentence_align.align_sentences`); each *bead* ``k`` pairs some
   hypothesis sentences with some reference sentences, or leaves one side unaligned.
   A target written without sentence punctuation (the synthetic pair) cannot be split:
   ``resegment="mwer"`` instead cuts the translation into one piece per reference
   sentence by the minimum-WER re-segmentation that long-form evaluation uses
   (:func:`mwer_beads`), so every sentence of a long stream is still scored on its own;
2. an aligned bead gets its quality ``q_k`` (the metric on the joined texts) and its lag

       l_k = 1/|hyp_k| * sum_{i=1..|hyp_k|} (d_i - start_k - i * (end_k - start_k) / max(|ref_k|, |hyp_k|))

   (LAAL-like, in source units; ``d_i`` the delay of the bead's ``i``-th target unit,
   ``i`` 1-based as in HPO's code); an unaligned bead gets the metric's worst quality and
   ``max_latency``;
3. the **gate**: a bead's lag counts, capped at ``max_latency``, only if ``q_k`` passes
   ``threshold``; otherwise it is ``max_latency``. (HPO writes this as a hinge,
   ``min(0, l_k - max)`` or 0, which is the same up to the constant ``max``.) Without a
   threshold the lag is only capped;
4. ``Q`` and ``G`` = the means of ``q_k`` and the gated ``l_k`` over the beads;
5. ``R = z(Q) - w * z(G)`` with z-scores within the group (population std, no division when
   it is 0), ``w = 0.5`` by default (HPO's ``alpha = 1``, ``beta = 0.5``).

One deliberate difference: the means in 4 weight each bead by the number of reference
sentences it covers (at least 1). HPO's plain mean over beads lets a policy halve the
weight of two poor sentences by writing them without a full stop between them (one
two-sentence bead instead of two beads); with one-to-one beads the two agree.

An empty translation has no sentences: every reference sentence is unaligned (worst
quality, maximum latency). A non-finite sentence quality is replaced by the group's worst
finite one, a non-finite lag by ``max_latency``; both are counted and logged.

``max_latency`` None uses the episode's source length: no sentence can lag more than the
whole source. ``segments`` None gives a sentence-level episode its one segment
``(0, source_length, reference)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulpo.metrics.resegment import mwer_segment
from simulpo.rewards.base import ReferenceSpan, RewardResult, as_segments, episode_source_text
from simulpo.rewards.group import fuse, replace_nonfinite
from simulpo.rewards.sentence_align import Bead, align_sentences, split_sentences
from simulpo.rewards.sentence_quality import QualityMetric
from simulpo.stream.episode import Episode
from simulpo.stream.units import join_units, split_units

__all__ = ["RESEGMENTERS", "SentenceScore", "hpo_reward", "mwer_beads", "sentence_lag"]

#: how a translation meets the reference sentences (``hpo_reward(resegment=...)``)
RESEGMENTERS = ("sentences", "mwer")

logger = logging.getLogger(__name__)


@dataclass
class SentenceScore:
    """One bead of an episode: what it aligned, its quality, lag and gated lag."""

    hyp_sentences: range
    ref_segments: range
    hypothesis: str
    reference: str
    quality: float
    latency: float
    gated_latency: float
    passed: bool
    weight: int


def sentence_lag(delays: Sequence[float], start: float, end: float, ref_length: int) -> float:
    """HPO's lag of one aligned sentence: ``mean_i (d_i - start - i * (end - start) /
    max(ref_length, |delays|))``, ``i = 1..|delays|``."""
    d = np.asarray(delays, dtype=np.float64)
    if d.size == 0:
        raise ValueError("an aligned sentence has at least one target unit")
    step = (end - start) / max(ref_length, d.size)
    i = np.arange(1, d.size + 1)
    return float(np.mean(d - start - i * step))


def mwer_beads(
    units: Sequence[str], references: Sequence[str], unit: str = "word"
) -> tuple[list[range], list[Bead]]:
    """The translation ``units`` cut into one piece per reference sentence by the minimum-WER
    re-segmentation (:func:`~simulpo.metrics.resegment.mwer_segment`, as long-form
    evaluation cuts a stream), and the one-to-one beads: piece ``k`` with reference ``k``,
    an empty piece left unaligned (worst quality, maximum latency)."""
    refs = [split_units(r, unit) for r in references]
    ends = mwer_segment([(refs, list(units))])[0].tolist()
    pieces = [range(a, b) for a, b in zip([0, *ends[:-1]], ends)]
    beads = [
        Bead(range(k, k + 1) if len(p) else range(0), range(k, k + 1)) for k, p in enumerate(pieces)
    ]
    return pieces, beads


def hpo_reward(
    group: Sequence[Episode],
    segments: Sequence[ReferenceSpan | tuple] | None = None,
    *,
    quality: QualityMetric,
    w: float = 0.5,
    threshold: float | None = None,
    max_latency: float | None = None,
    max_merge: int = 4,
    min_similarity: float = 0.1,
    resegment: str = "sentences",
) -> RewardResult:
    """HPO's hierarchical reward ``z(Q) - w * z(G)`` of one group (see module doc).

    ``segments`` (shared by the group: one source) are ``ReferenceSpan``s or
    ``(start, end, reference[, source])`` tuples; None: one segment per episode.
    ``threshold`` is the gate in the metric's scale (None: no gate). ``resegment``:
    ``"sentences"`` splits the translation at full stops and aligns (HPO's code);
    ``"mwer"`` cuts it by :func:`mwer_beads` (targets without sentence punctuation).
    """
    if resegment not in RESEGMENTERS:
        raise ValueError(f"unknown resegment {resegment!r}; use one of {', '.join(RESEGMENTERS)}")
    if not group:
        raise ValueError("a reward needs a group of at least one episode")
    hib = quality.higher_is_better

    # 1-2: align every episode, gather the aligned beads of the whole group for one metric call
    plans = []  # per episode: its beads as (bead, hypothesis, reference, lag or None)
    hyps, refs, srcs = [], [], []
    for ep in group:
        if segments is None:
            if ep.reference is None:
                raise ValueError(f"episode {ep.index} has no reference and no segments were given")
            segs = [ReferenceSpan(0.0, float(ep.source_length), ep.reference)]
        else:
            segs = as_segments(segments, ep.source_length)
        units = ep.units
        if len(units) != len(ep.delays):
            raise ValueError(
                f"episode {ep.index} has {len(units)} target units but {len(ep.delays)} delays"
            )
        joiner = " " if ep.unit == "word" else ""
        ref_texts = [s.reference for s in segs]
        if resegment == "mwer":
            sents, beads = mwer_beads(units, ref_texts, ep.unit)
            hyp_texts = [join_units(units[s.start : s.stop], ep.unit) for s in sents]
        else:
            sents = split_sentences(units, ep.unit)
            hyp_texts = [join_units(units[s.start : s.stop], ep.unit) for s in sents]
            beads = align_sentences(
                hyp_texts, ref_texts, max_merge=max_merge, min_similarity=min_similarity,
                joiner=joiner,
            )  # fmt: skip
        rows = []
        for bead in beads:
            hyp = joiner.join(hyp_texts[k] for k in bead.hyp)
            ref = joiner.join(ref_texts[k] for k in bead.ref)
            lag = None
            if bead.aligned:
                first, last = sents[bead.hyp[0]].start, sents[bead.hyp[-1]].stop
                seg_lo, seg_hi = segs[bead.ref[0]], segs[bead.ref[-1]]
                ref_len = sum(len(split_units(ref_texts[k], ep.unit)) for k in bead.ref)
                lag = sentence_lag(ep.delays[first:last], seg_lo.start, seg_hi.end, ref_len)
                hyps.append(hyp)
                refs.append(ref)
                srcs.append(_segment_source(ep, segs, bead))
            rows.append((bead, hyp, ref, lag))
        plans.append(rows)

    scores = np.asarray(quality(hyps, refs, srcs) if hyps else [], dtype=np.float64).reshape(-1)
    if scores.shape != (len(hyps),):
        raise ValueError(f"the quality metric returned {scores.shape[0]} scores for {len(hyps)}")
    scores, n_bad_q = replace_nonfinite(
        scores, higher_is_better=hib, fallback=quality.worst, name="sentence quality"
    )

    # 3-4: gate and average per episode
    n = len(group)
    q_ep, g_ep, l_ep = np.zeros(n), np.zeros(n), np.zeros(n)
    details, n_unaligned, n_gated, n_sentences, n_bad_l = [], 0, 0, 0, 0
    it = iter(scores.tolist())
    for e, (ep, rows) in enumerate(zip(group, plans)):
        cap = float(ep.source_length if max_latency is None else max_latency)
        beads = []
        for bead, hyp, ref, lag in rows:
            weight = max(len(bead.ref), 1)
            if bead.aligned:
                q = next(it)
                if not np.isfinite(lag):  # NaN delays: a broken episode, ranked as late as can be
                    lag, n_bad_l = cap, n_bad_l + 1
                passed = threshold is None or (q >= threshold if hib else q <= threshold)
                gated = min(lag, cap) if passed else cap
            else:
                q, lag, gated, passed = quality.worst, cap, cap, False
                n_unaligned += 1
            n_gated += not passed
            beads.append(SentenceScore(bead.hyp, bead.ref, hyp, ref, q, lag, gated, passed, weight))
        weights = np.array([b.weight for b in beads], dtype=np.float64)
        q_ep[e] = np.dot(weights, [b.quality for b in beads]) / weights.sum()
        g_ep[e] = np.dot(weights, [b.gated_latency for b in beads]) / weights.sum()
        l_ep[e] = np.dot(weights, [b.latency for b in beads]) / weights.sum()
        n_sentences += len(beads)
        details.append(beads)

    if n_bad_l:
        logger.warning(
            "%d sentence lags of a group are not finite (NaN or inf delays); set to the maximum "
            "latency.",
            n_bad_l,
        )

    # 5: normalize within the group and combine
    return fuse(
        q_ep,
        g_ep,
        w,
        higher_is_better=hib,
        stats={
            "latency_raw_mean": float(l_ep.mean()),
            "n_empty": float(sum(len(ep.delays) == 0 for ep in group)),
            "n_nonfinite_quality": float(n_bad_q),
            "n_nonfinite_latency": float(n_bad_l),
            "n_sentences": float(n_sentences),
            "n_unaligned": float(n_unaligned),
            "n_gated": float(n_gated),
        },
        quality=q_ep,
        latency_raw=l_ep,
        details=details,
    )


def _segment_source(ep: Episode, segs: list[ReferenceSpan], bead: Bead) -> str:
    known = [segs[k].source for k in bead.ref]
    if all(s is not None for s in known):
        return " ".join(known)
    return episode_source_text(ep, segs[bead.ref[0]].start, segs[bead.ref[-1]].end)
