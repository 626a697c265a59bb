"""Long-form evaluation: one translation stream per recording, scored per reference sentence.

The inputs are OmniSTEval's: a hypothesis JSONL file, one line per recording, with
``source`` (the recording's name), ``prediction`` (the whole stream), ``delays`` and
optionally ``elapsed`` (one per target unit, in ms on the recording's timeline); a
MuST-C-style segment file (YAML or JSON: a list of ``{wav, offset, duration}``, in
seconds); and one reference sentence per segment. Target units are words (split on
whitespace), or, at character level, every character of the prediction, spaces
included (both tools count them so).

The stream is cut into one piece per reference sentence, and each long-form latency
metric is defined over its own cut:

- ``StreamLAAL`` (Papi et al. 2024, "StreamAtt", ACL) is simulstream's ``stream_laal`` scorer: minimum-WER re-segmentation (mweralign), each
  piece takes the next delays, shifted by its sentence's offset, and gets SimulEval's
  LAAL with the segment's duration as source length and the reference's word count
  (``split(" ")`` without empty strings) or character count as reference length; the
  mean over non-empty pieces.
- ``LongYAAL`` (Polák et al. 2025, arXiv:2509.17349; IWSLT 2026's primary long-form
  latency) is OmniSTEval's: SoftSegmenter re-segmentation, then YAAL per piece — the
  LAAL sum over the units emitted before the end of the *recording* (not of the
  segment), skipping a piece whose first unit came after it; the mean over scored pieces.

``*_CA`` are the same with ``elapsed`` in place of ``delays``. ``BLEU`` and ``chrF`` are
computed on OmniSTEval's pieces, as OmniSTEval computes them (its default BLEU tokenizer,
13a, unless ``target_lang`` asks for zh/ja). Latencies are in ms.

Both metrics equal the tools' own numbers float for float when given the same data in
ms (simulstream itself works in seconds: its number, times 1000, agrees to the last few
bits); see ``tests/metrics/test_longform_tools.py``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from simulpo.errors import InputError, SimulpoError
from simulpo.io import read_lines, read_text
from simulpo.metrics.latency import (
    CA_SUFFIX,
    average_lagging,
    average_proportion,
    corpus_mean,
    differentiable_average_lagging,
    length_adaptive_average_lagging,
    pad,
)
from simulpo.metrics.parallel import beside
from simulpo.metrics.quality import corpus_bleu, corpus_chrf
from simulpo.metrics.resegment import (
    MosesSplitter,
    cj_tokens,
    mwer_segment,
    mwer_tokens,
    soft_segment,
    soft_units,
)
from simulpo.metrics.scores import select_metrics
from simulpo.stream.units import check_unit

if TYPE_CHECKING:
    from simulpo.metrics.comet import CometModel

__all__ = [
    "LONGFORM_METRICS",
    "LongformResult",
    "Piece",
    "Recording",
    "Segment",
    "latency_regime",
    "long_sentence_latencies",
    "long_yaal",
    "match_inputs",
    "read_hypotheses",
    "read_references",
    "read_segments",
    "recording_ends",
    "resegment_mwer",
    "resegment_soft",
    "resegmented_rows",
    "score_longform",
    "score_longform_files",
    "stream_laal",
    "target_units",
]

#: the latency keys of :func:`score_longform`, each with a ``*_CA`` twin given elapsed
#: times: IWSLT 2026's ranking latency first, then simulstream's, then OmniSTEval's others
LONGFORM_METRICS = ("LongYAAL", "StreamLAAL", "LongAL", "LongLAAL", "LongAP", "LongDAL")
RESEGMENTED_NAME = "instances.resegmented.jsonl"
#: segment files give offsets and durations rounded to 3 decimals (ms): an overlap of up
#: to 1 ms (two roundings) is rounding, not an overlap
OVERLAP_TOLERANCE_S = 0.001
#: how far a segment may end past a recording's ``source_length`` (ms) before it is refused
PAST_END_TOLERANCE_MS = 1000.0
SCORES_NAME = "scores.json"
#: from this many hypothesis units on, the two re-segmentations run in two processes
PARALLEL_MIN_UNITS = 5000


@dataclass(frozen=True)
class Segment:
    """One reference sentence of a recording, its span in ms as the segment file gives it."""

    recording: str  # the recording's name: the wav file's stem
    offset: float  # ms from the recording's start (the file's seconds * 1000)
    duration: float  # ms
    reference: str  # stripped, as both tools read it


@dataclass(frozen=True)
class Recording:
    """One recording's whole translation stream."""

    name: str
    prediction: str
    delays: np.ndarray  # ms, one per target unit
    elapsed: np.ndarray | None = None  # ms, computation-aware
    source_length: float | None = None  # ms, the recording's length when the line gives it
    line: int | None = None  # its line in the hypothesis file, for messages


