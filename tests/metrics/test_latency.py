"""Latency metrics against hand computations from the published definitions."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from simulpo.metrics.latency import (
    _builtin_sum,
    average_lagging,
    average_proportion,
    average_token_delay,
    corpus_mean,
    differentiable_average_lagging,
    end_offset,
    latency_scores,
    length_adaptive_average_lagging,
    pad,
    start_offset,
)

# Example B: |X| = 3 source words, 5 target words written at delays 1 1 3 3 3, |Y| = 4.
B_DELAYS, B_SRC, B_REF = [1, 1, 3, 3, 3], 3, 4


def one(f, *args, **kwargs) -> float:
    (value,) = f(*args, **kwargs)
    return float(value)


def test_al_stops_at_first_delay_reaching_source_end():
    # gamma = |Y|/|X| = 4/3, so unit i ideally comes at (i-1) * 0.75.
    # i=1: 1 - 0 = 1;  i=2: 1 - 0.75 = 0.25;  i=3: 3 - 1.5 = 1.5, and d_3 = 3 >= |X|: tau = 3.
    # AL = (1 + 0.25 + 1.5) / 3 = 2.75 / 3
    assert one(average_lagging, [B_DELAYS], [B_SRC], [B_REF]) == pytest.approx(2.75 / 3)


def test_al_without_reference_uses_prediction_length():
    # gamma = |Y*|/|X| = 5/3 -> steps of 0.6: (1 + 0.4 + 1.8) / 3 = 3.2 / 3
    assert one(average_lagging, [B_DELAYS], [B_SRC]) == pytest.approx(3.2 / 3)


def test_laal_uses_the_longer_of_reference_and_prediction():
    # prediction (5) longer than reference (4): gamma = 5/3 -> (1 + 0.4 + 1.8) / 3
    assert one(length_adaptive_average_lagging, [B_DELAYS], [B_SRC], [B_REF]) == pytest.approx(
        3.2 / 3
    )
    # reference (8) longer: gamma = 8/3, steps 0.375 -> (1 + 0.625 + 2.25) / 3, same as AL
    laal = one(length_adaptive_average_lagging, [B_DELAYS], [B_SRC], [8])
    assert laal == pytest.approx(3.875 / 3)
    assert laal == one(average_lagging, [B_DELAYS], [B_SRC], [8])


def test_al_when_no_delay_reaches_the_source_end():
    # |X| = 10, d = 2 4, |Y| = 2: gamma = 0.2, steps of 5: (2 + (4 - 5)) / 2 = 0.5, tau = 2
    assert one(average_lagging, [[2, 4]], [10], [2]) == pytest.approx(0.5)


def test_first_delay_past_source_end_is_returned_as_is():
    # d_1 = 4 > |X| = 3: AL and LAAL are d_1 itself
    assert one(average_lagging, [[4, 4]], [3], [2]) == 4.0
    assert one(length_adaptive_average_lagging, [[4, 4]], [3], [9]) == 4.0
    # but d_1 == |X| is not "past": gamma = 2/3, steps 1.5, tau = 1 -> (3 - 0) / 1 = 3
    assert one(average_lagging, [[3, 3]], [3], [2]) == 3.0


def test_dal():
    # gamma = |Y*|/|X| = 5/3 (the reference length plays no part), 1/gamma = 0.6.
    # d' = 1, max(1, 1.6)=1.6, max(3, 2.2)=3, max(3, 3.6)=3.6, max(3, 4.2)=4.2
    # minus (i-1) * 0.6: 1, 1.0, 1.8, 1.8, 1.8 -> DAL = 7.4 / 5 = 1.48
    assert one(differentiable_average_lagging, [B_DELAYS], [B_SRC]) == pytest.approx(1.48)
    # first delay past the end gets no special rule: gamma = 2/3, d' = 4, max(4, 5.5)
    # -> (4 - 0 + 5.5 - 1.5) / 2 = 4
    assert one(differentiable_average_lagging, [[4, 4]], [3]) == pytest.approx(4.0)


def test_ap():
    # sum d = 11, |X| * |Y| = 3 * 4 -> 11/12; without reference |Y| = |Y*| = 5 -> 11/15
    assert one(average_proportion, [B_DELAYS], [B_SRC], [B_REF]) == pytest.approx(11 / 12)
    assert one(average_proportion, [B_DELAYS], [B_SRC]) == pytest.approx(11 / 15)


def test_offsets():
    assert one(start_offset, [B_DELAYS]) == 1.0
    assert one(end_offset, [B_DELAYS], [B_SRC]) == 0.0
    assert one(end_offset, [[400.0, 1200.5]], [1000.0]) == 200.5


def test_atd_text():
    # Chunks: delay 1 -> target 1,2; delay 3 -> target 3,4,5. Source chunks: words {1}, {2,3};
    # source word k ends at time k. Target word ends at max(delay, previous end) + 1:
    # 2, 3, 4, 5, 6. Pairing (t - excess of earlier target chunks, capped by words read):
    # t=1 -> 1, t=2 -> min(2, 1)=1, chunk 2 starts after 2 target vs 1 source word, so
    # excess 1: t=3 -> 2, t=4 -> 3, t=5 -> min(4, 3)=3.
    # gaps 2-1, 3-1, 4-2, 5-3, 6-3 = 1 2 2 2 3 -> ATD = 10/5 = 2
    assert one(average_token_delay, [B_DELAYS]) == pytest.approx(2.0)


def test_atd_text_one_chunk_per_word():
    # wait-2 on 4 source words: delays 2 3 4 4. Source words end at 1..4; target ends at
    # 3, 4, 5, 6; pairs s = 1, 2, 3, 4 -> every gap is 2 -> ATD = 2
    assert one(average_token_delay, [[2, 3, 4, 4]]) == pytest.approx(2.0)


def test_atd_speech():
    # |X| = 1000 ms, delays 400 400 1000. Source chunks: 400 ms -> pieces 300, 100; 600 ms
    # -> 300, 300; source pieces end at 300, 400, 700, 1000. Target words last 0: they end
    # at 400, 400, 1000. Pairs: t=1 -> 1 (300), t=2 -> 2 (400), chunk 2 has no excess
    # (2 target vs 2 source pieces): t=3 -> 3 (700). Gaps 100, 0, 300 -> ATD = 400/3.
    assert one(average_token_delay, [[400, 400, 1000]], source_type="speech") == pytest.approx(
        400 / 3
    )


def test_atd_speech_computation_aware():
    # elapsed 500 600 1300: computation so far 100 200 300, i.e. 100 ms per word.
    # Target ends: 400+100 = 500, max(400, 500)+100 = 600, max(1000, 600)+100 = 1100.
    # Same pairs as above: 500-300, 600-400, 1100-700 = 200 200 400 -> 800/3
    atd = one(
        average_token_delay, [[400, 400, 1000]], elapsed=[[500, 600, 1300]], source_type="speech"
    )
    assert atd == pytest.approx(800 / 3)
    # all-zero elapsed (what SimulEval writes for text) means no computation time
    zero = one(average_token_delay, [[400, 400, 1000]], elapsed=[[0, 0, 0]], source_type="speech")
    assert zero == pytest.approx(400 / 3)


def test_computation_aware_scores_use_elapsed():
    scores = latency_scores(
        [[400, 400, 1000]], [1000], [3], elapsed=[[500, 600, 1300]], source_type="speech"
    )
    # AL: gamma = 3/1000; (400 + 400 - 333.3 + 1000 - 666.7) / 3 = 800/3
    assert scores["AL"] == pytest.approx(800 / 3)
    # AL_CA on elapsed: (500 + 600 - 333.3 + 1300 - 666.7) / 3 = 1400/3
    assert scores["AL_CA"] == pytest.approx(1400 / 3)
    assert scores["StartOffset_CA"] == 500
    assert scores["EndOffset_CA"] == 300
    assert scores["AP_CA"] == pytest.approx(2400 / 3000)
    assert scores["NumChunks_CA"] == 3  # one chunk per delay
    assert scores["RTF"] == 1.0 and scores["RTF_CA"] == 1.3  # last time / source length
    assert set(scores) == {
        f"{m}{s}"
        for m in ("AL", "LAAL", "DAL", "AP", "ATD", "StartOffset", "EndOffset", "NumChunks", "RTF")
        for s in ("", "_CA")
    }


def test_empty_predictions_are_skipped():
    # instance 2 wrote nothing: NaN for it, and the corpus mean is over the other two
    al = average_lagging([[2, 4], [], [1]], [10, 5, 1], [2, 3, 1])
    assert math.isnan(al[1])
    assert al[0] == pytest.approx(0.5) and al[2] == 1.0
    assert corpus_mean(al) == pytest.approx(0.75)
    assert math.isnan(corpus_mean(average_lagging([[], []], [3, 3], [1, 1])))
    assert math.isnan(corpus_mean([]))


def test_inputs_ragged_matrix_and_padded_agree():
    ragged = [[1, 1, 3, 3, 3], [2, 4], []]
    matrix = np.array([[1, 1, 3, 3, 3], [2, 4, 99, 99, 99], [7, 7, 7, 7, 7]])
    src, ref = [3, 10, 4], [4, 2, 1]
    expected = average_lagging(ragged, src, ref)
    from_matrix = average_lagging(pad(matrix, lengths=[5, 2, 0]), src, ref)
    np.testing.assert_array_equal(expected, from_matrix)
    np.testing.assert_array_equal(expected, average_lagging(pad(ragged), src, ref))
    full = average_lagging(np.array([[1, 1, 3, 3, 3]]), [3], [4])  # no lengths: all columns
    assert full[0] == expected[0]


def test_bad_array_inputs():
    with pytest.raises(ValueError, match="one value per instance"):
        average_lagging([[1, 2]], [3, 4])
    with pytest.raises(ValueError, match="source lengths must be positive"):
        average_lagging([[0, 0]], [0])
    with pytest.raises(ValueError, match="target lengths must be positive"):
        average_lagging([[1, 2]], [3], [0])
    with pytest.raises(ValueError, match="whole numbers"):
        average_token_delay([[1.5, 2]])
    with pytest.raises(ValueError, match="unknown latency metrics"):
        latency_scores([[1]], [1], metrics=["XYZ"])


def test_corpus_mean_is_exact_like_statistics_mean():
    # a naive running sum loses the 1.0 entirely; the exact mean is 1/3
    values = [1e16, 1.0, -1e16]
    assert corpus_mean(values) == statistics.mean(values) == 1 / 3
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.standard_normal(rng.integers(1, 400)) * 10.0 ** rng.integers(-8, 9, size=1)
        x[rng.random(x.size) < 0.1] = 0.0
        assert corpus_mean(x) == statistics.mean(x.tolist())
    assert corpus_mean([3, np.nan, 4]) == 3.5


def test_builtin_sum_matches_this_python():
    # SimulEval's AP uses sum(), compensated since Python 3.12: mirror whichever runs us
    rng = np.random.default_rng(1)
    rows = [
        (rng.random(rng.integers(1, 60)) * 10.0 ** rng.integers(-6, 17, size=1)).tolist()
        for _ in range(300)
    ]
    ours = _builtin_sum(pad(rows).steps)
    assert ours.tolist() == [sum(r) for r in rows]
