"""Our latency metrics against SimulEval 1.1.4's own scorers, run in-process on random logs.

The expected numbers come from SimulEval's code (its scorer classes on its instance
objects), never from ours; equality is exact, float for float.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from simulpo.metrics.latency import (
    average_lagging,
    average_token_delay,
    differentiable_average_lagging,
    latency_scores,
    length_adaptive_average_lagging,
)
from simulpo.metrics.scores import reference_length, score_instances

# SimulEval logs skipped instances with the deprecated logger.warn
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")

METRICS = ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset", "NumChunks", "RTF")


def simuleval_scores(ref, instances, *, computation_aware=False, use_ref_len=True, atd_on=None):
    """SimulEval's corpus score for every metric; ATD may be scored on other instances."""
    out = {}
    for name in METRICS:
        scorer = ref.latency.LATENCY_SCORERS_DICT[name](
            computation_aware=computation_aware, use_ref_len=use_ref_len
        )
        on = atd_on if (name == "ATD" and atd_on is not None) else instances
        key = name + ("_CA" if computation_aware else "")
        out[key] = scorer(on)
    return out


def ours(records, unit="word", *, elapsed=True, use_ref_len=True, source_type="text"):
    return latency_scores(
        [r["delays"] for r in records],
        [r["source_length"] for r in records],
        [reference_length(r["reference"], unit) for r in records] if use_ref_len else None,
        elapsed=[r["elapsed"] for r in records] if elapsed else None,
        source_type=source_type,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_text_log_matches_simuleval(simuleval_ref, logs, seed):
    records = logs.text(seed)
    expected = simuleval_scores(
        simuleval_ref,
        logs.log_instances(simuleval_ref, records),
        # a live text-to-text run scores ATD with text conventions (1 per word)
        atd_on=logs.text_instances(simuleval_ref, records),
    )
    got = ours(records, elapsed=False)
    assert got == expected


def test_text_log_char_unit_matches_simuleval(simuleval_ref, logs):
    records = logs.text(2, unit="char")
    instances = logs.log_instances(simuleval_ref, records, unit="char")
    expected = simuleval_scores(
        simuleval_ref, instances, atd_on=logs.text_instances(simuleval_ref, records, "char")
    )
    assert ours(records, "char", elapsed=False) == expected
    # and through the records-level API, which counts reference characters itself
    got = score_instances(records, target_lang="zh", source_type="text", latency_metrics=METRICS)
    assert {k: got[k] for k in expected} == expected


def test_text_log_without_reference_lengths(simuleval_ref, logs):
    records = logs.text(3)
    expected = simuleval_scores(
        simuleval_ref,
        logs.log_instances(simuleval_ref, records),
        use_ref_len=False,
        atd_on=logs.text_instances(simuleval_ref, records),
    )
    assert ours(records, elapsed=False, use_ref_len=False) == expected


def test_text_log_atd_as_simuleval_scores_a_log_file(simuleval_ref, logs):
    # SimulEval's --score-only path applies the speech conventions to any log
    records = logs.text(4)
    expected = simuleval_ref.latency.ATDScorer()(logs.log_instances(simuleval_ref, records))
    assert ours(records, elapsed=False, source_type="speech")["ATD"] == expected


@pytest.mark.parametrize("seed", [0, 1])
def test_speech_log_matches_simuleval(simuleval_ref, logs, seed):
    records = logs.speech(seed)
    instances = logs.log_instances(simuleval_ref, records)
    expected = simuleval_scores(simuleval_ref, instances)
    expected.update(
        simuleval_scores(simuleval_ref, logs.log_instances(simuleval_ref, records),
                         computation_aware=True)
    )
    assert ours(records, source_type="speech") == expected


def test_per_instance_values_match_simuleval(simuleval_ref, logs):
    records = logs.speech(5) + logs.text(5)
    instances = logs.log_instances(simuleval_ref, records)
    delays = [r["delays"] for r in records]
    src = [r["source_length"] for r in records]
    ref_len = [reference_length(r["reference"], "word") for r in records]
    for name, values in [
        ("AL", average_lagging(delays, src, ref_len)),
        ("LAAL", length_adaptive_average_lagging(delays, src, ref_len)),
        ("DAL", differentiable_average_lagging(delays, src)),
    ]:
        simuleval_ref.latency.LATENCY_SCORERS_DICT[name]()(instances)
        expected = [ins.metrics.get(name, math.nan) for ins in instances.values()]
        np.testing.assert_array_equal(values, expected, err_msg=name)


def test_per_instance_atd_matches_simuleval(simuleval_ref, logs):
    records = logs.speech(6, n=150)
    atd = average_token_delay(
        [r["delays"] for r in records], elapsed=[r["elapsed"] for r in records],
        source_type="speech",
    )
    scorer = simuleval_ref.latency.ATDScorer(computation_aware=True)
    for i, r in enumerate(records):
        if not r["delays"]:
            assert math.isnan(atd[i])
            continue
        assert atd[i] == scorer(logs.log_instances(simuleval_ref, [r])), i


def test_all_skipped_is_nan_where_simuleval_fails(simuleval_ref, logs):
    records = [r for r in logs.text(7) if not r["delays"]][:3]
    assert records
    with pytest.raises(statistics.StatisticsError):  # mean of nothing
        simuleval_ref.latency.ALScorer()(logs.log_instances(simuleval_ref, records))
    assert all(math.isnan(v) for v in ours(records, elapsed=False).values())