@dataclass
class Piece:
    """The part of a stream that a re-segmentation gives one reference sentence."""

    prediction: str
    delays: np.ndarray  # ms on the recording's timeline (not yet shifted)
    elapsed: np.ndarray | None = None
    units: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- input


def target_units(text: str, unit: str) -> list[str]:
    """Units of a prediction as both tools count them: whitespace words, or characters."""
    return text.split() if unit == "word" else list(text)


def read_segments(path: str | Path) -> list[dict[str, Any]]:
    """The segment file (YAML or JSON): dicts with ``wav``, ``offset`` and ``duration``.

    Every segment must name its recording and have a non-negative offset and a positive
    duration (seconds); a recording's segments must be consecutive, in one run, in time
    order and not overlap (beyond :data:`OVERLAP_TOLERANCE_S`).
    """
    path = Path(path)
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot read the segment file ({err})") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            path, f"not valid YAML/JSON ({getattr(err, 'problem', err)})", line
        ) from None
    if not isinstance(data, list) or not data:
        raise InputError(
            path, "expected a list of segments ({wav: ..., offset: ..., duration: ...})"
        )
    seen: dict[str, int] = {}
    previous = None
    previous_end = 0.0
    for k, seg in enumerate(data):
        problem = _segment_problem(seg)
        if problem is None:
            name = _recording_name(seg["wav"])
            if name != previous and name in seen:
                problem = (
                    f"recording {name!r} continues here after other recordings; "
                    "keep each recording's segments together"
                )
            elif name == previous and previous_end - seg["offset"] > OVERLAP_TOLERANCE_S + 1e-9:
                problem = (
                    f"it starts at {seg['offset']:g} s, before segment {k} of {name!r} ends "
                    f"({previous_end:g} s): segments must not overlap and must be in time order"
                )
            seen.setdefault(name, k)
            previous = name
            previous_end = seg["offset"] + seg["duration"]
        if problem is not None:
            raise InputError(path, f"segment {k + 1}: {problem}", _yaml_item_line(text, k))
    return data


