"""Reading, checking and writing SimulEval instances.log files."""

from __future__ import annotations

import json
import os

import pytest

from simulpo.errors import InputError, SimulpoError
from simulpo.stream.instance_log import (
    InvalidRecord,
    _all_fine,
    check_record,
    first_invalid,
    read_instances,
    write_instances,
)


def record(**changes):
    base = {
        "index": 0, "prediction": "das ist gut", "delays": [1, 2, 3], "elapsed": [0, 0, 0],
        "prediction_length": 3, "reference": "das ist gut", "source": "this is good",
        "source_length": 3,
    }
    base.update(changes)
    if "elapsed" not in changes and isinstance(base["delays"], list):
        base["elapsed"] = [0] * len(base["delays"])
    return base


def write_lines(path, *lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip_keeps_extra_fields_and_unicode(tmp_path):
    records = [
        record(),
        record(index=1, prediction="我们 走", delays=[2, 3], reference="我们走了", mine={"k": [1]}),
    ]
    path = write_instances(tmp_path / "instances.log", records)
    assert read_instances(path) == records
    text = path.read_text(encoding="utf-8")
    assert "我们" in text and "\\u" not in text  # UTF-8, not escaped
    assert len(text.splitlines()) == 2


def test_directory_paths(tmp_path):
    written = write_instances(tmp_path, [record()])
    assert written == tmp_path / "instances.log"
    assert read_instances(tmp_path) == [record()]
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(InputError, match="no instances.log in this directory"):
        read_instances(empty_dir)
    with pytest.raises(InputError, match="no such file"):
        read_instances(tmp_path / "missing.log")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = write_instances(tmp_path / "run" / "instances.log", [record()])
    write_instances(path, [record(), record(index=1)])
    assert len(read_instances(path)) == 2
    assert os.listdir(path.parent) == ["instances.log"]
    # a record that cannot be written leaves the old file untouched
    with pytest.raises(SimulpoError, match="cannot write instance 1"):
        write_instances(path, [record(), record(delays=[float("nan")])])
    assert len(read_instances(path)) == 2
    assert os.listdir(path.parent) == ["instances.log"]


def test_char_unit_counts_characters_without_spaces(tmp_path):
    path = write_lines(
        tmp_path / "instances.log",
        json.dumps(record(prediction="我们 走了", delays=[1, 1, 2, 3], reference="我们走了")),
    )
    assert len(read_instances(path, latency_unit="char")) == 1
    with pytest.raises(InputError, match="4 values but the prediction has 2 words"):
        read_instances(path)  # word unit: "我们 走了" is 2 words


def test_blank_lines_are_ignored_and_empty_prediction_is_fine(tmp_path):
    path = write_lines(
        tmp_path / "i.log", json.dumps(record()), "", json.dumps(record(prediction="", delays=[]))
    )
    assert len(read_instances(path)) == 2


def test_null_reference_allowed_when_not_required(tmp_path):
    path = write_lines(tmp_path / "i.log", json.dumps(record(reference=None)))
    assert read_instances(path, require_reference=False)[0]["reference"] is None
    with pytest.raises(InputError, match="missing 'reference'"):
        read_instances(path)


def test_invalid_utf8(tmp_path):
    path = tmp_path / "instances.log"
    path.write_bytes(json.dumps(record()).encode() + b"\n" + b'{"prediction": "\xff"}\n')
    with pytest.raises(InputError) as err:
        read_instances(path)
    assert str(err.value) == f"{path}:2: invalid UTF-8 (byte 0xff at column 17)"
    assert err.value.line == 2


def test_malformed_json(tmp_path):
    path = write_lines(tmp_path / "instances.log", json.dumps(record()), '{"index": 1,')
    with pytest.raises(InputError, match=r"instances.log:2: malformed JSON"):
        read_instances(path)


def test_empty_file(tmp_path):
    path = tmp_path / "instances.log"
    path.write_text("")
    with pytest.raises(InputError, match=r"instances.log: the file is empty"):
        read_instances(path)
    path.write_text("\n  \n")
    with pytest.raises(InputError, match="the file is empty"):
        read_instances(path)


BAD_RECORDS = [
    ("not an object", [1, 2], "expected a JSON object, found list"),
    ("no prediction", {k: v for k, v in record().items() if k != "prediction"},
     "missing required field 'prediction'"),
    ("no delays", {k: v for k, v in record().items() if k != "delays"},
     "missing required field 'delays'"),
    ("no source_length", {k: v for k, v in record().items() if k != "source_length"},
     "missing required field 'source_length'"),
    ("no reference", {k: v for k, v in record().items() if k != "reference"},
     "missing 'reference'"),
    ("prediction not text", record(prediction=3), "'prediction' must be a string"),
    ("reference not text", record(reference=["a"]), "'reference' must be a string"),
    ("delays not a list", record(delays="1 2 3"), "'delays' must be a list of numbers"),
    ("delay not a number", record(delays=[1, "2", 3]), "value 2 is '2'"),
    ("delay a boolean", record(delays=[1, True, 3]), "value 2 is True"),
    ("too few delays", record(delays=[1, 2]), "'delays' has 2 values but the prediction has 3"),
    ("too many delays", record(delays=[1, 2, 3, 3]), "has 4 values but the prediction has 3"),
    ("decreasing", record(delays=[1, 3, 2]), "'delays' decrease at value 3 (2 after 3)"),
    ("negative delay", record(delays=[-1, 2, 3]), "'delays' value 1 (-1) is negative"),
    ("NaN delay", record(delays=[1, float("nan"), 3]), "'delays' value 2 (nan) is NaN"),
    ("infinite delay", record(delays=[1, 2, float("inf")]), "'delays' value 3 (inf) is infinite"),
    ("negative elapsed", record(elapsed=[0, -5, 0]), "'elapsed' value 2 (-5) is negative"),
    ("NaN elapsed", record(elapsed=[float("nan"), 0, 0]), "'elapsed' value 1 (nan) is NaN"),
    ("infinite elapsed", record(elapsed=[0, 0, float("-inf")]), "'elapsed' value 3 (-inf)"),
    ("elapsed length", record(elapsed=[0, 0]), "'elapsed' has 2 values but 'delays' has 3"),
    ("negative source", record(source_length=-3), "'source_length' (-3) is negative"),
    ("zero source", record(source_length=0), "'source_length' (0) is zero"),
    ("NaN source", record(source_length=float("nan")), "'source_length' (nan) is NaN"),
    ("infinite source", record(source_length=float("inf")), "'source_length' (inf) is infinite"),
    ("source not a number", record(source_length="3"), "'source_length' must be a number"),
]


@pytest.mark.parametrize("case, bad, message", BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_names_file_line_and_problem(tmp_path, case, bad, message):
    # json.dumps writes NaN / Infinity literals, which Python's json (and SimulEval) accept
    path = write_lines(tmp_path / "instances.log", json.dumps(record()), json.dumps(bad))
    with pytest.raises(InputError) as err:
        read_instances(path)
    text = str(err.value)
    assert text.startswith(f"{path}:2: "), text
    assert message in text
    assert "\n" not in text
    assert err.value.line == 2 and err.value.path == str(path)


def test_empty_char_reference_is_rejected(tmp_path):
    path = write_lines(
        tmp_path / "i.log", json.dumps(record(prediction="好", delays=[1], reference="  "))
    )
    with pytest.raises(InputError, match="'reference' is empty"):
        read_instances(path, latency_unit="char")


def test_unknown_unit(tmp_path):
    path = write_lines(tmp_path / "i.log", json.dumps(record()))
    with pytest.raises(SimulpoError, match="unknown latency unit"):
        read_instances(path, latency_unit="spm")


def _slow_first_invalid(records, unit):
    for i, r in enumerate(records):
        try:
            check_record(r, unit)
        except InvalidRecord as err:
            return i, str(err)
    return None


MUTATIONS = [
    lambda r: r.update(delays=r["delays"][::-1]) if len(set(r["delays"])) > 1 else None,
    lambda r: r.update(delays=[x - 100 for x in r["delays"]]),
    lambda r: r.update(delays=r["delays"] + [99]),
    lambda r: r.update(delays=[True] * len(r["delays"])),
    lambda r: r.update(elapsed=r["elapsed"][:-1]),
    lambda r: r.update(elapsed=None),
    lambda r: r.update(elapsed=[]),
    lambda r: r.update(source_length=0.0),
    lambda r: r.update(source_length=10**400),
    lambda r: r.update(reference=None),
    lambda r: r.update(prediction="", delays=[], elapsed=[]),
    lambda r: r.update(prediction=" ".join(["x"] * len(r["delays"]))),  # still valid
    lambda r: r.update(delays=[float(x) for x in r["delays"]]),  # still valid
]


@pytest.mark.parametrize("unit", ["word", "char"])
def test_bulk_check_agrees_with_record_by_record(unit):
    # the fast whole-log test must refuse exactly what check_record refuses, first one first
    import random

    rng = random.Random(5)
    for trial in range(300):
        records = []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(0, 5)
            prediction = ("" if unit == "char" else " ").join(
                rng.choice(["ab", "c", "好"]) if unit == "word" else rng.choice("ab好")
                for _ in range(n)
            )
            if unit == "char":
                n = len(prediction)
            delays = sorted(rng.randint(0, 9) for _ in range(n))  # may be below the last record's
            records.append(record(prediction=prediction, delays=delays, elapsed=[1.5] * n,
                                  reference=rng.choice(["x y", "好"]), source_length=9))
        for _ in range(rng.randint(0, 2)):
            rng.choice(MUTATIONS)(rng.choice(records))
        expected = _slow_first_invalid(records, unit)
        assert first_invalid(records, unit) == expected, trial
        if expected is None:  # and a valid log takes the fast path
            assert _all_fine(records, unit, True), trial
