"""score_instances / score_path / format_scores_table."""

from __future__ import annotations

import json
import math

import pytest

from simulpo.errors import InputError, SimulpoError
from simulpo.metrics.scores import (
    detect_source_type,
    format_scores_table,
    reference_length,
    score_instances,
    score_path,
    select_metrics,
)
from simulpo.stream.instance_log import write_instances

# SimulEval logs skipped instances with the deprecated logger.warn
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")

# SimulEval 1.1.4's default report (BLEU; LAAL AL AP DAL ATD) plus StartOffset, EndOffset
BASE_KEYS = ["BLEU", "LAAL", "AL", "AP", "DAL", "ATD", "StartOffset", "EndOffset"]
CA_KEYS = [k + "_CA" for k in BASE_KEYS[1:]]


def test_reference_length_counts_like_simuleval():
    assert reference_length("a b c", "word") == 3
    assert reference_length(" a  b ", "word") == 5  # split(" "): '', 'a', '', 'b', ''
    assert reference_length("", "word") == 1
    assert reference_length(" 我 爱你 ", "char") == 4  # strip(), inner space counted


def test_text_log_keys_and_values(logs):
    records = logs.text(20)
    scores = score_instances(records)
    assert list(scores) == BASE_KEYS  # all-zero elapsed: no computation-aware keys
    assert all(isinstance(v, float) for v in scores.values())
    forced = score_instances(records, computation_aware=True)
    assert list(forced) == BASE_KEYS + CA_KEYS
    assert list(score_instances(logs.speech(20), computation_aware=False)) == BASE_KEYS


def test_speech_log_matches_simuleval_end_to_end(simuleval_ref, logs):
    records = logs.speech(21)
    scores = score_instances(records)
    assert list(scores) == BASE_KEYS + CA_KEYS
    expected = {"BLEU": simuleval_ref.quality.SacreBLEUScorer()(
        logs.log_instances(simuleval_ref, records))}
    for name in BASE_KEYS[1:]:
        for ca in (False, True):
            scorer = simuleval_ref.latency.LATENCY_SCORERS_DICT[name](computation_aware=ca)
            expected[name + ("_CA" if ca else "")] = scorer(
                logs.log_instances(simuleval_ref, records)
            )
    assert {k: scores[k] for k in expected} == expected


def test_computation_aware_needs_elapsed(logs):
    records = [{k: v for k, v in r.items() if k != "elapsed"} for r in logs.text(22, n=5)]
    with pytest.raises(SimulpoError, match="needs 'elapsed'"):
        score_instances(records, computation_aware=True)
    assert "AL_CA" not in score_instances(records)


def test_source_type_detection(logs):
    assert detect_source_type(logs.text(23, n=20)) == "text"
    assert detect_source_type(logs.speech(23, n=20)) == "speech"


def test_unit_follows_target_language(logs):
    records = logs.text(24, n=30, unit="char")
    assert list(score_instances(records, target_lang="zh")) == BASE_KEYS
    with pytest.raises(SimulpoError, match="but the prediction has"):
        score_instances(records)  # words: one delay per character is too many


def test_bad_records_and_empty_input():
    with pytest.raises(SimulpoError, match="instance 7: missing required field 'delays'"):
        score_instances([{"index": 7, "prediction": "a", "source_length": 1, "reference": "a"}])
    with pytest.raises(SimulpoError, match="no instances"):
        score_instances([])


def test_score_path_writes_scores_json(tmp_path, logs):
    log = write_instances(tmp_path / "run" / "instances.log", logs.speech(25, n=30))
    scores = score_path(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "scores.json").read_text()) == scores
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert score_path(log, output=out_dir) == scores
    assert (out_dir / "scores.json").exists()
    assert score_path(log, output=tmp_path / "x" / "s.json") == scores
    assert json.loads((tmp_path / "x" / "s.json").read_text()) == scores


def test_score_path_nan_is_null_and_errors_name_the_file(tmp_path):
    rec = {"index": 0, "prediction": "", "delays": [], "elapsed": [], "reference": "a b",
           "source": "x y", "source_length": 2}
    log = write_instances(tmp_path / "instances.log", [rec])
    scores = score_path(log)
    assert math.isnan(scores["AL"])
    assert json.loads((tmp_path / "scores.json").read_text())["AL"] is None
    log.write_text('{"prediction": 1}\n')
    with pytest.raises(InputError, match=r"instances.log:1: missing required field 'delays'"):
        score_path(log)


def test_format_scores_table():
    table = format_scores_table(
        {"BLEU": 31.4159, "AL": 2.5, "ATD": float("nan"), "AL_CA": 3.25}
    )
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "value", "comp.-aware"]
    assert lines[2].split() == ["BLEU", "31.416"]
    assert lines[3].split() == ["AL", "2.500", "3.250"]
    assert lines[4].split() == ["ATD", "n/a"]
    # values are right-aligned in one column
    ends = {line.index(v) + len(v) for line, v in zip(lines[2:], ["31.416", "2.500", "n/a"])}
    assert len(ends) == 1
    plain = format_scores_table({"BLEU": 1.0, "AL": 2.0})
    assert plain.splitlines()[0].split() == ["metric", "value"]


def test_metric_selection_by_simuleval_names(logs):
    records = logs.speech(26, n=40)
    picked = score_instances(
        records, quality_metrics=["chrf", "BLEU"], latency_metrics=["al", "RTF", "AL"],
        computation_aware=False,
    )
    assert list(picked) == ["chrF", "BLEU", "AL", "RTF"]  # SimulEval's spelling, asked order
    full = score_instances(records, quality_metrics=["BLEU", "chrF"], computation_aware=False)
    assert picked["AL"] == full["AL"] and picked["chrF"] == full["chrF"]
    assert list(score_instances(records, quality_metrics=[], latency_metrics=["DAL"],
                                computation_aware=True)) == ["DAL", "DAL_CA"]


@pytest.mark.parametrize("kind, name, message", [
    ("latency", "XYZ", "unknown latency metric 'XYZ'; the latency metrics for text are AL, "),
    ("quality", "WER", "SimulEval's WER scores speech output"),
    ("latency", "DiscontinuitySum", "SimulEval's DiscontinuitySum scores speech output"),
    ("latency", "AL_SpeechAlign_BOW", "scores speech output"),
])
def test_unknown_or_speech_output_metrics_are_refused(kind, name, message):
    with pytest.raises(SimulpoError, match=message.replace("(", r"\(")):
        select_metrics([name], kind)


def test_bad_metric_fails_before_the_log_is_read(tmp_path):
    with pytest.raises(SimulpoError, match="unknown quality metric"):
        score_path(tmp_path / "missing.log", quality_metrics=["BLUE"])