def _segment_problem(seg: Any) -> str | None:
    if not isinstance(seg, Mapping):
        return "expected a mapping with wav, offset and duration"
    for key in ("wav", "offset", "duration"):
        if key not in seg:
            return f"missing {key!r}"
    if not isinstance(seg["wav"], str) or not seg["wav"].strip():
        return "'wav' must be the recording's file name"
    for key in ("offset", "duration"):
        value = seg[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return f"{key!r} must be a number of seconds, not {value!r}"
    if seg["offset"] < 0:
        return f"'offset' must not be negative ({seg['offset']})"
    if seg["duration"] <= 0:
        return (
            f"'duration' must be positive ({seg['duration']}): it is the sentence's source length"
        )
    return None


def _yaml_item_line(text: str, k: int) -> int | None:
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return node.value[k].start_mark.line + 1
    except (yaml.YAMLError, IndexError, AttributeError, TypeError):  # a nicety of the message
        return None


def _recording_name(name: str) -> str:
    """The name both tools match recordings by: the file's stem (``a/talk.wav`` → ``talk``)."""
    return Path(os.path.basename(name.strip())).stem


def read_references(path: str | Path) -> list[str]:
    """One reference sentence per line, stripped."""
    return [line.strip() for line in read_lines(path)]


def read_hypotheses(path: str | Path, unit: str = "word") -> dict[str, Recording]:
    """The hypothesis JSONL: one ``{source, prediction, delays[, elapsed]}`` line per recording.

    ``source`` is the recording's file name (or a list starting with it, as SimulEval
    writes it); ``delays`` and ``elapsed`` hold one number (ms) per target unit of
    ``prediction``: delays non-negative and never decreasing, each elapsed time at least
    its delay. An optional ``source_length`` (the recording's length in ms, as OmniSTEval
    reads it) bounds the delays, and the segments (:func:`match_inputs`). Keyed by
    recording name (the file's stem). Blank lines are skipped; errors name file and line.
    """
    path = Path(path)
    check_unit(unit)
    out: dict[str, Recording] = {}
    lines: dict[str, int] = {}
    has_elapsed: dict[bool, int] = {}
    try:
        f = path.open(encoding="utf-8-sig")  # a byte-order mark is no JSON
    except OSError as err:
        raise InputError(path, f"cannot read the hypotheses ({err})") from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                rec = _parse_hypothesis(path, lineno, line, unit)
                if rec.name in out:
                    raise InputError(
                        path,
                        f"second line for recording {rec.name!r} (first on line {lines[rec.name]})",
                        lineno,
                    )
                has_elapsed.setdefault(rec.elapsed is not None, lineno)
                if len(has_elapsed) > 1:
                    raise InputError(
                        path,
                        "'elapsed' must be given on every line or on none "
                        f"(line {has_elapsed[True]} has it, line {has_elapsed[False]} does not)",
                        lineno,
                    )
                out[rec.name] = rec
                lines[rec.name] = lineno
        except UnicodeDecodeError as err:
            raise InputError(path, f"not UTF-8 text ({err})") from None
    if not out:
        raise InputError(path, "no hypotheses: the file is empty")
    return out


def _parse_hypothesis(path: Path, lineno: int, line: str, unit: str) -> Recording:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(
            path, f"not valid JSON ({err.msg} at column {err.colno})", lineno
        ) from None
    if not isinstance(obj, dict):
        raise InputError(path, "expected a JSON object with source, prediction and delays", lineno)
    source = obj.get("source")
    if isinstance(source, list) and source:
        source = source[0]
    if not isinstance(source, str) or not source.strip():
        raise InputError(path, "'source' must be the recording's file name", lineno)
    prediction = obj.get("prediction")
    if not isinstance(prediction, str):
        raise InputError(path, "'prediction' must be a string (the whole translation)", lineno)
    n_units = len(target_units(prediction, unit))
    delays = _times(path, lineno, obj, "delays", n_units, unit, required=True)
    elapsed = _times(path, lineno, obj, "elapsed", n_units, unit, required=False)
    _check_order(path, lineno, delays, "delays")
    if elapsed is not None:
        early = np.flatnonzero(elapsed < delays)
        if early.size:
            k = int(early[0])
            raise InputError(
                path,
                f"'elapsed' value {k + 1} ({elapsed[k]:g} ms) is before its delay "
                f"({delays[k]:g} ms); elapsed is the delay plus computation time",
                lineno,
            )
    length = obj.get("source_length")
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, (int, float)) or not (
            math.isfinite(length) and length > 0
        ):
            raise InputError(
                path, f"'source_length' must be the recording's length in ms, not {length!r}",
                lineno,
            )
        past = np.flatnonzero(delays > length)
        if past.size:
            k = int(past[0])
            raise InputError(
                path,
                f"'delays' value {k + 1} ({delays[k]:g} ms) is past the end of the recording "
                f"('source_length' {length:g} ms): a delay is the source read so far",
                lineno,
            )
    return Recording(
        _recording_name(source), prediction, delays, elapsed,
        None if length is None else float(length), lineno,
    )


def _check_order(path: Path, lineno: int, times: np.ndarray, key: str) -> None:
    negative = np.flatnonzero(times < 0)
    if negative.size:
        k = int(negative[0])
        raise InputError(path, f"{key!r} value {k + 1} ({times[k]:g} ms) is negative", lineno)
    back = np.flatnonzero(np.diff(times) < 0)
    if back.size:
        k = int(back[0]) + 1
        raise InputError(
            path,
            f"{key!r} decrease at value {k + 1} ({times[k]:g} ms after {times[k - 1]:g} ms); "
            "a delay can never be smaller than the one before",
            lineno,
        )


