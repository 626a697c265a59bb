"""Latency metrics for simultaneous translation, computed for a whole corpus at once.

Every metric reproduces SimulEval 1.1.4's scorer of the same name float for float: the
same per-instance formula evaluated in the same order of floating-point operations, and
the same corpus average (``statistics.mean``, i.e. the exact mean, correctly rounded).
Instead of SimulEval's Python loop over instances, the delays of all instances are padded
into one time-major matrix (:class:`Padded`) and each metric is a handful of array
operations; recurrences (DAL, ATD) loop over *time steps*, vectorized over instances.

Notation, per instance: ``d_i`` is the delay of target unit ``i`` (1-based), the amount of
source read when it was written — source words for text, milliseconds for speech; ``|X|``
is the source length in the same unit; ``|Y*|`` the number of target units written (the
prediction length); ``|Y|`` the reference length in target units (words counted as
``len(reference.split(" "))``, characters as ``len(reference.strip())``, as SimulEval does),
or ``|Y*|`` when no reference is given (SimulEval's ``--no-use-ref-len``).

Instances without any delay (an empty prediction) are skipped, as SimulEval skips them:
their per-instance score is NaN and :func:`corpus_mean` leaves them out.

*Computation-aware* variants (SimulEval's ``--computation-aware``, keys ``AL_CA`` …) are
the same formulas with ``elapsed`` — the delay plus the wall-clock time spent computing,
in ms — in place of ``delays``; :func:`latency_scores` adds them when given ``elapsed``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CA_SUFFIX",
    "LATENCY_METRICS",
    "Padded",
    "average_lagging",
    "average_proportion",
    "average_token_delay",
    "corpus_mean",
    "differentiable_average_lagging",
    "end_offset",
    "latency_scores",
    "length_adaptive_average_lagging",
    "num_chunks",
    "pad",
    "real_time_factor",
    "start_offset",
]

#: the metrics :func:`latency_scores` computes, by SimulEval's names.
LATENCY_METRICS = (
    "AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset", "NumChunks", "RTF"
)
#: suffix of the computation-aware keys, as SimulEval names them (``AL_CA``).
CA_SUFFIX = "_CA"
SOURCE_TYPES = ("text", "speech")
#: ATD's virtual duration of one source word in speech (SimulEval's ``SRC_TOKEN_LEN``), ms.
SPEECH_WORD_MS = 300.0

Ragged = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Padded:
    """Ragged per-instance sequences (delays or elapsed times) as one time-major matrix.

    ``steps[j, i]`` is value ``j`` of instance ``i`` for ``j < lengths[i]``; the rest is
    padding (0). Time-major, so that a loop over time steps touches contiguous rows.
    """

    steps: np.ndarray  # (max_length, n_instances) float64
    lengths: np.ndarray  # (n_instances,) int64

    @property
    def n(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def mask(self) -> np.ndarray:
        """``mask[j, i]``: step ``j`` of instance ``i`` is real, not padding."""
        return np.arange(self.steps.shape[0])[:, None] < self.lengths[None, :]

    def first(self) -> np.ndarray:
        """The first value of every instance (0 for empty ones)."""
        if self.steps.shape[0] == 0:
            return np.zeros(self.n)
        return self.steps[0].copy()

    def last(self) -> np.ndarray:
        """The last value of every instance (0 for empty ones)."""
        if self.steps.shape[0] == 0:
            return np.zeros(self.n)
        last = np.maximum(self.lengths - 1, 0)
        return np.where(self.lengths > 0, self.steps[last, np.arange(self.n)], 0.0)


def pad(
    values: Padded | Ragged | np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
) -> Padded:
    """Pad per-instance sequences into a :class:`Padded` batch.

    ``values`` is a ragged list of lists (one list per instance, possibly empty), or an
    instance-major matrix ``(n_instances, max_length)`` whose row ``i`` is valid up to
    ``lengths[i]`` (all columns when ``lengths`` is None), or an existing :class:`Padded`.
    """
    if isinstance(values, Padded):
        return values
    if isinstance(values, np.ndarray) and values.ndim == 2:
        n, width = values.shape
        lens = np.full(n, width, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        if lens.shape != (n,) or (lens < 0).any() or (lens > width).any():
            raise ValueError(f"lengths must be {n} integers between 0 and {width}")
        steps = np.ascontiguousarray(values.T, dtype=np.float64)
        steps[np.arange(width)[:, None] >= lens[None, :]] = 0.0
        return Padded(steps, lens)
    if lengths is not None:
        raise ValueError("lengths is only for a padded matrix; a ragged list carries its own")
    seqs = list(values)
    lens = np.fromiter(map(len, seqs), np.int64, count=len(seqs))
    total = int(lens.sum())
    flat = np.array(list(itertools.chain.from_iterable(seqs)), dtype=np.float64)
    if flat.shape != (total,):
        raise ValueError("every sequence must hold numbers only")
    width = int(lens.max()) if len(seqs) else 0
    steps = np.zeros((width, len(seqs)))
    # writing through the transposed view fills instance by instance, the order of `flat`
    steps.T[np.arange(width)[None, :] < lens[:, None]] = flat
    return Padded(steps, lens)


def _per_instance(x: Sequence[float] | np.ndarray | None, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per instance ({n}), got {arr.shape[0]}")
    return arr


def _check_positive(x: np.ndarray, live: np.ndarray, name: str) -> None:
    bad = live & ~(x > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be positive, but instance {i} has {x[i]:g}")


def _running_sum(terms: np.ndarray) -> np.ndarray:
    """Cumulative sums down each column, added in order (``np.cumsum(axis=0)``, but faster)."""
    out = np.empty_like(terms)
    acc = np.zeros(terms.shape[1])
    for j, row in enumerate(terms):
        acc = np.add(acc, row, out=out[j])
    return out


def _sequential_sum(terms: np.ndarray) -> np.ndarray:
    """Sum each column left to right, as a Python ``for`` loop with ``+=`` does."""
    acc = np.zeros(terms.shape[1])
    for row in terms:
        acc += row
    return acc


def _neumaier_sum(terms: np.ndarray) -> np.ndarray:
    """Compensated column sums exactly as CPython >= 3.12's built-in ``sum()`` of floats."""
    if terms.shape[0] == 0:
        return np.zeros(terms.shape[1])
    total = terms[0].copy()
    comp = np.zeros_like(total)
    for x in terms[1:]:
        t = total + x
        comp += np.where(np.abs(total) >= np.abs(x), (total - t) + x, (x - t) + total)
        total = t
    return np.where((comp != 0) & np.isfinite(comp), total + comp, total)


