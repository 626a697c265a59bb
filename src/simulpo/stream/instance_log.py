"""Reading and writing SimulEval ``instances.log`` files: one JSON object per line.

Each line describes one episode with SimulEval's fields — ``index``, ``prediction``,
``delays``, ``elapsed``, ``prediction_length``, ``reference``, ``source``,
``source_length`` — so logs move freely between simulpo and SimulEval. Extra fields are
allowed and kept as they are.

:func:`read_instances` checks every line before anything is scored and names the file and
line of the first problem, because a latency score computed from a broken log is wrong
without any sign of it. The check is one pass: :func:`first_invalid` tests the whole log
with a few array operations, and only a log that fails them is walked record by record
(:func:`check_record`) for the message. The number of delays must equal the number of target units of
the prediction, counted as SimulEval counts them: ``prediction.split()`` for words, the
characters other than spaces for characters.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulpo.errors import InputError, SimulpoError
from simulpo.io import atomic_write_text, read_lines
from simulpo.stream.units import check_unit, split_units

__all__ = [
    "LOG_NAME",
    "REQUIRED_FIELDS",
    "InvalidRecord",
    "check_record",
    "first_invalid",
    "log_path",
    "read_instances",
    "write_instances",
]

LOG_NAME = "instances.log"
REQUIRED_FIELDS = ("prediction", "delays", "source_length")
_UNIT_NAMES = {"word": "words", "char": "characters (spaces excluded)"}


class InvalidRecord(ValueError):
    """One instance record is unusable; the message says why in one line."""


def log_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/instances.log`` when ``path`` is a directory."""
    p = Path(path)
    return p / LOG_NAME if p.is_dir() else p


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _bad_number(x: float) -> str | None:
    """Why ``x`` cannot be a time or a length, or None when it is fine."""
    try:
        value = float(x)
    except OverflowError:
        return "is too large"
    if math.isnan(value):
        return "is NaN"
    if math.isinf(value):
        return "is infinite"
    if value < 0:
        return "is negative"
    return None


def _check_times(record: Mapping[str, Any], key: str) -> list:
    values = record[key]
    if not isinstance(values, list):
        raise InvalidRecord(f"'{key}' must be a list of numbers, found {type(values).__name__}")
    for i, x in enumerate(values):
        if not _is_number(x):
            raise InvalidRecord(f"'{key}' must hold only numbers, but value {i + 1} is {x!r}")
        why = _bad_number(x)
        if why:
            raise InvalidRecord(f"'{key}' value {i + 1} ({x}) {why}; times must be finite and >= 0")
    return values


def check_record(
    record: Any, latency_unit: str = "word", *, require_reference: bool = True
) -> None:
    """Raise :class:`InvalidRecord` with a one-line message if ``record`` is not a usable instance.

    Checks the required fields and their types, that delays are finite, non-negative and
    never decrease, that there is one delay per target unit of the prediction (in
    ``latency_unit``), that ``elapsed`` (when not empty) has one value per delay, and —
    with ``require_reference`` — that the reference is a string whose length in target
    units is not zero (SimulEval's AL divides by it).
    """
    if not isinstance(record, Mapping):
        raise InvalidRecord(f"expected a JSON object, found {type(record).__name__}")
    for key in REQUIRED_FIELDS:
        if key not in record:
            raise InvalidRecord(f"missing required field '{key}'")
    prediction = record["prediction"]
    if not isinstance(prediction, str):
        raise InvalidRecord(f"'prediction' must be a string, found {type(prediction).__name__}")
    source_length = record["source_length"]
    if not _is_number(source_length):
        raise InvalidRecord(f"'source_length' must be a number, found {source_length!r}")
    why = _bad_number(source_length)
    if why or source_length == 0:
        raise InvalidRecord(
            f"'source_length' ({source_length}) {why or 'is zero'}; it must be positive"
        )
    delays = _check_times(record, "delays")
    for i in range(1, len(delays)):
        if delays[i] < delays[i - 1]:
            raise InvalidRecord(
                f"'delays' decrease at value {i + 1} ({delays[i]} after {delays[i - 1]}); "
                "a delay can never be smaller than the one before"
            )
    units = len(split_units(prediction, check_unit(latency_unit)))
    if len(delays) != units:
        raise InvalidRecord(
            f"'delays' has {len(delays)} values but the prediction has {units} "
            f"{_UNIT_NAMES[latency_unit]}; there must be one delay per target unit "
            f"(latency unit '{latency_unit}')"
        )
    if record.get("elapsed") is not None:
        elapsed = _check_times(record, "elapsed")
        if elapsed and len(elapsed) != len(delays):
            raise InvalidRecord(
                f"'elapsed' has {len(elapsed)} values but 'delays' has {len(delays)}; "
                "they must match one to one"
            )
    if require_reference:
        if record.get("reference") is None:
            raise InvalidRecord("missing 'reference', needed for BLEU, chrF and AL")
        reference = record["reference"]
        if not isinstance(reference, str):
            raise InvalidRecord(f"'reference' must be a string, found {type(reference).__name__}")
        if latency_unit == "char" and delays and not reference.strip():
            raise InvalidRecord("'reference' is empty, so AL's reference length would be 0")


_NUMBER_TYPES = {int, float}


