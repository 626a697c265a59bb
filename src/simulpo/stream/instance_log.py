"""Reading and writing SimulEval ``instances.log`` files: one JSON object per line.

Each line describes one episode with SimulEval's fields — ``index``, ``prediction``,
``delays``, ``elapsed``, ``prediction_length``, ``reference``, ``source``,
``source_length`` — so logs move freely between simulpo and SimulEval. Extra fields are
allowed and kept as they are.

:func:`read_instances` checks every line before anything is scored and names the file and
line of the first problem, because a latency score computed from a broken log is wrong
without any sign of it. The number of delays must equal the number of target units of
the prediction, counted as SimulEval counts them: ``prediction.split()`` for words, the
characters other than spaces for characters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from simulpo.errors import InputError, SimulpoError
from simulpo.io import atomic_write_text, read_lines
from simulpo.stream.units import check_unit, split_units

__all__ = [
    "LOG_NAME",
    "REQUIRED_FIELDS",
    "InvalidRecord",
    "check_record",
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
    records = []
    for number, text in enumerate(read_lines(file), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(file, f"malformed JSON: {err.msg} (column {err.colno})", number)
        try:
            check_record(record, latency_unit, require_reference=require_reference)
        except InvalidRecord as err:
            raise InputError(file, str(err), number) from None
        records.append(record)
    if not records:
        raise InputError(file, "the file is empty: there are no instances to read")
    return records


def write_instances(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` as an ``instances.log`` file, atomically; returns the file's path.

    ``path`` is a file, or a directory to write ``instances.log`` into. The lines go to a
    temporary file in the same directory that then replaces ``path`` in one step, so a
    reader never sees half a log. Non-ASCII text is written as UTF-8, not escaped.
    """
    file = log_path(path)
    lines = []
    for i, record in enumerate(records):
        try:
            lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise SimulpoError(f"cannot write instance {i} to {file}: {err}") from None
    atomic_write_text(file, "".join(line + "\n" for line in lines))
    return file