# SimulEval's AP uses the built-in sum(), which became compensated in Python 3.12.
_builtin_sum = _neumaier_sum if sys.version_info >= (3, 12) else _sequential_sum


def _lagging(d: Padded, source_lengths: np.ndarray, gamma_lengths: np.ndarray) -> np.ndarray:
    """AL's sum, shared by AL and LAAL, which differ only in the length behind gamma."""
    out = np.full(d.n, np.nan)
    live = d.lengths > 0
    if not live.any():
        return out
    v, src = d.steps, source_lengths
    first = v[0]
    late_start = first > src  # SimulEval returns the first delay as is
    _check_positive(src, live & ~late_start, "source lengths")
    _check_positive(gamma_lengths, live & ~late_start, "target lengths")
    # tau: the first delay reaching the source end. Padding (0) never reaches it: src > 0.
    reached = v >= src[None, :]
    cols = np.arange(d.n)
    first_reached = reached.argmax(axis=0)
    tau = np.where(reached[first_reached, cols], first_reached + 1, d.lengths)
    # running sum of d_i - (i-1)/gamma, added left to right as SimulEval does, kept at tau;
    # one time step at a time, so no temporary is as large as the whole matrix
    score = np.zeros(d.n)
    acc = np.zeros(d.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = gamma_lengths / src
        for j in range(int(tau.max())):
            acc += v[j] - j / gamma
            np.copyto(score, acc, where=tau == j + 1)
        score /= tau
    out[live] = np.where(late_start, first, score)[live]
    return out


def _target_lengths(d: Padded, target_lengths) -> np.ndarray:
    if target_lengths is None:
        return d.lengths.astype(np.float64)
    return _per_instance(target_lengths, d.n, "target_lengths")


def average_lagging(
    delays: Padded | Ragged | np.ndarray,
    source_lengths: Sequence[float] | np.ndarray,
    target_lengths: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Average Lagging (AL) of every instance (NaN where skipped).

    How far, on average, the system lags behind an ideal translator that writes target
    units at the constant rate ``gamma = |Y| / |X|``, up to the first unit written after
    the whole source was read:
    ``AL = 1/tau * sum_{i=1..tau} (d_i - (i-1) / gamma)``, ``tau`` = the first ``i`` with
    ``d_i >= |X|`` (all units if none). If the very first delay is past the source end
    (``d_1 > |X|``), AL is ``d_1``. ``target_lengths`` None uses ``|Y*|``.

    Ma et al. 2019, "STACL: Simultaneous Translation with Implicit Anticipation and
    Controllable Latency using Prefix-to-Prefix Framework", ACL (arXiv:1810.08398).
    """
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    return _lagging(d, src, _target_lengths(d, target_lengths))


def length_adaptive_average_lagging(
    delays: Padded | Ragged | np.ndarray,
    source_lengths: Sequence[float] | np.ndarray,
    target_lengths: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Length-Adaptive Average Lagging (LAAL) of every instance (NaN where skipped).

    AL with ``gamma = max(|Y|, |Y*|) / |X|``: the ideal rate uses the longer of reference
    and prediction, so over-generating cannot lower the score. Same ``tau`` and the same
    first-delay-past-the-end rule as AL.

    Papi et al. 2022, "Over-Generation Cannot Be Rewarded: Length-Adaptive Average Lagging
    for Simultaneous Speech Translation", AutoSimTrans (arXiv:2206.05807); first used by
    Polák et al. 2022 (arXiv:2204.06028).
    """
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    tgt = np.maximum(d.lengths.astype(np.float64), _target_lengths(d, target_lengths))
    return _lagging(d, src, tgt)


def differentiable_average_lagging(
    delays: Padded | Ragged | np.ndarray, source_lengths: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Differentiable Average Lagging (DAL) of every instance (NaN where skipped).

    Each unit is charged at least ``1/gamma`` more than the previous one,
    ``d'_1 = d_1``, ``d'_i = max(d_i, d'_{i-1} + 1/gamma)``, and
    ``DAL = 1/|Y*| * sum_{i=1..|Y*|} (d'_i - (i-1)/gamma)`` over *all* units. Unlike AL,
    ``gamma = |Y*| / |X|`` always uses the prediction length (as SimulEval does, whatever
    the reference length).

    Arivazhagan et al. 2019, "Monotonic Infinite Lookback Attention for Simultaneous
    Machine Translation", ACL (arXiv:1906.05218).
    """
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    out = np.full(d.n, np.nan)
    live = d.lengths > 0
    if not live.any():
        return out
    _check_positive(src, live, "source lengths")
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = d.lengths / src
        step = 1 / gamma
        acc = np.zeros(d.n)
        charged = d.steps[0].copy()
        for j, g in enumerate(d.steps):
            if j:
                np.maximum(g, charged + step, out=charged)
            acc += charged - j / gamma
            np.copyto(out, acc, where=d.lengths == j + 1)
        out /= d.lengths
    out[~live] = np.nan
    return out


def average_proportion(
    delays: Padded | Ragged | np.ndarray,
    source_lengths: Sequence[float] | np.ndarray,
    target_lengths: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Average Proportion (AP) of every instance (NaN where skipped).

    The mean fraction of the source read per target unit, with SimulEval's normalisation
    by the reference length: ``AP = sum_i d_i / (|X| * |Y|)`` (sum over all ``|Y*|``
    written units; ``|Y| = |Y*|`` when ``target_lengths`` is None).

    Cho and Esipova 2016, "Can neural machine translation do simultaneous translation?"
    (arXiv:1606.02012).
    """
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    tgt = _target_lengths(d, target_lengths)
    out = np.full(d.n, np.nan)
    live = d.lengths > 0
    _check_positive(src * tgt, live, "source length x target length")
    with np.errstate(divide="ignore", invalid="ignore"):
        out[live] = (_builtin_sum(d.steps) / (src * tgt))[live]
    return out


def start_offset(delays: Padded | Ragged | np.ndarray) -> np.ndarray:
    """StartOffset: the delay of the first target unit, ``d_1`` (NaN where skipped)."""
    d = pad(delays)
    return np.where(d.lengths > 0, d.first(), np.nan)


def end_offset(
    delays: Padded | Ragged | np.ndarray, source_lengths: Sequence[float] | np.ndarray
) -> np.ndarray:
    """EndOffset: how long after the source end the last unit came, ``d_|Y*| - |X|``."""
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    return np.where(d.lengths > 0, d.last() - src, np.nan)


def num_chunks(delays: Padded | Ragged | np.ndarray) -> np.ndarray:
    """NumChunks: SimulEval counts one chunk per delay, so for text ``|Y*|`` (NaN if skipped)."""
    d = pad(delays)
    return np.where(d.lengths > 0, d.lengths.astype(np.float64), np.nan)


def real_time_factor(
    delays: Padded | Ragged | np.ndarray, source_lengths: Sequence[float] | np.ndarray
) -> np.ndarray:
    """RTF: the last unit's delay over the source length, ``d_|Y*| / |X|`` (NaN if skipped)."""
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d.lengths > 0, d.last() / src, np.nan)


def average_token_delay(
    delays: Padded | Ragged | np.ndarray,
    *,
    elapsed: Padded | Ragged | np.ndarray | None = None,
    source_type: str = "text",
) -> np.ndarray:
    """Average Token Delay (ATD) of every instance (NaN where skipped).

    Source and target are cut into chunks: target units written at the same delay form
    one chunk, and the source read between two successive distinct delays is the matching
    source chunk. Each target token ``t`` is paired with a source token ``s(t)``: the
    ``t``-th one, pushed back by however many target tokens the earlier chunks wrote in
    excess of their source tokens, but never later than the last source token read so
    far. ``ATD = mean_t (end time of target token t - end time of source token s(t))``.

    Times follow SimulEval's conventions. Text sources (``source_type="text"``, delays in
    words): every source word lasts 1 and every target word lasts 1. Speech sources
    (``"speech"``, delays in ms): a source chunk is cut into 300 ms "words" plus the
    remainder, and target words last 0 (text output). A target word ends at
    ``max(its delay, end of previous target word) + its length + computation time``,
    where the computation time is 0, or, given ``elapsed`` (computation-aware ATD), the
    growth of ``elapsed - delays`` since the previous word; ``elapsed`` all zeros (text
    logs) counts as no computation. Instances with no delays, or with no ``elapsed`` when
    it is given, are skipped.

    Note that SimulEval scoring an ``instances.log`` file (``--score-only``, and any run
    with ``--output``) always applies the *speech* conventions, even to text logs; pass
    ``source_type="speech"`` to reproduce those numbers for a text log.

    Kano et al. 2023, "Average Token Delay: A Latency Metric for Simultaneous
    Translation", Interspeech (arXiv:2211.13173).
    """
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {SOURCE_TYPES}, got {source_type!r}")
    d = pad(delays)
    n, width = d.n, d.steps.shape[0]
    v = d.steps
    live = d.lengths > 0
    compute = None  # computation time of each target word (none: 0)
    if elapsed is not None:
        e = pad(elapsed)
        if e.n != n:
            raise ValueError(f"elapsed must have one sequence per instance ({n}), got {e.n}")
        has_e = e.lengths > 0
        if (has_e & (e.lengths != d.lengths)).any():
            raise ValueError("each elapsed sequence must be as long as its delays")
        live &= has_e
        if has_e.any():
            ev = np.zeros_like(v)
            ev[: e.steps.shape[0]] = e.steps
            spent = ev - v  # computation time accumulated so far
            compute = spent - np.vstack([np.zeros((1, n)), spent[:-1]])
            compute[:, ~(ev != 0).any(axis=0)] = 0.0  # all-zero elapsed: no computation
    out = np.full(n, np.nan)
    if not live.any():
        return out
    mask = d.mask & live[None, :]
    if source_type == "text" and (v[mask] != np.round(v[mask])).any():
        raise ValueError("text delays must be whole numbers of source words")

    # A chunk starts at every change of delay; it brings the source read since the last.
    starts = mask.copy()
    starts[1:] &= v[1:] != v[:-1]
    before = np.vstack([np.zeros((1, n)), v[:-1]])  # the previous delay (0 at first)
    # text: source and target words last 1; speech: 300 ms source pieces, target words 0
    tgt_word = 1.0 if source_type == "text" else 0.0
    if source_type == "speech":
        src_times, pieces = _speech_source_times(v, before, starts)

    cols = np.arange(n)
    count_type = np.float64 if source_type == "text" else np.int64
    chunk_start = np.zeros(n, count_type)  # position of the current chunk's first target word
    src_before = np.zeros(n, count_type)  # source words (pieces) before the current chunk
    src_through = np.zeros(n, count_type)  # ... and up to its end
    tgt_end = np.zeros(n)
    total, comp = np.zeros(n), np.zeros(n)  # compensated sum of the gaps
    for j in range(width):
        new = starts[j]
        chunk_start[new] = j
        if source_type == "text":  # one word per unit of delay
            src_before = np.where(new, before[j], src_before)
            src_through = np.where(new, v[j], src_through)
        else:
            src_before = np.where(new, src_through, src_before)
            src_through = src_through + pieces[j]
        # the t-th source word, shifted back by the excess of earlier target chunks,
        # but not past what was read: t = j + 1
        excess = np.maximum(0, chunk_start - src_before)
        s = np.minimum(j + 1 - excess, src_through)
        src_end = s if source_type == "text" else src_times[s, cols]
        tgt_end = np.maximum(v[j], tgt_end) + tgt_word
        if compute is not None:
            tgt_end = tgt_end + compute[j]
        gap = np.where(mask[j], tgt_end - src_end, 0.0)
        # Neumaier's compensated sum, then one rounding at the division: SimulEval takes the
        # exact mean (statistics.mean); a plain running sum would drift by an ulp or so
        t = total + gap
        comp += np.where(np.abs(total) >= np.abs(gap), (total - t) + gap, (gap - t) + total)
        total = t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out[live] = _divide_compensated(total, comp, d.lengths.astype(np.float64))[live]
    return out


def _divide_compensated(hi: np.ndarray, lo: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``(hi + lo) / n`` rounded once, for a sum ``hi + lo`` kept in two floats.

    SimulEval's per-instance ATD is an exact mean (``statistics.mean``); dividing the
    rounded sum would be off by an ulp now and then. Here the quotient is corrected by the
    remainder, computed without error (Dekker's exact product; ``n`` < 2**26 words).
    """
    s = hi + lo
    err = np.where(np.abs(hi) >= np.abs(lo), lo - (s - hi), hi - (s - lo))  # s + err = hi + lo
    q = s / n
    split = 134217729.0 * q  # Veltkamp: q = q_hi + q_lo, 26 bits each
    q_hi = split - (split - q)
    q_lo = q - q_hi
    p = q * n
    p_err = (q_hi * n - p) + q_lo * n  # q * n = p + p_err exactly
    remainder = ((s - p) - p_err) + err
    return q + remainder / n


def _speech_source_times(
    v: np.ndarray, before: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """End times of ATD's 300 ms source "words", and how many each chunk adds.

    Each chunk's new audio (delay minus previous delay) is cut into 300 ms pieces plus the
    remainder; ``times[k, i]`` is the end of piece ``k`` of instance ``i`` (``times[0]`` =
    0), summed piece by piece in order, as SimulEval does.
    """
    n = v.shape[1]
    span = np.where(starts, v - before, 0.0)
    full, rest = np.divmod(span, SPEECH_WORD_MS)
    pieces = full.astype(np.int64) + (rest != 0)
    first_piece = np.cumsum(pieces, axis=0) - pieces  # integers: any order is exact
    rows, inst = np.nonzero(pieces)  # one entry per chunk, then repeated for its pieces
    count = pieces[rows, inst]
    rank = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    length = np.where(
        rank < np.repeat(full[rows, inst], count), SPEECH_WORD_MS, np.repeat(rest[rows, inst], count)
    )
    steps = np.zeros((int(pieces.sum(axis=0).max(initial=0)) + 1, n))
    steps[np.repeat(first_piece[rows, inst], count) + rank + 1, np.repeat(inst, count)] = length
    return _running_sum(steps), pieces


def corpus_mean(scores: Sequence[float] | np.ndarray) -> float:
    """The mean of the per-instance scores, leaving out NaN (skipped) ones; NaN if none.

    Exact like ``statistics.mean`` (which SimulEval uses): the float nearest to the true
    mean, not the result of a rounded running sum.
    """
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan")
    if not np.isfinite(x).all():
        return float(np.mean(x))
    return _exact_mean(x)


def _exact_mean(x: np.ndarray) -> float:
    # Each float is an integer mantissa times a power of two: sum the mantissas of equal
    # exponents in numpy (split in two halves so float64 bincount sums stay exact), then
    # combine the few per-exponent totals as Python integers and divide once.
    mant, expo = np.frexp(x)
    ints = (mant * 2.0**53).astype(np.int64)
    expo = expo.astype(np.int64) - 53
    nonzero = ints != 0
    ints, expo = ints[nonzero], expo[nonzero]
    if ints.size == 0:
        return 0.0
    low = int(expo.min())
    slot = expo - low
    total = 0
    chunk = 1 << 24  # keeps every partial sum of the halves below 2**53
    for i in range(0, ints.size, chunk):
        part, where = ints[i : i + chunk], slot[i : i + chunk]
        hi = np.bincount(where, weights=part >> 26)
        lo = np.bincount(where, weights=part & ((1 << 26) - 1))
        for e in np.flatnonzero((hi != 0) | (lo != 0)).tolist():
            total += ((int(hi[e]) << 26) + int(lo[e])) << e
    n = int(x.size)
    return (total << low) / n if low >= 0 else total / (n << -low)


def latency_scores(
    delays: Padded | Ragged | np.ndarray,
    source_lengths: Sequence[float] | np.ndarray,
    target_lengths: Sequence[float] | np.ndarray | None = None,
    *,
    elapsed: Padded | Ragged | np.ndarray | None = None,
    source_type: str = "text",
    metrics: Sequence[str] = LATENCY_METRICS,
) -> dict[str, float]:
    """Corpus-level latency scores, keyed like SimulEval (``AL``, …, ``AL_CA``, …).

    ``target_lengths`` are reference lengths in target units (None: prediction lengths).
    Given ``elapsed``, the computation-aware variants are added under ``<metric>_CA``;
    instances with an empty ``elapsed`` are skipped in those.
    """
    d = pad(delays)
    src = _per_instance(source_lengths, d.n, "source_lengths")
    tgt = None if target_lengths is None else _per_instance(target_lengths, d.n, "target_lengths")
    unknown = [m for m in metrics if m not in LATENCY_METRICS]
    if unknown:
        raise ValueError(f"unknown latency metrics {unknown}; known: {list(LATENCY_METRICS)}")

    def per_instance(name: str, times: Padded, ca_elapsed: Padded | None) -> np.ndarray:
        if name == "AL":
            return average_lagging(times, src, tgt)
        if name == "LAAL":
            return length_adaptive_average_lagging(times, src, tgt)
        if name == "DAL":
            return differentiable_average_lagging(times, src)
        if name == "AP":
            return average_proportion(times, src, tgt)
        if name == "ATD":  # chunks come from the delays even when computation-aware
            return average_token_delay(d, elapsed=ca_elapsed, source_type=source_type)
        if name == "StartOffset":
            return start_offset(times)
        if name == "NumChunks":
            return num_chunks(times)
        if name == "RTF":
            return real_time_factor(times, src)
        return end_offset(times, src)

    scores = {m: corpus_mean(per_instance(m, d, None)) for m in metrics}
    if elapsed is not None:
        e = pad(elapsed)
        if e.n != d.n:
            raise ValueError(f"elapsed must have one sequence per instance ({d.n}), got {e.n}")
        for m in metrics:
            scores[m + CA_SUFFIX] = corpus_mean(per_instance(m, e, e))
    return scores