def _all_fine(
    records: Sequence[Any], latency_unit: str, require_reference: bool
) -> bool:
    """True when every record surely passes :func:`check_record`, tested in bulk."""
    if any(type(r) is not dict for r in records):
        return False
    if not all(k in r for r in records for k in REQUIRED_FIELDS):
        return False
    predictions = [r["prediction"] for r in records]
    delays = [r["delays"] for r in records]
    sources = [r["source_length"] for r in records]
    if {type(p) for p in predictions} != {str} or {type(d) for d in delays} != {list}:
        return False
    if not {type(x) for x in sources} <= _NUMBER_TYPES:
        return False
    lengths = np.fromiter(map(len, delays), np.int64, count=len(delays))
    if latency_unit == "word":
        units = [len(p.split()) for p in predictions]
    else:
        units = [len(p) - p.count(" ") for p in predictions]
    if not np.array_equal(lengths, np.array(units, np.int64)):
        return False
    if not _times_fine(delays, lengths, monotone=True):
        return False
    try:
        src = np.array(sources, np.float64)
    except OverflowError:
        return False
    if not (np.isfinite(src).all() and (src > 0).all()):
        return False
    elapsed = [(r["elapsed"], n) for r, n in zip(records, lengths.tolist())
               if r.get("elapsed") is not None]
    if elapsed:
        if {type(e) for e, _ in elapsed} != {list}:
            return False
        if any(e and len(e) != n for e, n in elapsed):
            return False
        values = [e for e, _ in elapsed]
        if not _times_fine(values, np.fromiter(map(len, values), np.int64), monotone=False):
            return False
    if require_reference:
        references = [r.get("reference") for r in records]
        if {type(x) for x in references} != {str}:
            return False
        if latency_unit == "char" and any(
            n and not ref.strip() for ref, n in zip(references, lengths.tolist())
        ):
            return False
    return True


def _times_fine(values: list[list], lengths: np.ndarray, *, monotone: bool) -> bool:
    flat = list(itertools.chain.from_iterable(values))
    if not {type(x) for x in flat} <= _NUMBER_TYPES:
        return False
    try:
        arr = np.array(flat, np.float64)
    except OverflowError:
        return False
    if not (np.isfinite(arr).all() and (arr >= 0).all()):
        return False
    if monotone and arr.size > 1:
        steps = np.diff(arr) >= 0
        starts = np.cumsum(lengths)[:-1]  # where a new record's values begin
        starts = starts[(starts > 0) & (starts < arr.size)]
        steps[starts - 1] = True  # a record may start below the last one's end
        return bool(steps.all())
    return True


def first_invalid(
    records: Sequence[Any], latency_unit: str = "word", *, require_reference: bool = True
) -> tuple[int, str] | None:
    """The index of the first record :func:`check_record` refuses and why, or None.

    A log that passes the bulk test (the common case) is checked in a few array
    operations; only one that fails it is walked record by record.
    """
    check_unit(latency_unit)
    if records and _all_fine(records, latency_unit, require_reference):
        return None
    for i, record in enumerate(records):
        try:
            check_record(record, latency_unit, require_reference=require_reference)
        except InvalidRecord as err:
            return i, str(err)
    return None


def read_instances(
    path: str | Path, *, latency_unit: str = "word", require_reference: bool = True
) -> list[dict[str, Any]]:
    """Read and check an ``instances.log`` file (or a directory that holds one).

    Returns one dict per non-blank line, as parsed (extra fields kept). Raises
    :class:`~simulpo.errors.InputError` naming the file and line of the first problem:
    invalid UTF-8, malformed JSON, a missing field, delays of the wrong length, decreasing
    or negative / NaN / infinite delays, bad ``elapsed`` or ``source_length``, or an empty
    file. ``latency_unit`` ('word' or 'char') decides how target units are counted.
    """
    check_unit(latency_unit)
    file = log_path(path)
    if not file.exists():
        where = Path(path)
        raise InputError(
            where, f"no {LOG_NAME} in this directory" if where.is_dir() else "no such file"
        )
    records, numbers = [], []
    loads = json.loads
    for number, text in enumerate(read_lines(file), start=1):
        if not text or text.isspace():
            continue
        try:
            records.append(loads(text))
        except json.JSONDecodeError as err:
            raise InputError(file, f"malformed JSON: {err.msg} (column {err.colno})", number)
        numbers.append(number)
    if not records:
        raise InputError(file, "the file is empty: there are no instances to read")
    problem = first_invalid(records, latency_unit, require_reference=require_reference)
    if problem is not None:
        raise InputError(file, problem[1], numbers[problem[0]])
    return records


def write_instances(
    path: str | Path, records: Iterable[Mapping[str, Any]], source_type: str | None = None
) -> Path:
    """Write ``records`` as an ``instances.log`` file, atomically; returns the file's path.

    ``path`` is a file, or a directory to write ``instances.log`` into. The lines go to a
    temporary file in the same directory that then replaces ``path`` in one step, so a
    reader never sees half a log. Non-ASCII text is written as UTF-8, not escaped. With
    ``source_type`` (``text`` or ``speech``), SimulEval's ``config.yaml`` goes beside the
    log, so ``simuleval --score-only --output DIR`` scores the folder as it is.
    """
    file = log_path(path)
    lines = []
    for i, record in enumerate(records):
        try:
            lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise SimulpoError(f"cannot write instance {i} to {file}: {err}") from None
    atomic_write_text(file, "".join(line + "\n" for line in lines))
    if source_type is not None:
        atomic_write_text(
            file.parent / "config.yaml", f"source_type: {source_type}\ntarget_type: text\n"
        )
    return file
