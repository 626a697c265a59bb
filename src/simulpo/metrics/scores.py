"""Score a set of instances (an ``instances.log``): quality and latency in one dict.

Metrics are picked by SimulEval's names (its ``--quality-metrics`` / ``--latency-metrics``):
quality ``BLEU``, ``chrF``; latency ``AL``, ``LAAL``, ``DAL``, ``AP``, ``ATD``,
``StartOffset``, ``EndOffset``, ``NumChunks``, ``RTF``; and ``<metric>_CA`` for the
computation-aware variants when the log has wall-clock ``elapsed`` times. The default is
what SimulEval 1.1.4 reports (BLEU; LAAL, AL, AP, DAL, ATD) plus StartOffset and EndOffset;
chrF only when asked for. Values are full-precision floats (SimulEval rounds to 3 decimals
only when printing).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulpo.errors import InputError, SimulpoError
from simulpo.metrics.latency import CA_SUFFIX, LATENCY_METRICS, latency_scores, pad
from simulpo.metrics.quality import corpus_bleu, corpus_chrf
from simulpo.stream.instance_log import first_invalid, log_path, read_instances
from simulpo.stream.units import check_unit, default_unit

if TYPE_CHECKING:
    from simulpo.metrics.comet import CometModel

__all__ = [
    "DEFAULT_LATENCY_METRICS",
    "DEFAULT_QUALITY_METRICS",
    "EVAL_QUALITY_METRICS",
    "QUALITY_METRICS",
    "SIMULEVAL_LATENCY_METRICS",
    "detect_source_type",
    "format_scores_table",
    "reference_length",
    "score_instances",
    "score_path",
    "select_metrics",
]

QUALITY_METRICS = ("BLEU", "chrF")
#: SimulEval 1.1.4's defaults: ``--quality-metrics BLEU --latency-metrics LAAL AL AP DAL ATD``
SIMULEVAL_QUALITY_METRICS = ("BLEU",)
SIMULEVAL_LATENCY_METRICS = ("LAAL", "AL", "AP", "DAL", "ATD")
DEFAULT_QUALITY_METRICS = SIMULEVAL_QUALITY_METRICS
DEFAULT_LATENCY_METRICS = SIMULEVAL_LATENCY_METRICS + ("StartOffset", "EndOffset")
#: what ``simulpo eval`` reports (its tables and plots compare chrF too)
EVAL_QUALITY_METRICS = ("BLEU", "chrF")
#: SimulEval metrics for speech output or that need an ASR model: not for text output
_NOT_FOR_TEXT = ("WER", "ASR_BLEU", "WHISPER_ASR_BLEU", "DiscontinuitySum",
                 "DiscontinuityAve", "DiscontinuityNum", "_SpeechAlign_")
SCORES_NAME = "scores.json"
#: added to an error on a file's very first instance: likely not an instances.log at all
NOT_A_LOG = (
    "simulpo score expects a SimulEval instances.log (one JSON instance per line, or its "
    "directory), or long-form hypotheses with --segments and --references"
)


def select_metrics(names: Sequence[str] | None, kind: str) -> tuple[str, ...]:
    """The metrics ``names`` asks for, spelled as SimulEval spells them, in the given order.

    ``kind`` is 'quality' or 'latency'; None gives the default. Names match regardless
    of case; a duplicate counts once; an unknown one is a one-line error listing the
    known ones.
    """
    known = QUALITY_METRICS if kind == "quality" else LATENCY_METRICS
    if names is None:
        return DEFAULT_QUALITY_METRICS if kind == "quality" else DEFAULT_LATENCY_METRICS
    by_lower = {k.lower(): k for k in known}
    out: list[str] = []
    for name in names:
        canonical = by_lower.get(str(name).strip().lower())
        if canonical is None:
            if any(n.lower() in str(name).lower() for n in _NOT_FOR_TEXT):
                why = f"SimulEval's {name} scores speech output (or needs an ASR model)"
            else:
                why = f"unknown {kind} metric {name!r}"
            raise SimulpoError(f"{why}; the {kind} metrics for text are {', '.join(known)}")
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


def reference_length(reference: str, latency_unit: str) -> int:
    """The reference length in target units, counted exactly as SimulEval counts it.

    Words: ``len(reference.split(" "))`` (so double spaces add empty "words" and an empty
    reference has length 1); characters: ``len(reference.strip())`` (inner spaces count,
    although they are not units of the prediction).
    """
    if latency_unit == "word":
        return reference.count(" ") + 1  # == len(reference.split(" ")), without the list
    return len(reference.strip())


def detect_source_type(records: Sequence[Mapping[str, Any]]) -> str:
    """'text' when every ``source`` is a string of exactly ``source_length`` words, else 'speech'.

    SimulEval's text logs store the source words joined by spaces and count them in
    ``source_length``; speech logs store an audio path or description and milliseconds.
    """
    for r in records:
        source = r.get("source")
        if not isinstance(source, str) or len(source.split()) != r["source_length"]:
            return "speech"
    return "text"


def _use_elapsed(records: Sequence[Mapping[str, Any]], computation_aware: bool | str) -> bool:
    present = [r.get("elapsed") for r in records if r.get("elapsed")]
    if computation_aware == "auto":
        # SimulEval writes all-zero elapsed times for text input: nothing to measure there.
        return any(any(x != 0 for x in e) for e in present)
    if computation_aware is True:
        if not present:
            raise SimulpoError(
                "computation-aware latency needs 'elapsed' times, and these instances have none"
            )
        return True
    if computation_aware is False:
        return False
    raise SimulpoError(f"computation_aware must be 'auto', True or False, not {computation_aware!r}")


def score_instances(
    records: Sequence[Mapping[str, Any]],
    latency_unit: str | None = None,
    target_lang: str | None = None,
    computation_aware: bool | str = "auto",
    *,
    source_type: str = "auto",
    use_ref_len: bool = True,
    quality_metrics: Sequence[str] | None = None,
    latency_metrics: Sequence[str] | None = None,
    bleu_tokenize: str | None = None,
) -> dict[str, float]:
    """The quality and latency scores of ``records`` (``instances.log`` dicts).

    ``quality_metrics`` / ``latency_metrics``: SimulEval's names (see
    :func:`select_metrics`); None for the defaults, an empty list for none.
    ``bleu_tokenize`` overrides the sacrebleu tokenizer ``target_lang`` picks
    (SimulEval's ``--sacrebleu-tokenizer``).
    ``latency_unit`` defaults to 'char' for zh/ja targets and 'word' otherwise.
    ``computation_aware``: 'auto' adds the ``*_CA`` keys when some instance has a
    non-zero ``elapsed`` time; True/False force it. ``source_type`` ('text', 'speech' or
    'auto', see :func:`detect_source_type`) picks ATD's time conventions.
    ``use_ref_len=False`` uses prediction instead of reference lengths in AL, LAAL and AP
    (SimulEval's ``--no-use-ref-len``). Instances with an empty prediction count in
    BLEU/chrF but are skipped in latency, as in SimulEval.
    """
    unit = check_unit(latency_unit or default_unit(target_lang))
    records = list(records)
    if not records:
        raise SimulpoError("there are no instances to score")
    problem = first_invalid(records, unit, require_reference=True)
    if problem is not None:
        i, why = problem
        r = records[i]
        index = r.get("index", i) if isinstance(r, Mapping) else i
        raise SimulpoError(f"instance {index}: {why}")
    return _score_checked(
        records, unit, target_lang, computation_aware, source_type=source_type,
        use_ref_len=use_ref_len, quality_metrics=quality_metrics,
        latency_metrics=latency_metrics, bleu_tokenize=bleu_tokenize,
    )


def _score_checked(
    records: Sequence[Mapping[str, Any]],
    unit: str,
    target_lang: str | None,
    computation_aware: bool | str,
    *,
    source_type: str,
    use_ref_len: bool,
    quality_metrics: Sequence[str] | None,
    latency_metrics: Sequence[str] | None,
    bleu_tokenize: str | None,
) -> dict[str, float]:
    """:func:`score_instances` on records already checked (:func:`first_invalid`)."""
    quality = select_metrics(quality_metrics, "quality")
    latency = select_metrics(latency_metrics, "latency")
    if source_type == "auto":
        source_type = detect_source_type(records)
    use_elapsed = _use_elapsed(records, computation_aware)

    scores: dict[str, float] = {}
    if quality:
        predictions = [r["prediction"] for r in records]
        references = [r["reference"] for r in records]
        for name in quality:
            if name == "BLEU":
                scores[name] = corpus_bleu(
                    predictions, references, target_lang=target_lang, tokenize=bleu_tokenize
                )
            else:
                scores[name] = corpus_chrf(predictions, references)
    if latency:
        delays = pad([r["delays"] for r in records])
        source_lengths = np.array([r["source_length"] for r in records], dtype=np.float64)
        target_lengths = (
            np.array([reference_length(r["reference"], unit) for r in records], np.float64)
            if use_ref_len
            else None
        )
        elapsed = pad([r.get("elapsed") or [] for r in records]) if use_elapsed else None
        scores.update(
            latency_scores(
                delays, source_lengths, target_lengths, elapsed=elapsed,
                source_type=source_type, metrics=latency,
            )
        )
    return {k: float(v) for k, v in scores.items()}


def format_scores_table(scores: Mapping[str, float]) -> str:
    """The scores as an aligned two-column table, computation-aware ones beside their base."""
    rows = []
    for name, value in scores.items():
        if name.endswith(CA_SUFFIX):
            continue
        ca = scores.get(name + CA_SUFFIX)
        rows.append((name, _fmt(value), "" if ca is None else _fmt(ca)))
    rows += [(k, _fmt(v), "") for k, v in scores.items()
             if k.endswith(CA_SUFFIX) and k[: -len(CA_SUFFIX)] not in scores]
    with_ca = any(r[2] for r in rows)
    header = ("metric", "value", "comp.-aware") if with_ca else ("metric", "value")
    table = [header] + [r if with_ca else r[:2] for r in rows]
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    lines = []
    for k, r in enumerate(table):
        cells = [r[0].ljust(widths[0])] + [r[c].rjust(widths[c]) for c in range(1, len(r))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def score_path(
    path: str | Path,
    output: str | Path | None = None,
    latency_unit: str | None = None,
    target_lang: str | None = None,
    *,
    computation_aware: bool | str = "auto",
    source_type: str = "auto",
    use_ref_len: bool = True,
    quality_metrics: Sequence[str] | None = None,
    latency_metrics: Sequence[str] | None = None,
    bleu_tokenize: str | None = None,
    comet: CometModel | None = None,
    comet_sources: str | Path | None = None,
) -> dict[str, float]:
    """Score an ``instances.log`` (or its directory) and write ``scores.json``.

    The scores go next to the log, or to ``output`` (a file, or a directory to put
    ``scores.json`` in); the dict is returned. NaN (no instance had any delay) is written
    as ``null``. The log is checked once, as it is read (errors name its file and line).
    ``comet`` adds COMET (or XCOMET) after the quality metrics and writes its segment
    scores to ``comet.json`` beside ``scores.json``; its sources are ``comet_sources``
    (one line per instance), else the log's own for a text log, else none.
    """
    unit = check_unit(latency_unit or default_unit(target_lang))
    select_metrics(quality_metrics, "quality")  # a bad name fails before the log is read
    select_metrics(latency_metrics, "latency")
    file = log_path(path)
    try:
        records = read_instances(file, latency_unit=unit)
    except InputError as err:
        if err.line is not None and err.line == _first_content_line(file):
            message = str(err).removeprefix(f"{err.path}:{err.line}: ")
            raise InputError(err.path, f"{message}; {NOT_A_LOG}", err.line) from None
        raise
    scores = _score_checked(
        records, unit, target_lang, computation_aware, source_type=source_type,
        use_ref_len=use_ref_len, quality_metrics=quality_metrics,
        latency_metrics=latency_metrics, bleu_tokenize=bleu_tokenize,
    )
    if output is None:
        target = file.parent / SCORES_NAME
    else:
        out = Path(output)
        is_dir = out.is_dir() or str(output).endswith((os.sep, "/"))
        target = out / SCORES_NAME if is_dir else out
    if comet is not None:
        from simulpo.metrics.comet import RESULT_NAME, read_sources

        if comet_sources is not None:
            sources = read_sources(comet_sources, len(records), "instances")
        elif (source_type if source_type != "auto" else detect_source_type(records)) == "text":
            sources = [r["source"] for r in records]
        else:
            sources = None
        result = comet.score([r["prediction"] for r in records],
                             [r["reference"] for r in records], sources)
        result.add_to(scores, select_metrics(quality_metrics, "quality"))
        _write_json(target.parent / RESULT_NAME, result.as_json())
    _write_json(target, {k: None if math.isnan(v) else v for k, v in scores.items()})
    return scores


def _first_content_line(file: Path) -> int | None:
    """The number of the file's first non-blank line (for an error message only)."""
    try:
        with file.open(encoding="utf-8", errors="replace") as f:
            return next((n for n, line in enumerate(f, 1) if line.strip()), None)
    except OSError:
        return None


def _write_json(file: Path, data: Mapping[str, Any]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