def _times(path, lineno, obj, key, n_units, unit, *, required) -> np.ndarray | None:
    values = obj.get(key)
    if values is None:
        if required:
            raise InputError(path, f"missing {key!r} (one time in ms per target unit)", lineno)
        return None
    if not isinstance(values, list) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in values
    ):
        raise InputError(path, f"{key!r} must be a list of numbers (ms)", lineno)
    arr = np.array(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise InputError(path, f"{key!r} must hold finite numbers", lineno)
    if arr.shape[0] != n_units:
        what = "words" if unit == "word" else "characters (spaces included)"
        raise InputError(
            path,
            f"{len(values)} {key} for a prediction of {n_units} {what}; they must be equal",
            lineno,
        )
    return arr


def match_inputs(
    hypotheses: Mapping[str, Recording],
    segments: Sequence[Mapping[str, Any]],
    references: Sequence[str],
    *,
    hypothesis_path: str | Path = "hypotheses",
    segments_path: str | Path = "segments",
    references_path: str | Path = "references",
) -> tuple[list[Recording], list[Segment]]:
    """Pair the recordings of the hypotheses with the segment file and the references.

    Returns the recordings in the segment file's order and the segments (offsets and
    durations in ms, computed as OmniSTEval does: ``seconds * 1000``). A segment that
    ends more than :data:`PAST_END_TOLERANCE_MS` after its recording's ``source_length``
    is an error naming the segment file and line.
    """
    if len(references) != len(segments):
        raise InputError(
            references_path,
            f"{len(references)} reference lines for the {len(segments)} segments of "
            f"{segments_path}: give exactly one reference sentence per segment",
        )
    segs = [
        Segment(_recording_name(s["wav"]), s["offset"] * 1000, s["duration"] * 1000, ref)
        for s, ref in zip(segments, references)
    ]
    names = list(dict.fromkeys(s.recording for s in segs))
    wavs: dict[str, str] = {}
    for s in segments:
        other = wavs.setdefault(_recording_name(s["wav"]), s["wav"].strip())
        if other != s["wav"].strip():
            raise InputError(
                segments_path,
                f"two recordings share the name {_recording_name(other)!r}: "
                f"{other!r} and {s['wav']!r}",
            )
    extra = [n for n in hypotheses if n not in wavs]
    if extra:
        raise InputError(
            hypothesis_path,
            f"recording {extra[0]!r} is not in {segments_path} (its recordings: {_listing(names)})",
        )
    missing = [n for n in names if n not in hypotheses]
    if missing:
        raise InputError(
            hypothesis_path,
            f"no hypothesis for {len(missing)} recording(s) of {segments_path}: {_listing(missing)}",
        )
    for k, seg in enumerate(segs):
        rec = hypotheses[seg.recording]
        end = seg.offset + seg.duration
        if rec.source_length is not None and end > rec.source_length + PAST_END_TOLERANCE_MS:
            raise InputError(
                segments_path,
                f"segment {k + 1} ends at {end / 1000:g} s, past the end of recording "
                f"{seg.recording!r} ({rec.source_length / 1000:g} s, 'source_length' on line "
                f"{rec.line} of {hypothesis_path}): the segment file does not match the audio",
                _segment_line(segments_path, k),
            )
    return [hypotheses[n] for n in names], segs


def _segment_line(path: str | Path, k: int) -> int | None:
    """The line of segment ``k`` in the segment file, when it is a readable file."""
    try:
        return _yaml_item_line(read_text(path), k)
    except (OSError, UnicodeDecodeError):
        return None


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ------------------------------------------------------------------ re-segmentation


def _by_recording(recordings: Sequence[Recording], segments: Sequence[Segment]) -> list[list[int]]:
    index = {r.name: k for k, r in enumerate(recordings)}
    groups: list[list[int]] = [[] for _ in recordings]
    for s, seg in enumerate(segments):
        if seg.recording not in index:
            raise SimulpoError(f"no hypothesis for recording {seg.recording!r}")
        groups[index[seg.recording]].append(s)
    return groups


def _cut(rec: Recording, units: list[str], starts, ends, join: str) -> list[Piece]:
    return [
        Piece(
            join.join(units[a:b]),
            rec.delays[a:b],
            None if rec.elapsed is None else rec.elapsed[a:b],
            units[a:b],
        )
        for a, b in zip(starts, ends)
    ]


def resegment_mwer(
    recordings: Sequence[Recording], segments: Sequence[Segment], unit: str = "word"
) -> list[Piece]:
    """One piece per segment, by simulstream's minimum-WER re-segmentation (mweralign).

    Words are aligned as words; at character level, as mweralign's ``CJSegmenter``
    tokens (every non-Latin-1 character, every run of Latin-1 characters), and each
    piece takes the characters of its tokens.
    """
    groups = _by_recording(recordings, segments)
    docs, cuts = [], []
    for rec, group in zip(recordings, groups):
        refs = [segments[s].reference for s in group]
        if unit == "word":
            units = target_units(rec.prediction, unit)
            docs.append(([mwer_tokens(r) for r in refs], units))
            cuts.append(None)
        else:
            tokens = cj_tokens(rec.prediction)
            docs.append(([cj_tokens(r) for r in refs], tokens))
            cuts.append(np.cumsum([0] + [len(t) for t in tokens]))
    pieces: list[Piece | None] = [None] * len(segments)
    for rec, group, ends, cut in zip(recordings, groups, mwer_segment(docs), cuts):
        if cut is not None:
            ends = cut[ends]
        units = target_units(rec.prediction, unit)
        starts = np.concatenate([[0], ends[:-1]])
        for s, piece in zip(group, _cut(rec, units, starts, ends, " " if unit == "word" else "")):
            pieces[s] = piece
    return pieces  # type: ignore[return-value]


def resegment_soft(
    recordings: Sequence[Recording],
    segments: Sequence[Segment],
    unit: str = "word",
    *,
    lang: str | None = None,
) -> list[Piece]:
    """One piece per segment, by OmniSTEval's SoftSegmenter (references lowercased, units
    NFKC-normalized); ``lang`` is its ``--lang``: units split into Moses subtokens for the
    alignment (see :class:`~simulpo.metrics.resegment.MosesSplitter`)."""
    char_level = unit == "char"
    groups = _by_recording(recordings, segments)
    docs, firsts = [], []
    with MosesSplitter(lang) as moses:
        for rec, group in zip(recordings, groups):
            refs = [
                moses.split(soft_units(segments[s].reference, char_level, reference=True))[0]
                for s in group
            ]
            hyp, first = moses.split(soft_units(rec.prediction, char_level, reference=False))
            docs.append((refs, hyp))
            firsts.append(first)
    pieces: list[Piece | None] = [None] * len(segments)
    for rec, group, token_sentence, first in zip(
        recordings, groups, soft_segment(docs, char_level), firsts
    ):
        # a unit joins the sentence of its first subtoken (none: left out)
        sentence = np.where(first >= 0, token_sentence[np.maximum(first, 0)], -1)
        units = target_units(rec.prediction, unit)
        order = np.argsort(sentence, kind="stable")
        bounds = np.searchsorted(sentence[order], np.arange(len(group) + 1))
        for k, s in enumerate(group):
            take = np.sort(order[bounds[k] : bounds[k + 1]])
            pieces[s] = Piece(
                (" " if unit == "word" else "").join(units[t] for t in take),
                rec.delays[take],
                None if rec.elapsed is None else rec.elapsed[take],
                [units[t] for t in take],
            )
    return pieces  # type: ignore[return-value]


# -------------------------------------------------------------------------- metrics


def _shifted(pieces: Sequence[Piece], segments: Sequence[Segment], computation_aware: bool):
    times = [p.elapsed if computation_aware else p.delays for p in pieces]
    if any(t is None for t in times):
        raise SimulpoError("computation-aware latency needs 'elapsed' times in the hypotheses")
    return pad([t - seg.offset for t, seg in zip(times, segments)])


def stream_laal(
    pieces: Sequence[Piece],
    segments: Sequence[Segment],
    unit: str = "word",
    *,
    computation_aware: bool = False,
) -> float:
    """StreamLAAL (ms) over pieces of a minimum-WER re-segmentation, as simulstream scores it.

    Each piece's delays minus its segment's offset, SimulEval's LAAL with the segment's
    duration as source length and ``max(|piece|, |reference|)`` as target length (words
    counted by ``split(" ")`` without empty strings, or characters); empty pieces are
    skipped; the exact mean (``statistics.mean``). NaN when every piece is empty, where
    simulstream raises an error.
    """
    if len(pieces) != len(segments):
        raise ValueError(f"{len(pieces)} pieces for {len(segments)} segments")
    if not pieces:
        return float("nan")
    delays = _shifted(pieces, segments, computation_aware)
    durations = np.array([s.duration for s in segments])
    if unit == "word":
        ref_lengths = [sum(1 for w in s.reference.split(" ") if w) for s in segments]
    else:
        ref_lengths = [len(s.reference) for s in segments]
    return corpus_mean(length_adaptive_average_lagging(delays, durations, np.array(ref_lengths)))


def recording_ends(segments: Sequence[Segment]) -> np.ndarray:
    """For each segment, the time from its offset to its recording's last segment end (ms)."""
    last: dict[str, float] = {}
    for s in segments:
        last[s.recording] = max(last.get(s.recording, 0), s.offset + s.duration)
    return np.array([last[s.recording] - s.offset for s in segments], dtype=np.float64)


def long_yaal(
    pieces: Sequence[Piece],
    segments: Sequence[Segment],
    unit: str = "word",
    *,
    computation_aware: bool = False,
) -> float:
    """LongYAAL (ms) over pieces of OmniSTEval's re-segmentation, as OmniSTEval scores it.

    Per piece, times relative to the segment's offset, ``gamma = max(|piece|, |Y|) /
    duration`` with ``|Y|`` SimulEval's reference length (``len(ref.split(" "))`` words,
    or characters), and ``YAAL = 1/tau * sum_{t<tau} (d_t - t / gamma)`` over the ``tau``
    leading units emitted before the recording's end (the end of its last segment); a
    piece with no such unit, or none at all, is skipped. The exact mean; NaN if none.
    """
    if len(pieces) != len(segments):
        raise ValueError(f"{len(pieces)} pieces for {len(segments)} segments")
    if not pieces:
        return float("nan")
    d = _shifted(pieces, segments, computation_aware)
    until_end = recording_ends(segments)
    durations = np.array([s.duration for s in segments])
    ref_lengths = _omnisteval_reference_lengths(segments, unit)
    before_end = d.mask & (d.steps < until_end[None, :])
    tau = np.logical_and.accumulate(before_end, axis=0).sum(axis=0)
    gamma = np.maximum(d.lengths, ref_lengths) / durations
    acc = np.zeros(d.n)
    with np.errstate(invalid="ignore", divide="ignore"):  # only in pieces not scored
        for j in range(int(tau.max(initial=0))):
            np.copyto(acc, acc + (d.steps[j] - j / gamma), where=j < tau)
        scores = np.where(tau > 0, acc / tau, np.nan)
    return corpus_mean(scores)


def _omnisteval_reference_lengths(segments: Sequence[Segment], unit: str) -> np.ndarray:
    """``|Y|`` as OmniSTEval counts it (SimulEval's way): ``len(ref.split(" "))`` words,
    or ``len(ref.strip())`` characters."""
    if unit == "word":
        return np.array([s.reference.count(" ") + 1 for s in segments], np.float64)
    return np.array([len(s.reference.strip()) for s in segments], np.float64)


def long_sentence_latencies(
    pieces: Sequence[Piece],
    segments: Sequence[Segment],
    unit: str = "word",
    *,
    computation_aware: bool = False,
) -> dict[str, float]:
    """OmniSTEval's LongAL, LongLAAL, LongAP and LongDAL (ms): SimulEval's AL, LAAL, AP
    and DAL of each piece of its re-segmentation, times relative to the segment's offset,
    the segment's duration as source length and OmniSTEval's reference length; empty
    pieces skipped; the exact mean of the rest (NaN if none)."""
    if len(pieces) != len(segments):
        raise ValueError(f"{len(pieces)} pieces for {len(segments)} segments")
    if not pieces:
        return {k: float("nan") for k in ("LongAL", "LongLAAL", "LongAP", "LongDAL")}
    d = _shifted(pieces, segments, computation_aware)
    durations = np.array([s.duration for s in segments])
    ref = _omnisteval_reference_lengths(segments, unit)
    return {
        "LongAL": corpus_mean(average_lagging(d, durations, ref)),
        "LongLAAL": corpus_mean(length_adaptive_average_lagging(d, durations, ref)),
        "LongAP": corpus_mean(average_proportion(d, durations, ref)),
        "LongDAL": corpus_mean(differentiable_average_lagging(d, durations)),
    }


def latency_regime(long_yaal_ms: float) -> str:
    """IWSLT 2026's latency regime of a system by its computation-unaware LongYAAL:
    'low' (0–2 s), 'high' (over 2 s, up to 4 s), else 'outside' (also for NaN)."""
    if 0.0 <= long_yaal_ms <= 2000.0:
        return "low"
    if 2000.0 < long_yaal_ms <= 4000.0:
        return "high"
    return "outside"


# -------------------------------------------------------------------------- scoring


@dataclass
class LongformResult:
    """Scores and both re-segmentations, one piece per segment."""

    scores: dict[str, float]
    segments: list[Segment]
    soft: list[Piece]  # OmniSTEval's pieces: LongYAAL, BLEU, chrF
    mwer: list[Piece]  # simulstream's pieces: StreamLAAL


def score_longform(
    recordings: Sequence[Recording],
    segments: Sequence[Segment],
    unit: str = "word",
    target_lang: str | None = None,
    *,
    lang: str | None = None,
    quality_metrics: Sequence[str] | None = None,
    latency_metrics: Sequence[str] | None = None,
    bleu_tokenize: str | None = None,
    computation_aware: bool | str = "auto",
) -> LongformResult:
    """The long-form latencies (:data:`LONGFORM_METRICS`, plus ``*_CA`` given elapsed
    times) and quality (default BLEU; chrF when asked) of the streams.

    ``lang`` is OmniSTEval's ``--lang`` (Moses subtokens in its re-segmentation);
    ``latency_metrics`` picks among :data:`LONGFORM_METRICS` (None: all);
    ``bleu_tokenize`` overrides the BLEU tokenizer (OmniSTEval's ``--bleu_tokenizer``);
    ``computation_aware``: 'auto' adds the ``*_CA`` keys when the hypotheses have elapsed
    times, True requires them, False leaves them out. At character
    level the references lose their spaces for the SoftSegmenter and OmniSTEval's
    metrics, and keep them for mWER and StreamLAAL, as the two tools do.
    """
    quality = select_metrics(quality_metrics, "quality")
    latency = _select_longform(latency_metrics)
    unit = check_unit(unit)
    if not segments:
        raise SimulpoError("there are no segments to score")
    soft_segments = segments
    if unit == "char":
        soft_segments = [
            Segment(s.recording, s.offset, s.duration, s.reference.replace(" ", ""))
            for s in segments
        ]
    has_elapsed = all(r.elapsed is not None for r in recordings)
    if computation_aware is True and not has_elapsed:
        raise SimulpoError("computation-aware latency needs 'elapsed' times in the hypotheses")
    if computation_aware not in ("auto", True, False):
        raise SimulpoError(f"computation_aware must be 'auto', True or False, not {computation_aware!r}")
    # the two alignments are independent: mWER in a forked child while this one aligns soft
    large = sum(len(r.delays) for r in recordings) >= PARALLEL_MIN_UNITS
    mwer_result = beside(resegment_mwer, recordings, segments, unit, parallel=large)
    soft = resegment_soft(recordings, soft_segments, unit, lang=lang)
    mwer = mwer_result()
    variants = [False] + ([True] if has_elapsed and computation_aware is not False else [])
    scores: dict[str, float] = {}
    for ca in variants:
        suffix = CA_SUFFIX if ca else ""
        values = {
            "LongYAAL": long_yaal(soft, soft_segments, unit, computation_aware=ca),
            "StreamLAAL": stream_laal(mwer, segments, unit, computation_aware=ca),
            **long_sentence_latencies(soft, soft_segments, unit, computation_aware=ca),
        }
        scores.update({name + suffix: values[name] for name in latency})
    predictions = [p.prediction for p in soft]
    references = [s.reference for s in soft_segments]
    # chrF (the slower) in a forked child while BLEU is computed here
    here = ("BLEU",) if "BLEU" in quality else quality[-1:]
    pending = [
        beside(_quality, name, predictions, references, target_lang, bleu_tokenize,
               parallel=large and name not in here)
        for name in quality
    ]
    scores.update((name, result()) for name, result in zip(quality, pending))
    return LongformResult({k: float(v) for k, v in scores.items()}, list(segments), soft, mwer)


def _quality(name: str, predictions: list[str], references: list[str],
             target_lang: str | None, tokenize: str | None) -> float:
    if name == "BLEU":
        return corpus_bleu(predictions, references, target_lang=target_lang, tokenize=tokenize)
    return corpus_chrf(predictions, references)


def _select_longform(names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return LONGFORM_METRICS
    by_lower = {k.lower(): k for k in LONGFORM_METRICS}
    out: list[str] = []
    for name in names:
        canonical = by_lower.get(str(name).strip().lower())
        if canonical is None:
            raise SimulpoError(
                f"{name!r} is not a long-form latency metric; use {', '.join(LONGFORM_METRICS)}"
            )
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def score_longform_files(
    hypotheses: str | Path,
    segments: str | Path,
    references: str | Path,
    output: str | Path | None = None,
    *,
    unit: str = "word",
    target_lang: str | None = None,
    lang: str | None = None,
    quality_metrics: Sequence[str] | None = None,
    latency_metrics: Sequence[str] | None = None,
    bleu_tokenize: str | None = None,
    computation_aware: bool | str = "auto",
    comet: CometModel | None = None,
    comet_sources: str | Path | None = None,
) -> dict[str, float]:
    """Score a long-form hypothesis file; write ``scores.json`` and the re-segmentation.

    The keyword arguments are :func:`score_longform`'s; every input is checked (file and
    line named) before anything is scored. ``comet`` adds COMET (XCOMET for an XCOMET
    model) on OmniSTEval's pieces against the references, with ``comet_sources`` (one
    source sentence per segment: the transcripts) when given, and writes ``comet.json``.

    ``output`` is a directory (default: the hypothesis file's). ``scores.json`` holds
    the scores (NaN as null); ``instances.resegmented.jsonl`` one line per reference
    sentence: OmniSTEval's piece (``prediction``, ``delays``, ``elapsed``, relative to
    the segment's offset, in ms) and simulstream's (``mwer_prediction``, ...).
    """
    unit = check_unit(unit)
    select_metrics(quality_metrics, "quality")  # a bad name fails before the files are read
    _select_longform(latency_metrics)
    hyps = read_hypotheses(hypotheses, unit)
    segs = read_segments(segments)
    refs = read_references(references)
    recordings, seg_list = match_inputs(
        hyps,
        segs,
        refs,
        hypothesis_path=hypotheses,
        segments_path=segments,
        references_path=references,
    )
    result = score_longform(
        recordings, seg_list, unit, target_lang, lang=lang,
        quality_metrics=quality_metrics, latency_metrics=latency_metrics,
        bleu_tokenize=bleu_tokenize, computation_aware=computation_aware,
    )
    out = Path(output) if output is not None else Path(hypotheses).parent
    if comet is not None:
        from simulpo.metrics.comet import RESULT_NAME, read_sources

        sources = (None if comet_sources is None
                   else read_sources(comet_sources, len(seg_list), "segments"))
        quality = comet.score([p.prediction for p in result.soft],
                              [s.reference for s in seg_list], sources)
        quality.add_to(result.scores, select_metrics(quality_metrics, "quality"))
        _write_text(out / RESULT_NAME, json.dumps(quality.as_json(), indent=2) + "\n")
    _write_text(
        out / SCORES_NAME,
        json.dumps({k: None if math.isnan(v) else v for k, v in result.scores.items()}, indent=2)
        + "\n",
    )
    _write_text(
        out / RESEGMENTED_NAME,
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in resegmented_rows(result)),
    )
    return result.scores


def resegmented_rows(result: LongformResult) -> list[dict[str, Any]]:
    """One JSON-ready dict per reference sentence: both pieces, times relative to the segment."""
    ends = recording_ends(result.segments)
    rows = []
    for k, (seg, soft, mwer) in enumerate(zip(result.segments, result.soft, result.mwer)):
        row: dict[str, Any] = {
            "index": k,
            "recording": seg.recording,
            "offset": seg.offset,
            "source_length": seg.duration,
            "time_to_recording_end": float(ends[k]),
            "reference": seg.reference,
            "prediction": soft.prediction,
            "delays": (soft.delays - seg.offset).tolist(),
        }
        if soft.elapsed is not None:
            row["elapsed"] = (soft.elapsed - seg.offset).tolist()
        row["mwer_prediction"] = mwer.prediction
        row["mwer_delays"] = (mwer.delays - seg.offset).tolist()
        if mwer.elapsed is not None:
            row["mwer_elapsed"] = (mwer.elapsed - seg.offset).tolist()
        rows.append(row)
    return rows


def _write_text(file: Path, text: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
